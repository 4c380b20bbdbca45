"""KubeVirt's network admitter (``pkg/network/admitter``), rule for rule, in KubeVirt's order.

Two entry points mirror KubeVirt's two validator methods: the creation-only rules (discontinued
core bindings) and the general rules, which also run on updates and again in virt-controller right
before it creates the pod. Every cause carries KubeVirt's exact type, message and field path; the
field prefix is ``spec`` for a VMI and ``spec.template.spec`` for a VM.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from netbind.api.models import (
    Interface,
    KubeVirtConfiguration,
    Network,
    VirtualMachineInstance,
    VirtualMachineInstanceSpec,
)
from netbind.api.versions import LATEST, Profile

from .causes import (
    FIELD_VALUE_DUPLICATE,
    FIELD_VALUE_INVALID,
    FIELD_VALUE_NOT_FOUND,
    FIELD_VALUE_NOT_SUPPORTED,
    FIELD_VALUE_REQUIRED,
    Cause,
    FieldPath,
)
from netbind.gocompat import MacAddressError, go_quote, is_ipv4, is_valid_port_name, parse_mac, parse_pci_address

__all__ = ["validate_network", "validate_network_creation", "validate_network_spec"]

RESERVED_MASQUERADE_MAC = "02:00:00:00:00:00"
VALID_MODELS = frozenset({"e1000", "e1000e", "igb", "ne2k_pci", "pcnet", "rtl8139", "virtio"})
_INTERFACE_NAME = re.compile(r"[A-Za-z0-9\-_]+")
_MAX_PORT_RANGES = 10


@dataclass(frozen=True)
class _Rules:
    """How a KubeVirt version's network admitter differs (the rest is shared)."""

    exactly_one_binding: bool        # v1.9+: B1; before: "cannot have both" + no-binding accepted
    binding_plugins_gate: bool       # v1.1-v1.4: NetworkBindingPlugins must be enabled
    link_states: frozenset[str]      # accepted `state` values
    port_max_inclusive: bool         # v1.4 accepted 65536 (off-by-one)
    port_cause_on_port_field: bool   # main: ...ports[j].port; v1.4: ...ports[j]
    legacy_core_bindings: bool       # v1.4 still validated slirp/macvtap/passt (gates, networks)
    discontinued_on_creation: tuple[str, ...]  # members rejected on creation


_RULES = {
    "latest": _Rules(
        exactly_one_binding=True,
        binding_plugins_gate=False,
        link_states=frozenset({"", "absent", "down", "up"}),
        port_max_inclusive=False,
        port_cause_on_port_field=True,
        legacy_core_bindings=False,
        discontinued_on_creation=("slirp", "passt", "macvtap"),
    ),
    "1.4": _Rules(
        exactly_one_binding=False,
        binding_plugins_gate=True,
        link_states=frozenset({"", "absent"}),
        port_max_inclusive=True,
        port_cause_on_port_field=False,
        legacy_core_bindings=True,
        discontinued_on_creation=("slirp",),
    ),
}

_DISCONTINUED_MESSAGES = {
    "slirp": "Slirp interface support has been discontinued since v1.3",
    "passt": "Passt network binding has been discontinued since v1.3",
    "macvtap": "Macvtap network binding has been discontinued since v1.3",
}


@dataclass(frozen=True)
class _Cluster:
    """The cluster-config questions the admitter asks (KubeVirt's clusterConfigChecker)."""

    bridge_on_pod_network: bool
    passt_binding: bool
    network_devices_with_dra: bool
    port_ranges_spec: bool
    binding_plugins: bool
    passt: bool
    macvtap: bool
    slirp: bool

    @classmethod
    def of(cls, config: KubeVirtConfiguration, profile: Profile) -> "_Cluster":
        network = config.network
        return cls(
            bridge_on_pod_network=config.permit_bridge_interface_on_pod_network,
            passt_binding=profile.gate_enabled(config, "PasstBinding"),
            network_devices_with_dra=profile.gate_enabled(config, "NetworkDevicesWithDRA"),
            port_ranges_spec=profile.gate_enabled(config, "PortRangesSpec"),
            binding_plugins=profile.gate_enabled(config, "NetworkBindingPlugins"),
            passt=profile.gate_enabled(config, "Passt"),
            macvtap=profile.gate_enabled(config, "Macvtap"),
            slirp=bool(network and network.permit_slirp_interface),
        )


