"""The picture of the wiring: the pure DOT graph, and Debian's dot rendering it (PNG, SVG)."""
from __future__ import annotations

import os
import re
import shutil
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from netbind import review, wiring
from netbind.api import load_manifests
from netbind.api.versions import LATEST
from netbind.cli import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _dot(example: str) -> str:
    manifests = load_manifests([EXAMPLES / example])
    return wiring.to_dot(wiring.from_explanation(review.explain(manifests, LATEST), manifests, LATEST))


def _nodes(dot_text: str) -> dict[str, str]:
    """node id -> label, from the DOT text's node statements."""
    return {m.group(1): m.group(2) for m in re.finditer(r'^\s+(\w+) \[label="((?:[^"\\]|\\.)*)"', dot_text, re.M)}


def test_passt_picture_has_cni_chain_pod_interface_sidecar_socket_and_domain_interface():
    nodes = _dot("passt")
    found = _nodes(nodes)
    assert found["cni_passtnet_0"] == "CNI: cluster default network CNI creates eth0"
    assert found["cni_passtnet_1"].startswith("CNI: then binding NAD default/netbindingpasst")
    assert found["podif_passtnet"] == "pod interface eth0"
    assert found["sidecar_hook_sidecar_0"].startswith("sidecar hook-sidecar-0")
    assert found["socket_hook_sidecar_0"] == "socket in /var/run/kubevirt-hooks/"
    assert found["domif_passtnet"].startswith("domain interface ua-passtnet")
    assert "subgraph cluster_pod" in nodes and "subgraph cluster_domain" in nodes
    assert "sidecar_hook_sidecar_0 -> domif_passtnet" in nodes
    assert not any(k.startswith(("tap_", "bridge_")) for k in found)


def test_managedtap_picture_has_bridge_tap_and_dummy():
    found = _nodes(_dot("managedtap"))
    assert found["bridge_default"] == "bridge k6t-eth0"
    assert found["tap_default"] == "tap tap0"
    assert found["dummy_default"] == "dummy eth0 (pod address)"
    assert found["podif_default"] == "pod interface eth0-nic"
    assert not any(k.startswith("sidecar_") for k in found)


needs_dot = pytest.mark.skipif(shutil.which("dot") is None and not os.environ.get("CI"),
                               reason="Graphviz dot not installed (make deps installs graphviz)")


@needs_dot
def test_explain_draws_a_valid_png_and_an_svg_with_the_nodes(tmp_path):
    png = tmp_path / "wiring.png"
    result = CliRunner().invoke(cli, ["explain", "-f", str(EXAMPLES / "macvtap"), "--diagram", str(png)])
    assert result.exit_code == 0, result.output
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 50

    svg = tmp_path / "wiring.svg"
    result = CliRunner().invoke(cli, ["explain", "-f", str(EXAMPLES / "macvtap"), "--diagram", str(svg)])
    assert result.exit_code == 0, result.output
    ns = {"s": "http://www.w3.org/2000/svg"}
    titles = {t.text for t in ET.parse(svg).getroot().iterfind(".//s:g[@class='node']/s:title", ns)}
    assert {"cni_macvtapnet_0", "podif_macvtapnet", "tap_macvtapnet", "domif_macvtapnet"} <= titles
    assert not list(tmp_path.glob(".*.tmp"))


def test_unknown_picture_format_is_bad_input(tmp_path):
    result = CliRunner().invoke(cli, ["explain", "-f", str(EXAMPLES / "passt"), "--diagram", str(tmp_path / "w.jpg")])
    assert result.exit_code == 2
    assert "error: --diagram" in result.stderr and "unknown picture format 'jpg'" in result.stderr
    assert not list(tmp_path.iterdir())


def test_running_picture_from_pod_links_managedtap_layout():
    """The layout `ip -j -d link show` reports in a managedTap pod (as tests/node checks it live)."""
    links = {"lo": {"ifname": "lo"},
             "eth0-nic": {"ifname": "eth0-nic", "master": "k6t-eth0", "linkinfo": {"info_kind": "veth"}},
             "k6t-eth0": {"ifname": "k6t-eth0", "linkinfo": {"info_kind": "bridge"}},
             "tap0": {"ifname": "tap0", "master": "k6t-eth0", "linkinfo": {"info_kind": "tun"}},
             "eth0": {"ifname": "eth0", "linkinfo": {"info_kind": "dummy"}},
             "stray0": {"ifname": "stray0", "linkinfo": {"info_kind": "veth"}}}
    vmi = {"metadata": {"namespace": "default", "name": "vm1"},
           "status": {"interfaces": [{"name": "default", "podInterfaceName": "eth0", "infoSource": "multus-status",
                                      "interfaceName": "eth0", "mac": "02:00:00:00:00:01"}]}}
    found = _nodes(wiring.to_dot(wiring.from_pod_links(vmi, links, ["hook-sidecar-0: process"])))
    assert found["podif_default"] == "pod interface eth0-nic (veth)"
    assert found["bridge_default"] == "bridge k6t-eth0"
    assert found["tap_default"] == "tap tap0"
    assert found["dummy_default"] == "dummy eth0 (pod address)"
    assert found["domif_default"].startswith("domain interface ua-default\\nguest eth0 02:00:00:00:00:01")
    assert found["sidecar_hook_sidecars"] == "sidecar hook-sidecars\\nhook-sidecar-0: process"
    assert found["link_stray0"] == "link stray0 (veth)"
    assert "link_lo" not in found and "link_tap0" not in found


def test_plugins_alone_have_no_pod_to_draw(tmp_path):
    result = CliRunner().invoke(cli, ["explain", "-f", str(EXAMPLES / "plugin-api" / "plugin.yaml"),
                                      "--diagram", str(tmp_path / "w.svg")])
    assert result.exit_code == 2 and "no launcher pod to draw" in result.stderr
    assert not list(tmp_path.iterdir())
