from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from lxml import etree

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"

# gRPC's default message limit is 4 MiB, so nothing larger reaches a hook anyway; the same bound
# protects direct callers of the parser.
MAX_DOMAIN_XML_BYTES = 4 * 1024 * 1024
# A tree costs libxml2 and lxml ~300 bytes per element: 4 MiB of "<m/>" would be 900,000 elements
# and a 260 MiB sidecar. A real domain has a few hundred tags (a 16-NIC one about 400); this
# bound keeps a sidecar's tree under ~30 MiB whatever it is sent.
MAX_DOMAIN_XML_TAGS = 100_000

_PARSER = etree.XMLParser(
    collect_ids=False,  # no id() lookups here: the hash table of xml:id values is waste
    resolve_entities=False,  # no entity expansion (billion laughs, external entities)
    no_network=True,
    huge_tree=False,  # keeps libxml2's depth/size limits
    load_dtd=False,
    remove_blank_text=False,  # lossless: whitespace stays as it was
    remove_comments=False,
    remove_pis=False,
    strip_cdata=False,
)
_CANONICAL_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False, remove_blank_text=True
)

# Child order of the Go structs KubeVirt marshals (virtwrap/api DomainSpec, Devices, Interface):
# a new child is inserted where Go would have written it, so our output and KubeVirt's agree.
_DOMAIN_ORDER = (
    "name", "uuid", "memory", "currentMemory", "maxMemory", "memoryBacking", "os", "sysinfo",
    "devices", "clock", "resource", f"{{{QEMU_NS}}}commandline", "metadata", "features", "cpu",
    "vcpu", "vcpus", "cputune", "numatune", "iothreads", "launchSecurity",
)
_DEVICES_ORDER = ("emulator", "interface")
_INTERFACE_ORDER = (
    "address", "source", "target", "model", "mac", "mtu", "bandwidth", "boot", "link",
    "filterref", "alias", "driver", "rom", "acpi", "backend", "portForward",
)
_MEMORY_BACKING_ORDER = ("hugepages", "source", "access", "allocation")

_PCI_ADDRESS = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")


class DomainXMLError(ValueError):
    """The domain XML cannot be used: too large, not well-formed, or not a <domain>."""


_RANKS: dict[int, dict[str, int]] = {}


def _rank(order: tuple[str, ...], tag: str) -> int:
    ranks = _RANKS.get(id(order))  # the orders are module constants
    if ranks is None:
        ranks = _RANKS[id(order)] = {t: i for i, t in enumerate(order)}
    return ranks.get(tag, len(order))


def _insert_ordered(parent: etree._Element, child: etree._Element, order: tuple[str, ...]) -> None:
    """Insert ``child`` after the last element child that sorts before or with it in ``order``."""
    rank = _rank(order, child.tag)
    count = len(parent)
    last = parent[-1] if count else None
    if last is not None and isinstance(last.tag, str) and _rank(order, last.tag) <= rank:
        anchor = last   # the usual case (an element built child by child in order): no search
    else:
        # the last match is the first from the end; lxml filters by tag in C (a domain has many devices)
        tags = order[:rank + 1] if rank < len(order) else (etree.Element,)
        anchor = next(parent.iterchildren(*tags, reversed=True), None)
    text = parent.text
    indent = text if count and text is not None and text.strip() == "" else None
    if anchor is None:
        parent.insert(0, child)
        if indent is not None:
            child.tail = indent
    else:
        anchor.addnext(child)
        if indent is not None and (anchor.tail or "").strip() == "":
            child.tail = anchor.tail
            anchor.tail = indent
    _indent_like_siblings(child, indent)


def _indent_like_siblings(child: etree._Element, indent: str | None) -> None:
    """Pretty-print a new element to the document's indentation when the document is indented."""
    if indent is None or "\n" not in indent or not len(child):
        return
    unit = "\t" if indent.endswith("\t") else "  "
    level = indent.count(unit)
    etree.indent(child, space=unit, level=level)


def _replace(old: etree._Element, new: etree._Element) -> None:
    new.tail = old.tail
    old.getparent().replace(old, new)
    parent = new.getparent()
    indent = parent.text if parent.text is not None and parent.text.strip() == "" else None
    _indent_like_siblings(new, indent)


