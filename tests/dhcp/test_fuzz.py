"""Hostile input: random, truncated and mutated packets never crash the logic, and nothing but our
client's MAC (or DUID) ever gets an answer."""
from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netbind.dhcp import DHCPv4Config
from netbind.dhcp import _ra, _v4, _v6

from .test_codec import MAC, MACB, SERVER_DUID, V4, V6, request, v6msg

PLAN4 = _v4.Plan(DHCPv4Config.model_validate({**V4.model_dump(), "private_options": {254: "y" * 400}}), MAC)
PLAN6 = _v6.Plan(V6, MAC, SERVER_DUID)
FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

valid_v4 = st.sampled_from([request(k) for k in (1, 3, 4, 7, 8)] +
                           [request(3, options=bytes((50, 4, 10, 0, 2, 2, 54, 4, 10, 0, 2, 1, 57, 2, 2, 0)))])
valid_v6 = st.sampled_from([v6msg(k, (3, struct.pack("!III", 1, 0, 0)), (2, SERVER_DUID)) for k in (1, 3, 5, 6, 8)] +
                           [v6msg(11), v6msg(1, (14, b""))])


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    return bytes(buf[:cut] if cut is not None else buf)


def check_v4(packet: bytes) -> None:
    reply = _v4.answer(PLAN4, packet)
    if reply is not None:
        assert packet[28:34] == MACB                  # only our client's chaddr is answered
        assert reply.data[28:34] == MACB
        assert len(reply.data) <= max(576, 1500)


@FAST
@given(st.binary(max_size=700))
def test_random_bytes_v4(packet):
    check_v4(packet)


@FAST
@given(valid_v4, st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=8),
       st.none() | st.integers(0, 400))
def test_mutated_v4(packet, edits, cut):
    check_v4(mutate(packet, edits, cut))


@FAST
@given(valid_v4, st.binary(min_size=6, max_size=6).filter(lambda m: m != MACB))
def test_other_macs_never_answered_v4(packet, mac):
    assert _v4.answer(PLAN4, packet[:28] + mac + packet[34:]) is None


def check_v6(packet: bytes, source) -> None:
    reply = _v6.answer(PLAN6, packet, source)
    if reply is not None:
        req = _v6.parse(packet)
        assert req is not None and (PLAN6.is_client(req.client_id, source) or not req.client_id)


@FAST
@given(st.binary(max_size=600), st.sampled_from([None, _v6.eui64_link_local("02:00:00:00:00:09")]))
def test_random_bytes_v6(packet, source):
    check_v6(packet, source)


@FAST
@given(valid_v6, st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=8),
       st.none() | st.integers(0, 120))
def test_mutated_v6(packet, edits, cut):
    check_v6(mutate(packet, edits, cut), None)


@FAST
@given(st.binary(min_size=6, max_size=6).filter(lambda m: m != MACB), st.integers(1, 11))
def test_other_duids_never_answered_v6(mac, kind):
    packet = v6msg(kind, (3, struct.pack("!III", 1, 0, 0)), (2, SERVER_DUID), duid=b"\x00\x03\x00\x01" + mac)
    assert _v6.answer(PLAN6, packet, None) is None


@FAST
@given(st.binary(max_size=200))
def test_random_router_solicitations(packet):
    ll = _v6.eui64_link_local(MAC)
    if _ra.solicited_by(packet, ll, MACB, ll):
        assert packet[0] == 133
