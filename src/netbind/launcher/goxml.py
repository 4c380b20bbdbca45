"""Domain XML the way KubeVirt writes it: Go's ``encoding/xml`` output for lxml elements.

KubeVirt hands sidecars ``xml.MarshalIndent(domainSpec, "", "\\t")``. Go never self-closes an
element (``<source></source>``), keeps attributes in struct-field order (we keep lxml's insertion
order, and the builders insert in Go's order), escapes ``"`` ``'`` tab, newline and CR as character
references, and declares a namespace inline where the struct names one (``<kubevirt
xmlns="http://kubevirt.io">``, the ``xmlns:qemu`` attribute of ``<domain>``).
"""
from __future__ import annotations

from typing import Iterable, Sequence

from lxml import etree

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
KUBEVIRT_NS = "http://kubevirt.io"

_ESCAPES = {
    '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;",
    "\t": "&#x9;", "\n": "&#xA;", "\r": "&#xD;",
}


def _in_xml_char_range(code: int) -> bool:
    return (code in (0x09, 0x0A, 0x0D) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD
            or 0x10000 <= code <= 0x10FFFF)


def go_escape(text: str) -> str:
    """Go's ``xml.EscapeText``/attribute escaping (the same table for both)."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif not _in_xml_char_range(ord(ch)):
            out.append("\ufffd")
        else:
            out.append(ch)
    return "".join(out)


def element(tag: str, attrs: Iterable[tuple[str, object]] = (), *children: etree._Element,
            text: str | None = None, nsmap: dict | None = None) -> etree._Element:
    """An element with attributes in the given order; ``None`` values are left out (omitempty)."""
    el = etree.Element(tag, nsmap=nsmap) if nsmap else etree.Element(tag)
    for name, value in attrs:
        if value is not None:
            el.set(name, str(value))
    for child in children:
        if child is not None:
            el.append(child)
    if text is not None:
        el.text = text
    return el


def _qualified(el: etree._Element) -> str:
    qname = etree.QName(el)
    return f"{el.prefix}:{qname.localname}" if el.prefix else qname.localname


def _write(el: etree._Element, depth: int, indent: str, parent_nsmap: dict, out: list[str]) -> None:
    if out:
        out.append("\n")
    out.append(indent * depth)
    name = _qualified(el)
    out.append("<" + name)
    nsmap = el.nsmap
    declared = {p: u for p, u in nsmap.items() if parent_nsmap.get(p) != u}
    if None in declared:
        out.append(f' xmlns="{go_escape(declared[None])}"')
    for attr, value in el.attrib.items():
        out.append(f' {_qualified_attr(attr, el)}="{go_escape(value)}"')
    for prefix, uri in declared.items():
        if prefix is not None:  # Go models these as plain attributes after the struct's others
            out.append(f' xmlns:{prefix}="{go_escape(uri)}"')
    out.append(">")
    if el.text:
        out.append(go_escape(el.text))
    children = [c for c in el if isinstance(c.tag, str)]
    for child in children:
        _write(child, depth + 1, indent, nsmap, out)
    if children:
        out.append("\n" + indent * depth)
    out.append(f"</{name}>")


def _qualified_attr(attr: str, el: etree._Element) -> str:
    if not attr.startswith("{"):
        return attr
    qname = etree.QName(attr)
    for prefix, uri in el.nsmap.items():
        if uri == qname.namespace and prefix:
            return f"{prefix}:{qname.localname}"
    return qname.localname


def marshal_indent(el: etree._Element, indent: str = "\t") -> str:
    """``xml.MarshalIndent(v, "", indent)`` of the structure ``el`` stands for."""
    out: list[str] = []
    _write(el, 0, indent, {}, out)
    return "".join(out)


def insert_in_order(parent: etree._Element, child: etree._Element, order: Sequence[str]) -> None:
    """Put ``child`` where Go's struct order puts it, replacing an element of the same tag."""
    tag = child.tag
    rank = order.index(tag)
    for existing in parent:
        if existing.tag == tag:
            parent.replace(existing, child)
            return
    for position, existing in enumerate(parent):
        if isinstance(existing.tag, str) and existing.tag in order and order.index(existing.tag) > rank:
            parent.insert(position, child)
            return
    parent.append(child)
