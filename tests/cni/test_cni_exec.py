"""The executor with Debian's reference plugins and ours, in real namespaces, per CNI version."""
from __future__ import annotations

import json
import os
import sys

import pytest
from click.testing import CliRunner

from netbind.cli import cli
from netbind.cni import CNIError
from netbind.cni.exec import CNIExecutor, PluginError, RuntimeConf, nad_conflist, normalize_conflist
from netbind.testing import require
from netbind.testing.netns import create_netns, delete_netns, ip

DEBIAN_CNI = "/usr/lib/cni"
OUR_BIN = os.path.dirname(sys.executable)
PASST = "netbind-cni-passt-binding"
SYSCTLS = ("net.ipv4.ip_unprivileged_port_start", "net.ipv4.ping_group_range")
DEBIAN_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]  # containernetworking-plugins 1.1.1


@pytest.fixture
def debian_plugins():
    require("Debian's containernetworking-plugins", os.path.isfile(f"{DEBIAN_CNI}/ptp"),
            "apt-get install containernetworking-plugins (make test does)")


@pytest.fixture
def executor(tmp_path, netns_pair, debian_plugins):
    return CNIExecutor([DEBIAN_CNI, OUR_BIN], tmp_path / "cache", timeout=30,
                       plugin_netns=netns_pair.node.name)


def ptp_passt(tmp_path, version, subnet="10.231.0.0/24"):
    return {
        "cniVersion": version, "name": "nb-podnet",
        "plugins": [
            {"type": "ptp", "mtu": 1400,
             "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
                      "ranges": [[{"subnet": subnet}]], "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": PASST, "dataDir": str(tmp_path / "passt"),
             "args": {"cni": {"logicNetworkName": "default"}}},
        ],
    }


def snapshot(pair, tmp_path) -> dict:
    """Everything a chained run may touch: links, addresses, routes, sysctls, leases, root links."""
    def ns_state(ns):
        links = sorted((l["ifname"], l.get("address"), l.get("mtu"), l.get("linkinfo", {}).get("info_kind"))
                       for l in ns.links())
        # IPv6 link-local addresses and their routes come and go with the kernel's addrconf
        # timing on links that are up, not with anything a plugin does: leave them out
        addrs = sorted((a["ifname"], i["local"], i["prefixlen"])
                       for a in json.loads(ns.ip("-j", "addr", "show").stdout)
                       for i in a.get("addr_info", []) if not i["local"].startswith("fe80:"))
        routes = sorted((r.get("dst"), r.get("gateway"), r.get("dev"), r.get("table"))
                        for r in json.loads(ns.ip("-j", "route", "show", "table", "all").stdout)
                        if not str(r.get("dst", "")).startswith(("fe80:", "ff00:")))
        return links, addrs, routes, {k: ns.sysctl(k) for k in SYSCTLS}

    leases = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "ipam").rglob("*")
                    if p.is_file() and p.name[0].isdigit()) if (tmp_path / "ipam").exists() else []
    return {"node": ns_state(pair.node), "pod": ns_state(pair.pod), "leases": leases}


def link_names(ns) -> set[str]:
    return {l["ifname"] for l in ns.links()}


def root_links() -> set[str]:
    # not compared wholesale: other test suites on the machine add links there concurrently
    return {l["ifname"] for l in json.loads(ip("-j", "link", "show").stdout)}


@pytest.mark.parametrize("version", DEBIAN_VERSIONS)
def test_ptp_host_local_then_passt_then_del_leaves_everything_as_before(
        version, executor, netns_pair, tmp_path):
    conf = ptp_passt(tmp_path, version)
    before = snapshot(netns_pair, tmp_path)
    rt = RuntimeConf("nb-cid-1", netns_pair.pod.path, "eth1")
    result = executor.add_network_list(conf, rt)

    assert result["cniVersion"] == version
    host_side = [i["name"] for i in result["interfaces"] if not i.get("sandbox")]
    assert host_side and link_names(netns_pair.node) >= set(host_side)
    assert not root_links() & set(host_side)  # plugins ran in the node namespace
    ips = result["ips"]
    assert ips[0]["address"].startswith("10.231.0.")
    pod_addrs = netns_pair.pod.ip("-j", "addr", "show", "eth1").stdout
    assert ips[0]["address"].split("/")[0] in pod_addrs
    assert netns_pair.pod.sysctl("net.ipv4.ip_unprivileged_port_start") == "0"
    assert executor.cached_result(conf, rt) == result
    if version >= "0.4.0":
        executor.check_network_list(conf, rt)
    else:
        with pytest.raises(CNIError, match="does not support CHECK"):
            executor.check_network_list(conf, rt)

    executor.del_network_list(conf, rt)
    assert snapshot(netns_pair, tmp_path) == before
    assert executor.cached_result(conf, rt) is None
    executor.del_network_list(conf, rt)  # DEL is idempotent


