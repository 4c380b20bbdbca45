"""The passt binding CNI against KubeVirt's recorded vectors, in real namespaces, plus DEL/CHECK/GC."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from netbind.testing.cni import cmd_add, cmd_check, cmd_del, run_plugin, with_prev_result

PLUGIN = "netbind-cni-passt-binding"
KEYS = ("net.ipv4.ip_unprivileged_port_start", "net.ipv4.ping_group_range")
PLACEHOLDER = "<fresh network namespace created with `ip netns add`>"
STATE_DIR = Path("/var/lib/cni/netbind/passt-binding")
# KubeVirt's text has a Go format bug (%!q(<nil>)) and Go's Statfs wording; ours names the path.
KNOWN_MESSAGE_DIFFERENCES = {
    "add-missing-netns-path":
        'failed to open netns "/var/run/netns/oracle-does-not-exist": no such file or directory',
}


def vectors(oracle_dir: Path):
    return sorted((oracle_dir / "passt-cni").glob("*.json"))


def pytest_generate_tests(metafunc):
    if "vector" in metafunc.fixturenames:
        directory = Path(__file__).resolve().parents[2].parent / "shared" / "oracle" / "passt-cni"
        files = sorted(directory.glob("*.json"))
        metafunc.parametrize("vector", files, ids=[f.stem for f in files])


def sysctls(ns) -> dict:
    return {key: ns.sysctl(key) for key in KEYS}


@pytest.fixture
def clean_state():
    """Oracle stdin has no dataDir: remove whatever the default state dir got for cid123."""
    yield
    for path in STATE_DIR.glob("*/cid123-*.json"):
        path.unlink()


def test_all_vectors_are_present(oracle_dir):
    assert len(vectors(oracle_dir)) >= 12


def test_vector(vector: Path, netns, clean_state):
    case = json.loads(vector.read_text())
    env = dict(case["env"])
    if env.get("CNI_NETNS") == PLACEHOLDER:
        env["CNI_NETNS"] = netns.path
    assert sysctls(netns) == case["sysctls_before"]
    run = run_plugin(PLUGIN, env.pop("CNI_COMMAND"), case["stdin"],
                     netns=env.pop("CNI_NETNS", ""), ifname=env.pop("CNI_IFNAME", ""),
                     container_id=env.pop("CNI_CONTAINERID", ""), cni_args=env.pop("CNI_ARGS", ""),
                     cni_path=env.pop("CNI_PATH", ""))
    assert not env
    assert run.exit_code == case["exit_code"]
    expected_stdout = case["stdout"]
    if case["name"] in KNOWN_MESSAGE_DIFFERENCES:
        assert run.json()["code"] == case["stdout_json"]["code"]
        assert run.json()["msg"] == KNOWN_MESSAGE_DIFFERENCES[case["name"]]
    else:
        assert run.stdout == expected_stdout
    # stderr: the same log line with a Go-style timestamp, or nothing
    normalized = re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ", "<timestamp> ", run.stderr, flags=re.M)
    assert normalized == case["stderr"]
    assert sysctls(netns) == case["sysctls_after"]
    if case["exit_code"] == 0 and case["env"]["CNI_COMMAND"] == "ADD":
        # beyond KubeVirt: DEL puts the namespace back as it was
        cmd_del(PLUGIN, case["stdin"], netns=netns.path, ifname=case["env"]["CNI_IFNAME"],
                container_id="cid123")
        assert sysctls(netns) == case["sysctls_before"]


def netconf(tmp_path, version="1.0.0", **extra):
    return {"cniVersion": version, "name": "netbindingpasst", "type": "kubevirt-passt-binding",
            "dataDir": str(tmp_path / "state"), "args": {"cni": {"logicNetworkName": "default"}},
            **extra}


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_add_check_del_round_trip(netns, tmp_path, version):
    conf = netconf(tmp_path, version)
    before = sysctls(netns)
    result = cmd_add(PLUGIN, conf, netns=netns.path, ifname="eth0")
    assert result.interfaces == [] and result.ips == []
    cmd_check(PLUGIN, with_prev_result(conf, result), netns=netns.path, ifname="eth0")
    # someone resets a sysctl: CHECK notices
    os.system(f"ip netns exec {netns.name} sysctl -qw net.ipv4.ping_group_range='1 0'")
    run = run_plugin(PLUGIN, "CHECK", with_prev_result(conf, result), netns=netns.path,
                     ifname="eth0", container_id="nb-test")
    assert run.exit_code == 1 and run.json()["code"] == 102
    assert "ping_group_range" in run.json()["msg"]
    cmd_del(PLUGIN, conf, netns=netns.path, ifname="eth0")
    # DEL only restores what still holds the value ADD wrote: the reset one stays as the user set it
    assert sysctls(netns) == before
    assert not list((tmp_path / "state").rglob("*.json"))


def test_result_is_passed_through_when_chained(netns, tmp_path):
    prev = {"cniVersion": "0.3.1", "interfaces": [{"name": "eth0", "sandbox": netns.path}],
            "ips": [{"version": "4", "address": "10.0.0.2/24", "interface": 0}]}
    run = run_plugin(PLUGIN, "ADD", netconf(tmp_path, "1.0.0", prevResult=prev), netns=netns.path,
                     ifname="eth0", container_id="c1", cni_path="/x")
    assert run.exit_code == 0, run.stdout
    assert run.json() == {"cniVersion": "1.0.0",
                          "interfaces": [{"name": "eth0", "sandbox": netns.path}],
                          "ips": [{"interface": 0, "address": "10.0.0.2/24"}]}
    cmd_del(PLUGIN, netconf(tmp_path), netns=netns.path, ifname="eth0", container_id="c1")


def test_del_of_never_added_and_of_vanished_netns_succeed(tmp_path, netns):
    conf = netconf(tmp_path)
    cmd_del(PLUGIN, conf, netns="/run/netns/nb-never-existed", ifname="eth0")
    cmd_del(PLUGIN, conf, netns="", ifname="eth0")  # CNI_NETNS is optional for DEL
    cmd_add(PLUGIN, conf, netns=netns.path, ifname="eth0")
    cmd_del(PLUGIN, conf, netns="/run/netns/nb-gone", ifname="eth0")  # state says which netns
    assert sysctls(netns)["net.ipv4.ip_unprivileged_port_start"] == "1024"


def test_gc_restores_stale_attachments_only(tmp_path, netns_pair):
    conf = netconf(tmp_path, "1.1.0")
    a, b = netns_pair.node, netns_pair.pod
    cmd_add(PLUGIN, conf, netns=a.path, ifname="eth0", container_id="keep")
    cmd_add(PLUGIN, conf, netns=b.path, ifname="eth0", container_id="stale")
    gc = dict(conf, **{"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]})
    run = run_plugin(PLUGIN, "GC", gc, cni_path="/x")
    assert run.exit_code == 0 and run.stdout == ""
    assert a.sysctl("net.ipv4.ip_unprivileged_port_start") == "0"
    assert b.sysctl("net.ipv4.ip_unprivileged_port_start") == "1024"
    cmd_del(PLUGIN, conf, netns=a.path, ifname="eth0", container_id="keep")
    assert not list((tmp_path / "state").rglob("*.json"))
