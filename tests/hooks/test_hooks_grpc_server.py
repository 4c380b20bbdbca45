"""The SDK's unary gRPC server against grpcio's client and a raw HTTP/2 peer: framing, status
codes and messages, deadlines, concurrent streams, flow control, cancellation, GOAWAY on stop."""
from __future__ import annotations

import gc
import socket
import threading
import time

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

from netbind.hooks import _grpc

RELEASE_TIMEOUT = 10


class Handlers:
    def __init__(self):
        self.release = threading.Event()
        self.entered = threading.Event()
        self.pair = threading.Barrier(2, timeout=RELEASE_TIMEOUT)

    def slow(self, request: bytes) -> bytes:
        self.entered.set()
        assert self.release.wait(RELEASE_TIMEOUT)
        return b"slow:" + request

    def both(self, request: bytes) -> bytes:
        self.pair.wait()  # breaks (and the call fails) unless two calls run at the same time
        return request

    @staticmethod
    def fail(request: bytes) -> bytes:
        raise _grpc.Status(_grpc.INVALID_ARGUMENT, "bad ünïcode 100% \"x\"\nsecond line")

    @staticmethod
    def crash(request: bytes) -> bytes:
        raise KeyError("boom")


@pytest.fixture
def served(tmp_path):
    handlers = Handlers()
    methods = {
        "/t.S/Echo": _grpc.Method(lambda r: r),
        "/t.S/Inline": _grpc.Method(lambda r: b"inline", inline=True),
        "/t.S/Slow": _grpc.Method(handlers.slow),
        "/t.S/Both": _grpc.Method(handlers.both),
        "/t.S/Fail": _grpc.Method(handlers.fail),
        "/t.S/Crash": _grpc.Method(handlers.crash),
        "/t.S/Big": _grpc.Method(lambda r: bytes(range(256)) * (3 * 4096)),   # 3 MiB
    }
    server = _grpc.UnaryServer(methods, workers=2)
    path = str(tmp_path / "s.sock")
    server.bind(path)
    server.start()
    yield server, path, handlers
    handlers.release.set()
    server.stop(grace=0.5)


def _call(path, method, request=b"x", timeout=10, channel=None, **kw):
    own = channel is None
    channel = channel or grpc.insecure_channel(f"unix:{path}")
    try:
        return channel.unary_unary(method)(request, timeout=timeout, **kw)
    finally:
        if own:
            channel.close()


def _error(path, method, request=b"x", **kw) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as failed:
        _call(path, method, request, **kw)
    return failed.value


