"""What the host's apt knows: package records, its Debian mirror, and a stamp of its lists.

The guest and image builds pin their inputs to what apt offers now. Asking apt-cache costs about
0.5 s, so a resolution is remembered beside the build cache until apt's lists change.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")

DEFAULT_MIRROR = "http://deb.debian.org/debian"
_APT_LISTS = Path("/var/lib/apt/lists")
_REMEMBERED = "inputs.json"


class AptError(RuntimeError):
    """apt cannot answer; the message says what to run."""


def show(*packages: str) -> dict[str, dict[str, str]]:
    """The candidate record of each package, by name (``apt-cache show --no-all-versions``)."""
    try:
        out = subprocess.run(["apt-cache", "show", "--no-all-versions", *packages],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise AptError(f"cannot look up {', '.join(packages)} with apt-cache ({exc}); run apt-get update") from None
    records: dict[str, dict[str, str]] = {}
    for block in out.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line[0].isspace())
        if "Package" in fields:
            records[fields["Package"]] = fields
    missing = [p for p in packages if p not in records]
    if missing:
        raise AptError(f"apt-cache knows no {', '.join(missing)}: run apt-get update")
    return records


def mirror() -> str:
    """The Debian mirror this host's apt uses (so what we build comes from where the host's does)."""
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            found = re.match(r"\s*(?:URIs:|deb\s+(?:\[[^]]*\]\s+)?)\s*(\S+)", line)
            if found and "security" not in found.group(1):
                return found.group(1).rstrip("/")
    return DEFAULT_MIRROR


def stamp() -> str:
    """Changes whenever `apt-get update` ran."""
    try:
        return str(_APT_LISTS.stat().st_mtime_ns)
    except OSError:
        return ""


def remembered(cache: Path, kind: Callable[..., T], **expected: Any) -> T | None:
    """The inputs last ``remember``-ed in ``cache`` as a ``kind``, if apt's lists did not change
    since and each ``expected`` field (our own files' hash) still has its value."""
    try:
        data = json.loads((cache / _REMEMBERED).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("apt") != stamp() or not isinstance(data.get("inputs"), dict):
        return None
    inputs = data["inputs"]
    if any(inputs.get(key) != value for key, value in expected.items()):
        return None
    try:
        return kind(**inputs)
    except TypeError:   # written by another version of the inputs
        return None


def remember(cache: Path, inputs: dict) -> None:
    try:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / _REMEMBERED).write_text(json.dumps({"apt": stamp(), "inputs": inputs}))
    except OSError:
        pass   # only a cache: the next call asks apt again
