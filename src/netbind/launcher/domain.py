"""Domain attachment: the ``<interface>`` elements virt-launcher writes, and the domain it hands on.

Two phases, as in KubeVirt (spec section 5):

1. the converter (:func:`converter_interfaces`) builds one ``<interface>`` per non-absent interface,
   except SR-IOV and plugin interfaces whose binding has no ``tap``/``managedTap`` attachment
   (their sidecar adds the interface);
2. phase 2 (:func:`attach_pod_links`) finds each tap-attached interface's pod link and fills
   ``target``, ``mac`` and ``mtu`` from it.

:func:`build_domain` runs both and renders the whole domain as KubeVirt hands it to the first sidecar
(``xml.MarshalIndent(spec, "", "\\t")``). The link lookup is injected, so the same code runs against a
real pod network namespace or a list of links (:class:`PodLink`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from lxml import etree

from netbind import naming
from netbind.api.models import Interface, KubeVirtConfiguration, Network, VirtualMachineInstance
from netbind.api.versions import LATEST, Profile
from netbind.bindings import MANAGED_TAP, TAP, domain_attachment_by_interface_name

from . import _converter
from netbind.gocompat import normalize_mac
from .goxml import element, insert_in_order, marshal_indent

USER_ALIAS_PREFIX = "ua-"
DEFAULT_MTU = 1500
ABSENT = "absent"
PASST_LOG_FILE = "/var/run/kubevirt/passt.log"
# Child order of KubeVirt's api.Interface struct (what encoding/xml writes).
INTERFACE_CHILD_ORDER = ("address", "source", "target", "model", "mac", "mtu", "bandwidth", "boot", "link",
                         "filterref", "alias", "driver", "rom", "acpi", "backend", "portForward")
_MAX_QUEUES = 256


@dataclass(frozen=True)
class PodLink:
    """A link in the virt-launcher pod's network namespace, as phase 2 sees it."""

    name: str
    mac: str
    mtu: int = DEFAULT_MTU


LinkLookup = Callable[[str], "PodLink | None"]


class DomainAttachmentError(Exception):
    """Phase 2 cannot attach an interface. ``kubevirt`` says what real KubeVirt does in this case."""

    def __init__(self, message: str, *, kubevirt: str, interface: str | None = None,
                 panics: bool = False, link_lookups: Sequence[str] = (),
                 partial: "DomainResult | None" = None) -> None:
        super().__init__(message)
        self.message = message
        self.kubevirt = kubevirt
        self.interface = interface
        self.panics = panics
        self.link_lookups = list(link_lookups)
        self.partial = partial

    def __str__(self) -> str:
        return f"{self.message} (KubeVirt: {self.kubevirt})"


@dataclass
class DomainResult:
    interfaces_xml: list[str]
    domain_xml: str
    link_lookups: list[str] = field(default_factory=list)
    # VMI settings the domain converter does not translate (KubeVirt would)
    uncovered: list[str] = field(default_factory=list)


class RecordingLinks:
    """A link lookup over a fixed list of links that records every name asked for."""

    def __init__(self, links: Iterable[PodLink]) -> None:
        self._links = {link.name: link for link in links}
        self.lookups: list[str] = []

    def __call__(self, name: str) -> PodLink | None:
        self.lookups.append(name)
        return self._links.get(name)


@dataclass(frozen=True)
class _Rules:
    """What differs between the KubeVirt versions on the domain side."""

    converter_writes_spec_mac: bool
    converter_writes_link_state: bool
    features_always: bool
    discover_all_first: bool  # v1.4: discover every NIC's pod link, then generate each
    tap_name_always_derived: bool
    transitional_controllers: bool  # v1.4.1 applies useVirtioTransitional to interfaces only

    @classmethod
    def of(cls, profile: Profile) -> "_Rules":
        latest = profile.name != "1.4"
        return cls(converter_writes_spec_mac=latest, converter_writes_link_state=latest,
                   features_always=latest, discover_all_first=not latest, transitional_controllers=latest,
                   tap_name_always_derived=profile.tap_name_always_derived)


