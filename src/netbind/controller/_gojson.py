"""JSON text byte-identical to Go's ``encoding/json.Marshal`` for the values we emit.

Go writes compact JSON, keeps non-ASCII as UTF-8, and escapes ``<``, ``>``, ``&``, U+2028 and U+2029
(HTML-safe output). Key order is the caller's: build dicts in Go struct-field order.
"""
from __future__ import annotations

import json
from typing import Any

_HTML_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                            "\u2028": "\\u2028", "\u2029": "\\u2029"})


def go_json(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.translate(_HTML_SAFE)
