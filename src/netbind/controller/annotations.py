"""Network annotations of the virt-launcher pod (spec section 4.1 and 4.4).

* ``k8s.v1.cni.cncf.io/networks``: for each non-absent interface's network, in interface order, the
  secondary Multus element (``name, namespace, mac, interface``), then, if its binding's registry
  entry has a NAD, the binding element (``name, namespace, cni-args.logicNetworkName``).
* ``v1.multus-cni.io/default-network``: the Multus default network's ``networkName``, verbatim.
* istio: the in-pod bridge ``k6t-eth0`` when any interface uses masquerade.
* ``kubevirt.io/network-info`` (written once the pod runs): device-info of SR-IOV interfaces and of
  ``downwardAPI: device-info`` plugins, matched through the Multus network-status.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from netbind import naming
from netbind.api.models import Interface, KubeVirtConfiguration, Network, VirtualMachineInstance
from netbind.api.versions import LATEST, Profile

from ._gojson import go_json
from ._inputs import as_config, as_vmi
from .errors import RenderError

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"
NETWORK_INFO_ANNOTATION = "kubevirt.io/network-info"
ISTIO_KUBEVIRT_INTERFACES = "traffic.sidecar.istio.io/kubevirtInterfaces"
ISTIO_REROUTE_VIRTUAL_INTERFACES = "istio.io/reroute-virtual-interfaces"
ISTIO_BRIDGE = "k6t-eth0"
LOGIC_NETWORK_NAME_ARG = "logicNetworkName"
DEVICE_INFO = "device-info"
ABSENT = "absent"


def nad_namespaced_name(namespace: str, full_name: str) -> tuple[str, str]:
    """``ns/name`` or, without a slash, the VMI's namespace (never ``default``)."""
    if "/" in full_name:
        ns, name = full_name.split("/", 1)
        return ns, name
    return namespace, full_name


def _non_absent(interfaces: Iterable[Interface]) -> list[Interface]:
    return [i for i in interfaces if i.state != ABSENT]


def _networks_by_interfaces(networks: list[Network], interfaces: list[Interface]) -> list[Network]:
    by_name = {}
    for net in networks:
        by_name.setdefault(net.name, net)
    return [by_name[i.name] for i in interfaces if i.name in by_name]


def _plugins_in_annotation(config: KubeVirtConfiguration, profile: Profile) -> bool:
    # v1.1-v1.4: binding NAD elements only with the NetworkBindingPlugins gate; GA since v1.5
    return profile.gate_enabled(config, "NetworkBindingPlugins")


def _selection_elements(namespace: str, interfaces: list[Interface], networks: list[Network],
                        scheme: Mapping[str, str], config: KubeVirtConfiguration,
                        profile: Profile) -> list[dict[str, Any]]:
    registry = config.bindings
    with_plugins = _plugins_in_annotation(config, profile)
    iface_by_name = {}
    for iface in interfaces:
        iface_by_name.setdefault(iface.name, iface)
    elements: list[dict[str, Any]] = []
    for net in networks:
        iface = iface_by_name.get(net.name)
        if net.is_secondary_multus:
            ns, name = nad_namespaced_name(namespace, net.multus.network_name)
            # Go struct field order: name, namespace, ips, mac, infiniband-guid, interface, ...
            element: dict[str, Any] = {"name": name, "namespace": ns}
            if iface is not None and iface.mac_address:
                element["mac"] = iface.mac_address
            if scheme.get(net.name):
                element["interface"] = scheme[net.name]
            elements.append(element)
        if with_plugins and iface is not None and iface.binding is not None:
            plugin = registry.get(iface.binding.name)
            if plugin is None:
                raise RenderError(f"unable to find the network binding plugin "
                                  f"'{iface.binding.name}' in Kubevirt configuration")
            if plugin.network_attachment_definition:
                ns, name = nad_namespaced_name(namespace, plugin.network_attachment_definition)
                elements.append({"name": name, "namespace": ns,
                                 "cni-args": {LOGIC_NETWORK_NAME_ARG: net.name}})
    return elements


def _multus_annotation(vmi: VirtualMachineInstance, config: KubeVirtConfiguration,
                       profile: Profile) -> str | None:
    interfaces = _non_absent(vmi.spec.interfaces)
    networks = _networks_by_interfaces(vmi.spec.network_list, interfaces)
    scheme = naming.hashed_scheme(networks)
    elements = _selection_elements(vmi.namespace, interfaces, networks, scheme, config, profile)
    return go_json(elements) if elements else None


def multus_networks_annotation(vmi: Any, config: Any, *, profile: Profile = LATEST) -> str | None:
    """The ``k8s.v1.cni.cncf.io/networks`` value for a new pod, or ``None`` when there is none."""
    return _multus_annotation(as_vmi(vmi, profile), as_config(config), profile)


def _network_annotations(vmi: VirtualMachineInstance, config: KubeVirtConfiguration,
                         profile: Profile) -> dict[str, str]:
    annotations: dict[str, str] = {}
    multus = _multus_annotation(vmi, config, profile)
    if multus is not None:
        annotations[NETWORKS_ANNOTATION] = multus
    default = next((n for n in vmi.spec.network_list if n.is_multus_default), None)
    if default is not None:
        annotations[DEFAULT_NETWORK_ANNOTATION] = default.multus.network_name
    if any(i.masquerade is not None for i in vmi.spec.interfaces):
        annotations[ISTIO_KUBEVIRT_INTERFACES] = ISTIO_BRIDGE
        if profile.name != "1.4":
            annotations[ISTIO_REROUTE_VIRTUAL_INTERFACES] = ISTIO_BRIDGE
    return annotations


