"""The virt-handler role of ``netbind up``: network phase 1 in the pod namespace.

KubeVirt's virt-handler changes nothing in the pod for ``tap`` and sidecar-only bindings; for a
``managedTap`` binding it builds the in-pod bridge, tap and dummy (``netbind.netpod``, spec
section 8). Each interface's layout is one journal entry written before the first change, holding
the pod link as observed: its undo is ``netpod.restore``, so a failure, ``down`` and crash
cleanup all put the pod back before the CNI DELs run.

KubeVirt starts no DHCP server for managedTap: the address comes from the network's own DHCP (OVN
answers a logical port's MAC with its address). Here the node plays that network: a
``netbind dhcp serve`` in the node namespace, on the pod network's L2 (the node side of the pod's
veth: the CNI bridge), answering the VM's MAC with the pod's IPAM address, the gateway as router and
server identifier, and the pod link's MTU. It is recorded in the pod's journal.
"""
from __future__ import annotations

import ipaddress
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from netbind import naming, netpod
from netbind.node import procs

COUNTERS_FILE = "dhcp-{name}.counters.json"


@dataclass(frozen=True)
class ManagedTap:
    """One managedTap interface as phase 1 wired it."""
    interface: str          # VMI interface name
    pod_link: netpod.PodLinkState
    layout: netpod.Layout
    vm_mac: str
    dhcp: str = ""          # what serves its address ("" when nothing does)
    counters: str = ""      # the upstream DHCP server's counters file


def _queues(vmi, iface) -> int:
    from netbind.launcher import _converter

    model = iface.model or "virtio"
    if model != "virtio" or not vmi.spec.domain.devices.network_interface_multiqueue:
        return 0
    return min(_converter.vcpu_count(vmi), 256)


def managed_tap_interfaces(vmi, config) -> list:
    """The VMI interfaces whose binding plugin has ``domainAttachmentType: managedTap``."""
    out = []
    for iface in vmi.spec.interfaces:
        plugin = config.bindings.get(iface.binding.name) if iface.binding else None
        if plugin is not None and plugin.domain_attachment_type == "managedTap":
            out.append(iface)
    return out


def undo_layout(attrs: dict[str, Any]) -> None:
    from netbind import _iproute as iproute

    if not iproute.netns_exists(attrs["netns"]):
        return  # the namespace is gone, and every link in it
    netpod.restore(netpod.Namespace(attrs["netns"]), netpod.PodLinkState.from_json(attrs["pod_link"]),
                   netpod.Layout(**attrs["layout"]))


def phase1(pod, node, vmi, config, attachments: Sequence, pod_interfaces: dict[str, str],
           substitutions: list[str]) -> list[ManagedTap]:
    """Wire every managedTap interface of the VMI in ``pod``; start its upstream DHCP."""
    ifaces = managed_tap_interfaces(vmi, config)
    if not ifaces:
        return []
    ns = netpod.Namespace(pod.netns)
    dummy = netpod.dummy_kind(ns)
    if dummy != "dummy":
        substitutions.append("managedTap: the dummy link that keeps the pod interface's name, MAC, MTU and"
                             " addresses is a bridge with no ports (this kernel has no dummy driver)")
    networks = {n.name: n for n in vmi.spec.network_list}
    wired = []
    for iface in ifaces:
        network = networks[iface.name]
        pod_iface = pod_interfaces[iface.name]
        layout = netpod.Layout(bridge=naming.bridge_name(pod_iface), port=naming.renamed_pod_nic_name(pod_iface),
                               tap=naming.tap_name(pod_iface, network), queues=_queues(vmi, iface),
                               owner=netpod.NON_ROOT_OWNER, dummy=dummy)
        try:
            observed = netpod.observe(ns, pod_iface)
        except netpod.LayoutError as exc:
            raise netpod.LayoutError(f"virt-handler: interface {iface.name}: {exc}") from None
        entry = pod.journal.intend("netpod-layout", f"{iface.name}:{pod_iface}", netns=pod.netns,
                                   pod_link=observed.to_json(), layout=layout.__dict__)
        try:
            netpod.build(ns, observed, layout)
        except netpod.LayoutError as exc:
            pod.journal.forget(entry)   # build restored the pod itself
            raise netpod.LayoutError(f"virt-handler: interface {iface.name}: {exc}") from None
        pod.journal.created(entry)
        vm_mac = (iface.mac_address or observed.mac).lower().replace("-", ":")
        tap = ManagedTap(iface.name, observed, layout, vm_mac)
        attachment = next((a for a in attachments if a.ifname == pod_iface), None)
        if attachment is not None and attachment.default:
            tap = _upstream_dhcp(pod, node, tap, attachment)
        wired.append(tap)
    return wired


def _node_l2(result: dict) -> str | None:
    """The node side of the pod network: the first result interface outside the pod (the CNI
    bridge for Debian's ``bridge`` plugin, the host veth for ``ptp``)."""
    for iface in result.get("interfaces", []):
        if not iface.get("sandbox"):
            return iface.get("name")
    return None


def _upstream_dhcp(pod, node, tap: ManagedTap, attachment) -> ManagedTap:
    v4 = [ip for ip in attachment.result.get("ips", []) if ipaddress.ip_interface(ip["address"]).version == 4]
    l2 = _node_l2(attachment.result)
    if not v4 or not l2 or not v4[0].get("gateway"):
        return tap
    address, gateway = v4[0]["address"], v4[0]["gateway"]
    name = f"dhcp-{tap.interface}"
    counters = pod.names.directory / COUNTERS_FILE.format(name=tap.interface)
    argv = (sys.executable, "-m", "netbind.cli", "dhcp", "serve", "-i", l2, "--client-mac", tap.vm_mac,
            "--address", address, "--server-address", gateway, "--router", gateway,
            "--mtu", str(tap.pod_link.mtu), "--counters", str(counters))
    spec = procs.ProcessSpec(name, argv, pod.names.logs_dir / f"{name}.log",
                             pod.names.directory / "pids" / f"{name}.pid", netns=node.netns)
    entry = pod.journal.intend("process", name, log=str(spec.log), pidfile=str(spec.pidfile))
    record = procs.start(spec)
    pod.journal.created(entry, **record.attrs())
    _wait_serving(record, spec.log)
    what = f"netbind DHCP in the node namespace on {l2}: {tap.vm_mac} -> {address}, router {gateway}"
    return ManagedTap(tap.interface, tap.pod_link, tap.layout, tap.vm_mac, what, str(counters))


def _wait_serving(record, log: Path, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while "serving " not in (log.read_text(errors="replace") if log.exists() else ""):
        if not procs.alive(record.pid, record.starttime):
            raise RuntimeError(f"the upstream DHCP server exited: {procs.log_tail(log, 10)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the upstream DHCP server did not start in {timeout:g} s: {procs.log_tail(log, 10)}")
        time.sleep(0.01)


def describe(wired: Sequence[ManagedTap]) -> str:
    return "; ".join(f"{t.interface}: {t.layout.bridge} + {t.layout.tap} (owner {t.layout.owner}"
                     f"{', queues ' + str(t.layout.queues) if t.layout.queues > 1 else ''}), "
                     f"{t.pod_link.name} kept as {t.layout.dummy}" for t in wired) or "nothing to wire"


def read_counters(path: str | Path) -> dict[str, int]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