def _connections_drain(server, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server._connections:
            return True
        time.sleep(0.01)
    return False


def test_a_fresh_connection_per_call_and_nothing_kept_after_hang_up(served):
    server, path, _ = served
    for i in range(100):
        payload = f"call {i}".encode() * 50
        assert _call(path, "/t.S/Echo", payload) == payload
    assert _call(path, "/t.S/Inline") == b"inline"
    assert _call(path, "/t.S/Echo", b"") == b""
    assert _connections_drain(server), "connections were kept after the clients hung up"
    gc.collect()   # nothing else holds them either (a deadline list once kept each for its timeout)
    assert not [o for o in gc.get_objects() if isinstance(o, _grpc._Connection)]


def test_a_kept_connection_forgets_its_closed_streams(served):
    server, path, _ = served
    calls = 500
    with grpc.insecure_channel(f"unix:{path}") as channel:
        for i in range(calls):
            assert _call(path, "/t.S/Echo", b"%d" % i, channel=channel) == b"%d" % i
        (conn,) = server._connections
        # a finished stream leaves nothing behind (h2 remembered 65,536 per connection: megabytes
        # on a connection virt-launcher or a bench keeps); only the highest stream id is kept
        assert conn.streams == {} and not conn.inbox and conn.last_stream_id == 2 * calls - 1


def test_status_code_and_message_reach_the_client_exactly(served):
    _, path, _ = served
    err = _error(path, "/t.S/Fail")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "bad ünïcode 100% \"x\"\nsecond line"
    err = _error(path, "/t.S/Crash")
    assert err.code() == grpc.StatusCode.UNKNOWN and err.details() == "Exception calling application: 'boom'"


def test_unknown_service_and_method_are_unimplemented(served):
    _, path, _ = served
    err = _error(path, "/t.S/Nope")
    assert (err.code(), err.details()) == (grpc.StatusCode.UNIMPLEMENTED, "unknown method Nope for service t.S")
    err = _error(path, "/other.Svc/Echo")
    assert (err.code(), err.details()) == (grpc.StatusCode.UNIMPLEMENTED, "unknown service other.Svc")


def test_deadline_passes_while_the_handler_runs_and_the_server_goes_on(served):
    _, path, handlers = served
    err = _error(path, "/t.S/Slow", timeout=0.3)
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    handlers.release.set()
    assert _call(path, "/t.S/Echo", b"after") == b"after"


def test_concurrent_streams_on_one_connection_run_concurrently(served):
    _, path, _ = served
    results = []
    with grpc.insecure_channel(f"unix:{path}") as channel:
        threads = [threading.Thread(target=lambda i=i: results.append(_call(path, "/t.S/Both", b"%d" % i,
                                                                          channel=channel)))
                   for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(RELEASE_TIMEOUT + 5)
    assert sorted(results) == [b"0", b"1"]


def test_replies_larger_than_the_flow_control_window_and_requests_over_the_limit(served):
    _, path, _ = served
    assert _call(path, "/t.S/Big") == bytes(range(256)) * (3 * 4096)
    four_mib = b"d" * (4 * 1024 * 1024)   # message limit exactly: accepted
    assert _call(path, "/t.S/Echo", four_mib, channel=None) == four_mib
    err = _error(path, "/t.S/Echo", b"d" * (5 * 1024 * 1024))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.details() == f"grpc: received message larger than max ({5 * 1024 * 1024} vs. {4 * 1024 * 1024})"
    assert _call(path, "/t.S/Echo", b"still serving") == b"still serving"


def test_a_compressed_request_is_refused_clearly(served):
    _, path, _ = served
    err = _error(path, "/t.S/Echo", b"z" * 100, compression=grpc.Compression.Gzip)
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED and 'grpc-encoding "gzip"' in err.details()


def test_a_cancelled_call_is_dropped_and_the_server_goes_on(served):
    server, path, handlers = served
    with grpc.insecure_channel(f"unix:{path}") as channel:
        future = channel.unary_unary("/t.S/Slow").future(b"x", timeout=10)
        assert handlers.entered.wait(5)
        future.cancel()
        handlers.release.set()
        assert channel.unary_unary("/t.S/Echo")(b"next", timeout=10) == b"next"
    assert _connections_drain(server)


def test_stop_lets_the_call_in_flight_finish_then_refuses(served):
    server, path, handlers = served
    with grpc.insecure_channel(f"unix:{path}") as channel:
        future = channel.unary_unary("/t.S/Slow").future(b"last", timeout=10)
        assert handlers.entered.wait(5)
        stopper = threading.Thread(target=server.stop, kwargs={"grace": 5})
        stopper.start()
        time.sleep(0.1)
        handlers.release.set()
        assert future.result() == b"slow:last"
        stopper.join(10)
    assert server.stopped.is_set()
    err = _error(path, "/t.S/Echo", timeout=2)
    assert err.code() == grpc.StatusCode.UNAVAILABLE


def _raw_h2(path: str, headers, body: bytes = b"") -> list:
    """One request by a plain HTTP/2 client; the events of the answer."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    client.initiate_connection()
    client.send_headers(1, headers, end_stream=not body)
    if body:
        client.send_data(1, body, end_stream=True)
    events = []
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(client.data_to_send())
        while not any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)) for e in events):
            data = sock.recv(65536)
            if not data:
                break
            events += client.receive_data(data)
            sock.sendall(client.data_to_send())
    return events


def _headers(method="POST", content_type="application/grpc", path="/t.S/Echo"):
    return [(":method", method), (":scheme", "http"), (":authority", "localhost"), (":path", path),
            ("content-type", content_type), ("te", "trailers")]


def test_plain_http2_peers_get_http_answers_and_garbage_only_closes_its_connection(served):
    _, path, _ = served
    response = next(e for e in _raw_h2(path, _headers(content_type="text/plain")) if
                    isinstance(e, h2.events.ResponseReceived))
    assert dict(response.headers)[":status"] == "415"
    response = next(e for e in _raw_h2(path, _headers(method="GET")) if isinstance(e, h2.events.ResponseReceived))
    assert dict(response.headers)[":status"] == "405"
    # a gRPC request without its message, and one with two messages: INTERNAL in a trailers-only answer
    for body, why in ((b"", "no request message"), (b"\0\0\0\0\1a\0\0\0\0\1b", "exactly one request message")):
        answer = next(e for e in _raw_h2(path, _headers(), body) if isinstance(e, h2.events.ResponseReceived))
        fields = dict(answer.headers)
        assert fields["grpc-status"] == str(_grpc.INTERNAL) and why in fields["grpc-message"], fields
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        while sock.recv(4096):   # the server answers with GOAWAY and hangs up
            pass
    assert _call(path, "/t.S/Echo", b"fine") == b"fine"


@pytest.mark.parametrize("value, seconds", [(b"1S", 1.0), (b"250m", 0.25), (b"5000u", 0.005), (b"2M", 120.0),
                                            (b"1H", 3600.0), (b"99999999n", 0.099999999)])
def test_grpc_timeout_units(value, seconds):
    assert _grpc.parse_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [b"", b"S", b"1", b"123456789S", b"1x", b"-1S", b"1.5S"])
def test_malformed_grpc_timeouts(value):
    assert _grpc.parse_timeout(value) is None


def test_grpc_message_percent_encoding():
    assert _grpc.percent_encode("a b%c\n\u00e9") == b"a b%25c%0A%C3%A9"


# ---- HTTP/2 details, against h2's client (which checks our side of flow control) and raw frames ----

def _message(payload: bytes) -> bytes:
    return b"\0" + len(payload).to_bytes(4, "big") + payload


def _h2_call(path: str, message: bytes) -> list:
    """One unary call by h2's client with HTTP/2's default 64 KiB windows: the request is sent as
    the server's window allows, the reply read and its window given back as it arrives (h2 raises
    if the server sends beyond the window). The client's events."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    client.initiate_connection()
    client.send_headers(1, _headers())
    sent, events = 0, []
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        while not any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)) for e in events):
            room = min(client.local_flow_control_window(1), len(message) - sent)
            while room > 0:
                chunk = min(room, client.max_outbound_frame_size)
                client.send_data(1, message[sent:sent + chunk], end_stream=sent + chunk == len(message))
                sent += chunk
                room -= chunk
            sock.sendall(client.data_to_send())
            data = sock.recv(65536)
            assert data, "the server hung up"
            for event in client.receive_data(data):
                events.append(event)
                if isinstance(event, h2.events.DataReceived):
                    client.acknowledge_received_data(event.flow_controlled_length, 1)
            sock.sendall(client.data_to_send())
    assert sent == len(message)
    return events