def network_pod_annotations(vmi: Any, config: Any, *, profile: Profile = LATEST) -> dict[str, str]:
    """Every network annotation virt-controller puts on a new virt-launcher pod."""
    return _network_annotations(as_vmi(vmi, profile), as_config(config), profile)


# --- from a running pod ---------------------------------------------------------------------------


def network_statuses(pod_annotations: Mapping[str, str] | None) -> list[dict[str, Any]]:
    """Multus network-status entries of a pod (an unreadable annotation counts as none)."""
    raw = (pod_annotations or {}).get(NETWORK_STATUS_ANNOTATION)
    if not raw:
        return []
    try:
        statuses = json.loads(raw)
    except json.JSONDecodeError:
        return []
    return [s for s in statuses if isinstance(s, dict)] if isinstance(statuses, list) else []


_DEVICE_INFO_FIELDS = {
    "pci": ("pci-address", "vhost-net", "rdma-device", "pf-pci-address", "representor-device"),
    "vdpa": ("parent-device", "driver", "path", "pci-address", "pf-pci-address", "representor-device"),
    "vhost-user": ("mode", "path"),
    "memif": ("role", "path", "mode"),
}


def _device_info(raw: Any) -> dict[str, Any] | None:
    """The NAD client's DeviceInfo as Go re-marshals it: known fields, Go order, empties dropped."""
    if not isinstance(raw, dict):
        return None
    info: dict[str, Any] = {}
    for key in ("type", "version"):
        if raw.get(key):
            info[key] = raw[key]
    for kind, fields in _DEVICE_INFO_FIELDS.items():
        sub = raw.get(kind)
        if isinstance(sub, dict):
            info[kind] = {f: sub[f] for f in fields if sub.get(f)}
    return info


def _has_device_info_binding(iface: Interface, config: KubeVirtConfiguration) -> bool:
    if iface.binding is None:
        return False
    plugin = config.bindings.get(iface.binding.name)
    return plugin is not None and plugin.downward_api == DEVICE_INFO


def _network_info(vmi: VirtualMachineInstance, config: KubeVirtConfiguration,
                  pod_annotations: Mapping[str, str] | None, profile: Profile) -> str | None:
    eligible = [i for i in vmi.spec.interfaces
                if i.sriov is not None or _has_device_info_binding(i, config)]
    if not eligible:
        return None
    statuses = network_statuses(pod_annotations)
    by_pod_iface = {}
    for status in statuses:
        by_pod_iface[status.get("interface", "")] = status  # the last entry wins, as in Go
    scheme = naming.scheme_from_network_statuses(vmi.spec.network_list, statuses)
    items = []
    for iface in eligible:
        status = by_pod_iface.get(scheme.get(iface.name, ""))
        if status is None:
            continue  # not plugged yet
        device_info = _device_info(status.get("device-info"))
        if profile.name == "1.4":
            if device_info is not None:  # v1.4: entries with device-info only, {network, deviceInfo}
                items.append({"network": iface.name, "deviceInfo": device_info})
            continue
        item: dict[str, Any] = {"network": iface.name}
        if device_info is not None:
            item["deviceInfo"] = device_info
        if status.get("mac"):
            item["mac"] = status["mac"]
        if status.get("mtu"):
            item["mtu"] = status["mtu"]
        items.append(item)
    if not items:
        return None
    unique = {item["network"]: item for item in items}
    return go_json({"interfaces": [unique[name] for name in sorted(unique)]})


def network_info_annotation(vmi: Any, config: Any, pod_annotations: Mapping[str, str] | None, *,
                            profile: Profile = LATEST) -> str | None:
    """``kubevirt.io/network-info`` for a running pod with these annotations (or ``None``)."""
    return _network_info(as_vmi(vmi, profile), as_config(config), pod_annotations, profile)


def _updated_multus_annotation(vmi: VirtualMachineInstance, config: KubeVirtConfiguration,
                               pod_annotations: Mapping[str, str], profile: Profile) -> str | None:
    """The regenerated Multus annotation when interfaces are to be hot-plugged or unplugged."""
    interfaces = vmi.spec.interfaces
    present = _non_absent(interfaces)
    in_status = {s.name for s in (vmi.status.interfaces if vmi.status else None) or [] if s.name}
    to_annotate = [i for i in present if not (i.sriov is not None and i.name not in in_status)]
    hotplug = any(i.name not in in_status for i in to_annotate)
    unplug = len(interfaces) > len(present)
    if not (hotplug or unplug):
        return None
    networks = _networks_by_interfaces(vmi.spec.network_list, to_annotate)
    scheme = naming.scheme_from_network_statuses(networks, network_statuses(pod_annotations))
    try:
        elements = _selection_elements(vmi.namespace, to_annotate, networks, scheme, config, profile)
    except RenderError:
        return None  # KubeVirt logs and leaves the annotation alone
    updated = go_json(elements) if elements else ""
    if updated == pod_annotations.get(NETWORKS_ANNOTATION, ""):
        return None
    return updated


def generate_from_active_pod(vmi: Any, config: Any, pod_annotations: Mapping[str, str] | None, *,
                             profile: Profile = LATEST) -> dict[str, str]:
    """Annotations virt-controller adds to a running pod (``GenerateFromActivePod``)."""
    vmi, config = as_vmi(vmi, profile), as_config(config)
    pod_annotations = dict(pod_annotations or {})
    annotations = {}
    info = _network_info(vmi, config, pod_annotations, profile)
    if info is not None:
        annotations[NETWORK_INFO_ANNOTATION] = info
    if profile.name != "1.4":
        multus = _updated_multus_annotation(vmi, config, pod_annotations, profile)
        if multus is not None:
            annotations[NETWORKS_ANNOTATION] = multus
    return annotations
