"""Per-attachment state a binding plugin keeps between ADD and DEL/CHECK (what it changed, to undo it).

One JSON file per (network, container, ifname) under the plugin's ``dataDir``; written atomically,
so a crash mid-write leaves the previous file or none. The state records the namespace it was taken
in by path and by ``(dev, inode)`` (``netnsInode``), so nothing is ever undone in another namespace
that reuses the path.

``state_for_add`` is what ADD calls first: a state file left by an earlier ADD of the same
attachment is either a repeated ADD (it records this very namespace, alive) or stale (the runtime
never sent DEL: its namespace is gone, its path names another namespace now, or this ADD is for
another namespace). A stale attachment is undone where it can still be (its namespace alive under
its path) and its file removed, so ADD proceeds instead of refusing for ever.
"""
from __future__ import annotations

import os

from netbind.cni import _json
from netbind.cni._netns import NetNS
from netbind.cni._types import ERR_INVALID_NETWORK_CONFIG, ERR_IO_FAILURE, CNIError


def attachment_state_path(args, default_data_dir: str) -> str:
    data_dir = args.netconf.get("dataDir", default_data_dir)
    if not isinstance(data_dir, str) or not data_dir.startswith("/") or "\0" in data_dir:
        raise CNIError(ERR_INVALID_NETWORK_CONFIG, f"dataDir must be an absolute path, got {data_dir!r}")
    return os.path.join(data_dir, args.name, f"{args.container_id}-{args.ifname}.json")


def load_attachment_state(path: str) -> dict | None:
    """The saved state, or None when there is none (never added, or already deleted)."""
    try:
        with open(path, "rb") as fh:
            state = _json.loads(fh.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CNIError(ERR_IO_FAILURE, f"cannot read state file {path}: {exc}") from None
    return state if isinstance(state, dict) else None


def save_attachment_state(path: str, state: dict) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(_json.dumps(state))
        os.replace(tmp, path)
    except OSError as exc:
        raise CNIError(ERR_IO_FAILURE, f"cannot write state file {path}: {exc.strerror or exc} "
                                       "(dataDir must be a writable directory)") from None


def recorded_netns(state: dict) -> NetNS | None:
    """The namespace ``state`` was recorded in, if its path still names that namespace; else None
    (gone, or the path reused by another namespace): then there is nothing left there to undo."""
    path, inode = state.get("netns"), state.get("netnsInode")
    if not isinstance(path, str) or not path or not isinstance(inode, list):
        return None
    netns = NetNS(path)
    try:
        return netns if list(netns.inode()) == inode else None
    except CNIError:
        return None


def records_netns(state: dict | None, netns: NetNS) -> bool:
    """Whether ``state`` was recorded in ``netns`` itself (by device and inode, not by path)."""
    return state is not None and state.get("netnsInode") == list(netns.inode())


def state_for_add(path: str, netns: NetNS, undo, log) -> dict | None:
    """ADD's view of an earlier state file at ``path``: the state when it records ``netns`` itself
    (the same live namespace, compared by device and inode: a repeated ADD), else None.

    A stale state is handed to ``undo(state)`` (the plugin's DEL work, which must check
    ``recorded_netns`` itself), then removed with any temporary file a crashed write left; an
    unreadable one is only removed (nothing can be undone from it). ``netns`` must open (the
    caller's ADD fails first otherwise)."""
    try:
        state = load_attachment_state(path)
    except CNIError as exc:
        log(f"replacing unreadable attachment state: {exc.msg}")
        state, undo = {}, None
    _remove_temporaries(path)
    if state is None:
        if os.path.exists(path):     # valid JSON but not a state object
            log(f"replacing attachment state {path}: not a JSON object")
            _unlink(path)
        return None
    if state and records_netns(state, netns):
        return state
    if undo is not None:
        log(f"replacing stale attachment state {path}: it records namespace {state.get('netns')!r}, "
            f"{'still alive: undoing it' if recorded_netns(state) else 'gone or replaced'}")
        undo(state)
    _unlink(path)
    return None


def _remove_temporaries(path: str) -> None:
    directory, prefix = os.path.split(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix + ".tmp"):
            _unlink(os.path.join(directory, name))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CNIError(ERR_IO_FAILURE, f"cannot remove stale state file {path}: {exc}") from None
