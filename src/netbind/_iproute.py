"""The one link adapter: namespaces, links, addresses, routes and sysctls through iproute2.

Every part of netbind that touches links comes here: the node runtime, the in-pod layout
(``netbind.netpod``), the binding CNI plugins and the test fixtures. iproute2's ``ip``/``bridge``
rather than a netlink library because the CNI plugins run this on their exec path, where pyroute2's
import alone (~170 ms) is several times the plugin's whole budget, and because each call is what a
user would type to inspect or repair the result. Standard library only.

A frozen CNI bundle (``deploy/cni``) carries its own iproute2 in ``<bundle>/iproute2`` with the
libraries and the dynamic loader it was built with, run through that loader, so a node without
iproute2 (or with a different glibc) runs the same binaries the tests ran.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence

NETNS_DIR = Path("/run/netns")
BUNDLED_DIR = "iproute2"         # beside a frozen executable
BUNDLED_LOADER = "ld-linux-x86-64.so.2"


class IPRouteError(RuntimeError):
    """An iproute2 command failed; the message has the command line and its error."""

    def __init__(self, argv: Sequence[str], stderr: str, returncode: int) -> None:
        super().__init__(f"{' '.join(argv)}: {stderr.strip() or f'exit status {returncode}'}")
        self.argv = list(argv)
        self.stderr = stderr
        self.returncode = returncode


def _bundled_prefix(tool: str) -> list[str] | None:
    """``[loader, --library-path, lib, tool]`` inside a frozen bundle that carries iproute2."""
    if not getattr(sys, "frozen", False):
        return None
    home = Path(sys.executable).resolve().parent / BUNDLED_DIR
    if not (home / tool).is_file():
        return None
    lib = home / "lib"
    return [str(lib / BUNDLED_LOADER), "--library-path", str(lib), str(home / tool)]


def command(tool: str, *args: str, netns: str | None = None) -> list[str]:
    """The argv of ``tool`` (``ip`` or ``bridge``) in a named namespace or the caller's own."""
    prefix = _bundled_prefix(tool) or [tool]
    return [*prefix, *(("-n", netns) if netns else ()), *args]


def run(tool: str, *args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = command(tool, *args, netns=netns)
    shown = [tool, *(("-n", netns) if netns else ()), *args]   # what a user would type, loader aside
    try:
        proc = subprocess.run(argv, capture_output=True, text=True)
    except FileNotFoundError:
        raise IPRouteError(shown, f"{tool} not found: install iproute2", 127) from None
    if check and proc.returncode != 0:
        raise IPRouteError(shown, proc.stderr, proc.returncode)
    return proc


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    """``ip [-n NETNS] ARGS``; its standard output."""
    return run("ip", *args, netns=netns, check=check).stdout


def bridge(*args: str, netns: str | None = None, check: bool = True) -> str:
    return run("bridge", *args, netns=netns, check=check).stdout


# ---- links ----------------------------------------------------------------------------------------

def links(netns: str | None = None) -> dict[str, dict]:
    """Every link with details (``ip -j -d link show``), by name."""
    return {link["ifname"]: link for link in json.loads(ip("-j", "-d", "link", "show", netns=netns) or "[]")}


def link(name: str, netns: str | None = None) -> dict | None:
    """One link with details, or None when there is no such link."""
    proc = run("ip", "-j", "-d", "link", "show", "dev", name, netns=netns, check=False)
    if proc.returncode != 0:
        return None
    found = json.loads(proc.stdout or "[]")
    return found[0] if found else None


def link_exists(name: str, netns: str | None = None) -> bool:
    if netns and not netns_exists(netns):
        return False
    return run("ip", "link", "show", "dev", name, netns=netns, check=False).returncode == 0


def delete_link(name: str, netns: str | None = None) -> bool:
    """Delete a link if it is there; False if there was none."""
    if not link_exists(name, netns):
        return False
    ip("link", "delete", "dev", name, netns=netns)
    return True


def link_kind(details: dict) -> str:
    """``veth``, ``macvtap``, ... from ``ip -d`` output; "" for links without a kind (lo, NICs)."""
    return (details.get("linkinfo") or {}).get("info_kind", "")


# ---- sysctls --------------------------------------------------------------------------------------

def sysctl(key: str, value: str | None = None, netns: str | None = None) -> str:
    """Read (value None) or write a sysctl of a namespace; returns the value before.

    Without ``netns`` it is the caller's own: /proc/sys/net follows the calling thread's namespace,
    which is what a CNI plugin that entered the pod namespace with setns needs.
    """
    path = "/proc/sys/" + key.replace(".", "/")
    if netns is None:
        with open(path) as fh:
            before = fh.read().strip()
        if value is not None:
            with open(path, "w") as fh:
                fh.write(value)
        return before
    # a named namespace: read and write /proc/sys from a child that entered it (ip netns exec)
    script = 'cat "$1"; [ -z "$2" ] || printf %s "$2" > "$1"'
    argv = ["ip", "netns", "exec", netns, "sh", "-c", script, "sh", path, value or ""]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise IPRouteError([f"sysctl {key}{'=' + value if value is not None else ''} in {netns}"], proc.stderr,
                           proc.returncode)
    return proc.stdout.strip()


# ---- named network namespaces ----------------------------------------------------------------------

def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def add_netns(name: str) -> None:
    """A named namespace with its loopback up."""
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)


def delete_netns(name: str) -> None:
    if netns_exists(name):
        ip("netns", "delete", name)


def netns_pids(name: str) -> list[int]:
    proc = run("ip", "netns", "pids", name, check=False)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


def netns_exec(name: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs ``argv`` inside the named namespace."""
    return ["ip", "netns", "exec", name, *argv]


__all__ = ["IPRouteError", "NETNS_DIR", "add_netns", "bridge", "command", "delete_link", "delete_netns", "ip",
           "link", "link_exists", "link_kind", "links", "netns_exec", "netns_exists", "netns_pids", "run",
           "sysctl"]
