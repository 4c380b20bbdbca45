"""Crash at every phase (root): `netbind up`, `migrate` and `down` as real CLI processes, killed with
SIGKILL at their journal writes (netbind.node.journal's NETBIND_FAULT_KILL_AT), stopped with SIGTERM
and Ctrl-C; after each, `netbind down` must leave nothing (netbind.testing.leaks) and the same VM
must come up again. The reduced set runs in CI (every write of `up`, a few of migrate and down, and
the writes around the start of a sidecar container); bench/crash.py runs everything (before and
after every write, random moments, signals)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from netbind.node import sandbox
from netbind.testing.crash import KILLED, Drill, summary
from netbind.testing.leaks import LeakChecker

from .test_up import EXAMPLES, require_node_binaries

NAME = "vm-net-binding-passt"


@pytest.fixture
def drill(guest_image, runtime):
    require_node_binaries()
    with Drill(runtime, EXAMPLES / "passt", NAME) as made:
        yield made


@pytest.fixture
def container_drill(guest_image, runtime, built_images):
    """The passt example with its hook sidecar as a container of the image `netbind image build` makes."""
    require_node_binaries()
    with Drill(runtime, EXAMPLES / "passt", NAME, up_args=("--sidecars", "container")) as made:
        yield made


def _failures(points) -> str:
    return "\n".join(p.describe() for p in points if not p.ok) + f"\nsummary: {summary(points)}"


def test_fault_injection_kills_right_after_the_nth_write_or_before_it(tmp_path):
    script = ("import sys; from pathlib import Path; from netbind.node.journal import Journal\n"
              "j = Journal.create(Path(sys.argv[1]))\n"
              "for i in range(5):\n    j.created(j.intend('dir', f'/nonexistent/{i}'))\n")
    count = tmp_path / "count"
    env = dict(os.environ, NETBIND_FAULT_COUNT=str(count))
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "j")], env=env)
    assert done.returncode == 0 and len(count.read_text().splitlines()) == 11   # create + 5 x (intended, created)
    for spec, entries, state in (("4", 2, "intended"), ("4:before", 1, "created"), ("1", 0, None)):
        count.unlink()
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / spec)],
                              env=dict(env, NETBIND_FAULT_KILL_AT=spec))
        assert done.returncode == KILLED
        data = json.loads((tmp_path / spec / "journal.json").read_text())
        assert len(data["entries"]) == entries and (not entries or data["entries"][-1]["state"] == state)
    bad = subprocess.run([sys.executable, "-c", "import netbind.node.journal"], capture_output=True, text=True,
                         env=dict(os.environ, NETBIND_FAULT_KILL_AT="soon"))
    assert bad.returncode != 0 and "NETBIND_FAULT_KILL_AT" in bad.stderr


def test_the_leak_checker_sees_what_a_crashed_up_leaves_until_down(drill):
    """The checker can fail: an `up` killed after its last write leaves a running VM's pod."""
    steps, baseline = drill.count("up")
    assert baseline.ok, baseline.describe()
    checker = LeakChecker(drill.runtime)
    done = drill.run(drill.argv("up"), kill_at=str(len(steps)))
    assert done.returncode == KILLED
    checker.note()
    leaks = "\n".join(checker.leaks())
    for what in ("network namespaces left", "process left", "libvirt socket left", "CNI state files left",
                 f"runtime dir {drill.runtime} left"):
        assert what in leaks, leaks
    assert "libvirtd" in leaks and "netbind-passt-sidecar" in leaks   # the domain is defined, not started yet
    assert drill.run(drill.argv("down", "--all")).returncode == 0
    assert checker.leaks() == []


def test_up_killed_at_every_journal_write_leaves_nothing_after_down_and_comes_up_again(drill):
    steps, baseline = drill.count("up")
    assert baseline.ok and len(steps) >= 20, baseline.describe()
    points = [drill.kill_at("up", i, steps=steps) for i in range(1, len(steps) + 1)]
    points.append(drill.restart())
    assert all(p.ok for p in points), _failures(points)
    # every write was a kill point, and each kill run reached its step (so the VM came up again)
    assert all(p.exit == KILLED and p.step not in ("", "?") for p in points[:-1])


@pytest.mark.parametrize("command", ["migrate", "down"])
def test_migrate_and_down_killed_at_their_first_middle_and_last_writes(drill, command):
    steps, baseline = drill.count(command)
    assert baseline.ok and steps, baseline.describe()
    picks = sorted({1, len(steps) // 2, len(steps)})
    points = [drill.kill_at(command, i, steps=steps) for i in picks]
    points.append(drill.restart())
    assert all(p.ok for p in points), _failures(points)


def _containers_seen(point) -> list[str]:
    return [line for line in point.checker.leaks() if line.startswith("podman container left")]


def test_up_killed_around_the_start_of_its_sidecar_container_leaves_nothing_after_down(container_drill):
    """Issue 13: `down --all` after a SIGKILL of `up` removes the sidecar container too, whether the
    kill came before `podman run`, after it but before its record, or once it is recorded."""
    drill = container_drill
    steps, baseline = drill.count("up")
    assert baseline.ok, baseline.describe()
    intended = next(i for i, s in enumerate(steps, 1) if s.startswith("container ") and s.endswith(" intended"))
    assert steps[intended] == steps[intended - 1].replace(" intended", " created"), steps
    # (write index, before it?, does the container exist at the kill?)
    picks = [(intended - 1, False, False),   # the step before: the pod wired, no container yet
             (intended, False, False),       # recorded as intended, `podman run` not yet made
             (intended + 1, True, True),     # running, its record not yet written
             (intended + 1, False, True),    # recorded as created
             (intended + 2, False, True)]    # the next step (libvirtd) begun
    points, seen = [], []
    for index, before, _ in picks:
        point = drill.kill_at("up", index, before=before, steps=steps, keep=True)
        seen.append(_containers_seen(point))   # what is there before `down`
        drill.cleanup(point)
        points.append(point)
    points.append(drill.restart())
    assert all(p.ok for p in points), _failures(points)
    assert all(p.exit == KILLED for p in points[:-1]), _failures(points)
    assert [bool(s) for s in seen] == [exists for _, _, exists in picks], seen
    assert all("hook-sidecar-0" in s[0] for s in seen if s), seen


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_up_wait_stopped_by_sigterm_or_ctrl_c_tears_itself_down(drill, sig):
    """Regression: SIGTERM used to end `up` on the spot, leaving the pod, its libvirtd, QEMU and
    sidecar for `down`; now it is torn down like Ctrl-C (exit 143 / 130), during the hooks phase
    (libvirtd started) and while the guest boots (domain defined)."""
    steps, baseline = drill.count("up")
    assert baseline.ok, baseline.describe()
    libvirtd = next(i for i, s in enumerate(steps, 1) if s == "process libvirtd created")
    points = [drill.signal_at("up", sig, after_writes=n) for n in (libvirtd, len(steps))]
    points.append(drill.restart())
    assert all(p.ok for p in points), _failures(points)
    assert [p.exit for p in points[:2]] == [128 + sig] * 2


def test_down_name_removes_a_pod_directory_a_crash_left_before_its_journal(tmp_path):
    """Regression (bench/crash.py, migrate killed before its first write): the target pod's directory
    existed without a journal, `down NAME` matched no VMI in it, and the node stayed up for ever."""
    runtime = tmp_path / "rt"
    orphan = runtime / "pods" / "nb-vm-net-binding-passt-0a1b2c"
    orphan.mkdir(parents=True)
    assert sandbox.down(NAME, runtime) == []
    assert not orphan.exists() and not runtime.exists()