def _rules(profile: Profile) -> _Rules:
    try:
        return _RULES[profile.name]
    except KeyError:
        raise ValueError(f"no admission rules for KubeVirt version {profile.name!r}") from None


def _decoded(spec: VirtualMachineInstanceSpec, profile: Profile) -> VirtualMachineInstanceSpec:
    """The spec as the version's Go code sees it (fields it does not know are dropped)."""
    return profile.decoded(VirtualMachineInstance(spec=spec)).spec


class _Context:
    """One validation run: the spec, the cluster answers and the field paths."""

    def __init__(self, spec: VirtualMachineInstanceSpec, config: KubeVirtConfiguration | None,
                 profile: Profile, field: str):
        self.spec = _decoded(spec, profile)
        self.cluster = _Cluster.of(config or KubeVirtConfiguration(), profile)
        self.rules = _rules(profile)
        self.field = FieldPath(field)
        self.interfaces: list[Interface] = self.spec.interfaces
        self.networks: list[Network] = self.spec.network_list
        # Go's IndexNetworkSpecByName: the last network of a name wins; a missing one is a zero Network
        self.network_by_name: dict[str, Network] = {n.name: n for n in self.networks}

    def iface(self, idx: int, *children: str) -> str:
        return str(self.field.child("domain", "devices", "interfaces").index(idx).child(*children))

    def network_of(self, iface: Interface) -> Network | None:
        return self.network_by_name.get(iface.name)


def _is_pod(net: Network | None) -> bool:
    return net is not None and net.pod is not None


def _is_multus(net: Network | None) -> bool:
    return net is not None and net.multus is not None


# --- creation-only rules ------------------------------------------------------------------------


def _discontinued_bindings(ctx: _Context) -> list[Cause]:
    causes = []
    for idx, iface in enumerate(ctx.interfaces):
        for member in ctx.rules.discontinued_on_creation:
            if getattr(iface, member) is not None:
                causes.append(Cause(FIELD_VALUE_INVALID, _DISCONTINUED_MESSAGES[member], ctx.iface(idx, member)))
    return causes


# --- network sources ----------------------------------------------------------------------------


def _single_pod_network(ctx: _Context) -> list[Cause]:
    causes = []
    pods = [n for n in ctx.networks if n.pod is not None]
    multus_defaults = [n for n in ctx.networks if n.multus is not None and n.multus.default]
    if len(pods) > 1:
        where = str(ctx.field.child("interfaces"))  # sic: KubeVirt names a path that does not exist
        causes.append(Cause(FIELD_VALUE_DUPLICATE,
                            f"more than one interface is connected to a pod network in {where}", where))
    if len(multus_defaults) > 1:
        causes.append(Cause(FIELD_VALUE_INVALID, "Multus CNI should only have one default network",
                            str(ctx.field.child("networks"))))
    if pods and multus_defaults:
        causes.append(Cause(FIELD_VALUE_INVALID,
                            "Pod network cannot be defined when Multus default network is defined",
                            str(ctx.field.child("networks"))))
    return causes


def _single_network_source(ctx: _Context) -> list[Cause]:
    causes = []
    for idx, net in enumerate(ctx.networks):
        sources = sum(source is not None for source in (net.pod, net.multus, net.resource_claim))
        where = str(ctx.field.child("networks").index(idx))
        if sources == 0:
            causes.append(Cause(FIELD_VALUE_REQUIRED, "should have a network type", where))
        elif sources > 1:
            causes.append(Cause(FIELD_VALUE_REQUIRED, "should have only one network type", where))
    return causes


