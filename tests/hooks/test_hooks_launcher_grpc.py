"""The launcher's gRPC client (h2) against grpcio's server, a real gRPC implementation: messages
both ways past every flow-control window, status codes and messages from trailers, the deadline
sent and kept, Go's texts for local failures, several calls on a kept connection."""
from __future__ import annotations

import secrets
import socket
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from netbind.hooks import _wire
from netbind.hooks.proto import api_info_pb2, api_v1alpha3_pb2
from netbind.launcher import _grpc
from netbind.launcher.hooks import HookManager

CALLBACKS = "/kubevirt.hooks.v1alpha3.Callbacks/"
BAD_MESSAGE = "bad input – ünïcode, 100% sure"


def _on_define_domain(request: bytes, context) -> bytes:
    params = api_v1alpha3_pb2.OnDefineDomainParams.FromString(request)
    return api_v1alpha3_pb2.OnDefineDomainResult(domainXML=params.domainXML + b"<!-- seen -->").SerializeToString()


def _handlers() -> dict:
    def info(request, context):
        return api_info_pb2.InfoResult(name="grpcio-peer", versions=["v1alpha3", "v1alpha2"], hookPoints=[
            api_info_pb2.HookPoint(name="OnDefineDomain", priority=-7),
            api_info_pb2.HookPoint(name="Shutdown", priority=0)]).SerializeToString()

    def refuse(request, context):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, BAD_MESSAGE)

    def slow(request, context):
        time.sleep(3)
        return b""

    def remaining(request, context):
        return b"%.6f" % context.time_remaining()

    def huge(request, context):
        return b"x" * (5 * 1024 * 1024)

    def empty(request, context):
        return b""

    methods = {"/kubevirt.hooks.info.Info/Info": info, CALLBACKS + "OnDefineDomain": _on_define_domain,
               CALLBACKS + "Shutdown": empty, "/nb.Test/Refuse": refuse, "/nb.Test/Slow": slow,
               "/nb.Test/Remaining": remaining, "/nb.Test/Huge": huge}
    return methods


class _GenericHandler(grpc.GenericRpcHandler):
    def __init__(self, methods: dict):
        self.methods = methods

    def service(self, details):
        handler = self.methods.get(details.method)
        return grpc.unary_unary_rpc_method_handler(handler) if handler else None


@pytest.fixture
def grpcio_server(tmp_path):
    """grpcio's server on a unix socket, raw bytes in and out; yields the socket's path."""
    path = tmp_path / "grpcio.sock"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.max_send_message_length", -1)])
    server.add_generic_rpc_handlers((_GenericHandler(_handlers()),))
    server.add_insecure_port(f"unix:{path}")
    server.start()
    yield path
    server.stop(0).wait()


