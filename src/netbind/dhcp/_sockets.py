"""The effectful part: sockets bound to one interface of one network namespace.

Nothing here needs root when the process already lives in the namespace (a sidecar in the pod):
- UDP 67 and 547 need ``net.ipv4.ip_unprivileged_port_start`` <= 67 (the port floor applies to
  IPv6 too) or CAP_NET_BIND_SERVICE;
- SO_BINDTODEVICE needs nothing since Linux 5.7 (CAP_NET_RAW before);
- replies to a client without an address go to 255.255.255.255 through the bound device (an L2
  broadcast), so no raw socket and no ARP entry is needed;
- router advertisements need a raw ICMPv6 socket: CAP_NET_RAW (ping sockets send echo only);
- entering another namespace (``netns=``) needs CAP_SYS_ADMIN; the sockets keep that namespace
  after the thread that opened them has gone.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import threading
from dataclasses import dataclass

SIOCGIFHWADDR = 0x8927
ICMP6_FILTER = 1
_ALL_DHCP_SERVERS = socket.inet_pton(socket.AF_INET6, "ff02::1:2")
_ALL_ROUTERS = socket.inet_pton(socket.AF_INET6, "ff02::2")


class SocketError(RuntimeError):
    """A socket could not be set up; the message says which capability or setting is missing."""


@dataclass
class Endpoints:
    ifindex: int
    mac: bytes
    v4: socket.socket | None = None
    v6: socket.socket | None = None
    ra: socket.socket | None = None

    def close(self) -> None:
        for sock in (self.v4, self.v6, self.ra):
            if sock is not None:
                sock.close()
        self.v4 = self.v6 = self.ra = None


def open_endpoints(interface: str, netns_path: str | None, *, v4: bool, v6: bool, ra: bool) -> Endpoints:
    """Open the sockets in ``netns_path`` (or here), all or none."""
    if netns_path is None:
        return _open(interface, None, v4, v6, ra)
    result: list = []

    def run() -> None:   # a throwaway thread: it enters the namespace and ends there
        try:
            from netbind._setns import setns_net

            try:
                fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise SocketError(f"netns: cannot open {netns_path}: {exc.strerror}") from None
            try:
                setns_net(fd)
            except OSError as exc:
                hint = " (needs CAP_SYS_ADMIN)" if exc.errno == errno.EPERM else ""
                raise SocketError(f"netns: cannot enter {netns_path}: {exc.strerror}{hint}") from None
            finally:
                os.close(fd)
            result.append(_open(interface, netns_path, v4, v6, ra))
        except BaseException as exc:  # handed to the caller's thread
            result.append(exc)

    thread = threading.Thread(target=run, name="netbind-dhcp-netns")
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _open(interface: str, netns_path: str | None, v4: bool, v6: bool, ra: bool) -> Endpoints:
    where = f"in {netns_path}" if netns_path else "in this network namespace"
    try:
        ifindex = socket.if_nametoindex(interface)
    except OSError:
        raise SocketError(f"interface: there is no link named {interface!r} {where}") from None
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        raw = fcntl.ioctl(probe.fileno(), SIOCGIFHWADDR, struct.pack("256s", interface.encode()))
        mac = raw[18:24]
    except OSError:
        mac = b""
    finally:
        probe.close()
    eps = Endpoints(ifindex=ifindex, mac=mac)
    try:
        if v4:
            eps.v4 = _udp(socket.AF_INET, interface, 67, "DHCPv4")
            eps.v4.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if v6:
            eps.v6 = _udp(socket.AF_INET6, interface, 547, "DHCPv6")
            eps.v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                              _ALL_DHCP_SERVERS + struct.pack("@I", ifindex))
        if ra:
            eps.ra = _icmp6(interface, ifindex)
    except OSError as exc:
        eps.close()
        if exc.errno == errno.ENODEV or exc.errno == errno.EADDRNOTAVAIL:
            raise SocketError(f"interface: {interface}: {exc.strerror} (is IPv6 enabled on it?)") from None
        raise SocketError(f"{interface}: {exc.strerror}") from None
    except BaseException:
        eps.close()
        raise
    return eps


def _bind_device(sock: socket.socket, interface: str, what: str) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
    except PermissionError:
        raise SocketError(f"{what}: binding a socket to {interface} needs Linux >= 5.7 or "
                          "CAP_NET_RAW") from None


def _udp(family: int, interface: str, port: int, what: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _bind_device(sock, interface, what)
        try:
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
        except PermissionError:
            raise SocketError(
                f"{what}: binding UDP port {port} needs net.ipv4.ip_unprivileged_port_start <= "
                f"{port} in this namespace (the passt binding CNI sets 0) or CAP_NET_BIND_SERVICE") from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SocketError(f"{what}: UDP port {port} on {interface} is already in use "
                                  "(another DHCP server on this interface?)") from None
            raise
        sock.setblocking(False)
        return sock
    except BaseException:
        sock.close()
        raise


def _icmp6(interface: str, ifindex: int) -> socket.socket:
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    except PermissionError:
        raise SocketError("ra: router advertisements need a raw ICMPv6 socket, which needs "
                          "CAP_NET_RAW (leave RA off, or send them from the binding CNI or node)") from None
    try:
        _bind_device(sock, interface, "ra")
        # pass router solicitations only (a set bit blocks that ICMPv6 type)
        blocked = [0xFFFFFFFF] * 8
        blocked[133 >> 5] &= ~(1 << (133 & 31))
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *blocked))
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                        _ALL_ROUTERS + struct.pack("@I", ifindex))
        sock.setblocking(False)
        return sock
    except BaseException:
        sock.close()
        raise
