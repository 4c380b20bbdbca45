"""containerDisk images from the local podman store: their disk file, extracted once into the cache.

A containerDisk image holds its disk as KubeVirt reads it (``pkg/container-disk.GetImage``): the
file the volume's ``containerDisk.path`` names, else the one entry under ``/disk/`` (none or
several is an error there too); virt-launcher then accepts a qcow2 without a backing file, or a
raw file (``pkg/os/disk.VerifyImage``). The image is never run: it is mounted read-only
(``podman image mount``), the file checked with ``qemu-img info`` where it lies and copied into
``<cache>/container-disks/<key>/`` (key: the image ID, plus the path when one is given), locked and
landed in one rename; VMs boot it through their own overlay, so the copy is never written. A
mark beside the builds names an image while it is mounted, so a mount that a ``kill -9`` left
behind is undone by the next extraction or by ``netbind down --all``.

``choose_disk`` and ``verify_disk`` are pure; ``StoreLookup`` and ``ensure_disk`` call podman.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from netbind.node import paths

DISK_DIR = "/disk"          # KubeVirt's DiskSourceFallbackPath
MAX_LINKS = 40              # symlinks followed inside the image before giving up (as the kernel does)
FORMATS = ("qcow2", "raw")
LAYOUT = ("a containerDisk image holds its disk as the one file under /disk/ (Containerfile: FROM scratch,"
          " ADD --chown=107:107 my.qcow2 /disk/), or the volume's containerDisk.path names it")


class OciDiskError(ValueError):
    """The image's disk cannot be used; the message names the image, the file and the fix."""


@dataclass(frozen=True)
class LocalDisk:
    image: str             # the reference the VMI names
    image_id: str
    inner: str             # the file in the image, e.g. /disk/disk.qcow2
    path: Path             # the extracted copy (never written)
    format: str
    built: bool            # extracted now (False: from the cache)

    def describe(self) -> str:
        return (f"{self.inner} ({self.format}) of the local image {self.image} (ID {self.image_id[:12]}),"
                f" extracted to {self.path}")


def choose_disk(entries: Sequence[str], image: str) -> str:
    """The name of the disk among the entries of the image's /disk/, by KubeVirt's rule: exactly one."""
    if not entries:
        raise OciDiskError(f"containerDisk image {image!r} has no file in {DISK_DIR}/: {LAYOUT}")
    if len(entries) > 1:
        shown = ", ".join(sorted(entries)[:5]) + (", ..." if len(entries) > 5 else "")
        raise OciDiskError(f"containerDisk image {image!r} has {len(entries)} files in {DISK_DIR}/ ({shown}), and"
                           " KubeVirt allows only one disk there: keep one, or name it with the volume's"
                           " containerDisk.path")
    return entries[0]


def verify_disk(info: dict, image: str, inner: str, file_size: int) -> str:
    """The disk's format if virt-launcher would boot it (qcow2 without a backing file, or raw).
    qemu-img takes any file for raw: one smaller than a sector (its size, as qemu-img rounds it up)
    cannot hold even a boot sector."""
    fmt = str(info.get("format", ""))
    where = f"containerDisk image {image!r}: {inner}"
    if fmt not in FORMATS:
        raise OciDiskError(f"{where} is not a disk image KubeVirt boots ({fmt or 'unknown'} format); convert it"
                           " (qemu-img convert -O qcow2) and rebuild the image")
    if fmt == "qcow2" and (info.get("backing-filename") or info.get("full-backing-filename")):
        raise OciDiskError(f"{where} is a qcow2 with a backing file ({info.get('backing-filename')}), which"
                           " KubeVirt refuses; flatten it (qemu-img convert -O qcow2) and rebuild the image")
    if fmt == "raw" and file_size < 512:
        raise OciDiskError(f"{where} is not a disk image ({file_size} bytes, less than one"
                           " sector); put a qcow2 or raw disk there and rebuild the image")
    return fmt


