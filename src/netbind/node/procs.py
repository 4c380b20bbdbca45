"""Supervised processes "in a pod": its network namespace, a private mount namespace with bind
mounts (e.g. the sidecar's sockets directory at /var/run/kubevirt-hooks), a log file, a pidfile,
and a stop that sends SIGTERM, then SIGKILL after a grace period.

A process is identified by (pid, start time) so that a recorded pid reused by an unrelated process
after a crash is never signalled.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

# Runs inside the new mount namespace: device nodes (TARGET MAJOR MINOR MODE GROUP|-)... "--",
# then bind mounts (SOURCE TARGET ro|rw)... "--", then exec. A device node is made on a tmpfs of
# its own ($1, mounted on first use: the pod dir's /run is nodev) and bound over TARGET where the
# host has one. `ip netns exec` already unshares the mount namespace and makes "/" a slave, so
# these mounts never show up outside; without a netns, unshare(1) provides the same.
_MOUNT_THEN_EXEC = (
    'set -e; dev="$1"; shift; '
    'while [ "$1" != -- ]; do '
    'if ! mountpoint -q "$dev"; then mount -t tmpfs -o mode=755 nb-dev "$dev"; fi; '
    'node="$dev/$(basename "$1")"; mknod -m "$4" "$node" c "$2" "$3"; '
    'if [ "$5" != - ]; then chgrp "$5" "$node"; fi; '
    'if [ -e "$1" ]; then mount --bind "$node" "$1"; fi; shift 5; done; shift; '
    'while [ "$1" != -- ]; do mount --bind "$1" "$2"; '
    'if [ "$3" = ro ]; then mount -o remount,bind,ro "$2"; fi; shift 3; done; shift; exec "$@"'
)


class ProcessError(RuntimeError):
    """A supervised process failed to start or stay up; the message carries its log tail."""


@dataclass(frozen=True)
class Bind:
    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Device:
    """A character device node the process sees at ``path`` in place of the host's, as a
    container runtime gives a container its devices."""
    path: str
    major: int
    minor: int
    mode: int = 0o660
    group: str | None = None


@dataclass(frozen=True)
class ProcessSpec:
    name: str                       # unique within its owner, e.g. "libvirtd", "hook-sidecar-0"
    argv: tuple[str, ...]
    log: Path
    pidfile: Path
    netns: str | None = None
    binds: tuple[Bind, ...] = ()
    env: Mapping[str, str] | None = None   # None: inherit; else exactly this environment
    cwd: Path | None = None
    devices: tuple[Device, ...] = ()

    @property
    def device_dir(self) -> Path:
        return self.pidfile.parent / f"{self.name}.dev"


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    starttime: int
    log: str
    pidfile: str
    argv: list[str] = field(default_factory=list)

    def attrs(self) -> dict[str, Any]:
        return {"pid": self.pid, "starttime": self.starttime, "log": self.log, "pidfile": self.pidfile,
                "argv": self.argv}


def command_line(spec: ProcessSpec) -> list[str]:
    """The full argv that realizes the spec's namespaces and mounts (pure)."""
    argv = list(spec.argv)
    if spec.binds or spec.devices:
        words: list[str] = [str(spec.device_dir)]
        for device in spec.devices:
            words += [device.path, str(device.major), str(device.minor), f"{device.mode:o}", device.group or "-"]
        words.append("--")
        for bind in spec.binds:
            words += [str(bind.source), bind.target, "ro" if bind.read_only else "rw"]
        argv = ["/bin/sh", "-c", _MOUNT_THEN_EXEC, "nb-launch", *words, "--", *argv]
        if spec.netns is None:
            argv = ["unshare", "--mount", "--propagation", "slave", *argv]
    if spec.netns is not None:
        argv = ["ip", "netns", "exec", spec.netns, *argv]
    return argv


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/PID/stat this package reads."""
    name: str        # comm: at most 15 bytes, any but NUL (spaces and ')' included)
    ppid: int
    state: str       # R, S, D, T, ... Z (zombie), X (dead)
    starttime: int   # clock ticks since boot

    @property
    def running(self) -> bool:
        """Not a zombie or dead: a zombie holds nothing but its pid until its parent reaps it."""
        return self.state not in ("Z", "X")


def proc_stat(pid: int) -> ProcStat | None:
    """/proc/PID/stat parsed; None when there is no process ``pid``. The name sits between the
    first '(' and the LAST ')': it may itself hold ')', spaces and bytes that are not UTF-8."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes().decode(errors="replace")
    except OSError:  # gone (ENOENT, ESRCH)
        return None
    close = raw.rindex(")")
    fields = raw[close + 2:].split()
    return ProcStat(raw[raw.index("(") + 1:close], int(fields[1]), fields[0], int(fields[19]))


def starttime_of(pid: int) -> int | None:
    """The start time of a running process; None if gone or a zombie (reaped if it is our child)."""
    stat = proc_stat(pid)
    if stat is None:
        return None
    if not stat.running:
        _reap(pid)
        return None
    return stat.starttime


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def start(spec: ProcessSpec, settle: float = 0.05) -> ProcessRecord:
    """Start the process; one that exits within ``settle`` seconds is an error carrying its log.
    Readiness beyond that (a socket, a pidfile) is the caller's to wait for."""
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    if spec.devices:
        spec.device_dir.mkdir(parents=True, exist_ok=True)
    with open(spec.log, "ab") as log:
        proc = subprocess.Popen(command_line(spec), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=dict(spec.env) if spec.env is not None else None,
                                cwd=spec.cwd, start_new_session=True, close_fds=True)
    # `ip netns exec`, sh and unshare all exec, so the pid we started is the pid of the program
    starttime = starttime_of(proc.pid)
    try:
        proc.wait(timeout=settle)
    except subprocess.TimeoutExpired:
        pass
    if starttime is None or proc.returncode is not None:
        proc.wait()
        raise ProcessError(f"{spec.name} exited at once (status {proc.returncode}): {log_tail(spec.log)}")
    spec.pidfile.parent.mkdir(parents=True, exist_ok=True)
    spec.pidfile.write_text(f"{proc.pid}\n")
    return ProcessRecord(spec.name, proc.pid, starttime, str(spec.log), str(spec.pidfile), list(spec.argv))


def alive(pid: int, starttime: int) -> bool:
    return starttime_of(pid) == starttime


def stop(pid: int, starttime: int, grace: float = 5.0) -> None:
    """SIGTERM the process (and its process group), SIGKILL after ``grace`` seconds; idempotent."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not alive(pid, starttime):
            return
        try:
            os.killpg(pid, sig)  # start() made it a session (and group) leader
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid, starttime):
                return
            time.sleep(0.02)
    if alive(pid, starttime):
        raise ProcessError(f"pid {pid} survived SIGKILL")


def undo_process(attrs: dict[str, Any]) -> None:
    if "pid" in attrs:
        stop(attrs["pid"], attrs["starttime"], grace=attrs.get("grace", 5.0))
    if attrs.get("pidfile"):
        Path(attrs["pidfile"]).unlink(missing_ok=True)


def log_tail(path: Path | str, lines: int = 20) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"
