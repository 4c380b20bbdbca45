"""VMI status as virt-controller and virt-handler report it, from what the runtime saw.

Interfaces come from the domain (name by alias ``ua-<name>``, MAC), the pod's network-status
(``podInterfaceName``) and the guest: its QEMU guest agent (interface name and addresses, matched
by MAC) when one answers, else its serial ``NB:`` reports standing in for it; joined into KubeVirt's
``infoSource`` list.
"""
from __future__ import annotations

from dataclasses import dataclass
import ipaddress
from typing import Any, Collection, Iterable, Mapping, Sequence

from netbind.node.guest import Report

INFO_DOMAIN, INFO_GUEST_AGENT, INFO_MULTUS = "domain", "guest-agent", "multus-status"
INFO_DOMAIN_AND_GA = f"{INFO_DOMAIN}, {INFO_GUEST_AGENT}"


@dataclass(frozen=True)
class AgentInterface:
    """One guest interface as the guest agent reports it (KubeVirt's api.InterfaceStatus)."""
    name: str            # the guest's name for it (eth0)
    mac: str
    ip: str              # the first IPv4 address, else the first of any family, else ""
    ips: tuple[str, ...]


@dataclass(frozen=True)
class DomainNic:
    name: str                  # the VMI interface name
    mac: str
    pod_interface: str | None


def interface_statuses(nics: Sequence[DomainNic], reports: Iterable[Report], pod_interfaces: Mapping[str, str],
                       agent: Sequence[AgentInterface] | None = None,
                       masquerade: Collection[str] = ()) -> list[dict[str, Any]]:
    """One status entry per domain NIC, as virt-handler's NetStat.UpdateStatus builds them:
    ``pod_interfaces`` maps interface name -> pod link; ``agent`` is what the QEMU guest agent
    reports (None: no agent answered, and the guest's serial reports stand in for it);
    ``masquerade`` names the interfaces bound by masquerade."""
    statuses: list[dict[str, Any]] = [{"name": nic.name, "mac": nic.mac, "infoSource": INFO_DOMAIN,
                                       "linkState": "up", "queueCount": 1} for nic in nics]
    statuses = merge_guest_agent(statuses, agent if agent is not None else serial_reports_as_agent(reports),
                                 masquerade)
    for entry in statuses:
        pod_iface = pod_interfaces.get(entry.get("name", ""))
        if pod_iface:
            entry["infoSource"] = add_info_source(entry["infoSource"], INFO_MULTUS)
            entry["podInterfaceName"] = pod_iface
    return statuses


def serial_reports_as_agent(reports: Iterable[Report]) -> list[AgentInterface]:
    """The tiny and cloud guests' console reports (LEASE, ADDR, LINK down) read as a guest agent's
    interface list: the addresses each NIC holds now, by MAC."""
    guest: dict[str, dict[str, Any]] = {}
    for report in reports:
        mac = report.fields.get("mac", "").lower()
        if report.word in ("LEASE", "ADDR") and mac and report.fields.get("ip"):
            seen = guest.setdefault(mac, {"iface": report.fields.get("iface") or "", "ips": []})
            if report.word == "LEASE" and report.fields.get("event") == "bound":
                seen["ips"] = []          # a fresh lease replaces what the NIC had
            if report.fields["ip"] not in seen["ips"]:
                seen["ips"].append(report.fields["ip"])
        elif report.word == "LINK" and report.fields.get("state") == "down":
            for seen in guest.values():
                if seen["iface"] == report.fields.get("iface"):
                    seen["ips"] = []
    return [AgentInterface(seen["iface"], mac, seen["ips"][0] if seen["ips"] else "", tuple(seen["ips"]))
            for mac, seen in guest.items()]


# KubeVirt lists at most this many guest interfaces that match no domain NIC (ifacesStatusFromGuestAgent)
GUEST_ONLY_INTERFACE_LIMIT = 10


def merge_guest_agent(statuses: list[dict[str, Any]], agent: Iterable[AgentInterface],
                      masquerade: Collection[str] = ()) -> list[dict[str, Any]]:
    """KubeVirt's ifacesStatusFromGuestAgent: each agent interface joins the status entry with its
    MAC (its guest name, its addresses by the per-family rule below, infoSource "domain,
    guest-agent"), link-local IPv6 dropped on a masquerade NIC (unreachable through its NAT); an
    interface matching no entry is appended (MAC, addresses, guest name, infoSource "guest-agent"),
    up to GUEST_ONLY_INTERFACE_LIMIT of them. Returns new entries; ``statuses`` is not changed."""
    merged = [dict(entry) for entry in statuses]
    guest_only = 0
    for iface in agent:
        entry = next((e for e in merged if e.get("mac", "").lower() == iface.mac.lower()), None)
        if entry is None:
            if guest_only >= GUEST_ONLY_INTERFACE_LIMIT:
                continue
            guest_only += 1
            extra: dict[str, Any] = {"mac": iface.mac, "interfaceName": iface.name, "infoSource": INFO_GUEST_AGENT}
            if iface.ip:
                extra["ipAddress"] = iface.ip
            if iface.ips:
                extra["ipAddresses"] = list(iface.ips)
            merged.append(extra)
            continue
        ips = list(iface.ips)
        if entry.get("name") in masquerade:
            ips = [ip for ip in ips if not _link_local(ip)]
        entry["interfaceName"] = iface.name
        _set_ips(entry, _merge_ips(entry.get("ipAddresses", []), ips))
        if iface.name:   # an entry without a guest name came from an old virt-launcher's own merge
            entry["infoSource"] = INFO_DOMAIN_AND_GA
    return merged


def _merge_ips(current: Sequence[str], agent: Sequence[str]) -> list[str]:
    """Per address family: the agent's addresses when the status had none of that family or the
    agent reports none of it (the guest is unreachable by it); otherwise the status keeps its own
    (the pod's, in KubeVirt). IPv4 first, then IPv6; unparsable addresses dropped."""
    have4, have6 = _by_family(current)
    got4, got6 = _by_family(agent)
    return (got4 if not have4 or not got4 else have4) + (got6 if not have6 or not got6 else have6)


def _set_ips(entry: dict[str, Any], ips: list[str]) -> None:
    entry.pop("ipAddress", None)
    entry.pop("ipAddresses", None)
    if ips:
        entry["ipAddress"] = ips[0]
        entry["ipAddresses"] = ips


def _by_family(ips: Iterable[str]) -> tuple[list[str], list[str]]:
    v4, v6 = [], []
    for raw in ips:
        try:
            (v4 if ipaddress.ip_address(raw).version == 4 else v6).append(raw)
        except ValueError:
            continue
    return v4, v6


def _link_local(raw: str) -> bool:
    try:
        return ipaddress.ip_address(raw).is_link_local
    except ValueError:
        return True     # KubeVirt's filter drops what it cannot parse too


def add_info_source(info_source: str, name: str) -> str:
    """KubeVirt's vmispec.AddInfoSource: ``name`` appended to the ", "-joined list unless present."""
    sources = info_source.split(", ") if info_source else []
    return info_source if name in sources else ", ".join([*sources, name])


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
