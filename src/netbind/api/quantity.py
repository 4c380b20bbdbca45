"""Kubernetes resource quantities (``k8s.io/apimachinery/pkg/api/resource``), exact.

KubeVirt's memory arithmetic is only reproducible if two things behave as in Go: the value (exact,
rounded up to nano units when parsed) and the *format* a result keeps, because the format decides how
the quantity prints (``938240Ki`` versus ``960757760``). Go's rules, kept here:

* parsing: a binary suffix (``Ki``..``Ei``) gives BinarySI, a decimal suffix or none gives DecimalSI,
  an ``e``/``E`` exponent gives DecimalExponent; values finer than 1n are rounded up to 1n;
* ``add``/``sub``: the receiver keeps its format, unless it is zero, then it takes the other's;
* printing: BinarySI prints as ``<int><Ki|Mi|...>`` only for whole numbers of magnitude >= 1024,
  otherwise as DecimalSI; DecimalSI prints ``<int><n|u|m||k|M|G|T|P|E>`` with the exponent a multiple
  of 3 and trailing zeros moved into the suffix.

Values are held as an integer count of nano units, so every operation is exact.
"""
from __future__ import annotations

import math
import re
from enum import Enum
from fractions import Fraction
from typing import Any

__all__ = ["Format", "Quantity", "QuantityError"]

_NANO = 10**9


class Format(str, Enum):
    DECIMAL_SI = "DecimalSI"
    BINARY_SI = "BinarySI"
    DECIMAL_EXPONENT = "DecimalExponent"


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exp: suffix for suffix, exp in _DECIMAL.items()}
_BINARY_SUFFIX = {exp: suffix for suffix, exp in _BINARY.items()}
# sign, digits with an optional fraction, then a suffix (checked separately)
_QUANTITY = re.compile(r"^([+-]?)(\d+(?:\.\d*)?|\.\d+)(.*)$")
_EXPONENT = re.compile(r"^[eE]([+-]?\d+)$")


