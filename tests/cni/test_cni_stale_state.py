"""Binding CNI state that outlives its attachment (root, real namespaces, the plugins as processes).

A state file whose namespace is gone, whose path names another namespace now, or that records
another namespace than this ADD's (the runtime never sent DEL) must not block later ADDs; a
repeated ADD into the same live namespace succeeds as KubeVirt's passt binding CNI does; DEL and
CHECK act on the recorded namespace only.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from netbind.cni import CNIError
from netbind.testing.cni import cmd_add, cmd_check, cmd_del, run_plugin, with_prev_result
from netbind.testing.netns import create_netns, delete_netns, unique_name

from test_bridge_binding_cni import snapshot  # noqa: E402  (the pod's whole network, as a container sees it)

PASST = "netbind-cni-passt-binding"
BRIDGE = "netbind-cni-bridge-binding"
MACVTAP = "netbind-cni-macvtap"
PORT_START = "net.ipv4.ip_unprivileged_port_start"
PING_RANGE = "net.ipv4.ping_group_range"


@pytest.fixture
def namespaces():
    """A factory of throwaway namespaces (``make(name=None)``), all deleted afterwards."""
    from netbind.testing import require_root

    require_root()
    made = []

    def make(name=None):
        ns = create_netns(name)
        made.append(ns)
        return ns

    yield make
    for ns in made:
        delete_netns(ns)


def passt_conf(tmp_path):
    return {"cniVersion": "1.0.0", "name": "netbindingpasst", "type": PASST,
            "dataDir": str(tmp_path / "state"), "args": {"cni": {"logicNetworkName": "default"}}}


def state_files(tmp_path):
    return sorted(p.name for p in (tmp_path / "state").rglob("*") if p.is_file())


def state(tmp_path):
    (path,) = (tmp_path / "state").rglob("*.json")
    return json.loads(path.read_text())


def untouched(ns) -> bool:
    return ns.sysctl(PORT_START) == "1024" and ns.sysctl(PING_RANGE).split() == ["1", "0"]


def wired(ns) -> bool:
    return ns.sysctl(PORT_START) == "0" and ns.sysctl(PING_RANGE).split() == ["107", "107"]


# --- passt binding ---------------------------------------------------------------------------

def test_passt_repeated_add_into_the_same_namespace_succeeds_and_del_restores_the_first_values(
        namespaces, tmp_path):
    ns, conf = namespaces(), passt_conf(tmp_path)
    subprocess.run(["ip", "netns", "exec", ns.name, "sysctl", "-qw", f"{PORT_START}=500"], check=True)
    first = run_plugin(PASST, "ADD", conf, netns=ns.path, ifname="eth0", container_id="c1", cni_path="/x")
    recorded = state(tmp_path)
    again = run_plugin(PASST, "ADD", conf, netns=ns.path, ifname="eth0", container_id="c1", cni_path="/x")
    assert (first.exit_code, again.exit_code) == (0, 0) and again.stdout == first.stdout
    assert state(tmp_path) == recorded and recorded["before"][PORT_START] == "500"
    assert wired(ns)
    cmd_del(PASST, conf, netns=ns.path, ifname="eth0", container_id="c1")
    assert ns.sysctl(PORT_START) == "500" and state_files(tmp_path) == []


def test_passt_same_namespace_under_another_path_is_a_repeated_add(namespaces, tmp_path):
    ns, conf = namespaces(), passt_conf(tmp_path)
    holder = subprocess.Popen(["ip", "netns", "exec", ns.name, "sleep", "60"])
    try:
        cmd_add(PASST, conf, netns=ns.path, ifname="eth0", container_id="c1")
        before = state(tmp_path)["before"]
        proc_path = f"/proc/{holder.pid}/ns/net"
        cmd_add(PASST, conf, netns=proc_path, ifname="eth0", container_id="c1")
        assert state(tmp_path)["before"] == before and state(tmp_path)["netns"] == proc_path
        cmd_del(PASST, conf, netns=proc_path, ifname="eth0", container_id="c1")
        assert untouched(ns)
    finally:
        holder.kill()
        holder.wait()


def test_passt_add_after_the_namespace_vanished_without_del(namespaces, tmp_path):
    conf = passt_conf(tmp_path)
    gone = namespaces()
    cmd_add(PASST, conf, netns=gone.path, ifname="eth0", container_id="c1")
    delete_netns(gone)                        # the runtime never sent DEL
    pod = namespaces()
    run = run_plugin(PASST, "ADD", conf, netns=pod.path, ifname="eth0", container_id="c1", cni_path="/x")
    assert run.exit_code == 0, run.stdout
    assert "stale attachment state" in run.stderr and "gone or replaced" in run.stderr
    assert wired(pod) and state(tmp_path)["netns"] == pod.path
    cmd_del(PASST, conf, netns=pod.path, ifname="eth0", container_id="c1")
    assert untouched(pod) and state_files(tmp_path) == []


def test_passt_path_reused_by_a_new_namespace_is_stale_and_del_check_use_the_new_one(namespaces, tmp_path):
    conf = passt_conf(tmp_path)
    name = unique_name()
    old = namespaces(name)
    cmd_add(PASST, conf, netns=old.path, ifname="eth0", container_id="c1")
    old_inode = state(tmp_path)["netnsInode"]
    delete_netns(old)
    new = namespaces(name)                    # the same path, another namespace
    # before the new ADD, CHECK and DEL do not take the new namespace for the recorded one
    check = run_plugin(PASST, "CHECK", with_prev_result(conf, {"cniVersion": "1.0.0"}), netns=new.path,
                       ifname="eth0", container_id="c1", cni_path="/x")
    assert check.exit_code == 1 and check.json()["code"] == 101
    cmd_add(PASST, conf, netns=new.path, ifname="eth0", container_id="c1")
    assert state(tmp_path)["netnsInode"] != old_inode and wired(new)
    cmd_check(PASST, with_prev_result(conf, {"cniVersion": "1.0.0"}), netns=new.path, ifname="eth0",
              container_id="c1")
    cmd_del(PASST, conf, netns=new.path, ifname="eth0", container_id="c1")
    assert untouched(new) and state_files(tmp_path) == []


def test_passt_add_into_another_live_namespace_undoes_the_stale_one(namespaces, tmp_path):
    conf = passt_conf(tmp_path)
    first, second = namespaces(), namespaces()
    cmd_add(PASST, conf, netns=first.path, ifname="eth0", container_id="c1")
    run = run_plugin(PASST, "ADD", conf, netns=second.path, ifname="eth0", container_id="c1", cni_path="/x")
    assert run.exit_code == 0 and "still alive: undoing it" in run.stderr
    assert untouched(first) and wired(second)
    with pytest.raises(CNIError, match="not set up"):   # CHECK is about the recorded namespace only
        cmd_check(PASST, with_prev_result(conf, {"cniVersion": "1.0.0"}), netns=first.path, ifname="eth0",
                  container_id="c1")
    cmd_del(PASST, conf, netns=second.path, ifname="eth0", container_id="c1")
    assert untouched(second) and state_files(tmp_path) == []


@pytest.mark.parametrize("content", [b"{truncated", b"[1, 2]", b"\xff\xfe", b""])
def test_passt_unreadable_state_and_crashed_writes_are_replaced(namespaces, tmp_path, content):
    ns, conf = namespaces(), passt_conf(tmp_path)
    directory = tmp_path / "state" / "netbindingpasst"
    directory.mkdir(parents=True)
    (directory / "c1-eth0.json").write_bytes(content)
    (directory / "c1-eth0.json.tmp4242").write_bytes(b'{"netns": "/x"')   # a write that crashed
    (directory / "c2-eth0.json.tmp4242").write_bytes(b"{}")              # another attachment's: kept
    run = run_plugin(PASST, "ADD", conf, netns=ns.path, ifname="eth0", container_id="c1", cni_path="/x")
    assert run.exit_code == 0, run.stdout
    assert "replacing" in run.stderr and wired(ns)
    assert state_files(tmp_path) == ["c1-eth0.json", "c2-eth0.json.tmp4242"]
    cmd_del(PASST, conf, netns=ns.path, ifname="eth0", container_id="c1")
    assert untouched(ns)


# --- bridge binding --------------------------------------------------------------------------

def bridge_conf(tmp_path):
    return {"cniVersion": "1.0.0", "name": "netbind-bridge-binding", "type": BRIDGE,
            "dataDir": str(tmp_path / "state"), "args": {"cni": {"logicNetworkName": "default"}}}


def make_pod(namespaces, address="10.88.0.7/24"):
    """A pod namespace as a pod network leaves it: eth0 (a veth whose peer sits in the pod's own
    node-side namespace) with an address and a default route."""
    pod, peer = namespaces(), namespaces()
    side = unique_name("nb-v")
    pod.ip("link", "add", "eth0", "type", "veth", "peer", "name", side, "netns", peer.name)
    pod.ip("link", "set", "eth0", "mtu", "1450", "up")
    pod.ip("addr", "add", address, "dev", "eth0")
    pod.ip("route", "add", "default", "via", address.rsplit(".", 1)[0] + ".1")
    return pod


def test_bridge_add_into_another_pod_after_a_lost_del_restores_the_first_and_builds_the_second(
        namespaces, tmp_path):
    conf = bridge_conf(tmp_path)
    first, second = make_pod(namespaces), make_pod(namespaces, "10.88.1.9/24")
    pristine_first, pristine_second = snapshot(first), snapshot(second)
    cmd_add(BRIDGE, conf, netns=first.path, ifname="net1", container_id="c1")
    run = run_plugin(BRIDGE, "ADD", conf, netns=second.path, ifname="net1", container_id="c1", cni_path="/x")
    assert run.exit_code == 0, run.stdout
    assert snapshot(first) == pristine_first                 # the stale attachment undone exactly
    assert "k6t-eth0" in {l["ifname"] for l in second.links()}
    cmd_del(BRIDGE, conf, netns=second.path, ifname="net1", container_id="c1")
    assert snapshot(second) == pristine_second and state_files(tmp_path) == []


def test_bridge_add_after_the_pod_vanished_without_del(namespaces, tmp_path):
    conf = bridge_conf(tmp_path)
    gone = make_pod(namespaces)
    cmd_add(BRIDGE, conf, netns=gone.path, ifname="net1", container_id="c1")
    delete_netns(gone)
    pod = make_pod(namespaces)
    pristine = snapshot(pod)
    cmd_add(BRIDGE, conf, netns=pod.path, ifname="net1", container_id="c1")
    cmd_check(BRIDGE, with_prev_result(conf, {"cniVersion": "1.0.0"}), netns=pod.path, ifname="net1",
              container_id="c1")
    cmd_del(BRIDGE, conf, netns=pod.path, ifname="net1", container_id="c1")
    assert snapshot(pod) == pristine and state_files(tmp_path) == []


def test_bridge_repeated_add_with_a_broken_layout_is_refused_and_del_restores(namespaces, tmp_path):
    conf = bridge_conf(tmp_path)
    pod = make_pod(namespaces)
    pristine = snapshot(pod)
    cmd_add(BRIDGE, conf, netns=pod.path, ifname="net1", container_id="c1")
    pod.ip("link", "delete", "tap0")
    run = run_plugin(BRIDGE, "ADD", conf, netns=pod.path, ifname="net1", container_id="c1", cni_path="/x")
    assert run.exit_code == 1 and run.json()["code"] == 100
    assert "link tap0 of the bridge binding is missing" in run.json()["msg"] and "run DEL" in run.json()["msg"]
    cmd_del(BRIDGE, conf, netns=pod.path, ifname="net1", container_id="c1")
    assert snapshot(pod) == pristine and state_files(tmp_path) == []


# --- macvtap: no state file; a repeated ADD is the spec's "interface exists" error -----------

def test_macvtap_keeps_no_state_and_adds_again_once_the_namespace_is_new(netns_pair):
    conf = {"cniVersion": "1.0.0", "name": "mvt", "type": MACVTAP, "master": netns_pair.node_veth}
    kw = dict(ifname="net1", container_id="c1", plugin_netns=netns_pair.node.name)
    cmd_add(MACVTAP, conf, netns=netns_pair.pod.path, **kw)
    again = run_plugin(MACVTAP, "ADD", conf, netns=netns_pair.pod.path, cni_path="/x", **kw)
    assert again.exit_code == 1 and again.json()["code"] == 100 and "already exists" in again.json()["msg"]
    pod2 = create_netns()
    try:
        cmd_add(MACVTAP, conf, netns=pod2.path, **kw)       # the same ids, a new sandbox: nothing holds it back
        cmd_del(MACVTAP, conf, netns=pod2.path, **kw)
    finally:
        delete_netns(pod2)
    cmd_del(MACVTAP, conf, netns=netns_pair.pod.path, **kw)
