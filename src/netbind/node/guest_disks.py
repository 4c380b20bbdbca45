"""The VMI's disks, put where the domain names them, so a local pod boots the user's disk as
virt-launcher does.

KubeVirt's domain (``netbind.launcher.disks``) names, for a containerDisk, a qcow2 overlay in
``/var/run/kubevirt-ephemeral-disks/disk-data/<volume>/disk.qcow2`` on the image's disk at
``/var/run/kubevirt/container-disks/disk_<index>.img``; for cloud-init, an ISO under
``.../cloud-init-data/<namespace>/<name>/``; for an emptyDisk, a sparse qcow2 under
``/var/run/libvirt/empty-disks``. Those directories are private to each pod's libvirtd (its
``MOUNTS``), so the files are made in the pod's host directories: the image's disk is a symlink
to the local file (the cloud guest in the cache, or the user's own disk), never written; the
overlay takes every write, as in KubeVirt.

``plan()`` is pure (what goes where); ``place()`` makes the files. ``PendingIso`` writes the
cloud-init ISO ahead, as soon as its content is final (after PreCloudInitIso).
"""
from __future__ import annotations

import json
import os
import atexit
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from lxml import etree

from netbind.launcher import disks as disksmod

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)


class GuestDiskError(RuntimeError):
    """A disk cannot be made; the message names the volume or file and the fix."""


@dataclass(frozen=True)
class Overlay:
    volume: str
    path: str            # in the pod
    backing: str         # in the pod: the image's disk
    base: Path           # on the host: what the backing symlink points at
    base_format: str
    size: int            # the base's virtual size


@dataclass(frozen=True)
class EmptyDisk:
    volume: str
    path: str
    size: int


@dataclass(frozen=True)
class Iso:
    volume: str
    path: str
    image: disksmod.CloudInitImage


@dataclass(frozen=True)
class DiskPlan:
    overlays: tuple[Overlay, ...]
    empty: tuple[EmptyDisk, ...]
    isos: tuple[Iso, ...]
    domain_xml: str      # with each backing store's format as the local base has it

    def to_json(self) -> dict:
        """What a migration target needs to lay out the same disks (the VM's state keeps it)."""
        return {"overlays": [{"volume": o.volume, "path": o.path, "backing": o.backing, "base": str(o.base),
                              "baseFormat": o.base_format, "size": o.size} for o in self.overlays],
                "empty": [{"volume": e.volume, "path": e.path, "size": e.size} for e in self.empty],
                "isos": [{"volume": i.volume, "path": i.path} for i in self.isos]}

    def describe(self) -> list[str]:
        notes = [f"disk {o.volume}: overlay {o.path} on {o.backing} -> {o.base} ({o.base_format},"
                 " never written)" for o in self.overlays]
        notes += [f"disk {e.volume}: emptyDisk {e.path} ({e.size} bytes, sparse)" for e in self.empty]
        notes += [f"disk {i.volume}: {i.image.label} ISO {i.path} ({', '.join(i.image.files)})" for i in self.isos]
        return notes


def image_info(path: Path) -> dict:
    """qemu-img's view of a disk file (format, virtual-size)."""
    try:
        proc = subprocess.run(["qemu-img", "info", "--output=json", str(path)], capture_output=True, text=True,
                              timeout=60)
    except FileNotFoundError:
        raise GuestDiskError("qemu-img is not installed (Debian: apt-get install qemu-utils; make deps"
                             " installs it)") from None
    if proc.returncode != 0:
        raise GuestDiskError(f"{path}: not a disk image qemu-img can read: {proc.stderr.strip()[-300:]}")
    return json.loads(proc.stdout)


def _allows(st: os.stat_result, uid: int, gid: int, bits: int) -> bool:
    """Does the mode of ``st`` give ``bits`` (4 read, 1 search) to ``uid``/``gid`` (pure)?"""
    shift = 6 if st.st_uid == uid else 3 if st.st_gid == gid else 0
    return (st.st_mode >> shift) & bits == bits


