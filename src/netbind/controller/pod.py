"""The virt-launcher Pod manifest, as virt-controller's ``RenderLaunchManifest`` builds it.

The network parts (sidecars, socket and downward-API volumes, Multus/istio annotations, memory
overhead, NAD resources) follow KubeVirt exactly; the rest of the template covers what a VMI without
PVCs, probes or host devices gets, with the production defaults the oracle vectors were recorded
with (launcher image, directories, 240 s qemu timeout, non-root uid 107). containerDisk and
cloud-init Secret volumes add what :mod:`.container_disks` and :mod:`.cloud_init` compose.

Go map order makes two things random in KubeVirt: the order of binding sidecars and (v1.4) of the
``KUBEVIRT_RESOURCE_NAME_<network>`` variables. Ours is deterministic: sidecars by binding name,
variables in ``spec.networks`` order.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any, Iterable

from netbind.api.models import KubeVirtConfiguration, NetworkAttachmentDefinition, VirtualMachineInstance
from netbind.api.quantity import Quantity
from netbind.api.versions import LATEST, Profile

from . import container_disks
from ._inputs import as_config, as_nads, as_vmi
from .annotations import DEVICE_INFO, _network_annotations, nad_namespaced_name
from .cloud_init import cloud_init_secret_volumes
from .errors import RenderError
from .memory import (is_cpu_dedicated, launcher_memory_overhead, _network_memory, vcpu_count,
                     wants_guaranteed_qos)
from .sidecars import HookSidecar, image_pull_policy, requested_sidecars
from netbind.launcher.plugin_hooks import PLUGIN_SOCKET_BASE_DIR as PLUGIN_SOCKETS_DIR

NON_ROOT_UID = 107
HOOK_SOCKETS_VOLUME = "hook-sidecar-sockets"
HOOK_SOCKETS_DIR = "/var/run/kubevirt-hooks"
# FG Plugins (VEP 190): Plugin sidecars' domain-hook sockets, /var/run/kubevirt-plugin/<plugin>/*.sock
PLUGIN_SOCKETS_VOLUME = "kubevirt-plugin-sockets"
NETWORK_INFO_VOLUME = "network-info-annotation"
NETWORK_INFO_MOUNT = "/etc/podinfo"
NETWORK_INFO_PATH = "network-info"
MEMORY_OVERHEAD_ANNOTATION = "kubevirt.io/memory-overhead-bytes"
RESOURCE_NAME_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"
ISTIO_INJECT = "sidecar.istio.io/inject"
PRIVATE_DIR = "/var/run/kubevirt-private"
SHARE_DIR = "/var/run/kubevirt"
EPHEMERAL_DISK_DIR = "/var/run/kubevirt-ephemeral-disks"
CONTAINER_DISK_DIR = "/var/run/kubevirt/container-disks"
QEMU_TIMEOUT_SECONDS = 240
QEMU_TIMEOUT_JITTER = 120
DEFAULT_GRACE_PERIOD_SECONDS = 30
DISK_MEMORY_LIMIT_BYTES = 2000 * 1024 * 1024
EPHEMERAL_STORAGE_OVERHEAD = "50M"
SIDECAR_SHIM_IMAGE = "quay.io/kubevirt/sidecar-shim:v1.7.0"


@dataclass(frozen=True)
class _Template:
    """What differs between the KubeVirt versions we reproduce (non-network artefacts included)."""

    launcher_image: str
    ovmf_path: str
    args_in_command: bool  # v1.4 puts every launcher flag in `command`
    main_flags: bool  # --disk-memory-limit, --hypervisor, --image-volume, ...
    container_disks_mount_early: bool  # v1.4 mounts container-disks right after ephemeral-disks
    console_log_as_init: bool
    console_socket_timeout: bool
    privileged_false: bool
    termination_message_policy: bool
    sidecar_env_and_subpath: bool
    vmi_id_label: bool
    velero_timeout: bool
    memory_overhead_annotation: bool
    hotplug_dir: str
    hugetlbfs_medium: bool
    console_log_follows_pull_policy: bool  # v1.4 hard-codes IfNotPresent
    istio_inject_label: bool
    always_resolve_nads: bool
    resource_env: bool
    creation_timestamp_null: bool


_LATEST_TEMPLATE = _Template(
    launcher_image="quay.io/kubevirt/virt-launcher:v1.7.0", ovmf_path="/usr/share/edk2/ovmf",
    args_in_command=False, main_flags=True, container_disks_mount_early=False, console_log_as_init=True,
    console_socket_timeout=False, privileged_false=False, termination_message_policy=True,
    sidecar_env_and_subpath=True, vmi_id_label=True, velero_timeout=True,
    memory_overhead_annotation=True, hotplug_dir="/var/run/kubevirt/hotplug-disks/",
    hugetlbfs_medium=True, console_log_follows_pull_policy=True, istio_inject_label=True,
    always_resolve_nads=False, resource_env=False,
    creation_timestamp_null=False)

_V1_4_TEMPLATE = _Template(
    launcher_image="quay.io/kubevirt/virt-launcher:v1.4.1", ovmf_path="/usr/share/OVMF",
    args_in_command=True, main_flags=False, container_disks_mount_early=True, console_log_as_init=False,
    console_socket_timeout=True, privileged_false=True, termination_message_policy=False,
    sidecar_env_and_subpath=False, vmi_id_label=False, velero_timeout=False,
    memory_overhead_annotation=False, hotplug_dir="/var/run/kubevirt/hotplug-disks",
    hugetlbfs_medium=False, console_log_follows_pull_policy=False, istio_inject_label=False,
    always_resolve_nads=True, resource_env=True,
    creation_timestamp_null=True)


def _template(profile: Profile, release: str | None) -> _Template:
    if profile.name != "1.4":
        return _LATEST_TEMPLATE
    if release is not None and release.removeprefix("v") == "1.4.0":
        from dataclasses import replace
        return replace(_V1_4_TEMPLATE, launcher_image="quay.io/kubevirt/virt-launcher:v1.4.0",
                       console_socket_timeout=False)
    return _V1_4_TEMPLATE


def qemu_timeout_with_jitter(rng: random.Random | None = None) -> str:
    """240 s plus a random [0, 120) s, so launchers of a big batch do not time out together."""
    return f"{QEMU_TIMEOUT_SECONDS + (rng or random).randrange(QEMU_TIMEOUT_JITTER)}s"


# --- resources ------------------------------------------------------------------------------------


def _quantities(resources: dict | None) -> dict[str, Quantity]:
    result = {}
    for name, value in (resources or {}).items():
        try:
            result[name] = Quantity.parse(value)
        except ValueError as exc:
            raise RenderError(f"spec.domain.resources: {name}: {exc}",
                              field="spec.domain.resources") from None
    return result


def _hugepages_size(vmi: VirtualMachineInstance) -> str | None:
    memory = vmi.spec.domain.memory
    if memory is None or memory.hugepages is None:
        return None
    return memory.hugepages.page_size or ""


def _compute_resources(vmi: VirtualMachineInstance, config: KubeVirtConfiguration,
                       overhead: Quantity, network_resources: dict[str, str]) -> dict[str, Any]:
    """KubeVirt's ResourceRenderer with the options a VMI without host devices gets."""
    domain_resources = vmi.spec.domain.resources
    requests = _quantities(domain_resources.requests if domain_resources else None)
    limits = _quantities(domain_resources.limits if domain_resources else None)
    calc_requests: dict[str, Quantity] = {}
    calc_limits: dict[str, Quantity] = {}

    ephemeral = requests.get("ephemeral-storage", Quantity()).add(Quantity.parse(EPHEMERAL_STORAGE_OVERHEAD))
    requests["ephemeral-storage"] = ephemeral
    if "ephemeral-storage" in limits:
        limits["ephemeral-storage"] = limits["ephemeral-storage"].add(Quantity.parse(EPHEMERAL_STORAGE_OVERHEAD))

    # virtualization devices (device plugins)
    devices = vmi.spec.domain.devices
    if vmi.spec.interfaces or devices.autoattach_pod_interface in (None, True):
        limits["devices.kubevirt.io/tun"] = Quantity.parse("1")
    if any(i.model in (None, "", "virtio") for i in vmi.spec.interfaces):
        limits["devices.kubevirt.io/vhost-net"] = Quantity.parse("1")
    limits["devices.kubevirt.io/kvm"] = Quantity.parse("1")
    if (devices.model_extra or {}).get("autoattachVSOCK") is True:
        limits["devices.kubevirt.io/vhost-vsock"] = Quantity.parse("1")

    memory_spec = vmi.spec.domain.memory
    if requests.get("memory", Quantity()).is_zero():  # no memory request: derive one
        limit, request = limits.get("memory"), requests.get("memory")
        if limit is not None and not limit.is_zero() and (request is None or request.is_zero()):
            requests["memory"] = limit
        if "memory" not in requests:
            guest = None
            if memory_spec is not None and memory_spec.guest is not None:
                guest = Quantity.parse(memory_spec.guest)
            elif memory_spec is not None and memory_spec.hugepages is not None:
                try:
                    guest = Quantity.parse(memory_spec.hugepages.page_size or "")
                except ValueError:
                    guest = None
            if guest is not None and guest.value() > 0:
                overcommit = _developer(config, "memoryOvercommit", 100)
                if overcommit == 100:
                    requests["memory"] = guest
                else:
                    requests["memory"] = Quantity.of(guest.value() * 100 // overcommit, guest.format)

    vcpus = vcpu_count(vmi) if vmi.spec.domain.cpu is not None else 1
    if is_cpu_dedicated(vmi):
        vcpus = max(vcpus, 1)
        calc_limits["cpu"] = calc_requests["cpu"] = Quantity.of(vcpus)
        if "memory" in requests:
            limits["memory"] = requests["memory"]
    else:
        ratio = _developer(config, "cpuAllocationRatio", 10)
        if vcpus and ratio > 0:
            value = vcpus / ratio
            text = f"{value:g}" if value >= 1 else f"{value * 1000:g}m"
            calc_requests["cpu"] = Quantity.parse(text)

    page_size = _hugepages_size(vmi)
    if page_size is not None:
        hugepages = requests.get("memory", Quantity())
        guest = Quantity.parse(memory_spec.guest) if memory_spec.guest is not None else None
        if guest is not None and hugepages.value() > guest.value():
            hugepages = guest
        calc_requests[f"hugepages-{page_size}"] = hugepages
        calc_limits[f"hugepages-{page_size}"] = hugepages
        request_diff, limit_diff = Quantity.scaled(0, 3), Quantity.scaled(0, 3)
        if guest is not None:
            if requests.get("memory", Quantity()).value() > guest.value():
                request_diff = request_diff.add(requests["memory"]).sub(guest)
            if limits.get("memory", Quantity()).value() > guest.value():
                limit_diff = limit_diff.add(limits["memory"]).sub(guest)
        requests["memory"] = request_diff.add(overhead)
        if "memory" in limits:
            limits["memory"] = limit_diff.add(overhead)
    else:
        memory_request = requests.get("memory", Quantity())
        overcommit_overhead = bool(vmi.spec.domain.resources and
                                   vmi.spec.domain.resources.overcommit_guest_overhead)
        requests["memory"] = memory_request if overcommit_overhead else memory_request.add(overhead)
        if "memory" in limits:
            limits["memory"] = limits["memory"].add(overhead)

    # NAD resource names (SR-IOV and friends): one more of each, request and limit
    for resource_name in network_resources.values():
        if not resource_name:
            continue
        for calc, vm in ((calc_limits, limits), (calc_requests, requests)):
            current = vm.get(resource_name, calc.get(resource_name))
            calc[resource_name] = Quantity.of(1) if current is None else current.add(Quantity.of(1))
            vm.pop(resource_name, None)

    merged_limits = {**calc_limits, **limits}
    merged_requests = {**calc_requests, **requests}
    rendered: dict[str, Any] = {}
    if merged_limits:
        rendered["limits"] = {k: str(merged_limits[k]) for k in sorted(merged_limits)}
    if merged_requests:
        rendered["requests"] = {k: str(merged_requests[k]) for k in sorted(merged_requests)}
    return rendered


def _developer(config: KubeVirtConfiguration, key: str, default: int) -> int:
    dev = config.developer_configuration
    value = (dev.model_extra or {}).get(key) if dev is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _support_resources(config: KubeVirtConfiguration, kind: str) -> tuple[dict, dict]:
    for entry in config.support_container_resources or []:
        if entry.type == kind:
            return dict(entry.resources.requests or {}), dict(entry.resources.limits or {})
    return {}, {}


def _sidecar_resources(vmi: VirtualMachineInstance, config: KubeVirtConfiguration) -> dict[str, Any]:
    """``supportContainerResources[type=sidecar]``; zero values are ignored, as in KubeVirt."""
    conf_requests, conf_limits = _support_resources(config, "sidecar")

    def configured(values: dict, name: str) -> Quantity | None:
        if name not in values:
            return None
        quantity = Quantity.parse(values[name])
        return None if quantity.is_zero() else quantity

    requests: dict[str, Quantity] = {}
    limits: dict[str, Quantity] = {}
    for name in ("cpu", "memory"):
        if (q := configured(conf_requests, name)) is not None:
            requests[name] = q
    if is_cpu_dedicated(vmi) or wants_guaranteed_qos(vmi):
        limits["cpu"] = configured(conf_limits, "cpu") or Quantity.parse("200m")
        limits["memory"] = configured(conf_limits, "memory") or Quantity.parse("64M")
        requests["cpu"], requests["memory"] = limits["cpu"], limits["memory"]
    else:
        for name in ("cpu", "memory"):
            if (q := configured(conf_limits, name)) is not None:
                limits[name] = q
    rendered: dict[str, Any] = {}
    if limits:
        rendered["limits"] = {k: str(limits[k]) for k in sorted(limits)}
    if requests:
        rendered["requests"] = {k: str(requests[k]) for k in sorted(requests)}
    return rendered


def _console_log_resources(vmi: VirtualMachineInstance, config: KubeVirtConfiguration) -> dict[str, Any]:
    conf_requests, conf_limits = _support_resources(config, "guest-console-log")
    requests = {"memory": Quantity.parse(conf_requests.get("memory", "35M")),
                "cpu": Quantity.parse(conf_requests.get("cpu", "5m"))}
    limits = {"memory": Quantity.parse(conf_limits.get("memory", "60M")),
              "cpu": Quantity.parse(conf_limits.get("cpu", "15m"))}
    if is_cpu_dedicated(vmi) or wants_guaranteed_qos(vmi):
        requests = dict(limits)
    return {"limits": {k: str(limits[k]) for k in sorted(limits)},
            "requests": {k: str(requests[k]) for k in sorted(requests)}}


# --- containers -----------------------------------------------------------------------------------


def _xdg_env() -> list[dict[str, str]]:
    return [{"name": "XDG_CACHE_HOME", "value": PRIVATE_DIR},
            {"name": "XDG_CONFIG_HOME", "value": PRIVATE_DIR},
            {"name": "XDG_RUNTIME_DIR", "value": "/var/run"}]


def _security_context(uid: int, capabilities: dict | None, tpl: _Template) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if capabilities is not None:
        context["capabilities"] = capabilities
    if tpl.privileged_false:
        context["privileged"] = False
    context["runAsUser"] = uid
    if uid != 0:
        context["runAsGroup"] = uid
    context["runAsNonRoot"] = uid != 0
    if uid != 0:
        context["allowPrivilegeEscalation"] = False
    return context


def _container(name: str, image: str, pull_policy: str, *, command: Iterable[str] = (),
               args: Iterable[str] = (), env: list | None = None, resources: dict | None = None,
               mounts: list | None = None, ports: list | None = None, security: dict,
               tpl: _Template) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": image}
    if command:
        container["command"] = list(command)
    if args:
        container["args"] = list(args)
    if ports:
        container["ports"] = ports
    if env:
        container["env"] = env
    container["resources"] = resources or {}
    if mounts:
        container["volumeMounts"] = mounts
    if tpl.termination_message_policy:
        container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    if pull_policy:
        container["imagePullPolicy"] = pull_policy
    container["securityContext"] = security
    return container


def _sidecar_container(index: int, sidecar: HookSidecar, vmi: VirtualMachineInstance, uid: int,
                       resources: dict, tpl: _Template) -> dict[str, Any]:
    name = f"hook-sidecar-{index}"
    env = _xdg_env() if uid != 0 else []
    mount: dict[str, str] = {"name": HOOK_SOCKETS_VOLUME, "mountPath": HOOK_SOCKETS_DIR}
    if tpl.sidecar_env_and_subpath:
        env.append({"name": "CONTAINER_NAME", "value": name})
        if sidecar.network_binding_plugin_name:
            env.append({"name": "NETWORK_BINDING_PLUGIN_NAME",
                        "value": sidecar.network_binding_plugin_name})
        mount["subPath"] = name
    mounts = [mount]
    if sidecar.downward_api == DEVICE_INFO:
        mounts.append({"name": NETWORK_INFO_VOLUME, "mountPath": NETWORK_INFO_MOUNT})
    if sidecar.config_map is not None:
        mounts.append({"name": sidecar.config_map["name"], "mountPath": sidecar.config_map["hookPath"],
                       "subPath": sidecar.config_map["key"]})
    if sidecar.pvc is not None:
        mounts.append({"name": sidecar.pvc["name"], "mountPath": sidecar.pvc["volumePath"]})
    capabilities = {"drop": ["ALL"]} if uid != 0 else None
    return _container(name, sidecar.image or SIDECAR_SHIM_IMAGE, sidecar.image_pull_policy,
                      command=sidecar.command, args=sidecar.args, env=env, resources=resources,
                      mounts=mounts, security=_security_context(uid, capabilities, tpl), tpl=tpl)


def _ports(vmi: VirtualMachineInstance) -> list[dict[str, Any]]:
    ports = []
    for iface in vmi.spec.interfaces:
        for port in iface.ports or []:
            entry: dict[str, Any] = {}
            if port.name:
                entry["name"] = port.name
            entry["containerPort"] = port.port
            entry["protocol"] = port.protocol or "TCP"
            ports.append(entry)
    return ports


# --- volumes --------------------------------------------------------------------------------------


def _network_info_volume() -> dict[str, Any]:
    return {"name": NETWORK_INFO_VOLUME, "downwardAPI": {"items": [{
        "path": NETWORK_INFO_PATH,
        "fieldRef": {"fieldPath": "metadata.annotations['kubevirt.io/network-info']"}}]}}


def _needs_network_info(vmi: VirtualMachineInstance, config: KubeVirtConfiguration) -> bool:
    registry = config.bindings
    for iface in vmi.spec.interfaces:
        if iface.sriov is not None:
            return True
        if iface.binding is not None:
            plugin = registry.get(iface.binding.name)
            if plugin is not None and plugin.downward_api == DEVICE_INFO:
                return True
    return False


def plugin_sockets_enabled(config: KubeVirtConfiguration, profile: Profile) -> bool:
    """Whether virt-controller gives the pod the Plugin socket volume (FG Plugins; v1.9+ only)."""
    return profile.knows("Plugins") and profile.gate_enabled(config, "Plugins")


def image_volumes_enabled(config: KubeVirtConfiguration, profile: Profile) -> bool:
    """FG ImageVolume (main only, Beta): containerDisks become Kubernetes image volumes."""
    return profile.knows("ImageVolume") and profile.gate_enabled(config, "ImageVolume")


def _binary_init_container(vmi: VirtualMachineInstance, config: KubeVirtConfiguration, image: str,
                           pull_policy: str, uid: int, tpl: _Template) -> dict[str, Any]:
    """``newInitContainerRenderer``: copies the launcher's container-disk program for the disk containers."""
    source, target = "/usr/bin/container-disk", "/init/usr/bin/container-disk"
    # v1.4 puts everything in `command`; main keeps cp's flags in `args` and preserves the file mode
    command, args = (["/usr/bin/cp", source, target], []) if tpl.args_in_command else \
        (["/usr/bin/cp"], ["--preserve=all", source, target])
    return _container(container_disks.CONTAINER_DISK_BINARY, image, pull_policy, command=command, args=args,
                      resources=container_disks.binary_init_resources(vmi, config),
                      mounts=[{"name": container_disks.VIRT_BIN_VOLUME, "mountPath": "/init/usr/bin"}],
                      security=_security_context(uid, {"drop": ["ALL"]}, tpl), tpl=tpl)


def _volumes_and_mounts(vmi: VirtualMachineInstance, config: KubeVirtConfiguration, sidecars: list,
                        tpl: _Template, plugin_sockets: bool = False, image_volumes: bool = False,
                        launcher_image: str = "", pull_policy: str = "") -> tuple[list[dict], list[dict]]:
    volumes = [{"name": n, "emptyDir": {}} for n in
               ("private", "public", "sockets", "virt-bin-share-dir", "libvirt-runtime", "ephemeral-disks")]
    mounts = [{"name": "private", "mountPath": PRIVATE_DIR},
              {"name": "public", "mountPath": SHARE_DIR},
              {"name": "ephemeral-disks", "mountPath": EPHEMERAL_DISK_DIR},
              {"name": "libvirt-runtime", "mountPath": "/var/run/libvirt"},
              {"name": "sockets", "mountPath": SHARE_DIR + "/sockets"}]
    if not image_volumes:
        volumes.append({"name": "container-disks", "emptyDir": {}})
        # v1.4 mounts it right after the ephemeral disks, main (FG ImageVolume off) after the sockets
        mounts.insert(3 if tpl.container_disks_mount_early else len(mounts),
                      {"name": "container-disks", "mountPath": CONTAINER_DISK_DIR,
                       "mountPropagation": "HostToContainer"})
    # withVMIVolumes (cloud-init Secrets) runs before withImageVolumes, both before the sidecar,
    # plugin, hugepages and hotplug options
    secret_volumes, secret_mounts = cloud_init_secret_volumes(vmi)
    volumes += secret_volumes
    mounts += secret_mounts
    if image_volumes:
        disk_volumes, disk_mounts = container_disks.image_volumes(vmi, launcher_image, pull_policy)
        volumes += disk_volumes
        mounts += disk_mounts
    if sidecars:
        volumes.append({"name": HOOK_SOCKETS_VOLUME, "emptyDir": {}})
        mounts.append({"name": HOOK_SOCKETS_VOLUME, "mountPath": HOOK_SOCKETS_DIR})
    if plugin_sockets:
        # newVolumeRenderer: withPluginSocketVolume right after withSidecarVolumes, before hugepages
        volumes.append({"name": PLUGIN_SOCKETS_VOLUME, "emptyDir": {}})
        mounts.append({"name": PLUGIN_SOCKETS_VOLUME, "mountPath": PLUGIN_SOCKETS_DIR})
    if _hugepages_size(vmi) is not None:
        medium = {"medium": "HugePages"}
        volumes.append({"name": "hugepages", "emptyDir": dict(medium)})
        mounts.append({"name": "hugepages", "mountPath": "/dev/hugepages"})
        volumes.append({"name": "hugetblfs-dir", "emptyDir": dict(medium) if tpl.hugetlbfs_medium else {}})
        mounts.append({"name": "hugetblfs-dir", "mountPath": "/dev/hugepages/libvirt/qemu"})
    if not (vmi.spec.domain.devices.model_extra or {}).get("disableHotplug"):
        mounts.append({"name": "hotplug-disks", "mountPath": tpl.hotplug_dir,
                       "mountPropagation": "HostToContainer"})
        volumes.append({"name": "hotplug-disks", "emptyDir": {}})
    if _needs_network_info(vmi, config):
        mounts.append({"name": NETWORK_INFO_VOLUME, "mountPath": NETWORK_INFO_MOUNT})
        volumes.append(_network_info_volume())
    return volumes, mounts


# --- the pod --------------------------------------------------------------------------------------


def _network_resources(vmi: VirtualMachineInstance, nads: list[NetworkAttachmentDefinition],
                       config: KubeVirtConfiguration, profile: Profile, tpl: _Template) -> dict[str, str] | None:
    """Network name -> the NAD's device-plugin resource name, when virt-controller resolves NADs."""
    if not tpl.always_resolve_nads and profile.gate_enabled(config, "ExternalNetResourceInjection"):
        return None
    by_key = {((n.metadata.namespace or "default"), n.metadata.name): n for n in nads}
    resources: dict[str, str] = {}
    for net in vmi.spec.network_list:
        if net.multus is None:
            continue
        ns, name = nad_namespaced_name(vmi.namespace, net.multus.network_name)
        nad = by_key.get((ns, name))
        if nad is None:
            raise RenderError(f"failed to locate network attachment definition {ns}/{name}",
                              field=f"spec.networks[{net.name}].multus.networkName")
        resources[net.name] = nad.resource_name or ""
    return resources


def _vmi_id(name: str) -> str:
    if len(name) <= 63:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[:63 - 8 - 1]}-{digest}"


