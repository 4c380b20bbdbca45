"""Kubernetes quantities: Go's canonical strings and format rules, and exact arithmetic."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from netbind.api.quantity import Format, Quantity, QuantityError

# (input, canonical String(), format) as Go's resource package gives them
GO_CASES = [
    ("500Mi", "500Mi", Format.BINARY_SI), ("1024Mi", "1Gi", Format.BINARY_SI),
    ("1.5Gi", "1536Mi", Format.BINARY_SI), ("50M", "50M", Format.DECIMAL_SI),
    ("100m", "100m", Format.DECIMAL_SI), ("0.5", "500m", Format.DECIMAL_SI),
    ("1000", "1k", Format.DECIMAL_SI), ("1500", "1500", Format.DECIMAL_SI),
    ("1e3", "1e3", Format.DECIMAL_EXPONENT), ("0", "0", Format.DECIMAL_SI),
    ("0.1n", "1n", Format.DECIMAL_SI), ("-1Gi", "-1Gi", Format.BINARY_SI),
    ("826540032", "826540032", Format.DECIMAL_SI), ("938240Ki", "938240Ki", Format.BINARY_SI),
    ("512Ki", "512Ki", Format.BINARY_SI), ("0.5Ki", "512", Format.BINARY_SI),
]


@pytest.mark.parametrize("text,canonical,fmt", GO_CASES)
def test_go_canonical_strings(text, canonical, fmt):
    quantity = Quantity.parse(text)
    assert str(quantity) == canonical
    assert quantity.format is fmt


def test_format_follows_go_add():
    # KubeVirt's compute request: 128Mi (BinarySI) + overhead (DecimalSI) stays binary
    assert str(Quantity.parse("128Mi").add(Quantity.parse("826540032"))) == "938240Ki"
    # a zero receiver takes the other operand's format (NewScaledQuantity(0, Kilo) + 1Gi)
    assert str(Quantity.scaled(0, 3).add(Quantity.parse("1Gi"))) == "1Gi"
    assert str(Quantity.scaled(0, 3).add(Quantity.parse("1334837248"))) == "1334837248"
    # small binary values print as decimal
    assert str(Quantity.parse("1Ki").sub(Quantity.parse("1000"))) == "24"


def test_value_rounds_up():
    assert Quantity.parse("100m").value() == 1
    assert Quantity.parse("128Mi").scaled_value(3) == 134218  # ceil(134217728 / 1000)


@pytest.mark.parametrize("bad", ["", "Mi", "1Zi", "1.2.3", "abc", "1 Mi"])
def test_bad_strings_are_refused(bad):
    with pytest.raises(QuantityError):
        Quantity.parse(bad)


integers = st.integers(min_value=-(2**62), max_value=2**62)
suffixes = st.sampled_from(["", "k", "M", "G", "m", "Ki", "Mi", "Gi", "Ti"])


@given(st.integers(min_value=0, max_value=10**12), suffixes)
def test_canonical_string_round_trips(number, suffix):
    quantity = Quantity.parse(f"{number}{suffix}")
    again = Quantity.parse(str(quantity))
    assert again == quantity
    assert str(again) == str(quantity)  # canonical strings are fixed points


@given(integers, integers)
def test_addition_is_exact(a, b):
    total = Quantity.of(a).add(Quantity.of(b))
    assert total.value() == a + b
    assert total.sub(Quantity.of(b)) == Quantity.of(a)


@given(st.integers(min_value=1, max_value=2**30), st.sampled_from(["Ki", "Mi", "Gi"]))
def test_binary_strings_use_largest_exact_suffix(number, suffix):
    text = str(Quantity.parse(f"{number}{suffix}"))
    assert Quantity.parse(text).value() == number * {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}[suffix]
    digits = text.rstrip("KMGTPEi")
    assert int(digits) % 1024 != 0  # nothing left to move into the suffix


@given(st.integers(min_value=1, max_value=10**15))
def test_decimal_strings_have_no_trailing_thousands(number):
    text = str(Quantity.of(number))
    digits = text.rstrip("kMGTPE")
    assert not digits.endswith("000")
    assert Quantity.parse(text).value() == number
