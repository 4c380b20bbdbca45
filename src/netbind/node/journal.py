"""What the runtime created, recorded on disk before and after each creation.

Every effectful step writes an ``intended`` entry *before* it creates a thing and marks it
``created`` afterwards, so that after a crash (kill -9, power loss in the middle of a step) the
journal still names everything that may exist. Undo walks the entries newest first and calls the
undo action registered for the entry's kind; undo actions are idempotent (a thing already gone is
fine), so undoing an ``intended`` entry whose creation never happened is harmless.

Fault injection (crash drills, ``tests/node/test_crash.py`` and ``bench/crash.py``): with
``NETBIND_FAULT_KILL_AT=N`` in its environment a process SIGKILLs itself right after its N-th
journal write (every write counts: a journal's creation, each ``intended`` and ``created`` mark,
each entry forgotten or undone), so every recorded step can be crashed at, one run per N;
``NETBIND_FAULT_KILL_AT=N:before`` kills just *before* the N-th write instead (the step's work done,
its record not yet written). ``NETBIND_FAULT_COUNT=FILE`` appends one line per write to FILE
(``N kind name state``) to count the writes of a run. Both are read once, at import, and removed
from the environment so that child processes never inherit them; unset, they cost nothing.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection

JOURNAL_FILE = "journal.json"
FAULT_KILL_AT = "NETBIND_FAULT_KILL_AT"
FAULT_COUNT = "NETBIND_FAULT_COUNT"


def _fault_settings() -> tuple[int, bool, str | None]:
    """(write index to kill at or 0, whether before that write, the count file); read once."""
    spec, count = os.environ.pop(FAULT_KILL_AT, ""), os.environ.pop(FAULT_COUNT, None)
    index, _, when = spec.partition(":")
    if spec and (not index.isdigit() or when not in ("", "before", "after")):
        raise ValueError(f"{FAULT_KILL_AT}={spec!r}: expected N, N:before or N:after (N >= 1)")
    return (int(index) if spec else 0), when == "before", count or None


_KILL_AT, _KILL_BEFORE, _COUNT_FILE = _fault_settings()
_writes = 0


def _fault_point(position: str, what: str) -> None:
    """Called around every journal write when fault injection is on (see the module docstring)."""
    global _writes
    if position == "before":
        if _KILL_BEFORE and _writes + 1 == _KILL_AT:
            os.kill(os.getpid(), signal.SIGKILL)
        return
    _writes += 1
    if _COUNT_FILE:
        with open(_COUNT_FILE, "a") as f:
            f.write(f"{_writes} {what}\n")
    if not _KILL_BEFORE and _writes == _KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)

# kind -> "module:function" taking the entry's attrs; resolved on use (keeps imports lazy and lets
# other layers, e.g. CNI attachments or libvirt domains, add their kinds without a cycle).
UNDO: dict[str, str] = {
    "netns": "netbind.node.sandbox:undo_netns",
    "link": "netbind.node.sandbox:undo_link",
    "process": "netbind.node.procs:undo_process",
    "container": "netbind.node.containers:undo_container",
    "cgroup": "netbind.node.cgroups:undo_cgroup",
    "dir": "netbind.node.journal:undo_dir",
    "mountpoint": "netbind.node.journal:undo_mountpoint",
    "file": "netbind.node.journal:undo_file",
    "domain": "netbind.node.libvirt:undo_domain",
    "cni-attachment": "netbind.node.multus:undo_attachment",
    "netpod-layout": "netbind.node.handler:undo_layout",
}


class UndoError(RuntimeError):
    """Some recorded things could not be removed; the journal keeps them for the next try."""


@dataclass
class Entry:
    kind: str
    name: str
    attrs: dict[str, Any] = field(default_factory=dict)
    state: str = "intended"

    def key(self) -> tuple[str, str]:
        return self.kind, self.name


class Journal:
    """The on-disk record of one owner (a pod sandbox or the node), in ``directory/journal.json``."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.path = directory / JOURNAL_FILE
        self.meta: dict[str, Any] = {}
        self.entries: list[Entry] = []
        if self.path.exists():
            data = json.loads(self.path.read_text())
            self.meta = data.get("meta", {})
            self.entries = [Entry(**e) for e in data["entries"]]

    @classmethod
    def create(cls, directory: Path, meta: dict[str, Any] | None = None) -> "Journal":
        directory.mkdir(parents=True, exist_ok=True)
        journal = cls(directory)
        journal.meta.update(meta or {})
        journal.save(f"create {directory.name} -")
        return journal

    def save(self, what: str = "save") -> None:
        if _KILL_AT or _COUNT_FILE:
            _fault_point("before", what)
        data = {"meta": self.meta, "entries": [e.__dict__ for e in self.entries]}
        tmp = self.path.with_name(JOURNAL_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
        if _KILL_AT or _COUNT_FILE:
            _fault_point("after", what)

    def intend(self, kind: str, name: str, **attrs: Any) -> Entry:
        if kind not in UNDO:
            raise ValueError(f"journal kind {kind!r} has no undo action; register it in journal.UNDO")
        entry = Entry(kind, name, dict(attrs))
        self.entries.append(entry)
        self.save(f"{kind} {name} intended")
        return entry

    def created(self, entry: Entry, **attrs: Any) -> None:
        entry.attrs.update(attrs)
        entry.state = "created"
        self.save(f"{entry.kind} {entry.name} created")

    def forget(self, entry: Entry) -> None:
        """Drop an entry whose thing is known not to exist (its creator already undid it)."""
        self.entries.remove(entry)
        self.save(f"{entry.kind} {entry.name} forgotten")

    def find(self, kind: str, name: str | None = None) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind and (name is None or e.name == name)]

    def undo(self, since: int = 0) -> None:
        """Undo entries[since:], newest first; raise UndoError listing what is left."""
        failures: list[str] = []
        for entry in reversed(self.entries[since:]):
            try:
                _undo_action(entry.kind)(entry.attrs | {"name": entry.name})
            except Exception as exc:  # keep going: remove as much as possible, report the rest
                failures.append(f"{entry.kind} {entry.name}: {exc}")
                continue
            self.entries.remove(entry)
            self.save(f"{entry.kind} {entry.name} undone")
        if failures:
            raise UndoError("could not remove: " + "; ".join(failures))

    def destroy(self) -> None:
        """Undo everything, then remove the journal's directory."""
        self.undo()
        remove_tree(self.directory)


