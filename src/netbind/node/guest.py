"""The tiny guest: Debian's kernel and a busybox initramfs, built from Debian packages only.

``ensure_guest()`` returns a cached image, building it first when its inputs changed (the kernel
package that ``linux-image-amd64`` points at, the ``busybox-static`` package, our init programs).
Both packages are downloaded as .debs and unpacked, never installed: busybox-static conflicts
with the host's dynamic ``busybox``, and the guest should not depend on what the host has. Builds are
serialized by a lock file and land atomically (build in a temporary directory, then rename), so
concurrent ``netbind up`` runs and test sessions share one image. The kernel is booted as the
uncompressed ELF ``vmlinux`` (PVH entry): under TCG that saves ~3.5 s per boot over ``vmlinuz``.
"""
from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
import subprocess
import tarfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from netbind.node import _cpio, _guest_init, apt, paths
from netbind.node.seed import NoCloudSeed, seed_initrd

KERNEL_META_PACKAGE = "linux-image-amd64"
BUSYBOX_PACKAGE = "busybox-static"
BUILDER_VERSION = 2
DEFAULT_CMDLINE = "console=ttyS0 panic=-1 quiet"
_XZ_MAGIC = b"\xfd7zXZ\x00"


class GuestBuildError(RuntimeError):
    """The guest image cannot be built; the message says what is missing and how to get it."""


@dataclass(frozen=True)
class GuestInputs:
    kernel_package: str
    kernel_version: str
    busybox_version: str
    programs_sha256: str   # init + DHCP event script + module list + builder version

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GuestImage:
    directory: Path
    kernel: Path
    initrd: Path
    inputs: GuestInputs
    built: bool             # True when this call built it (False: cache hit)
    note: str = ""          # e.g. why a cached image was used without checking inputs

    def cmdline(self, *extra: str) -> str:
        return " ".join((DEFAULT_CMDLINE, *extra))

    def initrd_with_seed(self, seed: NoCloudSeed, destination: Path) -> Path:
        """The base initramfs with the NoCloud seed segment appended (the kernel unpacks both)."""
        segment = seed_initrd(seed)  # compile first: bad network-config fails before any write
        destination.parent.mkdir(parents=True, exist_ok=True)
        tmp = destination.with_name(destination.name + ".tmp")
        with open(self.initrd, "rb") as base, open(tmp, "wb") as out:
            shutil.copyfileobj(base, out)
            out.write(segment)
        tmp.replace(destination)
        return destination


def guest_cache_dir() -> Path:
    return paths.cache_dir() / "guest"


def _programs_sha256() -> str:
    text = json.dumps([BUILDER_VERSION, _guest_init.init_script(), _guest_init.DHCP_EVENT,
                       list(_guest_init.MODULES)])
    return hashlib.sha256(text.encode()).hexdigest()


def resolve_inputs() -> GuestInputs:
    """The kernel that linux-image-amd64 depends on now, and the busybox-static candidate."""
    try:
        records = apt.show(KERNEL_META_PACKAGE, BUSYBOX_PACKAGE)
    except apt.AptError as exc:
        raise GuestBuildError(str(exc)) from None
    meta, busybox = records[KERNEL_META_PACKAGE], records[BUSYBOX_PACKAGE]
    for dep in meta.get("Depends", "").split(","):
        name, _, rest = dep.strip().partition(" ")
        if name.startswith("linux-image-") and "(=" in rest:
            return GuestInputs(name, rest.strip("() ="), busybox["Version"], _programs_sha256())
    raise GuestBuildError(f"apt-cache show {KERNEL_META_PACKAGE}: no linux-image dependency found")


def _image(directory: Path, inputs: GuestInputs, built: bool, note: str = "") -> GuestImage:
    return GuestImage(directory, directory / "vmlinux", directory / "initramfs.gz", inputs, built, note)


def _complete(directory: Path) -> bool:
    return (directory / "manifest.json").is_file()


def ensure_guest(inputs: GuestInputs | None = None, cache: Path | None = None) -> GuestImage:
    """The guest image for the current inputs, built on first use."""
    cache = cache or guest_cache_dir()
    if inputs is None:
        inputs = apt.remembered(cache, GuestInputs, programs_sha256=_programs_sha256())
        if inputs is not None and _complete(cache / inputs.key()):
            return _image(cache / inputs.key(), inputs, built=False)
        inputs = None
    if inputs is None:
        try:
            inputs = resolve_inputs()
        except GuestBuildError as exc:
            newest = _newest_build(cache)
            if newest is None:
                raise
            return replace(newest, note=f"inputs not checked: {exc}")
        apt.remember(cache, asdict(inputs))
    target = cache / inputs.key()
    if _complete(target):
        return _image(target, inputs, built=False)
    with paths.locked(cache):
        if _complete(target):  # someone else built it while we waited
            return _image(target, inputs, built=False)
        _build(inputs, target)
        paths.prune_builds(cache, keep=target)
    return _image(target, inputs, built=True)


