"""virt-handler's in-pod layout for ``managedTap`` and the bridge binding (KubeVirt
``pkg/network/setup/netpod``), composed as a plan and applied, with an exact restore.

The layout for pod link ``eth0`` (``pod<h>`` on secondary networks):

* bridge ``k6t-eth0`` (``k6t-<h>``), up; the bridge binding also gives it a link-local IPv4;
* the pod link renamed ``eth0-nic`` (``<h>-nic``), enslaved, given the bridge's MAC, its IPv4
  addresses removed and IPv6 disabled, learning off on its bridge port, up;
* tap ``tap0`` (``tap<h>``) on the bridge, MTU of the pod link, multi-queue when the VMI asks for
  more than one queue, owned by uid/gid 107 (non-root VMI) or 0, up;
* a dummy with the original name, MAC, MTU and IP addresses (CNI CHECK and virt-launcher read it);
* ``net.ipv4.conf.all.arp_ignore=1`` when the pod link had a global IPv4 address.

Kernels without the dummy driver (``CONFIG_DUMMY`` off) get a bridge with no ports in its place:
one link, no peer, no carrier, holds a MAC, an MTU and addresses; ``dummy_kind()`` says which.

``observe`` reads the pod link (pure data out), ``compose`` turns it into steps (pure),
``apply`` runs them; ``restore`` puts the pod back exactly as observed (links, MAC, MTU,
addresses, routes, sysctls) and is idempotent, so it is the undo of a half-applied plan too.
Standard library only: the bridge binding CNI runs this on its exec path.
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass
from typing import Sequence

from netbind import _iproute as iproute

BRIDGE_LINK_LOCAL = "169.254.75.10/32"   # KubeVirt's bridge binding: the in-pod DHCP server's address
ROOT_OWNER, NON_ROOT_OWNER = 0, 107


class LayoutError(RuntimeError):
    """The layout cannot be built; the message names the link and the command that failed."""


# ---- running commands in the pod namespace ------------------------------------------------------

class Namespace:
    """Commands in one network namespace: a named one (``ip -n``), or ``None``: the caller's own
    (a CNI plugin that entered the pod namespace with setns)."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    def ip(self, *args: str, check: bool = True) -> str:
        try:
            return iproute.ip(*args, netns=self.name, check=check)
        except iproute.IPRouteError as exc:
            raise LayoutError(str(exc)) from None

    def bridge(self, *args: str) -> None:
        try:
            iproute.bridge(*args, netns=self.name)
        except iproute.IPRouteError as exc:
            raise LayoutError(str(exc)) from None

    def sysctl(self, key: str, value: str | None = None) -> str:
        """Read (value None) or write a sysctl of this namespace; returns the value before."""
        try:
            return iproute.sysctl(key, value, netns=self.name)
        except (iproute.IPRouteError, OSError) as exc:
            raise LayoutError(f"sysctl {key}: {exc}") from None

    def links(self) -> dict[str, dict]:
        try:
            return iproute.links(self.name)
        except iproute.IPRouteError as exc:
            raise LayoutError(str(exc)) from None


def dummy_kind(ns: Namespace) -> str:
    """``dummy`` where the kernel has the driver, else ``bridge`` (a bridge with no ports)."""
    probe = "nbprobe-dummy"
    if iproute.run("ip", "link", "add", probe, "type", "dummy", netns=ns.name, check=False).returncode == 0:
        ns.ip("link", "delete", probe, check=False)
        return "dummy"
    return "bridge"


# ---- what the pod link looks like (pure data) -----------------------------------------------------

@dataclass(frozen=True)
class Route:
    family: int
    dst: str
    gateway: str = ""
    protocol: str = ""
    metric: int | None = None
    scope: str = ""
    prefsrc: str = ""

    def argv(self) -> list[str]:
        args = [f"-{self.family}", "route", "replace", self.dst]
        if self.gateway:
            args += ["via", self.gateway]
        if self.protocol:
            args += ["proto", self.protocol]
        if self.metric is not None:
            args += ["metric", str(self.metric)]
        if self.scope and self.scope != "universe":
            args += ["scope", self.scope]
        if self.prefsrc:
            args += ["src", self.prefsrc]
        return args


