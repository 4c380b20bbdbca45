"""Cache housekeeping shared by the guest image and the native stack."""
from __future__ import annotations

import os
import time
from pathlib import Path

from netbind.node import paths


def test_prune_builds_keeps_current_recent_and_foreign_entries(tmp_path):
    old = time.time() - paths.BUILD_RETENTION_SECONDS - 60
    current, recent, stale, stale_tmp, other = (tmp_path / n for n in
                                                ("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc",
                                                 ".build-x1", "apt"))
    for d in (current, recent, stale, stale_tmp, other):
        d.mkdir()
    for d in (current, stale, stale_tmp, other):
        os.utime(d, (old, old))
    (tmp_path / "inputs.json").write_text("{}")
    paths.prune_builds(tmp_path, keep=current)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "apt", "inputs.json"])


def test_prune_builds_keeps_an_old_build_a_process_holds_open_mapped_or_names(tmp_path):
    import mmap
    import subprocess
    import sys

    old = time.time() - paths.BUILD_RETENTION_SECONDS - 60
    current, opened, mapped, named, unused = (tmp_path / (c * 16) for c in "abcde")
    for d in (current, opened, mapped, named, unused):
        d.mkdir()
        (d / "disk.qcow2").write_bytes(b"x" * 4096)
        os.utime(d, (old, old))
    # a running VM's QEMU holds its base disk open: here a child process does
    holder = subprocess.Popen(["sleep", "60"], stdin=open(opened / "disk.qcow2", "rb"))
    # a tiny VM's QEMU read its -kernel at start and closed it; its command line still names it
    namer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-kernel",
                              str(named / "disk.qcow2")])
    # the kernel sets a new program's argument area a moment after exec has let the parent go on
    deadline = time.monotonic() + 10
    while str(named).encode() not in Path(f"/proc/{namer.pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "the child never showed its command line"
        time.sleep(0.01)
    try:
        with open(mapped / "disk.qcow2", "rb") as f:
            view = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)   # mapped after its fd is closed
        try:
            paths.prune_builds(tmp_path, keep=current)
        finally:
            view.close()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a" * 16, "b" * 16, "c" * 16, "d" * 16]
    finally:
        for child in (holder, namer):
            child.kill()
            child.wait()
    paths.prune_builds(tmp_path, keep=current)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a" * 16]


def test_locked_serialises_holders(tmp_path):
    with paths.locked(tmp_path / "d"):
        assert (tmp_path / "d" / ".lock").exists()


def test_building_lands_the_work_dir_in_one_rename_and_replaces_the_old_build(tmp_path):
    target = tmp_path / "cache" / "0123456789abcdef"
    target.mkdir(parents=True)
    (target / "old").write_text("old build")
    with paths.building(target) as work:
        assert work.parent == target.parent and work.name.startswith(".build-")
        (work / "manifest.json").write_text("{}")
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json"]
    assert oct(target.stat().st_mode & 0o777) == "0o755"
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_building_that_fails_leaves_the_old_build_and_no_work_dir(tmp_path):
    target = tmp_path / "0123456789abcdef"
    target.mkdir()
    (target / "manifest.json").write_text("{}")
    try:
        with paths.building(target) as work:
            (work / "half").write_text("x")
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert (target / "manifest.json").exists()


def test_remembered_inputs_last_until_apt_lists_change(tmp_path, monkeypatch):
    from netbind.node import apt

    lists = tmp_path / "lists"
    lists.mkdir()
    monkeypatch.setattr(apt, "_APT_LISTS", lists)
    apt.remember(tmp_path / "cache", {"kernel": "6.1", "ours": "h1"})
    assert apt.remembered(tmp_path / "cache", dict, ours="h1") == {"kernel": "6.1", "ours": "h1"}
    assert apt.remembered(tmp_path / "cache", dict, ours="h2") is None       # our files changed
    os.utime(lists, ns=(0, lists.stat().st_mtime_ns + 1_000_000))   # apt-get update ran
    assert apt.remembered(tmp_path / "cache", dict, ours="h1") is None
    (tmp_path / "cache" / "inputs.json").write_text("[not json")
    assert apt.remembered(tmp_path / "cache", dict) is None


def test_remove_tree_outlasts_a_file_landing_while_it_walks_and_names_what_stands(tmp_path, monkeypatch):
    import shutil

    import pytest

    from netbind.node import journal

    pod = tmp_path / "pod"
    (pod / "logs").mkdir(parents=True)
    real_rmtree = shutil.rmtree
    landed = []

    def racing_rmtree(path, ignore_errors=False):
        real_rmtree(path / "logs", ignore_errors=True)
        if not landed:   # a killed sidecar's last log line lands after its directory was emptied
            landed.append(True)
            (path / "logs").mkdir()
            (path / "logs" / "sidecar.log").write_text("bye\n")
            return
        real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(journal.shutil, "rmtree", racing_rmtree)
    journal.remove_tree(pod)
    assert not pod.exists() and landed

    (pod / "libvirt").mkdir(parents=True)
    monkeypatch.setattr(journal.shutil, "rmtree", lambda path, ignore_errors=False: None)
    with pytest.raises(journal.UndoError, match=r"could not remove .*pod \(still in it: libvirt\)"):
        journal.remove_tree(pod, attempts=3)
