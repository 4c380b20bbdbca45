"""Where the node runtime keeps its state (runtime dir) and its build cache (cache dir)."""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_RUNTIME_DIR = Path("/run/netbind")
DEFAULT_CACHE_DIR = Path("/var/cache/netbind")


def runtime_dir() -> Path:
    """Per-boot state: one sub-directory per pod sandbox, the node namespace's record."""
    return Path(os.environ.get("NETBIND_RUNTIME_DIR") or DEFAULT_RUNTIME_DIR)


def cache_dir() -> Path:
    """Things worth keeping across boots: the guest image, libvirt's QEMU capabilities."""
    return Path(os.environ.get("NETBIND_CACHE_DIR") or DEFAULT_CACHE_DIR)