def test_a_domain_bigger_than_every_window_goes_both_ways(grpcio_server):
    domain = b"<domain>" + secrets.token_hex(3 * 1024 * 1024 // 2).encode() + b"</domain>"   # 3 MiB
    request = _wire.encode_on_define_domain_params(domain, b'{"kind":"VirtualMachineInstance"}')
    with _grpc.Channel(grpcio_server) as channel:
        reply = channel.call(CALLBACKS + "OnDefineDomain", request, timeout=30)
    assert _wire.decode_on_define_domain_result(reply) == domain + b"<!-- seen -->"


def test_info_decodes_names_versions_and_negative_priorities(grpcio_server):
    with _grpc.Channel(grpcio_server) as channel:
        name, points, versions = _wire.decode_info_result(channel.call("/kubevirt.hooks.info.Info/Info", b"", 5))
    assert (name, points, versions) == ("grpcio-peer", [("OnDefineDomain", -7), ("Shutdown", 0)],
                                        ["v1alpha3", "v1alpha2"])


def test_the_servers_status_and_percent_encoded_message_come_through(grpcio_server):
    with _grpc.Channel(grpcio_server) as channel, pytest.raises(_grpc.CallError) as err:
        channel.call("/nb.Test/Refuse", b"", 5)
    assert (err.value.code, err.value.message) == (3, BAD_MESSAGE)
    assert str(err.value) == f"rpc error: code = InvalidArgument desc = {BAD_MESSAGE}"


def test_an_unknown_method_is_unimplemented(grpcio_server):
    with _grpc.Channel(grpcio_server) as channel, pytest.raises(_grpc.CallError) as err:
        channel.call("/nb.Test/Nothing", b"", 5)
    assert err.value.code_name == "Unimplemented"


def test_the_deadline_is_sent_and_kept(grpcio_server):
    with _grpc.Channel(grpcio_server) as channel:
        left = float(channel.call("/nb.Test/Remaining", b"", 5.0))
        assert 3.0 < left <= 5.0                                  # the server saw our grpc-timeout
        started = time.monotonic()
        with pytest.raises(_grpc.CallError) as err:
            channel.call("/nb.Test/Slow", b"", 0.3)
        assert time.monotonic() - started < 2.5                   # not the server's 3 s
        assert str(err.value) == "rpc error: code = DeadlineExceeded desc = context deadline exceeded"
        # a failed call closes the connection; the next one dials again
        assert float(channel.call("/nb.Test/Remaining", b"", 5.0)) > 3.0


def test_a_reply_over_4_mib_is_refused_as_grpc_go_refuses_it(grpcio_server):
    with _grpc.Channel(grpcio_server) as channel, pytest.raises(_grpc.CallError) as err:
        channel.call("/nb.Test/Huge", b"", 10)
    assert str(err.value) == ("rpc error: code = ResourceExhausted desc = grpc: received message larger than max"
                              f" ({5 * 1024 * 1024} vs. 4194304)")


def test_a_missing_socket_and_a_server_that_hangs_up_get_gos_texts(tmp_path):
    missing = tmp_path / "none.sock"
    with pytest.raises(_grpc.CallError) as err:
        _grpc.Channel(missing).call("/nb.Test/Any", b"", 1)
    assert str(err.value) == ('rpc error: code = Unavailable desc = connection error: desc = "transport: Error while'
                              f' dialing: dial unix {missing}: connect: no such file or directory"')

    path = tmp_path / "hangs-up.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def hang_up():
        peer, _ = listener.accept()
        peer.recv(65536)
        peer.close()

    thread = threading.Thread(target=hang_up)
    thread.start()
    try:
        with pytest.raises(_grpc.CallError) as err:
            _grpc.Channel(path).call("/nb.Test/Any", b"", 5)
        assert str(err.value) == "rpc error: code = Unavailable desc = error reading from server: EOF"
    finally:
        thread.join(5)
        listener.close()


def test_a_blocking_dial_waits_for_the_socket_then_gives_up_with_the_deadline(tmp_path):
    path = tmp_path / "late.sock"
    with pytest.raises(_grpc.CallError) as err:
        _grpc.Channel(path).connect(0.2, wait=True)
    assert (err.value.code_name, err.value.message) == ("DeadlineExceeded", "context deadline exceeded")


def test_the_hook_manager_talks_to_a_grpcio_sidecar_per_call_and_persistent(grpcio_server, tmp_path):
    sockets = Path(grpcio_server).parent
    for persistent in (False, True):
        with HookManager(sockets, persistent=persistent, poll_period=0.01) as manager:
            (sidecar,) = manager.collect(1, timeout=5)
            assert (sidecar.name, sidecar.version) == ("grpcio-peer", "v1alpha3")
            out = b"<domain/>"
            for _ in range(3):   # persistent: three streams on one connection
                out = manager.on_define_domain(out, b"{}")
            assert out == b"<domain/>" + b"<!-- seen -->" * 3
            manager.shutdown()


def test_grpc_timeout_takes_the_finest_unit_of_at_most_8_digits():
    assert _grpc.grpc_timeout(60.0) == b"60000000u"
    assert _grpc.grpc_timeout(0.05) == b"50000000n"
    assert _grpc.grpc_timeout(1000.0) == b"1000000m"
    assert _grpc.grpc_timeout(1e9) == b"16666667M"


def test_the_launcher_side_loads_neither_grpcio_nor_protobuf():
    import subprocess
    import sys

    code = ("import sys, netbind.node.runtime, netbind.launcher.hooks, netbind.launcher.plugins\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'google')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_kept_connection_the_server_closed_is_dialled_again(tmp_path):
    path = tmp_path / "restarts.sock"

    def serve():
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        server.add_generic_rpc_handlers((_GenericHandler(_handlers()),))
        server.add_insecure_port(f"unix:{path}")
        server.start()
        return server

    server = serve()
    with _grpc.Channel(path) as channel:
        request = _wire.encode_on_define_domain_params(b"<domain/>", b"{}")
        assert channel.call(CALLBACKS + "OnDefineDomain", request, 5)
        server.stop(0).wait()            # GOAWAY and a closed socket under the kept connection
        server = serve()
        try:
            reply = channel.call(CALLBACKS + "OnDefineDomain", request, 5)
            assert _wire.decode_on_define_domain_result(reply) == b"<domain/><!-- seen -->"
        finally:
            server.stop(0).wait()


def test_a_request_over_the_servers_limit_gets_its_status_not_a_reset(grpcio_server):
    # the server answers before it has read the whole request and then resets the stream to stop
    # the rest: the answer counts, the reset does not
    request = _wire.encode_on_define_domain_params(b"x" * (5 * 1024 * 1024), b"{}")
    with _grpc.Channel(grpcio_server) as channel, pytest.raises(_grpc.CallError) as err:
        channel.call(CALLBACKS + "OnDefineDomain", request, 10)
    assert err.value.code_name == "ResourceExhausted" and "larger than max" in err.value.message


def test_a_complete_reply_stands_when_the_server_hangs_up_right_after_it(tmp_path):
    """As a sidecar does on Shutdown: reply, GOAWAY, close, without reading what the client still
    sends (its SETTINGS acknowledgement). The server is another process, so its close is not held
    up by this interpreter's lock and comes before the client answers."""
    import subprocess
    import sys

    path = tmp_path / "stops.sock"
    server = subprocess.Popen([sys.executable, "-c", _REPLY_AND_HANG_UP, str(path)], stdout=subprocess.PIPE)
    try:
        assert server.stdout.readline() == b"listening\n"
        for _ in range(5):
            assert _grpc.Channel(path).call("/kubevirt.hooks.v1alpha3.Callbacks/Shutdown", b"", 5) == b""
    finally:
        server.kill()
        server.wait()


_REPLY_AND_HANG_UP = """
import socket, sys
import h2.config, h2.connection, h2.events
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[1])
listener.listen(8)
print("listening", flush=True)
while True:
    peer, _ = listener.accept()
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    conn.initiate_connection()
    ended = None
    while ended is None:
        for event in conn.receive_data(peer.recv(65536)):
            if isinstance(event, h2.events.StreamEnded):
                ended = event.stream_id
    conn.send_headers(ended, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    conn.send_data(ended, b"\\0\\0\\0\\0\\0")
    conn.send_headers(ended, [(b"grpc-status", b"0")], end_stream=True)
    conn.close_connection()
    peer.sendall(conn.data_to_send())
    peer.close()
"""
