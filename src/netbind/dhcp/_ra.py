"""Router advertisements (RFC 4861) with MTU, prefix information and RDNSS (RFC 8106). Pure.

The kernel fills in the ICMPv6 checksum of a raw ICMPv6 socket, so the message is built with 0.
"""
from __future__ import annotations

import struct
from ipaddress import IPv6Address

from netbind.dhcp.config import RAConfig

ROUTER_SOLICITATION, ROUTER_ADVERTISEMENT = 133, 134
O_SLLA, O_PREFIX, O_MTU, O_RDNSS = 1, 3, 5, 25
ALL_NODES, ALL_ROUTERS = "ff02::1", "ff02::2"
FLAG_MANAGED, FLAG_OTHER = 0x80, 0x40
PREFIX_ON_LINK, PREFIX_AUTONOMOUS = 0x80, 0x40


def advertisement(config: RAConfig, server_mac: bytes) -> bytes:
    flags = (FLAG_MANAGED if config.managed else 0) | (FLAG_OTHER if config.other else 0)
    out = bytearray(struct.pack("!BBHBBHII", ROUTER_ADVERTISEMENT, 0, 0, 64, flags,
                                config.router_lifetime, 0, 0))
    if len(server_mac) == 6:
        out += bytes((O_SLLA, 1)) + server_mac
    if config.mtu is not None:
        out += struct.pack("!BBHI", O_MTU, 1, 0, config.mtu)
    pflags = PREFIX_ON_LINK | (PREFIX_AUTONOMOUS if config.autonomous else 0)
    for prefix in config.prefixes:
        # RFC 4862 5.5.3: lifetimes of 2 h are the floor a host honours for unauthenticated RAs
        out += struct.pack("!BBBBIII", O_PREFIX, 4, prefix.prefixlen, pflags, 86400, 14400, 0)
        out += prefix.network_address.packed
    if config.rdnss:
        out += struct.pack("!BBHI", O_RDNSS, 1 + 2 * len(config.rdnss), 0, config.rdnss_lifetime)
        out += b"".join(a.packed for a in config.rdnss)
    return bytes(out)


def solicited_by(packet: bytes, source: IPv6Address | None, client_mac: bytes,
                 client_link_local: IPv6Address) -> bool:
    """True for a well-formed router solicitation from our client (RFC 4861 6.1.1 checks)."""
    if len(packet) < 8 or packet[0] != ROUTER_SOLICITATION or packet[1] != 0:
        return False
    pos, slla = 8, None
    while pos < len(packet):
        if pos + 2 > len(packet) or packet[pos + 1] == 0:
            return False          # a zero-length option is invalid: drop the message
        length = packet[pos + 1] * 8
        if pos + length > len(packet):
            return False
        if packet[pos] == O_SLLA:
            slla = packet[pos + 2:pos + 8]
        pos += length
    if slla is not None:
        return slla == client_mac and source != IPv6Address(0)
    return source in (IPv6Address(0), client_link_local)
