"""The hand-written wire codec against the generated protobuf code (the oracle), both directions."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netbind.hooks import _wire
from netbind.hooks.proto import api_info_pb2, api_plugins_v1alpha1_pb2, api_v1alpha2_pb2, api_v1alpha3_pb2

blobs = st.binary(max_size=300)
names = st.text(max_size=40)


@settings(max_examples=300, deadline=None)
@given(name=names, points=st.lists(st.tuples(names, st.integers(-2**31, 2**31 - 1)), max_size=4),
       versions=st.lists(names, max_size=4))
def test_info_result_is_byte_identical_to_protobuf(name, points, versions):
    oracle = api_info_pb2.InfoResult(name=name, versions=versions,
                                     hookPoints=[api_info_pb2.HookPoint(name=n, priority=p) for n, p in points])
    assert _wire.encode_info_result(name, points, versions) == oracle.SerializeToString()


@settings(max_examples=300, deadline=None)
@given(domain=blobs, cloud=blobs, source=blobs)
def test_results_are_byte_identical_to_protobuf(domain, cloud, source):
    assert _wire.encode_on_define_domain_result(domain) == \
        api_v1alpha3_pb2.OnDefineDomainResult(domainXML=domain).SerializeToString()
    assert _wire.encode_pre_cloud_init_iso_result(cloud, source) == api_v1alpha2_pb2.PreCloudInitIsoResult(
        cloudInitData=cloud, cloudInitNoCloudSource=source).SerializeToString()


# unknown fields of every wire type a proto3 peer may send: varint, fixed64, length, fixed32
unknown_fields = st.lists(st.sampled_from([
    b"\x18\x96\x01", b"\x21" + bytes(8), b"\x7a\x03abc", b"\x2d" + bytes(4), b"\x80\x01\x01",
]), max_size=4)


@settings(max_examples=300, deadline=None)
@given(domain=blobs, vmi=blobs, extra=unknown_fields, repeat=st.booleans())
def test_params_decode_like_protobuf_with_unknown_and_repeated_fields(domain, vmi, extra, repeat):
    wire = api_v1alpha3_pb2.OnDefineDomainParams(domainXML=domain, vmi=vmi).SerializeToString()
    if repeat:  # a singular field sent twice: the last one wins
        wire = api_v1alpha3_pb2.OnDefineDomainParams(domainXML=b"first").SerializeToString() + wire
    wire = b"".join(extra) + wire
    oracle = api_v1alpha3_pb2.OnDefineDomainParams.FromString(wire)
    assert _wire.decode_on_define_domain_params(wire) == (oracle.domainXML, oracle.vmi)

    cloud = api_v1alpha3_pb2.PreCloudInitIsoParams(cloudInitData=domain, vmi=vmi,
                                                   cloudInitNoCloudSource=b"src").SerializeToString()
    oracle = api_v1alpha3_pb2.PreCloudInitIsoParams.FromString(cloud)
    assert _wire.decode_pre_cloud_init_iso_params(b"".join(extra) + cloud) == \
        (oracle.cloudInitData, oracle.vmi, oracle.cloudInitNoCloudSource)


@pytest.mark.parametrize("wire, why", [
    (b"\x0a\x05abc", "runs past the end"),
    (b"\x0a", "truncated varint"),
    (b"\x08" + b"\xff" * 11, "longer than 10 bytes"),
    (b"\x0b", "unsupported wire type 3"),
    (b"\x02\x00", "field number 0"),
    (b"\x09\x00\x00", "truncated message"),
])
def test_malformed_messages_are_refused_as_protobuf_refuses_them(wire, why):
    from google.protobuf.message import DecodeError

    with pytest.raises(_wire.DecodeError, match=why):
        _wire.decode_on_define_domain_params(wire)
    with pytest.raises(DecodeError):
        api_v1alpha3_pb2.OnDefineDomainParams.FromString(wire)


def test_empty_messages_and_defaults():
    assert _wire.decode_on_define_domain_params(b"") == (b"", b"")
    assert _wire.encode_on_define_domain_result(b"") == b""
    _wire.check_message(b"")
    _wire.check_message(b"\x08\x01")  # InfoParams with an unknown field is still an InfoParams


# ---- the Plugin API's MutateDomain -------------------------------------------------------------

contexts = st.sampled_from(["", "Boot", "MigrationSource", "MigrationTarget"]) | st.text(max_size=20)


@settings(max_examples=300, deadline=None)
@given(kind=st.text(max_size=10), domain=blobs, vmi=blobs, context=contexts | st.none(),
       extra=unknown_fields, split=st.booleans())
def test_mutate_domain_request_decodes_like_protobuf(kind, domain, vmi, context, extra, split):
    oracle_message = api_plugins_v1alpha1_pb2.MutateDomainRequest(domain_type=kind, domain=domain, vmi=vmi)
    if context is not None:
        oracle_message.sidecar_context.invocation_context = context
    wire = oracle_message.SerializeToString()
    assert _wire.encode_mutate_domain_request(kind, domain, vmi, context) == wire
    if split and context:  # the embedded message sent twice: protobuf merges the occurrences
        wire += api_plugins_v1alpha1_pb2.MutateDomainRequest(
            sidecar_context=api_plugins_v1alpha1_pb2.SidecarContext()).SerializeToString()
    wire = b"".join(extra) + wire
    oracle = api_plugins_v1alpha1_pb2.MutateDomainRequest.FromString(wire)
    assert _wire.decode_mutate_domain_request(wire) == (
        oracle.domain_type, oracle.domain, oracle.vmi, oracle.sidecar_context.invocation_context)


@settings(max_examples=200, deadline=None)
@given(domain=blobs)
def test_mutate_domain_response_is_byte_identical_to_protobuf(domain):
    assert _wire.encode_mutate_domain_response(domain) == \
        api_plugins_v1alpha1_pb2.MutateDomainResponse(domain=domain).SerializeToString()


def test_mutate_domain_request_with_invalid_utf8_in_a_string_is_refused():
    with pytest.raises(_wire.DecodeError, match="UTF-8"):
        _wire.decode_mutate_domain_request(b"\x0a\x01\xff")


# ---- the launcher's side -------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(name=names, points=st.lists(st.tuples(names, st.integers(-2**31, 2**31 - 1)), max_size=4),
       versions=st.lists(names, max_size=4), extra=unknown_fields)
def test_info_result_decodes_like_protobuf(name, points, versions, extra):
    wire = b"".join(extra) + api_info_pb2.InfoResult(
        name=name, versions=versions,
        hookPoints=[api_info_pb2.HookPoint(name=n, priority=p) for n, p in points]).SerializeToString()
    oracle = api_info_pb2.InfoResult.FromString(wire)
    assert _wire.decode_info_result(wire) == (
        oracle.name, [(p.name, p.priority) for p in oracle.hookPoints], list(oracle.versions))


@settings(max_examples=300, deadline=None)
@given(domain=blobs, vmi=blobs, cloud=blobs, source=blobs, extra=unknown_fields)
def test_launcher_requests_and_replies_match_protobuf(domain, vmi, cloud, source, extra):
    assert _wire.encode_on_define_domain_params(domain, vmi) == \
        api_v1alpha3_pb2.OnDefineDomainParams(domainXML=domain, vmi=vmi).SerializeToString()
    assert _wire.encode_pre_cloud_init_iso_params(cloud, vmi, source) == api_v1alpha3_pb2.PreCloudInitIsoParams(
        cloudInitData=cloud, vmi=vmi, cloudInitNoCloudSource=source).SerializeToString()
    reply = b"".join(extra) + api_v1alpha3_pb2.OnDefineDomainResult(domainXML=domain).SerializeToString()
    assert _wire.decode_on_define_domain_result(reply) == api_v1alpha3_pb2.OnDefineDomainResult.FromString(reply).domainXML
    reply = b"".join(extra) + api_v1alpha2_pb2.PreCloudInitIsoResult(
        cloudInitData=cloud, cloudInitNoCloudSource=source).SerializeToString()
    oracle = api_v1alpha2_pb2.PreCloudInitIsoResult.FromString(reply)
    assert _wire.decode_pre_cloud_init_iso_result(reply) == (oracle.cloudInitData, oracle.cloudInitNoCloudSource)


def test_an_info_result_with_invalid_utf8_is_refused():
    with pytest.raises(_wire.DecodeError, match="invalid UTF-8"):
        _wire.decode_info_result(b"\x0a\x01\xff")
