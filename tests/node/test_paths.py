"""Cache housekeeping shared by the guest image and the native stack."""
from __future__ import annotations

import os
import time

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


def test_locked_serialises_holders(tmp_path):
    with paths.locked(tmp_path / "d"):
        assert (tmp_path / "d" / ".lock").exists()