def _multus_network_source(ctx: _Context) -> list[Cause]:
    for idx, net in enumerate(ctx.networks):
        if net.multus is not None and net.multus.network_name == "":
            # only the first offender is reported
            return [Cause(FIELD_VALUE_REQUIRED, "CNI delegating plugin must have a networkName",
                          str(ctx.field.child("networks").index(idx)))]
    return []


# --- interface state ----------------------------------------------------------------------------


def _default_network(networks: list[Network]) -> Network | None:
    return next((n for n in networks if n.pod is not None or (n.multus is not None and n.multus.default)), None)


def _interface_state(ctx: _Context) -> list[Cause]:
    causes = []
    default = _default_network(ctx.networks)
    for idx, iface in enumerate(ctx.interfaces):
        state = iface.state or ""
        where = ctx.iface(idx, "state")
        if state not in ctx.rules.link_states:
            causes.append(Cause(FIELD_VALUE_INVALID,
                                f"logical {iface.name} interface state value is unsupported: {state}", where))
        # versions that know link states refuse them on SR-IOV
        if iface.sriov is not None and state in ("down", "up") and "down" in ctx.rules.link_states:
            causes.append(Cause(FIELD_VALUE_INVALID,
                                f"{go_quote(iface.name)} interface's state {go_quote(state)} "
                                "is not supported for SR-IOV NICs", where))
        if state == "absent" and iface.bridge is None:
            causes.append(Cause(FIELD_VALUE_INVALID,
                                f"{go_quote(iface.name)} interface's state {go_quote(state)} "
                                "is supported only for bridge binding", where))
        if state == "absent" and default is not None and default.name == iface.name:
            causes.append(Cause(FIELD_VALUE_INVALID,
                                f"{go_quote(iface.name)} interface's state {go_quote(state)} "
                                "is not supported on default networks", where))
    return causes


# --- bindings -----------------------------------------------------------------------------------


def _binding_count(iface: Interface) -> int:
    members = (iface.bridge, iface.masquerade, iface.sriov, iface.passt_binding, iface.binding)
    return sum(member is not None for member in members)


def _has_core_binding_v14(iface: Interface) -> bool:
    members = (iface.bridge, iface.slirp, iface.masquerade, iface.sriov, iface.macvtap, iface.passt)
    return any(member is not None for member in members)


def _interface_binding(ctx: _Context) -> list[Cause]:
    causes: list[Cause] = []
    cluster, rules = ctx.cluster, ctx.rules
    for idx, iface in enumerate(ctx.interfaces):
        net = ctx.network_of(iface)
        if rules.exactly_one_binding:
            if _binding_count(iface) != 1:
                causes.append(Cause(FIELD_VALUE_INVALID,
                                    f"logical {iface.name} interface must have exactly one binding method "
                                    "or binding plugin", ctx.iface(idx)))
        elif iface.binding is not None and _has_core_binding_v14(iface):
            causes.append(Cause(FIELD_VALUE_INVALID,
                                f"logical {iface.name} interface cannot have both binding plugin and "
                                "interface binding method", ctx.iface(idx, "binding")))
        if iface.masquerade is not None and not _is_pod(net):
            causes.append(Cause(FIELD_VALUE_INVALID, "Masquerade interface only implemented with pod network",
                                ctx.iface(idx, "name")))
        if iface.masquerade is not None and iface.mac_address == RESERVED_MASQUERADE_MAC:
            causes.append(Cause(FIELD_VALUE_INVALID,
                                "The requested MAC address is reserved for the in-pod bridge. "
                                "Please choose another one.", ctx.iface(idx, "macAddress")))
        if iface.bridge is not None and _is_pod(net) and not cluster.bridge_on_pod_network:
            causes.append(Cause(FIELD_VALUE_INVALID,
                                "Bridge on pod network configuration is not enabled under kubevirt-config",
                                ctx.iface(idx, "name")))
        if rules.binding_plugins_gate and iface.binding is not None and not cluster.binding_plugins:
            causes.append(Cause(FIELD_VALUE_INVALID, "Binding plugins feature gate is not enabled",
                                ctx.iface(idx, "name")))
        if rules.legacy_core_bindings:
            causes += _legacy_macvtap_and_passt(ctx, idx, iface, net)
        if iface.passt_binding is not None and not cluster.passt_binding:
            causes.append(Cause(FIELD_VALUE_INVALID, "PasstBinding feature gate is not enabled",
                                ctx.iface(idx, "name")))
        if iface.passt_binding is not None and not _is_pod(net):
            causes.append(Cause(FIELD_VALUE_INVALID, "PasstBinding interface only implemented with pod network",
                                ctx.iface(idx, "name")))
    return causes


