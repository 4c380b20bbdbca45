"""Input bounds, as the Kubernetes API server and kubectl apply them, for every file netbind reads.

Manifests, the image map, ``--pod-network`` and ``--pod-links`` all go through :func:`read_text`
and then :func:`check_yaml` (YAML) or :func:`load_json` (JSON) (``netbind.api.loading`` calls
them), so hostile input ends as one :class:`BoundError`, with the line where the input has one:

* size: 3 MiB per object, the API server's request body limit (``MaxRequestBodyBytes:
  int64(3 * 1024 * 1024)`` in ``k8s.io/apiserver/pkg/server/config.go``, answered with "Request
  entity too large: limit is 3145728"; kubectl sends each object as its own request), measured on
  the object as compact JSON, which is what kubectl sends; and at most 16 MiB per file, read no
  further than that (a FIFO or ``/dev/zero`` cannot make netbind read for ever);
* text: UTF-8 without NUL bytes (binary files) and without the control characters YAML forbids;
* YAML aliases: go-yaml's rule (gopkg.in/yaml.v2 ``decode.go``, which sigs.k8s.io/yaml and so
  kubectl and the API server use): once a document has decoded more than 1,000 nodes of which more
  than 100 came from alias expansion, the share from aliases may be at most 99% up to 400,000 nodes,
  falling linearly to 10% at 4,000,000; beyond that "document contains excessive aliasing". Counted
  while reading the event stream, before any node is built, so an alias bomb costs nothing;
* nesting: at most :data:`MAX_DEPTH` levels (go-yaml and Go's encoding/json stop at 10,000; netbind's
  readers and pydantic recurse, and no KubeVirt object nests deeper than about 20);
* duplicate keys: an error, as the API server's strict decoding and kubectl's default
  ``--validate=strict`` answer them (``strict decoding error: duplicate field "spec.x"``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

MAX_OBJECT_BYTES = 3 * 1024 * 1024
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 100

# go-yaml's alias budget (decode.go: alias_ratio_range_low/high, allowedAliasRatio)
_ALIAS_RATIO_LOW, _ALIAS_RATIO_HIGH = 400_000, 4_000_000



class YAMLLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader (libyaml's when built in), reading scalars as go-yaml v2 does into
    ``interface{}``: a timestamp-like plain scalar stays a string (``name: 2024-02-30``)."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


class BoundError(ValueError):
    """Input beyond a bound, or not text: the message says which, ``line`` where (1-based)."""

    def __init__(self, message: str, line: int | None = None):
        self.message = message
        self.line = line
        super().__init__(message)


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def read_text(path: str | Path, limit: int = MAX_FILE_BYTES) -> str:
    """The file as UTF-8 text: at most ``limit`` bytes, no NUL byte; raises OSError or BoundError."""
    with open(path, "rb") as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise BoundError(f"the file is larger than {_mib(limit)}, more than netbind reads from one file "
                         f"(the API server takes at most {_mib(MAX_OBJECT_BYTES)} per object); split it")
    nul = data.find(b"\0")
    if nul >= 0:
        raise BoundError(f"not a text file (a NUL byte at offset {nul}); give YAML or JSON",
                         line=data.count(b"\n", 0, nul) + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BoundError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                         "save the file as UTF-8", line=data.count(b"\n", 0, exc.start) + 1) from None
    return text[1:] if text.startswith("\ufeff") else text


def path_text(path: list[Any]) -> str:
    """A field path as Kubernetes prints it: ``spec.domain.devices.interfaces[0].name``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _too_large(size: int, what: str) -> str:
    return (f"{what} is {size} bytes as JSON; the API server takes at most {MAX_OBJECT_BYTES} bytes "
            f"(3 MiB) per object (Request entity too large: limit is {MAX_OBJECT_BYTES})")


def _allowed_alias_ratio(decoded: int) -> float:
    if decoded <= _ALIAS_RATIO_LOW:
        return 0.99
    if decoded >= _ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decoded - _ALIAS_RATIO_LOW) / (_ALIAS_RATIO_HIGH - _ALIAS_RATIO_LOW)


class _Frame:
    __slots__ = ("mapping", "anchor", "start", "size", "height", "keys", "key", "count", "line", "items")

    def __init__(self, mapping: bool, anchor: str | None, start: int, line: int):
        self.mapping = mapping
        self.anchor = anchor
        self.start = start          # decoded-node count when it opened
        self.size = 2               # JSON bytes: the brackets
        self.height = 1
        self.keys: set[str] = set()
        self.key: Any = None        # the current key (mapping) or index (sequence)
        self.count = 0              # members so far
        self.line = line
        self.items: list[int] | None = None  # sizes of a top-level "items" list's members


def check_yaml(text: str) -> None:
    """Check a YAML stream against the bounds above from its events (no node is built); a syntax
    error is a :class:`BoundError` too."""
    try:
        _check_events(yaml.parse(text, Loader=YAMLLoader))
    except yaml.reader.ReaderError as exc:
        # libyaml reports a byte offset, the pure-Python reader a character offset
        offset = exc.position
        before = text.encode("utf-8")[:offset].decode("utf-8", "ignore") if not issubclass(YAMLLoader, yaml.reader.Reader) \
            else text[:offset]
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise BoundError(f"not valid YAML: control character {char!r} is not allowed (YAML allows "
                         "printable characters, tab and line breaks only)", line=before.count("\n") + 1) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BoundError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                         line=mark.line + 1 if mark else None) from None