def check_base(path: Path, qemu_ids: tuple[int, int] | None, info: Callable[[Path], dict] = image_info) -> dict:
    """A disk standing in for a containerDisk must be one QEMU can open: readable by the user QEMU
    runs as (``qemu_ids``; None: root) through every directory above it, and a disk image. Raw is
    qemu-img's answer for any file at all, so a raw one must at least carry a boot sector. Returns
    qemu-img's facts (what ``plan`` needs of it)."""
    path = path.resolve()
    if qemu_ids is not None:
        uid, gid = qemu_ids
        for directory in reversed(path.parents):
            if not _allows(directory.stat(), uid, gid, 1):
                raise GuestDiskError(f"{path}: QEMU runs as uid {uid} here and cannot enter {directory};"
                                     f" chmod o+x {directory}, or put the disk where QEMU can read it")
        if not _allows(path.stat(), uid, gid, 4):
            raise GuestDiskError(f"{path}: QEMU runs as uid {uid} here and cannot read it; chmod o+r {path}")
    facts = info(path)
    if facts.get("format") == "raw":
        with open(path, "rb") as disk:
            sector = disk.read(512)
        if len(sector) < 512 or sector[510:512] != b"\x55\xaa":
            raise GuestDiskError(f"{path}: not a disk image: qemu-img reads it as raw data, and it has no"
                                 " boot sector (MBR or GPT); give a qcow2 or raw disk image, e.g. a cloud"
                                 " image as downloaded")
    return facts


def check_network_config(vmi, image: disksmod.CloudInitImage | None) -> None:
    """Refuse network data cloud-init would not apply. KubeVirt copies it into the ISO unread, and
    the guest's cloud-init then ignores it (falling back to DHCP on the first NIC, or to nothing),
    which is a VM that boots but never gets the network its manifest asks for."""
    if image is None:
        return
    index = next(i for i, v in enumerate(vmi.spec.volumes or []) if v.name == image.volume)
    nocloud = image.label == disksmod.NOCLOUD_LABEL
    name = "network-config" if nocloud else "openstack/latest/network_data.json"
    data = image.files.get(name)
    if data is None:
        return
    where = f"spec.volumes[{index}].{'cloudInitNoCloud' if nocloud else 'cloudInitConfigDrive'}.networkData"
    fix = ("cloud-init in the guest would not apply it; give netplan-style YAML, e.g. version: 2,"
           " ethernets: {eth0: {dhcp4: true}}" if nocloud else
           "cloud-init in the guest would not apply it; give OpenStack network_data JSON (links, networks)")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise GuestDiskError(f"{where}: not UTF-8 text; {fix}") from None
    if nocloud:
        import yaml

        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            raise GuestDiskError(f"{where}: not YAML{at} ({getattr(exc, 'problem', None) or 'syntax'}); {fix}") from None
        if isinstance(config, dict) and isinstance(config.get("network"), dict):
            config = config["network"]     # cloud-init also takes the config under a network: key
        if not isinstance(config, dict):
            raise GuestDiskError(f"{where}: a {type(config).__name__}, not a mapping; {fix}")
        if config.get("version") not in (1, 2):
            raise GuestDiskError(f"{where}: version {config.get('version')!r}, cloud-init knows 1 and 2; {fix}")
        for key in ("ethernets", "bonds", "bridges", "vlans"):
            if key in config and not isinstance(config[key], dict):
                raise GuestDiskError(f"{where}: {key} is a {type(config[key]).__name__}, not a mapping of"
                                     f" interface names; {fix}")
    else:
        try:
            config = json.loads(text)
        except ValueError as exc:
            raise GuestDiskError(f"{where}: not JSON ({exc}); {fix}") from None
        if not isinstance(config, dict):
            raise GuestDiskError(f"{where}: a JSON {type(config).__name__}, not an object; {fix}")


def _capacity(quantity: str | None) -> int:
    from netbind.api.quantity import parse_quantity

    return int(parse_quantity(quantity or "1Gi"))


def plan(vmi, domain_xml: str, bases: Mapping[str, Path], cloud_init: disksmod.CloudInitImage | None,
         info: Callable[[Path], dict] = image_info) -> DiskPlan:
    """What each ``<disk>`` of the domain needs. ``bases`` maps a containerDisk volume to the local
    disk file standing in for its image."""
    root = etree.fromstring(domain_xml.encode(), _PARSER)
    volumes = {v.name: v for v in vmi.spec.volumes or []}
    overlays, empty, isos = [], [], []
    for disk in root.findall("devices/disk"):
        alias = disk.find("alias")
        name = alias.get("name", "").removeprefix("ua-") if alias is not None else ""
        source = disk.find("source")
        volume = volumes.get(name)
        if volume is None or source is None:
            continue
        if volume.container_disk is not None:
            base = bases.get(name)
            if base is None:
                raise GuestDiskError(f"containerDisk volume {name!r} has no local disk (image map)")
            facts = info(base)
            backing = disk.find("backingStore")
            backing_source = backing.find("source") if backing is not None else None
            if backing_source is None:
                raise GuestDiskError(f"disk {name!r}: the domain has no backing store for the containerDisk")
            fmt = backing.find("format")
            if fmt is not None:
                fmt.set("type", facts["format"])
            overlays.append(Overlay(name, source.get("file"), backing_source.get("file"), base, facts["format"],
                                    int(facts["virtual-size"])))
        elif (volume.model_extra or {}).get("emptyDisk") is not None:
            empty.append(EmptyDisk(name, source.get("file"),
                                   _capacity((volume.model_extra or {})["emptyDisk"].get("capacity"))))
        elif cloud_init is not None and cloud_init.volume == name:
            isos.append(Iso(name, source.get("file"), cloud_init))
    return DiskPlan(tuple(overlays), tuple(empty), tuple(isos), etree.tostring(root, encoding="unicode"))


