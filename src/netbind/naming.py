"""Pod and tap interface names, as KubeVirt derives them (spec section 3).

Secondary Multus networks get ``pod<sha256(network name)[:11]>`` (hashed scheme, every pod created
since KubeVirt v1.0) or ``net<k>`` (legacy ordinal scheme, kept for pods that already use it). The
primary network (``pod: {}`` or Multus ``default: true``) is ``eth0`` unless the VMI status says
otherwise, and its tap is always ``tap0``.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any, Iterable, Mapping, Sequence

from netbind.api.models import InterfaceStatus, Network

PRIMARY_POD_INTERFACE = "eth0"
PRIMARY_TAP = "tap0"
_ORDINAL = re.compile(r"^net\d+$")
# 15-character kernel limit minus the 4 characters of a "-nic" suffix, minus "pod"
_HASH_LENGTH = 11


def hashed_interface_name(network_name: str) -> str:
    return "pod" + hashlib.sha256(network_name.encode("utf-8")).hexdigest()[:_HASH_LENGTH]


def is_ordinal_interface_name(name: str) -> bool:
    return _ORDINAL.match(name) is not None


def _secondary(networks: Iterable[Network]) -> list[Network]:
    return [n for n in networks if n.is_secondary_multus]


def hashed_scheme(networks: Iterable[Network]) -> dict[str, str]:
    """Network name -> pod interface name for a new pod (hashed secondaries)."""
    scheme: dict[str, str] = {}
    for net in networks:
        if net.is_primary:
            scheme[net.name] = PRIMARY_POD_INTERFACE
        elif net.multus is not None:
            scheme[net.name] = hashed_interface_name(net.name)
    return scheme


def ordinal_scheme(networks: Iterable[Network]) -> dict[str, str]:
    """Network name -> pod interface name in the legacy ordinal scheme (net1, net2, ...)."""
    networks = list(networks)
    scheme = {n.name: PRIMARY_POD_INTERFACE for n in networks if n.is_primary}
    for k, net in enumerate(_secondary(networks), start=1):
        scheme[net.name] = f"net{k}"
    return scheme


def _status_pod_names(statuses: Iterable[InterfaceStatus] | None) -> dict[str, str]:
    return {s.name: s.pod_interface_name for s in statuses or [] if s.name and s.pod_interface_name}


def with_primary_from_status(scheme: Mapping[str, str], networks: Iterable[Network],
                             statuses: Iterable[InterfaceStatus] | None) -> dict[str, str]:
    """The primary network's pod interface name as the VMI status reports it (if it does)."""
    updated = dict(scheme)
    reported = _status_pod_names(statuses)
    for net in networks:
        if net.is_primary and net.name in reported and net.name in updated:
            updated[net.name] = reported[net.name]
    return updated


def hashed_pod_interface_name(network: Network, statuses: Iterable[InterfaceStatus] | None = None) -> str:
    if network.is_primary:
        return _status_pod_names(statuses).get(network.name, PRIMARY_POD_INTERFACE)
    return hashed_interface_name(network.name)


def pod_has_ordinal_interface_name(network_statuses: Iterable[Mapping[str, Any]]) -> bool:
    """A Multus network-status entry named ``net<k>`` marks a pod of the ordinal era."""
    return any(is_ordinal_interface_name(str(s.get("interface") or "")) for s in network_statuses)


def scheme_from_network_statuses(networks: Sequence[Network],
                                 network_statuses: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    if pod_has_ordinal_interface_name(list(network_statuses)):
        return ordinal_scheme(networks)
    return hashed_scheme(networks)


def has_ordinal_secondary_interfaces(networks: Iterable[Network],
                                     statuses: Iterable[InterfaceStatus] | None) -> bool:
    """Whether the running pod uses ordinal names; with nothing reported, assume it does."""
    secondary = _secondary(networks)
    if not secondary:
        return False
    reported = _status_pod_names(statuses)
    for net in secondary:
        if net.name in reported:
            return is_ordinal_interface_name(reported[net.name])
    return True


def tap_name(pod_interface_name: str, network: Network, *, always_derive: bool = False) -> str:
    """Tap for a network. ``always_derive`` is KubeVirt v1.4.0's rule ("tap" + name[3:] for all)."""
    if network.is_primary and not always_derive:
        return PRIMARY_TAP
    return "tap" + pod_interface_name[3:]


def _strip_pod(pod_interface_name: str) -> str:
    return pod_interface_name[3:] if pod_interface_name.startswith("pod") else pod_interface_name


def bridge_name(pod_interface_name: str) -> str:
    """In-pod bridge of the bridge binding and of managedTap."""
    return "k6t-" + _strip_pod(pod_interface_name)


def renamed_pod_nic_name(pod_interface_name: str) -> str:
    """Name the pod link gets once enslaved to the in-pod bridge."""
    return _strip_pod(pod_interface_name) + "-nic"