# --- helpers ---------------------------------------------------------------------------------------


def _non_absent(vmi: VirtualMachineInstance) -> tuple[list[Interface], list[Network]]:
    interfaces = [i for i in vmi.spec.interfaces if i.state != ABSENT]
    names = {i.name for i in interfaces}
    return interfaces, [n for n in vmi.spec.network_list if n.name in names]


def _uses_launch_security(vmi: VirtualMachineInstance) -> bool:
    security = vmi.spec.domain.launch_security or {}
    return any(security.get(k) is not None for k in ("sev", "snp", "tdx"))


def _alias_of(el: etree._Element) -> str | None:
    alias = el.find("alias")
    if alias is None:
        return None
    name = alias.get("name", "")
    return name[len(USER_ALIAS_PREFIX):] if name.startswith(USER_ALIAS_PREFIX) else name


def _pci_address(iface: Interface) -> etree._Element:
    text = iface.pci_address or ""
    try:
        domain_bus, slot_function = text.rsplit(":", 1)
        domain, bus = domain_bus.split(":")
        slot, function = slot_function.split(".")
        fields = [int(domain, 16), int(bus, 16), int(slot, 16), int(function, 16)]
        if len(domain) != 4 or len(bus) != 2 or len(slot) != 2 or len(function) != 1:
            raise ValueError
    except ValueError:
        raise DomainAttachmentError(
            f"failed to configure interface {iface.name}: invalid PCI address {text!r}, expected DDDD:BB:SS.F",
            kubevirt="the converter fails and the VMI does not start", interface=iface.name) from None
    return element("address", [("type", "pci"), ("domain", f"0x{fields[0]:04x}"), ("bus", f"0x{fields[1]:02x}"),
                               ("slot", f"0x{fields[2]:02x}"), ("function", f"0x{fields[3]:x}")])


def _port_forwards(iface: Interface) -> list[etree._Element]:
    by_protocol: dict[str, list[etree._Element]] = {}
    for port in iface.ports or []:
        protocol = (port.protocol or "TCP").lower()
        if protocol not in ("tcp", "udp"):
            continue
        by_protocol.setdefault(protocol, []).append(element("range", [("start", port.port)]))
    for port_range in iface.port_ranges or []:
        protocol = (port_range.protocol or "TCP").lower()
        if protocol not in ("tcp", "udp"):
            continue
        by_protocol.setdefault(protocol, []).append(
            element("range", [("start", port_range.start), ("end", port_range.end)]))
    if not iface.ports and not iface.port_ranges:
        return [element("portForward", [("proto", "tcp")]), element("portForward", [("proto", "udp")])]
    return [element("portForward", [("proto", p)], *by_protocol[p]) for p in ("tcp", "udp") if p in by_protocol]


