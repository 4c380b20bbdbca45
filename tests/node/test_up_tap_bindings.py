"""`netbind up` (root) with the tap-based bindings of issue 6: managedTap (virt-handler's bridge +
tap + dummy, the address from the network's own DHCP) and netbind's bridge binding plugin (CNI +
sidecar with netbind.dhcp). Real namespaces, CNI, sidecar process, libvirtd and the tiny guest; the
`run` fixture ends each test with the leak check of test_up."""
from __future__ import annotations

import json
import subprocess

from netbind import _iproute as iproute
from netbind.api.loading import load_manifests
from netbind.node import handler, multus, netcheck, runtime

from .conftest import wait_for_reports
from .test_up import EXAMPLES, _console, _interface, _reports, run  # noqa: F401  (the fixture)


def _group_name(gid: int) -> str | int:
    import grp

    try:
        return grp.getgrgid(gid).gr_name   # iproute2 prints a known group by name
    except KeyError:
        return gid


def _links(netns: str) -> dict[str, dict]:
    return {l["ifname"]: l for l in json.loads(iproute.ip("-j", "-d", "link", "show", netns=netns))}


def _sysctl(netns: str, key: str) -> str:
    return subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-n", key], capture_output=True, text=True,
                          check=True).stdout.strip()


def _global_addresses(netns: str, link: str) -> set[str]:
    shown = json.loads(iproute.ip("-j", "addr", "show", "dev", link, netns=netns))
    return {f"{a['local']}/{a['prefixlen']}" for a in shown[0].get("addr_info", []) if a["scope"] == "global"}


def test_managedtap_vm_leases_its_pod_address_from_the_upstream_dhcp(run):
    node = run.node()
    server = netcheck.start_server(node.netns, multus.WORLD_ADDRESS, 9000, run.runtime / "node" / "server.log")
    try:
        result = run.up(load_manifests([EXAMPLES / "managedtap"]), guest_args=(f"nb.probe={multus.WORLD_ADDRESS}:9000",))
        netns = result.pod.netns
        status = json.loads((result.pod.names.directory / "network-status.json").read_text())
        pod_ip, gateway = status[0]["ips"][0], status[0]["gateway"][0]

        # virt-handler's layout (spec section 8)
        links = _links(netns)
        bridge, port, tap, dummy = links["k6t-eth0"], links["eth0-nic"], links["tap0"], links["eth0"]
        assert port["master"] == "k6t-eth0" and tap["master"] == "k6t-eth0"
        assert port["address"] == bridge["address"] != dummy["address"]
        assert tap["linkinfo"]["info_data"]["user"] == 107 and tap["linkinfo"]["info_data"]["group"] in (107, _group_name(107))
        assert tap["mtu"] == dummy["mtu"] == port["mtu"]
        assert _global_addresses(netns, "eth0") == {f"{pod_ip}/24"} and not _global_addresses(netns, "eth0-nic")
        assert _sysctl(netns, "net.ipv6.conf.eth0-nic.disable_ipv6") == "1"
        assert _sysctl(netns, "net.ipv4.conf.all.arp_ignore") == "1"
        assert any("bridge with no ports" in s for s in result.substitutions)   # no dummy driver here

        # the domain has the tap with the dummy's (the original pod) MAC; the guest leased from upstream
        domain = (result.pod.names.directory / "domain.xml").read_text()
        assert '<target dev="tap0" managed="no"/>' in domain and f'<mac address="{dummy["address"]}"/>' in domain
        lease = next(r for r in _reports(result) if r.word == "LEASE")
        assert (lease.fields["ip"], lease.fields["router"], lease.fields["serverid"], lease.fields["mac"]) == \
            (pod_ip, gateway, gateway, dummy["address"])
        state = runtime.load_state(result.pod)
        counters = handler.read_counters(state["managedTap"][0]["counters"])
        assert counters.get("v4.received", 0) >= 2 and counters.get("v4.answered", 0) >= 2   # OFFER + ACK
        # the guest's own traffic crosses the bridge onto the pod network, as the pod's address
        reports = wait_for_reports(_console(result), lambda rs: any(r.word == "PROBE" for r in rs), timeout=20)
        assert next(r for r in reports if r.word == "PROBE").fields["ok"] == "yes"
        assert [line.rsplit(" from ", 1)[0] for line in server.seen()] == [f"from {pod_ip}: nb-probe"]   # as the pod
        assert _interface(runtime.current_vmi(result.pod), "default")["ipAddress"] == pod_ip
    finally:
        server.stop()


def test_bridge_plugin_vm_gets_the_pod_address_from_the_sidecar(run):
    result = run.up(load_manifests([EXAMPLES / "bridge-plugin"]))
    netns = result.pod.netns
    status = json.loads((result.pod.names.directory / "network-status.json").read_text())
    pod_ip, gateway = status[0]["ips"][0], status[0]["gateway"][0]
    links = _links(netns)
    lease = next(r for r in _reports(result) if r.word == "LEASE")
    # the sidecar's DHCP on the in-pod bridge (server identifier: the bridge's link-local)
    assert (lease.fields["ip"], lease.fields["router"], lease.fields["serverid"], lease.fields["mac"]) == \
        (pod_ip, gateway, "169.254.75.10", links["eth0"]["address"])
    assert lease.fields["mtu"] == str(links["eth0"]["mtu"])
    domain = (result.pod.names.directory / "domain.xml").read_text()
    assert domain.count('alias name="ua-default"') == 1 and '<target dev="tap0" managed="no"/>' in domain
    assert not any("not idempotent" in s for s in result.substitutions)
    assert "v4 ACK" in (result.pod.names.logs_dir / "hook-sidecar-0.log").read_text()
    assert _interface(runtime.current_vmi(result.pod), "default")["ipAddress"] == pod_ip
    assert links["eth0-nic"]["master"] == "k6t-eth0"


def test_bridge_plugin_in_dual_stack_gives_ipv4_and_an_ipv6_address_and_default_route(run):
    import ipaddress

    pod_network = multus.default_pod_network(run.runtime / "node" / "ipam")
    ipam = pod_network["plugins"][0]["ipam"]
    ipam["ranges"].append([{"subnet": "fd00:10:244::/64", "gateway": "fd00:10:244::1"}])
    ipam["routes"].append({"dst": "::/0"})
    result = run.up(load_manifests([EXAMPLES / "bridge-plugin"]), pod_network=pod_network)
    status = json.loads((result.pod.names.directory / "network-status.json").read_text())
    ips = status[0]["ips"]
    assert len(ips) == 2 and ipaddress.ip_address(ips[1]).version == 6
    reports = wait_for_reports(_console(result), lambda rs: any(r.word == "ADDR6" for r in rs), timeout=20)
    lease = next(r for r in reports if r.word == "LEASE")
    assert lease.fields["ip"] == ips[0]
    addr6 = next(r for r in reports if r.word == "ADDR6")
    assert ipaddress.ip_address(addr6.fields["ip"]) in ipaddress.ip_network("fd00:10:244::/64")
    # the default route points at the pod network's real router (the node's bridge), not into the pod
    node_bridge = next(a["local"] for a in json.loads(iproute.ip("-j", "-6", "addr", "show", "dev", "nb-br0",
                                                                netns=run.node_netns))[0]["addr_info"]
                       if a.get("scope") == "link")
    assert addr6.fields["router"] == node_bridge
    assert any("router advertisements" in s for s in result.substitutions)
    sidecar_log = (result.pod.names.logs_dir / "hook-sidecar-0.log").read_text()
    assert "serving DHCPv4/DHCPv6 on k6t-eth0" in sidecar_log