def _reply(events) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))


def test_a_reply_larger_than_the_peer_window_waits_for_window_updates(served):
    """A 200 KiB document through a client with HTTP/2's default 64 KiB windows: the request needs
    no update (our stream window is larger), the reply needs the client's WINDOW_UPDATEs."""
    _, path, _ = served
    message = _message(bytes(range(256)) * 800)
    events = _h2_call(path, message)
    assert _reply(events) == message
    trailers = next(e for e in events if isinstance(e, h2.events.TrailersReceived))
    assert dict(trailers.headers) == {"grpc-status": "0"}


def test_a_request_larger_than_our_stream_window_gets_window_updates(served):
    _, path, _ = served
    message = _message(b"v" * (3 * _grpc._STREAM_WINDOW))   # three times what may be sent unasked
    events = _h2_call(path, message)
    assert any(isinstance(e, h2.events.WindowUpdated) and e.stream_id == 1 for e in events)
    assert _reply(events) == message


def _raw_frames(path: str, frames: bytes, until_stream: int = 1, until_reset: bool = False) -> list:
    """The connection preface, empty SETTINGS and ``frames``; the server's frames (hyperframe)
    until ``until_stream`` ends, is reset, or the server sends GOAWAY or hangs up."""
    import hyperframe.frame as hf

    got, buffer = [], b""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(_grpc._PREFACE + _grpc._frame(_grpc.SETTINGS, 0, 0) + frames)
        while True:
            data = sock.recv(65536)
            if not data:
                return got
            buffer += data
            while len(buffer) >= 9:
                frame, length = hf.Frame.parse_frame_header(memoryview(buffer[:9]))
                if len(buffer) < 9 + length:
                    break
                frame.parse_body(memoryview(buffer[9:9 + length]))
                buffer = buffer[9 + length:]
                got.append(frame)
                if isinstance(frame, hf.GoAwayFrame) or (frame.stream_id == until_stream and (
                        isinstance(frame, hf.RstStreamFrame) or ("END_STREAM" in frame.flags and not until_reset))):
                    return got


