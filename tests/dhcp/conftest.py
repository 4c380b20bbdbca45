"""A served link: the server's namespace and the client's, joined by a veth (real kernels, real
clients). The server runs on its own event loop in a thread of the test process."""
from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass

import pytest

from netbind.dhcp import Server
from netbind.testing import require_binary, require_root
from netbind.testing.netns import Netns, create_netns, delete_netns, ip, unique_name

CLIENT_MAC = "52:54:00:6e:62:01"
OTHER_MAC = "52:54:00:6e:62:99"


@dataclass(frozen=True)
class Link:
    server_ns: Netns
    client_ns: Netns
    server_if: str
    client_if: str


@pytest.fixture
def link():
    """Server and client namespaces; the server side has 10.0.2.1/24 and fd00:10::1/64 (no DAD),
    the client side has CLIENT_MAC and no address."""
    require_root()
    require_binary("ip", "iproute2")
    server_ns, client_ns = create_netns(), create_netns()
    try:
        s_if, c_if = unique_name("nb-s"), unique_name("nb-c")
        ip("link", "add", s_if, "netns", server_ns.name, "type", "veth", "peer", "name", c_if,
           "netns", client_ns.name)
        for ns, name in ((server_ns, s_if), (client_ns, c_if)):
            ns_exec(ns, "sysctl", "-qw", f"net.ipv6.conf.{name}.accept_dad=0")
        client_ns.ip("link", "set", c_if, "address", CLIENT_MAC)
        server_ns.ip("addr", "add", "10.0.2.1/24", "dev", s_if)
        server_ns.ip("addr", "add", "fd00:10::1/64", "dev", s_if, "nodad")
        server_ns.ip("link", "set", s_if, "up")
        client_ns.ip("link", "set", c_if, "up")
        yield Link(server_ns, client_ns, s_if, c_if)
    finally:
        delete_netns(client_ns)
        delete_netns(server_ns)


def ns_exec(ns: Netns, *argv: str, timeout: float = 30, check: bool = True):
    import subprocess

    return subprocess.run(["ip", "netns", "exec", ns.name, *argv], capture_output=True, text=True,
                          timeout=timeout, check=check)


@contextlib.contextmanager
def serving(config):
    """Run a Server on its own loop in a thread; yields it once its sockets are open."""
    loop = asyncio.new_event_loop()
    server = Server(config)
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(server.close())

    thread = threading.Thread(target=run, name="dhcp-server", daemon=True)
    thread.start()
    started.wait(10)
    try:
        if failure:
            raise failure[0]
        yield server
    finally:
        if not failure:
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