def _child(parent: etree._Element, tag: str) -> etree._Element | None:
    return parent.find(tag)


def _ensure_child(parent: etree._Element, tag: str, order: tuple[str, ...]) -> etree._Element:
    found = parent.find(tag)
    if found is None:
        found = etree.Element(tag)
        _insert_ordered(parent, found, order)
    return found


def _set_child_attr(parent, tag, attr, value, order) -> None:
    """Set ``<tag attr=value/>`` (keeping other attributes), or remove the child when value is None."""
    existing = parent.find(tag)
    if value is None:
        if existing is not None:
            parent.remove(existing)
        return
    _ensure_child(parent, tag, order).set(attr, str(value))


def _get_child_attr(parent, tag, attr) -> str | None:
    found = parent.find(tag)
    return None if found is None else found.get(attr)


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text, 0)
    except ValueError:
        return None


@dataclass(frozen=True)
class PortRange:
    """``<range start=… end=… to=… exclude="yes"/>`` inside a passt ``<portForward>``."""

    start: int
    end: int | None = None
    to: int | None = None
    exclude: bool = False


@dataclass(frozen=True)
class PortForward:
    """``<portForward proto=… address=…>`` with its ranges (no ranges = forward everything)."""

    proto: str
    ranges: tuple[PortRange, ...] = field(default_factory=tuple)
    address: str | None = None


