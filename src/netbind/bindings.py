"""What the binding registry says about a VMI's interfaces: domain attachment, migration, migratability.

These are KubeVirt's small shared lookups (``pkg/network/domainspec`` and ``pkg/network/vmispec``),
used by virt-controller, virt-handler and virt-launcher alike. The registry is read live, so these
take the configuration as an argument every time.
"""
from __future__ import annotations

from dataclasses import dataclass

from netbind.api.models import KubeVirtConfiguration, VirtualMachineInstance
from netbind.api.versions import LATEST, Profile

TAP = "tap"
MANAGED_TAP = "managedTap"
LINK_REFRESH = "link-refresh"
ALLOW_POD_BRIDGE_MIGRATION_ANNOTATION = "kubevirt.io/allow-pod-bridge-network-live-migration"

NOT_MIGRATABLE_REASON = "InterfaceNotLiveMigratable"
_NOT_MIGRATABLE = {
    "latest": "cannot migrate VMI which does not use masquerade or a migratable plugin to connect to the pod network",
    "1.4": ("cannot migrate VMI which does not use masquerade, bridge with "
            "kubevirt.io/allow-pod-bridge-network-live-migration VM annotation or a migratable plugin "
            "to connect to the pod network"),
}


def domain_attachment_by_interface_name(vmi: VirtualMachineInstance,
                                        config: KubeVirtConfiguration) -> dict[str, str]:
    """Interface -> domain attachment virt-handler hands to virt-launcher (all interfaces)."""
    registry = config.bindings
    attachments: dict[str, str] = {}
    for iface in vmi.spec.interfaces:
        if iface.bridge is not None or iface.masquerade is not None:
            attachments[iface.name] = TAP
        elif iface.binding is not None:
            plugin = registry.get(iface.binding.name)
            if plugin is None or not plugin.domain_attachment_type:
                continue
            kind = plugin.domain_attachment_type
            attachments[iface.name] = TAP if kind in (TAP, MANAGED_TAP) else kind
    return attachments


def binding_migration_method_by_interface_name(vmi: VirtualMachineInstance,
                                               config: KubeVirtConfiguration) -> dict[str, str]:
    """Interface (any network) -> migration method of its binding, for bindings that declare one."""
    registry = config.bindings
    methods: dict[str, str] = {}
    for iface in vmi.spec.interfaces:
        if iface.binding is None:
            continue
        plugin = registry.get(iface.binding.name)
        if plugin is not None and plugin.migration is not None:
            methods[iface.name] = plugin.migration.method or ""
    return methods


@dataclass(frozen=True)
class Migratability:
    migratable: bool
    message: str | None = None
    reason: str | None = None

    def condition(self) -> dict[str, str]:
        """The VMI ``LiveMigratable`` condition virt-handler sets."""
        if self.migratable:
            return {"type": "LiveMigratable", "status": "True"}
        return {"type": "LiveMigratable", "status": "False", "reason": self.reason or "",
                "message": self.message or ""}


def verify_vmi_migratable(vmi: VirtualMachineInstance, config: KubeVirtConfiguration,
                          profile: Profile = LATEST) -> Migratability:
    """Only the pod network's interface decides (KubeVirt's VerifyVMIMigratable)."""
    vmi = profile.decoded(vmi)
    interfaces = vmi.spec.interfaces
    if not interfaces:
        return Migratability(True)
    pod_network = next((n for n in vmi.spec.network_list if n.is_pod), None)
    if pod_network is None:
        return Migratability(True)
    iface = vmi.spec.interface(pod_network.name)
    if iface is None:
        return Migratability(False, f"no primary interface found for network {pod_network.name}",
                             NOT_MIGRATABLE_REASON)
    if iface.masquerade is not None or iface.passt_binding is not None:
        return Migratability(True)
    if iface.bridge is not None and ALLOW_POD_BRIDGE_MIGRATION_ANNOTATION in vmi.annotations:
        return Migratability(True)
    if iface.binding is not None:
        plugin = config.bindings.get(iface.binding.name)
        if plugin is not None and plugin.migration is not None:
            return Migratability(True)
    return Migratability(False, _NOT_MIGRATABLE["1.4" if profile.name == "1.4" else "latest"],
                         NOT_MIGRATABLE_REASON)
