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
    that are older than ``retention``."""
    horizon = time.time() - retention
    for entry in base.iterdir():
        try:
            old = entry.stat().st_mtime < horizon
        except FileNotFoundError:
            continue
        if entry.is_dir() and entry != keep and old and _BUILD_DIR.fullmatch(entry.name):
            shutil.rmtree(entry, ignore_errors=True)


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
