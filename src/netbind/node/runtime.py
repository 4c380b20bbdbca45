"""``netbind up``: one VMI on this machine, the way a KubeVirt node would run it, for real.

The runtime plays, in order: the API server (admission), virt-controller (the launcher pod),
the kubelet + Multus (a pod sandbox, the node CNI configuration for the pod network, then each
element of the Multus annotation through the CNI executor), the kubelet again (each sidecar
container as a process with the container's environment, its sockets subdirectory at
/var/run/kubevirt-hooks and, if asked, /etc/podinfo), virt-handler (nothing for tap and
sidecar-only bindings; for managedTap the in-pod bridge, tap and dummy of ``netbind.node.handler``,
and a DHCP server on the pod network's L2 as its upstream) and virt-launcher (a private
libvirtd, the domain from the VMI and the pod's real links, the hook chain, define, start). Every
phase is timed; anything failing tears the pod down from its journal, so nothing is left.

Where this host differs from a KubeVirt node, the runtime substitutes and says so
(``UpResult.substitutions``): the image map's stand-ins for images, the tiny guest booted directly
for the containerDisk and its NoCloud seed, TCG for KVM, the serial console to a file, no display,
and on libvirt < 11 host passt + ``-netdev stream`` for the passt backend (``netbind.node.passt``).
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from lxml import etree

from netbind import _iproute as iproute
from netbind.api.loading import Manifests
from netbind.api.models import VirtualMachineInstance
from netbind.api.versions import LATEST, Profile
from netbind.launcher.plugin_hooks import SIDECAR_READINESS_TIMEOUT_SECONDS
from netbind.node import guest as guestmod
from netbind.node import host as hostmod
from netbind.node import handler, multus, paths, procs, sandbox, status
from netbind.node import sidecars as sidecarmod
from netbind.node.images import ImageMap, ImageMapError
from netbind.node.journal import UndoError

NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
NETWORKS = "k8s.v1.cni.cncf.io/networks"
STATE_FILE = "runtime.json"
SOCKET_TIMEOUT = 20.0
PLUGIN_SOCKET_TIMEOUT = SIDECAR_READINESS_TIMEOUT_SECONDS   # virt-launcher waits 30 s per Plugin socket
DEFAULT_WAIT = 90.0
AGENT_POLL_SECONDS = 1.0  # how often a wait asks a guest agent (each ask is one libvirt round trip into the guest)
DISK_BOOT_WAIT = 300.0   # the cloud guest reports READY after ~50 s of TCG boot; more under load
GUEST_ENV = "NETBIND_GUEST"
# Paths inside the pod (its libvirtd's private mounts), so that the domain XML names the same paths
# in every pod of the VMI and a migrated QEMU finds the target pod's own files there.
POD_PASST_SOCKETS = Path("/run/libvirt/qemu/passt")      # where libvirt >= 11 puts passt's socket too
POD_CONSOLE = Path("/var/log/libvirt/netbind-console.log")
POD_SEEDED_INITRD = Path("/var/lib/libvirt/images/netbind-initrd.gz")


class UpError(RuntimeError):
    """``up`` failed; everything it created is gone. ``vmi`` is the VMI as KubeVirt would show it
    (e.g. with the FailedCreate condition), ``details`` the logs that explain it."""

    def __init__(self, message: str, *, phase: str = "", vmi: dict | None = None, details: str = "",
                 exit_code: int = 1) -> None:
        super().__init__(message)
        self.message, self.phase, self.vmi, self.details = message, phase, vmi, details
        self.exit_code = exit_code   # 2: bad input (e.g. a containerDisk image without a disk)

    def __str__(self) -> str:
        return self.message + (f"\n{self.details}" if self.details else "")


class Progress(Protocol):
    def phase(self, name: str, seconds: float, detail: str) -> None: ...
    def note(self, kind: str, text: str) -> None: ...


class _Silent:
    def phase(self, name: str, seconds: float, detail: str) -> None:
        pass

    def note(self, kind: str, text: str) -> None:
        pass


@dataclass
class UpOptions:
    images: ImageMap | None = None
    pod_network: dict | None = None          # a CNI conflist; default: bridge + host-local
    guest_args: Sequence[str] = ()           # extra kernel command line words for the tiny guest
    wait: bool = False
    wait_timeout: float | None = None        # default: DEFAULT_WAIT, DISK_BOOT_WAIT for a guest booted from its disk
    runtime: Path | None = None
    profile: Profile = LATEST
    socket_timeout: float = SOCKET_TIMEOUT   # for the sidecars' hook sockets (virt-launcher: --qemu-timeout)
    plugin_socket_timeout: float = PLUGIN_SOCKET_TIMEOUT   # for each Plugin sidecar's socket
    passt: str | None = None                 # auto|native|substitute (default $NETBIND_PASST, else auto)
    sidecars: str | None = None              # auto|container|process (default $NETBIND_SIDECARS, else auto)
    guest: str | None = None                 # tiny|cloud for every containerDisk (default $NETBIND_GUEST, else the map)


@dataclass
class UpResult:
    pod: sandbox.Pod
    vmi: dict
    phases: list[dict] = field(default_factory=list)
    substitutions: list[str] = field(default_factory=list)
    host: dict = field(default_factory=dict)
    sidecars: list[str] = field(default_factory=list)       # per sidecar: container or process, and why
    limits: list[str] = field(default_factory=list)         # the compute container's limits: what was enforced

    def to_json(self) -> dict:
        return {"pod": self.pod.netns, "vmi": self.vmi, "phases": self.phases,
                "substitutions": self.substitutions, "host": self.host, "sidecars": self.sidecars,
                "limits": self.limits}


# ---- small helpers -----------------------------------------------------------------------------

class _Clock:
    def __init__(self, progress: Progress) -> None:
        self.progress, self.phases = progress, []
        self.started = time.perf_counter()
        self.current = ""

    @contextmanager
    def phase(self, name: str) -> Iterator[dict]:
        info = {"detail": ""}
        self.current = name
        t0 = time.perf_counter()
        yield info
        seconds = time.perf_counter() - t0
        self.phases.append({"phase": name, "seconds": round(seconds, 4), "detail": info["detail"],
                            "at": round(time.perf_counter() - self.started, 4)})
        self.progress.phase(name, seconds, info["detail"])


def pod_links(netns: str):
    """The links of the pod netns as virt-launcher's phase 2 sees them."""
    from netbind.launcher.domain import PodLink

    out = iproute.ip("-j", "link", "show", netns=netns)
    return [PodLink(link["ifname"], link.get("address", ""), int(link.get("mtu", 1500)))
            for link in json.loads(out or "[]") if link["ifname"] != "lo"]


