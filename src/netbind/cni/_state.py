"""Per-attachment state a binding plugin keeps between ADD and DEL/CHECK (what it changed, to undo it).

One JSON file per (network, container, ifname) under the plugin's ``dataDir``; written atomically,
so a crash mid-write leaves the previous file or none.
"""
from __future__ import annotations

import os

from netbind.cni import _json
from netbind.cni._types import ERR_INVALID_NETWORK_CONFIG, ERR_IO_FAILURE, CNIError


def attachment_state_path(args, default_data_dir: str) -> str:
    data_dir = args.netconf.get("dataDir", default_data_dir)
    if not isinstance(data_dir, str) or not data_dir.startswith("/"):
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
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(_json.dumps(state))
    os.replace(tmp, path)
