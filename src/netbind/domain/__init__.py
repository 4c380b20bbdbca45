"""Lossless libvirt domain XML editing.

A :class:`Domain` wraps the lxml tree of the exact XML it was given: elements and attributes that
no helper knows about, ``qemu:commandline``, namespace declarations, comments and whitespace all
survive a parse/serialize round trip. Typed helpers (interfaces, memory backing) edit only what
they are asked to, and insert new children where KubeVirt's Go schema would serialize them, so the
result also compares equal to what KubeVirt's own (lossy) marshaller writes.

Parsing is hardened: no entity expansion, no network, no huge trees, and a size limit.
"""
from __future__ import annotations

from netbind.domain._xml import (
    MAX_DOMAIN_XML_BYTES,
    QEMU_NS,
    Domain,
    DomainXMLError,
    Interface,
    PortForward,
    PortRange,
    canonical,
)

__all__ = [
    "MAX_DOMAIN_XML_BYTES",
    "QEMU_NS",
    "Domain",
    "DomainXMLError",
    "Interface",
    "PortForward",
    "PortRange",
    "canonical",
]