def _qemu_img(*args: str, what: str) -> None:
    proc = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise GuestDiskError(f"{what}: qemu-img {args[0]} failed: {proc.stderr.strip()[-300:]}")


class PendingIso:
    """A cloud-init ISO being written on a thread, into a directory of its own outside the pod.

    xorrisofs takes ~0.1 s for a few files, almost all of it a fixed wait in its write loop, so up
    starts it once the content is final and lets it run beside the domain's definition; ``place``
    takes the file. Whatever happens to up, the directory goes: with ``take``, with ``discard``
    or at the process's exit."""

    def __init__(self, image: disksmod.CloudInitImage):
        self.image = image
        self._dir = Path(tempfile.mkdtemp(prefix="nb-cidata-"))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write, name=f"nb-iso-{image.volume}")
        atexit.register(self.discard)
        self._thread.start()

    def _write(self) -> None:
        try:
            disksmod.write_iso(self.image, self._dir / "cidata.iso")
        except BaseException as exc:   # handed to take(), on the caller's thread
            self._error = exc

    def take(self, target: Path) -> None:
        """Move the finished ISO to ``target``; xorrisofs's failure is raised here."""
        self._thread.join()
        try:
            if self._error is not None:
                raise self._error
            shutil.move(str(self._dir / "cidata.iso"), target)   # /tmp may be another filesystem
        finally:
            self.discard()

    def discard(self) -> None:
        self._thread.join()
        shutil.rmtree(self._dir, ignore_errors=True)
        atexit.unregister(self.discard)


def place(disk_plan: DiskPlan, host_path: Callable[[str], Path],
          written: Mapping[str, PendingIso] | None = None) -> None:
    """Make the planned files in the pod's directories (``host_path`` maps a pod path to the host).
    They live in the pod's directory, so the pod's teardown removes them. ``written``: ISOs
    started ahead, by volume (used when their content is the planned one)."""
    for overlay in disk_plan.overlays:
        link = host_path(overlay.backing)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(overlay.base.resolve())
        target = host_path(overlay.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # -u: the backing path is the pod's (as virt-launcher writes it), which the host cannot open
        _qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", overlay.backing, "-F", overlay.base_format,
                  str(target), str(overlay.size), what=f"the overlay of {overlay.volume}")
    for disk in disk_plan.empty:
        target = host_path(disk.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        _qemu_img("create", "-q", "-f", "qcow2", str(target), str(disk.size), what=f"emptyDisk {disk.volume}")
    for iso in disk_plan.isos:
        target = host_path(iso.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        pending = (written or {}).get(iso.volume)
        if pending is not None and pending.image == iso.image:
            pending.take(target)
        else:
            disksmod.write_iso(iso.image, target)
        os.chmod(target, 0o644)


def place_for_migration(disks: dict, source_host_path: Callable[[str], Path],
                        target_host_path: Callable[[str], Path]) -> None:
    """The target pod's disks before a migration, as virt-launcher lays them out there: a fresh
    overlay on the same local base for each containerDisk and an empty emptyDisk (libvirt copies
    what the source wrote into them: VIR_MIGRATE_NON_SHARED_INC over NBD), and the source's
    cloud-init ISO (its contents were decided at the first boot, after PreCloudInitIso)."""
    plan = DiskPlan(tuple(Overlay(o["volume"], o["path"], o["backing"], Path(o["base"]), o["baseFormat"], o["size"])
                          for o in disks.get("overlays", [])),
                    tuple(EmptyDisk(e["volume"], e["path"], e["size"]) for e in disks.get("empty", [])),
                    (), "")
    for overlay in plan.overlays:
        if not overlay.base.exists():
            raise GuestDiskError(f"disk {overlay.volume}: its base {overlay.base} is gone (cache pruned?);"
                                 " the target cannot open the same disk")
    place(plan, target_host_path)
    for iso in disks.get("isos", []):
        target = target_host_path(iso["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        # contents only: the source libvirt's DAC xattrs must not come along
        shutil.copyfile(source_host_path(iso["path"]), target)
        os.chmod(target, 0o644)
