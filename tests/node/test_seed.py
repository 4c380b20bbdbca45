"""NoCloud network-config (version 2 subset) compiled for the tiny guest: pure, no root."""
from __future__ import annotations

import gzip

import pytest

from netbind.node import seed
from netbind.node.seed import NicRule, NoCloudSeed, SeedError, compile_network_config


@pytest.mark.parametrize("text, rules", [
    ("version: 2\nethernets:\n  eth0: {dhcp4: true}\n", [NicRule(match_name="eth0", dhcp4=True)]),
    ("network:\n  version: 2\n  ethernets:\n    eth1: {dhcp4: true}\n", [NicRule(match_name="eth1", dhcp4=True)]),
    ("version: 2\nethernets:\n  id0:\n    match: {macaddress: '52:54:00:AA:BB:01'}\n    set-name: lan0\n"
     "    addresses: [10.0.0.5/24]\n    gateway4: 10.0.0.1\n    nameservers: {addresses: [10.0.0.53]}\n    mtu: 1400\n",
     [NicRule(match_mac="52:54:00:AA:BB:01", set_name="lan0", addresses=("10.0.0.5/24",), gateway4="10.0.0.1",
              nameservers=("10.0.0.53",), mtu=1400)]),
    ("version: 2\nethernets:\n  all:\n    match: {name: 'e*'}\n    dhcp4: true\n    dhcp6: false\n"
     "    routes: [{to: default, via: 10.1.0.1}]\n",
     [NicRule(match_name="e*", dhcp4=True, gateway4="10.1.0.1")]),
])
def test_supported_subset_compiles(text, rules):
    assert compile_network_config(text) == rules


@pytest.mark.parametrize("text, field", [
    ("version: 1\nconfig: []\n", "network-config.version"),
    ("version: 2\nbonds: {}\nethernets: {}\n", "network-config.bonds"),
    ("version: 2\nethernets:\n  eth0: {dhcp4: true, wakeonlan: true}\n", "network-config.ethernets.eth0.wakeonlan"),
    ("version: 2\nethernets:\n  eth0: {addresses: [10.0.0.5]}\n", "network-config.ethernets.eth0.addresses[0]"),
    ("version: 2\nethernets:\n  eth0: {addresses: ['fd00::5/64']}\n", "network-config.ethernets.eth0.addresses[0]"),
    ("version: 2\nethernets:\n  eth0: {gateway4: 10.0.0.300}\n", "network-config.ethernets.eth0.gateway4"),
    ("version: 2\nethernets:\n  eth0: {dhcp6: true}\n", "network-config.ethernets.eth0.dhcp6"),
    ("version: 2\nethernets:\n  eth0: {routes: [{to: 10.9.0.0/16, via: 10.0.0.1}]}\n", "network-config.ethernets.eth0.routes[0]"),
    ("version: 2\nethernets:\n  eth0: {match: {driver: virtio_net}}\n", "network-config.ethernets.eth0.match"),
    ("version: 2\nethernets:\n  'eth0; reboot': {dhcp4: true}\n", "network-config.ethernets.eth0; reboot"),
    ("version: [2\n", "network-config"),
])
def test_unsupported_or_bad_input_names_the_field(text, field):
    with pytest.raises(SeedError) as err:
        compile_network_config(text)
    assert str(err.value).startswith(field + ":")


def test_guest_config_without_network_config_is_dhcp_on_every_nic():
    text = seed.render_guest_config(NoCloudSeed.for_vmi("vm1", hostname="guest1"))
    assert text.splitlines() == ["hostname guest1", "dhcp-all"]


def _cpio_names(blob: bytes) -> list[str]:
    data, names, pos = gzip.decompress(blob), [], 0
    while True:
        assert data[pos:pos + 6] == b"070701"
        size, namesize = int(data[pos + 54:pos + 62], 16), int(data[pos + 94:pos + 102], 16)
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        if name == "TRAILER!!!":
            return names
        names.append(name)
        pos += (110 + namesize + 3) // 4 * 4
        pos += (size + 3) // 4 * 4


def test_seed_segment_carries_nocloud_files_and_kubevirt_meta_data():
    blob = seed.seed_initrd(NoCloudSeed.for_vmi("vm1", "ns1", network_config="version: 2\nethernets: {}\n"))
    names = _cpio_names(blob)
    for f in ("meta-data", "user-data", "network-config"):
        assert f"{seed.SEED_DIR}/{f}" in names
    assert seed.RULES_FILE in names
    assert b"instance-id: vm1.ns1" in gzip.decompress(blob)
