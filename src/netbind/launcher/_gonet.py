"""Go's ``net.ParseMAC`` / ``HardwareAddr.String`` and Kubernetes quantities, as virt-launcher uses them."""
from __future__ import annotations

import math
import re
from fractions import Fraction

_HEX = "0123456789abcdefABCDEF"


def _byte(s: str, pos: int, sep: str | None) -> int | None:
    # Go's xtoi2: two hex digits, followed by the separator unless at the end
    if len(s) > pos + 2 and sep is not None and s[pos + 2] != sep:
        return None
    pair = s[pos:pos + 2]
    if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
        return None
    return int(pair, 16)


def parse_mac(text: str) -> bytes:
    """``net.ParseMAC``: 6, 8 or 20 octets, ``:``/``-`` pairs or ``.`` quads. ValueError if invalid."""
    error = ValueError(f"address {text}: invalid MAC address")
    if len(text) < 14:
        raise error
    octets: list[int] = []
    if text[2] in ":-":
        if (len(text) + 1) % 3:
            raise error
        count = (len(text) + 1) // 3
        if count not in (6, 8, 20):
            raise error
        for i in range(count):
            value = _byte(text, 3 * i, text[2])
            if value is None:
                raise error
            octets.append(value)
    elif text[4] == ".":
        if (len(text) + 1) % 5:
            raise error
        count = 2 * (len(text) + 1) // 5
        if count not in (6, 8, 20):
            raise error
        for i in range(0, count, 2):
            x = 5 * (i // 2)
            high = _byte(text[x:x + 2], 0, None)
            low = _byte(text, x + 2, ".")
            if high is None or low is None:
                raise error
            octets += [high, low]
    else:
        raise error
    return bytes(octets)


def mac_string(address: bytes) -> str:
    """``HardwareAddr.String()``: lower-case hex pairs joined by colons."""
    return ":".join(f"{b:02x}" for b in address)


def normalize_mac(text: str) -> str:
    return mac_string(parse_mac(text))


# --- resource.Quantity ----------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE]?)$")
_SUFFIX = {
    "": Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
    "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}


def parse_quantity(value: str | int | float) -> Fraction:
    """A Kubernetes quantity's exact value (``128Mi``, ``1G``, ``500m``, ``1e3``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Fraction(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"quantities must match the regular expression "
                         f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value!r}")
    number, suffix = match.groups()
    if suffix[:1] in ("e", "E"):
        return Fraction(number) * Fraction(10) ** int(suffix[1:])
    return Fraction(number) * _SUFFIX[suffix]


def quantity_value(value: str | int | float) -> int:
    """``Quantity.Value()``: rounded up to an integer."""
    return math.ceil(parse_quantity(value))


def quantity_bytes(value: str | int | float) -> int:
    """virt-launcher's ``QuantityToByte``: the integer value, or ``Value()-1`` when fractional."""
    exact = parse_quantity(value)
    if exact.denominator == 1:
        return int(exact)
    return math.ceil(exact) - 1
