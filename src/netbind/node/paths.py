"""Where the node runtime keeps its state (runtime dir) and its build cache (cache dir)."""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

DEFAULT_RUNTIME_DIR = Path("/run/netbind")
DEFAULT_CACHE_DIR = Path("/var/cache/netbind")


def runtime_dir() -> Path:
    """Per-boot state: one sub-directory per pod sandbox, the node namespace's record."""
    return Path(os.environ.get("NETBIND_RUNTIME_DIR") or DEFAULT_RUNTIME_DIR)


def cache_dir() -> Path:
    """Things worth keeping across boots: the guest image, libvirt's QEMU capabilities."""
    return Path(os.environ.get("NETBIND_CACHE_DIR") or DEFAULT_CACHE_DIR)


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on ``directory`` (its ``.lock`` file) for the block, across processes."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# A build another netbind version (another checkout, a running VM) may still use is kept this long.
BUILD_RETENTION_SECONDS = 24 * 3600
_BUILD_DIR = re.compile(r"[0-9a-f]{16}|\.build-.*")


def prune_builds(base: Path, keep: Path, retention: float = BUILD_RETENTION_SECONDS) -> None:
    """Remove cached builds (hash-named directories, abandoned ``.build-*``) other than ``keep``
    that are older than ``retention`` and that no process holds a file of open or mapped (a
    running VM's disk or a running libvirtd's binaries: its migration would need them again)."""
    horizon = time.time() - retention
    candidates = []
    for entry in base.iterdir():
        try:
            old = entry.stat().st_mtime < horizon
        except FileNotFoundError:
            continue
        if entry.is_dir() and entry != keep and old and _BUILD_DIR.fullmatch(entry.name):
            candidates.append(entry)
    if not candidates:
        return
    held = files_in_use()
    for entry in candidates:
        prefix = f"{entry.resolve()}/"
        if not any(path.startswith(prefix) for path in held):
            shutil.rmtree(entry, ignore_errors=True)


def files_in_use() -> set[str]:
    """The paths of the files the processes we can see hold open (``/proc/PID/fd``), mapped
    (``/proc/PID/maps``: executables and libraries) or name as an argument (``/proc/PID/cmdline``:
    QEMU reads a ``-kernel`` and its ``-initrd`` at start and closes them, but a migration target
    started from the same command line needs them again)."""
    held: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            with open(proc / "cmdline", "rb") as cmdline:
                held.update(arg for arg in cmdline.read().decode(errors="replace").split("\0")
                            if arg.startswith("/"))
            for fd in os.scandir(proc / "fd"):
                try:
                    held.add(os.readlink(fd.path))
                except OSError:
                    pass
            with open(proc / "maps") as maps:
                for line in maps:
                    fields = line.split(None, 5)   # address perms offset dev inode [path]
                    if len(fields) == 6 and fields[5].startswith("/"):
                        held.add(fields[5].rstrip("\n"))
        except OSError:   # gone meanwhile, or not ours to read
            continue
    return held


@contextmanager
def building(target: Path) -> Iterator[Path]:
    """A fresh work directory beside ``target`` for a build. When the block ends normally the work
    directory replaces ``target`` in one rename (readers see the old build or the new one, never
    half of one); when it raises, the work directory is removed. Write the build's completeness
    marker (its manifest) last, inside the block."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        yield work
        os.chmod(work, 0o755)   # QEMU and passt run as libvirt-qemu: builds must be readable by it
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
