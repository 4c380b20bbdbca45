"""The pure protocol logic: what each request gets, byte for byte where an RFC fixes it."""
from __future__ import annotations

import struct
from ipaddress import IPv6Address

import pytest

from netbind.dhcp import ConfigError, DHCPv4Config, DHCPv6Config, RAConfig, vmi_dhcp_options
from netbind.dhcp import _ra, _v4, _v6
from netbind.dhcp._options import decode_domains, encode_domains
from netbind.dhcp.config import build

MAC = "52:54:00:6e:62:01"
MACB = bytes.fromhex(MAC.replace(":", ""))
V4 = DHCPv4Config(address="10.0.2.2/24", server_address="10.0.2.1", router="10.0.2.1",
                  dns=["10.96.0.10"], search=["default.svc.cluster.local"], mtu=1400,
                  routes=[{"destination": "10.10.0.0/16", "gateway": "10.0.2.254"}],
                  private_options={224: "hello"}, lease_time=3600)


def request(kind: int, *, mac: bytes = MACB, ciaddr: str = "0.0.0.0", giaddr: str = "0.0.0.0",
            options: bytes = b"", xid: int = 0x1234) -> bytes:
    from ipaddress import IPv4Address as A

    head = _v4.HEADER.pack(1, 1, 6, 0, xid, 0, 0x8000, A(ciaddr).packed, bytes(4), bytes(4),
                           A(giaddr).packed, mac + bytes(10), bytes(64), bytes(128))
    return head + _v4.MAGIC + bytes((53, 1, kind)) + options + b"\xff"


