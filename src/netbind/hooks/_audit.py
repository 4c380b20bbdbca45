"""Audit trail: one JSON object per line on stderr for every call and lifecycle event."""
from __future__ import annotations

import difflib
import json
import os
import sys
import time
from typing import IO, Any

from lxml import etree

AUDIT_MODES = ("diff", "summary", "off")
_PRETTY_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)


def audit_mode_from_env(default: str = "diff") -> str:
    mode = os.environ.get("NETBIND_HOOKS_AUDIT", default).strip().lower() or default
    if mode not in AUDIT_MODES:
        raise ValueError(f"NETBIND_HOOKS_AUDIT={mode!r}: use one of {', '.join(AUDIT_MODES)}")
    return mode


def _pretty_lines(xml: bytes) -> list[str]:
    """One element per line, so a diff of compact XML (as KubeVirt sends it) stays readable."""
    try:
        root = etree.fromstring(xml, _PRETTY_PARSER)
        text = etree.tostring(root, encoding="unicode", pretty_print=True)
    except etree.XMLSyntaxError:
        text = xml.decode("utf-8", "replace")
    return text.splitlines(keepends=True)


def xml_diff(before: bytes, after: bytes) -> str:
    return "".join(difflib.unified_diff(_pretty_lines(before), _pretty_lines(after),
                                        fromfile="domain.in.xml", tofile="domain.out.xml", n=1))


class AuditLog:
    def __init__(self, mode: str = "diff", stream: IO[str] | None = None, sidecar: str = ""):
        if mode not in AUDIT_MODES:
            raise ValueError(f"audit mode {mode!r}: use one of {', '.join(AUDIT_MODES)}")
        self.mode = mode
        self.stream = stream
        self.sidecar = sidecar

    def event(self, event: str, **fields: Any) -> None:
        if self.mode == "off":
            return
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sidecar": self.sidecar,
                  "event": event}
        record.update({k: v for k, v in fields.items() if v is not None})
        stream = self.stream or sys.stderr
        stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        stream.flush()

    def call(self, hook: str, *, version: str, vmi: str | None, duration_s: float,
             before: bytes | None = None, after: bytes | None = None,
             error: str | None = None, code: str | None = None) -> None:
        if self.mode == "off":
            return
        fields: dict[str, Any] = {"hook": hook, "version": version, "vmi": vmi,
                                  "duration_ms": round(duration_s * 1000, 3)}
        if error is not None:
            fields.update(status="error", code=code, error=error)
        else:
            fields["status"] = "ok"
            if before is not None and after is not None:
                changed = before != after
                fields["changed"] = changed
                if changed and self.mode == "diff":
                    fields["diff"] = xml_diff(before, after)
        self.event("call", **fields)
