"""The VMI's disks and volumes as virt-launcher's converter writes them into the domain.

Pure composition, learnt from KubeVirt's ``pkg/virt-launcher/virtwrap/converter/storage`` (disk.go,
volume.go, configurator.go), ``pkg/cloud-init/cloud-init.go``, ``pkg/container-disk``,
``pkg/ephemeral-disk``, ``pkg/emptydisk`` and the amd64 defaults of the mutating webhook
(``pkg/defaults/amd64.go``, ``SetDefaults_DiskDevice``/``SetDefaults_CDRomTarget``):

* :func:`domain_disks` gives the ``<disk>`` elements, in ``spec.domain.devices.disks`` order;
* :func:`cloud_init_image` describes the NoCloud/ConfigDrive ISO (label, files) virt-launcher makes;
* :func:`unsupported_volumes` names the volumes whose kind netbind does not convert.

Cache and io are what the VMI says: virt-launcher fills empty ones later, at define time, from a
direct-I/O probe of the file (``SetDriverCacheMode``: ``none``, or ``writethrough`` without O_DIRECT;
``SetOptimalIOMode``: ``native`` for preallocated files), which this pure step cannot make.
Writing the ISO is the effectful :func:`write_iso`.
"""
from __future__ import annotations

import base64
import binascii
import json
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lxml import etree

from netbind.api.models import VirtualMachineInstance

from .goxml import element

SUPPORTED_VOLUME_KINDS = ("containerDisk", "cloudInitNoCloud", "cloudInitConfigDrive", "emptyDisk")
# virt-launcher's directories (cmd/virt-launcher: --ephemeral-disk-dir; pkg/util VirtShareDir)
EPHEMERAL_DISK_DIR = "/var/run/kubevirt-ephemeral-disks"
CONTAINER_DISKS_DIR = "/var/run/kubevirt/container-disks"
EMPTY_DISKS_DIR = "/var/run/libvirt/empty-disks"
CLOUD_INIT_DIR = f"{EPHEMERAL_DISK_DIR}/cloud-init-data"
NOCLOUD_LABEL = "cidata"
CONFIG_DRIVE_LABEL = "config-2"
# the VMI admitter's limits on inline cloud-init data (vmi-create-admitter.go); larger data goes in a Secret
USER_DATA_MAX_BYTES = 2048
NETWORK_DATA_MAX_BYTES = 2048
_DNS1123_LABEL_MAX = 63