def _legacy_macvtap_and_passt(ctx: _Context, idx: int, iface: Interface, net: Network | None) -> list[Cause]:
    """v1.4: the old core macvtap/passt members were still gated and network-checked."""
    causes = []
    if iface.macvtap is not None and not ctx.cluster.macvtap:
        causes.append(Cause(FIELD_VALUE_INVALID, "Macvtap feature gate is not enabled", ctx.iface(idx, "name")))
    if iface.macvtap is not None and not _is_multus(net):
        causes.append(Cause(FIELD_VALUE_INVALID, "Macvtap interface only implemented with Multus network",
                            ctx.iface(idx, "name")))
    if iface.passt is not None and not ctx.cluster.passt:
        causes.append(Cause(FIELD_VALUE_INVALID, "Passt feature gate is not enabled", ctx.iface(idx, "name")))
    if iface.passt is not None and not _is_pod(net):
        causes.append(Cause(FIELD_VALUE_INVALID, "Passt interface only implemented with pod network",
                            ctx.iface(idx, "name")))
    return causes


def _legacy_slirp(ctx: _Context) -> list[Cause]:
    """v1.4: slirp needed the pod network and ``permitSlirpInterface``."""
    if not ctx.rules.legacy_core_bindings:
        return []
    causes = []
    for idx, iface in enumerate(ctx.interfaces):
        if iface.slirp is None:
            continue
        net = next((n for n in ctx.networks if n.name == iface.name), None)  # first match here
        if net is None:
            continue
        if net.pod is None:
            causes.append(Cause(FIELD_VALUE_INVALID, "Slirp interface only implemented with pod network",
                                ctx.iface(idx, "name")))
        elif not ctx.cluster.slirp:
            causes.append(Cause(FIELD_VALUE_INVALID, "Slirp interface is not enabled in kubevirt-config",
                                ctx.iface(idx, "name")))
    return causes


# --- names and references -----------------------------------------------------------------------


def _network_name_unique(ctx: _Context) -> list[Cause]:
    causes, seen = [], set()
    for idx, net in enumerate(ctx.networks):
        if net.name in seen:
            causes.append(Cause(FIELD_VALUE_DUPLICATE,
                                f"Network with name {go_quote(net.name)} already exists, "
                                "every network must have a unique name",
                                str(ctx.field.child("networks").index(idx).child("name"))))
        seen.add(net.name)
    return causes