def resolve_in_root(root: Path, inner: str) -> Path:
    """``inner`` inside the image's root ``root``, its symlinks followed as if ``root`` were ``/``
    (as KubeVirt's safepath resolves them): nothing outside the image is reached."""
    parts = [p for p in inner.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            links += 1
            if links > MAX_LINKS:
                raise OciDiskError(f"{inner}: too many symbolic links in the image")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


class StoreLookup:
    """``lookup(ref)``: the ID of the image ``ref`` in the local podman store, or None (not there, or
    no podman here). Each reference is asked once."""

    def __init__(self, inspect: Callable[[str], dict | None] | None = None) -> None:
        self._inspect = inspect
        self._seen: dict[str, str | None] = {}

    def __call__(self, ref: str) -> str | None:
        if not ref:
            return None
        if ref not in self._seen:
            self._seen[ref] = self._ask(ref)
        return self._seen[ref]

    def _ask(self, ref: str) -> str | None:
        from netbind import _podman

        if self._inspect is None and _podman.unavailable():
            return None
        info = (self._inspect or _podman.image_inspect)(ref)
        return str(info["Id"]) if info and info.get("Id") else None


def cache_dir() -> Path:
    return paths.cache_dir() / "container-disks"


def cache_key(image_id: str, path: str | None) -> str:
    """The image ID's first 16 hex digits; with a custom ``path``, a hash of both."""
    image_id = image_id.removeprefix("sha256:")
    if not path:
        return image_id[:16]
    return hashlib.sha256(f"{image_id}\0{path}".encode()).hexdigest()[:16]


def _load(directory: Path, image: str) -> LocalDisk | None:
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        disk = directory / manifest["file"]
        found = LocalDisk(image, manifest["id"], manifest["inner"], disk, manifest["format"], False)
    except (OSError, ValueError, KeyError, TypeError):
        return None    # not there, or not ours: extracted again
    return found if disk.is_file() else None


MOUNT_MARK = ".mounted-"   # + the image ID: an extraction has (or is about to have) the image mounted


@contextmanager
def _mounted(image_id: str, image: str, base: Path) -> Iterator[Path]:
    """The image's root, mounted read-only by podman for the block (nothing runs). A mark in
    ``base`` (whose lock the caller holds) says so until it is unmounted: a ``kill -9`` in between
    leaves the mark, and ``release_stale_mounts`` unmounts what it names."""
    from netbind import _podman

    mark = base / (MOUNT_MARK + image_id.removeprefix("sha256:"))
    mark.write_text(image + "\n")   # before mounting: no moment has the image mounted and no mark
    try:
        root = Path(_podman.run("image", "mount", image_id, timeout=120).stdout.strip())
    except _podman.PodmanError as exc:
        mark.unlink(missing_ok=True)
        raise OciDiskError(f"containerDisk image {image!r} cannot be mounted to read its disk: {exc}") from None
    try:
        yield root
    finally:
        _podman.run("image", "unmount", image_id, check=False, timeout=120)
        mark.unlink(missing_ok=True)


def _release_marked(base: Path) -> list[str]:
    """Unmount the images the marks in ``base`` name (the caller holds its lock, so no extraction
    that made them is still running); returns their references."""
    from netbind import _podman

    released = []
    for mark in sorted(base.glob(MOUNT_MARK + "*")):
        image_id = mark.name.removeprefix(MOUNT_MARK)
        # podman counts mounts: this takes back the one the killed extraction made, not others'
        _podman.run("image", "unmount", image_id, check=False, timeout=120)
        released.append(mark.read_text().strip() or image_id)
        mark.unlink(missing_ok=True)
    return released


def release_stale_mounts(cache: Path | None = None) -> list[str]:
    """After a crash (``netbind down --all``): unmount the images an extraction killed mid-way left
    mounted; returns their references."""
    base = cache or cache_dir()
    if not base.is_dir() or not any(base.glob(MOUNT_MARK + "*")):
        return []
    with paths.locked(base):
        return _release_marked(base)


def _find_disk(root: Path, image: str, path: str | None) -> tuple[str, Path]:
    if path:
        inner = "/" + path.lstrip("/")
    else:
        directory = resolve_in_root(root, DISK_DIR)
        if not directory.is_dir():
            raise OciDiskError(f"containerDisk image {image!r} has no {DISK_DIR}/ directory: {LAYOUT}")
        inner = f"{DISK_DIR}/{choose_disk(sorted(os.listdir(directory)), image)}"
    found = resolve_in_root(root, inner)
    if not found.is_file():
        what = "does not exist" if not found.exists() and not found.is_symlink() else "is not a regular file"
        raise OciDiskError(f"containerDisk image {image!r}: {inner} {what}: {LAYOUT}")
    return inner, found


def _image_info(path: Path, image: str, inner: str) -> dict:
    from netbind.node import guest_disks

    try:
        return guest_disks.image_info(path)
    except guest_disks.GuestDiskError as exc:
        raise OciDiskError(f"containerDisk image {image!r}: {inner} is not a disk image: {exc}") from None


def ensure_disk(image: str, image_id: str, path: str | None = None, cache: Path | None = None,
                progress: Callable[[str], None] | None = None) -> LocalDisk:
    """The disk of the local image ``image`` (ID ``image_id``), extracted on first use."""
    base = cache or cache_dir()
    target = base / cache_key(image_id, path)
    found = _load(target, image)
    if found is not None:
        return found
    with paths.locked(base):
        found = _load(target, image)
        if found is not None:    # extracted by someone else while we waited
            return found
        _release_marked(base)   # what an extraction killed mid-way left mounted
        with paths.building(target) as work, _mounted(image_id, image, base) as root:
            inner, source = _find_disk(root, image, path)
            fmt = verify_disk(_image_info(source, image, inner), image, inner, source.stat().st_size)
            if progress is not None:
                progress(f"extracting {inner} of {image} ({source.stat().st_size / 1e6:.0f} MB) into {target}")
            name = Path(inner).name
            proc = subprocess.run(["cp", "--sparse=always", str(source), str(work / name)], capture_output=True,
                                  text=True, timeout=1800)
            if proc.returncode != 0:
                raise OciDiskError(f"containerDisk image {image!r}: copying {inner} failed: {proc.stderr.strip()}")
            os.chmod(work / name, 0o644)
            (work / "manifest.json").write_text(json.dumps(
                {"image": image, "id": image_id, "inner": inner, "file": name, "format": fmt}, indent=2) + "\n")
        paths.prune_builds(base, keep=target)
    return LocalDisk(image, image_id, inner, target / name, fmt, True)