class DiskError(ValueError):
    """The VMI's disks cannot be converted; ``field`` names the part of the spec to fix."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class MissingSecret(DiskError):
    """A cloud-init secret reference names a Secret the manifests do not hold (the cluster may)."""


@dataclass(frozen=True)
class CloudInitImage:
    """The cloud-init ISO virt-launcher writes: volume label, files (path in the ISO -> bytes), path."""

    volume: str
    label: str
    path: str  # where the domain's <disk> finds it inside the launcher
    files: dict[str, bytes] = field(default_factory=dict)


def _volume_kind(volume: Any) -> str | None:
    data = volume.model_dump(by_alias=True, exclude_none=True)
    kinds = [k for k in data if k != "name"]
    return kinds[0] if kinds else None


def unsupported_volumes(vmi: VirtualMachineInstance) -> list[str]:
    """One sentence per volume whose kind netbind does not convert (PVC, DataVolume, hostDisk, ...)."""
    messages = []
    for volume in vmi.spec.volumes or []:
        kind = _volume_kind(volume)
        if kind not in SUPPORTED_VOLUME_KINDS:
            messages.append(f"volume {volume.name!r} is a {kind or 'volume with no source'}, which netbind does "
                            f"not convert; supported volume kinds: {', '.join(SUPPORTED_VOLUME_KINDS)}")
    return messages


def _device_name(prefix: str, index: int) -> str:
    """The Linux sd.c naming KubeVirt ports: a..z, aa..az, ..."""
    name = ""
    while index >= 0:
        name = chr(ord("a") + index % 26) + name
        index = index // 26 - 1
    return prefix + name


def _target_kind(disk: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    for kind, device in (("disk", "disk"), ("lun", "lun"), ("cdrom", "cdrom")):
        if kind in disk:
            return device, dict(disk.get(kind) or {})
    return "disk", {}  # SetDefaults_DiskDevice: no target means a disk


class _Namer:
    """makeDeviceName: per prefix, the next name not taken, keeping names from volume status."""

    def __init__(self, reserved: Mapping[str, str]) -> None:
        self._by_disk = dict(reserved)
        self._used = set(reserved.values())

    def name(self, disk: str, bus: str, where: str) -> tuple[str, int]:
        prefix = "vd" if bus == "virtio" else "sd"
        if disk in self._by_disk and self._by_disk[disk].startswith(prefix):
            taken = self._by_disk[disk]
            return taken, next((i for i in range(26 ** 3) if _device_name(prefix, i) == taken), 0)
        for i in range(26 ** 3):
            candidate = _device_name(prefix, i)
            if candidate not in self._used:
                self._used.add(candidate)
                self._by_disk[disk] = candidate
                return candidate, i
        raise DiskError("no free device name", field=where)


def _instance_uuid(vmi: VirtualMachineInstance) -> str:
    """spec.domain.firmware.uuid; the API server defaults it to a random UUID, we to a stable one."""
    firmware = vmi.spec.domain.firmware or {}
    if firmware.get("uuid"):
        return str(firmware["uuid"])
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kubevirt.io/vmi/{vmi.namespace}/{vmi.metadata.name}"))


def hostname(vmi: VirtualMachineInstance) -> str:
    """dns.SanitizeHostname: spec.hostname, else the name up to its first dot, at most 63 characters."""
    if vmi.spec.hostname:
        return vmi.spec.hostname
    return (vmi.metadata.name or "").split(".")[0][:_DNS1123_LABEL_MAX]


def _raw_or_base64(source: Mapping[str, Any], key: str, where: str, secrets: Mapping[str, Mapping[str, bytes]]
                   ) -> bytes | None:
    if source.get(key):
        return str(source[key]).encode()
    encoded = source.get(f"{key}Base64")
    if encoded:
        try:
            return base64.b64decode(str(encoded), validate=True)
        except (binascii.Error, ValueError):
            raise DiskError(f"{key}Base64 is not valid base64", field=f"{where}.{key}Base64") from None
    ref_key = "secretRef" if key == "userData" else f"{key}SecretRef"  # the API's names for both refs
    ref = source.get(ref_key)
    if ref:
        name = (ref or {}).get("name", "")
        secret = secrets.get(name)
        if secret is None:
            raise MissingSecret(f"{ref_key} names Secret {name!r}, which is not among the manifests; "
                            f"add it to -f or put the data inline", field=f"{where}.{ref_key}")
        # resolveNoCloudSecrets reads the key "userdata" (or "userData"), "networkdata" (or "networkData")
        for item in (key.lower(), key):
            if item in secret:
                return secret[item]
        raise DiskError(f"Secret {name!r} has no key {key.lower()!r} (or {key!r})", field=f"{where}.{ref_key}")
    return None


def cloud_init_image(vmi: VirtualMachineInstance, secrets: Mapping[str, Mapping[str, bytes]] | None = None
                     ) -> CloudInitImage | None:
    """The ISO of the VMI's first cloud-init volume, as ``GenerateLocalData`` lays it out.

    NoCloud: label ``cidata``, ``user-data``, ``meta-data`` (JSON: instance-id = firmware UUID,
    local-hostname) and ``network-config`` when there is network data. ConfigDrive: label
    ``config-2``, ``openstack/latest/{user_data, meta_data.json, network_data.json}`` with
    instance_id ``<name>.<namespace>``, uuid and hostname. ``secrets`` maps a Secret's name to its
    decoded data.
    """
    secrets = secrets or {}
    for index, volume in enumerate(vmi.spec.volumes or []):
        source = volume.cloud_init_no_cloud if volume.cloud_init_no_cloud is not None \
            else volume.cloud_init_config_drive
        if source is None:
            continue
        nocloud = volume.cloud_init_no_cloud is not None
        where = f"spec.volumes[{index}].{'cloudInitNoCloud' if nocloud else 'cloudInitConfigDrive'}"
        user = _raw_or_base64(source, "userData", where, secrets)
        network = _raw_or_base64(source, "networkData", where, secrets)
        inline = {"userData", "userDataBase64"} & source.keys()
        if inline and user is not None and len(user) > USER_DATA_MAX_BYTES:
            raise DiskError(f"userdata exceeds {USER_DATA_MAX_BYTES} byte limit; use secretRef for "
                            "larger data", field=where)
        if {"networkData", "networkDataBase64"} & source.keys() and network is not None \
                and len(network) > NETWORK_DATA_MAX_BYTES:
            raise DiskError(f"networkdata exceeds {NETWORK_DATA_MAX_BYTES} byte limit; use "
                            "networkDataSecretRef for larger data", field=where)
        if user is None and network is None:
            raise DiskError("userDataBase64, userData, networkDataBase64 or networkData is required for a "
                            "cloud-init data source", field=where)
        base = f"{CLOUD_INIT_DIR}/{vmi.namespace}/{vmi.metadata.name}"
        # Go's json.Marshal: struct field order, no spaces; omitempty drops empty ones
        if nocloud:
            meta = {"instance-id": _instance_uuid(vmi), "local-hostname": hostname(vmi) or None}
            names, label, path = ("user-data", "meta-data", "network-config"), NOCLOUD_LABEL, f"{base}/noCloud.iso"
        else:
            meta = {"instance_id": f"{vmi.metadata.name}.{vmi.namespace}", "hostname": hostname(vmi) or None,
                    "uuid": _instance_uuid(vmi)}
            names = tuple(f"openstack/latest/{n}" for n in ("user_data", "meta_data.json", "network_data.json"))
            label, path = CONFIG_DRIVE_LABEL, f"{base}/configdrive.iso"
        files = {names[0]: user or b"",
                 names[1]: json.dumps({k: v for k, v in meta.items() if v is not None},
                                      separators=(",", ":")).encode()}
        if network:
            files[names[2]] = network
        return CloudInitImage(volume=volume.name, label=label, path=path, files=files)
    return None


def _source_element(vmi: VirtualMachineInstance, volume: Any, index: int, disk_type: str,
                    container_disk_format: str) -> tuple[list[etree._Element | None], str]:
    """The (source, backingStore) children and the driver type."""
    name = volume.name
    if disk_type == "lun":
        raise DiskError(f"device {name} is of type lun. Not compatible with a file based disk",
                        field=f"spec.volumes[{index}]")
    if volume.container_disk is not None:
        backing = element("backingStore", [("type", "file")],
                          element("format", [("type", container_disk_format)]),
                          element("source", [("file", f"{CONTAINER_DISKS_DIR}/disk_{index}.img")]))
        return [element("source", [("file", f"{EPHEMERAL_DISK_DIR}/disk-data/{name}/disk.qcow2")]), backing], "qcow2"
    if volume.cloud_init_no_cloud is not None or volume.cloud_init_config_drive is not None:
        iso = "noCloud.iso" if volume.cloud_init_no_cloud is not None else "configdrive.iso"
        return [element("source", [("file", f"{CLOUD_INIT_DIR}/{vmi.namespace}/{vmi.metadata.name}/{iso}")]),
                None], "raw"
    if (volume.model_extra or {}).get("emptyDisk") is not None:
        return [element("source", [("file", f"{EMPTY_DISKS_DIR}/{name}.qcow2")]), None], "qcow2"
    raise DiskError(unsupported_volumes_message(volume), field=f"spec.volumes[{index}]")


def unsupported_volumes_message(volume: Any) -> str:
    return (f"volume {volume.name!r} is a {_volume_kind(volume) or 'volume with no source'}, which netbind does "
            f"not convert; supported volume kinds: {', '.join(SUPPORTED_VOLUME_KINDS)}")


def domain_disks(vmi: VirtualMachineInstance, *, virtio_model: str, sev: bool = False,
                 container_disk_formats: Mapping[str, str] | None = None) -> list[etree._Element]:
    """The ``<disk>`` elements of ``spec.domain.devices.disks``, in order.

    ``container_disk_formats`` maps a containerDisk volume to its image format (virt-launcher reads it
    with qemu-img from the mounted image); ``qcow2`` when not given.
    """
    formats = container_disk_formats or {}
    volumes = {v.name: (i, v) for i, v in enumerate(vmi.spec.volumes or [])}
    statuses = ((getattr(vmi.status, "model_extra", None) or {}).get("volumeStatus") or []) if vmi.status else []
    namer = _Namer({s["name"]: s["target"] for s in statuses if isinstance(s, dict) and s.get("target")})
    devices = vmi.spec.domain.devices
    queues = None
    if (devices.model_extra or {}).get("blockMultiQueue"):
        from ._converter import vcpu_count
        queues = max(vcpu_count(vmi), 1)
    disks = []
    for position, disk in enumerate(devices.disks or []):
        name = disk.get("name", "")
        where = f"spec.domain.devices.disks[{position}]"
        device, target = _target_kind(disk)
        bus = target.get("bus") or "sata"  # the amd64 webhook default
        if bus not in ("virtio", "sata", "scsi", "usb"):
            raise DiskError(f"unsupported disk bus {bus!r}; expected virtio, sata, scsi or usb",
                            field=f"{where}.{device}.bus")
        dev, unit = namer.name(name, bus, where)
        if name not in volumes:
            if device == "cdrom":  # an empty tray
                raise DiskError("a cdrom without a volume (empty tray) is not converted by netbind",
                                field=where)
            raise DiskError(f"no matching volume with name {name} found", field=where)
        index, volume = volumes[name]
        sources, driver_type = _source_element(vmi, volume, index, device, formats.get(name, "qcow2"))
        cache = disk.get("cache") or None
        shareable = disk.get("shareable") is True and device == "disk"
        if shareable:
            cache = cache or "none"
            if cache != "none":
                raise DiskError(f"a sharable disk requires cache = none got: {cache}",
                                field=f"{where}.cache")
        if device == "cdrom":
            readonly = target.get("readonly", True) is not False
        else:
            readonly = device == "disk" and target.get("readonly") is True
        if disk.get("errorPolicy") not in (None, "stop", "ignore", "report", "enospace"):
            raise DiskError(f"error policy {disk['errorPolicy']} not recognized",
                            field=f"{where}.errorPolicy")
        address = None
        if bus == "scsi" and device != "cdrom":
            address = element("address", [("type", "drive"), ("controller", "0"), ("bus", "0"), ("unit", unit)])
        if device == "disk" and target.get("pciAddress"):
            raise DiskError("a disk pciAddress is not converted by netbind",
                            field=f"{where}.disk.pciAddress")
        driver = element("driver", [
            ("cache", cache), ("error_policy", disk.get("errorPolicy") or "stop"), ("io", disk.get("io") or None),
            ("name", "qemu"), ("type", driver_type),
            ("queues", queues if bus == "virtio" else None),
            # convert_v1_Disk_To_api_Disk sets unmap for every disk/lun; the volume's driver keeps it
            ("discard", "unmap" if device in ("disk", "lun") else None),
            ("iommu", "on" if sev and bus == "virtio" else None)])
        disks.append(element(
            "disk", [("device", device), ("type", "file"),
                     ("model", virtio_model if device == "disk" and bus == "virtio" else None)],
            sources[0],
            element("target", [("bus", bus), ("dev", dev),
                               ("tray", (target.get("tray") or "closed") if device == "cdrom" else None)]),
            element("serial", text=str(disk["serial"])) if disk.get("serial") else None,
            driver,
            element("readonly") if readonly else None,
            element("alias", [("name", f"ua-{name}")]),
            sources[1],
            element("boot", [("order", disk["bootOrder"])]) if disk.get("bootOrder") is not None else None,
            address,
            element("shareable") if shareable else None,
        ))
    return disks


# --- effectful: the ISO itself ----------------------------------------------------------------------


def iso_tool() -> str:
    """xorrisofs, the tool virt-launcher runs (Debian package ``xorriso``)."""
    found = shutil.which("xorrisofs")
    if not found:
        raise FileNotFoundError("xorrisofs not found: install the Debian package 'xorriso' (make deps)")
    return found


def write_iso(image: CloudInitImage, output: Path) -> None:
    """Write ``image`` to ``output`` as virt-launcher does (xorrisofs -volid LABEL -joliet -rock)."""
    with tempfile.TemporaryDirectory(prefix="nb-cidata-") as staging:
        root = Path(staging)
        for name, data in image.files.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        partial = output.with_name(output.name + ".staging")
        try:
            subprocess.run([iso_tool(), "-output", str(partial), "-volid", image.label, "-joliet", "-rock",
                            "-partition_cyl_align", "on", str(root)],
                           check=True, capture_output=True, timeout=60)
            partial.replace(output)
        finally:
            partial.unlink(missing_ok=True)


def describe(vmi: VirtualMachineInstance, secrets: Mapping[str, Mapping[str, bytes]] | None = None
             ) -> tuple[list[dict[str, str]], list[dict[str, str]], list[str]]:
    """For ``explain``: one row per converted disk (name, device, target, source), the problems
    (unsupported volume kinds, disks or cloud-init data that cannot be converted), each naming its
    field, and notes (a referenced Secret not among the manifests)."""
    notes: list[str] = []
    try:
        cloud_init_image(vmi, secrets)
    except MissingSecret as exc:
        notes.append(f"{exc}: virt-launcher reads it from the cluster")
    except DiskError as exc:
        return [], [{"type": "CloudInitData", "field": exc.field, "message": str(exc)}], notes
    problems = [{"type": "UnsupportedVolume", "field": f"spec.volumes[{i}]",
                 "message": unsupported_volumes_message(v)}
                for i, v in enumerate(vmi.spec.volumes or []) if _volume_kind(v) not in SUPPORTED_VOLUME_KINDS]
    if problems:
        return [], problems, notes
    try:
        converted = domain_disks(vmi, virtio_model="virtio")
    except DiskError as exc:
        return [], [{"type": "DiskNotConverted", "field": exc.field, "message": str(exc)}], notes
    rows = []
    for el in converted:
        target = el.find("target")
        rows.append({"name": (el.findtext("alias") or el.find("alias").get("name", ""))[len("ua-"):],
                     "device": el.get("device", ""), "target": f"{target.get('dev')} ({target.get('bus')})",
                     "source": el.find("source").get("file", "")})
    return rows, problems, notes