def _ceil_div(numerator: int, denominator: int) -> int:
    return -((-numerator) // denominator)


class Quantity:
    """An immutable Kubernetes quantity: exact value plus Go's format."""

    __slots__ = ("_nanos", "_format")

    def __init__(self, nanos: int = 0, format: Format = Format.DECIMAL_SI) -> None:
        self._nanos = int(nanos)
        self._format = Format(format)

    # --- constructors mirroring resource.NewQuantity / NewScaledQuantity / MustParse ---------------

    @classmethod
    def parse(cls, text: str | int | float | Quantity) -> Quantity:
        """``resource.ParseQuantity``; raises :class:`QuantityError` naming the bad string."""
        if isinstance(text, Quantity):
            return text
        if isinstance(text, bool):
            raise QuantityError(f"quantity must be a string or a number, not {text!r}")
        if isinstance(text, int):
            return cls(text * _NANO)
        if isinstance(text, float):
            text = repr(text)
        if not isinstance(text, str):
            raise QuantityError(f"quantity must be a string or a number, not {type(text).__name__}")
        match = _QUANTITY.match(text)
        if match is None:
            raise QuantityError(f"quantities must match the regular expression "
                                f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {text!r}")
        sign, number, suffix = match.groups()
        value = Fraction(number)
        if suffix in _BINARY:
            value *= 2 ** _BINARY[suffix]
            fmt = Format.BINARY_SI
        elif suffix in _DECIMAL:
            value *= Fraction(10) ** _DECIMAL[suffix]
            fmt = Format.DECIMAL_SI
        elif (exp := _EXPONENT.match(suffix)) is not None:
            value *= Fraction(10) ** int(exp.group(1))
            fmt = Format.DECIMAL_EXPONENT
        else:
            raise QuantityError(f"unable to parse quantity's suffix in {text!r}")
        # Go rounds non-zero values up (away from zero) to the smallest representable unit, 1n
        magnitude = value * _NANO
        nanos = math.ceil(magnitude)
        if sign == "-":
            nanos = -nanos
        if fmt is Format.BINARY_SI and 0 < abs(nanos) < _NANO:
            fmt = Format.DECIMAL_SI
        return cls(nanos, fmt)

    @classmethod
    def of(cls, value: int, format: Format = Format.DECIMAL_SI) -> Quantity:
        """``resource.NewQuantity(value, format)``."""
        return cls(value * _NANO, format)

    @classmethod
    def scaled(cls, value: int, scale: int) -> Quantity:
        """``resource.NewScaledQuantity(value, scale)``: value * 10^scale, DecimalSI."""
        nanos = value * 10 ** (scale + 9) if scale >= -9 else _ceil_div(value, 10 ** (-scale - 9))
        return cls(nanos, Format.DECIMAL_SI)

    # --- values --------------------------------------------------------------------------------------

    @property
    def format(self) -> Format:
        return self._format

    @property
    def nanos(self) -> int:
        return self._nanos

    def value(self) -> int:
        """``Value()``: the value rounded up to an integer."""
        return _ceil_div(self._nanos, _NANO)

    def scaled_value(self, scale: int) -> int:
        """``ScaledValue(scale)``: ceil(value / 10^scale)."""
        if scale >= -9:
            return _ceil_div(self._nanos, 10 ** (scale + 9))
        return self._nanos * 10 ** (-scale - 9)

    def milli_value(self) -> int:
        return self.scaled_value(-3)

    def is_zero(self) -> bool:
        return self._nanos == 0

    def set_value(self, value: int) -> Quantity:
        """``Set(value)``: same format, new integer value."""
        return Quantity(value * _NANO, self._format)

    # --- arithmetic with Go's format propagation -----------------------------------------------------

    def add(self, other: Quantity | str) -> Quantity:
        other = Quantity.parse(other)
        fmt = other._format if self._nanos == 0 else self._format
        return Quantity(self._nanos + other._nanos, fmt)

    def sub(self, other: Quantity | str) -> Quantity:
        other = Quantity.parse(other)
        fmt = other._format if self._nanos == 0 else self._format
        return Quantity(self._nanos - other._nanos, fmt)

    def __add__(self, other: Any) -> Quantity:
        if not isinstance(other, (Quantity, str)):
            return NotImplemented
        return self.add(other)

    def __sub__(self, other: Any) -> Quantity:
        if not isinstance(other, (Quantity, str)):
            return NotImplemented
        return self.sub(other)

    def __neg__(self) -> Quantity:
        return Quantity(-self._nanos, self._format)

    def cmp(self, other: Quantity | str) -> int:
        other = Quantity.parse(other)
        return (self._nanos > other._nanos) - (self._nanos < other._nanos)

    def __eq__(self, other: object) -> bool:
        """Equal values (Go's ``Equal``/``Cmp``); the format does not take part."""
        if isinstance(other, str):
            other = Quantity.parse(other)
        if not isinstance(other, Quantity):
            return NotImplemented
        return self._nanos == other._nanos

    def __lt__(self, other: Quantity) -> bool:
        return self._nanos < Quantity.parse(other)._nanos

    def __le__(self, other: Quantity) -> bool:
        return self._nanos <= Quantity.parse(other)._nanos

    def __hash__(self) -> int:
        return hash(self._nanos)

    # --- printing ------------------------------------------------------------------------------------

    def __str__(self) -> str:
        """Go's canonical ``String()``."""
        if self._nanos == 0:
            return "0"
        fmt = self._format
        if fmt is Format.BINARY_SI:
            if -1024 * _NANO < self._nanos < 1024 * _NANO or self._nanos % _NANO:
                fmt = Format.DECIMAL_SI  # small or fractional: binary would lose precision
            else:
                return _binary_string(self._nanos // _NANO)
        return _decimal_string(self._nanos, fmt)

    def __repr__(self) -> str:
        return f"Quantity({str(self)!r}, {self._format.value})"

    def __json__(self) -> str:  # convenience for callers building manifests
        return str(self)


def _binary_string(value: int) -> str:
    exponent = 0
    while value % 1024 == 0 and exponent < 60:
        value //= 1024
        exponent += 10
    return f"{value}{_BINARY_SUFFIX.get(exponent, '')}"


def _decimal_string(nanos: int, fmt: Format) -> str:
    mantissa, exponent = nanos, -9
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    remainder = exponent % 3  # Python's modulo is non-negative: step down to a multiple of 3
    mantissa *= 10**remainder
    exponent -= remainder
    if fmt is Format.DECIMAL_EXPONENT:
        return f"{mantissa}" if exponent == 0 else f"{mantissa}e{exponent}"
    suffix = _DECIMAL_SUFFIX.get(exponent)
    if suffix is None:  # beyond Exa: Go has no SI suffix either; exponent form stays exact
        return f"{mantissa}e{exponent}"
    return f"{mantissa}{suffix}"
