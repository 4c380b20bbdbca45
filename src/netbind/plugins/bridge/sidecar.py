"""The bridge binding plugin's sidecar: the domain interface, and DHCP for the guest.

For each VMI interface with this binding it reads what the binding CNI handed over (the dummy link
that kept the pod interface's name: its ``ifalias`` JSON, see ``netbind.plugins.bridge.cni``) and

* writes ``<interface type="ethernet">`` on the tap (``tap0``, or ``tap<hash>``) with the pod
  interface's MAC (or ``macAddress``), its MTU, the VMI's model and alias ``ua-<name>``, replacing
  its own previous output (idempotent: virt-launcher defines the domain several times);
* serves the pod's configuration to the guest on the in-pod bridge with ``netbind.dhcp.Server``:
  DHCPv4 (the pod address, gateway, MTU, host name, DNS and search domains of the pod's own
  ``/etc/resolv.conf``) and, in dual stack, DHCPv6 (the pod's IPv6 address and DNS).

Router advertisements are not sent by the sidecar. A guest's IPv6 default route must point at the
network's router, and only the router can advertise itself (an RA from the sidecar would name the
in-pod bridge, which does not forward, and would leak through the bridge to every pod of the L2);
sending RAs also needs CAP_NET_RAW, which KubeVirt does not give sidecars. So RAs come from the
pod network's router, as on any IPv6 network; ``netbind up`` plays that router for a dual-stack
pod network. Set ``NETBIND_BRIDGE_RA=1`` to have the sidecar send RAs itself anyway (it then needs
CAP_NET_RAW, and a pod network whose router is reachable through the bridge's link-local).

Run as ``netbind-bridge-sidecar``; it serves ``/var/run/kubevirt-hooks/<binding>.sock``
(binding ``$NETWORK_BINDING_PLUGIN_NAME``, default ``netbind-bridge``).
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from netbind.domain import Domain, Interface
from netbind.hooks import App, HookContext, HookError

DEFAULT_BINDING = "netbind-bridge"
HANDOFF_KEY = "netbind.io/bridge-binding"
BRIDGE_SERVER_ADDRESS = "169.254.75.10"
SYS_NET = Path("/sys/class/net")
RESOLV_CONF = Path("/etc/resolv.conf")

log = logging.getLogger("netbind.bridge")
app = App("netbind-bridge-binding", binding=DEFAULT_BINDING, versions=("v1alpha3",))


@dataclass(frozen=True)
class Handoff:
    pod_interface: str
    mac: str
    mtu: int
    ips: tuple[str, ...]
    gateways: tuple[str, ...]


def read_handoff(pod_interface: str, sys_net: Path = SYS_NET) -> Handoff:
    try:
        text = (sys_net / pod_interface / "ifalias").read_text().strip()
    except OSError as exc:
        raise HookError(f"bridge binding: cannot read the CNI's hand-off on {pod_interface}: {exc.strerror}"
                        " (did the bridge binding CNI run for this network?)") from None
    try:
        data = json.loads(text)
        if data.get(HANDOFF_KEY) != 1:
            raise ValueError("not a bridge binding hand-off")
        return Handoff(pod_interface, str(data["mac"]), int(data["mtu"]), tuple(data["ips"]),
                       tuple(data.get("gateways") or ()))
    except (ValueError, KeyError, TypeError) as exc:
        raise HookError(f"bridge binding: the alias of {pod_interface} is not the CNI's hand-off ({exc}):"
                        f" {text[:80]!r}") from None


def resolv_conf(path: Path = RESOLV_CONF) -> tuple[list[str], list[str]]:
    """Name servers (loopback ones dropped: the guest cannot reach the pod's) and search domains."""
    servers, search = [], []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return [], []
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                if not ipaddress.ip_address(words[1].split("%")[0]).is_loopback:
                    servers.append(words[1])
            except ValueError:
                continue
        elif words and words[0] == "search":
            search = words[1:]
    return servers, search


def _pod_interface(ctx: HookContext, name: str) -> str:
    reported = ctx.pod_interface_names.get(name)
    if reported:
        return reported
    import hashlib

    hashed = "pod" + hashlib.sha256(name.encode()).hexdigest()[:11]
    return hashed if (SYS_NET / hashed).exists() else "eth0"


def _short(pod_iface: str) -> str:
    return pod_iface[3:] if pod_iface.startswith("pod") else pod_iface


def server_config(spec: dict, handoff: Handoff, hostname: str, dns: list[str], search: list[str],
                  ra: bool = False) -> dict:
    """``netbind.dhcp.ServerConfig`` data for one interface (pure)."""
    v4 = [ipaddress.ip_interface(a) for a in handoff.ips if ipaddress.ip_interface(a).version == 4]
    v6 = [ipaddress.ip_interface(a) for a in handoff.ips if ipaddress.ip_interface(a).version == 6]
    gw4 = next((g for g in handoff.gateways if ipaddress.ip_address(g).version == 4), None)
    dns4 = [d for d in dns if ipaddress.ip_address(d).version == 4]
    dns6 = [d for d in dns if ipaddress.ip_address(d).version == 6]
    config: dict = {"interface": "k6t-" + _short(handoff.pod_interface),
                    "client_mac": (spec.get("macAddress") or handoff.mac).lower()}
    if v4:
        config["v4"] = {"address": str(v4[0]), "server_address": BRIDGE_SERVER_ADDRESS, "router": gw4,
                        "mtu": handoff.mtu, "dns": dns4, "search": search, "hostname": hostname[:63]}
    if v6:
        config["v6"] = {"address": str(v6[0]), "dns": dns6, "search": search}
        if ra:
            config["ra"] = {"prefixes": [str(v6[0].network)], "mtu": max(handoff.mtu, 1280), "rdnss": dns6}
    return config


class _Servers:
    """One ``netbind.dhcp.Server`` per interface on an asyncio loop in a thread of its own;
    (re)started only when an interface's configuration changes."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.running: dict[str, tuple[dict, object]] = {}
        threading.Thread(target=self.loop.run_forever, name="netbind-bridge-dhcp", daemon=True).start()

    def ensure(self, name: str, config: dict) -> None:
        current = self.running.get(name)
        if current is not None and current[0] == config:
            return
        asyncio.run_coroutine_threadsafe(self._replace(name, config), self.loop).result(timeout=10)

    async def _replace(self, name: str, config: dict) -> None:
        from netbind.dhcp import Server

        old = self.running.pop(name, None)
        if old is not None:
            await old[1].close()
        server = Server(config)
        await server.start()
        self.running[name] = (config, server)


_servers: _Servers | None = None


def _hostname(ctx: HookContext) -> str:
    spec = ctx.vmi_json.get("spec") or {}
    return spec.get("hostname") or (ctx.vmi_json.get("metadata") or {}).get("name") or "vmi"


def build_interface(spec: dict, handoff: Handoff, transitional: bool) -> Interface:
    iface = Interface.create("ethernet")
    if spec.get("pciAddress"):
        iface.pci_address = spec["pciAddress"]
    iface.target_dev = "tap0" if handoff.pod_interface == "eth0" else "tap" + _short(handoff.pod_interface)
    iface.element.find("target").set("managed", "no")
    model = spec.get("model") or "virtio"
    iface.model = ("virtio-transitional" if transitional else "virtio-non-transitional") if model == "virtio" else model
    iface.mac = (spec.get("macAddress") or handoff.mac).lower()
    iface.mtu = handoff.mtu
    iface.alias = "ua-" + spec["name"]
    if spec.get("acpiIndex"):
        iface.acpi_index = int(spec["acpiIndex"])
    return iface


@app.on_define_domain
def on_define_domain(domain: Domain, ctx: HookContext) -> Domain:
    global _servers
    devices = ((ctx.vmi_json.get("spec") or {}).get("domain") or {}).get("devices") or {}
    dns, search = resolv_conf()
    ra = os.environ.get("NETBIND_BRIDGE_RA") == "1"
    for spec in ctx.interfaces:
        handoff = read_handoff(_pod_interface(ctx, spec["name"]))
        domain.put_interface(build_interface(spec, handoff, bool(devices.get("useVirtioTransitional"))))
        if _servers is None:
            _servers = _Servers()
        try:
            _servers.ensure(spec["name"], server_config(spec, handoff, _hostname(ctx), dns, search, ra))
        except Exception as exc:
            raise HookError(f"bridge binding: DHCP for {spec['name']}: {exc}") from None
    return domain


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    return app.main(argv, prog="netbind-bridge-sidecar",
                    description="KubeVirt hook sidecar of netbind's bridge binding plugin.")


if __name__ == "__main__":
    sys.exit(main())
