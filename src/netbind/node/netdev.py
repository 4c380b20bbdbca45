"""The netlink adapter: namespaces and links through iproute2 (``ip``).

iproute2 rather than pyroute2 here: each call is a few milliseconds, it adds no import cost to
the CLI, and what we run is exactly what a user would type to inspect or repair it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

NETNS_DIR = Path("/run/netns")


class NetdevError(RuntimeError):
    """An ``ip`` command failed; the message has the command and its error."""


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *(("-n", netns) if netns else ()), *args]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NetdevError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def add_netns(name: str) -> None:
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)


def netns_pids(name: str) -> list[int]:
    proc = ip("netns", "pids", name, check=False)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


def kill_netns_processes(name: str, grace: float = 3.0) -> None:
    """Whatever still runs in the namespace (a crash left it, or a child we never recorded)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 3.0)):
        pids = netns_pids(name)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while netns_pids(name) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            time.sleep(0.02)


def delete_netns(name: str) -> None:
    if not netns_exists(name):
        return
    kill_netns_processes(name)
    ip("netns", "delete", name)


def link_exists(name: str, netns: str | None = None) -> bool:
    if netns and not netns_exists(netns):
        return False
    return ip("link", "show", "dev", name, netns=netns, check=False).returncode == 0


def delete_link(name: str, netns: str | None = None) -> None:
    if link_exists(name, netns):
        ip("link", "delete", "dev", name, netns=netns)


def undo_netns(attrs: dict[str, Any]) -> None:
    delete_netns(attrs["name"])


def undo_link(attrs: dict[str, Any]) -> None:
    delete_link(attrs["name"], attrs.get("netns"))