def options_of(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    pos = _v4.HEADER.size + 4
    while data[pos] != 255:
        if data[pos] == 0:
            pos += 1
            continue
        out[data[pos]] = out.get(data[pos], b"") + data[pos + 2:pos + 2 + data[pos + 1]]
        pos += 2 + data[pos + 1]
    return out


def test_discover_gets_an_offer_broadcast_with_every_option():
    reply = _v4.answer(_v4.Plan(V4, MAC), request(_v4.DISCOVER))
    assert reply.kind == _v4.OFFER and reply.destination == ("255.255.255.255", 68)
    assert reply.data[16:20] == bytes((10, 0, 2, 2))          # yiaddr
    assert reply.data[4:8] == struct.pack("!I", 0x1234)      # xid echoed
    opts = options_of(reply.data)
    assert opts[53] == bytes((2,)) and opts[54] == bytes((10, 0, 2, 1))
    assert opts[1] == bytes((255, 255, 255, 0)) and opts[3] == bytes((10, 0, 2, 1))
    assert opts[26] == struct.pack("!H", 1400) and opts[51] == struct.pack("!I", 3600)
    assert opts[224] == b"hello"
    assert decode_domains(opts[119]) == ["default.svc.cluster.local"]
    # RFC 3442: width, significant octets, gateway; the default route (router) comes last
    assert opts[121] == bytes((16, 10, 10, 10, 0, 2, 254, 0, 10, 0, 2, 1))


def test_classless_routes_encode_like_rfc3442():
    cfg = DHCPv4Config(address="10.0.2.2/24", server_address="10.0.2.1", routes=[
        {"destination": "10.0.0.0/8", "gateway": "10.1.2.3"},
        {"destination": "192.168.1.0/24", "gateway": "192.168.2.3"}])
    assert _v4.classless_routes(cfg) == bytes((8, 10, 10, 1, 2, 3, 24, 192, 168, 1, 192, 168, 2, 3))


def test_request_for_our_address_is_acked_and_others_nakked():
    plan = _v4.Plan(V4, MAC)
    ours = bytes((50, 4, 10, 0, 2, 2, 54, 4, 10, 0, 2, 1))
    assert _v4.answer(plan, request(_v4.REQUEST, options=ours)).kind == _v4.ACK
    wrong = bytes((50, 4, 10, 0, 2, 9))
    nak = _v4.answer(plan, request(_v4.REQUEST, options=wrong))
    assert nak.kind == _v4.NAK and nak.destination[0] == "255.255.255.255"
    assert nak.data[16:20] == bytes(4)
    # selecting another server: silence; INIT-REBOOT on another network: silence
    assert _v4.answer(plan, request(_v4.REQUEST, options=bytes((50, 4, 10, 0, 2, 2, 54, 4, 10, 0, 2, 7)))) is None
    assert _v4.answer(plan, request(_v4.REQUEST, options=bytes((50, 4, 192, 168, 0, 5)))) is None


def test_renewal_is_unicast_to_the_client_and_relay_replies_go_to_the_relay():
    plan = _v4.Plan(V4, MAC)
    renew = _v4.answer(plan, request(_v4.REQUEST, ciaddr="10.0.2.2"))
    assert renew.kind == _v4.ACK and renew.destination == ("10.0.2.2", 68)
    relayed = _v4.answer(plan, request(_v4.DISCOVER, giaddr="10.0.9.1"))
    assert relayed.destination == ("10.0.9.1", 67)


def test_inform_gets_configuration_without_a_lease():
    reply = _v4.answer(_v4.Plan(V4, MAC), request(_v4.INFORM, ciaddr="10.0.2.2"))
    opts = options_of(reply.data)
    assert reply.kind == _v4.ACK and 51 not in opts and 58 not in opts and opts[6]
    assert reply.data[16:20] == bytes(4) and reply.destination == ("10.0.2.2", 68)


@pytest.mark.parametrize("kind", [_v4.DECLINE, _v4.RELEASE])
def test_decline_and_release_get_no_reply(kind):
    assert _v4.answer(_v4.Plan(V4, MAC), request(kind)) is None


def test_another_mac_gets_nothing():
    plan = _v4.Plan(V4, MAC)
    for kind in (_v4.DISCOVER, _v4.REQUEST, _v4.INFORM):
        assert _v4.answer(plan, request(kind, mac=bytes.fromhex("525400000099"))) is None


def test_long_options_are_split_and_small_clients_get_what_fits():
    cfg = DHCPv4Config.model_validate({**V4.model_dump(), "private_options": {254: "x" * 300}})
    plan = _v4.Plan(cfg, MAC)
    big = _v4.answer(plan, request(_v4.DISCOVER, options=bytes((57, 2, 5, 220))))   # 1500
    assert options_of(big.data)[254] == b"x" * 300                                  # RFC 3396
    small = _v4.answer(plan, request(_v4.DISCOVER))
    assert len(small.data) <= 576 and 254 not in options_of(small.data)
    assert options_of(small.data)[1] == bytes((255, 255, 255, 0))


def test_domain_list_round_trip():
    names = ["a.example.com", "example.org"]
    assert decode_domains(encode_domains(names)) == names


# -- DHCPv6 ----------------------------------------------------------------------------------

V6 = DHCPv6Config(address="fd00:10::2/64", dns=["fd00:10::53"], search=["example.com"])
SERVER_DUID = _v6.duid_ll("02:00:00:00:00:01")


def v6msg(kind: int, *opts: tuple[int, bytes], duid: bytes | None = None) -> bytes:
    duid = _v6.duid_ll(MAC) if duid is None else duid
    body = struct.pack("!HH", 1, len(duid)) + duid
    for code, value in opts:
        body += struct.pack("!HH", code, len(value)) + value
    return bytes((kind,)) + b"\x01\x02\x03" + body


def v6opts(data: bytes, pos: int = 4) -> dict[int, bytes]:
    out = {}
    while pos < len(data):
        code, length = struct.unpack_from("!HH", data, pos)
        out[code] = data[pos + 4:pos + 4 + length]
        pos += 4 + length
    return out


IA = (_v6.O_IA_NA, struct.pack("!III", 7, 0, 0))
SID = (_v6.O_SERVERID, SERVER_DUID)


def test_solicit_gets_an_advertise_with_preference_255_or_a_rapid_reply():
    plan = _v6.Plan(V6, MAC, SERVER_DUID)
    adv = _v6.answer(plan, v6msg(_v6.SOLICIT, IA), None)
    opts = v6opts(adv.data)
    assert adv.kind == _v6.ADVERTISE and adv.data[1:4] == b"\x01\x02\x03"
    assert opts[_v6.O_PREFERENCE] == b"\xff" and opts[_v6.O_SERVERID] == SERVER_DUID
    ia = opts[_v6.O_IA_NA]
    assert struct.unpack_from("!III", ia) == (7, 1800, 2880)
    assert IPv6Address(ia[16:32]) == IPv6Address("fd00:10::2")
    assert opts[_v6.O_DNS] == IPv6Address("fd00:10::53").packed
    assert decode_domains(opts[_v6.O_DOMAINS]) == ["example.com"]
    rapid = _v6.answer(plan, v6msg(_v6.SOLICIT, IA, (_v6.O_RAPID_COMMIT, b"")), None)
    assert rapid.kind == _v6.REPLY and _v6.O_RAPID_COMMIT in v6opts(rapid.data)
    no_rapid = _v6.Plan(V6.model_copy(update={"rapid_commit": False}), MAC, SERVER_DUID)
    assert _v6.answer(no_rapid, v6msg(_v6.SOLICIT, IA, (_v6.O_RAPID_COMMIT, b"")), None).kind == _v6.ADVERTISE


def test_request_renew_rebind_need_the_right_server_id():
    plan = _v6.Plan(V6, MAC, SERVER_DUID)
    for kind in (_v6.REQUEST, _v6.RENEW):
        assert _v6.answer(plan, v6msg(kind, IA, SID), None).kind == _v6.REPLY
        assert _v6.answer(plan, v6msg(kind, IA, (_v6.O_SERVERID, b"\x00\x03\x00\x01" + bytes(6))), None) is None
        assert _v6.answer(plan, v6msg(kind, IA), None) is None
    assert _v6.answer(plan, v6msg(_v6.REBIND, IA), None).kind == _v6.REPLY
    assert _v6.answer(plan, v6msg(_v6.RELEASE, IA, SID), None).kind == _v6.REPLY


def test_confirm_says_whether_the_address_is_on_link():
    plan = _v6.Plan(V6, MAC, SERVER_DUID)

    def confirm(addr: str) -> int:
        ia = struct.pack("!III", 7, 0, 0) + struct.pack("!HH", 5, 24) + IPv6Address(addr).packed + bytes(8)
        reply = _v6.answer(plan, v6msg(_v6.CONFIRM, (_v6.O_IA_NA, ia)), None)
        return struct.unpack_from("!H", v6opts(reply.data)[_v6.O_STATUS])[0]

    assert confirm("fd00:10::2") == _v6.SUCCESS
    assert confirm("fd00:99::2") == _v6.NOT_ON_LINK


def test_information_request_and_other_ias():
    plan = _v6.Plan(V6, MAC, SERVER_DUID)
    info = _v6.answer(plan, v6msg(_v6.INFORMATION_REQUEST), None)
    assert info.kind == _v6.REPLY and _v6.O_IA_NA not in v6opts(info.data) and _v6.O_DNS in v6opts(info.data)
    both = _v6.answer(plan, v6msg(_v6.SOLICIT, IA, (_v6.O_IA_NA, struct.pack("!III", 8, 0, 0)),
                                  (_v6.O_IA_PD, struct.pack("!III", 9, 0, 0))), None)
    assert both.data.count(struct.pack("!H", _v6.NO_ADDRS_AVAIL)) >= 1
    assert _v6.O_IA_PD in v6opts(both.data)


def test_v6_client_is_recognised_by_duid_or_eui64_source_only():
    plan = _v6.Plan(V6, MAC, SERVER_DUID)
    llt = b"\x00\x01\x00\x01" + bytes(4) + MACB
    en = b"\x00\x02\x00\x00\x00\x09" + b"guest-1"
    assert _v6.answer(plan, v6msg(_v6.SOLICIT, IA, duid=llt), None) is not None
    assert _v6.answer(plan, v6msg(_v6.SOLICIT, IA, duid=en), None) is None
    assert _v6.answer(plan, v6msg(_v6.SOLICIT, IA, duid=en), _v6.eui64_link_local(MAC)) is not None
    assert _v6.answer(plan, v6msg(_v6.SOLICIT, IA, duid=_v6.duid_ll("52:54:00:00:00:99")), None) is None
    known = _v6.Plan(V6.model_copy(update={"client_duid": en}), MAC, SERVER_DUID)
    assert _v6.answer(known, v6msg(_v6.SOLICIT, IA, duid=en), None) is not None


# -- RA --------------------------------------------------------------------------------------

def test_router_advertisement_decodes_with_scapy():
    from scapy.layers.inet6 import (ICMPv6ND_RA, ICMPv6NDOptMTU, ICMPv6NDOptPrefixInfo,
                                    ICMPv6NDOptRDNSS, ICMPv6NDOptSrcLLAddr)

    cfg = RAConfig(prefixes=["fd00:10::/64"], mtu=1400, rdnss=["fd00:10::53", "fd00:10::54"])
    ra = ICMPv6ND_RA(_ra.advertisement(cfg, bytes.fromhex("020000000001")))
    assert (ra.M, ra.O, ra.routerlifetime) == (1, 1, 1800)
    assert ra[ICMPv6NDOptMTU].mtu == 1400
    assert ra[ICMPv6NDOptSrcLLAddr].lladdr == "02:00:00:00:00:01"
    p = ra[ICMPv6NDOptPrefixInfo]
    assert (p.prefix, p.prefixlen, p.L, p.A) == ("fd00:10::", 64, 1, 0)
    assert list(ra[ICMPv6NDOptRDNSS].dns) == ["fd00:10::53", "fd00:10::54"]


def test_router_solicitations_from_others_are_ignored():
    ll = _v6.eui64_link_local(MAC)
    rs = bytes((133, 0, 0, 0, 0, 0, 0, 0))
    assert _ra.solicited_by(rs + bytes((1, 1)) + MACB, ll, MACB, ll)
    assert not _ra.solicited_by(rs + bytes((1, 1)) + bytes(6), ll, MACB, ll)
    assert _ra.solicited_by(rs, IPv6Address("::"), MACB, ll)
    assert not _ra.solicited_by(rs, IPv6Address("fe80::1"), MACB, ll)
    assert not _ra.solicited_by(rs + bytes((1, 0)), ll, MACB, ll)       # zero-length option


# -- configuration ---------------------------------------------------------------------------

@pytest.mark.parametrize("data, field", [
    ({"client_mac": "52:54:00:zz:00:01"}, "client_mac"),
    ({"client_mac": "01:00:5e:00:00:01"}, "client_mac"),
    ({"interface": "a/b"}, "interface"),
    ({"v4": {"address": "10.0.2.2/24", "server_address": "10.0.2.2"}}, "v4.server_address"),
    ({"v4": {"address": "10.0.2.255/24", "server_address": "10.0.2.1"}}, "v4.address"),
    ({"v4": {"address": "10.0.2.2/24", "server_address": "10.0.2.1", "search": ["-bad.com"]}}, "v4.search"),
    ({"v4": {"address": "10.0.2.2/24", "server_address": "10.0.2.1", "private_options": {12: "x"}}},
     "v4.private_options"),
    ({"v4": {"address": "10.0.2.2/24", "server_address": "10.0.2.1", "mtu": 20}}, "v4.mtu"),
    ({"v4": {"address": "10.0.2.2/24", "server_address": "10.0.2.1", "ntp": ["ntp.example"]}}, "v4.ntp"),
    ({"v6": {"address": "fe80::2/64"}}, "v6.address"),
    ({"v6": {"address": "fd00::2/64", "client_duid": "zz"}}, "v6.client_duid"),
    ({"ra": {"prefixes": ["fe80::/64"]}}, "ra.prefixes"),
    ({"ra": {"mtu": 1000}}, "ra.mtu"),
    ({}, "config"),
])
def test_bad_configuration_names_the_field(data, field):
    base = {"interface": "eth0", "client_mac": MAC, **data}
    with pytest.raises(ConfigError) as err:
        build(base)
    assert str(err.value).startswith(f"{field}: "), str(err.value)


def test_vmi_dhcp_options_become_server_options():
    from netbind.api.models import DHCPOptions

    opts = DHCPOptions.model_validate({"ntpServers": ["10.0.0.123"], "tftpServerName": "tftp",
                                       "bootFileName": "boot.ipxe",
                                       "privateOptions": [{"option": 240, "value": "extra"}]})
    cfg = DHCPv4Config(address="10.0.2.2/24", server_address="10.0.2.1", **vmi_dhcp_options(opts))
    reply = _v4.answer(_v4.Plan(cfg, MAC), request(_v4.DISCOVER, options=bytes((57, 2, 5, 220))))
    got = options_of(reply.data)
    assert got[42] == bytes((10, 0, 0, 123)) and got[240] == b"extra"
    assert got[66] == b"tftp" and got[67] == b"boot.ipxe"