@dataclass(frozen=True)
class PodLinkState:
    """The pod link as observed before the layout, everything ``restore`` puts back."""
    name: str
    mac: str
    mtu: int
    up: bool
    addresses: tuple[str, ...]          # CIDRs, IPv4 and global IPv6 (link-local comes back by itself)
    routes: tuple[Route, ...]           # main-table routes through the link that the kernel did not make
    disable_ipv6: str
    arp_ignore: str

    @property
    def has_global_ipv4(self) -> bool:
        """Go's net.IP.IsGlobalUnicast, as KubeVirt checks it (private ranges count)."""
        ips = [ipaddress.ip_interface(a).ip for a in self.addresses]
        return any(ip.version == 4 and not (ip.is_loopback or ip.is_link_local or ip.is_multicast
                                            or ip.is_unspecified or ip == ipaddress.IPv4Address("255.255.255.255"))
                   for ip in ips)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "PodLinkState":
        return cls(**{**data, "addresses": tuple(data["addresses"]),
                      "routes": tuple(Route(**r) for r in data["routes"])})


def observe(ns: Namespace, name: str) -> PodLinkState:
    shown = ns.ip("-j", "addr", "show", "dev", name, check=False)
    if not shown.strip():
        raise LayoutError(f"pod link ({name}) is missing")
    link = json.loads(shown)[0]
    addresses = tuple(f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                      if a.get("family") in ("inet", "inet6") and a.get("scope") == "global")
    routes = []
    for family in (4, 6):
        for r in json.loads(ns.ip("-j", f"-{family}", "route", "show", "dev", name) or "[]"):
            if r.get("protocol") == "kernel" or r.get("dst", "").startswith("fe80:") or r.get("type", "unicast") != "unicast":
                continue
            routes.append(Route(family, r["dst"], r.get("gateway", ""), r.get("protocol", ""), r.get("metric"),
                                r.get("scope", ""), r.get("prefsrc", "")))
    return PodLinkState(name, link["address"], int(link["mtu"]), "UP" in link.get("flags", []), addresses,
                        tuple(routes), ns.sysctl(f"net.ipv6.conf.{name}.disable_ipv6"),
                        ns.sysctl("net.ipv4.conf.all.arp_ignore"))


# ---- the plan (pure) -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """Names and choices of one interface's layout: what ``compose`` needs besides the pod link."""
    bridge: str
    port: str                       # the renamed pod link
    tap: str
    queues: int = 0                 # > 1: multi-queue tap
    owner: int = NON_ROOT_OWNER
    bridge_address: str = ""        # the bridge binding's link-local IPv4 ("" for managedTap)
    dummy: str = "dummy"            # or "bridge" where the kernel has no dummy driver


@dataclass(frozen=True)
class Step:
    """One ``ip`` (or ``bridge``/sysctl/copy-MAC) action; ``what`` is for errors and logs."""
    action: str                     # "ip", "bridge", "sysctl", "copy-mac"
    args: tuple[str, ...]
    what: str = ""


