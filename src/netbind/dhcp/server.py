"""``Server``: DHCPv4, DHCPv6 and router advertisements for one client on one interface.

The protocol logic is pure (``_v4``, ``_v6``, ``_ra``); this module only reads sockets on the
asyncio loop and sends what the logic returns. A sidecar runs it in its pod namespace; the node
runtime gives ``netns=`` and runs it as root.
"""
from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import time
from ipaddress import IPv6Address
from typing import Any

from netbind.dhcp import _ra, _v4, _v6
from netbind.dhcp._sockets import Endpoints, SocketError, open_endpoints
from netbind.dhcp.config import ServerConfig, build

log = logging.getLogger("netbind.dhcp")
_MIN_DELAY_BETWEEN_RAS = 3.0          # RFC 4861 10
_INITIAL_RAS, _INITIAL_RA_INTERVAL = 3, 4.0
_MEMO_SIZE = 64
_MISS = object()


class ServerError(RuntimeError):
    """The server could not start; the message names the setting or capability to fix."""


class Server:
    """``async with Server(config):`` serves until the block ends (or ``await serve_forever()``).

    ``config`` is a ``ServerConfig`` or plain data for one (a ``ConfigError`` names bad fields).
    ``answering = False`` is the "do not answer" mode: requests are read and logged, nothing is sent.
    ``counters`` counts what was received, answered and ignored, per protocol.
    """

    def __init__(self, config: ServerConfig | dict[str, Any]) -> None:
        self.config = config if isinstance(config, ServerConfig) else build(config)
        self.answering = self.config.answer
        self.counters: dict[str, int] = {}
        self._eps: Endpoints | None = None
        self._closed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._v4: _v4.Plan | None = None
        self._v6: _v6.Plan | None = None
        self._ra: bytes = b""
        self._last_ra = 0.0
        self._ra_pending = False
        self._memo4: dict[bytes, Any] = {}
        self._memo6: dict[tuple, Any] = {}
        self._log_exchanges = False

    async def __aenter__(self) -> "Server":
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def start(self) -> None:
        cfg = self.config
        loop = self._loop = asyncio.get_running_loop()
        try:
            self._eps = await loop.run_in_executor(None, lambda: open_endpoints(
                cfg.interface, cfg.netns_path, v4=cfg.v4 is not None, v6=cfg.v6 is not None,
                ra=cfg.ra is not None))
        except SocketError as exc:
            raise ServerError(str(exc)) from None
        eps = self._eps
        self._log_exchanges = log.isEnabledFor(logging.INFO)   # read once: it is on the hot path
        if cfg.v4 is not None:
            self._v4 = _v4.Plan(cfg.v4, cfg.client_mac)
            if self._v4.largest_reply > _v4.MIN_SIZE:
                log.warning("DHCPv4 replies take %d bytes: clients that accept only %d (no option "
                            "57) get the options that fit, in order", self._v4.largest_reply, _v4.MIN_SIZE)
            loop.add_reader(eps.v4.fileno(), self._on_v4)
        if cfg.v6 is not None:
            server_duid = _v6.duid_ll(eps.mac.hex(":")) if len(eps.mac) == 6 else \
                b"\x00\x04" + bytes(16)   # DUID-UUID placeholder for links without a MAC
            self._v6 = _v6.Plan(cfg.v6, cfg.client_mac, server_duid)
            loop.add_reader(eps.v6.fileno(), self._on_v6)
        if cfg.ra is not None:
            self._ra = _ra.advertisement(cfg.ra, eps.mac)
            loop.add_reader(eps.ra.fileno(), self._on_rs)
            self._tasks.append(loop.create_task(self._advertise_periodically()))
        log.info("serving %s on %s%s for %s%s", "/".join(
            p for p, on in (("DHCPv4", cfg.v4), ("DHCPv6", cfg.v6), ("RA", cfg.ra)) if on),
            cfg.interface, f" in {cfg.netns}" if cfg.netns else "", cfg.client_mac,
            "" if self.answering else " (not answering)")

    async def serve_forever(self) -> None:
        if self._eps is None:
            await self.start()
        try:
            await self._closed.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        if self._eps is None:
            return
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        for sock in (self._eps.v4, self._eps.v6, self._eps.ra):
            if sock is not None:
                self._loop.remove_reader(sock.fileno())
        self._eps.close()
        self._eps = None
        self._closed.set()

    # -- receiving ------------------------------------------------------------------------------

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _on_v4(self) -> None:
        sock = self._eps.v4
        while True:
            try:
                data, _addr = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("DHCPv4 receive failed: %s", exc)
                return
            self._count("v4.received")
            # The reply is a pure function of the request: a client's retransmissions and repeated
            # DISCOVERs differ only in the transaction ID (bytes 4-7), which is patched back in.
            key = data[:4] + data[8:]
            hit = self._memo4.get(key, _MISS)
            if hit is _MISS:
                hit = _v4.answer(self._v4, data)
                self._remember(self._memo4, key, hit)
            if hit is None:
                self._v4_ignored(data)
                continue
            out = hit.data[:4] + data[4:8] + hit.data[8:]
            self._send(sock, out, hit.destination, "v4", _v4.message_name(hit.kind))

    @staticmethod
    def _remember(memo: dict, key: Any, reply: Any) -> None:
        if len(memo) >= _MEMO_SIZE:    # bounded: a flood of distinct packets only churns it
            memo.clear()
        memo[key] = reply

    def _v4_ignored(self, data: bytes) -> None:
        req = _v4.parse(data)
        if req is None:
            self._count("v4.malformed")
        elif req.chaddr != self._v4.mac:
            self._count("v4.other_client")
            log.debug("DHCPv4 %s from %s ignored: not our client", _v4.message_name(req.kind),
                      req.chaddr.hex(":"))
        else:
            self._count("v4." + _v4.message_name(req.kind).lower())
            if req.kind == _v4.DECLINE:
                log.warning("client %s declined %s: the address is in use on the link",
                            self.config.client_mac, self.config.v4.address.ip)
            elif log.isEnabledFor(logging.INFO):
                log.info("DHCPv4 %s from %s (no reply)", _v4.message_name(req.kind), self.config.client_mac)

    def _on_v6(self) -> None:
        sock = self._eps.v6
        while True:
            try:
                data, addr = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("DHCPv6 receive failed: %s", exc)
                return
            self._count("v6.received")
            key = (data[:1] + data[4:], addr[0])     # as for v4: all but the transaction ID
            hit = self._memo6.get(key, _MISS)
            if hit is _MISS:
                try:
                    source = IPv6Address(addr[0].split("%")[0])
                except ValueError:
                    source = None
                hit = _v6.answer(self._v6, data, source)
                self._remember(self._memo6, key, hit)
            if hit is None:
                self._count("v6.ignored")
                continue
            out = hit.data[:1] + data[1:4] + hit.data[4:]
            # numeric address and scope ID: "fe80::1%eth0" would cost a getaddrinfo() per reply
            dest = (addr[0].partition("%")[0], addr[1], 0, self._eps.ifindex)
            self._send(sock, out, dest, "v6",
                       _v6.message_name(hit.kind))

    def _on_rs(self) -> None:
        sock = self._eps.ra
        while True:
            try:
                data, anc, _flags, addr = sock.recvmsg(1500, socket.CMSG_SPACE(4))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("RS receive failed: %s", exc)
                return
            self._count("ra.received")
            hops = [struct.unpack("@i", d[:4])[0] for lvl, typ, d in anc
                    if lvl == socket.IPPROTO_IPV6 and typ == socket.IPV6_HOPLIMIT]
            try:
                source = IPv6Address(addr[0].split("%")[0])
            except ValueError:
                continue
            if hops != [255] or not _ra.solicited_by(data, source, self._v6_mac(), self._link_local):
                self._count("ra.ignored")
                continue
            self._schedule_ra(solicited=True)

    def _v6_mac(self) -> bytes:
        return bytes.fromhex(self.config.client_mac.replace(":", ""))

    @property
    def _link_local(self) -> IPv6Address:
        return _v6.eui64_link_local(self.config.client_mac)

    # -- sending --------------------------------------------------------------------------------

    def _send(self, sock: socket.socket, data: bytes, dest: tuple, proto: str, what: str) -> None:
        if not self.answering:
            self._count(f"{proto}.withheld")
            log.info("would send %s %s to %s (not answering)", proto, what, dest[0])
            return
        try:
            sock.sendto(data, dest)
        except OSError as exc:
            self._count(f"{proto}.send_failed")
            log.warning("sending %s %s to %s failed: %s", proto, what, dest[0], exc)
            return
        counters = self.counters
        key = proto + ".answered"
        counters[key] = counters.get(key, 0) + 1
        if self._log_exchanges:
            log.info("%s %s to %s", proto, what, dest[0])

    def _schedule_ra(self, *, solicited: bool) -> None:
        wait = self._last_ra + _MIN_DELAY_BETWEEN_RAS - time.monotonic()
        if wait <= 0:
            self._send_ra()
        elif not self._ra_pending:
            self._ra_pending = True
            self._loop.call_later(wait, self._send_ra)

    def _send_ra(self) -> None:
        self._ra_pending = False
        if self._eps is None or self._eps.ra is None:
            return
        self._last_ra = time.monotonic()
        self._send(self._eps.ra, self._ra, (_ra.ALL_NODES, 0, 0, self._eps.ifindex), "ra",
                   "ROUTER-ADVERTISEMENT")

    async def _advertise_periodically(self) -> None:
        interval = self.config.ra.interval
        for _ in range(_INITIAL_RAS):
            self._schedule_ra(solicited=False)
            await asyncio.sleep(_INITIAL_RA_INTERVAL)
        while True:
            await asyncio.sleep(random.uniform(0.75 * interval, interval))
            self._schedule_ra(solicited=False)
