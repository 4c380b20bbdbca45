"""JSON for the plugin exec path, without importing ``json`` (and with it ``re``).

``import json`` costs ~6 ms of a ~6 ms interpreter start, so a CNI plugin that imported it would
double its start-up. The C scanner and string encoder behind ``json`` are used directly. Output is
formatted like Go's ``encoding/json`` (what CNI runtimes and KubeVirt's plugin print): compact or
4-space indent, ``<``, ``>`` and ``&`` escaped, non-ASCII kept as UTF-8.
"""
from __future__ import annotations

try:
    import _json as _c
except ImportError:  # pragma: no cover - interpreters without the C accelerator
    _c = None

_WHITESPACE = " \t\n\r"


class JSONError(ValueError):
    """Text is not valid JSON (the message says where)."""


def _reject_constant(name: str) -> float:
    raise JSONError(f"{name} is not valid JSON")


class _ScannerContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_reject_constant)
    memo: dict = {}


_scan = _c.make_scanner(_ScannerContext()) if _c is not None else None


def loads(text: str | bytes | bytearray):
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONError(f"not UTF-8: {exc}") from None
    if _scan is None:  # pragma: no cover
        import json

        try:
            return json.loads(text)
        except ValueError as exc:
            raise JSONError(str(exc)) from None
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as exc:
        raise JSONError(f"expected a JSON value at char {exc.value}") from None
    except RecursionError:
        raise JSONError("arrays or objects are nested too deeply (about 1,000 levels)") from None
    except (ValueError, SystemError):
        # The C scanner reports syntax errors through json.decoder.JSONDecodeError but only if
        # json.decoder is already imported (else SystemError); the error path can afford it.
        import json

        try:
            json.loads(text)
        except ValueError as exc:
            raise JSONError(str(exc)) from None
        raise  # pragma: no cover - the pure parser accepted what the C one rejected
    if text[end:].strip(_WHITESPACE):
        raise JSONError(f"extra data after the JSON value at char {end}")
    return value


def _encode_string(s: str) -> str:
    out = _c.encode_basestring(s) if _c is not None else _py_encode_string(s)
    if "<" in out or ">" in out or "&" in out or "\u2028" in out or "\u2029" in out:
        out = (
            out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        )
    return out


def _py_encode_string(s: str) -> str:  # pragma: no cover
    import json

    return json.dumps(s, ensure_ascii=False)


def _encode(value, indent: str | None, level: int, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_encode_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} cannot be written as JSON")
        out.append(float.__repr__(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = None if indent is None else "\n" + indent * (level + 1)
        out.append("{")
        first = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            if not first:
                out.append(",")
            first = False
            if inner is not None:
                out.append(inner)
            out.append(_encode_string(key))
            out.append(":" if indent is None else ": ")
            _encode(item, indent, level + 1, out)
        if indent is not None:
            out.append("\n" + indent * level)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = None if indent is None else "\n" + indent * (level + 1)
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            if inner is not None:
                out.append(inner)
            _encode(item, indent, level + 1, out)
        if indent is not None:
            out.append("\n" + indent * level)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} cannot be written as JSON")


def dumps(value, *, indent: int | None = None) -> str:
    out: list[str] = []
    _encode(value, None if indent is None else " " * indent, 0, out)
    return "".join(out)
