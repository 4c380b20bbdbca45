"""The one place netbind runs podman (images and containers), with the settings this kind of host needs.

Debian 12's podman 4.3 works here as root with three settings (host notes, "Containers with podman"):
the ``runc`` runtime (crun refuses hybrid cgroups), the ``cgroupfs`` cgroup manager (no systemd)
and no default ulimits (raising RLIMIT_NOFILE/NPROC is not permitted). They are passed on every
call through a private ``containers.conf`` (``CONTAINERS_CONF``) and global flags, so the host's own
podman configuration is neither needed nor changed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

CONTAINERS_CONF = """\
# written by netbind: the settings podman 4.3 needs on a host without systemd (see netbind._podman)
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
"""


class PodmanError(RuntimeError):
    """A podman call failed; the message has the command and podman's own words."""

    def __init__(self, message: str, returncode: int = 1, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode, self.stderr = returncode, stderr


def _conf_path() -> Path:
    from netbind.node import paths

    return paths.cache_dir() / "podman" / "containers.conf"


def environment() -> dict[str, str]:
    """The environment of every podman call: ours plus the private containers.conf."""
    path = _conf_path()
    if not path.exists() or path.read_text() != CONTAINERS_CONF:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(CONTAINERS_CONF)
        tmp.replace(path)
    return dict(os.environ, CONTAINERS_CONF=str(path))


def binary() -> str | None:
    return shutil.which("podman")


def unavailable() -> str | None:
    """Why containers cannot run here (None: they can)."""
    if binary() is None:
        return "podman is not installed (Debian: apt-get install podman runc)"
    if shutil.which("runc") is None:
        return "runc is not installed (Debian: apt-get install runc; crun does not work on this host)"
    if os.geteuid() != 0:
        return "containers need root here (rootless podman is not set up)"
    return None


def argv(*args: str) -> list[str]:
    return [binary() or "podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", *args]


def run(*args: str, check: bool = True, timeout: float | None = None, input: bytes | None = None,
        capture: bool = True) -> subprocess.CompletedProcess[str]:
    """``podman ARGS`` with our settings; raises PodmanError (command + stderr) if it fails and ``check``."""
    cmd = argv(*args)
    try:
        proc = subprocess.run(cmd, env=environment(), timeout=timeout, text=True,
                              input=input.decode() if input is not None else None,
                              stdout=subprocess.PIPE if capture else None,
                              stderr=subprocess.PIPE if capture else None)
    except FileNotFoundError:
        raise PodmanError(unavailable() or "podman not found") from None
    except subprocess.TimeoutExpired:
        raise PodmanError(f"podman {' '.join(args[:2])} did not finish within {timeout:g} s") from None
    if check and proc.returncode != 0:
        err = (proc.stderr or "").strip()
        raise PodmanError(f"podman {' '.join(_short(args))}: {err or f'exit status {proc.returncode}'}",
                          proc.returncode, err)
    return proc


def _short(args: Sequence[str], limit: int = 6) -> list[str]:
    return list(args[:limit]) + (["..."] if len(args) > limit else [])


# ---- images ------------------------------------------------------------------------------------

def image_exists(ref: str) -> bool:
    return run("image", "exists", ref, check=False).returncode == 0


def image_inspect(ref: str) -> dict | None:
    proc = run("image", "inspect", ref, check=False)
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout or "[]")
    return data[0] if data else None


def image_label(ref: str, label: str) -> str | None:
    info = image_inspect(ref)
    if info is None:
        return None
    return ((info.get("Config") or {}).get("Labels") or {}).get(label) or (info.get("Labels") or {}).get(label)


def image_size(ref: str) -> int | None:
    info = image_inspect(ref)
    return int(info["Size"]) if info and "Size" in info else None


def remove_image(ref: str) -> None:
    run("image", "rm", "--force", ref, check=False)


# ---- containers --------------------------------------------------------------------------------

def container_state(name: str) -> dict | None:
    """podman's State of the container (Status, Running, ExitCode, Pid, ...), None if there is none."""
    proc = run("container", "inspect", name, check=False)
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout or "[]")
    return (data[0].get("State") or {}) if data else None


def container_logs(name: str, lines: int = 20) -> str:
    proc = run("logs", "--tail", str(lines), name, check=False)
    text = ((proc.stdout or "") + (proc.stderr or "")).strip()
    return text or "(no output)"


def remove_container(name: str, grace: int = 5) -> None:
    """Stop (SIGTERM, then SIGKILL after ``grace`` s) and remove the container and its storage;
    idempotent: a container that is not there is fine."""
    run("rm", "--force", "--time", str(grace), "--ignore", "--volumes", name, check=False)
    if container_state(name) is not None:
        proc = run("rm", "--force", "--volumes", name, check=False)
        if proc.returncode != 0 and container_state(name) is not None:
            raise PodmanError(f"container {name} could not be removed: {(proc.stderr or '').strip()}")