def _domain_interface(vmi: VirtualMachineInstance, iface: Interface, attachment: str | None,
                      rules: _Rules, sev: bool, virtio_model: str) -> etree._Element:
    model = iface.model or "virtio"
    tap = attachment == TAP
    iface_type = "ethernet" if tap else ("vhostuser" if iface.passt_binding is not None else "")
    source = element("source")
    if iface.passt_binding is not None and not tap:
        status = next((s for s in (vmi.status.interfaces if vmi.status else None) or []
                       if s.name == iface.name), None)
        if status is None or not status.pod_interface_name:
            raise DomainAttachmentError(
                f"pod interface name not found in vmi {vmi.metadata.name} status, for interface {iface.name}",
                kubevirt="the converter fails; virt-handler retries the sync", interface=iface.name)
        source.set("dev", status.pod_interface_name)
    driver = None
    if model == "virtio":
        queues = min(_converter.vcpu_count(vmi), _MAX_QUEUES) if vmi.spec.domain.devices.network_interface_multiqueue \
            else 0
        if queues or sev:
            driver = element("driver", [("name", "vhost"), ("queues", queues or None), ("iommu", "on" if sev else None)])
    boot = element("boot", [("order", iface.boot_order)]) if tap and iface.boot_order is not None else None
    rom = element("rom", [("enabled", "no")]) if tap and (iface.boot_order is None or sev) else None
    link = element("link", [("state", "down")]) \
        if tap and rules.converter_writes_link_state and iface.state == "down" else None
    mac = element("mac", [("address", iface.mac_address)]) \
        if iface.mac_address and rules.converter_writes_spec_mac else None
    backend = element("backend", [("type", "passt"), ("logFile", PASST_LOG_FILE)]) \
        if iface.passt_binding is not None and not tap else None
    forwards = _port_forwards(iface) if backend is not None else []
    return element(
        "interface", [("type", iface_type)],
        _pci_address(iface) if iface.pci_address else None,
        source,
        element("model", [("type", virtio_model if model == "virtio" else model)]),
        mac, boot, link,
        element("alias", [("name", USER_ALIAS_PREFIX + iface.name)]),
        driver, rom,
        element("acpi", [("index", iface.acpi_index)]) if iface.acpi_index and iface.acpi_index > 0 else None,
        backend, *forwards,
    )


def _sev(vmi: VirtualMachineInstance, sev: bool | None) -> bool:
    return _uses_launch_security(vmi) if sev is None else sev


# --- phase 1 ---------------------------------------------------------------------------------------


def converter_interfaces(vmi: VirtualMachineInstance, config: KubeVirtConfiguration, *,
                         profile: Profile = LATEST, sev: bool | None = None) -> list[etree._Element]:
    """Phase 1: the ``<interface>`` elements of KubeVirt's converter, in interface order.

    ``sev`` is the converter's launch-security flag; ``None`` derives it from the VMI's
    ``spec.domain.launchSecurity`` as virt-launcher does.
    """
    vmi = profile.decoded(vmi)
    sev = _sev(vmi, sev)
    rules = _Rules.of(profile)
    attachments = domain_attachment_by_interface_name(vmi, config)
    interfaces, networks = _non_absent(vmi)
    network_names = {n.name for n in networks}
    virtio_model = _converter.virtio_model(vmi)
    built = []
    for iface in interfaces:
        if iface.name not in network_names:
            raise DomainAttachmentError(f"failed to find network {iface.name}",
                                        kubevirt="the converter fails and the VMI does not start",
                                        interface=iface.name)
        if (iface.binding is not None and attachments.get(iface.name) != TAP) or iface.sriov is not None:
            continue  # a binding sidecar (or the SR-IOV host device) provides this interface
        built.append(_domain_interface(vmi, iface, attachments.get(iface.name), rules, sev, virtio_model))
    return built


# --- phase 2 ---------------------------------------------------------------------------------------


def _discover(vmi: VirtualMachineInstance, network: Network, link_by_name: LinkLookup) -> str:
    """link.DiscoverByNetwork: the hashed (or status-reported) name first, then the ordinal one."""
    statuses = vmi.status.interfaces if vmi.status else None
    hashed = naming.hashed_pod_interface_name(network, statuses)
    ordinal = naming.ordinal_scheme(vmi.spec.network_list).get(network.name, "")
    if not ordinal:
        raise DomainAttachmentError(
            f"could not find the pod interface ordinal name for network [{network.name}]",
            kubevirt="SetupPodNetworkPhase2 returns this error; the VMI sync fails and is retried",
            interface=network.name)
    for name in (hashed, ordinal):
        if link_by_name(name) is not None:
            return name
    return ""


