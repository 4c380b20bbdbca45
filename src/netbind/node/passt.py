"""passt on a libvirt that cannot run it natively: the substitution of host notes recipe R6a.

KubeVirt's passt sidecar writes ``<interface type="vhostuser">`` with ``<backend type="passt"/>``
and ``<portForward>``; libvirt >= 11 then starts ``passt --vhost-user`` itself. Debian 12's
libvirt 9.0 rejects that backend, and its passt has no vhost-user. Playing the compute container's
libvirt, the runtime instead starts the host's passt in the pod netns (``-i <source dev>``, the
portForward ranges as ``-t``/``-u``) and replaces the interface by an equivalent
``<qemu:commandline>``: ``-netdev stream`` to passt's socket plus a virtio-net device with the same
MAC (one is chosen if the sidecar gave none, as libvirt would) and alias. ``substitute`` is pure.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lxml import etree

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
# "all" makes passt bind every port: 64 Ki sockets per protocol and address family
FORWARD_ALL_SOCKETS = 2 * 65536 + 1024
# QEMU places extra -device arguments before libvirt's JSON ones, so they need a slot libvirt leaves
# alone: libvirt fills pcie.0 from slot 1 upwards (root ports), q35 owns 0x1f.
PCI_SLOT_BASE = 0x10
_MODELS = {"virtio": "virtio-net-pci", "virtio-non-transitional": "virtio-net-pci-non-transitional",
           "virtio-transitional": "virtio-net-pci-transitional"}


class PasstSubstitutionError(ValueError):
    """The sidecar's passt interface cannot be expressed for this host; names the element."""


@dataclass(frozen=True)
class PasstNic:
    alias: str                  # e.g. ua-passtnet
    mac: str
    mac_generated: bool
    pod_interface: str          # <source dev>: the pod link passt takes its address from
    tcp: tuple[str, ...]        # passt -t specs ("all", "8080", "1000-2000", "~15000")
    udp: tuple[str, ...]
    model: str
    socket: Path

    @property
    def name(self) -> str:
        return self.alias.removeprefix("ua-")

    def passt_argv(self, binary: str, log: Path) -> list[str]:
        argv = [binary, "--foreground", "--one-off", "--runas", "0:0", "--socket", str(self.socket),
                "--log-file", str(log), "--dns", "none", "--interface", self.pod_interface]
        if os.environ.get("NETBIND_PASST_PCAP"):  # debugging: what passt saw on the guest side
            argv += ["--pcap", str(log.with_suffix(".pcap"))]
        argv += ["-t", ",".join(self.tcp) if self.tcp else "none"]
        argv += ["-u", ",".join(self.udp) if self.udp else "none"]
        return argv

    def describe(self) -> str:
        return (f"{self.alias}: vhost-user + <backend type='passt'> -> host passt ({self.pod_interface},"
                f" tcp {','.join(self.tcp) or 'none'}, udp {','.join(self.udp) or 'none'}) + qemu -netdev stream,"
                f" {self.model} MAC {self.mac}{' (chosen: the sidecar gave none)' if self.mac_generated else ''}")


def _mac_for(domain: str, alias: str) -> str:
    digest = hashlib.sha256(f"{domain}/{alias}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def _specs(forward: etree._Element | None) -> tuple[str, ...]:
    if forward is None:
        return ()
    ranges = forward.findall("range")
    if not ranges:
        return ("all",)
    specs = []
    for r in ranges:
        start, end = r.get("start"), r.get("end")
        spec = f"{start}-{end}" if end else str(start)
        specs.append(f"~{spec}" if r.get("exclude") == "yes" else spec)
    if all(s.startswith("~") for s in specs):
        specs.insert(0, "all")  # only exclusions: everything else is forwarded
    return tuple(specs)


def passt_interfaces(root: etree._Element) -> list[etree._Element]:
    return [i for i in root.findall("devices/interface")
            if i.find("backend") is not None and i.find("backend").get("type") == "passt"]


def substitute(xml: str | bytes, socket_for: Callable[[str], Path]) -> tuple[str, list[PasstNic]]:
    """Replace every passt-backed interface; ``socket_for(alias)`` says where its passt listens."""
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml, _PARSER)
    found = passt_interfaces(root)
    if not found:
        return etree.tostring(root, encoding="unicode"), []
    if root.nsmap.get("qemu") != QEMU_NS:
        new = etree.Element(root.tag, attrib=dict(root.attrib), nsmap={**root.nsmap, "qemu": QEMU_NS})
        new.extend(list(root))
        root = new
        found = passt_interfaces(root)
    domain_name = root.findtext("name") or ""
    commandline = root.find(f"{{{QEMU_NS}}}commandline")
    if commandline is None:
        commandline = etree.SubElement(root, f"{{{QEMU_NS}}}commandline")
    nics = []
    for index, iface in enumerate(found):
        alias_el = iface.find("alias")
        alias = alias_el.get("name") if alias_el is not None and alias_el.get("name") else f"passt{index}"
        model_el = iface.find("model")
        model = model_el.get("type", "virtio") if model_el is not None else "virtio"
        if model not in _MODELS:
            raise PasstSubstitutionError(f"interface {alias}: model {model!r} is not a virtio model; the passt"
                                         " substitution supports virtio, virtio-transitional, virtio-non-transitional")
        mac_el = iface.find("mac")
        mac = mac_el.get("address").lower() if mac_el is not None and mac_el.get("address") else ""
        source = iface.find("source")
        pod_iface = source.get("dev") if source is not None and source.get("dev") else "eth0"
        forwards = {f.get("proto"): f for f in iface.findall("portForward")}
        nic = PasstNic(alias, mac or _mac_for(domain_name, alias), not mac, pod_iface,
                       _specs(forwards.get("tcp")), _specs(forwards.get("udp")), model, socket_for(alias))
        netdev = f"nb-{alias}"
        for value in ("-netdev", f"stream,id={netdev},server=off,addr.type=unix,addr.path={nic.socket}",
                      "-device", f"{_MODELS[model]},netdev={netdev},mac={nic.mac},id={alias},bus=pcie.0,addr={PCI_SLOT_BASE + index:#x}"):
            etree.SubElement(commandline, f"{{{QEMU_NS}}}arg", value=value)
        iface.getparent().remove(iface)
        nics.append(nic)
    return etree.tostring(root, encoding="unicode", pretty_print=True), nics


def fit_to_limit(nic: PasstNic, nofile: int) -> tuple[PasstNic, str | None]:
    """Forward-all needs more open files than ``nofile`` allows: forward nothing instead, and say so."""
    wanted = [p for p, specs in (("tcp", nic.tcp), ("udp", nic.udp)) if "all" in specs]
    if not wanted or nofile >= FORWARD_ALL_SOCKETS:
        return nic, None
    from dataclasses import replace

    fitted = replace(nic, tcp=() if "tcp" in wanted else nic.tcp, udp=() if "udp" in wanted else nic.udp)
    return fitted, (f"{nic.alias}: forward-all ({'/'.join(wanted)}: no `ports` in the VMI) needs about"
                    f" {FORWARD_ALL_SOCKETS} sockets but the open-files limit here is {nofile}; inbound"
                    " forwarding is off for it: list the ports in the interface's `ports`")
