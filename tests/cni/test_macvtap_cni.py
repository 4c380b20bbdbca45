"""The macvtap CNI in real namespaces: modes, MAC/MTU, DEL, CHECK, bad input, executor chain."""
from __future__ import annotations

import os
import sys

import pytest

from netbind.cni import CNIError
from netbind.cni.exec import CNIExecutor, RuntimeConf
from netbind.testing import require
from netbind.testing.cni import cmd_add, cmd_check, cmd_del, run_plugin, with_prev_result

PLUGIN = "netbind-cni-macvtap"


def conf(pair, version="1.0.0", **extra):
    return {"cniVersion": version, "name": "macvtapnet", "type": PLUGIN,
            "master": pair.node_veth, **extra}


def summary(ns):
    """The stable facts of each link (operstate and counters move on their own)."""
    return sorted((l["ifname"], l.get("linkinfo", {}).get("info_kind"), l.get("address"), l["mtu"])
                  for l in ns.links())


def link(ns, name):
    return next((l for l in ns.links() if l["ifname"] == name), None)


@pytest.mark.parametrize("mode", ["bridge", "vepa", "private", "passthru"])
@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_check_del(netns_pair, mode, version):
    pod = pair_pod = netns_pair.pod
    nc = conf(netns_pair, version, mode=mode, mtu=1400)
    kw = dict(netns=pod.path, ifname="pod16477688c0e", plugin_netns=netns_pair.node.name)
    result = cmd_add(PLUGIN, nc, cni_args="IgnoreUnknown=1;MAC=02:00:00:00:00:05", **kw)
    assert [(i.name, i.mac, i.sandbox) for i in result.interfaces] == [
        ("pod16477688c0e", "02:00:00:00:00:05", pod.path)]
    assert result.ips == []
    made = link(pair_pod, "pod16477688c0e")
    assert made["linkinfo"]["info_kind"] == "macvtap"
    assert made["linkinfo"]["info_data"]["mode"] == mode
    assert (made["address"], made["mtu"]) == ("02:00:00:00:00:05", 1400)
    assert "UP" in made["flags"]
    if version != "0.3.1":
        cmd_check(PLUGIN, with_prev_result(nc, result), **kw)
    cmd_del(PLUGIN, nc, **kw)
    assert link(pair_pod, "pod16477688c0e") is None
    cmd_del(PLUGIN, nc, **kw)  # idempotent


def test_mac_from_runtime_config_and_default_mtu(netns_pair):
    nc = conf(netns_pair, runtimeConfig={"mac": "02:AA:00:00:00:07"})
    kw = dict(netns=netns_pair.pod.path, ifname="net1", plugin_netns=netns_pair.node.name)
    result = cmd_add(PLUGIN, nc, **kw)
    assert result.interfaces[0].mac == "02:aa:00:00:00:07"
    lower = link(netns_pair.node, netns_pair.node_veth)
    assert link(netns_pair.pod, "net1")["mtu"] == lower["mtu"]
    cmd_del(PLUGIN, nc, **kw)


def test_check_detects_drift(netns_pair):
    nc = conf(netns_pair, mtu=1400)
    kw = dict(netns=netns_pair.pod.path, ifname="net1", plugin_netns=netns_pair.node.name)
    result = cmd_add(PLUGIN, nc, **kw)
    netns_pair.pod.ip("link", "set", "net1", "mtu", "1300")
    run = run_plugin(PLUGIN, "CHECK", with_prev_result(nc, result), container_id="nb-test", **kw)
    assert run.exit_code == 1 and run.json()["code"] == 101 and "MTU 1300" in run.json()["msg"]
    no_prev = run_plugin(PLUGIN, "CHECK", nc, container_id="nb-test", **kw)
    assert no_prev.exit_code == 1 and "prevResult" in no_prev.json()["msg"]
    cmd_del(PLUGIN, nc, **kw)


def test_second_add_is_refused_and_keeps_the_first(netns_pair):
    nc = conf(netns_pair)
    kw = dict(netns=netns_pair.pod.path, ifname="net1", plugin_netns=netns_pair.node.name)
    first = cmd_add(PLUGIN, nc, **kw)
    run = run_plugin(PLUGIN, "ADD", nc, container_id="nb-test", **kw)
    assert run.exit_code == 1 and run.json()["code"] == 100 and "already exists" in run.json()["msg"]
    assert link(netns_pair.pod, "net1")["address"] == first.interfaces[0].mac
    cmd_del(PLUGIN, nc, **kw)


@pytest.mark.parametrize("extra,args,code,fragment", [
    ({"master": "nb-nosuchdev"}, "", 7, "master: lower device 'nb-nosuchdev' does not exist"),
    ({"mode": "source"}, "", 7, "mode: 'source' is not one of"),
    ({"mtu": 10}, "", 7, "mtu:"),
    ({"mtu": 9000}, "", 999, "cannot create macvtap"),  # above the lower device's MTU
    ({"promiscMode": "yes"}, "", 7, "promiscMode"),
    ({}, "MAC=zz:00:00:00:00:01", 7, "MAC: 'zz:00:00:00:00:01' is not a MAC address"),
    ({}, "MAC=01:00:00:00:00:01", 7, "multicast"),
])
def test_bad_input_leaves_nothing(netns_pair, extra, args, code, fragment):
    before_pod, before_node = summary(netns_pair.pod), summary(netns_pair.node)
    run = run_plugin(PLUGIN, "ADD", conf(netns_pair, **extra), netns=netns_pair.pod.path,
                     ifname="net1", container_id="c", cni_args=args, cni_path="/x",
                     plugin_netns=netns_pair.node.name)
    assert run.exit_code == 1, run.stdout
    assert run.json()["code"] == code and fragment in run.json()["msg"], run.json()
    assert summary(netns_pair.pod) == before_pod and summary(netns_pair.node) == before_node


def test_missing_master_is_named():
    run = run_plugin(PLUGIN, "ADD", {"cniVersion": "1.0.0", "name": "m", "type": PLUGIN},
                     netns="/run/netns/nb-never-existed", ifname="net1", container_id="c", cni_path="/x")
    assert run.exit_code == 1 and run.json()["msg"].startswith("master:")


def test_chained_with_tuning_and_passt_through_the_executor(netns_pair, tmp_path):
    """macvtap + Debian's tuning (sets a sysctl on it) + passt binding, then DEL: all gone."""
    require("Debian's containernetworking-plugins", os.path.isfile("/usr/lib/cni/tuning"),
            "apt-get install containernetworking-plugins (make test does)")
    executor = CNIExecutor(["/usr/lib/cni", os.path.dirname(sys.executable)], tmp_path / "cache",
                           plugin_netns=netns_pair.node.name)
    conflist = {"cniVersion": "1.0.0", "name": "nb-mvt", "plugins": [
        {"type": PLUGIN, "master": netns_pair.node_veth, "mode": "bridge",
         "capabilities": {"mac": True}},
        {"type": "tuning", "sysctl": {"net.ipv6.conf.net2.disable_ipv6": "1"}},
        {"type": "netbind-cni-passt-binding", "dataDir": str(tmp_path / "passt")},
    ]}
    before = summary(netns_pair.pod)
    rt = RuntimeConf("nb-chain", netns_pair.pod.path, "net2",
                     capability_args={"mac": "02:00:00:00:00:42"})
    result = executor.add_network_list(conflist, rt)
    assert result["interfaces"][0]["mac"] == "02:00:00:00:00:42"
    assert netns_pair.pod.sysctl("net.ipv6.conf.net2.disable_ipv6") == "1"
    executor.check_network_list(conflist, rt)
    executor.del_network_list(conflist, rt)
    assert summary(netns_pair.pod) == before
    assert netns_pair.pod.sysctl("net.ipv4.ip_unprivileged_port_start") == "1024"
    with pytest.raises(CNIError, match="no cached ADD result"):
        executor.check_network_list(conflist, rt)