def compose(pod: PodLinkState, layout: Layout) -> tuple[Step, ...]:
    ip = lambda *a, what="": Step("ip", tuple(a), what)  # noqa: E731
    steps = [ip("link", "add", layout.bridge, "type", "bridge", what="in-pod bridge"),
             Step("copy-mac", (layout.bridge, layout.bridge), "fix the bridge MAC (ports must not change it)")]
    if layout.bridge_address:
        steps.append(ip("addr", "add", layout.bridge_address, "dev", layout.bridge))
    steps += [ip("link", "set", layout.bridge, "up"),
              ip("link", "set", pod.name, "down"),
              ip("link", "set", pod.name, "name", layout.port, what="rename the pod link"),
              ip("link", "set", layout.port, "master", layout.bridge),
              Step("copy-mac", (layout.bridge, layout.port), "the bridge MAC onto the port"),
              ip("-4", "addr", "flush", "dev", layout.port, what="IPv4 off on the port"),
              Step("sysctl", (f"net.ipv6.conf.{layout.port}.disable_ipv6", "1"), "IPv6 off on the port"),
              Step("bridge", ("link", "set", "dev", layout.port, "learning", "off")),
              ip("link", "set", layout.port, "up"),
              ip("tuntap", "add", "dev", layout.tap, "mode", "tap", "user", str(layout.owner),
                 "group", str(layout.owner), *(("multi_queue",) if layout.queues > 1 else ()), what="VM tap"),
              ip("link", "set", layout.tap, "mtu", str(pod.mtu), "master", layout.bridge),
              ip("link", "set", layout.tap, "up"),
              ip("link", "add", pod.name, "address", pod.mac, "mtu", str(pod.mtu), "type", layout.dummy,
                 what=f"{layout.dummy} with the pod link's name, MAC and MTU")]
    steps += [ip("addr", "add", a, "dev", pod.name, *(("nodad",) if ":" in a else ())) for a in pod.addresses]
    if pod.has_global_ipv4:
        steps.append(Step("sysctl", ("net.ipv4.conf.all.arp_ignore", "1")))
    return tuple(steps)


def apply(ns: Namespace, steps: Sequence[Step]) -> None:
    for step in steps:
        if step.action == "ip":
            ns.ip(*step.args)
        elif step.action == "bridge":
            ns.bridge(*step.args)
        elif step.action == "sysctl":
            ns.sysctl(step.args[0], step.args[1])
        elif step.action == "copy-mac":
            source, target = step.args
            mac = json.loads(ns.ip("-j", "link", "show", "dev", source))[0]["address"]
            ns.ip("link", "set", "dev", target, "address", mac)
        else:
            raise TypeError(f"unknown step {step!r}")


def build(ns: Namespace, pod: PodLinkState, layout: Layout) -> None:
    """Apply the layout; on failure restore the pod and raise ``LayoutError``."""
    try:
        apply(ns, compose(pod, layout))
    except Exception as exc:
        try:
            restore(ns, pod, layout)
        except Exception as undo_exc:
            raise LayoutError(f"{exc}; restoring the pod failed too: {undo_exc}") from exc
        raise LayoutError(str(exc)) from exc


def restore(ns: Namespace, pod: PodLinkState, layout: Layout) -> None:
    """Undo the layout, whatever part of it was applied: the pod as ``observe`` saw it."""
    links = ns.links()
    if layout.tap in links:
        ns.ip("link", "delete", layout.tap)
    renamed = layout.port in links
    substitute = links.get(pod.name)
    if renamed and substitute is not None:  # the name is held by the dummy (or its stand-in)
        ns.ip("link", "delete", pod.name)
    if layout.bridge in links:
        ns.ip("link", "delete", layout.bridge)
    if renamed:
        ns.ip("link", "set", layout.port, "down")
        ns.ip("link", "set", layout.port, "name", pod.name)
    if pod.name not in ns.links():
        return  # nothing to put back (the pod link itself is gone, e.g. a CNI DEL ran first)
    ns.ip("link", "set", pod.name, "nomaster", "address", pod.mac, "mtu", str(pod.mtu))
    ns.sysctl(f"net.ipv6.conf.{pod.name}.disable_ipv6", pod.disable_ipv6)
    if pod.up:
        ns.ip("link", "set", pod.name, "up")
    have = {f"{a['local']}/{a['prefixlen']}" for a in json.loads(ns.ip("-j", "addr", "show", "dev", pod.name))[0]
            .get("addr_info", [])}
    for address in pod.addresses:
        if address not in have:
            ns.ip("addr", "add", address, "dev", pod.name, *(("nodad",) if ":" in address else ()))
    for route in pod.routes:
        ns.ip(*route.argv(), "dev", pod.name)
    if ns.sysctl("net.ipv4.conf.all.arp_ignore") != pod.arp_ignore:
        ns.sysctl("net.ipv4.conf.all.arp_ignore", pod.arp_ignore)


__all__ = ["BRIDGE_LINK_LOCAL", "Layout", "LayoutError", "Namespace", "PodLinkState", "Route", "Step",
           "apply", "build", "compose", "dummy_kind", "observe", "restore"]
