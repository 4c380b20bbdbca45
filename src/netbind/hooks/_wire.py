"""The hook messages in protobuf's wire format, encoded and decoded directly.

Eight small messages of bytes, strings and one int32: this costs less than loading the protobuf
runtime and the generated modules into every sidecar. The generated code in ``proto/`` stays the
oracle: a test checks both directions against it, unknown fields and repeated fields included.
"""
from __future__ import annotations

from typing import Any, Iterable

_VARINT, _FIXED64, _LENGTH, _START_GROUP, _END_GROUP, _FIXED32 = 0, 1, 2, 3, 4, 5


class DecodeError(ValueError):
    """Bytes that are not a valid protobuf message."""


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int32/int64 negatives are 10-byte two's complement varints
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _LENGTH) + _varint(len(payload)) + payload


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint longer than 10 bytes")


def decode_bytes_fields(data: bytes, wanted: Iterable[int], messages: Iterable[int] = (),
                        repeated: Iterable[int] = (), varints: Iterable[int] = ()) -> dict[int, Any]:
    """The length-delimited fields ``wanted`` of a message (last occurrence wins, as proto3 merges
    singular fields; for the embedded ``messages`` every occurrence is kept, concatenated, which is
    how protobuf merges them; for ``repeated`` ones a list of every occurrence), and the last value
    of the ``varints`` fields; every other field of any wire type is skipped, like unknown fields."""
    wanted = frozenset(wanted)
    messages = frozenset(messages)
    repeated = frozenset(repeated)
    varints = frozenset(varints)
    fields: dict[int, Any] = {}
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise DecodeError("field number 0")
        if wire_type == _VARINT:
            value, pos = _read_varint(data, pos)
            if number in varints:
                fields[number] = value
        elif wire_type == _FIXED64:
            pos += 8
        elif wire_type == _FIXED32:
            pos += 4
        elif wire_type == _LENGTH:
            size, pos = _read_varint(data, pos)
            if pos + size > end:
                raise DecodeError(f"field {number} runs past the end of the message")
            if number in messages:
                fields[number] = fields.get(number, b"") + data[pos:pos + size]
            elif number in repeated:
                fields.setdefault(number, []).append(data[pos:pos + size])
            elif number in wanted:
                fields[number] = data[pos:pos + size]
            pos += size
        else:  # groups (3, 4) are not proto3; 6 and 7 do not exist
            raise DecodeError(f"unsupported wire type {wire_type} (field {number})")
        if pos > end:
            raise DecodeError("truncated message")
    return fields


# ---- the messages ------------------------------------------------------------------------------

def encode_info_result(name: str, hook_points: Iterable[tuple[str, int]], versions: Iterable[str]) -> bytes:
    """InfoResult{name=1, hookPoints=3 (HookPoint{name=1, priority=2}), versions=4}."""
    out = [_field(1, name.encode())] if name else []
    for point, priority in hook_points:
        body = (_field(1, point.encode()) if point else b"") + (
            _varint(2 << 3 | _VARINT) + _varint(priority) if priority else b"")
        out.append(_field(3, body))
    out.extend(_field(4, v.encode()) for v in versions)
    return b"".join(out)


def decode_on_define_domain_params(data: bytes) -> tuple[bytes, bytes]:
    """OnDefineDomainParams{domainXML=1, vmi=2} -> (domain XML, VMI JSON)."""
    fields = decode_bytes_fields(data, (1, 2))
    return fields.get(1, b""), fields.get(2, b"")


def encode_on_define_domain_result(domain_xml: bytes) -> bytes:
    """OnDefineDomainResult{domainXML=1}."""
    return _field(1, domain_xml) if domain_xml else b""


def decode_pre_cloud_init_iso_params(data: bytes) -> tuple[bytes, bytes, bytes]:
    """PreCloudInitIsoParams{cloudInitNoCloudSource=1, vmi=2, cloudInitData=3} -> (data, vmi, legacy source)."""
    fields = decode_bytes_fields(data, (1, 2, 3))
    return fields.get(3, b""), fields.get(2, b""), fields.get(1, b"")


def encode_pre_cloud_init_iso_result(cloud_init_data: bytes, legacy_source: bytes) -> bytes:
    """PreCloudInitIsoResult{cloudInitNoCloudSource=1, cloudInitData=3}."""
    return (_field(1, legacy_source) if legacy_source else b"") + (
        _field(3, cloud_init_data) if cloud_init_data else b"")


