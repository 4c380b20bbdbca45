"""The host's binary facts (libvirtd's version, passt's vhost-user) are probed once per binary:
kept in the cache keyed by the binaries' identity, probed again when a binary changes."""
from __future__ import annotations

import json
import os

from netbind.node import host


def _script(path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_binary_facts_are_kept_until_a_binary_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("NETBIND_CACHE_DIR", str(tmp_path / "cache"))
    calls = tmp_path / "calls"
    libvirtd = _script(tmp_path / "libvirtd", f'echo x >> {calls}; echo "libvirtd (libvirt) 11.3.0"')
    passt = _script(tmp_path / "passt", 'echo "  --vhost-user  vhost-user mode"')

    assert host._binary_facts(libvirtd, passt) == {"libvirt": [11, 3, 0], "vhostUser": True}
    assert host._binary_facts(libvirtd, passt) == {"libvirt": [11, 3, 0], "vhostUser": True}
    assert calls.read_text().count("x") == 1          # the second answer came from the cache

    # an upgrade: another binary at the same path (dpkg writes a new file: a new inode or size)
    os.unlink(libvirtd)
    _script(tmp_path / "libvirtd", f'echo x >> {calls}; echo "libvirtd (libvirt) 11.4.10"')
    assert host._binary_facts(libvirtd, passt)["libvirt"] == [11, 4, 10]
    assert calls.read_text().count("x") == 2
    # no passt at all is a fact of its own, not the cached answer
    assert host._binary_facts(libvirtd, None) == {"libvirt": [11, 4, 10], "vhostUser": False}


def test_an_unreadable_or_broken_cache_only_costs_a_probe(tmp_path, monkeypatch):
    monkeypatch.setenv("NETBIND_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "host-facts.json").write_text("{not json")
    libvirtd = _script(tmp_path / "libvirtd", 'echo "libvirtd (libvirt) 9.0.0"')
    assert host._binary_facts(libvirtd, None) == {"libvirt": [9, 0, 0], "vhostUser": False}
    assert json.loads((tmp_path / "cache" / "host-facts.json").read_text())["facts"]["libvirt"] == [9, 0, 0]
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]   # no scratch left
