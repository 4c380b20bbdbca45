"""Soak runs: many ``netbind up``/``down`` cycles of one VM and many migrations back and forth,
through the real CLI, with what must not grow recorded after every step.

Per step: the command's exit status and wall time; the host's namespace, process and open-file
counts and available memory; the VM's own processes (those its journals record, with all their
descendants: libvirtd, QEMU, passt, sidecars), their open descriptors and resident memory by
process name; and the leak check of ``netbind.testing.leaks`` after each ``down``.
``growth()`` compares the first and the last third of a run.

Used by ``tests/node/test_soak.py`` (reduced, in CI) and ``bench/soak.py`` (50 cycles, 30
migrations).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from netbind.node.procs import proc_stat
from netbind.testing.leaks import LeakChecker


@dataclass
class Step:
    """One command of a soak run and the host as it was right after it."""
    command: str                      # up | down | migrate
    index: int
    exit: int
    seconds: float
    tail: str = ""                    # the command's last output lines when it failed
    host: dict[str, int] = field(default_factory=dict)
    vm_fds: dict[str, int] = field(default_factory=dict)     # process name -> open descriptors
    vm_rss_kib: dict[str, int] = field(default_factory=dict)  # process name -> resident memory
    vm_processes: int = 0
    leaks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit == 0 and not self.leaks


# ---- what is measured --------------------------------------------------------------------------

def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def host_counts() -> dict[str, int]:
    """Namespaces, processes, open files (the kernel's count) and available memory of the host."""
    try:
        netns = len(os.listdir("/run/netns"))
    except OSError:
        netns = 0
    open_files = int(Path("/proc/sys/fs/file-nr").read_text().split()[0])
    available = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1])
    return {"netns": netns, "processes": len(_pids()), "open_files": open_files,
            "mem_available_kib": available}


def vm_processes(checker: LeakChecker) -> dict[int, str]:
    """The VM's processes running now, pid -> name: those the leak checker counts as ours (its
    journals record them, or they name its runtime dir or namespaces: QEMU and passt leave
    libvirtd's tree when they daemonize) and all their descendants."""
    parents: dict[int, tuple[str, int]] = {}
    for pid in _pids():
        stat = proc_stat(pid)
        if stat and stat.running:
            parents[pid] = (stat.name, stat.ppid)
    ours = set()
    for pid, start in checker.note().pids:
        stat = proc_stat(pid)
        if stat and stat.running and stat.starttime == start:
            ours.add(pid)
    grew = True
    while grew:
        more = {pid for pid, (_, ppid) in parents.items() if ppid in ours and pid not in ours}
        ours |= more
        grew = bool(more)
    return {pid: parents[pid][0] for pid in ours if pid in parents}


def vm_usage(checker: LeakChecker) -> tuple[dict[str, int], dict[str, int], int]:
    """Open descriptors and resident memory (KiB) of the VM's processes, summed by name, and how
    many processes there are."""
    fds: dict[str, int] = {}
    rss: dict[str, int] = {}
    processes = vm_processes(checker)
    for pid, name in processes.items():
        try:
            count = len(os.listdir(f"/proc/{pid}/fd"))
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        fds[name] = fds.get(name, 0) + count
        rss[name] = rss.get(name, 0) + kib
    return fds, rss, len(processes)


# ---- running ----------------------------------------------------------------------------------

class Soak:
    """Soak runs of one VM (``manifests``, VMI ``name``) in its own runtime dir."""

    def __init__(self, runtime: Path, manifests: Path, name: str, *, up_args: tuple[str, ...] = (),
                 timeout: float = 300.0, progress=None) -> None:
        self.runtime, self.manifests, self.name = Path(runtime), Path(manifests), name
        self.up_args = list(up_args)
        self.env = dict(os.environ, NETBIND_RUNTIME_DIR=str(self.runtime))
        self.timeout = timeout
        self.progress = progress or (lambda step: None)
        self.checker = LeakChecker(self.runtime)

    def _cli(self, *args: str) -> tuple[int, float, str]:
        argv = [sys.executable, "-m", "netbind.cli", *args]
        start = time.monotonic()
        try:
            done = subprocess.run(argv, env=self.env, capture_output=True, text=True,
                                  timeout=self.timeout, stdin=subprocess.DEVNULL)
            code, text = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired:
            code, text = 124, f"timed out after {self.timeout:g} s"
        return code, time.monotonic() - start, text

    def _step(self, command: str, index: int, *args: str, leak_check: bool = False) -> Step:
        if leak_check:
            self.checker.note()   # what the journals record before they go
        code, seconds, text = self._cli(*args)
        step = Step(command, index, code, seconds,
                    tail="" if code == 0 else " | ".join(text.strip().splitlines()[-4:])[-600:])
        step.vm_fds, step.vm_rss_kib, step.vm_processes = vm_usage(self.checker)
        if leak_check:
            step.leaks = self.checker.leaks()
        step.host = host_counts()
        self.progress(step)
        return step

    def up(self, index: int = 0) -> Step:
        return self._step("up", index, "up", "-f", str(self.manifests), "--wait", "-o", "quiet", *self.up_args)

    def down(self, index: int = 0) -> Step:
        return self._step("down", index, "down", "--all", leak_check=True)

    def cycles(self, count: int) -> list[Step]:
        """``up --wait`` then ``down --all``, ``count`` times; a failed up is still torn down."""
        steps = []
        for n in range(count):
            steps.append(self.up(n))
            steps.append(self.down(n))
        return steps

    def migrations(self, count: int) -> list[Step]:
        """One ``up``, ``count`` migrations (each to a new pod, so back and forth between the two
        local nodes' pods), one ``down``. A failed migration leaves the VM where it was, and the run
        goes on; a VM that is gone is brought up again (and that is recorded)."""
        steps = [self.up(0)]
        for n in range(count):
            steps.append(self._step("migrate", n, "migrate", self.name, "--wait", "-o", "quiet"))
            if steps[-1].exit != 0 and not vm_processes(self.checker):
                steps.append(self.up(n + 1))
        steps.append(self.down(0))
        return steps


# ---- judging ----------------------------------------------------------------------------------

def _thirds(values: list[float]) -> tuple[float, float]:
    third = max(1, len(values) // 3)
    return statistics.median(values[:third]), statistics.median(values[-third:])


def series(steps: list[Step], command: str) -> dict[str, list[float]]:
    """Per-metric values over the successful steps of one command, in order."""
    chosen = [s for s in steps if s.command == command and s.exit == 0]
    out: dict[str, list[float]] = {"seconds": [s.seconds for s in chosen]}
    for key in ("netns", "processes", "open_files", "mem_available_kib"):
        out[f"host_{key}"] = [s.host.get(key, 0) for s in chosen]
    if command != "down":
        out["vm_fds"] = [sum(s.vm_fds.values()) for s in chosen]
        out["vm_rss_kib"] = [sum(s.vm_rss_kib.values()) for s in chosen]
        out["vm_processes"] = [s.vm_processes for s in chosen]
    return out


def growth(steps: list[Step], command: str) -> dict[str, tuple[float, float]]:
    """Median of the first third against the median of the last third, per metric."""
    return {key: _thirds(values) for key, values in series(steps, command).items() if values}
