"""The audit trail's diff: trimmed before difflib, yet a correct unified diff of the whole document."""
from __future__ import annotations

import difflib
import io
import json
import re
import threading
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import example, given, settings, strategies as st

from netbind.domain import Domain
from netbind.hooks._audit import MAX_PENDING_DIFFS, AuditLog, unified_diff, xml_diff

ORACLE = Path(__file__).resolve().parents[3] / "shared" / "oracle" / "passt-sidecar"
HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@$")


def apply_unified_diff(a: list[str], diff: str) -> list[str]:
    """Apply ``diff`` to ``a`` strictly: every context and removed line must match."""
    lines = diff.splitlines(keepends=True)
    if not lines:
        return list(a)
    assert lines[0].startswith("--- ") and lines[1].startswith("+++ ")
    out: list[str] = []
    pos = 0
    for line in lines[2:]:
        header = HUNK.match(line.rstrip("\n"))
        if header:
            start, length = int(header[1]), int(header[2] or 1)
            index = start - 1 if length else start
            assert index >= pos, "hunks out of order"
            out += a[pos:index]
            pos = index
        elif line[0] == "+":
            out.append(line[1:])
        else:
            assert line[0] in " -" and a[pos] == line[1:], f"line {pos + 1} does not match {line!r}"
            if line[0] == " ":
                out.append(a[pos])
            pos += 1
    return out + a[pos:]


def _edits(diff: str) -> Counter:
    return Counter(line for line in diff.splitlines()[2:] if line[:1] in "+-")


lines = st.lists(st.sampled_from([f"<l{i}/>\n" for i in range(6)]), max_size=40)


@settings(max_examples=300, deadline=None)
@given(a=lines, b=lines)
def test_trimmed_diff_transforms_the_first_document_into_the_second(a, b):
    diff = unified_diff(a, b, fromfile="x", tofile="y")
    assert apply_unified_diff(a, diff) == b
    assert (diff == "") == (a == b)


# short lines that repeat, partial last lines, non-ASCII: where a head or tail found on the bytes
# could stop inside a line or claim a line twice
_pieces = st.sampled_from(["<a>\n", "<b/>\n", "q\n", "q", "\n", "ü", "</a>"])
documents = st.lists(_pieces, max_size=30).map(lambda parts: "".join(parts).encode())


@settings(max_examples=500, deadline=None)
@given(a=documents, b=documents)
@example(a=b"q\nx", b=b"<b/>\nq\nq\nx")            # the tail reaches back to the head
@example(a=b"q\n\nq\nq\n\n", b=b"q\nq\nq\n\n")   # the common suffix starts on a line start
def test_xml_diff_on_bytes_is_the_line_diff_of_the_documents(a, b):
    diff = xml_diff(a, b)
    a_lines, b_lines = a.decode().splitlines(keepends=True), b.decode().splitlines(keepends=True)
    assert diff == unified_diff(a_lines, b_lines, fromfile="domain.in.xml", tofile="domain.out.xml")
    if a.endswith(b"\n") and b.endswith(b"\n"):   # a unified diff has no "no newline at end" marker here
        assert apply_unified_diff(a_lines, diff) == b_lines


SUCCESS_VECTORS = [p for p in sorted(ORACLE.glob("*.json")) if not json.loads(p.read_text()).get("error")]


@pytest.mark.parametrize("vector", SUCCESS_VECTORS, ids=lambda p: p.stem)
def test_diff_of_the_passt_sidecar_on_each_vector_is_difflibs_full_diff(vector):
    """On real documents the trimmed diff adds and removes the same lines as difflib's full diff
    (an insertion among equal lines may be placed differently) and reproduces the output."""
    from netbind.hooks import App
    from netbind.plugins.passt.sidecar import on_define_domain

    case = json.loads(vector.read_text())
    app = App("passt", binding=case["sidecar_env"].get("NETWORK_BINDING_PLUGIN_NAME") or "passt", audit="off")
    app.on_define_domain(on_define_domain)
    before = Domain.parse(case["input_domain_xml"]).to_bytes()
    after = app.define_domain(case["input_domain_xml"].encode(), case["input_vmi_json"].encode())
    a, b = before.decode().splitlines(keepends=True), after.decode().splitlines(keepends=True)
    diff = xml_diff(before, after)
    assert diff and max(len(line) for line in diff.splitlines()) <= 240
    full = "".join(difflib.unified_diff(a, b, fromfile="domain.in.xml", tofile="domain.out.xml", n=1))
    assert _edits(diff) == _edits(full)
    assert apply_unified_diff(a, diff) == b


def test_compact_xml_is_pretty_printed_for_the_diff():
    before = b'<domain type="kvm"><name>vm</name><devices>' + b'<disk type="file"/>' * 20 + b"</devices></domain>"
    after = before.replace(b"<devices>", b'<devices><interface type="ethernet"><alias name="ua-x"/></interface>')
    diff = xml_diff(before, after)
    assert '+    <interface type="ethernet">\n' in diff and '+      <alias name="ua-x"/>\n' in diff
    assert max(len(line) for line in diff.splitlines()) < 80


def test_call_record_reports_what_the_handler_changed():
    log = AuditLog("diff", stream=io.StringIO(), sidecar="s")
    same = b"<domain>\n  <name>vm</name>\n</domain>"
    log.call("OnDefineDomain", version="v1alpha3", vmi="ns/vm", duration_s=0.001, before=same, after=same)
    log.call("OnDefineDomain", version="v1alpha3", vmi="ns/vm", duration_s=0.001, before=same,
             after=same.replace(b"vm", b"vm2"))
    first, second = (json.loads(line) for line in log.stream.getvalue().splitlines())
    assert first["changed"] is False and "diff" not in first
    assert second["changed"] is True
    assert second["diff"] == ("--- domain.in.xml\n+++ domain.out.xml\n@@ -1,3 +1,3 @@\n <domain>\n"
                              "-  <name>vm</name>\n+  <name>vm2</name>\n </domain>")