def _block(headers) -> bytes:
    import hpack

    return hpack.Encoder().encode(headers)


def test_continuation_padding_and_priority_are_understood(served):
    import hpack
    import hyperframe.frame as hf

    _, path, _ = served
    block = _block(_headers() + [("x-filler", "f" * 3000)])
    priority = b"\x00\x00\x00\x00\x10"   # depends on stream 0, weight 16
    padded_data = bytes((7,)) + _message(b"padded") + b"\0" * 7
    frames = (_grpc._frame(_grpc.HEADERS, _grpc.PRIORITY_FLAG, 1, priority + block[:1000])
              + _grpc._frame(_grpc.CONTINUATION, 0, 1, block[1000:2000])
              + _grpc._frame(_grpc.CONTINUATION, _grpc.END_HEADERS, 1, block[2000:])
              + _grpc._frame(_grpc.PING, 0, 0, b"12345678")
              + _grpc._frame(_grpc.DATA, _grpc.PADDED | _grpc.END_STREAM, 1, padded_data))
    got = _raw_frames(path, frames)
    assert any(isinstance(f, hf.PingFrame) and "ACK" in f.flags and f.opaque_data == b"12345678" for f in got)
    decoder = hpack.Decoder()
    headers = [decoder.decode(f.data) for f in got if isinstance(f, hf.HeadersFrame)]
    assert headers == [[(":status", "200"), ("content-type", "application/grpc")], [("grpc-status", "0")]]
    assert b"".join(f.data for f in got if isinstance(f, hf.DataFrame)) == _message(b"padded")


def test_streams_over_the_advertised_limit_are_refused_and_the_rest_served(served):
    import hyperframe.frame as hf

    _, path, _ = served
    limit = _grpc.MAX_CONCURRENT_STREAMS
    block = _block(_headers())
    # `limit` streams opened and left open, one more, then the first is completed
    frames = b"".join(_grpc._frame(_grpc.HEADERS, _grpc.END_HEADERS, 2 * i + 3, block) for i in range(limit))
    frames += _grpc._frame(_grpc.HEADERS, _grpc.END_HEADERS, 2 * limit + 3, block)
    frames += _grpc._frame(_grpc.DATA, _grpc.END_STREAM, 3, _message(b"first"))
    got = _raw_frames(path, frames, until_stream=3)
    refused = [f for f in got if isinstance(f, hf.RstStreamFrame)]
    assert [(f.stream_id, f.error_code) for f in refused] == [(2 * limit + 3, _grpc.REFUSED_STREAM)]
    assert b"".join(f.data for f in got if isinstance(f, hf.DataFrame) and f.stream_id == 3) == _message(b"first")


