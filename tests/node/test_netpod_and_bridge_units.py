"""Pure parts of the tap layouts and the bridge binding sidecar (no privileges needed)."""
from __future__ import annotations

import json

import pytest

from netbind import netpod
from netbind.domain import Domain
from netbind.hooks import HookError
from netbind.plugins.bridge import sidecar

POD = netpod.PodLinkState("eth0", "0a:58:0a:f4:00:0a", 1400, True, ("10.244.0.10/24", "fd00::a/64"),
                          (netpod.Route(4, "default", "10.244.0.1"),), "0", "0")


def _args(steps, action="ip"):
    return [" ".join(s.args) for s in steps if s.action == action]


def test_managed_tap_layout_follows_kubevirt():
    steps = netpod.compose(POD, netpod.Layout("k6t-eth0", "eth0-nic", "tap0", dummy="dummy"))
    ip = _args(steps)
    assert not [a for a in ip if a.startswith("addr add") and "k6t-eth0" in a]      # managedTap: bridge has no IP
    assert "link set eth0 name eth0-nic" in ip and "link set eth0-nic master k6t-eth0" in ip
    assert "tuntap add dev tap0 mode tap user 107 group 107" in ip                     # single queue, non-root
    assert "link add eth0 address 0a:58:0a:f4:00:0a mtu 1400 type dummy" in ip
    assert {"addr add 10.244.0.10/24 dev eth0", "addr add fd00::a/64 dev eth0 nodad"} <= set(ip)
    assert ("net.ipv4.conf.all.arp_ignore", "1") in [s.args for s in steps if s.action == "sysctl"]
    # the name is free for the dummy only after the rename
    assert ip.index("link set eth0 name eth0-nic") < ip.index("link add eth0 address 0a:58:0a:f4:00:0a mtu 1400 type dummy")


def test_bridge_binding_layout_options():
    v6_only = netpod.PodLinkState("eth0", "0a:58:0a:f4:00:0a", 1500, True, ("fd00::a/64",), (), "0", "0")
    steps = netpod.compose(v6_only, netpod.Layout("k6t-eth0", "eth0-nic", "tap0", queues=4, owner=0,
                                                  bridge_address=netpod.BRIDGE_LINK_LOCAL, dummy="bridge"))
    ip = _args(steps)
    assert "addr add 169.254.75.10/32 dev k6t-eth0" in ip
    assert "tuntap add dev tap0 mode tap user 0 group 0 multi_queue" in ip
    assert not [s for s in steps if s.args == ("net.ipv4.conf.all.arp_ignore", "1")]   # no IPv4: no arp_ignore
    assert netpod.PodLinkState.from_json(json.loads(json.dumps(POD.to_json()))) == POD


def test_sidecar_serves_the_handed_off_configuration():
    handoff = sidecar.Handoff("eth0", "0a:58:0a:f4:00:0a", 1400, ("10.244.0.10/24", "fd00::a/64"),
                              ("10.244.0.1", "fd00::1"))
    config = sidecar.server_config({"name": "default"}, handoff, "vm1", ["10.96.0.10", "fd00::53"], ["svc.local"])
    assert config["interface"] == "k6t-eth0" and config["client_mac"] == "0a:58:0a:f4:00:0a"
    assert config["v4"] == {"address": "10.244.0.10/24", "server_address": "169.254.75.10", "router": "10.244.0.1",
                            "mtu": 1400, "dns": ["10.96.0.10"], "search": ["svc.local"], "hostname": "vm1"}
    assert config["v6"] == {"address": "fd00::a/64", "dns": ["fd00::53"], "search": ["svc.local"]}
    assert "ra" not in config      # RAs come from the network's router (see the module doc)
    with_mac = sidecar.server_config({"name": "default", "macAddress": "02:AA:00:00:00:01"}, handoff, "vm1", [], [])
    assert with_mac["client_mac"] == "02:aa:00:00:00:01"
    from netbind.dhcp.config import build
    build(config)   # valid for the server


def test_sidecar_domain_interface_is_idempotent_and_hand_off_errors_are_clear(tmp_path):
    handoff = sidecar.Handoff("pod1234567890a", "0a:58:0a:f4:00:0a", 1400, ("10.0.0.2/24",), ())
    domain = Domain.parse("<domain type='kvm'><devices/></domain>")
    for _ in range(2):
        domain.put_interface(sidecar.build_interface({"name": "blue", "model": "e1000"}, handoff, False))
    xml = domain.to_bytes().decode()
    assert xml.count("<interface") == 1 and 'dev="tap1234567890a"' in xml and 'managed="no"' in xml
    assert 'type="e1000"' in xml and 'size="1400"' in xml and 'name="ua-blue"' in xml
    (tmp_path / "eth0").mkdir()
    (tmp_path / "eth0" / "ifalias").write_text("set by someone else\n")
    with pytest.raises(HookError, match="not the CNI's hand-off"):
        sidecar.read_handoff("eth0", tmp_path)
    with pytest.raises(HookError, match="did the bridge binding CNI run"):
        sidecar.read_handoff("eth1", tmp_path)