def check_message(data: bytes) -> None:
    """A message without fields we read (InfoParams, ShutdownParams): still well-formed."""
    decode_bytes_fields(data, ())


# ---- the Plugin API (kubevirt.hooks.plugins.v1alpha1) --------------------------------------------

def decode_mutate_domain_request(data: bytes) -> tuple[str, bytes, bytes, str]:
    """MutateDomainRequest{domain_type=1, domain=2, vmi=3, sidecar_context=4 (SidecarContext{
    invocation_context=1})} -> (domain type, domain XML, VMI JSON, invocation context)."""
    fields = decode_bytes_fields(data, (1, 2, 3), messages=(4,))
    context = decode_bytes_fields(fields[4], (1,)).get(1, b"") if 4 in fields else b""
    try:
        return (fields.get(1, b"").decode("utf-8"), fields.get(2, b""), fields.get(3, b""),
                context.decode("utf-8"))
    except UnicodeDecodeError:  # proto3 strings must be UTF-8: Go's unmarshal refuses them too
        raise DecodeError("string field contains invalid UTF-8") from None


def encode_mutate_domain_response(domain_xml: bytes) -> bytes:
    """MutateDomainResponse{domain=1}."""
    return _field(1, domain_xml) if domain_xml else b""


def encode_mutate_domain_request(domain_type: str, domain_xml: bytes, vmi_json: bytes,
                                 invocation_context: str) -> bytes:
    """The launcher's side (tests and the local runtime's client)."""
    context = _field(1, invocation_context.encode()) if invocation_context else b""
    return b"".join([
        _field(1, domain_type.encode()) if domain_type else b"",
        _field(2, domain_xml) if domain_xml else b"",
        _field(3, vmi_json) if vmi_json else b"",
        _field(4, context) if invocation_context is not None else b"",
    ])


# ---- the launcher's side of the hook messages ----------------------------------------------------

def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # proto3 strings must be UTF-8: Go's unmarshal refuses them too
        raise DecodeError("string field contains invalid UTF-8") from None


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF  # an int32 is read from the low 32 bits of its varint, sign-extended
    return value - (1 << 32) if value & 0x80000000 else value


def decode_info_result(data: bytes) -> tuple[str, list[tuple[str, int]], list[str]]:
    """InfoResult -> (name, [(hook point, priority)], versions)."""
    fields = decode_bytes_fields(data, (1,), repeated=(3, 4))
    points = []
    for raw in fields.get(3, []):
        point = decode_bytes_fields(raw, (1,), varints=(2,))
        points.append((_text(point.get(1, b"")), _int32(point.get(2, 0))))
    return _text(fields.get(1, b"")), points, [_text(v) for v in fields.get(4, [])]


def encode_on_define_domain_params(domain_xml: bytes, vmi_json: bytes) -> bytes:
    """OnDefineDomainParams{domainXML=1, vmi=2}."""
    return (_field(1, domain_xml) if domain_xml else b"") + (_field(2, vmi_json) if vmi_json else b"")


def decode_on_define_domain_result(data: bytes) -> bytes:
    """OnDefineDomainResult{domainXML=1} -> the domain XML (also MutateDomainResponse{domain=1})."""
    return decode_bytes_fields(data, (1,)).get(1, b"")


def encode_pre_cloud_init_iso_params(cloud_init_data: bytes, vmi_json: bytes, legacy_source: bytes) -> bytes:
    """PreCloudInitIsoParams{cloudInitNoCloudSource=1, vmi=2, cloudInitData=3}."""
    return b"".join([_field(1, legacy_source) if legacy_source else b"", _field(2, vmi_json) if vmi_json else b"",
                     _field(3, cloud_init_data) if cloud_init_data else b""])


def decode_pre_cloud_init_iso_result(data: bytes) -> tuple[bytes, bytes]:
    """PreCloudInitIsoResult{cloudInitNoCloudSource=1, cloudInitData=3} -> (data, legacy source)."""
    fields = decode_bytes_fields(data, (1, 3))
    return fields.get(3, b""), fields.get(1, b"")


# ---- the methods' paths --------------------------------------------------------------------------

INFO_PATH = "/kubevirt.hooks.info.Info/Info"
MUTATE_DOMAIN_PATH = "/kubevirt.hooks.plugins.v1alpha1.DomainHookService/MutateDomain"


def callbacks_path(version: str, method: str) -> str:
    """``/kubevirt.hooks.<version>.Callbacks/<method>``."""
    return f"/kubevirt.hooks.{version}.Callbacks/{method}"