def _check_events(events: Any) -> None:
    stack: list[_Frame] = []
    anchors: dict[str, tuple[int, int, int]] = {}  # anchor -> (nodes, JSON bytes, height)
    decoded = aliased = 0
    top: dict[str, Any] = {}
    for event in events:
        kind = type(event)
        if kind is yaml.DocumentStartEvent:
            anchors, decoded, aliased, top = {}, 0, 0, {}
            continue
        if kind in (yaml.StreamStartEvent, yaml.StreamEndEvent, yaml.DocumentEndEvent):
            continue
        line = event.start_mark.line + 1
        if kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            frame = stack.pop()
            nodes = decoded - frame.start + 1
            if frame.anchor is not None:
                anchors[frame.anchor] = (nodes, frame.size, frame.height)
            _close(stack, top, frame.size, frame.height, frame)
            continue
        if kind is yaml.AliasEvent:
            if event.anchor not in anchors:
                raise BoundError(f"not valid YAML: found undefined alias {event.anchor!r}", line=line)
            nodes, size, height = anchors[event.anchor]
            decoded += 1 + nodes
            aliased += nodes
            if aliased > 100 and decoded > 1000 and aliased / decoded > _allowed_alias_ratio(decoded):
                raise BoundError(f"not valid YAML: document contains excessive aliasing ({decoded} nodes "
                                 f"decoded, {aliased} of them from aliases; the Kubernetes YAML decoder's "
                                 "limit)", line=line)
            if len(stack) + height > MAX_DEPTH:
                raise BoundError(f"nested deeper than {MAX_DEPTH} levels (through alias *{event.anchor})",
                                 line=line)
            _member(stack, None, line)
            _close(stack, top, size, height, None)
            continue
        decoded += 1
        if kind is yaml.ScalarEvent:
            _member(stack, event.value, line)
            size = len(event.value) + 2
            if event.anchor is not None:
                anchors[event.anchor] = (1, size, 1)
            _close(stack, top, size, 1, None, event.value)
            continue
        # a mapping or sequence opens
        if len(stack) >= MAX_DEPTH:
            raise BoundError(f"nested deeper than {MAX_DEPTH} levels", line=line)
        _member(stack, None, line)
        stack.append(_Frame(kind is yaml.MappingStartEvent, event.anchor, decoded, line))


def _member(stack: list[_Frame], scalar: str | None, line: int) -> None:
    """A node starts in the innermost collection: a duplicate key is an error."""
    if not stack:
        return
    frame = stack[-1]
    if not frame.mapping:
        frame.key = frame.count
    elif frame.count % 2 == 0 and scalar is not None and scalar != "<<":
        if scalar in frame.keys:
            path = [f.key for f in stack[:-1]] + [scalar]
            raise BoundError(f'strict decoding error: duplicate field "{path_text(path)}"', line=line)
        frame.keys.add(scalar)


def _close(stack: list[_Frame], top: dict[str, Any], size: int, height: int, closed: _Frame | None,
           scalar: str | None = None) -> None:
    """A node ended: account it to its parent; check the size of a whole document or List item."""
    if not stack:
        items = closed.items if closed is not None else None
        if top.get("kind") == "List" and items is not None:
            for index, item in enumerate(items):
                if item > MAX_OBJECT_BYTES:
                    raise BoundError(_too_large(item, f"List item {index}"))
        elif size > MAX_OBJECT_BYTES:
            raise BoundError(_too_large(size, "the object"), line=closed.line if closed else None)
        return
    parent = stack[-1]
    parent.size += size + 1
    parent.height = max(parent.height, height + 1)
    if parent.mapping:
        if parent.count % 2 == 0:
            parent.key = scalar if scalar is not None else "?"
        elif len(stack) == 1 and isinstance(parent.key, str) and scalar is not None:
            top[parent.key] = scalar
    if len(stack) == 2 and stack[0].mapping and stack[0].key == "items" and not parent.mapping:
        if stack[0].items is None:
            stack[0].items = []
        stack[0].items.append(size)
    parent.count += 1


def load_json(text: str) -> Any:
    """JSON with the same bounds: nesting, duplicate keys (an error), size per object."""
    try:
        data = json.loads(text, object_pairs_hook=_pairs)
    except RecursionError:
        raise BoundError(f"nested deeper than {MAX_DEPTH} levels") from None
    _walk_json(data)
    items = data.get("items") if isinstance(data, dict) and data.get("kind") == "List" else None
    for index, item in enumerate(items if isinstance(items, list) else [data]):
        size = len(json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        if size > MAX_OBJECT_BYTES:
            raise BoundError(_too_large(size, f"List item {index}" if items is not None else "the object"))
    return data


class _Duplicated(dict):
    """A JSON object that repeated a key (``duplicate`` names the first repeat)."""

    duplicate = ""


def _pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in items:
        if key in result and not isinstance(result, _Duplicated):
            result = _Duplicated(result)
            result.duplicate = key
        result[key] = value
    return result


def _walk_json(data: Any) -> None:
    """Without recursion: nesting beyond MAX_DEPTH and duplicate keys are errors."""
    stack: list[tuple[Any, list[Any]]] = [(data, [])]
    while stack:
        value, path = stack.pop()
        if len(path) >= MAX_DEPTH:
            raise BoundError(f"nested deeper than {MAX_DEPTH} levels (under {path_text(path[:4])})")
        if isinstance(value, _Duplicated):
            raise BoundError(f'strict decoding error: duplicate field "{path_text(path + [value.duplicate])}"')
        if isinstance(value, dict):
            stack.extend((v, path + [k]) for k, v in value.items() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, path + [i]) for i, v in enumerate(value) if isinstance(v, (dict, list)))
