"""VMI status as virt-controller and virt-handler report it, from what the runtime saw.

Interfaces come from the domain (name by alias ``ua-<name>``, MAC), the pod's network-status
(``podInterfaceName``) and the guest (its serial ``NB:`` reports play the guest agent: interface
name and addresses), joined into KubeVirt's ``infoSource`` list.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from netbind.node.guest import Report

INFO_DOMAIN, INFO_GUEST_AGENT, INFO_MULTUS = "domain", "guest-agent", "multus-status"


@dataclass(frozen=True)
class DomainNic:
    name: str                  # the VMI interface name
    mac: str
    pod_interface: str | None


def interface_statuses(nics: Sequence[DomainNic], reports: Iterable[Report],
                       pod_interfaces: Mapping[str, str]) -> list[dict[str, Any]]:
    """One status entry per domain NIC; ``pod_interfaces`` maps interface name -> pod link."""
    guest: dict[str, dict[str, Any]] = {}
    for report in reports:
        mac = report.fields.get("mac", "").lower()
        if report.word in ("LEASE", "ADDR") and mac and report.fields.get("ip"):
            seen = guest.setdefault(mac, {"iface": report.fields.get("iface"), "ips": []})
            if report.word == "LEASE" and report.fields.get("event") == "bound":
                seen["ips"] = []          # a fresh lease replaces what the NIC had
            if report.fields["ip"] not in seen["ips"]:
                seen["ips"].append(report.fields["ip"])
        elif report.word == "LINK" and report.fields.get("state") == "down":
            for seen in guest.values():
                if seen["iface"] == report.fields.get("iface"):
                    seen["ips"] = []
    statuses = []
    for nic in nics:
        entry: dict[str, Any] = {"name": nic.name, "mac": nic.mac}
        sources = [INFO_DOMAIN]
        seen = guest.get(nic.mac.lower())
        if seen is not None:
            sources.append(INFO_GUEST_AGENT)
            entry["interfaceName"] = seen["iface"]
            if seen["ips"]:
                entry["ipAddress"] = seen["ips"][0]
                entry["ipAddresses"] = list(seen["ips"])
        pod_iface = pod_interfaces.get(nic.name)
        if pod_iface:
            sources.append(INFO_MULTUS)
            entry["podInterfaceName"] = pod_iface
        entry["infoSource"] = ", ".join(sources)
        entry["linkState"] = "up"
        entry["queueCount"] = 1
        statuses.append(entry)
    return statuses


def condition(type_: str, status: bool, reason: str | None = None, message: str | None = None) -> dict[str, Any]:
    cond: dict[str, Any] = {"type": type_, "status": "True" if status else "False",
                            "lastProbeTime": None, "lastTransitionTime": None}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def ready(reports: Iterable[Report]) -> Report | None:
    return next((r for r in reports if r.word == "READY"), None)