class Interface:
    """A typed view of one ``<interface>`` element; setters edit the element in place."""

    def __init__(self, element: etree._Element):
        if element.tag != "interface":
            raise ValueError(f"expected an <interface> element, got <{element.tag}>")
        self.element = element

    @classmethod
    def create(cls, type: str) -> "Interface":
        return cls(etree.Element("interface", type=type))

    def __repr__(self) -> str:
        return f"Interface(type={self.type!r}, alias={self.alias!r})"

    def _set(self, tag: str, attr: str, value) -> None:
        _set_child_attr(self.element, tag, attr, value, _INTERFACE_ORDER)

    @property
    def type(self) -> str | None:
        return self.element.get("type")

    @type.setter
    def type(self, value: str) -> None:
        self.element.set("type", value)

    @property
    def alias(self) -> str | None:
        return _get_child_attr(self.element, "alias", "name")

    @alias.setter
    def alias(self, value: str | None) -> None:
        self._set("alias", "name", value)

    @property
    def mac(self) -> str | None:
        return _get_child_attr(self.element, "mac", "address")

    @mac.setter
    def mac(self, value: str | None) -> None:
        self._set("mac", "address", value)

    @property
    def model(self) -> str | None:
        return _get_child_attr(self.element, "model", "type")

    @model.setter
    def model(self, value: str | None) -> None:
        self._set("model", "type", value)

    @property
    def source_dev(self) -> str | None:
        return _get_child_attr(self.element, "source", "dev")

    @source_dev.setter
    def source_dev(self, value: str | None) -> None:
        self._set("source", "dev", value)

    @property
    def target_dev(self) -> str | None:
        return _get_child_attr(self.element, "target", "dev")

    @target_dev.setter
    def target_dev(self, value: str | None) -> None:
        self._set("target", "dev", value)

    @property
    def mtu(self) -> int | None:
        return _int_or_none(_get_child_attr(self.element, "mtu", "size"))

    @mtu.setter
    def mtu(self, value: int | None) -> None:
        self._set("mtu", "size", value)

    @property
    def boot_order(self) -> int | None:
        return _int_or_none(_get_child_attr(self.element, "boot", "order"))

    @boot_order.setter
    def boot_order(self, value: int | None) -> None:
        self._set("boot", "order", value)

    @property
    def link_state(self) -> str | None:
        return _get_child_attr(self.element, "link", "state")

    @link_state.setter
    def link_state(self, value: str | None) -> None:
        self._set("link", "state", value)

    @property
    def acpi_index(self) -> int | None:
        return _int_or_none(_get_child_attr(self.element, "acpi", "index"))

    @acpi_index.setter
    def acpi_index(self, value: int | None) -> None:
        self._set("acpi", "index", value)

    @property
    def pci_address(self) -> str | None:
        """The PCI address as ``DDDD:BB:SS.F`` (the VMI's notation), or None."""
        address = self.element.find("address")
        if address is None or address.get("type") != "pci":
            return None
        try:
            parts = [int(address.get(k, "0"), 16) for k in ("domain", "bus", "slot", "function")]
        except ValueError:
            return None
        return "{:04x}:{:02x}:{:02x}.{:x}".format(*parts)

    @pci_address.setter
    def pci_address(self, value: str | None) -> None:
        existing = self.element.find("address")
        if value is None:
            if existing is not None:
                self.element.remove(existing)
            return
        match = _PCI_ADDRESS.match(value)
        if not match:
            raise ValueError(f"PCI address {value!r} is not of the form DDDD:BB:SS.F (hexadecimal)")
        new = etree.Element("address", type="pci", domain="0x" + match[1], bus="0x" + match[2],
                            slot="0x" + match[3], function="0x" + match[4])
        if existing is not None:
            _replace(existing, new)
        else:
            _insert_ordered(self.element, new, _INTERFACE_ORDER)

    @property
    def backend(self) -> dict[str, str] | None:
        found = self.element.find("backend")
        return None if found is None else dict(found.attrib)

    def set_backend(self, type: str | None, log_file: str | None = None) -> None:
        """``<backend type=… logFile=…/>``; ``type=None`` removes it."""
        existing = self.element.find("backend")
        if type is None:
            if existing is not None:
                self.element.remove(existing)
            return
        new = etree.Element("backend", type=type)
        if log_file is not None:
            new.set("logFile", log_file)
        if existing is not None:
            _replace(existing, new)
        else:
            _insert_ordered(self.element, new, _INTERFACE_ORDER)

    @property
    def port_forwards(self) -> list[PortForward]:
        result = []
        for pf in self.element.findall("portForward"):
            ranges = tuple(
                PortRange(start=int(r.get("start", "0")), end=_int_or_none(r.get("end")),
                          to=_int_or_none(r.get("to")), exclude=r.get("exclude") == "yes")
                for r in pf.findall("range")
            )
            result.append(PortForward(proto=pf.get("proto", ""), ranges=ranges, address=pf.get("address")))
        return result

    @port_forwards.setter
    def port_forwards(self, forwards: Iterable[PortForward]) -> None:
        """Replace all ``<portForward>`` children (idempotent: never appends to old ones)."""
        for old in self.element.findall("portForward"):
            self.element.remove(old)
        for forward in forwards:
            element = etree.Element("portForward", proto=forward.proto)
            if forward.address is not None:
                element.set("address", forward.address)
            for r in forward.ranges:
                sub = etree.SubElement(element, "range", start=str(r.start))
                if r.end is not None:
                    sub.set("end", str(r.end))
                if r.to is not None:
                    sub.set("to", str(r.to))
                if r.exclude:
                    sub.set("exclude", "yes")
            _insert_ordered(self.element, element, _INTERFACE_ORDER)