def _network_devices_with_dra(ctx: _Context) -> list[Cause]:
    networks = ctx.networks
    if not any(n.resource_claim is not None for n in networks):
        return []
    networks_path = ctx.field.child("networks")
    if not ctx.cluster.network_devices_with_dra:
        return [Cause(FIELD_VALUE_INVALID,
                      "vmi.spec.networks contains DRA networks but NetworkDevicesWithDRA feature gate "
                      "is not enabled", str(networks_path))]
    if any(n.multus is not None for n in networks):
        return [Cause(FIELD_VALUE_INVALID,
                      "mixing Multus and DRA resourceClaim networks in the same VMI is not supported",
                      str(networks_path))]
    first_index: dict[str, int] = {}
    for idx, net in enumerate(networks):
        claim = net.resource_claim
        if claim is not None and claim.claim_name and claim.request_name:
            first_index.setdefault(f"{claim.claim_name}/{claim.request_name}", idx)
    claim_names = {str((rc or {}).get("name", "")) for rc in ctx.spec.resource_claims or []}
    causes = []
    for idx, net in enumerate(networks):
        claim = net.resource_claim
        if claim is None:
            continue
        iface = next((i for i in ctx.interfaces if i.name == net.name), None)
        if iface is not None and iface.sriov is None and iface.binding is None:
            causes.append(Cause(FIELD_VALUE_INVALID,
                                f"DRA network {go_quote(net.name)} requires an SR-IOV or binding plugin interface",
                                str(ctx.field.child("domain", "devices", "interfaces"))))
        claim_name, request_name = claim.claim_name or "", claim.request_name or ""
        source = networks_path.index(idx).child("resourceClaim")
        if not claim_name:
            causes.append(Cause(FIELD_VALUE_REQUIRED, "claimName is required for DRA network",
                                str(source.child("claimName"))))
        if not request_name:
            causes.append(Cause(FIELD_VALUE_REQUIRED, "requestName is required for DRA network",
                                str(source.child("requestName"))))
        if not claim_name or not request_name:
            continue
        if claim_name not in claim_names:
            causes.append(Cause(FIELD_VALUE_NOT_FOUND,
                                f"network references resourceClaim {go_quote(claim_name)} which is not "
                                "defined in spec.resourceClaims", str(source.child("claimName"))))
        key = f"{claim_name}/{request_name}"
        if first_index.get(key, idx) != idx:
            causes.append(Cause(FIELD_VALUE_DUPLICATE,
                                f"duplicate claimName/requestName combination {go_quote(key)}",
                                str(networks_path.index(idx))))
    return causes


def _networks_assigned_to_interfaces(ctx: _Context) -> list[Cause]:
    names = {i.name for i in ctx.interfaces}
    causes = []
    for idx, net in enumerate(ctx.networks):
        if net.name not in names:
            where = str(ctx.field.child("networks").index(idx).child("name"))
            causes.append(Cause(FIELD_VALUE_REQUIRED, f"{where} '{net.name}' not found.", where))
    return causes


def _interface_name_unique(ctx: _Context) -> list[Cause]:
    causes, seen = [], set()
    for idx, iface in enumerate(ctx.interfaces):
        if iface.name in seen:
            causes.append(Cause(FIELD_VALUE_DUPLICATE, "Only one interface can be connected to one specific network",
                                ctx.iface(idx, "name")))
        seen.add(iface.name)
    return causes


def _interfaces_assigned_to_networks(ctx: _Context) -> list[Cause]:
    causes = []
    for idx, iface in enumerate(ctx.interfaces):
        if iface.name not in ctx.network_by_name:
            where = ctx.iface(idx, "name")
            causes.append(Cause(FIELD_VALUE_INVALID, f"{where} '{iface.name}' not found.", where))
    return causes


# --- per-interface fields -----------------------------------------------------------------------


def _interface_fields(ctx: _Context) -> list[Cause]:
    causes: list[Cause] = []
    for idx, iface in enumerate(ctx.interfaces):
        net = ctx.network_of(iface)
        name_path = ctx.iface(idx, "name")
        if not _INTERFACE_NAME.fullmatch(iface.name):
            causes.append(Cause(FIELD_VALUE_INVALID,
                                "Network interface name can only contain alphabetical characters, numbers, "
                                "dashes (-) or underscores (_)", name_path))
        if iface.model and iface.model not in VALID_MODELS:
            causes.append(Cause(FIELD_VALUE_NOT_SUPPORTED,
                                f"interface {name_path} uses model {iface.model} that is not supported.",
                                ctx.iface(idx, "model")))
        if iface.mac_address:
            problem = _mac_problem(iface.mac_address)
            if problem:
                causes.append(Cause(FIELD_VALUE_INVALID, f"interface {name_path} has {problem}.",
                                    ctx.iface(idx, "macAddress")))
        if iface.pci_address:
            try:
                parse_pci_address(iface.pci_address)
            except ValueError:
                causes.append(Cause(FIELD_VALUE_INVALID,
                                    f"interface {name_path} has malformed PCI address ({iface.pci_address}).",
                                    ctx.iface(idx, "pciAddress")))
        causes += _ports(ctx, idx, iface, net)
        causes += _port_ranges(ctx, idx, iface, net)
        causes += _dhcp_options(ctx, idx, iface)
    return causes