def _undo_action(kind: str) -> Callable[[dict[str, Any]], None]:
    module, function = UNDO[kind].split(":")
    return getattr(importlib.import_module(module), function)


def remove_tree(directory: Path, attempts: int = 50) -> None:
    """rmtree that finishes: a process that was just killed can still land a file (its last log
    line, a socket) while the tree is walked, and rmtree then gives up on a non-empty directory.
    Retry for a moment; what still stands after that is an error, not a silent leftover."""
    for _ in range(attempts):
        shutil.rmtree(directory, ignore_errors=True)
        if not os.path.lexists(directory):
            return
        time.sleep(0.02)
    left = sorted(str(p.relative_to(directory)) for p in Path(directory).rglob("*"))[:5]
    raise UndoError(f"could not remove {directory} (still in it: {', '.join(left) or 'nothing listed'})")


def undo_dir(attrs: dict[str, Any]) -> None:
    remove_tree(Path(attrs["name"]))


def undo_file(attrs: dict[str, Any]) -> None:
    Path(attrs["name"]).unlink(missing_ok=True)


def undo_mountpoint(attrs: dict[str, Any]) -> None:
    """A host directory made only to mount over in private namespaces: remove it if still empty
    and no mount namespace (another runtime's sidecar, say) has something mounted on it, and no
    other runtime dir records it (that runtime still needs it, and removes it when it goes)."""
    if mounted_anywhere(attrs["name"]):
        return
    if "runtime" in attrs and mountpoint_recorded_elsewhere(attrs["name"], {Path(attrs["runtime"])}):
        return
    try:
        os.rmdir(attrs["name"])
    except FileNotFoundError:
        pass
    except OSError:
        pass  # not empty or mounted on by someone else: leave it


def mountpoint_recorded_elsewhere(path: str, own_runtimes: Collection[Path]) -> bool:
    """Whether a node journal of a runtime dir (``/run/*/node``) other than ``own_runtimes``
    records ``path`` as a mount point it uses."""
    for journal in Path("/run").glob("*/node/journal.json"):
        if journal.parent.parent in own_runtimes:
            continue
        try:
            entries = json.loads(journal.read_text()).get("entries", [])
        except (OSError, ValueError):
            continue
        if any(e.get("kind") == "mountpoint" and e.get("name") == path for e in entries):
            return True
    return False


def mounted_anywhere(path: str) -> bool:
    """Whether a process that shares our root directory has something mounted on ``path``.

    Processes under another root (a chroot, a container) name their own directories with the same
    strings, so they are not asked.
    """
    root = os.stat("/")
    seen: set[int] = set()
    for ns in Path("/proc").glob("[0-9]*/ns/mnt"):
        try:
            their_root = os.stat(ns.parent.parent / "root")
            if (their_root.st_dev, their_root.st_ino) != (root.st_dev, root.st_ino):
                continue
            inode = os.stat(ns).st_ino
            if inode in seen:
                continue
            seen.add(inode)
            mountinfo = (ns.parent.parent / "mountinfo").read_text()
        except OSError:
            continue
        if any(line.split()[4] == path for line in mountinfo.splitlines()):
            return True
    return False
