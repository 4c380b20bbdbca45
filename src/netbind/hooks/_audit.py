"""Audit trail: one JSON object per line on stderr for every call and lifecycle event."""
from __future__ import annotations

import atexit
import difflib
import json
import os
import queue
import re
import sys
import threading
import time
from typing import IO, Any

from lxml import etree

AUDIT_MODES = ("diff", "summary", "off")
# Calls whose comparison waits for the writer thread; beyond this a record goes without its diff.
MAX_PENDING_DIFFS = 32
# The writer thread, woken by a record, waits this long for more before writing them all: one
# wake-up (and one turn at the GIL) for a burst of calls instead of one per call.
WRITE_BATCH_SECONDS = 0.005
_PRETTY_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
# A changed line longer than this means compact XML: the diff is then taken of a pretty-printed copy.
_MAX_DIFF_LINE = 240
_HUNK_HEADER = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@", re.MULTILINE)


def audit_mode_from_env(default: str = "diff") -> str:
    mode = os.environ.get("NETBIND_HOOKS_AUDIT", default).strip().lower() or default
    if mode not in AUDIT_MODES:
        raise ValueError(f"NETBIND_HOOKS_AUDIT={mode!r}: use one of {', '.join(AUDIT_MODES)}")
    return mode


def _pretty_lines(xml: bytes) -> list[str]:
    """One element per line, so a diff of compact XML stays readable."""
    try:
        root = etree.fromstring(xml, _PRETTY_PARSER)
        text = etree.tostring(root, encoding="unicode", pretty_print=True)
    except etree.XMLSyntaxError:
        text = xml.decode("utf-8", "replace")
    return text.splitlines(keepends=True)


def _common_ends(a: list[str], b: list[str]) -> tuple[int, int]:
    """Lengths of the common leading and trailing runs of lines (not overlapping)."""
    limit = min(len(a), len(b))
    head = 0
    while head < limit and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < limit - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    return head, tail


def unified_diff(a: list[str], b: list[str], *, fromfile: str, tofile: str, n: int = 1) -> str:
    """``difflib.unified_diff`` of the lines that differ: the common head and tail (all but ``n``
    context lines) are cut before difflib's quadratic matcher runs, and hunk line numbers are
    shifted back. A hook changes a few elements of a long document, so this is the cheap part."""
    head, tail = _common_ends(a, b)
    return _trimmed_diff(a, b, head, tail, fromfile, tofile, n)


def _trimmed_diff(a: list[str], b: list[str], head: int, tail: int, fromfile: str, tofile: str,
                  n: int) -> str:
    if head == len(a) == len(b):
        return ""
    start = max(0, head - n)
    keep = max(0, tail - n)
    return _window_diff(a[start:len(a) - keep], b[start:len(b) - keep], start, fromfile, tofile, n)


def _window_diff(a: list[str], b: list[str], start: int, fromfile: str, tofile: str, n: int) -> str:
    """difflib's diff of two windows that begin at line ``start`` of their documents."""
    body = "".join(difflib.unified_diff(a, b, fromfile=fromfile, tofile=tofile, n=n))
    if not start:
        return body

    def shift(match: re.Match) -> str:
        return (f"@@ -{int(match[1]) + start}{match[2] or ''} "
                f"+{int(match[3]) + start}{match[4] or ''} @@")

    return _HUNK_HEADER.sub(shift, body)