def _generate(vmi: VirtualMachineInstance, iface: Interface, network: Network, pod_iface: str,
              interfaces: list[etree._Element], link_by_name: LinkLookup, rules: _Rules) -> None:
    """TapLibvirtSpecGenerator: target, MAC and MTU from the pod link."""
    pod_link = link_by_name(pod_iface)
    critical = "virt-launcher logs it with log.Critical, which panics: the launcher crashes and the VMI fails"
    if pod_link is None:
        tried = naming.hashed_pod_interface_name(network, vmi.status.interfaces if vmi.status else None)
        raise DomainAttachmentError(
            f"interface {iface.name}: no pod link found for network {network.name} (looked for "
            f"{tried!r} and its ordinal name); the CNI must create it",
            kubevirt=critical, interface=iface.name, panics=True)
    try:
        mac = normalize_mac(iface.mac_address) if iface.mac_address else normalize_mac(pod_link.mac)
    except ValueError as err:
        source = f"spec.domain.devices.interfaces[{iface.name}].macAddress" if iface.mac_address \
            else f"MAC of pod link {pod_link.name}"
        raise DomainAttachmentError(f"interface {iface.name}: {source}: {err}", kubevirt=critical,
                                    interface=iface.name, panics=True) from None
    tap = naming.tap_name(pod_iface, network, always_derive=rules.tap_name_always_derived)
    target = tap if link_by_name(tap) is not None else pod_iface
    for el in interfaces:
        if _alias_of(el) == iface.name:
            insert_in_order(el, element("target", [("dev", target), ("managed", "no")]), INTERFACE_CHILD_ORDER)
            insert_in_order(el, element("mac", [("address", mac)]), INTERFACE_CHILD_ORDER)
            insert_in_order(el, element("mtu", [("size", pod_link.mtu)]), INTERFACE_CHILD_ORDER)
            break


def _no_generator(iface: Interface) -> DomainAttachmentError:
    return DomainAttachmentError(
        f"interface {iface.name} has no binding KubeVirt v1.4 can attach (no bridge, masquerade or tap plugin)",
        kubevirt="v1.4 phase 2 has no spec generator for it: nil pointer dereference, virt-launcher panics",
        interface=iface.name, panics=True)


def attach_pod_links(vmi: VirtualMachineInstance, config: KubeVirtConfiguration,
                     interfaces: list[etree._Element], link_by_name: LinkLookup, *,
                     profile: Profile = LATEST) -> list[etree._Element]:
    """Phase 2: fill target/MAC/MTU of tap-attached interfaces from the pod links (in place).

    ``link_by_name`` answers a link name with the :class:`PodLink` or ``None`` (not found). It is
    asked exactly the names KubeVirt asks netlink for, in the same order. Raises
    :class:`DomainAttachmentError` where KubeVirt fails or panics.
    """
    vmi = profile.decoded(vmi)
    rules = _Rules.of(profile)
    attachments = domain_attachment_by_interface_name(vmi, config)
    _, networks = _non_absent(vmi)
    planned: list[tuple[Interface, Network]] = []
    for network in networks:
        iface = vmi.spec.interface(network.name)
        if iface is None:
            raise DomainAttachmentError(f"no iface matching with network {network.name}",
                                        kubevirt="SetupPodNetworkPhase2 returns this error", interface=network.name)
        if rules.discover_all_first:
            if iface.sriov is not None or (iface.binding is not None and attachments.get(iface.name) != TAP):
                continue
        elif attachments.get(iface.name) != TAP:
            continue
        planned.append((iface, network))
    if rules.discover_all_first:
        discovered = [_discover(vmi, network, link_by_name) for _, network in planned]
        for (iface, network), pod_iface in zip(planned, discovered):
            if attachments.get(iface.name) != TAP:
                raise _no_generator(iface)
            _generate(vmi, iface, network, pod_iface, interfaces, link_by_name, rules)
    else:
        for iface, network in planned:
            _generate(vmi, iface, network, _discover(vmi, network, link_by_name), interfaces, link_by_name, rules)
    return interfaces


# --- whole domain ----------------------------------------------------------------------------------


