"""`netbind status NAME --diagram` (root): a real `netbind up` of the managedTap example, drawn from
the real links of its pod."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from click.testing import CliRunner

from netbind.api.loading import load_manifests
from netbind.cli import cli

from .test_up import EXAMPLES, run  # noqa: F401  (the fixture)


def test_status_draws_the_running_pods_bridge_tap_and_dummy(run, tmp_path):
    result = run.up(load_manifests([EXAMPLES / "managedtap"]))
    name = result.vmi["metadata"]["name"]
    svg = tmp_path / "running.svg"
    out = CliRunner().invoke(cli, ["status", name, "--diagram", str(svg)],
                             env={"NETBIND_RUNTIME_DIR": str(run.runtime)})
    assert out.exit_code == 0, out.output
    ns = {"s": "http://www.w3.org/2000/svg"}
    nodes = {g.findtext("s:title", namespaces=ns): " ".join(t.text or "" for t in g.iterfind("s:text", ns))
             for g in ET.parse(svg).getroot().iterfind(".//s:g[@class='node']", ns)}
    assert nodes["bridge_default"] == "bridge k6t-eth0"
    assert nodes["tap_default"] == "tap tap0"
    assert nodes["dummy_default"] == "dummy eth0 (pod address)"
    assert nodes["podif_default"] == "pod interface eth0-nic (veth)"
    assert nodes["domif_default"].startswith("domain interface ua-default")