def test_bridge_and_macvlan_reference_plugins(executor, netns_pair, tmp_path):
    """Our executor runs other main plugins as libcni would (0.4.0 and 1.0.0 results)."""
    ipam = {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
            "ranges": [[{"subnet": "10.232.0.0/24"}]]}
    before = snapshot(netns_pair, tmp_path)
    bridge = {"cniVersion": "0.4.0", "name": "nb-br", "type": "bridge", "bridge": "nb-br0",
              "isGateway": True, "ipam": ipam}
    macvlan = {"cniVersion": "1.0.0", "name": "nb-mv", "type": "macvlan",
               "master": netns_pair.node_veth, "mode": "bridge", "ipam": ipam}
    rt1 = RuntimeConf("nb-c1", netns_pair.pod.path, "br1")
    rt2 = RuntimeConf("nb-c1", netns_pair.pod.path, "mv1")
    assert executor.add_network_list(bridge, rt1)["interfaces"][0]["name"] == "nb-br0"
    assert executor.add_network_list(macvlan, rt2)["interfaces"][0]["name"] == "mv1"
    executor.check_network_list(bridge, rt1)
    executor.check_network_list(macvlan, rt2)
    executor.del_network_list(macvlan, rt2)
    executor.del_network_list(bridge, rt1)
    netns_pair.node.ip("link", "del", "nb-br0")  # the bridge plugin never deletes its bridge
    assert snapshot(netns_pair, tmp_path) == before


def test_failing_add_undoes_the_plugins_that_ran(executor, netns_pair, tmp_path):
    conf = ptp_passt(tmp_path, "1.0.0")
    conf["plugins"].append({"type": "tuning", "sysctl": {"net.nope.does_not_exist": "1"}})
    before = snapshot(netns_pair, tmp_path)
    rt = RuntimeConf("nb-cid-f", netns_pair.pod.path, "eth1")
    with pytest.raises(PluginError) as failure:
        executor.add_network_list(conf, rt)
    assert failure.value.plugin == "tuning" and failure.value.command == "ADD"
    assert snapshot(netns_pair, tmp_path) == before
    assert executor.cached_result(conf, rt) is None


def test_second_add_and_missing_netns_and_unknown_plugin(executor, netns_pair, tmp_path):
    conf = ptp_passt(tmp_path, "1.0.0")
    rt = RuntimeConf("nb-cid-2", netns_pair.pod.path, "eth1")
    executor.add_network_list(conf, rt)
    with pytest.raises(CNIError, match="already attached") as again:
        executor.add_network_list(conf, rt)
    assert again.value.code == 4
    executor.del_network_list(conf, rt)
    with pytest.raises(CNIError, match="does not exist") as gone:
        executor.add_network_list(conf, RuntimeConf("c", "/run/netns/nb-nope", "eth1"))
    assert gone.value.code == 3
    with pytest.raises(PluginError, match="failed to find plugin 'nb-missing'"):
        executor.add_network_list({"cniVersion": "1.0.0", "name": "x", "type": "nb-missing"},
                                  RuntimeConf("c", netns_pair.pod.path, "eth1"))


def test_check_without_cached_result(executor, netns_pair, tmp_path):
    with pytest.raises(CNIError, match="no cached ADD result"):
        executor.check_network_list(ptp_passt(tmp_path, "1.0.0"),
                                    RuntimeConf("nb-c", netns_pair.pod.path, "eth1"))


@pytest.fixture
def other_pod():
    ns = create_netns()
    try:
        yield ns
    finally:
        delete_netns(ns)