def _container_env(container: dict, pod_name: str, namespace: str, extra: dict[str, str]) -> dict[str, str]:
    import os

    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    fields = {"metadata.name": pod_name, "metadata.namespace": namespace}
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif (var.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") in fields:
            env[var["name"]] = fields[var["valueFrom"]["fieldRef"]["fieldPath"]]
    env.update(extra)
    return env


@dataclass(frozen=True)
class DiskBases:
    files: dict[str, Path]        # containerDisk volume -> the local disk file standing in for its image
    describe: dict[str, str]      # image reference -> what stands in for it
    reporting: bool = True        # every disk is the cloud guest, which reports on the console (NB: ...)
    facts: dict[Path, dict] = field(default_factory=dict)   # qemu-img's view of each file, once checked


def _disk_bases(vmi: VirtualMachineInstance, images: ImageMap, guest: str | None, progress,
                local_image=None) -> tuple[DiskBases, bool]:
    """The local disk of each containerDisk volume (the cloud guest, built on first use, the user's
    own file, or the /disk/ file of the image in the local store, extracted on first use), for a VM
    booted from its disks."""
    from netbind.node import cloud_guest, oci_disks

    files, describe, built, reporting = {}, {}, False, True
    for volume in vmi.spec.volumes or []:
        if not volume.container_disk:
            continue
        ref = str(volume.container_disk.get("image", ""))
        try:
            entry = images.disk(ref, guest=guest, local_image=local_image)
        except ImageMapError as exc:
            raise UpError(str(exc), phase="images") from None
        if entry.local_image is not None:
            try:
                found = oci_disks.ensure_disk(ref, entry.local_image, volume.container_disk.get("path") or None,
                                              progress=lambda text: progress.note("guest", text))
            except oci_disks.OciDiskError as exc:
                raise UpError(f"volume {volume.name!r}: {exc}", phase="images", exit_code=2) from None
            files[volume.name], describe[ref], built = found.path, found.describe(), built or found.built
            reporting = False    # an image's disk says nothing in our protocol (unless it is ours)
        elif entry.disk is not None:
            files[volume.name], describe[ref] = Path(entry.disk), f"your disk {entry.disk}"
            reporting = False
        elif entry.boots_disk:
            try:
                found = cloud_guest.ensure_cloud_guest(progress=lambda text: progress.note("guest", text))
            except cloud_guest.CloudGuestBuildError as exc:
                raise UpError(f"the cloud guest cannot be built: {exc}", phase="images") from None
            files[volume.name], describe[ref], built = found.disk, found.describe(), built or found.built
        else:
            raise UpError(f"volume {volume.name!r}: containerDisk {ref!r} maps to the {entry.guest} guest"
                          f" ({entry.source}), which boots no disk; a VM booted from its disks needs every"
                          " containerDisk mapped to guest: cloud or disk: FILE", phase="images")
    return DiskBases(files, describe, reporting), built


def _hooked_cloud_init_image(image, manager, vmi_json: bytes):
    """``image`` after the PreCloudInitIso hook: a sidecar may rewrite the user and network data of
    a NoCloud source."""
    from netbind.launcher import disks as disksmod

    if image is None or image.label != disksmod.NOCLOUD_LABEL:
        return image
    data = {"DataSource": "noCloud", "VolumeName": image.volume,
            "UserData": image.files.get("user-data", b"").decode(errors="replace"),
            "NetworkData": image.files.get("network-config", b"").decode(errors="replace"),
            "NoCloudMetaData": json.loads(image.files["meta-data"])}
    hooked = manager.pre_cloud_init_iso(data, vmi_json)
    if hooked == data:
        return image
    files = dict(image.files)
    files["user-data"] = str(hooked.get("UserData") or "").encode()
    if hooked.get("NetworkData"):
        files["network-config"] = str(hooked["NetworkData"]).encode()
    else:
        files.pop("network-config", None)
    return dataclasses.replace(image, files=files)


# A disk of the user's own says nothing in our protocol. Cloud images print cloud-init's final
# message on the serial console ("Cloud-init v. 22.4.2 finished at ..."), once the network config
# is applied and user data has run; getty's login prompt comes earlier than that, so it counts
# only for a VM without cloud-init.
_CLOUD_INIT_FINISHED = re.compile(r"Cloud-init v\. \S+ finished at [^\n]*")
_LOGIN_PROMPT = re.compile(r"^(?!Last )\S+ login: ", re.M)


def user_disk_ready(console: str, cloud_init: bool = True) -> str:
    """What on the console says a guest booted from the user's own disk is up ("" while nothing)."""
    found = (_CLOUD_INIT_FINISHED if cloud_init else _LOGIN_PROMPT).search(console)
    return found.group(0).strip() if found else ""


def _tiny_guest_seed(image) -> "NoCloudSeed | None":
    """The tiny guest reads a NoCloud source from its initramfs: the ISO's files, as they are."""
    from netbind.launcher import disks as disksmod
    from netbind.node.seed import NoCloudSeed

    if image is None or image.label != disksmod.NOCLOUD_LABEL:
        return None
    network = image.files.get("network-config")
    return NoCloudSeed(user_data=image.files.get("user-data", b"").decode(errors="replace"),
                       network_config=network.decode(errors="replace") if network else None,
                       meta_data=json.loads(image.files["meta-data"]))


def _container_disk(vmi: VirtualMachineInstance) -> str | None:
    for volume in vmi.spec.volumes or []:
        if volume.container_disk:
            return str(volume.container_disk.get("image", ""))
    return None


def _localize(xml: str) -> tuple[str, list[str]]:
    """What a KubeVirt domain needs that a local pod lacks: the VNC socket under
    /var/run/kubevirt-private and its video device go (the serial console is a file)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
    root = etree.fromstring(xml.encode(), parser)
    dropped = []
    for tag in ("graphics", "video"):
        for el in root.findall(f"devices/{tag}"):
            el.getparent().remove(el)
            dropped.append(tag)
    return etree.tostring(root, encoding="unicode"), sorted(set(dropped))


def _domain_nics(xml: str, vmi: VirtualMachineInstance, passt_nics) -> list[status.DomainNic]:
    from netbind.node.passt import QEMU_NS  # noqa: F401  (documented pairing)

    root = etree.fromstring(xml.encode())
    nics = []
    for iface in root.findall("devices/interface"):
        alias = iface.find("alias")
        mac = iface.find("mac")
        if alias is not None and alias.get("name", "").startswith("ua-") and mac is not None:
            nics.append(status.DomainNic(alias.get("name")[3:], mac.get("address"), None))
    nics += [status.DomainNic(n.name, n.mac, None) for n in passt_nics]
    order = [i.name for i in vmi.spec.interfaces]
    return sorted(nics, key=lambda n: order.index(n.name) if n.name in order else len(order))


def _wait_for_socket(pod: sandbox.Pod, record: procs.ProcessRecord, path: Path, what: str,
                     timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if not procs.alive(record.pid, record.starttime):
            raise UpError(f"{what} exited before it opened {path}", details=_tail(record.log, what))
        if time.monotonic() > deadline:
            raise UpError(f"{what} did not open {path} within {timeout:g} s", details=_tail(record.log, what))
        time.sleep(0.005)


def _binding_overhead(vmi, config, profile) -> str | None:
    from netbind.controller import network_memory_overhead

    overhead = network_memory_overhead(vmi, config, profile=profile)
    return None if overhead.is_zero() else str(overhead)


def _tail(log: str | Path, what: str, lines: int = 15) -> str:
    body = procs.log_tail(log, lines)
    return f"--- {what} log ({log}), last lines ---\n{body}"


def _host_info(host: hostmod.HostStack, passt_path) -> dict:
    """The host's stack as detected, with the passt path taken (nothing is missing on the native one)."""
    info = dict(host.as_dict(), passtPath=passt_path.to_json())
    if passt_path.native:
        info["notes"] = []
    return info


def vmi_document(vmi: VirtualMachineInstance, status_: dict) -> dict:
    doc = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance"}
    doc.update({k: v for k, v in vmi.to_json().items() if k not in ("apiVersion", "kind", "status")})
    doc["status"] = status_
    return doc


# ---- up ----------------------------------------------------------------------------------------

def up(manifests: Manifests, options: UpOptions | None = None, progress: Progress | None = None) -> UpResult:
    options = options or UpOptions()
    progress = progress or _Silent()
    clock = _Clock(progress)
    from netbind.controller import RenderError, network_info_annotation, render_launcher_pod
    from netbind.review import configuration, validate

    profile = options.profile
    # -- the API server and virt-controller: nothing is created until the pod renders
    with clock.phase("validate") as info:
        checked = validate(manifests, profile)
        vmi = profile.decoded(manifests.vmi)
        if not checked.allowed:
            causes = "; ".join([f"{c.field}: {c.message}" for c in checked.causes]
                               + [f"Plugin {r.plugin}: {r.message}" for r in checked.plugins if not r.allowed])
            raise UpError(f"admission denied {vmi.metadata.name}: {causes}", phase="validate")
        config = configuration(manifests)
        from netbind.node import plugins as pluginsmod
        try:
            plugin_plan = pluginsmod.plan_for(manifests)
        except pluginsmod.PluginSetupError as exc:
            raise UpError(str(exc), phase="validate") from None
        from netbind.launcher import disks as disksmod
        unsupported = disksmod.unsupported_volumes(vmi)
        if unsupported:
            raise UpError("; ".join(unsupported), phase="validate")
        try:
            converted_disks = disksmod.domain_disks(vmi, virtio_model="virtio")
            cloud_init_image = disksmod.cloud_init_image(vmi, manifests.secret_data(vmi.namespace))
        except disksmod.DiskError as exc:
            raise UpError(str(exc), phase="validate") from None
        from netbind.node import guest_disks
        try:
            guest_disks.check_network_config(vmi, cloud_init_image)
        except guest_disks.GuestDiskError as exc:
            raise UpError(str(exc), phase="validate", exit_code=2) from None
        info["detail"] = f"admitted {vmi.namespace}/{vmi.metadata.name}" + (
            f"; {len(plugin_plan.hooks)} Plugin domain hook(s)" if plugin_plan else "")
    with clock.phase("render") as info:
        try:
            pod_manifest = render_launcher_pod(vmi, config, nads=manifests.nads, profile=profile)
        except RenderError as exc:
            failed = vmi_document(vmi, {"phase": "Pending", "conditions": [
                status.condition("Synchronized", False, exc.condition()["reason"], exc.sync_message)]})
            raise UpError(f"virt-controller: {exc.sync_message} (Synchronized=False, reason FailedCreate);"
                          " nothing was created", phase="render", vmi=failed) from None
        injected = sidecarmod.inject_plugin_sidecars(pod_manifest, plugin_plan.sockets, plugin_plan.images)
        sidecar_containers = sidecarmod.sidecar_containers(pod_manifest)
        annotations = pod_manifest["metadata"].get("annotations", {})
        info["detail"] = f"launcher pod with {len(sidecar_containers) - len(injected)} hook sidecar(s)" + (
            f" and {len(injected)} Plugin sidecar(s) injected ({', '.join(injected)})" if injected else "")

    # -- stand-ins, resolved before anything is created
    substitutions: list[str] = []
    with clock.phase("images") as info:
        images = options.images or ImageMap.load()
        host = hostmod.detect()
        guest_choice = options.guest or os.environ.get(GUEST_ENV) or None
        from netbind.node import oci_disks
        local_image = None if guest_choice else oci_disks.StoreLookup()   # --guest forces: no store lookup
        try:
            resolved = sidecarmod.choose_all(sidecar_containers, images, options.sidecars)
            disk_ref = _container_disk(vmi)
            disk = images.disk(disk_ref or "", guest=guest_choice, local_image=local_image)
        except sidecarmod.SidecarError as exc:
            raise UpError(exc.message, phase="images") from None
        except ImageMapError as exc:
            raise UpError(str(exc), phase="images") from None
        for choice in resolved:
            progress.note("sidecar", choice.describe())
        from netbind.node import native
        try:
            passt_path = native.select(options.passt)
        except (ValueError, native.StackError) as exc:
            raise UpError(f"passt path: {exc}", phase="images") from None
        kernel = base_initrd = bases = None
        if disk.boots_disk:
            bases, built = _disk_bases(vmi, images, guest_choice, progress, local_image)
            from netbind.node import guest_disks
            try:
                qemu_ids = native.qemu_ids() if passt_path.native and passt_path.stack else None
                bases.facts.update({base: guest_disks.check_base(base, qemu_ids) for base in bases.files.values()})
            except (guest_disks.GuestDiskError, native.StackError) as exc:
                raise UpError(str(exc), phase="images", exit_code=2) from None
            substitutions.append(
                f"containerDisk {disk_ref} -> {bases.describe[disk_ref]} [{disk.source}], booted from its disk"
                " (SeaBIOS) through a qcow2 overlay where virt-launcher puts it")
            info["detail"] = f"{len(resolved)} sidecar(s), disk {'built' if built else 'cached'}"
        else:
            if converted_disks:
                substitutions.append(f"disks: {len(converted_disks)} disk(s) converted as KubeVirt does (netbind "
                                     "render domain shows them) but not booted: the tiny guest boots instead"
                                     " (--guest cloud boots them)")
            image = guestmod.ensure_guest() if disk.kernel is None else None
            kernel = Path(disk.kernel) if disk.kernel else image.kernel
            base_initrd = Path(disk.initrd) if disk.initrd else image.initrd
            substitutions.append(f"containerDisk {disk_ref or '(none)'} -> "
                                 + (f"tiny guest {image.inputs.kernel_package} + busybox"
                                    f" {image.inputs.busybox_version} booted directly [{disk.source}]"
                                    if image else f"kernel {kernel} [{disk.source}]"))
            info["detail"] = f"{len(resolved)} sidecar(s), guest {'built' if image and image.built else 'cached'}"

    runtime = options.runtime or paths.runtime_dir()
    with clock.phase("sandbox") as info:
        pod = sandbox.create_pod(vmi.metadata.name, vmi.namespace, runtime)
        info["detail"] = f"pod netns {pod.netns}"
    try:
        substitutions += plugin_plan.notes
        result = _up_in_pod(pod, manifests, vmi, config, pod_manifest, annotations, sidecar_containers, resolved,
                            kernel, base_initrd, disk, bases, cloud_init_image, host, images, options, clock, substitutions,
                            network_info_annotation, passt_path, plugin_plan)
    except BaseException as exc:
        phase = clock.current
        with sandbox.uninterrupted():   # a second Ctrl-C must not leave half a pod
            try:
                pod.down()
            except UndoError as undo_exc:
                if isinstance(exc, UpError):
                    exc.details += f"\ncleanup incomplete ({undo_exc}); run `netbind down --all`"
            sandbox.down_node_if_idle(runtime)
        if isinstance(exc, UpError):
            exc.phase = exc.phase or phase
            raise
        if isinstance(exc, Exception):
            raise UpError(f"{phase}: {exc}", phase=phase) from exc
        raise
    return result


def _up_in_pod(pod, manifests, vmi, config, pod_manifest, annotations, sidecar_containers, resolved, kernel,
               base_initrd, disk, bases, cloud_init_image, host, images, options, clock, substitutions,
               network_info_annotation, passt_path, plugin_plan) -> UpResult:
    from netbind.launcher.domain import DomainAttachmentError, build_domain
    from netbind.launcher.hooks import HookClientError, HookManager
    from netbind.node import libvirt as lv
    from netbind.launcher.plugins import PluginHookError
    from netbind.node import passt as passtmod
    from netbind.node import plugins as pluginsmod
    from netbind.node.seed import NoCloudSeed, SeedError
    from netbind.bindings import verify_vmi_migratable

    profile = options.profile
    node = sandbox.ensure_node(pod.names.runtime)
    pod_name = pod_manifest["metadata"].get("name") or f"virt-launcher-{vmi.metadata.name}-{pod.names.suffix}"

    # -- kubelet + Multus: the pod network, then each selection element, in order
    with clock.phase("network") as info:
        pod_network = options.pod_network or multus.default_pod_network(node.names.directory / "ipam")
        attachments = attach_pod_networks(pod, node, manifests, vmi, annotations, pod_name, images, pod_network,
                                          substitutions)
        network_status = publish_network_status(pod, vmi, config, annotations, attachments, profile)
        eth0 = next((ip["address"] for ip in attachments[0].result.get("ips", [])), "?")
        info["detail"] = f"eth0 {eth0}; " + ", ".join(f"{a.network} -> {a.ifname}" for a in attachments[1:]) \
            if len(attachments) > 1 else f"eth0 {eth0}"

    # the pod interface names virt-controller reports (from network-status)
    from netbind import naming
    pod_interfaces = {n.name: naming.hashed_pod_interface_name(n) for n in vmi.spec.network_list}
    vmi_status: dict[str, Any] = {"phase": "Scheduled", "interfaces": [
        {"name": i.name, "podInterfaceName": pod_interfaces[i.name], "infoSource": status.INFO_MULTUS}
        for i in vmi.spec.interfaces if i.name in pod_interfaces]}
    vmi_doc = vmi_document(vmi, vmi_status)
    vmi_with_status = VirtualMachineInstance.model_validate(vmi_doc)

    # -- virt-handler: network phase 1 (managedTap layouts and their upstream DHCP)
    with clock.phase("virt-handler") as info:
        try:
            wired = handler.phase1(pod, node, vmi, config, attachments, pod_interfaces, substitutions)
        except (handler.netpod.LayoutError, RuntimeError) as exc:
            raise UpError(str(exc)) from None
        substitutions += [f"managedTap upstream DHCP: {t.dhcp}" for t in wired if t.dhcp]
        info["detail"] = handler.describe(wired)

    # -- kubelet: the sidecar containers; virt-launcher's libvirtd starts meanwhile
    records = []
    with clock.phase("sidecars+libvirtd") as info:
        from netbind.node.native import start_libvirtd
        # spawned, not awaited: it opens its socket while the sidecars start and the hooks run
        # (its first use, define, waits for it)
        libvirtd = start_libvirtd(pod, passt_path, wait=False)
        records = start_sidecars(pod, resolved, pod_manifest, pod_name, vmi.namespace)
        limits = confine_compute(pod, pod_manifest, libvirtd.record.pid, _binding_overhead(vmi, config, profile))
        for line in limits:
            clock.progress.note("limits", line)
        info["detail"] = f"{describe_sidecars(records)}, libvirtd pid {libvirtd.record.pid}"

    def sidecar_logs() -> str:
        return "\n".join(r.log_tail() for r in records)

    # -- virt-launcher: collect the hook sockets, then the hook points
    with clock.phase("hooks") as info:
        # the domain does not depend on the sidecars: built while they start
        try:
            built = build_domain(vmi_with_status, config, pod_links(pod.netns), profile=profile)
        except DomainAttachmentError as exc:
            raise UpError(f"virt-launcher: {exc}") from None
        vmi_json = json.dumps(vmi_doc).encode()
        hook_records = sidecarmod.hook_api_sidecars(records)
        await_hook_sockets(pod, hook_records, options.socket_timeout)
        manager = HookManager(pod.names.hooks_dir, poll_period=0.005)
        plugin_outcomes: list = []

        def define_once(xml: bytes) -> bytes:
            """SetDomainSpecStrWithHooks: the hook API's chain, then the Plugins' domain hooks."""
            out = manager.on_define_domain(xml, vmi_json, trace=trace)
            if plugin_plan:
                out, outcomes = pluginsmod.define(pod, plugin_plan, out, vmi_json, "Boot",
                                                  readiness=options.plugin_socket_timeout)
                plugin_outcomes.extend(outcomes)
            return out

        try:
            manager.collect(len(hook_records), timeout=5)
            cloud_init_image = _hooked_cloud_init_image(cloud_init_image, manager, vmi_json)
            trace: list = []
            first = define_once(built.domain_xml.encode())
            # virt-launcher defines the domain 2-3 times (hotplug port allocation), each time through
            # the whole chain with the previous result: hooks must be idempotent
            second = define_once(first)
        except HookClientError as exc:
            raise UpError(f"virt-launcher: hook failed: {exc}", details=sidecar_logs()) from None
        except PluginHookError as exc:
            raise UpError(f"virt-launcher: {exc}", details=sidecar_logs()) from None
        finally:
            manager.close()
        substitutions += sorted({f"warning: {o.detail}" for o in plugin_outcomes if o.status == "ignored"})
        if first != second and records:
            substitutions.append("warning: OnDefineDomain is not idempotent (the second call changed the domain)")
        info["detail"] = (f"{len(manager.sidecars)} sidecar(s); OnDefineDomain x2 "
                          f"({', '.join(str(t['duration_ms']) + ' ms' for t in trace)})" if trace
                          else "no hook subscribers")
        applied = [o for o in plugin_outcomes if o.status == "applied"]
        if plugin_plan:
            info["detail"] += (f"; Plugin MutateDomain (Boot) x{len(applied)}"
                               f" ({', '.join(str(o.duration_ms) + ' ms' for o in applied)})")
        domain_xml = second.decode()

    # -- virt-launcher: this host's libvirt and QEMU
    with clock.phase("domain") as info:
        from netbind.node import guest_disks

        # its content is final after PreCloudInitIso: xorrisofs runs while the domain is defined
        pending_iso = guest_disks.PendingIso(cloud_init_image) if bases is not None and cloud_init_image else None
        try:
            domain_xml, dropped = _localize(domain_xml)
            if dropped:
                substitutions.append(f"domain: {' and '.join(dropped)} dropped (no display; the serial console"
                                     " goes to a file: netbind console)")
            passt_nics = []
            substitutions.append(passt_path.describe())
            if not passt_path.native:
                try:
                    domain_xml, passt_nics = passtmod.substitute(
                        domain_xml, lambda alias: POD_PASST_SOCKETS / f"{alias}.sock")
                except passtmod.PasstSubstitutionError as exc:
                    raise UpError(str(exc)) from None
            import resource
            _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
            for i, nic in enumerate(passt_nics):
                passt_nics[i], limited = passtmod.fit_to_limit(nic, nofile)
                if limited:
                    substitutions.append(f"passt: {limited}")
            for nic in passt_nics:
                substitutions.append(f"passt (recipe R6a): {nic.describe()}")
            if not host.kvm:
                domain_xml = lv.to_tcg(domain_xml)
                substitutions.append(f"accel: KVM -> TCG ({host.kvm_note})")
            disk_plan = None
            if bases is not None:
                try:
                    disk_plan = guest_disks.plan(vmi, domain_xml, bases.files, cloud_init_image,
                                                 info=bases.facts.__getitem__)
                except guest_disks.GuestDiskError as exc:
                    raise UpError(str(exc)) from None
                substitutions += disk_plan.describe()
                disks_state = disk_plan.to_json()
                domain_xml = lv.with_serial_log(disk_plan.domain_xml, POD_CONSOLE)
            else:
                disks_state = None
                try:
                    seed = _tiny_guest_seed(cloud_init_image)
                    if seed:
                        guestmod.GuestImage(base_initrd.parent, kernel, base_initrd, None,
                                            False).initrd_with_seed(seed, libvirtd.layout.host_path(POD_SEEDED_INITRD))
                    initrd = POD_SEEDED_INITRD if seed else base_initrd
                except SeedError as exc:
                    raise UpError(f"cloudInitNoCloud: {exc}") from None
                if seed:
                    substitutions.append("cloudInitNoCloud -> NoCloud seed in the initramfs (after PreCloudInitIso)")
                cmdline = " ".join([guestmod.DEFAULT_CMDLINE, disk.cmdline, *options.guest_args]).strip()
                domain_xml = lv.with_serial_log(lv.with_direct_kernel_boot(domain_xml, kernel, initrd, cmdline),
                                                POD_CONSOLE)
            (pod.names.directory / "domain.xml").write_text(domain_xml)
            for nic in passt_nics:
                start_passt(pod, libvirtd.layout, nic, host.passt or "passt")
            name = etree.fromstring(domain_xml.encode()).findtext("name")
            try:
                libvirtd.define(domain_xml)
            except lv.LibvirtError as exc:
                raise UpError(f"virt-launcher: {exc}", details=sidecar_logs()) from None
            if disk_plan is not None:   # the files are needed at start, not at define
                try:
                    guest_disks.place(disk_plan, libvirtd.layout.host_path,
                                      written={pending_iso.image.volume: pending_iso} if pending_iso else None)
                except guest_disks.GuestDiskError as exc:
                    raise UpError(str(exc)) from None
            info["detail"] = (f"domain {name} defined (passt native)" if passt_path.native else
                              f"domain {name} defined ({len(passt_nics)} passt NIC(s) substituted)")
        finally:
            if pending_iso is not None:
                pending_iso.discard()
    with clock.phase("start") as info:
        try:
            libvirtd.start_domain(name)
        except lv.LibvirtError as exc:
            raise UpError(f"virt-launcher: {exc}", details=_tail(libvirtd.layout.dir("/var/log/libvirt")
                                                                   / "qemu" / f"{name}.log", "qemu")) from None
        info["detail"] = f"{name} running"

    # the defined domain: libvirt fills in what the hooks left out (e.g. a MAC for the native passt NIC)
    nics = _domain_nics(libvirtd.domain(name).XMLDesc(0), vmi, passt_nics)
    migratable = verify_vmi_migratable(vmi, config, profile).condition()
    state = {"managedTap": [{"interface": t.interface, "tap": t.layout.tap, "mac": t.vm_mac, "dhcp": t.dhcp,
                             "counters": t.counters} for t in wired],
             "vmi": vmi.to_json(), "domain": name, "uri": libvirtd.layout.uri,
             "nics": [n.__dict__ for n in nics], "podInterfaces": pod_interfaces,
             "conditions": {"LiveMigratable": migratable}, "launcherPod": pod_name,
             "networkStatus": json.loads(network_status), "substitutions": substitutions,
             "host": _host_info(host, passt_path), "phases": clock.phases,
             "console": str(libvirtd.layout.host_path(POD_CONSOLE)), "node": node.netns,
             # what a migration needs to render and wire a target pod like this one
             "manifests": _manifest_documents(manifests), "profile": profile.name,
             "images": dataclasses.asdict(images), "podNetwork": options.pod_network,
             "nodeIndex": 0, "nodeName": node_name(0), "passt": [_passt_json(n) for n in passt_nics],
             "sidecars": [c.describe() for c in resolved], "sidecarsMode": sidecarmod.mode_of(options.sidecars),
             "limits": limits, "disks": disks_state,
             # the tiny and cloud guests report links and leases on the console; your own disk does not
             "guestReports": bases is None or bases.reporting}
    (pod.names.directory / STATE_FILE).write_text(json.dumps(state, indent=1))
    libvirtd.close()

    if options.wait:
        with clock.phase("guest lease") as info:
            console = guestmod.ConsoleFollower(Path(state["console"]))
            wait_timeout = options.wait_timeout or (DISK_BOOT_WAIT if bases is not None else DEFAULT_WAIT)
            reporting = bases is None or bases.reporting
            deadline = time.monotonic() + wait_timeout
            agent, agent_asked = None, 0.0
            while True:
                console.poll()
                reports = console.reports   # (console.text joins all read so far: only where it is used)
                # your own disk may speak our protocol too (netbind's cloud guest image does)
                if status.ready(reports):
                    break
                if not reporting:
                    # a guest agent, when the disk has one, tells the addresses the console does not
                    if time.monotonic() - agent_asked >= AGENT_POLL_SECONDS:
                        agent, agent_asked = guest_agent_interfaces(state), time.monotonic()
                    addressed = agent_addresses(nics, agent) if agent is not None else {}
                    # with cloud-init, its last line: the agent has the address earlier than cloud-init
                    # has run the user data (a migration then would catch the guest mid-configuration)
                    if user_disk_ready(console.text, cloud_init_image is not None) or (
                            cloud_init_image is None and addressed and all(addressed.values())):
                        if cloud_init_image is not None:
                            agent = guest_agent_interfaces(state)   # the addresses as they are now
                        break
                if time.monotonic() > deadline:
                    awaited = ("READY" if reporting else "cloud-init's \"finished at\" line" if cloud_init_image
                               else "login prompt")
                    also = "" if reporting else (" (and no guest agent answered)" if agent is None else
                                                 " (and the guest agent shows no address on every NIC)")
                    raise UpError(f"the guest printed no {awaited} on its console{also} within {wait_timeout:g} s",
                                  details="--- console ---\n" + "\n".join(console.text.splitlines()[-20:]))
                time.sleep(0.01 if reporting else 0.2)
            leases = [f"{r.fields.get('iface')} {r.fields.get('ip')}" for r in reports if r.word in ("LEASE", "ADDR")]
            if reporting or status.ready(reports):
                info["detail"] = ", ".join(leases) or "ready (no addresses)"
            elif agent is not None:
                info["detail"] = "guest agent: " + ", ".join(f"{nic} {' '.join(ips) or 'no address'}"
                                                              for nic, ips in agent_addresses(nics, agent).items())
            else:
                info["detail"] = (user_disk_ready(console.text, cloud_init_image is not None) or ", ".join(leases)) \
                    + " (no guest agent answered)"
        state["phases"] = clock.phases
        (pod.names.directory / STATE_FILE).write_text(json.dumps(state, indent=1))
    return UpResult(pod, current_vmi(pod), clock.phases, substitutions, state["host"], state["sidecars"], limits)


def start_passt(pod: sandbox.Pod, layout, nic, binary: str) -> procs.ProcessRecord:
    """The host passt for one substituted NIC (R6a), listening where the pod's QEMU dials it."""
    socket_path = layout.host_path(nic.socket)
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    local = dataclasses.replace(nic, socket=socket_path)
    record = pod.start(pod.process_spec(f"passt-{nic.name}",
                                        local.passt_argv(binary, pod.names.logs_dir / f"passt-{nic.name}.log")))
    _wait_for_socket(pod, record, socket_path, f"passt for {nic.alias}")
    return record


def node_name(index: int) -> str:
    """The node names of this machine: node 0 is the host's name, node N (a migration target) '<host>-nodeN'."""
    import platform

    return platform.node() if index == 0 else f"{platform.node()}-node{index}"


def _manifest_documents(manifests: Manifests) -> list[dict]:
    docs = [manifests.kubevirt.to_json()] if manifests.kubevirt is not None else []
    docs += [nad.to_json() for nad in manifests.nads]
    docs += [plugin.to_json() for plugin in manifests.plugins]
    return docs + [manifests.vmi.to_json()]


def manifests_of(state: dict) -> Manifests:
    """The manifests a running VMI was started from (its state records them)."""
    from netbind.api.models import KubeVirt, NetworkAttachmentDefinition, Plugin

    found = Manifests()
    for doc in state["manifests"]:
        if doc.get("kind") == "KubeVirt":
            found.kubevirt = KubeVirt.model_validate(doc)
        elif doc.get("kind") == "NetworkAttachmentDefinition":
            found.nads.append(NetworkAttachmentDefinition.model_validate(doc))
        elif doc.get("kind") == "Plugin":
            found.plugins.append(Plugin.model_validate(doc))
        else:
            found.vmis.append(VirtualMachineInstance.model_validate(doc))
    return found


def _passt_json(nic) -> dict:
    return {**dataclasses.asdict(nic), "socket": str(nic.socket)}


def passt_nics_of(state: dict) -> list:
    from netbind.node.passt import PasstNic

    return [PasstNic(**{**n, "socket": Path(n["socket"]), "tcp": tuple(n["tcp"]), "udp": tuple(n["udp"])})
            for n in state.get("passt", [])]


def publish_network_status(pod: sandbox.Pod, vmi: VirtualMachineInstance, config, annotations: dict,
                           attachments: Sequence[multus.Attachment], profile: Profile) -> str:
    """Multus' network-status of the pod, and the downward API's network-info derived from it."""
    from netbind.controller import network_info_annotation

    network_status = multus.network_status(attachments)
    annotations = dict(annotations, **{NETWORK_STATUS: network_status})
    (pod.names.directory / "network-status.json").write_text(network_status + "\n")
    network_info = network_info_annotation(vmi, config, annotations, profile=profile)
    if network_info:
        (pod.names.podinfo_dir / "network-info").write_text(network_info)
    return network_status


def attach_pod_networks(pod: sandbox.Pod, node: sandbox.Node, manifests: Manifests, vmi: VirtualMachineInstance,
                        annotations: dict, pod_name: str, images: ImageMap, pod_network: dict,
                        substitutions: list[str]) -> list[multus.Attachment]:
    """The kubelet + Multus for one launcher pod: the node's pod network as eth0, then each element
    of the Multus annotation, in order (each journalled in the pod: undo is the DEL)."""
    from netbind.cni.exec import default_cni_path

    pod_uid = pod.names.suffix
    netns_path = str(iproute.NETNS_DIR / pod.netns)
    with sandbox.node_lock(pod.names.runtime):
        multus.ensure_world(node.journal, node.netns)
    cni_bin = images.cni_bin_dir(node.names.directory / "cni-bin")
    cni_path = [str(cni_bin), *default_cni_path()]
    cni = multus.executor(cni_path, pod.names.directory / "cni", node.netns)
    attachments = [multus.attach(pod.journal, cni, pod_network,
                                 multus.multus_runtime("eth0", netns_path, pod.netns, None, vmi.namespace,
                                                       pod_name, pod_uid),
                                 pod_network.get("name", "pod-network"), default=True)]
    for index, element in enumerate(multus.selection_elements(annotations.get(NETWORKS)), start=1):
        namespace = element.get("namespace") or vmi.namespace
        nad = manifests.nad(namespace, element["name"])
        if nad is None:
            raise UpError(f"Multus: NetworkAttachmentDefinition {namespace}/{element['name']} is not in the"
                          " given files", phase="network")
        device_id = multus.device_id_of(nad.metadata.annotations)
        if device_id:
            with sandbox.node_lock(pod.names.runtime):
                segment = multus.ensure_segment(node.journal, node.netns, node.names.directory, device_id)
            substitutions.append(f"device plugin: {multus.RESOURCE_ANNOTATION} of {namespace}/{element['name']}"
                                 f" -> deviceID {device_id}, a node L2 segment {segment.subnet}.0/24 with"
                                 f" DHCP (dnsmasq) on {segment.peer}")
        ifname = element.get("interface") or f"net{index}"
        conf = multus.nad_delegate_config(nad.spec.config or "", element.get("cni-args"), device_id)
        rt = multus.multus_runtime(ifname, netns_path, pod.netns, element.get("mac"), vmi.namespace,
                                   pod_name, pod_uid)
        attachments.append(multus.attach(pod.journal, cni, conf, rt, f"{namespace}/{element['name']}"))
    # a dual-stack pod network needs its IPv6 router: the node advertises itself on the CNI bridge
    with sandbox.node_lock(pod.names.runtime):
        router = multus.ensure_router_advertisements(node.journal, node.netns, node.names.directory,
                                                     attachments[0].result)
    if router:
        substitutions.append(router)
    return attachments


def start_sidecars(pod: sandbox.Pod, choices: Sequence, pod_manifest: dict, pod_name: str,
                   namespace: str) -> list[sidecarmod.RunningSidecar]:
    try:
        return sidecarmod.start(pod, choices, pod_manifest, pod_name, namespace)
    except sidecarmod.SidecarError as exc:
        raise UpError(exc.message, details=exc.details) from None


def await_hook_sockets(pod: sandbox.Pod, running: Sequence[sidecarmod.RunningSidecar], timeout: float) -> None:
    try:
        sidecarmod.await_hook_sockets(pod, running, timeout)
    except sidecarmod.SidecarError as exc:
        raise UpError(exc.message, details=exc.details) from None


def describe_sidecars(running: Sequence[sidecarmod.RunningSidecar]) -> str:
    kinds = [r.choice.kind for r in running]
    return ", ".join(f"{kinds.count(k)} sidecar {k}(s)" for k in ("container", "process") if k in kinds) \
        or "no sidecars"


def confine_compute(pod: sandbox.Pod, pod_manifest: dict, pid: int, overhead: str | None) -> list[str]:
    """The compute container's resources on libvirtd (and QEMU): what was enforced, and what not."""
    from netbind.node import cgroups

    compute = next(c for c in pod_manifest["spec"]["containers"] if c["name"] == "compute")
    report = cgroups.confine(pod.journal, compute.get("resources") or {}, pid, f"netbind-{pod.netns}")
    if overhead:
        report.append(f"the compute figures include computeResourceOverhead {overhead} (virt-controller)")
    return [f"compute (libvirtd + QEMU): {line}" for line in report]


# ---- status of a running pod -------------------------------------------------------------------

def load_state(pod: sandbox.Pod) -> dict | None:
    path = pod.names.directory / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _domain_phase(state: dict) -> str:
    from netbind.node import libvirt as lv

    with lv.domain_at(state["uri"], state["domain"]) as (phase, _):
        return phase


def agent_addresses(nics: Sequence[status.DomainNic], agent: Sequence[status.AgentInterface]) -> dict[str, list[str]]:
    """Each domain NIC's addresses as the guest agent's report gives them in the VMI status (by
    MAC), link-local ones left out: those the guest has without any network handing it one."""
    entries = status.merge_guest_agent([{"name": n.name, "mac": n.mac} for n in nics], agent)
    return {e["name"]: [ip for ip in e.get("ipAddresses", []) if not ipaddress.ip_address(ip).is_link_local]
            for e in entries if "name" in e}


def guest_agent_interfaces(state: dict) -> "list[status.AgentInterface] | None":
    """What the VM's QEMU guest agent says of its interfaces now (None: no agent answers)."""
    from netbind.node import libvirt as lv

    with lv.domain_at(state["uri"], state["domain"]) as (_, domain):
        return lv.query_agent_interfaces(domain) if domain is not None else None


def current_vmi(pod: sandbox.Pod) -> dict:
    """The VMI object with its status now (``kubectl get vmi -o json``)."""
    state = load_state(pod)
    vmi = VirtualMachineInstance.model_validate(state["vmi"]) if state else None
    if state is None or vmi is None:
        return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
                "metadata": {"name": pod.names.vmi, "namespace": pod.names.namespace},
                "status": {"phase": "Scheduling"}}
    console = Path(state["console"])
    reports = guestmod.parse_reports(console.read_text(errors="replace")) if console.exists() else []
    nics = [status.DomainNic(**n) for n in state["nics"]]
    from netbind.node import libvirt as lv

    with lv.domain_at(state["uri"], state["domain"]) as (phase, domain):   # one connection for both
        agent = lv.query_agent_interfaces(domain) if domain is not None else None
    masquerade = {i.name for i in vmi.spec.domain.devices.interfaces or [] if i.masquerade is not None}
    conditions = [status.condition("Ready", phase == "Running" and status.ready(reports) is not None),
                  {**state["conditions"]["LiveMigratable"], "lastProbeTime": None, "lastTransitionTime": None}]
    node = state.get("nodeName") or node_name(0)
    doc = vmi_document(vmi, {
        "phase": phase, "nodeName": node, "conditions": conditions,
        "interfaces": status.interface_statuses(nics, reports, state["podInterfaces"], agent, masquerade),
        "activePods": {pod.names.suffix: node}, "launcherContainerImageVersion": "netbind",
        "migrationTransport": "Unix", "qosClass": "Burstable", "guestOSInfo": {},
    })
    if state.get("migrationState"):
        doc["status"]["migrationMethod"] = "LiveMigration"
        doc["status"]["migrationState"] = state["migrationState"]
    doc["metadata"].setdefault("annotations", {})
    doc["metadata"]["annotations"]["netbind.io/pod-netns"] = pod.netns
    return doc


def find_running(name: str | None, runtime: Path | None = None) -> list[sandbox.Pod]:
    pods = sandbox.list_pods(runtime) if not name else sandbox.find_pods(name, runtime)
    return pods


__all__ = ["UpError", "UpOptions", "UpResult", "current_vmi", "find_running", "load_state", "pod_links", "up"]
