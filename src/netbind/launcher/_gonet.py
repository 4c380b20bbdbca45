"""Kubernetes quantities as virt-launcher's converter reads them."""
from __future__ import annotations

from netbind.api.quantity import Quantity


def quantity_value(value: str | int | float) -> int:
    """``Quantity.Value()``: rounded up to an integer."""
    return Quantity.parse(value).value()


def quantity_bytes(value: str | int | float) -> int:
    """virt-launcher's ``QuantityToByte``: the integer value, or ``Value()-1`` when fractional."""
    quantity = Quantity.parse(value)
    whole = quantity.value()
    return whole if quantity.nanos % 10**9 == 0 else whole - 1