def _hostname(vmi: VirtualMachineInstance) -> str:
    if vmi.spec.hostname:
        return vmi.spec.hostname
    return (vmi.metadata.name or "").split(".")[0][:63]


def _pod_annotations(vmi: VirtualMachineInstance, config: KubeVirtConfiguration, profile: Profile,
                     tpl: _Template, overhead: Quantity) -> dict[str, str]:
    annotations = {"kubevirt.io/domain": vmi.metadata.name or ""}
    for key, value in vmi.annotations.items():
        if key.startswith(("kubectl.kubernetes.io", "kubevirt.io/storage-observed-api-version",
                           "kubevirt.io/latest-observed-api-version")):
            continue
        annotations[key] = value
    annotations["kubectl.kubernetes.io/default-container"] = "compute"
    annotations["kubevirt.io/migrationTransportUnix"] = "true"
    annotations["descheduler.alpha.kubernetes.io/request-evict-only"] = ""
    annotations.update(_network_annotations(vmi, config, profile))
    skip = vmi.annotations.get("kubevirt.io/skip-backup-hooks", "").strip().lower() in ("1", "t", "true")
    if not skip:
        name, ns = vmi.metadata.name or "", vmi.namespace
        annotations["pre.hook.backup.velero.io/container"] = "compute"
        annotations["pre.hook.backup.velero.io/command"] = (
            f'["/usr/bin/virt-freezer", "--freeze", "--name", "{name}", "--namespace", "{ns}"]')
        if tpl.velero_timeout:
            annotations["pre.hook.backup.velero.io/timeout"] = "60s"
        annotations["post.hook.backup.velero.io/container"] = "compute"
        annotations["post.hook.backup.velero.io/command"] = (
            f'["/usr/bin/virt-freezer", "--unfreeze", "--name", "{name}", "--namespace", "{ns}"]')
    if tpl.memory_overhead_annotation:
        annotations[MEMORY_OVERHEAD_ANNOTATION] = str(overhead.value())
    return {k: annotations[k] for k in sorted(annotations)}


