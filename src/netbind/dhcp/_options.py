"""Encoders shared by the DHCPv4, DHCPv6 and RA codecs (pure, no I/O)."""
from __future__ import annotations

import re

# RFC 1035 host names: labels of letters, digits, '-' and '_' (as KubeVirt's search-domain check).
_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$")


def check_domain(name: str) -> str:
    """A domain name without the trailing dot; raises ValueError with what is wrong."""
    name = name.rstrip(".")
    if not name:
        raise ValueError("a domain name must not be empty")
    if len(name) > 253:
        raise ValueError(f"domain name {name!r} is longer than 253 characters")
    for label in name.split("."):
        if not _LABEL.match(label):
            raise ValueError(f"domain name {name!r} has an invalid label {label!r} (letters, digits, "
                             "'-' and '_', at most 63 characters, not starting or ending with '-')")
    return name


def encode_domains(names: list[str] | tuple[str, ...]) -> bytes:
    """RFC 1035 section 3.1 names, one after the other, uncompressed (RFC 3397 and RFC 8415 lists).

    Compression pointers are optional for senders; clients of every kind decode plain labels.
    """
    out = bytearray()
    for name in names:
        for label in name.split("."):
            raw = label.encode("ascii")
            out.append(len(raw))
            out += raw
        out.append(0)
    return bytes(out)


def decode_domains(data: bytes) -> list[str]:
    """The inverse of ``encode_domains`` (with pointers, for tests and a hostile peer's lists)."""
    names: list[str] = []
    pos = 0
    while pos < len(data):
        labels: list[str] = []
        cursor, jumps, end = pos, 0, None
        while True:
            if cursor >= len(data):
                raise ValueError("truncated domain list")
            length = data[cursor]
            if length & 0xC0 == 0xC0:
                if cursor + 1 >= len(data) or jumps > 16:
                    raise ValueError("bad compression pointer")
                end = cursor + 2 if end is None else end
                cursor = ((length & 0x3F) << 8) | data[cursor + 1]
                jumps += 1
                continue
            if length == 0:
                end = cursor + 1 if end is None else end
                break
            labels.append(data[cursor + 1:cursor + 1 + length].decode("ascii", "replace"))
            cursor += 1 + length
        names.append(".".join(labels))
        pos = end
    return names