def _newest_build(cache: Path) -> GuestImage | None:
    manifests = sorted(cache.glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
    if not manifests:
        return None
    data = json.loads(manifests[-1].read_text())
    return _image(manifests[-1].parent, GuestInputs(**data["inputs"]), built=False)


def _build(inputs: GuestInputs, target: Path) -> None:
    started = time.monotonic()
    with paths.building(target) as work:
        deb = _download(f"{inputs.kernel_package}={inputs.kernel_version}", work)
        vmlinuz, modules = _extract_kernel(deb)
        deb.unlink()
        busybox_deb = _download(f"{BUSYBOX_PACKAGE}={inputs.busybox_version}", work)
        busybox = _extract_busybox(busybox_deb)
        busybox_deb.unlink()
        kver = inputs.kernel_package.removeprefix("linux-image-")
        (work / "vmlinuz").write_bytes(vmlinuz)
        kernel = _decompress_vmlinux(vmlinuz)
        (work / "vmlinux").write_bytes(kernel if kernel is not None else vmlinuz)
        (work / "initramfs.gz").write_bytes(_initramfs(busybox, modules))
        manifest = {"inputs": asdict(inputs), "kernel_release": kver,
                    "kernel_format": "elf-vmlinux" if kernel is not None else "bzImage",
                    "build_seconds": round(time.monotonic() - started, 2)}
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _download(spec: str, work: Path) -> Path:
    os.chmod(work, 0o777)  # apt downloads as the unprivileged _apt user
    proc = subprocess.run(["apt-get", "download", "-q", spec], cwd=work, capture_output=True, text=True)
    debs = list(work.glob(spec.split("=")[0] + "_*.deb"))
    if proc.returncode != 0 or not debs:
        raise GuestBuildError(f"apt-get download {spec} failed: {proc.stderr.strip()[-400:]}"
                              " (run apt-get update, check the Debian mirror)")
    return debs[0]


def _extract_kernel(deb: Path) -> tuple[bytes, dict[str, bytes]]:
    wanted = {path: name for name, path in _guest_init.MODULES}
    vmlinuz = b""
    modules: dict[str, bytes] = {}
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name.startswith("boot/vmlinuz-") and member.isfile():
                vmlinuz = tar.extractfile(member).read()  # type: ignore[union-attr]
            elif name.startswith("lib/modules/") and "/kernel/" in name:
                rel = name.split("/kernel/", 1)[1]
                if rel in wanted and member.isfile():
                    modules[wanted[rel]] = tar.extractfile(member).read()  # type: ignore[union-attr]
    proc.stdout.close()
    if proc.wait() != 0 or not vmlinuz:
        raise GuestBuildError(f"{deb.name}: no boot/vmlinuz-* inside (is it a kernel image package?)")
    missing = [name for name, _ in _guest_init.MODULES if name not in modules]
    if missing:
        raise GuestBuildError(f"{deb.name}: kernel modules not found: {', '.join(missing)}"
                              " (the Debian kernel changed its layout; update _guest_init.MODULES)")
    return vmlinuz, modules


def _extract_busybox(deb: Path) -> bytes:
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    binary = b""
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            if member.name.removeprefix("./") == "bin/busybox" and member.isfile():
                binary = tar.extractfile(member).read()  # type: ignore[union-attr]
    proc.stdout.close()
    if proc.wait() != 0 or not binary:
        raise GuestBuildError(f"{deb.name}: no bin/busybox inside")
    if b"ld-linux" in binary[:1 << 16]:  # a dynamic busybox would need a libc in the guest
        raise GuestBuildError(f"{deb.name}: bin/busybox is dynamically linked")
    return binary


def _decompress_vmlinux(vmlinuz: bytes) -> bytes | None:
    """The ELF inside Debian's xz bzImage, or None (then the bzImage is booted, ~3.5 s slower)."""
    start = vmlinuz.find(_XZ_MAGIC)
    if start < 0:
        return None
    try:
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(vmlinuz[start:])
    except lzma.LZMAError:
        return None
    return elf if elf[:4] == b"\x7fELF" else None


def _initramfs(busybox: bytes, modules: dict[str, bytes]) -> bytes:
    entries = [_cpio.directory(d) for d in ("bin", "dev", "proc", "sys", "run", "tmp", "etc", "lib", "lib/modules")]
    entries.append(_cpio.file("bin/busybox", busybox, 0o755))
    entries.append(_cpio.file("bin/nb-dhcp-event", _guest_init.DHCP_EVENT.encode(), 0o755))
    entries += [_cpio.file(f"lib/modules/{name}.ko", modules[name]) for name, _ in _guest_init.MODULES]
    entries.append(_cpio.file("init", _guest_init.init_script().encode(), 0o755))
    return _cpio.gzipped(entries)


@dataclass(frozen=True)
class Report:
    """One ``NB: WORD key=value ...`` line of the guest's serial console."""
    word: str
    fields: dict[str, str]


def parse_reports(console: str) -> list[Report]:
    """The reports in the complete lines of ``console``: a last line without its newline may be
    half written (a PROBE without its ``ok=``), so it waits for the next read."""
    reports = []
    for line in console[:console.rfind("\n") + 1].splitlines():
        _, marker, rest = line.partition("NB: ")
        if not marker or not rest.strip():
            continue
        word, *pairs = rest.split()
        reports.append(Report(word, dict(p.split("=", 1) for p in pairs if "=" in p)))
    return reports


class ConsoleFollower:
    """A serial console file as it grows: each ``poll`` reads only what was appended, and reports
    are parsed from the complete lines it brought (a cloud guest's console reaches ~100 KB;
    waiting loops poll it every 10 ms)."""

    def __init__(self, path: Path):
        self.path = path
        self.reports: list[Report] = []
        self._lines: list[str] = []
        self._offset = 0
        self._partial = b""

    @property
    def text(self) -> str:
        """All read so far, the unfinished last line included (a login prompt ends without one)."""
        return "".join(self._lines) + self._partial.decode(errors="replace")

    def poll(self) -> bool:
        """Read what was appended; True when there was something."""
        try:
            with open(self.path, "rb") as console:
                console.seek(self._offset)
                data = console.read()
        except FileNotFoundError:
            return False
        if not data:
            return False
        self._offset += len(data)
        data = self._partial + data
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]
        if end:
            lines = data[:end].decode(errors="replace")
            self._lines.append(lines)
            self.reports += parse_reports(lines)
        return True
