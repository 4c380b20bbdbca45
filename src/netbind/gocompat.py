"""Go standard-library behaviour that KubeVirt's rules depend on (admission, virt-launcher).

Each function reproduces what the Go call accepts and rejects (byte-for-byte where Go works on bytes),
because a cause appears or not, or an address is written or not, depending on it: ``net.ParseMAC``
and ``HardwareAddr.String``, ``net.ParseIP(s).To4()``, the ``k8s.io/apimachinery`` port-name check,
KubeVirt's PCI address pattern and Go's ``%q`` quoting.
"""
from __future__ import annotations

import ipaddress
import re
import unicodedata

__all__ = [
    "MacAddressError",
    "go_quote",
    "is_ipv4",
    "is_valid_port_name",
    "mac_string",
    "normalize_mac",
    "parse_mac",
    "parse_pci_address",
]

# --- net.ParseMAC -------------------------------------------------------------------------------

_MAC_LENGTHS = (6, 8, 20)  # EUI-48, EUI-64, 20-octet IP-over-InfiniBand


class MacAddressError(ValueError):
    """Go's ``invalid MAC address`` (an *AddrError)."""


def _hex_pair(data: bytes, pos: int, separator: int | None) -> int | None:
    """Go's xtoi2: two hex digits at pos, followed by `separator` if more input follows."""
    rest = data[pos:]
    if len(rest) > 2 and rest[2] != separator:
        return None
    pair = rest[:2]
    if len(pair) != 2 or any(chr(c) not in "0123456789abcdefABCDEF" for c in pair):
        return None
    return int(pair.decode("ascii"), 16)


def parse_mac(text: str) -> bytes:
    """Go ``net.ParseMAC``: ``aa:bb:..``, ``aa-bb-..`` or ``aabb.ccdd.eeff`` with 6, 8 or 20 octets.

    Returns the octets; raises MacAddressError for anything Go rejects.
    """
    data = text.encode("utf-8", "surrogatepass")
    octets: list[int] = []
    if len(data) < 14:
        raise MacAddressError(f"invalid MAC address {text!r}")
    if data[2] in b":-":
        separator = data[2]
        if (len(data) + 1) % 3:
            raise MacAddressError(f"invalid MAC address {text!r}")
        count = (len(data) + 1) // 3
        if count not in _MAC_LENGTHS:
            raise MacAddressError(f"invalid MAC address {text!r}")
        for i in range(count):
            value = _hex_pair(data, 3 * i, separator)
            if value is None:
                raise MacAddressError(f"invalid MAC address {text!r}")
            octets.append(value)
    elif data[4] == ord("."):
        if (len(data) + 1) % 5:
            raise MacAddressError(f"invalid MAC address {text!r}")
        count = 2 * (len(data) + 1) // 5
        if count not in _MAC_LENGTHS:
            raise MacAddressError(f"invalid MAC address {text!r}")
        for group in range(count // 2):
            start = 5 * group
            high = _hex_pair(data[start:start + 2], 0, None)
            low = _hex_pair(data, start + 2, ord("."))
            if high is None or low is None:
                raise MacAddressError(f"invalid MAC address {text!r}")
            octets += [high, low]
    else:
        raise MacAddressError(f"invalid MAC address {text!r}")
    return bytes(octets)


def mac_string(address: bytes) -> str:
    """Go ``HardwareAddr.String()``: lower-case hex pairs joined by colons."""
    return ":".join(f"{b:02x}" for b in address)


def normalize_mac(text: str) -> str:
    return mac_string(parse_mac(text))


# --- KubeVirt's PCI address pattern (pkg/util/hardware) -----------------------------------------

# DDDD:BB:SS.F; Go's \d is ASCII-only and its $ is end-of-text, hence [0-9] and fullmatch.
_PCI_ADDRESS = re.compile(r"([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])")


def parse_pci_address(text: str) -> tuple[str, str, str, str]:
    """KubeVirt's ParsePciAddress: (domain, bus, slot, function); ValueError if malformed."""
    match = _PCI_ADDRESS.fullmatch(text)
    if match is None:
        raise ValueError(f"failed to parse pci address {text}")
    return match.group(1), match.group(2), match.group(3), match.group(4)


# --- k8s IsValidPortName (IANA service name) ----------------------------------------------------

_PORT_NAME_CHARSET = re.compile(r"[-a-z0-9]+")
_PORT_NAME_LETTER = re.compile(r"[a-z]")


def is_valid_port_name(name: str) -> bool:
    """k8s ``validation.IsValidPortName``: at most 15 bytes of [-a-z0-9], one letter, no '--', no edge '-'."""
    return (
        len(name.encode("utf-8", "surrogatepass")) <= 15
        and _PORT_NAME_CHARSET.fullmatch(name) is not None
        and _PORT_NAME_LETTER.search(name) is not None
        and "--" not in name
        and not name.startswith("-")
        and not name.endswith("-")
    )


# --- net.ParseIP(s).To4() != nil ----------------------------------------------------------------


def is_ipv4(text: str) -> bool:
    """Go ``net.ParseIP(text).To4() != nil``: dotted IPv4 (no leading zeros) or IPv4-mapped IPv6."""
    if "%" in text:  # Go's ParseIP refuses zones
        return False
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return True
    return address.ipv4_mapped is not None


# --- Go %q --------------------------------------------------------------------------------------

_SHORT_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t",
                  "\v": r"\v", "\\": "\\\\", '"': '\\"'}


def _go_printable(char: str) -> bool:
    # Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space
    return char == " " or unicodedata.category(char)[0] in "LMNPS"


def go_quote(text: str) -> str:
    """Go ``strconv.Quote`` (what ``fmt`` prints for ``%q`` of a string)."""
    out = ['"']
    for char in text:
        if 0xD800 <= ord(char) <= 0xDFFF:  # Go strings hold no lone surrogates: U+FFFD instead
            char = "\ufffd"
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif _go_printable(char):
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)