def _common_prefix(a: bytes, b: bytes, limit: int) -> int:
    """Length of the common prefix of ``a[:limit]`` and ``b[:limit]``: a binary search of slice
    comparisons (memcmp), not a loop over characters."""
    low, high = 0, limit   # a[:low] == b[:low]; they differ within [:high + 1]
    while low < high:
        mid = (low + high + 1) // 2
        if a[low:mid] == b[low:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def _common_line_ends(a: bytes, b: bytes) -> tuple[int, int, int]:
    """Byte offsets of the common leading and trailing runs of whole lines: (end of the head in
    both, start of the tail in a, in b); the runs do not overlap."""
    limit = min(len(a), len(b))
    prefix = _common_prefix(a, b, limit)
    head = a.rfind(b"\n", 0, prefix) + 1            # whole lines only
    suffix = _common_prefix(a[::-1], b[::-1], limit - head)
    tail_a, tail_b = len(a) - suffix, len(b) - suffix
    if not ((tail_a == 0 or a[tail_a - 1] == 10) and (tail_b == 0 or b[tail_b - 1] == 10)):
        newline = a.find(b"\n", tail_a)   # the tail's first whole line follows a newline in it
        tail_a = len(a) if newline < 0 else newline + 1
    return head, tail_a, len(b) - (len(a) - tail_a)


def _reserialized(xml: bytes) -> bytes:
    from netbind.domain import Domain

    return Domain.parse(xml, max_bytes=len(xml) + 1).to_bytes()


def xml_diff(before: bytes, after: bytes) -> str:
    """Unified diff of two serializations of a domain, line by line as written (KubeVirt indents
    its XML, and the domain helpers indent what they add); compact XML is pretty-printed first.
    The common head and tail are found on the bytes; only the lines between are decoded and split."""
    if before == after:
        return ""
    head, tail_a, tail_b = _common_line_ends(before, after)
    a_mid = before[head:tail_a].decode("utf-8", "replace").splitlines(keepends=True)
    b_mid = after[head:tail_b].decode("utf-8", "replace").splitlines(keepends=True)
    if any(len(line) > _MAX_DIFF_LINE for line in a_mid + b_mid):
        return unified_diff(_pretty_lines(before), _pretty_lines(after),
                            fromfile="domain.in.xml", tofile="domain.out.xml", n=1)
    # one line of context on each side, as difflib's n=1 keeps
    head_lines = before.count(b"\n", 0, head)
    context_before = before[before.rfind(b"\n", 0, head - 1) + 1:head] if head else b""
    after_end = before.find(b"\n", tail_a)
    context_after = before[tail_a:len(before) if after_end < 0 else after_end + 1]
    lead = [context_before.decode("utf-8", "replace")] if context_before else []
    trail = [context_after.decode("utf-8", "replace")] if context_after else []
    return _window_diff(lead + a_mid + trail, lead + b_mid + trail, head_lines - len(lead),
                        "domain.in.xml", "domain.out.xml", 1)


class AuditLog:
    """Writes audit records as JSON lines, in the order they were logged.

    While a sidecar serves, records are written by a background thread (:meth:`start_background`),
    so the diff and the write happen after the reply has gone out; :meth:`close` (called when the
    server stops, and at interpreter exit) writes everything still queued. Otherwise, and after
    ``close``, records are written at once.
    """

    def __init__(self, mode: str = "diff", stream: IO[str] | None = None, sidecar: str = ""):
        if mode not in AUDIT_MODES:
            raise ValueError(f"audit mode {mode!r}: use one of {', '.join(AUDIT_MODES)}")
        self.mode = mode
        self.stream = stream
        self.sidecar = sidecar
        self._lock = threading.Lock()
        self._queue: queue.Queue | None = None
        self._writer: threading.Thread | None = None
        self._atexit = False
        self._pending_diffs = 0
        self._held = threading.local()

    # -- logging --------------------------------------------------------------------------------
    def event(self, event: str, **fields: Any) -> None:
        if self.mode == "off":
            return
        self._submit((time.time(), event, fields, None))

    def call(self, hook: str, *, version: str, vmi: str | None, duration_s: float,
             before: bytes | None = None, after: bytes | None = None,
             error: str | None = None, code: str | None = None, reserialize_before: bool = False,
             invocation_context: str | None = None) -> None:
        """``before`` is the input, ``after`` the output; with ``reserialize_before`` the input is
        compared as the domain serializer writes it (parsed and written again on the writer's
        thread, off the reply path), so the record shows what a handler changed, not how lxml
        re-spells KubeVirt's XML (<a></a> -> <a/>)."""
        if self.mode == "off":
            return
        fields: dict[str, Any] = {"hook": hook, "version": version, "vmi": vmi,
                                  "duration_ms": round(duration_s * 1000, 3)}
        if invocation_context is not None:   # the Plugin API says why it calls
            fields["invocationContext"] = invocation_context
        pair = None
        if error is not None:
            fields.update(status="error", code=code, error=error)
        else:
            fields["status"] = "ok"
            if before is not None and after is not None:
                with self._lock:
                    backlog = self._queue is not None and self._pending_diffs >= MAX_PENDING_DIFFS
                    if not backlog:
                        self._pending_diffs += 1
                if backlog:
                    fields["diff_skipped"] = "audit backlog"   # memory stays bounded under a flood of calls
                else:
                    pair = (before, after, reserialize_before)
        item = (time.time(), "call", fields, pair)
        held = getattr(self._held, "items", None)
        if held is not None:
            held.append(item)
            return
        self._submit(item)

    def hold(self) -> None:
        """Keep this thread's call records until :meth:`release` (a server holds them while the
        reply is on its way, so the diff is taken after it and on this thread: no thread switch)."""
        self._held.items = []

    def release(self) -> None:
        """Compose this thread's held records (diff, JSON) and hand the lines to the writer."""
        items = getattr(self._held, "items", None)
        self._held.items = None
        for item in items or ():
            with self._lock:
                jobs = self._queue
            if jobs is None:
                self._write(item)
                continue
            line, with_diff = self._compose(item, keep_counted=True)
            jobs.put((line, with_diff))

    # -- writing --------------------------------------------------------------------------------
    def _submit(self, item: tuple) -> None:
        with self._lock:
            if self._queue is not None:
                self._queue.put(item)
                return
        self._write(item)

    def _write(self, item: tuple) -> None:
        line, _ = self._compose(item)
        self._write_line(line)

    def _write_line(self, line: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(line)
        stream.flush()

    def _compose(self, item: tuple, keep_counted: bool = False) -> tuple[str, bool]:
        """The JSON line of a record, and whether it carries a comparison; that one stays counted
        as pending (``keep_counted``) until its line is written."""
        when, event, fields, pair = item
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)), "sidecar": self.sidecar,
                  "event": event}
        record.update({k: v for k, v in fields.items() if v is not None})
        if pair is not None:
            if not keep_counted:
                with self._lock:
                    self._pending_diffs -= 1
            before, after, reserialize = pair
            try:
                if reserialize:
                    before = _reserialized(before)
                record["changed"] = before != after
                if record["changed"] and self.mode == "diff":
                    record["diff"] = xml_diff(before, after)
            except Exception as exc:  # keep the record; say why the diff is missing
                record["diff_error"] = f"{type(exc).__name__}: {exc}"
        return json.dumps(record, separators=(",", ":")) + "\n", pair is not None

    def _drain(self, jobs: queue.Queue) -> None:
        while True:
            item = jobs.get()
            time.sleep(WRITE_BATCH_SECONDS)   # let a burst gather; then write all that is queued
            while True:
                try:
                    if item is None:
                        return
                    try:
                        if isinstance(item[0], str):   # a line composed by release()
                            line, with_diff = item
                            try:
                                self._write_line(line)
                            finally:
                                if with_diff:
                                    with self._lock:
                                        self._pending_diffs -= 1
                        else:
                            self._write(item)
                    except Exception:  # a broken stream must not stop the writer (nor the sidecar)
                        pass
                finally:
                    jobs.task_done()
                try:
                    item = jobs.get_nowait()
                except queue.Empty:
                    break

    def start_background(self) -> None:
        """Write from a background thread from now on (idempotent)."""
        with self._lock:
            if self._queue is not None:
                return
            self._queue = queue.Queue()
            self._writer = threading.Thread(target=self._drain, args=(self._queue,),
                                            name="netbind-hook-audit", daemon=True)
            self._writer.start()
            if not self._atexit:  # records queued when the interpreter exits are still written
                atexit.register(self.close)
                self._atexit = True

    def flush(self) -> None:
        """Wait until every record logged so far is written."""
        jobs = self._queue
        if jobs is not None:
            jobs.join()

    def close(self) -> None:
        """Write what is queued, stop the background thread, write synchronously again."""
        with self._lock:
            jobs, writer = self._queue, self._writer
            self._queue = self._writer = None
            if jobs is not None:
                jobs.put(None)
        if writer is not None:
            writer.join()
