"""Crash drills: kill ``netbind up``, ``migrate`` and ``down`` (real CLI processes) at every step
they journal and at random moments, then prove that ``netbind down`` leaves nothing and that the
same VM comes up again.

Every step is hit deterministically through the journal's fault-injection point
(``NETBIND_FAULT_KILL_AT=N``, ``netbind.node.journal``): a first run counts the command's journal
writes (``NETBIND_FAULT_COUNT``), then one run per write index N SIGKILLs itself right after its
N-th write (or just before it, ``N:before``). Each killed run also records the writes it made, so a
point names the step it died at. After each kill: ``netbind down --all`` (or ``down NAME``), then the
host is compared with a snapshot taken before the run (``netbind.testing.leaks``). Restart: each
kill run of ``up`` must get as far as its kill point (it is a new ``up`` of the same VM after the
previous kill's cleanup), and ``restart()`` runs a whole ``up --wait`` + ``down``.

Used by ``tests/node/test_crash.py`` (reduced, in CI) and ``bench/crash.py`` (everything).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from netbind.testing.leaks import LeakChecker

KILLED = -signal.SIGKILL


@dataclass
class Point:
    """One crash: where, how the process ended, what was left, and what else went wrong."""
    command: str                    # up | migrate | down
    how: str                        # "after write 7", "before write 7", "SIGKILL at 1.20 s", ...
    step: str = ""                  # the journal write it died after (normalized), if known
    exit: int | None = None
    leaks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    checker: LeakChecker | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return not self.leaks and not self.problems

    def describe(self) -> str:
        text = f"{self.command} {self.how}" + (f" [{self.step}]" if self.step else "") + f": exit {self.exit}"
        for line in self.problems:
            text += f"\n    problem: {line}"
        for line in self.leaks:
            text += f"\n    leak: {line}"
        return text


def normalize(step: str, runtime: Path) -> str:
    """A journal write's label without this run's random names (pod suffixes, the runtime dir)."""
    step = step.replace(str(runtime), "$R")
    step = re.sub(r"^\d+ ", "", step)
    step = re.sub(r"nb-node-[0-9a-f]{6}", "nb-node", step)
    step = re.sub(r"(nb-[a-z0-9-]+?)-[0-9a-f]{6}\b", r"\1-POD", step)
    return re.sub(r"\b(nbv|nbl2)[0-9a-f]{8}\b", r"\1*", step)


class Drill:
    """Crash drills of one VM (``manifests``, VMI ``name``) in one runtime dir."""

    def __init__(self, runtime: Path, manifests: Path, name: str, *, up_args: Sequence[str] = (),
                 env: dict[str, str] | None = None, timeout: float = 180.0) -> None:
        self.runtime, self.manifests, self.name = Path(runtime), Path(manifests), name
        self.up_args = list(up_args)
        self.env = dict(os.environ if env is None else env, NETBIND_RUNTIME_DIR=str(self.runtime))
        for var in ("NETBIND_FAULT_KILL_AT", "NETBIND_FAULT_COUNT"):
            self.env.pop(var, None)
        self.timeout = timeout
        self.scratch = Path(tempfile.mkdtemp(prefix="nb-crash-"))   # step counts and signal files

    def close(self) -> None:
        """Remove the drill's scratch files (the runtime dir is the caller's)."""
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> "Drill":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- running the CLI -------------------------------------------------------------------------

    def argv(self, command: str, *extra: str) -> list[str]:
        base = [sys.executable, "-m", "netbind.cli"]
        if command == "up":
            return [*base, "up", "-f", str(self.manifests), "--wait", "-o", "quiet", *self.up_args, *extra]
        if command == "migrate":
            return [*base, "migrate", self.name, "--wait", "-o", "quiet", *extra]
        if command == "down":
            return [*base, "down", *(extra or (self.name,))]
        raise ValueError(command)

    def run(self, argv: list[str], *, kill_at: str | None = None, count: Path | None = None,
            ) -> subprocess.CompletedProcess:
        env = dict(self.env)
        if kill_at:
            env["NETBIND_FAULT_KILL_AT"] = kill_at
        if count:
            count.unlink(missing_ok=True)
            env["NETBIND_FAULT_COUNT"] = str(count)
        try:
            return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=self.timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(argv, 124, exc.stdout or "", f"timed out after {self.timeout:g} s")

    def cleanup(self, point: Point, checker: LeakChecker | None = None, *down: str) -> None:
        """``netbind down`` after a crash (what the user does), then the leak check."""
        checker = checker or point.checker
        checker.note()
        done = self.run(self.argv("down", *(down or ("--all",))))
        if done.returncode != 0:
            point.problems.append(f"netbind down {' '.join(down or ('--all',))} exited {done.returncode}:"
                                  f" {_tail(done)}")
            again = self.run(self.argv("down", "--all"))   # what is left for the record
            if again.returncode != 0:
                point.problems.append(f"a second netbind down --all exited {again.returncode}: {_tail(again)}")
        point.leaks = checker.leaks()

    def _ready(self, point: Point) -> bool:
        """``up --wait`` of the VM, as a precondition (migrate, down drills)."""
        done = self.run(self.argv("up"))
        if done.returncode != 0:
            point.problems.append(f"up --wait (precondition) exited {done.returncode}: {_tail(done)}")
            return False
        return True

    def _steps(self, count: Path) -> list[str]:
        try:
            return [normalize(line, self.runtime) for line in count.read_text().splitlines()]
        except OSError:
            return []

    # ---- counting --------------------------------------------------------------------------------

    def count(self, command: str) -> tuple[list[str], Point]:
        """The journal writes of one uncrashed run of ``command`` (itself leak-checked)."""
        point = Point(command, "uncrashed (counting)")
        checker = LeakChecker(self.runtime)
        file = self.scratch / f"count-{command}"
        if command != "up" and not self._ready(point):
            self.cleanup(point, checker)
            return [], point
        checker.note()
        done = self.run(self.argv(command), count=file)
        point.exit = done.returncode
        steps = self._steps(file)
        if done.returncode != 0:
            point.problems.append(f"{command} exited {done.returncode}: {_tail(done)}")
        if command == "down":
            point.leaks = checker.leaks()
        else:
            self.cleanup(point, checker, *(("--all",) if command == "up" else (self.name,)))
        return steps, point

    # ---- crashes at journal writes ---------------------------------------------------------------

    def kill_at(self, command: str, index: int, *, before: bool = False, steps: Sequence[str] = (),
                keep: bool = False) -> Point:
        """Run ``command`` with a SIGKILL at its ``index``-th journal write, clean up, check.
        ``keep``: no cleanup (the caller looks first, then calls ``cleanup``)."""
        how = f"{'before' if before else 'after'} write {index}"
        point = Point(command, how)
        checker = point.checker = LeakChecker(self.runtime)
        if command != "up" and not self._ready(point):
            self.cleanup(point, checker)
            return point
        checker.note()
        file = self.scratch / f"kill-{command}"
        done = self.run(self.argv(command), kill_at=f"{index}:before" if before else str(index), count=file)
        point.exit = done.returncode
        reached = self._steps(file)
        if before:
            point.step = "before " + (steps[index - 1] if index <= len(steps) else "?")
        else:
            point.step = reached[-1] if reached else "?"
        if done.returncode != KILLED:
            point.problems.append(f"did not reach its kill point (exit {done.returncode}, {len(reached)} writes):"
                                  f" {_tail(done)}")
        if keep:
            checker.note()
            return point
        self.cleanup(point, checker, *(() if command != "migrate" else (self.name,)))
        return point

    # ---- crashes at random moments, and signals --------------------------------------------------

    def signal_at(self, command: str, sig: int, delay: float = 0.0, *, after_writes: int = 0,
                  keep: bool = False) -> Point:
        """Start ``command``, send ``sig`` ``delay`` seconds after its start, or after its
        ``after_writes``-th journal write (SIGINT to its process group, as Ctrl-C in a terminal;
        SIGKILL and SIGTERM to the process), clean up, check. ``keep``: no cleanup (the caller
        looks first, then calls ``cleanup``)."""
        how = f"{signal.Signals(sig).name} " + (f"after write {after_writes}" if after_writes else f"at {delay:.2f} s")
        point = Point(command, how)
        checker = point.checker = LeakChecker(self.runtime)
        if command != "up" and not self._ready(point):
            self.cleanup(point, checker)
            return point
        checker.note()
        file = self.scratch / f"signal-{command}"
        file.unlink(missing_ok=True)
        env = dict(self.env, NETBIND_FAULT_COUNT=str(file))
        proc = subprocess.Popen(self.argv(command), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        try:
            if after_writes:
                deadline = time.monotonic() + self.timeout
                while len(self._steps(file)) < after_writes and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.005)
                if proc.poll() is None:
                    raise subprocess.TimeoutExpired(proc.args, 0)
            else:
                proc.wait(timeout=delay)
            point.problems.append(f"finished before the signal (exit {proc.returncode}); try a shorter delay")
        except subprocess.TimeoutExpired:
            checker.note()
            try:
                os.killpg(proc.pid, sig) if sig == signal.SIGINT else os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            point.problems.append(f"did not end within {self.timeout:g} s of {how}")
        point.exit = proc.returncode
        reached = self._steps(file)
        point.step = reached[-1] if reached else "(no write yet)"
        if sig != signal.SIGKILL and proc.returncode == 0 and command == "up":
            point.problems.append("exited 0 after the signal")
        if sig != signal.SIGKILL and command == "up":
            # an interrupted `up` cleans up after itself, as after any failure: nothing for `down`
            own = checker.leaks()
            if own:
                point.problems.append("up did not clean up after itself: " + "; ".join(own))
            expected = 128 + sig
            if proc.returncode != expected:
                point.problems.append(f"exit {proc.returncode}, not {expected}: {(err or out).strip()[-300:]}")
        if keep:
            return point
        self.cleanup(point, checker, *(() if command != "migrate" else (self.name,)))
        return point

    def restart(self) -> Point:
        """The same VM comes up again (``up --wait``) and goes (``down --all``) without a trace."""
        point = Point("up", "restart after the crashes")
        checker = LeakChecker(self.runtime)
        done = self.run(self.argv("up"))
        point.exit = done.returncode
        if done.returncode != 0:
            point.problems.append(f"up --wait exited {done.returncode}: {_tail(done)}")
        self.cleanup(point, checker)
        return point

    def duration(self, command: str) -> float:
        """Seconds one uncrashed run of ``command`` takes (for random kill delays)."""
        point = Point(command, "timing")
        checker = LeakChecker(self.runtime)
        if command != "up" and not self._ready(point):
            self.cleanup(point, checker)
            return 0.0
        t0 = time.monotonic()
        self.run(self.argv(command))
        seconds = time.monotonic() - t0
        self.cleanup(point, checker, *(() if command != "migrate" else (self.name,)))
        return seconds


def _tail(done: subprocess.CompletedProcess, lines: int = 6) -> str:
    text = ((done.stderr or "") + (done.stdout or "")).strip().splitlines()
    return " | ".join(text[-lines:]) or "(no output)"


def summary(points: Sequence[Point]) -> dict[str, dict[str, int]]:
    """Per command: kill points tried, points with leaks, leaks (lines), points with other problems."""
    table: dict[str, dict[str, int]] = {}
    for p in points:
        row = table.setdefault(p.command, {"points": 0, "leaky points": 0, "leaks": 0, "problems": 0})
        row["points"] += 1
        row["leaky points"] += bool(p.leaks)
        row["leaks"] += len(p.leaks)
        row["problems"] += bool(p.problems)
    return table


__all__ = ["Drill", "Point", "normalize", "summary"]