def _mac_problem(mac: str) -> str | None:
    """KubeVirt's ValidateMacAddress wording, or None when the address is fine."""
    try:
        octets = parse_mac(mac)
    except MacAddressError:
        return f"malformed MAC address ({mac})"
    if len(octets) > 6:
        return f"too long MAC address ({mac})"
    return None


def _ports(ctx: _Context, idx: int, iface: Interface, net: Network | None) -> list[Cause]:
    # ports are validated on the pod network only
    if not _is_pod(net) or iface.ports is None:
        return []
    causes = []
    seen: set[str] = set()
    for k, port in enumerate(iface.ports):
        name = port.name or ""
        if not name:
            continue
        where = ctx.iface(idx, "ports") + f"[{k}].name"
        if name in seen:
            causes.append(Cause(FIELD_VALUE_DUPLICATE, f"Duplicate name of the port: {name}", where))
        if not is_valid_port_name(name):
            causes.append(Cause(FIELD_VALUE_INVALID, f"Invalid name of the port: {name}", where))
        seen.add(name)
    for k, port in enumerate(iface.ports):
        port_path = ctx.iface(idx, "ports") + f"[{k}]"
        number_path = port_path + ".port" if ctx.rules.port_cause_on_port_field else port_path
        if port.port == 0:
            causes.append(Cause(FIELD_VALUE_REQUIRED, "Port field is mandatory.", number_path))
        too_big = port.port > 65536 if ctx.rules.port_max_inclusive else port.port >= 65536
        if port.port < 0 or too_big:
            causes.append(Cause(FIELD_VALUE_INVALID, "Port field must be in range 0 < x < 65536.", number_path))
        if port.protocol and port.protocol not in ("TCP", "UDP"):
            causes.append(Cause(FIELD_VALUE_INVALID, "Unknown protocol, only TCP or UDP allowed",
                                port_path + ".protocol"))
    return causes


def _port_ranges(ctx: _Context, idx: int, iface: Interface, net: Network | None) -> list[Cause]:
    if not ctx.cluster.port_ranges_spec:
        if iface.port_ranges is not None:
            return [Cause(FIELD_VALUE_INVALID,
                          "portRanges is specified on interface but the PortRangesSpec feature gate is not enabled",
                          ctx.iface(idx, "name"))]
        return []
    if not _is_pod(net) or iface.port_ranges is None:
        return []
    causes = []
    if iface.ports is not None:
        causes.append(Cause(FIELD_VALUE_INVALID, "Cannot define both ports and portRanges on interface",
                            ctx.iface(idx, "name")))
    if iface.masquerade is None:
        causes.append(Cause(FIELD_VALUE_INVALID, "portRanges are only supported on masquerade interfaces",
                            ctx.iface(idx, "name")))
    ranges_path = ctx.iface(idx, "portRanges")
    if len(iface.port_ranges) > _MAX_PORT_RANGES:
        return causes + [Cause(FIELD_VALUE_INVALID, "No more than 10 portRanges are allowed", ranges_path)]
    by_protocol: dict[str, list[tuple[int, int]]] = {}
    for k, rng in enumerate(iface.port_ranges):
        protocol = rng.protocol or ""
        if protocol not in ("TCP", "UDP"):
            causes.append(Cause(FIELD_VALUE_INVALID, "Unknown protocol, only TCP or UDP allowed",
                                f"{ranges_path}[{k}].protocol"))
        elif not 0 < rng.start < 65536:
            causes.append(Cause(FIELD_VALUE_INVALID, "Start must be a valid port number, 0 < x < 65536",
                                f"{ranges_path}[{k}].start"))
        elif not 0 < rng.end < 65536:
            causes.append(Cause(FIELD_VALUE_INVALID, "End must be a valid port number, 0 < x < 65536",
                                f"{ranges_path}[{k}].end"))
        elif rng.start > rng.end:
            causes.append(Cause(FIELD_VALUE_INVALID, "Start must be less than or equal to end",
                                f"{ranges_path}[{k}].start"))
        else:
            by_protocol.setdefault(protocol, []).append((rng.start, rng.end))
    # KubeVirt walks a Go map here (TCP/UDP order is random); we report TCP first
    for protocol in sorted(by_protocol):
        intervals = sorted(by_protocol[protocol])
        for prev, curr in zip(intervals, intervals[1:]):
            if curr[0] <= prev[1]:
                causes.append(Cause(FIELD_VALUE_INVALID,
                                    f"{protocol} portRanges [{prev[0]}-{prev[1]}] and [{curr[0]}-{curr[1]}] overlap",
                                    ranges_path))
    return causes


