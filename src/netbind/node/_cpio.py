"""A deterministic newc cpio writer (what the kernel's initramfs unpacker reads).

Debian has no ``cpio`` installed by default and busybox's cpio stamps real mtimes; writing the few
bytes of the format ourselves keeps the guest image byte-for-byte reproducible.
"""
from __future__ import annotations

import gzip
import io
import stat
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    path: str           # relative, no leading "/"
    mode: int           # full st_mode (type + permissions)
    data: bytes = b""   # file content, or the target of a symlink


def directory(path: str, perm: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFDIR | perm)


def file(path: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(path, stat.S_IFREG | perm, data)


def _pad(n: int) -> bytes:
    return b"\0" * ((4 - n % 4) % 4)


def _header(ino: int, entry: Entry) -> bytes:
    name = entry.path.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (ino, entry.mode, 0, 0, nlink, 0, len(entry.data), 0, 0, 0, 0, len(name), 0)
    head = b"070701" + b"".join(b"%08X" % f for f in fields)
    return head + name + _pad(len(head) + len(name))


def archive(entries: list[Entry]) -> bytes:
    out = io.BytesIO()
    for ino, entry in enumerate(entries, start=1):
        out.write(_header(ino, entry))
        out.write(entry.data + _pad(len(entry.data)))
    out.write(_header(0, Entry("TRAILER!!!", 0)))
    return out.getvalue()


def gzipped(entries: list[Entry], level: int = 6) -> bytes:
    return gzip.compress(archive(entries), compresslevel=level, mtime=0)