def interface_xml(el: etree._Element) -> str:
    """One ``<interface>`` as the vectors show it (two-space indentation)."""
    return marshal_indent(el, "  ")


def _render(vmi: VirtualMachineInstance, interfaces: list[etree._Element], profile: Profile, sev: bool,
            lookups: list[str]) -> DomainResult:
    rules = _Rules.of(profile)
    controllers_model = _converter.virtio_model(vmi) if rules.transitional_controllers else "virtio-non-transitional"
    ctx = _converter.ConverterContext(virtio_model=controllers_model, sev=sev, features_always=rules.features_always)
    interfaces_xml = [interface_xml(el) for el in interfaces]
    domain = _converter.convert_domain(vmi, [etree.fromstring(etree.tostring(el)) for el in interfaces], ctx)
    return DomainResult(interfaces_xml=interfaces_xml, domain_xml=marshal_indent(domain, "\t"),
                        link_lookups=list(lookups), uncovered=ctx.uncovered)


def build_domain(vmi: VirtualMachineInstance, config: KubeVirtConfiguration, pod_links: Iterable[PodLink], *,
                 profile: Profile = LATEST, sev: bool | None = None) -> DomainResult:
    """Phase 1 + phase 2 against ``pod_links``: the domain KubeVirt hands to the first sidecar.

    On a phase-2 failure the :class:`DomainAttachmentError` carries ``partial``: the domain as it
    stood when KubeVirt gave up.
    """
    decoded = profile.decoded(vmi)
    sev = _sev(decoded, sev)
    interfaces = converter_interfaces(vmi, config, profile=profile, sev=sev)
    links = RecordingLinks(pod_links)
    try:
        attach_pod_links(vmi, config, interfaces, links, profile=profile)
    except DomainAttachmentError as err:
        err.link_lookups = list(links.lookups)
        err.partial = _render(decoded, interfaces, profile, sev, links.lookups)
        raise
    return _render(decoded, interfaces, profile, sev, links.lookups)


# --- links as a CNI would create them ----------------------------------------------------------------


def derived_mac(vmi: VirtualMachineInstance, link_name: str) -> str:
    """A stable, locally administered unicast MAC for a link of this VMI's pod."""
    digest = hashlib.sha256(f"{vmi.namespace}/{vmi.metadata.name or ''}/{link_name}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def derive_pod_links(vmi: VirtualMachineInstance, config: KubeVirtConfiguration, *,
                     profile: Profile = LATEST) -> list[PodLink]:
    """The links of a fresh (hashed-name) pod when the user gives none.

    Every pod or Multus network gets its pod interface (``eth0``/status name or ``pod<hash>``; the
    CNI creates it, also for a tap plugin such as macvtap); virt-handler adds the tap for
    ``managedTap`` plugins and for the core bridge and masquerade bindings. MTU 1500.
    """
    vmi = profile.decoded(vmi)
    statuses = vmi.status.interfaces if vmi.status else None
    registry = config.bindings
    _, networks = _non_absent(vmi)
    links: list[PodLink] = []
    for network in networks:
        if network.pod is None and network.multus is None:
            continue  # e.g. a DRA resourceClaim network: no CNI link
        iface = vmi.spec.interface(network.name)
        if iface is None or iface.sriov is not None:
            continue
        pod_iface = naming.hashed_pod_interface_name(network, statuses)
        links.append(PodLink(pod_iface, derived_mac(vmi, pod_iface), DEFAULT_MTU))
        plugin = registry.get(iface.binding.name) if iface.binding is not None else None
        creates_tap = iface.bridge is not None or iface.masquerade is not None or (
            plugin is not None and plugin.domain_attachment_type == MANAGED_TAP)
        if creates_tap:
            tap = naming.tap_name(pod_iface, network, always_derive=profile.tap_name_always_derived)
            links.append(PodLink(tap, derived_mac(vmi, tap), DEFAULT_MTU))
    return links
