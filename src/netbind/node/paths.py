"""Where the node runtime keeps its state (runtime dir) and its build cache (cache dir)."""
from __future__ import annotations

import fcntl
import os
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