def render_launcher_pod(vmi: Any, config: Any, *, nads: Iterable[Any] = (), profile: Profile = LATEST,
                        namespace: str | None = None, qemu_timeout: str | None = None,
                        launcher_image: str | None = None, release: str | None = None) -> dict[str, Any]:
    """The virt-launcher Pod manifest virt-controller creates for this VMI.

    ``qemu_timeout`` fixes the otherwise jittered ``--qemu-timeout`` value (tests pass the vectors'
    placeholder); ``namespace`` fills in a VMI without one; ``release="1.4.0"`` selects v1.4.0's
    figures under the 1.4 profile. Raises :class:`RenderError` where virt-controller fails to render.
    """
    vmi, config = as_vmi(vmi, profile), as_config(config)
    if namespace is not None and not vmi.metadata.namespace:
        vmi = vmi.model_copy(deep=True)
        vmi.metadata.namespace = namespace
    if not vmi.metadata.name:
        raise RenderError("metadata.name: the VMI needs a name", field="metadata.name")
    tpl = _template(profile, release)
    image = launcher_image or tpl.launcher_image
    pull_policy = image_pull_policy(config)
    non_root = vmi.is_non_root
    uid = NON_ROOT_UID if non_root else 0
    name, ns, uid_str = vmi.metadata.name, vmi.namespace, vmi.metadata.uid or ""
    image_volumes = image_volumes_enabled(config, profile)

    overhead = launcher_memory_overhead(vmi, config, profile, release).add(
        _network_memory(vmi, config, profile))
    network_resources = _network_resources(vmi, as_nads(nads), config, profile, tpl)
    resources = _compute_resources(vmi, config, overhead, network_resources or {})
    sidecars = requested_sidecars(vmi, config, profile)
    annotations = _pod_annotations(vmi, config, profile, tpl, overhead)

    timeout = qemu_timeout or qemu_timeout_with_jitter()
    grace = (vmi.spec.termination_grace_period_seconds
             if vmi.spec.termination_grace_period_seconds is not None else DEFAULT_GRACE_PERIOD_SECONDS)
    flags = ["--qemu-timeout", timeout, "--name", name, "--uid", uid_str, "--namespace", ns,
             "--kubevirt-share-dir", SHARE_DIR, "--ephemeral-disk-dir", EPHEMERAL_DISK_DIR,
             "--container-disk-dir", CONTAINER_DISK_DIR, "--grace-period-seconds", str(grace + 15),
             "--hook-sidecars", str(len(sidecars)), "--ovmf-path", tpl.ovmf_path]
    if tpl.main_flags:
        flags += ["--disk-memory-limit", str(DISK_MEMORY_LIMIT_BYTES), "--hypervisor", "kvm"]
    if non_root:
        flags.append("--run-as-nonroot")
    if tpl.main_flags:
        if image_volumes:
            flags.append("--image-volume")
        if profile.gate_enabled(config, "PodSecondaryInterfaceNamingUpgrade"):
            flags.append("--upgrade-ordinal-ifaces")
    if "kubevirt.io/libvirt-log-filters" in vmi.annotations:
        flags += ["--libvirt-log-filters", vmi.annotations["kubevirt.io/libvirt-log-filters"]]
    if any(k.startswith("kubevirt.io/keep-launcher-alive-after-failure") and
           (v == "" or v.startswith("true")) for k, v in vmi.annotations.items()):
        flags.append("--keep-after-failure")
    command = ["/usr/bin/virt-launcher-monitor"] + (flags if tpl.args_in_command else [])
    args = [] if tpl.args_in_command else flags

    volumes, compute_mounts = _volumes_and_mounts(vmi, config, sidecars, tpl,
                                                  plugin_sockets=plugin_sockets_enabled(config, profile),
                                                  image_volumes=image_volumes, launcher_image=image,
                                                  pull_policy=pull_policy)
    compute_env = _xdg_env() if non_root else []
    if tpl.resource_env and network_resources:
        for net_name, resource_name in network_resources.items():
            variable: dict[str, str] = {"name": f"KUBEVIRT_RESOURCE_NAME_{net_name}"}
            if resource_name:
                variable["value"] = resource_name
            compute_env.append(variable)
    compute_env.append({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    capabilities: dict[str, Any] = {"add": ["NET_BIND_SERVICE"] + ([] if non_root else ["SYS_NICE"])}
    if non_root:
        capabilities["drop"] = ["ALL"]
    compute = _container("compute", image, pull_policy, command=command, args=args, env=compute_env,
                         resources=resources, mounts=compute_mounts, ports=_ports(vmi),
                         security=_security_context(uid, capabilities, tpl), tpl=tpl)

    console_args = ["--logfile", f"{PRIVATE_DIR}/{uid_str}/virt-serial0-log"]
    if tpl.console_socket_timeout:
        console_args += ["--socket-timeout", timeout]
    console: dict[str, Any] = {
        "name": "guest-console-log", "image": image, "command": ["/usr/bin/virt-tail"],
        "args": console_args, "env": [{"name": "VIRT_LAUNCHER_LOG_VERBOSITY", "value": "2"}],
        "resources": _console_log_resources(vmi, config),
        "volumeMounts": [{"name": "private", "readOnly": True, "mountPath": PRIVATE_DIR}],
        "imagePullPolicy": pull_policy if tpl.console_log_follows_pull_policy else "IfNotPresent",
        "securityContext": {"capabilities": {"drop": ["ALL"]}, "runAsUser": NON_ROOT_UID,
                            "runAsNonRoot": True, "allowPrivilegeEscalation": False},
    }
    if tpl.console_log_as_init:
        console["restartPolicy"] = "Always"
    console_enabled = (vmi.spec.domain.devices.model_extra or {}).get("autoattachSerialConsole") is not False \
        and (vmi.spec.domain.devices.model_extra or {}).get("logSerialConsole") is not False

    containers = [compute]
    has_container_disks = bool(container_disks.container_disk_volumes(vmi))
    if not image_volumes:
        containers += container_disks.disk_containers(vmi, config, init=False)
    if console_enabled and not tpl.console_log_as_init:
        containers.append(console)
    sidecar_resources = _sidecar_resources(vmi, config)
    sidecar_volumes = []
    for index, sidecar in enumerate(sidecars):
        containers.append(_sidecar_container(index, sidecar, vmi, uid, sidecar_resources, tpl))
        if sidecar.config_map is not None:
            sidecar_volumes.append({"name": sidecar.config_map["name"], "configMap": {
                "name": sidecar.config_map["name"], "defaultMode": 0o755}})
        if sidecar.pvc is not None:
            sidecar_volumes.append({"name": sidecar.pvc["name"],
                                    "persistentVolumeClaim": {"claimName": sidecar.pvc["name"]}})
            if sidecar.pvc.get("sharedComputePath"):
                compute.setdefault("volumeMounts", []).append(
                    {"name": sidecar.pvc["name"], "mountPath": sidecar.pvc["sharedComputePath"]})

    hostname = _hostname(vmi)
    labels = dict(vmi.metadata.labels or {})
    labels.update({"kubevirt.io": "virt-launcher", "kubevirt.io/created-by": uid_str,
                   "vm.kubevirt.io/name": hostname})
    if tpl.vmi_id_label:
        labels["vmi.kubevirt.io/id"] = _vmi_id(name)
    if tpl.istio_inject_label and ISTIO_INJECT in vmi.annotations:
        labels[ISTIO_INJECT] = vmi.annotations[ISTIO_INJECT]

    metadata: dict[str, Any] = {"generateName": f"virt-launcher-{name}-"}
    if tpl.creation_timestamp_null:
        metadata["creationTimestamp"] = None
    metadata.update(labels={k: labels[k] for k in sorted(labels)}, annotations=annotations,
                    ownerReferences=[{"apiVersion": vmi.api_version, "kind": "VirtualMachineInstance",
                                      "name": name, "uid": uid_str, "controller": True,
                                      "blockOwnerDeletion": True}])

    spec: dict[str, Any] = {"volumes": volumes + sidecar_volumes}
    init_containers = [console] if console_enabled and tpl.console_log_as_init else []
    if has_container_disks and not image_volumes:
        init_containers.append(_binary_init_container(vmi, config, image, pull_policy, uid, tpl))
        init_containers += container_disks.disk_containers(vmi, config, init=True)
    elif has_container_disks:
        init_containers += container_disks.image_volume_init_containers(vmi, config)
    if init_containers:
        spec["initContainers"] = init_containers
    spec["containers"] = containers
    spec["restartPolicy"] = "Never"
    spec["terminationGracePeriodSeconds"] = grace + 30
    node_selector = dict(_extra(vmi.spec, "nodeSelector") or {})
    node_selector.setdefault("kubernetes.io/arch", vmi.spec.architecture or "amd64")
    node_selector["kubevirt.io/schedulable"] = "true"
    if is_cpu_dedicated(vmi):
        node_selector["cpumanager"] = "true"
    spec["nodeSelector"] = {k: node_selector[k] for k in sorted(node_selector)}
    istio = vmi.annotations.get(ISTIO_INJECT, "").lower() == "true"
    spec["automountServiceAccountToken"] = istio
    pod_security: dict[str, Any] = {"runAsUser": uid}
    if non_root:
        pod_security.update(runAsGroup=uid, runAsNonRoot=True)
    pod_security["fsGroup"] = NON_ROOT_UID
    spec["securityContext"] = pod_security
    if pull_secrets := container_disks.image_pull_secrets(vmi):
        spec["imagePullSecrets"] = pull_secrets
    spec["hostname"] = hostname
    if vmi.spec.subdomain:
        spec["subdomain"] = vmi.spec.subdomain
    affinity = _extra(vmi.spec, "affinity")
    cpu = vmi.spec.domain.cpu
    if cpu is None or not cpu.model or cpu.model == "host-model":
        affinity = _reject_label(affinity, "node-labeller.kubevirt.io/obsolete-host-model")
    if affinity is not None:
        spec["affinity"] = affinity
    for key in ("schedulerName", "tolerations", "priorityClassName", "dnsConfig", "dnsPolicy",
                "topologySpreadConstraints"):
        if _extra(vmi.spec, key):
            spec[key] = _extra(vmi.spec, key)
    spec["readinessGates"] = [{"conditionType": "kubevirt.io/virtual-machine-unpaused"}]
    spec["enableServiceLinks"] = False
    return {"metadata": metadata, "spec": spec, "status": {}}


def _extra(model: Any, key: str) -> Any:
    return (model.model_extra or {}).get(key)


def _reject_label(affinity: dict | None, label: str) -> dict:
    """Require nodes without ``label`` (KubeVirt's ``modifyNodeAffintyToRejectLabel``)."""
    import copy
    requirement = {"key": label, "operator": "DoesNotExist"}
    affinity = copy.deepcopy(affinity) if affinity else {}
    node = affinity.setdefault("nodeAffinity", {})
    required = node.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required and required.get("nodeSelectorTerms"):
        for term in required["nodeSelectorTerms"]:
            term.setdefault("matchExpressions", []).append(dict(requirement))
    else:
        node["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [{"matchExpressions": [requirement]}]}
    return affinity
