"""DHCPv4 (RFC 2131/2132) for one client: parse a request, decide, encode the reply. Pure.

``answer(plan, packet)`` is the whole server logic: bytes in, ``Reply`` (bytes and where to send
them) or None out. Anything malformed, from another MAC, or not for us gives None.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from netbind.dhcp._options import encode_domains
from netbind.dhcp.config import INFINITY, DHCPv4Config

MAGIC = b"\x63\x82\x53\x63"
HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")   # 236 bytes before the magic cookie
BOOTREQUEST, BOOTREPLY = 1, 2
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MESSAGE_NAMES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK",
                 7: "RELEASE", 8: "INFORM"}
CLIENT_PORT, SERVER_PORT = 68, 67
BROADCAST = "255.255.255.255"
MIN_SIZE = 576        # every client accepts this (RFC 2131 section 2)
_ZERO4 = bytes(4)

# option codes
O_PAD, O_END = 0, 255
O_MASK, O_ROUTER, O_DNS, O_HOSTNAME, O_DOMAIN, O_MTU, O_NTP = 1, 3, 6, 12, 15, 26, 42
O_REQUESTED_IP, O_LEASE, O_OVERLOAD, O_TYPE, O_SERVER_ID, O_PRL = 50, 51, 52, 53, 54, 55
O_MESSAGE, O_MAX_SIZE, O_T1, O_T2, O_TFTP, O_BOOTFILE = 56, 57, 58, 59, 66, 67
O_SEARCH, O_CLASSLESS = 119, 121


@dataclass(frozen=True)
class Request:
    kind: int
    xid: int
    flags: int
    ciaddr: bytes
    giaddr: bytes
    chaddr: bytes       # the 6-byte hardware address
    requested_ip: bytes | None
    server_id: bytes | None
    max_size: int


@dataclass(frozen=True)
class Reply:
    kind: int
    data: bytes
    destination: tuple[str, int]


class Plan:
    """The encoded options of one configuration (built once; every reply reuses them)."""

    def __init__(self, config: DHCPv4Config, client_mac: str) -> None:
        self.config = config
        self.mac = bytes.fromhex(client_mac.replace(":", ""))
        self.yiaddr = config.address.ip.packed
        self.server_id = config.server_address.packed
        self.network = config.address.network
        self.lease = encode_lease_options(config)   # 51, 58, 59 (not in INFORM replies)
        self.options = encode_config_options(config)
        # header, cookie, type, server ID, lease options, options, end
        self.largest_reply = HEADER.size + 4 + 3 + 6 + len(self.lease) + len(self.options) + 1


def _opt(code: int, value: bytes) -> bytes:
    """One option; values over 255 bytes become consecutive instances (RFC 3396)."""
    if not value:
        return bytes((code, 0))
    return b"".join(bytes((code, len(value[i:i + 255]))) + value[i:i + 255]
                    for i in range(0, len(value), 255))


def classless_routes(config: DHCPv4Config) -> bytes:
    """Option 121 (RFC 3442): width, significant destination octets, gateway; default route last.

    A client that takes option 121 ignores option 3, so the router goes in as 0.0.0.0/0 too.
    """
    routes = [(r.destination, r.gateway) for r in config.routes]
    if config.router is not None and not any(d.prefixlen == 0 for d, _ in routes):
        routes.append((IPv4Network("0.0.0.0/0"), config.router))
    routes.sort(key=lambda r: r[0].prefixlen == 0)
    out = bytearray()
    for dest, gw in routes:
        width = dest.prefixlen
        out.append(width)
        out += dest.network_address.packed[:(width + 7) // 8]
        out += gw.packed
    return bytes(out)


def encode_lease_options(c: DHCPv4Config) -> bytes:
    lease = c.lease_time
    out = _opt(O_LEASE, struct.pack("!I", lease))
    if lease != INFINITY:
        out += _opt(O_T1, struct.pack("!I", lease // 2)) + _opt(O_T2, struct.pack("!I", lease * 7 // 8))
    return out


def encode_config_options(c: DHCPv4Config) -> bytes:
    out = bytearray(_opt(O_MASK, c.address.netmask.packed))
    if c.router is not None:
        out += _opt(O_ROUTER, c.router.packed)
    if c.dns:
        out += _opt(O_DNS, b"".join(a.packed for a in c.dns))
    if c.hostname:
        out += _opt(O_HOSTNAME, c.hostname.encode())
    if c.domain_name:
        out += _opt(O_DOMAIN, c.domain_name.encode())
    if c.mtu is not None:
        out += _opt(O_MTU, struct.pack("!H", c.mtu))
    if c.ntp:
        out += _opt(O_NTP, b"".join(a.packed for a in c.ntp))
    if c.tftp_server_name:
        out += _opt(O_TFTP, c.tftp_server_name.encode())
    if c.boot_file_name:
        out += _opt(O_BOOTFILE, c.boot_file_name.encode())
    if c.search:
        out += _opt(O_SEARCH, encode_domains(c.search))
    if c.routes:
        out += _opt(O_CLASSLESS, classless_routes(c))
    for code in sorted(c.private_options):
        out += _opt(code, c.private_options[code].encode())
    return bytes(out)


def parse(packet: bytes) -> Request | None:
    """The fields we act on, or None if the packet is not a well-formed Ethernet BOOTREQUEST."""
    if len(packet) < HEADER.size + 4 or packet[HEADER.size:HEADER.size + 4] != MAGIC:
        return None
    op, htype, hlen, _hops, xid, _secs, flags, ciaddr, _y, _s, giaddr, chaddr, _sname, _file = \
        HEADER.unpack_from(packet)
    if op != BOOTREQUEST or htype != 1 or hlen != 6:
        return None
    options: dict[int, bytes] = {}
    pos, end = HEADER.size + 4, len(packet)
    while pos < end:
        code = packet[pos]
        if code == O_PAD:
            pos += 1
            continue
        if code == O_END:
            break
        if pos + 1 >= end:
            return None
        length = packet[pos + 1]
        value = packet[pos + 2:pos + 2 + length]
        if len(value) != length:
            return None
        options[code] = options.get(code, b"") + value   # RFC 3396 concatenation
        pos += 2 + length
    kind = options.get(O_TYPE, b"")
    if len(kind) != 1 or kind[0] not in (DISCOVER, REQUEST, DECLINE, RELEASE, INFORM):
        return None
    requested = options.get(O_REQUESTED_IP)
    server_id = options.get(O_SERVER_ID)
    size = options.get(O_MAX_SIZE, b"")
    max_size = struct.unpack("!H", size)[0] if len(size) == 2 else MIN_SIZE
    return Request(kind=kind[0], xid=xid, flags=flags, ciaddr=ciaddr, giaddr=giaddr,
                   chaddr=chaddr[:6], requested_ip=requested if requested and len(requested) == 4 else None,
                   server_id=server_id if server_id and len(server_id) == 4 else None,
                   max_size=max(MIN_SIZE, max_size))


def answer(plan: Plan, packet: bytes) -> Reply | None:
    req = parse(packet)
    if req is None or req.chaddr != plan.mac:
        return None
    if req.kind == DISCOVER:
        return _reply(plan, req, OFFER)
    if req.kind == REQUEST:
        if req.server_id is not None and req.server_id != plan.server_id:
            return None                      # the client chose another server: stay silent
        wanted = req.requested_ip or (req.ciaddr if req.ciaddr != _ZERO4 else None)
        if wanted != plan.yiaddr:
            if req.server_id is None and wanted is not None and \
                    IPv4Address(wanted) not in plan.network:
                return None                  # INIT-REBOOT on another network: not ours to judge
            return _reply(plan, req, NAK)
        return _reply(plan, req, ACK)
    if req.kind == INFORM:
        return _reply(plan, req, ACK, inform=True)
    return None                              # DECLINE, RELEASE: nothing to send (logged by caller)


def _reply(plan: Plan, req: Request, kind: int, *, inform: bool = False) -> Reply:
    yiaddr = _ZERO4 if kind == NAK or inform else plan.yiaddr
    ciaddr = req.ciaddr if inform else _ZERO4
    header = HEADER.pack(BOOTREPLY, 1, 6, 0, req.xid, 0, req.flags, ciaddr, yiaddr, _ZERO4,
                         req.giaddr, req.chaddr + bytes(10), bytes(64), bytes(128))
    opts = _opt(O_TYPE, bytes((kind,))) + _opt(O_SERVER_ID, plan.server_id)
    if kind == NAK:
        opts += _opt(O_MESSAGE, b"requested address is not this client's")
    else:
        if not inform:
            opts += plan.lease
        body = plan.options
        if len(header) + 4 + len(opts) + len(body) + 1 > req.max_size:
            body = _trim(body, req.max_size - len(header) - 4 - len(opts) - 1)
        opts += body
    data = header + MAGIC + opts + b"\xff"
    if len(data) < 300:       # BOOTP minimum; some relays and old clients drop shorter packets
        data += bytes(300 - len(data))
    if req.giaddr != _ZERO4:
        dest = (str(IPv4Address(req.giaddr)), SERVER_PORT)
    elif kind != NAK and req.ciaddr != _ZERO4:
        dest = (str(IPv4Address(req.ciaddr)), CLIENT_PORT)
    else:
        # No raw socket: the client has no address yet, so it hears an L2 broadcast (RFC 2131
        # allows it; udhcpc, dhclient and every firmware client listen for it).
        dest = (BROADCAST, CLIENT_PORT)
    return Reply(kind, data, dest)


def _trim(options: bytes, room: int) -> bytes:
    """Whole options in order until ``room`` is used (a client's small maximum message size)."""
    out, pos = bytearray(), 0
    while pos < len(options):
        length = 2 + options[pos + 1]
        if len(out) + length > room:
            break
        out += options[pos:pos + length]
        pos += length
    return bytes(out)


def message_name(kind: int) -> str:
    return MESSAGE_NAMES.get(kind, str(kind))
