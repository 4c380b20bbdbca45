"""Throwaway network namespaces for tests (created with ip(8) through netbind's link adapter,
always removed).

``netns`` gives one empty namespace; ``netns_pair`` gives a "node" and a "pod" namespace joined by
a veth (``node_veth`` in the node, ``pod_veth`` in the pod). Run host-side CNI plugins inside the
node namespace so nothing touches the root namespace.
"""
from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass

import pytest

from netbind import _iproute
from netbind.testing import require_binary, require_root


def unique_name(prefix: str = "nb-") -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``ip ARGS`` (a failure raises ``IPRouteError`` naming the command when ``check``)."""
    return _iproute.run("ip", *args, check=check)


@dataclass(frozen=True)
class Netns:
    name: str

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return _iproute.run("ip", *args, netns=self.name, check=check)

    def links(self) -> list[dict]:
        return list(_iproute.links(self.name).values())

    def sysctl(self, key: str) -> str:
        return _iproute.sysctl(key, netns=self.name)


@dataclass(frozen=True)
class NetnsPair:
    node: Netns
    pod: Netns
    node_veth: str
    pod_veth: str


def create_netns(name: str | None = None) -> Netns:
    ns = Netns(name or unique_name())
    _iproute.add_netns(ns.name)
    return ns


def delete_netns(ns: Netns) -> None:
    _iproute.run("ip", "netns", "del", ns.name, check=False)


@pytest.fixture
def netns():
    """An empty network namespace (loopback up), deleted afterwards."""
    require_root()
    require_binary("ip", "iproute2")
    ns = create_netns()
    try:
        yield ns
    finally:
        delete_netns(ns)


@pytest.fixture
def netns_pair():
    """Node and pod namespaces joined by a veth that is up on both ends."""
    require_root()
    require_binary("ip", "iproute2")
    node, pod = create_netns(), create_netns()
    try:
        node_veth, pod_veth = unique_name("nb-n"), unique_name("nb-p")
        ip("link", "add", node_veth, "netns", node.name, "type", "veth", "peer", "name", pod_veth,
           "netns", pod.name)
        node.ip("link", "set", node_veth, "up")
        pod.ip("link", "set", pod_veth, "up")
        yield NetnsPair(node, pod, node_veth, pod_veth)
    finally:
        delete_netns(pod)
        delete_netns(node)


__all__ = ["Netns", "NetnsPair", "create_netns", "delete_netns", "netns", "netns_pair",
           "unique_name"]
