"""``netbind hooks call|info`` run as the installed console script against a passt sidecar process."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from netbind.domain import canonical

NETBIND = [sys.executable, "-m", "netbind.cli"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*NETBIND, "hooks", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def vector(oracle_dir):
    return json.loads((oracle_dir / "passt-sidecar" / "02-ports-tcp-udp-default.json").read_text())


@pytest.fixture
def files(tmp_path, vector):
    (tmp_path / "domain.xml").write_text(vector["input_domain_xml"])
    (tmp_path / "vmi.json").write_text(vector["input_vmi_json"])
    return tmp_path


def test_call_and_info(hook_sidecar, files, vector):
    sidecar = hook_sidecar.module("netbind.plugins.passt.sidecar", socket_name="passt.sock")
    d = str(sidecar.sockets_dir)
    out = run("call", "--sockets-dir", d, "--domain", str(files / "domain.xml"), "--vmi", str(files / "vmi.json"))
    assert out.returncode == 0, out.stderr
    assert canonical(out.stdout) == canonical(vector["output_domain_xml"])

    out = run("call", "--sockets-dir", d, "--domain", str(files / "domain.xml"), "--vmi", str(files / "vmi.json"),
              "-n", "1", "-o", "json")
    doc = json.loads(out.stdout)
    assert doc["sidecars"][0]["name"] == "network-passt-binding" and doc["sidecars"][0]["version"] == "v1alpha3"
    assert len(doc["calls"]) == 1 and canonical(doc["domainXML"]) == canonical(vector["output_domain_xml"])

    info = run("info", "--sockets-dir", d, "-o", "json")
    assert info.returncode == 0
    assert json.loads(info.stdout)[0]["hookPoints"] == [{"name": "OnDefineDomain", "priority": 0},
                                                         {"name": "Shutdown", "priority": 0}]
    assert "OnDefineDomain" in run("info", "--sockets-dir", d).stdout


def test_hook_errors_exit_1_with_kubevirts_text(hook_sidecar, files, oracle_dir):
    bad = json.loads((oracle_dir / "passt-sidecar" / "20-no-pod-network.json").read_text())
    (files / "bad.json").write_text(bad["input_vmi_json"])
    sidecar = hook_sidecar.module("netbind.plugins.passt.sidecar", socket_name="passt.sock")
    out = run("call", "--sockets-dir", str(sidecar.sockets_dir), "--domain", str(files / "domain.xml"),
              "--vmi", str(files / "bad.json"))
    assert out.returncode == 1
    assert out.stderr.strip() == f"error: {bad['error']}"


def test_collect_timeout_explains_each_socket(hook_sockets_dir, files):
    (hook_sockets_dir / "hook-sidecar-0").mkdir()
    (hook_sockets_dir / "hook-sidecar-0" / "stray.txt").write_text("")
    out = run("call", "--sockets-dir", str(hook_sockets_dir), "--domain", str(files / "domain.xml"),
              "--vmi", str(files / "vmi.json"), "--timeout", "0.5")
    assert out.returncode == 1
    assert "Failed to collect all expected sidecar hook sockets within given timeout" in out.stderr
    assert "stray.txt: not a socket" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("args, message", [
    (["--sockets-dir", "/nonexistent-nb"], "--sockets-dir /nonexistent-nb: not a directory"),
    (["--domain", "/nonexistent-nb.xml"], "--domain /nonexistent-nb.xml: No such file or directory"),
    (["--vmi", "BADJSON"], "not valid JSON"),
])
def test_bad_input_exits_2(hook_sockets_dir, files, args, message):
    (files / "bad.json").write_text("{")
    base = {"--sockets-dir": str(hook_sockets_dir), "--domain": str(files / "domain.xml"),
            "--vmi": str(files / "vmi.json")}
    base[args[0]] = str(files / "bad.json") if args[1] == "BADJSON" else args[1]
    out = run("call", *[x for kv in base.items() for x in kv])
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_call_takes_the_vmi_and_domain_from_manifests(hook_sidecar, files):
    """No hand-made VMI JSON: -f DIR gives the VMI, and the domain `render domain` draws."""
    from pathlib import Path

    from lxml import etree

    example = str(Path(__file__).resolve().parents[2] / "examples" / "passt")
    sidecar = hook_sidecar.module("netbind.plugins.passt.sidecar", socket_name="passt.sock")
    out = run("call", "--sockets-dir", str(sidecar.sockets_dir), "-f", example)
    assert out.returncode == 0, out.stderr
    domain = etree.fromstring(out.stdout.encode())
    aliases = [a.get("name") for a in domain.iterfind("devices/interface/alias")]
    assert aliases == ["ua-passtnet"]  # the sidecar added the passt NIC the core domain lacks
    assert domain.find("devices/interface").get("type") in ("vhostuser", "user")

    both = run("call", "--sockets-dir", str(sidecar.sockets_dir), "-f", example, "--vmi", str(files / "vmi.json"))
    assert both.returncode == 2 and "either as --vmi FILE (JSON) or as manifests with -f DIR" in both.stderr
    neither = run("call", "--sockets-dir", str(sidecar.sockets_dir), "--domain", str(files / "domain.xml"))
    assert neither.returncode == 2 and "Traceback" not in neither.stderr
    missing = run("call", "--sockets-dir", str(sidecar.sockets_dir), "-f", "/nonexistent-nb-dir")
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr
