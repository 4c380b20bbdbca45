"""The bridge binding CNI in real namespaces (root): KubeVirt's bridge layout, the hand-off to the
sidecar, and a DEL that puts the pod back exactly as ADD found it."""
from __future__ import annotations

import json
import subprocess

import pytest

from netbind.cni import CNIError
from netbind.testing.cni import cmd_add, cmd_check, cmd_del, with_prev_result

PLUGIN = "netbind-cni-bridge-binding"


def conf(tmp_path, **extra):
    return {"cniVersion": "1.0.0", "name": "netbind-bridge-binding", "type": PLUGIN,
            "dataDir": str(tmp_path / "state"), **extra}


@pytest.fixture
def pod(netns_pair):
    """A pod as a dual-stack pod network leaves it: eth0 with IPv4 + IPv6, default routes."""
    ns = netns_pair.pod
    ns.ip("link", "set", netns_pair.pod_veth, "down")
    ns.ip("link", "set", netns_pair.pod_veth, "name", "eth0")
    ns.ip("link", "set", "eth0", "mtu", "1450", "up")
    ns.ip("addr", "add", "10.88.0.7/24", "dev", "eth0")
    ns.ip("addr", "add", "fd00:88::7/64", "dev", "eth0", "nodad")
    ns.ip("route", "add", "default", "via", "10.88.0.1", "proto", "boot")
    ns.ip("-6", "route", "add", "default", "via", "fd00:88::1")
    ns.ip("route", "add", "10.99.0.0/16", "via", "10.88.0.254")
    return netns_pair


# carrier flags follow the peer's and the bridge's state a moment later: not what the plugin set
_OPERATIONAL = ("LOWER_UP", "NO-CARRIER")


def snapshot(ns) -> dict:
    """Everything of the pod's network a container would notice (counters and operstate aside)."""
    def j(*args):
        return json.loads(ns.ip("-j", *args).stdout or "[]")

    def sysctl(key):
        return subprocess.run(["ip", "netns", "exec", ns.name, "sysctl", "-n", key], capture_output=True,
                              text=True, check=True).stdout.strip()

    links = sorted((l["ifname"], l.get("address"), l["mtu"], l.get("master"), l.get("ifalias"),
                    tuple(f for f in l["flags"] if f not in _OPERATIONAL), l.get("linkinfo", {}).get("info_kind"))
                   for l in j("-d", "link", "show"))
    addrs = sorted((a["ifname"], x["local"], x["prefixlen"], x["scope"]) for a in j("addr", "show")
                   for x in a.get("addr_info", []))
    routes = [sorted(json.dumps(r, sort_keys=True) for r in j(f"-{v}", "route", "show", "table", "main"))
              for v in (4, 6)]
    sysctls = {k: sysctl(k) for k in ("net.ipv4.conf.all.arp_ignore", "net.ipv4.ip_unprivileged_port_start",
                                      "net.ipv6.conf.eth0.disable_ipv6")}
    return {"links": links, "addrs": addrs, "routes": routes, "sysctls": sysctls}


def link(ns, name):
    return next((l for l in json.loads(ns.ip("-j", "-d", "link", "show").stdout) if l["ifname"] == name), None)


def test_add_builds_the_bridge_layout_and_del_restores_the_pod_exactly(pod, tmp_path):
    ns, nc = pod.pod, conf(tmp_path)
    kw = dict(netns=ns.path, ifname="net1", plugin_netns=pod.node.name,
              cni_args="IgnoreUnknown=1;K8S_POD_NAME=virt-launcher-x")
    before = snapshot(ns)
    eth0 = link(ns, "eth0")
    nc_args = {**nc, "args": {"cni": {"logicNetworkName": "default"}}}
    result = cmd_add(PLUGIN, nc_args, **kw)
    assert result.interfaces == [] and result.ips == []      # no pod interface of its own in network-status

    bridge, port, tap, dummy = (link(ns, n) for n in ("k6t-eth0", "eth0-nic", "tap0", "eth0"))
    assert bridge["linkinfo"]["info_kind"] == "bridge"
    assert port["master"] == "k6t-eth0" and tap["master"] == "k6t-eth0"
    assert port["address"] == bridge["address"] != eth0["address"]       # the bridge MAC on the port
    assert tap["mtu"] == 1450 and tap["linkinfo"]["info_data"]["user"] == 107
    assert (dummy["address"], dummy["mtu"]) == (eth0["address"], 1450)  # the original MAC and MTU kept
    addrs = json.loads(ns.ip("-j", "addr", "show").stdout)
    by_link = {a["ifname"]: {x["local"] for x in a.get("addr_info", []) if x["scope"] == "global"} for a in addrs}
    assert by_link["eth0"] == {"10.88.0.7", "fd00:88::7"} and not by_link["eth0-nic"]
    assert by_link["k6t-eth0"] == {"169.254.75.10"}
    ports = json.loads(subprocess.run(["ip", "netns", "exec", ns.name, "bridge", "-j", "-d", "link", "show"],
                                      capture_output=True, text=True, check=True).stdout)
    assert next(p for p in ports if p["ifname"] == "eth0-nic")["learning"] is False
    # the hand-off the sidecar reads, without privileges
    alias = subprocess.run(["ip", "netns", "exec", ns.name, "cat", "/sys/class/net/eth0/ifalias"],
                           capture_output=True, text=True, check=True).stdout
    assert json.loads(alias) == {"netbind.io/bridge-binding": 1, "mac": eth0["address"], "mtu": 1450,
                                 "ips": ["10.88.0.7/24", "fd00:88::7/64"], "gateways": ["10.88.0.1", "fd00:88::1"]}
    after = snapshot(ns)["sysctls"]
    assert after["net.ipv4.conf.all.arp_ignore"] == "1" and after["net.ipv4.ip_unprivileged_port_start"] == "0"

    cmd_check(PLUGIN, with_prev_result(nc_args, result), **kw)
    built = snapshot(ns)
    again = cmd_add(PLUGIN, nc_args, **kw)     # a repeated ADD into the same live namespace: a no-op
    assert again.interfaces == [] and snapshot(ns) == built
    cmd_del(PLUGIN, nc_args, **kw)
    assert snapshot(ns) == before
    assert not (tmp_path / "state" / "netbind-bridge-binding").exists()
    cmd_del(PLUGIN, nc_args, **kw)  # idempotent


def test_missing_pod_link_is_a_clear_error_and_changes_nothing(netns_pair, tmp_path):
    ns = netns_pair.pod
    before = snapshot_links = json.loads(ns.ip("-j", "link", "show").stdout)
    with pytest.raises(CNIError, match=r"pod link \(eth0\) is missing"):
        cmd_add(PLUGIN, conf(tmp_path), netns=ns.path, ifname="net1", plugin_netns=netns_pair.node.name)
    assert [l["ifname"] for l in json.loads(ns.ip("-j", "link", "show").stdout)] == [l["ifname"] for l in before]
    assert snapshot_links and not list((tmp_path / "state").rglob("*.json"))


def test_bad_netconf_names_the_field(pod, tmp_path):
    with pytest.raises(CNIError, match="tapOwner must be an integer"):
        cmd_add(PLUGIN, conf(tmp_path, tapOwner="qemu"), netns=pod.pod.path, ifname="net1",
                plugin_netns=pod.node.name)
    assert link(pod.pod, "k6t-eth0") is None
