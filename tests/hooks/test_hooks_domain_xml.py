"""netbind.domain: lossless round trips, typed interface helpers, hardened parsing."""
from __future__ import annotations

import pytest

from netbind.domain import QEMU_NS, Domain, DomainXMLError, Interface, PortForward, PortRange, canonical

RICH = b"""<?xml version="1.0"?>
<!-- leading comment -->
<domain type="kvm" xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0" xmlns:x="urn:x">
  <name>vm</name>
  <memory unit="b">1</memory>
  <devices>
    <!-- keep me -->
    <emulator>/usr/bin/qemu</emulator>
    <interface type="ethernet"><alias name="placeholder-0"/><x:extra a="1">t</x:extra></interface>
    <unknownDevice foo="bar"><![CDATA[raw <data>]]></unknownDevice>
  </devices>
  <qemu:commandline><qemu:arg value="-foo"/></qemu:commandline>
  <x:custom/>
</domain>"""


def _c14n_with_comments(xml: bytes) -> bytes:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, strip_cdata=False)
    return etree.tostring(etree.fromstring(xml, parser).getroottree(), method="c14n", with_comments=True)


def test_round_trip_keeps_everything():
    """Lossless at the infoset level: comments (also outside the root), whitespace, CDATA text,
    unknown elements and all namespace declarations survive; only the serialization of empty
    elements and of the XML declaration may differ."""
    out = Domain.parse(RICH).to_bytes()
    assert _c14n_with_comments(out) == _c14n_with_comments(RICH)
    assert out.startswith(b"<?xml") and b"<!-- leading comment -->" in out
    assert b'xmlns:x="urn:x"' in out and b"<![CDATA[raw <data>]]>" in out


def test_put_interface_appends_after_existing_interfaces_then_replaces_in_place():
    domain = Domain.parse(RICH)
    iface = Interface.create("vhostuser")
    iface.alias = "ua-net"
    iface.mac = "02:00:00:00:00:01"
    domain.put_interface(iface)
    tags = [e.tag for e in domain.devices if isinstance(e.tag, str)]
    assert tags == ["emulator", "interface", "interface", "unknownDevice"]

    again = Interface.create("vhostuser")
    again.alias = "ua-net"
    again.model = "e1000"
    domain.put_interface(again)
    assert [i.alias for i in domain.interfaces()] == ["placeholder-0", "ua-net"]
    assert domain.interface_for("net").model == "e1000"
    assert domain.interface_for("net").mac is None  # replaced, not merged
    out = domain.to_bytes()
    for kept in (b"<!-- keep me -->", b"<![CDATA[raw <data>]]>", b'<qemu:arg value="-foo"/>', b"<x:custom/>",
                 b'<x:extra a="1">t</x:extra>'):
        assert kept in out


def test_interface_children_follow_kubevirt_order_whatever_the_call_order():
    iface = Interface.create("vhostuser")
    iface.port_forwards = [PortForward("tcp", (PortRange(80), PortRange(15000, exclude=True)))]
    iface.acpi_index = 3
    iface.alias = "ua-a"
    iface.mac = "02:00:00:00:00:02"
    iface.pci_address = "0000:81:01.0"
    iface.set_backend("passt", log_file="/l")
    iface.model = "virtio-non-transitional"
    iface.source_dev = "eth0"
    iface.mtu = 1400
    iface.boot_order = 2
    iface.link_state = "down"
    assert [c.tag for c in iface.element] == ["address", "source", "model", "mac", "mtu", "boot", "link",
                                              "alias", "acpi", "backend", "portForward"]
    assert iface.pci_address == "0000:81:01.0"
    assert (iface.mtu, iface.boot_order, iface.acpi_index, iface.link_state) == (1400, 2, 3, "down")
    assert iface.port_forwards == [PortForward("tcp", (PortRange(80), PortRange(15000, exclude=True)))]
    iface.port_forwards = [PortForward("udp")]  # replaces, never accumulates
    assert [pf.proto for pf in iface.port_forwards] == ["udp"]
    iface.mac = None
    assert iface.element.find("mac") is None
    with pytest.raises(ValueError, match="DDDD:BB:SS.F"):
        iface.pci_address = "81:01.0"


def test_memory_backing_and_namespace_helpers():
    domain = Domain.parse(b"<domain><name>v</name><memory>1</memory><os/></domain>")
    assert domain.memory_access_mode is None
    domain.set_memory_backing(source_type="memfd", access_mode="shared")
    domain.ensure_namespace("qemu", QEMU_NS)
    assert domain.to_bytes() == (b'<domain xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0"><name>v</name>'
                                 b'<memory>1</memory><memoryBacking><source type="memfd"/><access mode="shared"/>'
                                 b"</memoryBacking><os/></domain>")
    assert domain.memory_access_mode == "shared"


def test_canonical_ignores_layout_but_not_content():
    assert canonical("<a x='1'>\n  <b/>\n</a>") == canonical('<a x="1"><b></b></a>')
    assert canonical("<a><b/><c/></a>") != canonical("<a><c/><b/></a>")
    assert canonical("<a><b x='1'/></a>") != canonical("<a><b x='2'/></a>")


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"<domain><devices></domain>", "not well-formed"),
    (b"<network/>", "<domain> root element"),
    (b"<domain>" + b"x" * 100 + b"</domain>", "over the limit of 64 bytes"),
])
def test_bad_xml_is_a_clear_error(data, message):
    with pytest.raises(DomainXMLError, match=message):
        Domain.parse(data, max_bytes=64)


def test_a_domain_of_a_million_tiny_elements_is_refused_before_its_tree_is_built():
    import resource

    flood = b"<domain><metadata>" + b"<m/>" * 900_000 + b"</metadata></domain>"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DomainXMLError, match=r"has 900004 tags, over the limit of 100000"):
        Domain.parse(flood)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000   # KiB: no tree was built
    Domain.parse(b"<domain>" + b"<m/>" * 1000 + b"</domain>")


def test_entities_are_not_expanded_and_files_not_read(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("TOPSECRET")
    xml = (f'<!DOCTYPE domain [<!ENTITY e SYSTEM "file://{secret}"><!ENTITY a "aaaaaaaaaa">'
           '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
           "<domain><name>&e;</name><title>&b;</title></domain>").encode()
    out = Domain.parse(xml).to_bytes()
    assert b"TOPSECRET" not in out
    assert b"aaaaaaaaaa" not in out.split(b"]>")[-1]