def _dhcp_options(ctx: _Context, idx: int, iface: Interface) -> list[Cause]:
    options = iface.dhcp_options
    if options is None:
        return []
    causes = []
    private = options.private_options or []
    if len({o.option for o in private}) < len(private):
        causes.append(Cause(FIELD_VALUE_INVALID, "Found Duplicates: you have provided duplicate DHCPPrivateOptions",
                            str(ctx.field)))
    for option in private:
        if not 224 <= option.option <= 254:
            causes.append(Cause(FIELD_VALUE_INVALID,
                                "provided DHCPPrivateOptions are out of range, must be in range 224 to 254",
                                str(ctx.field)))
    for k, server in enumerate(options.ntp_servers or []):
        if not is_ipv4(server):
            causes.append(Cause(FIELD_VALUE_INVALID, "NTP servers must be a list of valid IPv4 addresses.",
                                ctx.iface(idx, "dhcpOptions", "ntpServers") + f"[{k}]"))
    return causes


# --- public entry points ------------------------------------------------------------------------

_GENERAL_RULES = (
    _single_pod_network,
    _single_network_source,
    _multus_network_source,
    _interface_state,
    _interface_binding,
    _legacy_slirp,
    _network_name_unique,
    _network_devices_with_dra,
    _networks_assigned_to_interfaces,
    _interface_name_unique,
    _interfaces_assigned_to_networks,
    _interface_fields,
)


def validate_network_creation(spec: VirtualMachineInstanceSpec, config: KubeVirtConfiguration | None = None, *,
                              profile: Profile = LATEST, field: str = "spec") -> list[Cause]:
    """The creation-only rules (KubeVirt's ``ValidateCreation``): discontinued core bindings."""
    return _discontinued_bindings(_Context(spec, config, profile, field))


def validate_network_spec(spec: VirtualMachineInstanceSpec, config: KubeVirtConfiguration | None = None, *,
                          profile: Profile = LATEST, field: str = "spec") -> list[Cause]:
    """The general rules (KubeVirt's ``Validator.Validate``), in KubeVirt's order."""
    ctx = _Context(spec, config, profile, field)
    causes: list[Cause] = []
    for rule in _GENERAL_RULES:
        causes += rule(ctx)
    return causes


def validate_network(spec: VirtualMachineInstanceSpec, config: KubeVirtConfiguration | None = None, *,
                     profile: Profile = LATEST, field: str = "spec", creation: bool = True,
                     annotations: dict[str, Any] | None = None) -> list[Cause]:
    """KubeVirt's network admitter: creation-only causes (when ``creation``) then the general rules.

    ``field`` is ``spec`` for a VMI and ``spec.template.spec`` for a VM. ``annotations`` is accepted
    for call-site symmetry with the webhook functions; KubeVirt's network rules never read them.
    """
    del annotations
    causes = validate_network_creation(spec, config, profile=profile, field=field) if creation else []
    return causes + validate_network_spec(spec, config, profile=profile, field=field)