class Domain:
    """A libvirt ``<domain>`` document, edited in place and serialized losslessly."""

    def __init__(self, tree: etree._ElementTree, *, xml_declaration: bool = False):
        self.tree = tree
        self._xml_declaration = xml_declaration

    @classmethod
    def parse(cls, data: bytes | str, *, max_bytes: int = MAX_DOMAIN_XML_BYTES,
              max_tags: int = MAX_DOMAIN_XML_TAGS) -> "Domain":
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if len(raw) > max_bytes:
            raise DomainXMLError(f"domain XML is {len(raw)} bytes, over the limit of {max_bytes} bytes")
        tags = raw.count(b"<")   # counted before parsing: the tree is what costs memory
        if tags > max_tags:
            raise DomainXMLError(f"domain XML has {tags} tags, over the limit of {max_tags}"
                                 " (a libvirt domain has a few hundred)")
        if not raw.strip():
            raise DomainXMLError("domain XML is empty")
        try:
            root = etree.fromstring(raw, _PARSER)
        except etree.XMLSyntaxError as exc:
            raise DomainXMLError(f"domain XML is not well-formed: {exc.msg}") from None
        if root.tag != "domain":
            raise DomainXMLError(f"domain XML must have a <domain> root element, found <{root.tag}>")
        return cls(root.getroottree(), xml_declaration=raw.lstrip().startswith(b"<?xml"))

    @property
    def root(self) -> etree._Element:
        return self.tree.getroot()

    def to_bytes(self) -> bytes:
        return etree.tostring(self.tree, encoding="UTF-8", xml_declaration=self._xml_declaration)

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def ensure_namespace(self, prefix: str, uri: str) -> None:
        """Declare ``xmlns:prefix=uri`` on the root (lxml cannot add one in place: rebuild the root)."""
        old = self.root
        if old.nsmap.get(prefix) == uri:
            return
        nsmap = dict(old.nsmap)
        nsmap[prefix] = uri
        new = etree.Element(old.tag, attrib=dict(old.attrib), nsmap=nsmap)
        new.text = old.text
        for child in list(old):
            new.append(child)  # moves, keeping each child's tail
        # keep comments/PIs around the root element
        for sibling in old.itersiblings(preceding=True):
            new.addprevious(sibling)
        for sibling in old.itersiblings():
            new.addnext(sibling)
        self.tree._setroot(new)

    # -- devices / interfaces -----------------------------------------------------------------
    @property
    def devices(self) -> etree._Element | None:
        return self.root.find("devices")

    def ensure_devices(self) -> etree._Element:
        return _ensure_child(self.root, "devices", _DOMAIN_ORDER)

    def interfaces(self) -> list[Interface]:
        devices = self.devices
        return [] if devices is None else [Interface(e) for e in devices.findall("interface")]

    def iter_interfaces(self) -> Iterator[Interface]:
        return iter(self.interfaces())

    def find_interface(self, *, alias: str) -> Interface | None:
        for iface in self.interfaces():
            if iface.alias == alias:
                return iface
        return None

    def interface_for(self, vmi_interface_name: str) -> Interface | None:
        """The interface KubeVirt knows as ``vmi_interface_name`` (user alias ``ua-<name>``)."""
        return self.find_interface(alias="ua-" + vmi_interface_name)

    def put_interface(self, iface: Interface) -> Interface:
        """Replace the interface with the same alias in place, or append it (idempotent)."""
        alias = iface.alias
        existing = self.find_interface(alias=alias) if alias is not None else None
        if existing is not None:
            if existing.element is not iface.element:
                _replace(existing.element, iface.element)
        else:
            _insert_ordered(self.ensure_devices(), iface.element, _DEVICES_ORDER)
        return iface

    def remove_interface(self, *, alias: str) -> bool:
        existing = self.find_interface(alias=alias)
        if existing is None:
            return False
        existing.element.getparent().remove(existing.element)
        return True

    # -- memory backing -----------------------------------------------------------------------
    @property
    def memory_backing(self) -> etree._Element | None:
        return self.root.find("memoryBacking")

    @property
    def memory_access_mode(self) -> str | None:
        mb = self.memory_backing
        return None if mb is None else _get_child_attr(mb, "access", "mode")

    def set_memory_backing(self, *, source_type: str | None = None, access_mode: str | None = None) -> etree._Element:
        """Create or update ``<memoryBacking>`` with ``<source type>`` / ``<access mode>``."""
        created = self.memory_backing is None
        mb = _ensure_child(self.root, "memoryBacking", _DOMAIN_ORDER)
        if source_type is not None:
            _set_child_attr(mb, "source", "type", source_type, _MEMORY_BACKING_ORDER)
        if access_mode is not None:
            _set_child_attr(mb, "access", "mode", access_mode, _MEMORY_BACKING_ORDER)
        if created:
            text = self.root.text
            _indent_like_siblings(mb, text if text is not None and text.strip() == "" else None)
        return mb


def canonical(xml: bytes | str) -> bytes:
    """C14N 2.0 of ``xml`` with insignificant whitespace dropped: equal output = same document."""
    raw = xml.encode("utf-8") if isinstance(xml, str) else xml
    root = etree.fromstring(raw, _CANONICAL_PARSER)
    return etree.tostring(root, method="c14n2", strip_text=True)
