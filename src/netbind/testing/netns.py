"""Throwaway network namespaces for tests (created with ip(8), always removed).

``netns`` gives one empty namespace; ``netns_pair`` gives a "node" and a "pod" namespace joined by
a veth (``node_veth`` in the node, ``pod_veth`` in the pod). Run host-side CNI plugins inside the
node namespace so nothing touches the root namespace.
"""
from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass

import pytest

from netbind.testing import require_binary, require_root


def unique_name(prefix: str = "nb-") -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@dataclass(frozen=True)
class Netns:
    name: str

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return ip("-n", self.name, *args, check=check)

    def links(self) -> list[dict]:
        import json

        return json.loads(self.ip("-j", "-d", "link", "show").stdout or "[]")

    def sysctl(self, key: str) -> str:
        out = subprocess.run(["ip", "netns", "exec", self.name, "cat",
                              "/proc/sys/" + key.replace(".", "/")],
                             check=True, capture_output=True, text=True).stdout
        return out.rstrip("\n")


@dataclass(frozen=True)
class NetnsPair:
    node: Netns
    pod: Netns
    node_veth: str
    pod_veth: str


def create_netns(name: str | None = None) -> Netns:
    ns = Netns(name or unique_name())
    ip("netns", "add", ns.name)
    ns.ip("link", "set", "lo", "up")
    return ns


def delete_netns(ns: Netns) -> None:
    ip("netns", "del", ns.name, check=False)


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
