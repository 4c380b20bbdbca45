"""Reading the VMI JSON the way KubeVirt's Go sidecars do (``encoding/json`` into ``v1`` types).

Only the semantics that change results are reproduced: keys match case-insensitively (the last
matching key in the document wins), ``null`` means "zero value", and a value of the wrong JSON type
fails with Go's ``json: cannot unmarshal …`` text. This stays free of pydantic so the sidecar's
hot path is cheap; the typed model is available lazily through the hook context.
"""
from __future__ import annotations

import json
from typing import Any

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int": (-(2**63), 2**63 - 1)}


class VMIDecodeError(ValueError):
    """The VMI JSON cannot be decoded (message in Go's wording, without the ``failed to…`` prefix)."""


def _js_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _syntax_message(exc: json.JSONDecodeError) -> str:
    doc, pos = exc.doc, exc.pos
    if pos >= len(doc.rstrip()):
        return "unexpected end of JSON input"
    char = doc[pos]
    if exc.msg.startswith("Expecting value"):
        return f"invalid character {char!r} looking for beginning of value"
    if exc.msg.startswith("Expecting property name"):
        return f"invalid character {char!r} looking for beginning of object key string"
    if exc.msg.startswith("Extra data"):
        return f"invalid character {char!r} after top-level value"
    return f"invalid JSON at offset {pos}: {exc.msg}"


def _reject_constant(name: str):
    # Python's json reads NaN and Infinity; Go's encoding/json (and JSON) does not
    raise VMIDecodeError(f"invalid character {name[0]!r} looking for beginning of value")


def decode_vmi(raw: bytes | str) -> dict:
    """Decode VMI JSON; raise :class:`VMIDecodeError` with Go's wording on failure."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
    except UnicodeDecodeError as exc:
        raise VMIDecodeError(f"invalid UTF-8 in JSON input at offset {exc.start}") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise VMIDecodeError(_syntax_message(exc)) from None
    except RecursionError:  # Go stops at 10,000 levels with the same words; Python's parser sooner
        raise VMIDecodeError("exceeded max depth (the VMI JSON nests arrays or objects about 1,000 levels "
                             "deep: a VMI is never that deep)") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise VMIDecodeError(
            f"json: cannot unmarshal {_js_type(value)} into Go value of type v1.VirtualMachineInstance")
    return value


class GoObject:
    """A JSON object read as a Go struct: ``GoObject(data, "Interface", "spec.domain.devices.interfaces")``."""

    __slots__ = ("data", "struct", "path", "_folded")

    def __init__(self, data: dict | None, struct: str, path: str = ""):
        self.data = data or {}
        self.struct = struct
        self.path = path
        self._folded: dict | None = None

    def _raw(self, key: str) -> Any:
        # Go matches keys case-insensitively; of several matching keys the last one in the
        # document wins (each assignment overwrites the previous).
        if self._folded is None:
            self._folded = {k.casefold(): v for k, v in self.data.items()}
        return self._folded.get(key.casefold())

    def _path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _type_error(self, key: str, value: Any, go_type: str, number_text: str | None = None) -> VMIDecodeError:
        what = _js_type(value) if number_text is None else f"number {number_text}"
        return VMIDecodeError(
            f"json: cannot unmarshal {what} into Go struct field {self.struct}.{self._path(key)} of type {go_type}")

    def str(self, key: str) -> str:
        value = self._raw(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._type_error(key, value, "string")
        return value

    def bool(self, key: str) -> bool:
        value = self._raw(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._type_error(key, value, "bool")
        return value

    def int(self, key: str, go_type: str = "int32") -> int:
        value = self._raw(key)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._type_error(key, value, go_type)
        low, high = _INT_RANGES[go_type]
        if isinstance(value, float) or not low <= value <= high:
            raise self._type_error(key, value, go_type, number_text=json.dumps(value))
        return value

    def has(self, key: str) -> bool:
        """True when the key is present and not null (a Go pointer field that is non-nil)."""
        value = self._raw(key)
        if value is not None and not isinstance(value, dict):
            return True  # type error is reported by obj()
        return value is not None

    def obj(self, key: str, struct: str) -> "GoObject":
        value = self._raw(key)
        if value is not None and not isinstance(value, dict):
            raise self._type_error(key, value, f"v1.{struct}")
        return GoObject(value, struct, self._path(key))

    def list(self, key: str, struct: str) -> list["GoObject"]:
        value = self._raw(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._type_error(key, value, f"[]v1.{struct}")
        result = []
        for item in value:
            if item is not None and not isinstance(item, dict):
                raise self._type_error(key, item, f"v1.{struct}")
            result.append(GoObject(item, struct, self._path(key)))
        return result

    def str_map(self, key: str) -> dict[str, str]:
        value = self._raw(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._type_error(key, value, "map[string]string")
        for v in value.values():
            if v is not None and not isinstance(v, str):
                raise self._type_error(key, v, "string")
        return {k: (v or "") for k, v in value.items()}


def vmi_root(vmi: dict) -> GoObject:
    return GoObject(vmi, "VirtualMachineInstance")
