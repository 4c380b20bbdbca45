"""Go-faithful parsers: what Go's standard library (and KubeVirt's helpers) accept and reject."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netbind.admission import go_quote, is_ipv4, is_valid_port_name, parse_mac, parse_pci_address
from netbind.gocompat import MacAddressError


@pytest.mark.parametrize(("text", "octets"), [
    ("00:00:5e:00:53:01", "00005e005301"),
    ("00-00-5e-00-53-01", "00005e005301"),
    ("0000.5e00.5301", "00005e005301"),
    ("DE-AD-00-00-BE-AF", "dead0000beaf"),
    ("02:00:5e:10:00:00:00:01", "02005e1000000001"),
    ("0200.5e10.0000.0001", "02005e1000000001"),
    (":".join(["00"] * 19 + ["01"]), "00" * 19 + "01"),
    (".".join(["0000"] * 9 + ["0001"]), "00" * 19 + "01"),
])
def test_parse_mac_accepts_what_go_accepts(text, octets):
    assert parse_mac(text).hex() == octets


@pytest.mark.parametrize("text", [
    "", "de:ad:00:00:be", "01.02.03.04.05.06", "01:02:03:04:05:06:", "x1:02:03:04:05:06",
    "01002:03:04:05:06", "01:02003:04:05:06", "01:02:03:04:05006", "01-02:03:04:05:06",
    "01:02-03-04-05-06", "0123:4567:89AF", "0123-4567-89AF", "01:02:03:04:05:06:07",
    "00:00:5e:00:53:01 ", "0000.5e00.53010", "g0:00:5e:00:53:01", "00:00:5e:00:53:0é",
])
def test_parse_mac_rejects_what_go_rejects(text):
    with pytest.raises(MacAddressError):
        parse_mac(text)


@given(st.binary(min_size=6, max_size=6) | st.binary(min_size=8, max_size=8) | st.binary(min_size=20, max_size=20),
       st.sampled_from([":", "-", "."]), st.booleans())
def test_parse_mac_round_trips_every_accepted_form(octets, separator, upper):
    if separator == ".":
        text = ".".join(octets[i:i + 2].hex() for i in range(0, len(octets), 2))
    else:
        text = separator.join(f"{b:02x}" for b in octets)
    assert parse_mac(text.upper() if upper else text) == octets


@given(st.text(max_size=70))
def test_parse_mac_never_crashes(text):
    try:
        assert len(parse_mac(text)) in (6, 8, 20)
    except MacAddressError:
        pass


@pytest.mark.parametrize(("text", "ok"), [
    ("0000:81:11.1", True), ("AbCd:ef:01.7", True), ("0000:81:11", False), ("0000:81:11.8", False),
    ("0000:81:11.1\n", False), ("\uff10000:81:11.1", False), ("000g:81:11.1", False),
    ("00000:81:11.1", False), (" 0000:81:11.1", False), ("0000:81:11.10", False),
])
def test_parse_pci_address(text, ok):
    if ok:
        assert parse_pci_address(text) == tuple(text.replace(".", ":").split(":"))
    else:
        with pytest.raises(ValueError):
            parse_pci_address(text)


@pytest.mark.parametrize(("name", "ok"), [
    ("http", True), ("h-t-p", True), ("a", True), ("web8080", True), ("abcdefghijklmno", True),
    ("abcdefghijklmnop", False), ("1234", False), ("-http", False), ("http-", False), ("ht--tp", False),
    ("HTTP", False), ("ht_tp", False), ("http\n", False), ("", False), ("é", False),
])
def test_iana_port_names(name, ok):
    assert is_valid_port_name(name) is ok


@pytest.mark.parametrize(("text", "ok"), [
    ("10.0.0.1", True), ("0.0.0.0", True), ("::ffff:10.0.0.1", True), ("::ffff:a00:1", True),
    ("010.0.0.1", False), ("256.0.0.1", False), ("1.2.3", False), ("fd00::1", False), ("::1.2.3.4", False),
    ("1.2.3.4%eth0", False), ("::ffff:1.2.3.4%eth0", False), ("", False), ("not-an-ip", False), (" 1.2.3.4", False),
])
def test_ntp_server_ipv4_check(text, ok):
    assert is_ipv4(text) is ok


@pytest.mark.parametrize(("text", "quoted"), [
    ("default", '"default"'), ("", '""'), ('a"b\\', '"a\\"b\\\\"'), ("\n\t\r", '"\\n\\t\\r"'),
    ("\x00", '"\\x00"'), ("\x7f", '"\\x7f"'), ("\x1b", '"\\x1b"'), ("é", '"é"'), ("\u00a0", '"\\u00a0"'),
    ("\u200b", '"\\u200b"'), ("\U0001F600", '"\U0001F600"'), ("\U000E0001", '"\\U000e0001"'),
    ("a b", '"a b"'), ("\ud800", '"\ufffd"'),
])
def test_go_quote(text, quoted):
    assert go_quote(text) == quoted


@given(st.text(alphabet=st.characters(codec="ascii", min_codepoint=0x20, max_codepoint=0x7e)))
def test_go_quote_of_printable_ascii_matches_json_quoting(text):
    import json

    assert go_quote(text) == json.dumps(text)
