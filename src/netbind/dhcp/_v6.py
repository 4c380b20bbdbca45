"""DHCPv6 (RFC 8415 subset) for one client: one IA_NA address, DNS, rapid commit. Pure.

The client is recognised without seeing its frames (a UDP socket gives no link-layer source):
by a DUID-LL or DUID-LLT that carries the client MAC, by an EUI-64 link-local source derived from
it, or by a DUID given in the configuration.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

from netbind.dhcp._options import encode_domains
from netbind.dhcp.config import DHCPv6Config

SOLICIT, ADVERTISE, REQUEST, CONFIRM, RENEW, REBIND, REPLY, RELEASE, DECLINE = range(1, 10)
INFORMATION_REQUEST = 11
MESSAGE_NAMES = {1: "SOLICIT", 2: "ADVERTISE", 3: "REQUEST", 4: "CONFIRM", 5: "RENEW", 6: "REBIND",
                 7: "REPLY", 8: "RELEASE", 9: "DECLINE", 11: "INFORMATION-REQUEST"}
CLIENT_PORT, SERVER_PORT = 546, 547
ALL_SERVERS = "ff02::1:2"

O_CLIENTID, O_SERVERID, O_IA_NA, O_IA_TA, O_IAADDR, O_ORO, O_PREFERENCE = 1, 2, 3, 4, 5, 6, 7
O_STATUS, O_RAPID_COMMIT, O_DNS, O_DOMAINS, O_IA_PD = 13, 14, 23, 24, 25
SUCCESS, NO_ADDRS_AVAIL, NO_BINDING, NOT_ON_LINK, NO_PREFIX_AVAIL = 0, 2, 3, 4, 6


@dataclass(frozen=True)
class Request:
    kind: int
    xid: bytes
    client_id: bytes
    server_id: bytes | None
    ia_na: tuple[tuple[int, tuple[IPv6Address, ...]], ...]   # (IAID, addresses asked for)
    ia_ta: tuple[int, ...]
    ia_pd: tuple[int, ...]
    rapid_commit: bool


@dataclass(frozen=True)
class Reply:
    kind: int
    data: bytes


def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("!HH", code, len(value)) + value


def duid_ll(mac: str) -> bytes:
    return b"\x00\x03\x00\x01" + bytes.fromhex(mac.replace(":", ""))


def eui64_link_local(mac: str) -> IPv6Address:
    b = bytearray(bytes.fromhex(mac.replace(":", "")))
    b[0] ^= 0x02
    return IPv6Address(b"\xfe\x80" + bytes(6) + bytes(b[:3]) + b"\xff\xfe" + bytes(b[3:]))


class Plan:
    def __init__(self, config: DHCPv6Config, client_mac: str, server_duid: bytes) -> None:
        self.config = config
        self.mac = bytes.fromhex(client_mac.replace(":", ""))
        self.link_local = eui64_link_local(client_mac)
        self.server_duid = server_duid
        self.address = config.address.ip
        self.network = config.address.network
        self.t1 = config.preferred_lifetime // 2
        self.t2 = config.preferred_lifetime * 4 // 5
        info = b""
        if config.dns:
            info += _opt(O_DNS, b"".join(a.packed for a in config.dns))
        if config.search:
            info += _opt(O_DOMAINS, encode_domains(config.search))
        self.info = info
        self.iaaddr = _opt(O_IAADDR, self.address.packed + struct.pack(
            "!II", config.preferred_lifetime, config.valid_lifetime))

    def is_client(self, client_id: bytes, source: IPv6Address | None) -> bool:
        if self.config.client_duid is not None and client_id == self.config.client_duid:
            return True
        if len(client_id) >= 4:
            duid_type, hw_type = struct.unpack_from("!HH", client_id)
            if hw_type == 1:
                if duid_type == 3 and client_id[4:] == self.mac:         # DUID-LL
                    return True
                if duid_type == 1 and client_id[8:] == self.mac:         # DUID-LLT
                    return True
        return source is not None and source == self.link_local


def parse(packet: bytes) -> Request | None:
    if len(packet) < 4 or packet[0] not in MESSAGE_NAMES or packet[0] in (ADVERTISE, REPLY):
        return None
    options = _options(packet, 4)
    if options is None:
        return None
    client_id = server_id = None
    ia_na: list[tuple[int, tuple[IPv6Address, ...]]] = []
    ia_ta: list[int] = []
    ia_pd: list[int] = []
    rapid = False
    for code, value in options:
        if code == O_CLIENTID and client_id is None:
            client_id = value
        elif code == O_SERVERID and server_id is None:
            server_id = value
        elif code == O_IA_NA:
            if len(value) < 12:
                return None
            inner = _options(value, 12)
            if inner is None:
                return None
            addrs = tuple(IPv6Address(v[:16]) for c, v in inner if c == O_IAADDR and len(v) >= 24)
            ia_na.append((struct.unpack_from("!I", value)[0], addrs))
        elif code == O_IA_TA and len(value) >= 4:
            ia_ta.append(struct.unpack_from("!I", value)[0])
        elif code == O_IA_PD and len(value) >= 12:
            ia_pd.append(struct.unpack_from("!I", value)[0])
        elif code == O_RAPID_COMMIT:
            rapid = True
    if not client_id and packet[0] != INFORMATION_REQUEST:
        return None
    return Request(kind=packet[0], xid=packet[1:4], client_id=client_id or b"",
                   server_id=server_id, ia_na=tuple(ia_na), ia_ta=tuple(ia_ta),
                   ia_pd=tuple(ia_pd), rapid_commit=rapid)


def _options(data: bytes, pos: int) -> list[tuple[int, bytes]] | None:
    out = []
    while pos < len(data):
        if pos + 4 > len(data):
            return None
        code, length = struct.unpack_from("!HH", data, pos)
        value = data[pos + 4:pos + 4 + length]
        if len(value) != length:
            return None
        out.append((code, value))
        pos += 4 + length
    return out


def answer(plan: Plan, packet: bytes, source: IPv6Address | None) -> Reply | None:
    req = parse(packet)
    if req is None:
        return None
    if req.kind == INFORMATION_REQUEST:
        # no IA, no binding; a client ID is optional here, but if there is one it must be ours
        if req.client_id and not plan.is_client(req.client_id, source):
            return None
        if not req.client_id and source != plan.link_local:
            return None
        if req.server_id is not None and req.server_id != plan.server_duid:
            return None
        return _reply(plan, req, REPLY, plan.info)
    if not plan.is_client(req.client_id, source):
        return None
    if req.kind in (REQUEST, RENEW, RELEASE, DECLINE) and req.server_id != plan.server_duid:
        return None                       # meant for another server (or malformed): RFC 8415 16
    if req.kind in (SOLICIT, REBIND, CONFIRM) and req.server_id is not None:
        return None                       # these must not carry a server ID
    if req.kind == SOLICIT:
        if req.rapid_commit and plan.config.rapid_commit:
            return _reply(plan, req, REPLY, _opt(O_RAPID_COMMIT, b"") + _ias(plan, req) + plan.info)
        return _reply(plan, req, ADVERTISE, _opt(O_PREFERENCE, b"\xff") + _ias(plan, req) + plan.info)
    if req.kind in (REQUEST, RENEW, REBIND):
        return _reply(plan, req, REPLY, _ias(plan, req) + plan.info)
    if req.kind == CONFIRM:
        asked = [a for _, addrs in req.ia_na for a in addrs]
        if not asked:
            return None                   # nothing to confirm: RFC 8415 18.3.3 says stay silent
        ok = all(a in plan.network for a in asked)
        return _reply(plan, req, REPLY, _status(SUCCESS if ok else NOT_ON_LINK,
                                                "on link" if ok else "not on link"))
    if req.kind in (RELEASE, DECLINE):
        return _reply(plan, req, REPLY, _status(SUCCESS, "released" if req.kind == RELEASE else "noted"))
    return None


def _status(code: int, message: str) -> bytes:
    return _opt(O_STATUS, struct.pack("!H", code) + message.encode())


def _ias(plan: Plan, req: Request) -> bytes:
    """Our one address in the first IA_NA; every other IA gets a status saying there is none."""
    out = bytearray()
    for i, (iaid, _addrs) in enumerate(req.ia_na):
        if i == 0:
            out += _opt(O_IA_NA, struct.pack("!III", iaid, plan.t1, plan.t2) + plan.iaaddr)
        else:
            out += _opt(O_IA_NA, struct.pack("!III", iaid, 0, 0) + _status(NO_ADDRS_AVAIL, "one address per client"))
    for iaid in req.ia_ta:
        out += _opt(O_IA_TA, struct.pack("!I", iaid) + _status(NO_ADDRS_AVAIL, "no temporary addresses"))
    for iaid in req.ia_pd:
        out += _opt(O_IA_PD, struct.pack("!III", iaid, 0, 0) + _status(NO_PREFIX_AVAIL, "no prefixes"))
    if not req.ia_na and req.kind in (SOLICIT, REQUEST) and not req.ia_ta and not req.ia_pd:
        out += _status(NO_ADDRS_AVAIL, "no IA_NA in the request")
    return bytes(out)


def _reply(plan: Plan, req: Request, kind: int, body: bytes) -> Reply:
    head = bytes((kind,)) + req.xid
    ids = _opt(O_SERVERID, plan.server_duid)
    if req.client_id:
        ids = _opt(O_CLIENTID, req.client_id) + ids
    return Reply(kind, head + ids + body)


def message_name(kind: int) -> str:
    return MESSAGE_NAMES.get(kind, str(kind))