def test_version_1_1_status_and_gc(executor, netns_pair, other_pod, tmp_path):
    """Our plugins speak 1.1.0: cniVersions picks it; GC DELs stale cached attachments."""
    conf = {"cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0", "9.9.9"], "name": "nb-passt",
            "plugins": [{"type": PASST, "dataDir": str(tmp_path / "passt")}]}
    assert normalize_conflist(conf)["cniVersion"] == "1.1.0"
    executor.status_network_list(conf)
    keep = RuntimeConf("nb-keep", other_pod.path, "eth0")   # not the plugins' own (node) namespace
    stale = RuntimeConf("nb-stale", netns_pair.pod.path, "eth0")
    assert executor.add_network_list(conf, keep) == {"cniVersion": "1.1.0"}
    executor.add_network_list(conf, stale)
    executor.gc_network_list(conf, [{"containerID": "nb-keep", "ifname": "eth0"}])
    assert netns_pair.pod.sysctl("net.ipv4.ip_unprivileged_port_start") == "1024"
    assert other_pod.sysctl("net.ipv4.ip_unprivileged_port_start") == "0"
    assert executor.cached_result(conf, stale) is None
    executor.check_network_list(conf, keep)
    executor.del_network_list(conf, keep)
    assert other_pod.sysctl("net.ipv4.ip_unprivileged_port_start") == "1024"


def test_per_plugin_timeout(tmp_path, netns, debian_plugins):
    slow = tmp_path / "bin" / "nb-slow"
    slow.parent.mkdir()
    slow.write_text("#!/bin/sh\nsleep 5\n")  # a stand-in below a unit test of the timeout logic
    slow.chmod(0o755)
    executor = CNIExecutor([str(slow.parent)], tmp_path / "cache", timeouts={"nb-slow": 0.3})
    with pytest.raises(PluginError, match="timed out after 0.3 s") as exc:
        executor.add_network_list({"cniVersion": "1.0.0", "name": "s", "type": "nb-slow"},
                                  RuntimeConf("c", netns.path, "eth0"))
    assert exc.value.code == 11


def test_delegate_nad_injects_cni_args_like_multus(executor, netns_pair, tmp_path):
    nad = json.dumps({"cniVersion": "1.0.0", "name": "netbindingpasst",
                      "plugins": [{"type": PASST, "dataDir": str(tmp_path / "passt"),
                                   "logFile": str(tmp_path / "passt.log")}]})
    assert nad_conflist(nad, {"logicNetworkName": "blue"})["plugins"][0]["args"] == {
        "cni": {"logicNetworkName": "blue"}}
    result = executor.delegate_nad(nad, "net1", {"logicNetworkName": "blue"},
                                   netns_pair.pod.path, "nb-cid-nad", pod_namespace="default",
                                   pod_name="virt-launcher-x")
    assert result == {"cniVersion": "1.0.0"}  # no interfaces: net1 must not show up
    assert "setup for logical network blue completed successfully" in (
        tmp_path / "passt.log").read_text()
    executor.undelegate_nad(nad, "net1", {"logicNetworkName": "blue"}, netns_pair.pod.path,
                            "nb-cid-nad")
    assert netns_pair.pod.sysctl("net.ipv4.ip_unprivileged_port_start") == "1024"
    with pytest.raises(CNIError, match="empty spec.config"):
        nad_conflist("  ", {})


def test_cli_add_check_del_and_bad_input(netns, tmp_path):
    config = tmp_path / "passt.json"
    config.write_text(json.dumps({"cniVersion": "1.0.0", "name": "nb-cli", "type": PASST,
                                  "dataDir": str(tmp_path / "passt")}))
    common = ["--netns", netns.name, "--ifname", "eth0", "--config", str(config),
              "--cni-path", OUR_BIN, "--cache-dir", str(tmp_path / "cache")]
    runner = CliRunner()
    added = runner.invoke(cli, ["cni", "add", *common])
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout) == {"cniVersion": "1.0.0"}
    assert netns.sysctl("net.ipv4.ip_unprivileged_port_start") == "0"
    assert runner.invoke(cli, ["cni", "check", *common]).exit_code == 0
    again = runner.invoke(cli, ["cni", "add", *common])
    assert again.exit_code == 1 and "already attached" in again.output
    assert runner.invoke(cli, ["cni", "del", *common]).exit_code == 0
    assert netns.sysctl("net.ipv4.ip_unprivileged_port_start") == "1024"

    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    for args, fragment in (
        (["--netns", "nb-does-not-exist", "--config", str(config)], "--netns"),
        (["--netns", netns.name, "--config", str(bad)], "not valid JSON"),
        (["--netns", netns.name, "--config", str(tmp_path / "missing.json")], "cannot read"),
        (["--netns", netns.name, "--config", str(config), "--args", "novalue"], "KEY=VALUE"),
    ):
        out = runner.invoke(cli, ["cni", "add", *args, "--cache-dir", str(tmp_path / "cache")])
        assert out.exit_code == 2, out.output
        assert fragment in out.output and "Traceback" not in out.output