@pytest.mark.parametrize("frames, code", [
    (_grpc._frame(_grpc.DATA, 0, 0, b"x"), _grpc.PROTOCOL_ERROR),                       # DATA on stream 0
    (_grpc._frame(_grpc.DATA, _grpc.END_STREAM, 9, b"x"), _grpc.PROTOCOL_ERROR),        # on an idle stream
    (_grpc._frame(_grpc.HEADERS, _grpc.END_HEADERS, 2, b"\x82"), _grpc.PROTOCOL_ERROR), # even stream id
    (_grpc._frame(_grpc.PING, 0, 0, b"short"), _grpc.FRAME_SIZE_ERROR),
    (_grpc._frame(_grpc.WINDOW_UPDATE, 0, 0, (0).to_bytes(4, "big")), _grpc.PROTOCOL_ERROR),
    (_grpc._frame(_grpc.WINDOW_UPDATE, 0, 0, ((1 << 31) - 1).to_bytes(4, "big")), _grpc.FLOW_CONTROL_ERROR),
    (_grpc._frame(_grpc.HEADERS, _grpc.END_HEADERS, 1, b"\xff\xff\xff\xff\x0f"), _grpc.COMPRESSION_ERROR),
    (_grpc._frame(_grpc.HEADERS, 0, 1, b"\x82") + _grpc._frame(_grpc.PING, 0, 0, b"12345678"),
     _grpc.PROTOCOL_ERROR),                                                                # CONTINUATION expected
    ((16385).to_bytes(3, "big") + b"\0\0\0\0\0\x01" + b"\0" * 16385, _grpc.FRAME_SIZE_ERROR),
])
def test_connection_errors_end_in_goaway_with_their_code(served, frames, code):
    import hyperframe.frame as hf

    _, path, _ = served
    got = _raw_frames(path, frames)
    goaway = [f for f in got if isinstance(f, hf.GoAwayFrame)]
    assert goaway and goaway[0].error_code == code, got
    assert _call(path, "/t.S/Echo", b"others go on") == b"others go on"


def test_an_early_error_stops_a_client_still_sending(served):
    """A request whose message header says more than the limit is answered before its body is
    read: a trailers-only RESOURCE_EXHAUSTED, then RST_STREAM NO_ERROR so the client stops."""
    import hpack
    import hyperframe.frame as hf

    _, path, _ = served
    header = b"\0" + (8 * 1024 * 1024).to_bytes(4, "big")
    got = _raw_frames(path, _grpc._frame(_grpc.HEADERS, _grpc.END_HEADERS, 1, _block(_headers()))
                      + _grpc._frame(_grpc.DATA, 0, 1, header + b"x" * 100), until_reset=True)
    (answer,) = [f for f in got if isinstance(f, hf.HeadersFrame)]
    assert "END_STREAM" in answer.flags
    fields = dict(hpack.Decoder().decode(answer.data))
    assert fields["grpc-status"] == str(_grpc.RESOURCE_EXHAUSTED)
    assert [(f.stream_id, f.error_code) for f in got if isinstance(f, hf.RstStreamFrame)] == [(1, _grpc.NO_ERROR)]


def test_a_second_request_message_is_refused_before_the_stream_ends(served):
    """A client that keeps streaming messages on a unary call is answered (INTERNAL) and stopped at
    the second message: the server does not buffer them until the stream ends."""
    import hpack
    import hyperframe.frame as hf

    _, path, _ = served
    got = _raw_frames(path, _grpc._frame(_grpc.HEADERS, _grpc.END_HEADERS, 1, _block(_headers()))
                      + _grpc._frame(_grpc.DATA, 0, 1, _message(b"one") + _message(b"two")), until_reset=True)
    (answer,) = [f for f in got if isinstance(f, hf.HeadersFrame)]
    fields = dict(hpack.Decoder().decode(answer.data))
    assert fields["grpc-status"] == str(_grpc.INTERNAL) and "exactly one request message" in fields["grpc-message"]
    assert [(f.stream_id, f.error_code) for f in got if isinstance(f, hf.RstStreamFrame)] == [(1, _grpc.NO_ERROR)]
