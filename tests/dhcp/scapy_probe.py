"""An independent decoder of what the server sends: run inside the client namespace as
``python scapy_probe.py v4|v6|ra IFACE MAC``; prints the decoded answer as JSON (or null).

Packets are built and decoded by scapy; they travel through a plain AF_PACKET socket.
"""
from __future__ import annotations

import json
import random
import socket
import sys
import time


def _exchange(iface: str, frame: bytes, match, timeout: float = 5.0):
    from scapy.layers.l2 import Ether

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((iface, 0))
    sock.settimeout(0.2)
    try:
        sock.send(frame)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65535)
            except socket.timeout:
                continue
            pkt = Ether(data)
            if match(pkt):
                return pkt
        return None
    finally:
        sock.close()


def _plain(value):
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value.hex()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (int, float, str, type(None))) else str(value)


def v4(iface: str, mac: str, size: int) -> dict | None:
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    xid = random.getrandbits(32)
    frame = (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") /
             UDP(sport=68, dport=67) / BOOTP(chaddr=bytes.fromhex(mac.replace(":", "")), xid=xid) /
             DHCP(options=[("message-type", "discover"), ("max_dhcp_size", size), "end"]))
    pkt = _exchange(iface, bytes(frame), lambda p: BOOTP in p and p[BOOTP].op == 2 and p[BOOTP].xid == xid)
    if pkt is None:
        return None
    options: dict = {}
    for opt in pkt[DHCP].options:
        if isinstance(opt, tuple):
            key = str(opt[0])
            value = _plain(list(opt[1:]) if len(opt) > 2 else opt[1])
            options[key] = options[key] + value if key in options and isinstance(value, str) else value
    if "119" in options:   # RFC 3397: scapy has no name for it; its DNS name reader decodes it
        from scapy.layers.dns import dns_get_str

        raw, names = options["119"].encode(), []
        while raw:
            name, raw = dns_get_str(raw)[:2]
            names.append(name.decode().rstrip("."))
        options["119"] = names
    return {"yiaddr": pkt[BOOTP].yiaddr, "dst": pkt[IP].dst, "eth_dst": pkt[Ether].dst,
            "options": options, "length": len(pkt[BOOTP])}


def v6(iface: str, mac: str, rapid: bool) -> dict | None:
    from scapy.layers.dhcp6 import (DHCP6_Solicit, DHCP6OptClientId, DHCP6OptDNSDomains, DHCP6OptDNSServers,
                                    DHCP6OptElapsedTime, DHCP6OptIA_NA, DHCP6OptIAAddress, DHCP6OptRapidCommit,
                                    DHCP6OptServerId, DUID_LL)
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.utils6 import in6_mactoifaceid

    trid = random.getrandbits(24)
    ll = "fe80::" + in6_mactoifaceid(mac)
    msg = DHCP6_Solicit(trid=trid) / DHCP6OptClientId(duid=DUID_LL(lladdr=mac)) / \
        DHCP6OptElapsedTime() / DHCP6OptIA_NA(iaid=7)
    if rapid:
        msg = msg / DHCP6OptRapidCommit()
    frame = Ether(src=mac, dst="33:33:00:01:00:02") / IPv6(src=ll, dst="ff02::1:2") / \
        UDP(sport=546, dport=547) / msg
    pkt = _exchange(iface, bytes(frame), lambda p: UDP in p and p[UDP].dport == 546 and
                    bytes(p[UDP].payload)[1:4] == trid.to_bytes(3, "big"))
    if pkt is None:
        return None
    body = pkt[UDP].payload
    out = {"type": body.msgtype, "dst": pkt[IPv6].dst}
    if DHCP6OptIAAddress in body:
        a = body[DHCP6OptIAAddress]
        out["address"] = a.addr
        out["lifetimes"] = [a.preflft, a.validlft]
        out["iaid"] = body[DHCP6OptIA_NA].iaid
    if DHCP6OptDNSServers in body:
        out["dns"] = list(body[DHCP6OptDNSServers].dnsservers)
    if DHCP6OptDNSDomains in body:
        out["search"] = [d.decode().rstrip(".") if isinstance(d, bytes) else d.rstrip(".")
                         for d in body[DHCP6OptDNSDomains].dnsdomains]
    out["rapid_commit"] = DHCP6OptRapidCommit in body
    out["server_duid"] = bytes(body[DHCP6OptServerId].duid).hex() if DHCP6OptServerId in body else None
    return out


def ra(iface: str, mac: str) -> dict | None:
    from scapy.layers.inet6 import (ICMPv6ND_RA, ICMPv6ND_RS, ICMPv6NDOptMTU, ICMPv6NDOptPrefixInfo,
                                    ICMPv6NDOptRDNSS, ICMPv6NDOptSrcLLAddr, IPv6)
    from scapy.layers.l2 import Ether
    from scapy.utils6 import in6_mactoifaceid

    ll = "fe80::" + in6_mactoifaceid(mac)
    frame = Ether(src=mac, dst="33:33:00:00:00:02") / IPv6(src=ll, dst="ff02::2", hlim=255) / \
        ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=mac)
    pkt = _exchange(iface, bytes(frame), lambda p: ICMPv6ND_RA in p)
    if pkt is None:
        return None
    r = pkt[ICMPv6ND_RA]
    out = {"M": r.M, "O": r.O, "router_lifetime": r.routerlifetime, "hlim": pkt[IPv6].hlim,
           "src": pkt[IPv6].src}
    if ICMPv6NDOptMTU in r:
        out["mtu"] = r[ICMPv6NDOptMTU].mtu
    if ICMPv6NDOptPrefixInfo in r:
        p = r[ICMPv6NDOptPrefixInfo]
        out["prefix"] = f"{p.prefix}/{p.prefixlen}"
        out["L"], out["A"] = p.L, p.A
    if ICMPv6NDOptRDNSS in r:
        out["rdnss"] = list(r[ICMPv6NDOptRDNSS].dns)
        out["rdnss_lifetime"] = r[ICMPv6NDOptRDNSS].lifetime
    if ICMPv6NDOptSrcLLAddr in r:
        out["slla"] = r[ICMPv6NDOptSrcLLAddr].lladdr
    return out


if __name__ == "__main__":
    kind, iface, mac = sys.argv[1:4]
    if kind == "v4":
        result = v4(iface, mac, int(sys.argv[4]) if len(sys.argv) > 4 else 1500)
    elif kind == "v6":
        result = v6(iface, mac, rapid=len(sys.argv) > 4 and sys.argv[4] == "rapid")
    else:
        result = ra(iface, mac)
    print(json.dumps(result))
