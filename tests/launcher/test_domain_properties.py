"""Invariants of domain attachment (hypothesis) and the failure cases KubeVirt panics on."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st
from lxml import etree

from netbind.api.models import KubeVirtConfiguration, VirtualMachineInstance
from netbind.api.versions import LATEST, V1_4
from netbind.gocompat import mac_string, normalize_mac, parse_mac
from netbind.launcher._gonet import quantity_bytes, quantity_value
from netbind.launcher.domain import (
    DomainAttachmentError, PodLink, build_domain, derive_pod_links, derived_mac,
)
from netbind.launcher.goxml import element, marshal_indent
from netbind.naming import hashed_interface_name

REGISTRY = {"network": {"binding": {
    "mtap": {"domainAttachmentType": "managedTap"},
    "macvtap": {"domainAttachmentType": "tap"},
    "passt": {"sidecarImage": "quay.io/kubevirt/network-passt-binding:v1.7.0"},
}}}
TAP_LIKE = ("mtap", "macvtap", "masquerade", "bridge")  # get a core <interface>


def _vmi(interfaces, networks, **devices) -> VirtualMachineInstance:
    return VirtualMachineInstance.model_validate({
        "metadata": {"name": "vm", "namespace": "ns", "uid": "u-1"},
        "spec": {"domain": {"resources": {"requests": {"memory": "1Gi"}},
                            "devices": {"interfaces": interfaces, **devices}},
                 "networks": networks}})


def _iface(name: str, kind: str, **extra) -> dict:
    if kind in ("masquerade", "bridge", "sriov"):
        return {"name": name, kind: {}, **extra}
    return {"name": name, "binding": {"name": kind}, **extra}


_KINDS = st.sampled_from(["mtap", "macvtap", "passt", "masquerade", "bridge", "sriov"])


@st.composite
def vmis(draw):
    count = draw(st.integers(1, 6))
    names = draw(st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True), min_size=count,
                          max_size=count, unique=True))
    interfaces, networks = [], []
    for i, name in enumerate(names):
        kind = draw(_KINDS)
        extra = {}
        if draw(st.booleans()):
            extra["macAddress"] = draw(st.sampled_from(["02:AB:cd:00:00:01", "02-00-00-00-00-7f", "0a:58:0a:f4:00:09"]))
        if draw(st.booleans()):
            extra["bootOrder"] = draw(st.integers(1, 9))
        state = draw(st.sampled_from([None, "absent", "down"]))
        if state:
            extra["state"] = state
        interfaces.append(_iface(name, kind, **extra))
        networks.append({"name": name, "pod": {}} if i == 0 else {"name": name, "multus": {"networkName": "nad-" + name}})
    return _vmi(interfaces, networks)


@settings(max_examples=150, deadline=None)
@given(vmis(), st.sampled_from([LATEST, V1_4]))
def test_each_core_attached_interface_gets_exactly_one_interface(vmi, profile):
    config = KubeVirtConfiguration.model_validate(REGISTRY)
    links = derive_pod_links(vmi, config, profile=profile)
    result = build_domain(vmi, config, links, profile=profile)  # derived links never make phase 2 fail
    domain = etree.fromstring(result.domain_xml.encode())
    aliases = [el.get("name") for el in domain.findall("devices/interface/alias")]
    expected = [f"ua-{i.name}" for i in vmi.spec.interfaces
                if i.state != "absent" and (i.binding.name if i.binding else i.core_binding) in TAP_LIKE]
    assert aliases == expected  # one each, in interface order; none for sidecar-only/SR-IOV/absent
    by_name = {link.name: link for link in links}
    for el in domain.findall("devices/interface"):
        name = el.find("alias").get("name")[3:]
        iface = vmi.spec.interface(name)
        assert el.get("type") == "ethernet"
        assert el.find("target").get("managed") == "no"
        target = el.find("target").get("dev")
        assert target in by_name
        mac = el.find("mac").get("address")
        pod_iface = "eth0" if name == vmi.spec.network_list[0].name else hashed_interface_name(name)
        assert mac == (normalize_mac(iface.mac_address) if iface.mac_address else by_name[pod_iface].mac)
        assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac)
        assert el.find("mtu").get("size") == "1500"
        assert (el.find("rom") is None) == (iface.boot_order is not None)
        has_link_down = el.find("link") is not None
        assert has_link_down == (iface.state == "down" and profile is LATEST)
    assert len(result.interfaces_xml) == len(expected)
    assert "/>" not in result.domain_xml  # Go never self-closes


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=6, max_size=6) | st.binary(min_size=8, max_size=8) | st.binary(min_size=20, max_size=20),
       st.sampled_from([":", "-", "."]), st.booleans())
def test_mac_normalization_like_go(address, separator, upper):
    canonical = mac_string(address)
    if separator == ".":
        hexes = address.hex()
        text = ".".join(hexes[i:i + 4] for i in range(0, len(hexes), 4))
    else:
        text = canonical.replace(":", separator)
    if upper:
        text = text.upper()
    assert parse_mac(text) == address
    assert normalize_mac(text) == canonical == canonical.lower()


@pytest.mark.parametrize("bad", ["", "02:00:00:00:00", "02:00:00:00:00:0g", "02:00-00:00:00:00",
                                 "0200.0000.00", "02:00:00:00:00:00:00", "020000000000", " 02:00:00:00:00:00"])
def test_invalid_macs_rejected(bad):
    with pytest.raises(ValueError):
        parse_mac(bad)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), max_codepoint=0xFFFD)))
def test_go_escaping_round_trips(text):
    # lxml refuses control characters Go would replace; only XML characters are tested
    text = "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)
    out = marshal_indent(element("a", [("v", text)], element("b", text=text)))
    parsed = etree.fromstring(out.encode())
    assert parsed.get("v") == text and (parsed.find("b").text or "") == text
    assert "/>" not in out


def test_quantities():
    assert quantity_bytes("128Mi") == 134217728
    assert quantity_bytes("1024M") == 1024 * 10**6
    assert quantity_bytes("1e3") == 1000
    assert quantity_value("500m") == 1 and quantity_value("2") == 2
    with pytest.raises(ValueError):
        quantity_bytes("12 parsecs")


# --- what KubeVirt does when phase 2 cannot find what it needs --------------------------------------------


def _managed_tap_vmi(**iface_extra):
    return _vmi([_iface("default", "mtap", **iface_extra)], [{"name": "default", "pod": {}}])


def test_missing_pod_link_is_a_clear_error_not_a_crash():
    config = KubeVirtConfiguration.model_validate(REGISTRY)
    with pytest.raises(DomainAttachmentError) as caught:
        build_domain(_managed_tap_vmi(), config, [PodLink("tap0", "02:00:00:00:00:01")])
    err = caught.value
    assert err.panics and "log.Critical" in err.kubevirt and err.interface == "default"
    assert "eth0" in err.message and "CNI" in err.message
    assert err.link_lookups == ["eth0", "eth0", ""]  # hashed, ordinal, then the generator's empty name
    assert "<target" not in err.partial.interfaces_xml[0]


def test_unparseable_pod_link_mac_is_reported_with_its_source():
    config = KubeVirtConfiguration.model_validate(REGISTRY)
    with pytest.raises(DomainAttachmentError, match="MAC of pod link eth0"):
        build_domain(_managed_tap_vmi(), config, [PodLink("eth0", "not-a-mac")])


def test_tap_plugin_targets_the_pod_interface_when_no_tap_exists():
    config = KubeVirtConfiguration.model_validate(REGISTRY)
    vmi = _vmi([_iface("default", "masquerade"), _iface("blue", "macvtap")],
               [{"name": "default", "pod": {}}, {"name": "blue", "multus": {"networkName": "macvtap-nad"}}])
    links = derive_pod_links(vmi, config)
    assert [link.name for link in links] == ["eth0", "tap0", "pod16477688c0e"]
    result = build_domain(vmi, config, links)
    assert '<target dev="pod16477688c0e" managed="no"></target>' in result.interfaces_xml[1]
    assert f'<mac address="{derived_mac(vmi, "pod16477688c0e")}"></mac>' in result.interfaces_xml[1]


def test_derived_links_are_deterministic_and_locally_administered():
    config = KubeVirtConfiguration.model_validate(REGISTRY)
    vmi = _vmi([_iface("default", "mtap"), _iface("sec", "passt"), _iface("sr", "sriov")],
               [{"name": "default", "pod": {}}, {"name": "sec", "multus": {"networkName": "n"}},
                {"name": "sr", "multus": {"networkName": "sriov"}}])
    links = derive_pod_links(vmi, config)
    assert [link.name for link in links] == ["eth0", "tap0", "podadd93534eeb"]
    assert links == derive_pod_links(vmi, config)
    assert all(int(link.mac[:2], 16) & 0b11 == 0b10 and link.mtu == 1500 for link in links)
    assert len({link.mac for link in links}) == len(links)


def test_uncovered_vmi_parts_are_reported():
    config = KubeVirtConfiguration.model_validate(REGISTRY)
    vmi = _vmi([_iface("passtnet", "passt")], [{"name": "passtnet", "pod": {}}],
               rng={})
    vmi.spec.domain.clock = {"utc": {}}
    result = build_domain(vmi, config, derive_pod_links(vmi, config))
    assert result.interfaces_xml == []  # the passt sidecar adds it
    assert "spec.domain.clock" in result.uncovered  # disks are converted now: tests/storage
    assert '<rng model="virtio-non-transitional">\n\t\t\t<backend model="random">/dev/urandom</backend>' \
        in result.domain_xml
