"""Go standard-library behaviour that KubeVirt's rules depend on (admission, virt-launcher).

Each function reproduces what the Go call accepts and rejects (byte-for-byte where Go works on bytes),
because a cause appears or not, or an address is written or not, depending on it: ``net.ParseMAC``
and ``HardwareAddr.String``, ``net.ParseIP(s).To4()``, the ``k8s.io/apimachinery`` port-name and object-name (DNS-1123) checks,
KubeVirt's PCI address pattern, Go's ``%q`` quoting, ``filepath.Clean`` and ``time.ParseDuration``.
"""
from __future__ import annotations

import ipaddress
import re
import unicodedata

__all__ = [
    "GoDurationError",
    "MacAddressError",
    "dns1123_label_errors",
    "dns1123_subdomain_errors",
    "go_clean_path",
    "go_quote",
    "is_ipv4",
    "is_valid_port_name",
    "mac_string",
    "normalize_mac",
    "parse_go_duration",
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


# --- k8s IsDNS1123Subdomain / IsDNS1123Label (object names, namespaces) ----------------------------

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + r")*"


def _regex_error(message: str, pattern: str, *examples: str) -> str:
    # apimachinery's validation.RegexError, double space after a comma included
    return message + " (e.g. " + " or ".join(f"'{e}', " for e in examples) + \
        f"regex used for validation is '{pattern}')"


def dns1123_subdomain_errors(value: str) -> list[str]:
    """k8s ``validation.IsDNS1123Subdomain``: what the API server says of a bad object name."""
    errors = []
    if len(value.encode("utf-8", "surrogatepass")) > 253:
        errors.append("must be no more than 253 characters")
    if re.fullmatch(_DNS1123_SUBDOMAIN, value, re.ASCII) is None:
        errors.append(_regex_error("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                                   "characters, '-' or '.', and must start and end with an alphanumeric "
                                   "character", _DNS1123_SUBDOMAIN, "example.com"))
    return errors


def dns1123_label_errors(value: str) -> list[str]:
    """k8s ``validation.IsDNS1123Label``: what the API server says of a bad namespace name."""
    errors = []
    if len(value.encode("utf-8", "surrogatepass")) > 63:
        errors.append("must be no more than 63 characters")
    if re.fullmatch(_DNS1123_LABEL, value, re.ASCII) is None:
        errors.append(_regex_error("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                                   "characters or '-', and must start and end with an alphanumeric character",
                                   _DNS1123_LABEL, "my-name", "123-abc"))
    return errors


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


# --- path/filepath.Clean (Unix) -----------------------------------------------------------------


def go_clean_path(path: str) -> str:
    """Go ``filepath.Clean`` on Unix: the shortest lexically equal path.

    Repeated slashes become one, ``.`` elements go, ``..`` removes the element before it (and is
    dropped right after the root), a trailing slash goes; the empty path is ``.``. Unlike
    ``os.path.normpath`` it keeps no leading ``//`` (POSIX lets Python keep exactly two).
    """
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for element in path.split("/"):
        if element in ("", "."):
            continue
        if element == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(element)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


# --- time.ParseDuration -------------------------------------------------------------------------

_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # µ, MICRO SIGN
    "\u03bcs": 1_000,  # μ, GREEK SMALL LETTER MU
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_INT64_MAX = (1 << 63) - 1
_TWO_63 = 1 << 63  # Go sums in a uint64 bounded by 1<<63, so "-2562047h47m16.854775808s" still parses


class GoDurationError(ValueError):
    """Go's ``time.ParseDuration`` error; ``str()`` is Go's message."""


def parse_go_duration(text: str) -> int:
    """Go ``time.ParseDuration``: ``"1h2m3.5s"``, ``"300ms"``, ``"-1.5h"`` -> nanoseconds.

    A sequence of decimal numbers, each with an optional fraction and a unit (ns, us, µs, ms, s,
    m, h), with an optional sign; ``"0"`` needs no unit. Raises GoDurationError with Go's message
    (``time: invalid duration "x"``, ``time: missing unit in duration "1"``,
    ``time: unknown unit "d" in duration "1d"``) for anything Go rejects.
    """
    original = text
    invalid = GoDurationError(f"time: invalid duration {go_quote(original)}")
    negative = False
    if text[:1] in ("-", "+"):
        negative = text[0] == "-"
        text = text[1:]
    if text == "0":
        return 0
    if text == "":
        raise invalid
    total = 0
    while text:
        if not (text[0] == "." or "0" <= text[0] <= "9"):
            raise invalid
        digits = _leading_digits(text)
        whole = int(digits) if digits else 0
        if whole > _TWO_63:
            raise invalid
        text = text[len(digits):]
        fraction, scale, has_fraction_digits = 0, 1.0, False
        if text.startswith("."):
            text = text[1:]
            fraction_digits = _leading_digits(text)
            has_fraction_digits = bool(fraction_digits)
            text = text[len(fraction_digits):]
            # Go's leadingFraction stops accumulating once more digits could overflow an int64
            for digit in fraction_digits:
                if fraction > _INT64_MAX // 10 or fraction * 10 + int(digit) > _TWO_63:
                    break
                fraction = fraction * 10 + int(digit)
                scale *= 10
        if not digits and not has_fraction_digits:
            raise invalid  # "." or ".s" alone
        unit_end = 0
        while unit_end < len(text) and text[unit_end] != "." and not "0" <= text[unit_end] <= "9":
            unit_end += 1
        unit_text, text = text[:unit_end], text[unit_end:]
        if not unit_text:
            raise GoDurationError(f"time: missing unit in duration {go_quote(original)}")
        unit = _DURATION_UNITS.get(unit_text)
        if unit is None:
            raise GoDurationError(f"time: unknown unit {go_quote(unit_text)} in duration {go_quote(original)}")
        if whole > _TWO_63 // unit:
            raise invalid
        value = whole * unit
        if fraction:
            # float64 arithmetic, as Go does: "1.1s" is 1100000000ns, "0.3333333333s" rounds down
            value += int(float(fraction) * (float(unit) / scale))
            if value > _TWO_63:
                raise invalid
        total += value
        if total > _TWO_63:
            raise invalid
    if negative:
        return -total
    if total > _INT64_MAX:
        raise invalid
    return total


def _leading_digits(text: str) -> str:
    end = 0
    while end < len(text) and "0" <= text[end] <= "9":
        end += 1
    return text[:end]