def test_background_writer_keeps_order_and_writes_everything_on_close():
    log = AuditLog("diff", stream=io.StringIO(), sidecar="s")
    log.start_background()
    doc = b"<domain>\n  <name>vm</name>\n</domain>"
    n = MAX_PENDING_DIFFS   # all within the backlog bound: every record keeps its diff
    for i in range(n):
        log.call("OnDefineDomain", version="v1alpha3", vmi=f"ns/vm{i}", duration_s=0.0, before=doc,
                 after=doc.replace(b"vm", f"vm{i}".encode()))
        log.event("tick", n=i)
    log.close()
    records = [json.loads(line) for line in log.stream.getvalue().splitlines()]
    assert [r.get("vmi") or r["n"] for r in records] == [x for i in range(n) for x in (f"ns/vm{i}", i)]
    assert all(f"+  <name>vm{i}</name>" in r["diff"] for i, r in zip(range(n), records[::2]))
    log.event("after-close")  # written at once again
    assert json.loads(log.stream.getvalue().splitlines()[-1])["event"] == "after-close"


def test_held_records_are_composed_on_release_in_order_and_then_written():
    log = AuditLog("diff", stream=io.StringIO(), sidecar="s")
    log.start_background()
    doc = b"<domain>\n  <name>vm</name>\n</domain>"
    log.hold()   # as a server does around a call: the diff waits until the reply is out
    for i in range(3):
        log.call("OnDefineDomain", version="v1alpha3", vmi=f"ns/vm{i}", duration_s=0.0, before=doc,
                 after=doc.replace(b"vm", f"vm{i}".encode()))
    log.flush()
    assert log.stream.getvalue() == ""
    log.release()
    log.call("OnDefineDomain", version="v1alpha3", vmi="ns/after", duration_s=0.0, before=doc, after=doc)
    log.close()
    records = [json.loads(line) for line in log.stream.getvalue().splitlines()]
    assert [r["vmi"] for r in records] == ["ns/vm0", "ns/vm1", "ns/vm2", "ns/after"]
    assert all(f"+  <name>vm{i}</name>" in r["diff"] for i, r in enumerate(records[:3]))
    assert records[3]["changed"] is False
    assert log._pending_diffs == 0   # every comparison counted while queued is released once written


class _BlockedStream(io.StringIO):
    """A stderr the writer thread cannot write to until released (a stuck log pipe)."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def write(self, text):
        assert self.release.wait(10)
        return super().write(text)


def test_a_writer_that_falls_behind_bounds_memory_and_still_writes_every_record():
    stream = _BlockedStream()
    log = AuditLog("diff", stream=stream, sidecar="s")
    log.start_background()
    doc = b"<domain>\n  <name>vm</name>\n</domain>"
    calls = MAX_PENDING_DIFFS * 3
    for i in range(calls):
        log.call("OnDefineDomain", version="v1alpha3", vmi=f"ns/vm{i}", duration_s=0.0, before=doc,
                 after=doc.replace(b"vm", f"vm{i}".encode()))
    stream.release.set()
    log.close()
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["vmi"] for r in records] == [f"ns/vm{i}" for i in range(calls)]
    with_diff = [r for r in records if "diff" in r]
    # the bound, plus the one the writer may have taken before it blocked on the stream
    assert MAX_PENDING_DIFFS <= len(with_diff) <= MAX_PENDING_DIFFS + 1 < calls
    assert all(r["diff_skipped"] == "audit backlog" for r in records if "diff" not in r)


SIDECAR_SCRIPT = """
import sys
from netbind.hooks import App, Interface
app = App("audited", audit="diff")

@app.on_define_domain
def define(domain, ctx):
    iface = Interface.create("ethernet")
    iface.alias = "ua-" + ctx.vmi_name.split("/")[-1]
    domain.put_interface(iface)

sys.exit(app.run(sys.argv[2]))
"""


@pytest.mark.parametrize("stop", ["sigterm", "shutdown-rpc"])
def test_no_audit_record_is_lost_when_the_sidecar_stops(tmp_path, hook_sockets_dir, stop):
    import signal
    import sys

    from netbind.launcher.hooks import HookManager
    from netbind.testing.hooks import SidecarProcess

    script = tmp_path / "sidecar.py"
    script.write_text(SIDECAR_SCRIPT)
    domain = b"<domain>\n\t<devices>\n" + b'\t\t<disk type="file"/>\n' * 30 + b"\t</devices>\n</domain>"
    with SidecarProcess([sys.executable, str(script)], hook_sockets_dir / "s" / "a.sock") as proc:
        with HookManager(hook_sockets_dir, persistent=True) as manager:
            manager.collect(1, timeout=5)
            for i in range(40):
                vmi = json.dumps({"metadata": {"namespace": "ns", "name": f"vm{i}"}}).encode()
                manager.on_define_domain(domain, vmi)
            if stop == "shutdown-rpc":
                manager.shutdown()
            else:
                proc.process.send_signal(signal.SIGTERM)  # right after the last reply
        assert proc.wait(10) == 0
        records = proc.audit_records()
    calls = [r for r in records if r["event"] == "call"]
    assert [r["vmi"] for r in calls] == [f"ns/vm{i}" for i in range(40)]
    assert all('+\t\t<interface type="ethernet">' in r["diff"] and f'<alias name="ua-vm{i}"/>' in r["diff"]
               for i, r in enumerate(calls))
    assert records[-1]["event"] == "stopped"
