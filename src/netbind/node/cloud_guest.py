"""The reference cloud guest: Debian 12 with its cloud kernel, systemd, cloud-init and
systemd-networkd, as one bootable qcow2 disk built from Debian packages only.

It stands in for the user guide's Fedora containerDisk: a real network stack in the guest, which
applies cloud-init's NoCloud or ConfigDrive network config (rendered for systemd-networkd) and
restarts DHCP when the carrier comes back (KubeVirt's link-refresh after a migration). Its few own
files (``_cloud_guest_files``) report on the serial console in the tiny guest's protocol.

``ensure_cloud_guest()`` returns the cached disk, building it first when its inputs changed (the
kernel and cloud-init versions apt offers, the package list, our files). The build needs no loop
device and no mount: the root is bootstrapped into a directory, ``mkfs.ext4 -d`` makes the
filesystem from it, and the disk is assembled by hand: an MBR with one partition, GRUB's boot
sector and core image in the gap before it (what grub-install does on a disk it can open). Builds
are locked and land atomically, as the tiny guest's do.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from netbind.node import _cloud_guest_files, apt, paths

SUITE = "bookworm"
KERNEL_META_PACKAGE = "linux-image-cloud-amd64"
# What the guest is beyond minbase. Installed with apt inside the root (debootstrap's own resolver
# misses virtual packages, e.g. python3-cryptography's python3-cffi-backend-api-*).
PACKAGES = (KERNEL_META_PACKAGE, "systemd-sysv", "udev", "cloud-init", "iproute2", "busybox",
            "grub-pc-bin", "initramfs-tools", "zstd", "kmod", "e2fsprogs",
            # KubeVirt reads a guest's interfaces from its agent: a user's own copy of this disk
            # (which reports nothing on the console) shows its addresses that way. Debian's udev
            # rule starts it when the org.qemu.guest_agent.0 port appears: nothing to enable.
            "qemu-guest-agent")
# The initramfs needs only what finds the root disk (virtio_blk, or virtio_scsi for bus: scsi):
# 6 MB instead of 14 MB with MODULES=most, which is seconds of TCG time at every boot.
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod")
GRUB_MODULES = ("biosdisk", "part_msdos", "ext2", "normal", "linux", "search", "search_fs_uuid",
                "configfile", "echo")
# net.ifnames=0: the NIC is eth0, as in KubeVirt's cloud images and the user guide's networkData
KERNEL_CMDLINE = "ro console=ttyS0 net.ifnames=0 panic=-1"
FS_SIZE = 2 << 30
PARTITION_START = 2048          # sectors: 1 MiB, GRUB's core image lives in the gap before it
BUILDER_VERSION = 1


class CloudGuestBuildError(RuntimeError):
    """The cloud guest cannot be built; the message names the step and the fix."""


@dataclass(frozen=True)
class CloudGuestInputs:
    suite: str
    mirror: str
    kernel_version: str
    cloud_init_version: str
    files_sha256: str      # our files + package list + builder version

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CloudGuest:
    disk: Path             # qcow2, never written: VMs boot it through an overlay
    inputs: CloudGuestInputs
    built: bool
    manifest: dict

    def describe(self) -> str:
        return (f"netbind cloud guest (Debian 12, kernel {self.manifest.get('kernel_release', '?')},"
                f" cloud-init {self.inputs.cloud_init_version}, systemd-networkd)")


def cache_dir() -> Path:
    return paths.cache_dir() / "cloud-guest"


def _files_sha256() -> str:
    text = json.dumps([BUILDER_VERSION, PACKAGES, INITRAMFS_MODULES, GRUB_MODULES, KERNEL_CMDLINE,
                       sorted(_cloud_guest_files.FILES.items()), _cloud_guest_files.UNITS])
    return hashlib.sha256(text.encode()).hexdigest()


def resolve_inputs() -> CloudGuestInputs:
    try:
        records = apt.show(KERNEL_META_PACKAGE, "cloud-init")
    except apt.AptError as exc:
        raise CloudGuestBuildError(str(exc)) from None
    return CloudGuestInputs(SUITE, apt.mirror(), records[KERNEL_META_PACKAGE]["Version"],
                            records["cloud-init"]["Version"], _files_sha256())


def _load(directory: Path, built: bool) -> CloudGuest | None:
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return CloudGuest(directory / "disk.qcow2", CloudGuestInputs(**manifest["inputs"]), built, manifest)


def ensure_cloud_guest(cache: Path | None = None, progress=None) -> CloudGuest:
    """The cloud guest for the current inputs, built on first use (about 3 minutes; cached)."""
    cache = cache or cache_dir()
    inputs = apt.remembered(cache, CloudGuestInputs, files_sha256=_files_sha256())
    if inputs is not None:
        found = _load(cache / inputs.key(), built=False)
        if found is not None:
            return found
    try:
        inputs = resolve_inputs()
        apt.remember(cache, asdict(inputs))
    except CloudGuestBuildError:
        newest = sorted(cache.glob("*/manifest.json"), key=lambda p: p.stat().st_mtime) if cache.is_dir() else []
        if newest:   # offline: the last build serves
            found = _load(newest[-1].parent, built=False)
            if found is not None:
                return found
        raise
    target = cache / inputs.key()
    found = _load(target, built=False)
    if found is not None:
        return found
    with paths.locked(cache):
        found = _load(target, built=False)
        if found is not None:   # built by someone else while we waited
            return found
        if progress is not None:
            progress(f"building the cloud guest (Debian {SUITE}, about 3 minutes, once) into {target}")
        _build(inputs, target)
        paths.prune_builds(cache, keep=target)
    found = _load(target, built=True)
    assert found is not None
    return found


# -- the build ------------------------------------------------------------------------------------

def _run(argv: list[str], what: str, timeout: float = 1200, **kw) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    except FileNotFoundError:
        raise CloudGuestBuildError(f"{what}: {argv[0]} is not installed (make deps installs it)") from None
    except subprocess.TimeoutExpired:
        raise CloudGuestBuildError(f"{what}: no result within {timeout:g} s") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
        raise CloudGuestBuildError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _in_root(root: Path, script: str, what: str) -> None:
    """A shell script chrooted into the root, with /proc mounted in a private mount namespace (so
    the mount cannot outlive the step, whatever happens to it)."""
    _run(["unshare", "--mount", "--fork", "sh", "-ec",
          f'mount -t proc proc "$0/proc"; exec chroot "$0" env DEBIAN_FRONTEND=noninteractive LC_ALL=C sh -ec "$1"',
          str(root), script], what)


def _build(inputs: CloudGuestInputs, target: Path) -> None:
    started = time.monotonic()
    with paths.building(target) as work:
        root = work / "root"
        _run(["debootstrap", "--variant=minbase", SUITE, str(root), inputs.mirror],
             f"debootstrap {SUITE} from {inputs.mirror}")
        shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
        (root / "etc/apt/apt.conf.d/90netbind-no-recommends").write_text('APT::Install-Recommends "false";\n')
        (root / "etc/initramfs-tools/conf.d").mkdir(parents=True, exist_ok=True)
        (root / "etc/initramfs-tools/conf.d/netbind.conf").write_text("MODULES=list\nCOMPRESS=zstd\n")
        with open(root / "etc/initramfs-tools/modules", "a") as modules:
            modules.write("".join(f"{m}\n" for m in INITRAMFS_MODULES))
        _in_root(root, f"apt-get update -qq; apt-get install -y -qq {' '.join(PACKAGES)} >/dev/null",
                 "apt-get install in the guest root")
        kernel_release = _kernel_release(root)
        fs_uuid = str(uuid.uuid4())
        for rel, (mode, text) in _cloud_guest_files.FILES.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(mode)
        (root / "etc/fstab").write_text(f"UUID={fs_uuid} / ext4 errors=remount-ro 0 1\n")
        (root / "etc/hostname").write_text("localhost\n")
        (root / "boot/grub").mkdir(parents=True, exist_ok=True)
        (root / "boot/grub/grub.cfg").write_text(
            "set timeout=0\nmenuentry debian {\n"
            f"  search --no-floppy --fs-uuid --set=root {fs_uuid}\n"
            f"  linux /boot/vmlinuz-{kernel_release} root=UUID={fs_uuid} {KERNEL_CMDLINE}\n"
            f"  initrd /boot/initrd.img-{kernel_release}\n}}\n")
        _in_root(root, "systemctl enable -q systemd-networkd " + " ".join(_cloud_guest_files.UNITS)
                 + f"; grub-mkimage -O i386-pc -o /tmp/core.img -p '(hd0,msdos1)/boot/grub' {' '.join(GRUB_MODULES)}"
                 + "; apt-get clean; rm -rf /var/lib/apt/lists/* /etc/resolv.conf; : > /etc/machine-id",
                 "configuring the guest root")
        core = (root / "tmp/core.img").read_bytes()
        boot_sector = (root / "usr/lib/grub/i386-pc/boot.img").read_bytes()
        (root / "tmp/core.img").unlink()
        fs = work / "root.ext4"
        _run(["mkfs.ext4", "-q", "-F", "-d", str(root), "-U", fs_uuid, "-L", "nb-root", str(fs), f"{FS_SIZE // 1024}k"],
             "mkfs.ext4 of the guest root")
        shutil.rmtree(root)
        raw = work / "disk.raw"
        write_disk(raw, fs, boot_sector, core)
        fs.unlink()
        _run(["qemu-img", "convert", "-c", "-O", "qcow2", str(raw), str(work / "disk.qcow2")], "qemu-img convert")
        raw.unlink()
        manifest = {"inputs": asdict(inputs), "kernel_release": kernel_release, "root_uuid": fs_uuid,
                    "build_seconds": round(time.monotonic() - started, 1),
                    "disk_bytes": (work / "disk.qcow2").stat().st_size}
        os.chmod(work / "disk.qcow2", 0o644)
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _kernel_release(root: Path) -> str:
    releases = sorted(p.name for p in (root / "lib/modules").iterdir()) if (root / "lib/modules").is_dir() else []
    if len(releases) != 1:
        raise CloudGuestBuildError(f"expected one kernel in the guest root, found {releases or 'none'}")
    return releases[0]


def mbr(boot_sector: bytes, start: int, sectors: int) -> bytes:
    """Sector 0: GRUB's boot code (its first 440 bytes, which jump to the core image in sector 1),
    one active Linux partition from ``start`` for ``sectors``, the 0x55AA signature. CHS fields say
    "use LBA" (0xFE 0xFF 0xFF), as partitioners write them past 8 GiB."""
    if len(boot_sector) < 440:
        raise ValueError("the boot sector image is shorter than 440 bytes")
    sector = bytearray(512)
    sector[:440] = boot_sector[:440]
    sector[446:462] = struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff", start, sectors)
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def write_disk(raw: Path, filesystem: Path, boot_sector: bytes, core: bytes) -> None:
    """A raw, sparse disk: MBR, GRUB's core image from sector 1, the filesystem at PARTITION_START."""
    if len(core) > (PARTITION_START - 1) * 512:
        raise CloudGuestBuildError(f"GRUB's core image ({len(core)} bytes) does not fit before the partition")
    size = filesystem.stat().st_size
    sectors = -(-size // 512)
    with open(raw, "wb") as disk, open(filesystem, "rb") as fs:
        disk.truncate((PARTITION_START + sectors) * 512)
        disk.write(mbr(boot_sector, PARTITION_START, sectors))
        disk.write(core)
        disk.seek(PARTITION_START * 512)
        while True:
            block = fs.read(1 << 20)
            if not block:
                break
            if block.count(0) == len(block):
                disk.seek(len(block), os.SEEK_CUR)   # keep the holes
            else:
                disk.write(block)

