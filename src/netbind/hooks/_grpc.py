"""A unary-only gRPC server on a unix socket: HTTP/2 framed here, HPACK by ``hpack``, threads.

What a hook sidecar needs of gRPC and no more: unary calls (one request message, one reply),
status codes and messages in trailers, ``grpc-timeout`` deadlines, concurrent streams on one
connection, a client that dials and hangs up per call, GOAWAY on stop. Leader and followers: one
thread at a time (the leader) runs the I/O loop and owns every socket and connection state; when it
has read a call and another thread is idle, it hands the loop to that thread and runs the handler
itself, so one thread reads, answers and sends a call (calls that never block run inline). A
handler's reply goes out from its own thread; what the socket does not take, the leader sends.

HTTP/2 is done here rather than by ``h2``: its general state machine cost ~150 us of a ~1 ms call
(events, validation, an encoder per connection), while a unary server needs a handful of frames
with constant header blocks. What it keeps of RFC 9113: the preface and SETTINGS exchange, both
windows in both directions (WINDOW_UPDATE as requests are read; replies wait for the peer's
window), frame size limits, CONTINUATION, padding, PING, RST_STREAM, GOAWAY, stream limits.
"""
from __future__ import annotations

import collections
import os
import queue
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import hpack

# gRPC status codes (grpc/include/grpc/impl/codegen/status.h)
OK, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED = 0, 2, 3, 4
RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 8, 12, 13, 14
STATUS_NAMES = {OK: "OK", UNKNOWN: "UNKNOWN", INVALID_ARGUMENT: "INVALID_ARGUMENT",
                DEADLINE_EXCEEDED: "DEADLINE_EXCEEDED", RESOURCE_EXHAUSTED: "RESOURCE_EXHAUSTED",
                UNIMPLEMENTED: "UNIMPLEMENTED", INTERNAL: "INTERNAL", UNAVAILABLE: "UNAVAILABLE"}

MAX_RECEIVE_BYTES = 4 * 1024 * 1024   # grpc-go's and grpcio's default server limit
_STREAM_WINDOW = 1 << 20              # a whole domain arrives without waiting for WINDOW_UPDATEs
_CONNECTION_WINDOW = 1 << 24
_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


class Status(Exception):
    """Raise from a handler to end the call with this gRPC status code and message."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Method:
    """``handler(request bytes) -> reply bytes``. ``inline`` handlers run on the I/O thread: only
    for answers that are ready-made. ``after_reply`` runs once the reply has been queued."""

    handler: Callable[[bytes], bytes]
    inline: bool = False
    after_reply: Callable[[], None] | None = None


def percent_encode(message: str) -> bytes:
    """grpc-message: UTF-8, with bytes outside printable ASCII and '%' percent-encoded (gRPC spec)."""
    return b"".join(bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b
                    for b in message.encode("utf-8", "replace"))


def parse_timeout(value: bytes) -> float | None:
    """``grpc-timeout`` (1-8 digits and a unit) in seconds; None if malformed."""
    unit = _TIMEOUT_UNITS.get(value[-1:])
    digits = value[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return int(digits) * unit


# ---- HTTP/2 (RFC 9113) as a unary gRPC server needs it ------------------------------------------
# Frames are read and written here directly; header blocks are decoded by ``hpack`` (the peer's
# dynamic table and Huffman coding). What we send never uses the dynamic table (literals without
# indexing), so our header blocks are constants or built by :func:`_literal`, with no encoder state.
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 0x5, 0x6, 0x7, 0x8, 0x9
_HEADER_TABLE_SIZE, _ENABLE_PUSH, _MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
_INITIAL_WINDOW_SIZE, _MAX_FRAME_SIZE, _MAX_HEADER_LIST_SIZE = 0x4, 0x5, 0x6
_DEFAULT_WINDOW = 65535
_MAX_WINDOW = (1 << 31) - 1
_FRAME_LIMIT = 16384                  # the largest frame we accept (the default; we never raise it)
MAX_CONCURRENT_STREAMS = 100
MAX_HEADER_LIST_BYTES = 16384         # grpc-go's default limit is 16 MiB; a hook request has ~300 bytes


def _frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (len(payload) << 48 | kind << 40 | flags << 32 | stream_id).to_bytes(9, "big") + payload


def _hpack_int(value: int, prefix: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541 5.1) with a ``prefix``-bit prefix OR-ed into ``first``."""
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _literal(name: bytes, value: bytes) -> bytes:
    """A header field as a literal without indexing, name and value not Huffman-coded."""
    return b"\0" + _hpack_int(len(name), 7, 0) + name + _hpack_int(len(value), 7, 0) + value


# :status 200 (static table entry 8), content-type (name: static entry 31) application/grpc
_OK_HEADERS = b"\x88" + _hpack_int(31, 4, 0) + _hpack_int(16, 7, 0) + b"application/grpc"
_OK_TRAILERS = _literal(b"grpc-status", b"0")
# our SETTINGS (the stream window for requests, the stream limit) and the connection's window
_SERVER_PREFACE = (_frame(SETTINGS, 0, 0, b"".join(
    k.to_bytes(2, "big") + v.to_bytes(4, "big") for k, v in (
        (_MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS), (_INITIAL_WINDOW_SIZE, _STREAM_WINDOW),
        (_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_BYTES))))
    + _frame(WINDOW_UPDATE, 0, 0, (_CONNECTION_WINDOW - _DEFAULT_WINDOW).to_bytes(4, "big")))
_SETTINGS_ACK = _frame(SETTINGS, ACK, 0)


def _status_headers(status: bytes, content_type: bytes) -> bytes:
    return b"\x08" + _hpack_int(len(status), 7, 0) + status + _hpack_int(31, 4, 0) + _hpack_int(
        len(content_type), 7, 0) + content_type


class _ConnectionError(Exception):
    """The peer broke HTTP/2: GOAWAY with this code, then hang up."""

    def __init__(self, code: int, why: str):
        super().__init__(why)
        self.code = code


@dataclass
class _Stream:
    id: int
    method: Method | None = None
    deadline: float | None = None
    body: bytearray = field(default_factory=bytearray)
    discard: bool = False       # answered already (an error): later DATA is only flow-controlled
    pending: memoryview | None = None   # reply DATA waiting for flow-control window
    trailers: bytes = b""
    encoding: bytes = b"identity"
    window: int = _DEFAULT_WINDOW    # what the peer lets us send on this stream
    unacked: int = 0            # request bytes received and not yet given back by WINDOW_UPDATE
    remote_closed: bool = False # the client has ended its side (END_STREAM)


class _Connection:
    def __init__(self, server: "UnaryServer", sock: socket.socket):
        self.server = server
        self.sock = sock
        self.decoder = hpack.Decoder(max_header_list_size=MAX_HEADER_LIST_BYTES)
        self.inbox = bytearray()
        self.preface_seen = False
        self.settings_seen = False
        self.header_block: tuple[int, int, bytearray] | None = None   # (stream, flags, block) until END_HEADERS
        self.last_stream_id = 0       # the highest stream the client opened
        self.peer_window = _DEFAULT_WINDOW    # the connection's send window
        self.peer_initial_window = _DEFAULT_WINDOW
        self.peer_max_frame = 16384
        self.unacked = 0              # connection-level bytes to give back
        self.streams: dict[int, _Stream] = {}
        self.outbox = bytearray(_SERVER_PREFACE)
        self.closing = False     # flush what is queued, then close
        self.goaway_sent = False
        self.closed = False
        self.broken = False      # the peer is gone (a send failed)
        self.writing = False     # registered for EVENT_WRITE (I/O thread only)
        # streams, windows and outbox: the I/O thread and a worker sending its reply take turns
        self.lock = threading.Lock()

    # -- input --------------------------------------------------------------------------------
    def readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        with self.lock:
            if not self.closing:
                if self.inbox:
                    self.inbox += data
                else:
                    self.inbox = bytearray(data)
                try:
                    self._process()
                except _ConnectionError as exc:
                    self._goaway(exc.code, str(exc))
                except hpack.HPACKError as exc:
                    self._goaway(COMPRESSION_ERROR, f"header block: {exc}")
                except Exception as exc:   # a fault here ends this connection, never the I/O loop
                    self._goaway(INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        self.flush()

    def _process(self) -> None:
        # frames are read from an immutable copy: the views handed on must outlive the buffer's edits
        inbox = bytes(self.inbox)
        pos = 0
        if not self.preface_seen:
            if len(inbox) < len(_PREFACE):
                if not _PREFACE.startswith(inbox):
                    raise _ConnectionError(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                return
            if not inbox.startswith(_PREFACE):
                raise _ConnectionError(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
            self.preface_seen = True
            pos = len(_PREFACE)
        end = len(inbox)
        view = memoryview(inbox)
        try:
            while end - pos >= 9 and not self.closing:
                length = int.from_bytes(view[pos:pos + 3], "big")
                if length > _FRAME_LIMIT:
                    raise _ConnectionError(FRAME_SIZE_ERROR, f"a frame of {length} bytes, over {_FRAME_LIMIT}")
                if end - pos < 9 + length:
                    break
                kind, flags = inbox[pos + 3], inbox[pos + 4]
                stream_id = int.from_bytes(view[pos + 5:pos + 9], "big") & 0x7FFFFFFF
                payload = view[pos + 9:pos + 9 + length]
                pos += 9 + length
                self._on_frame(kind, flags, stream_id, payload)
        finally:
            del self.inbox[:pos]

    def _on_frame(self, kind: int, flags: int, stream_id: int, payload: memoryview) -> None:
        if self.header_block is not None and kind != CONTINUATION:
            raise _ConnectionError(PROTOCOL_ERROR, "a header block interrupted by another frame")
        if not self.settings_seen:
            if kind != SETTINGS or flags & ACK:
                raise _ConnectionError(PROTOCOL_ERROR, "the connection must begin with SETTINGS")
            self.settings_seen = True
        if kind == DATA:
            self._on_data(flags, stream_id, payload)
        elif kind == HEADERS:
            if stream_id == 0:
                raise _ConnectionError(PROTOCOL_ERROR, "HEADERS on stream 0")
            block = _unpad(flags, payload)
            if flags & PRIORITY_FLAG:
                if len(block) < 5:
                    raise _ConnectionError(FRAME_SIZE_ERROR, "HEADERS too short for its priority")
                block = block[5:]
            if flags & END_HEADERS:
                self._on_headers(stream_id, flags, bytes(block))
            else:
                self.header_block = (stream_id, flags, bytearray(block))
        elif kind == CONTINUATION:
            if self.header_block is None or self.header_block[0] != stream_id:
                raise _ConnectionError(PROTOCOL_ERROR, "CONTINUATION without its HEADERS")
            block = self.header_block[2]
            block += payload
            if len(block) > MAX_HEADER_LIST_BYTES * 2:
                raise _ConnectionError(COMPRESSION_ERROR, "header block too large")
            if flags & END_HEADERS:
                first_flags = self.header_block[1]
                self.header_block = None
                self._on_headers(stream_id, first_flags, bytes(block))
        elif kind == SETTINGS:
            self._on_settings(flags, stream_id, payload)
        elif kind == WINDOW_UPDATE:
            if len(payload) != 4:
                raise _ConnectionError(FRAME_SIZE_ERROR, "WINDOW_UPDATE of a wrong size")
            increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
            self._on_window_update(stream_id, increment)
        elif kind == PING:
            if len(payload) != 8 or stream_id:
                raise _ConnectionError(FRAME_SIZE_ERROR if len(payload) != 8 else PROTOCOL_ERROR, "a malformed PING")
            if not flags & ACK:
                self.outbox += _frame(PING, ACK, 0, bytes(payload))
        elif kind == RST_STREAM:
            if len(payload) != 4 or stream_id == 0:
                raise _ConnectionError(FRAME_SIZE_ERROR if len(payload) != 4 else PROTOCOL_ERROR, "a malformed RST_STREAM")
            self._check_known(stream_id, "RST_STREAM")
            self.streams.pop(stream_id, None)   # the client gave up: a late reply is dropped
        elif kind == PRIORITY:
            if len(payload) != 5 or stream_id == 0:
                raise _ConnectionError(FRAME_SIZE_ERROR if len(payload) != 5 else PROTOCOL_ERROR, "a malformed PRIORITY")
        elif kind == GOAWAY:
            self.closing = True   # the client leaves: what is queued goes out, then we hang up
        elif kind == PUSH_PROMISE:
            raise _ConnectionError(PROTOCOL_ERROR, "a client may not push")
        # frames of unknown types are ignored (RFC 9113 4.1)

    def _check_known(self, stream_id: int, what: str) -> None:
        if stream_id > self.last_stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, f"{what} on idle stream {stream_id}")

    def _on_settings(self, flags: int, stream_id: int, payload: memoryview) -> None:
        if stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if len(payload):
                raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS of a wrong size")
        for i in range(0, len(payload), 6):
            key, value = int.from_bytes(payload[i:i + 2], "big"), int.from_bytes(payload[i + 2:i + 6], "big")
            if key == _INITIAL_WINDOW_SIZE:
                if value > _MAX_WINDOW:
                    raise _ConnectionError(FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE over 2^31-1")
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for stream in self.streams.values():
                    stream.window += delta
            elif key == _MAX_FRAME_SIZE:
                if not 16384 <= value <= 16777215:
                    raise _ConnectionError(PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range")
                self.peer_max_frame = value
            elif key == _ENABLE_PUSH and value > 1:
                raise _ConnectionError(PROTOCOL_ERROR, "ENABLE_PUSH must be 0 or 1")
            # HEADER_TABLE_SIZE bounds an encoder's dynamic table: ours has none
        self.outbox += _SETTINGS_ACK
        self._send_all_pending()

    def _on_window_update(self, stream_id: int, increment: int) -> None:
        if stream_id == 0:
            if increment == 0:
                raise _ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0 on the connection")
            self.peer_window += increment
            if self.peer_window > _MAX_WINDOW:
                raise _ConnectionError(FLOW_CONTROL_ERROR, "connection window over 2^31-1")
            self._send_all_pending()
            return
        self._check_known(stream_id, "WINDOW_UPDATE")
        stream = self.streams.get(stream_id)
        if stream is None:
            return   # a stream we have finished: late updates are allowed
        if increment == 0 or stream.window + increment > _MAX_WINDOW:
            self._reset(stream, PROTOCOL_ERROR if increment == 0 else FLOW_CONTROL_ERROR)
            return
        stream.window += increment
        if stream.pending is not None:
            self._send_pending(stream)

    def _on_data(self, flags: int, stream_id: int, payload: memoryview) -> None:
        if stream_id == 0:
            raise _ConnectionError(PROTOCOL_ERROR, "DATA on stream 0")
        self._check_known(stream_id, "DATA")
        # every byte of the frame counts against the windows, padding included
        self.unacked += len(payload)
        if self.unacked >= _CONNECTION_WINDOW // 2:
            self.outbox += _frame(WINDOW_UPDATE, 0, 0, self.unacked.to_bytes(4, "big"))
            self.unacked = 0
        stream = self.streams.get(stream_id)
        if stream is None:
            return   # finished or reset by us: only the connection's window matters
        if stream.remote_closed:
            self._reset(stream, STREAM_CLOSED)
            return
        stream.unacked += len(payload)
        if stream.unacked > _STREAM_WINDOW:
            self._reset(stream, FLOW_CONTROL_ERROR)
            return
        data = _unpad(flags, payload)
        if flags & END_STREAM:
            stream.remote_closed = True
        elif stream.unacked >= _STREAM_WINDOW // 2:
            self.outbox += _frame(WINDOW_UPDATE, 0, stream_id, stream.unacked.to_bytes(4, "big"))
            stream.unacked = 0
        if stream.discard:
            return
        stream.body += data
        if self._check_size(stream) and stream.remote_closed:
            self._dispatch(stream)

    def _on_headers(self, stream_id: int, flags: int, block: bytes) -> None:
        headers = self.decoder.decode(block, raw=True)   # always: the decoder's table must follow the peer's
        stream = self.streams.get(stream_id)
        if stream_id <= self.last_stream_id:
            if stream is None:
                return   # a stream we have finished or refused; frames in flight are expected
            if stream.remote_closed:
                self._reset(stream, STREAM_CLOSED)
                return
            # trailers from the client: the request ends here
            if not flags & END_STREAM:
                raise _ConnectionError(PROTOCOL_ERROR, "trailers without END_STREAM")
            stream.remote_closed = True
            if not stream.discard:
                self._dispatch(stream)
            return
        if not stream_id & 1:
            raise _ConnectionError(PROTOCOL_ERROR, f"a client opened even stream {stream_id}")
        self.last_stream_id = stream_id
        stream = _Stream(stream_id, window=self.peer_initial_window, remote_closed=bool(flags & END_STREAM))
        if self.server.stopping or self.goaway_sent or len(self.streams) >= MAX_CONCURRENT_STREAMS:
            self.outbox += _frame(RST_STREAM, 0, stream_id, REFUSED_STREAM.to_bytes(4, "big"))
            return
        self.streams[stream_id] = stream
        self._on_request(stream, headers)
        if stream.remote_closed and not stream.discard:
            self._dispatch(stream)

    def _on_request(self, stream: _Stream, headers) -> None:
        values = {}
        for name, value in headers:
            if name in values and name[:1] == b":":
                self._reset(stream, PROTOCOL_ERROR)   # a malformed request (RFC 9113 8.1.1)
                return
            values[name] = value
        if b":path" not in values or b":method" not in values or b":scheme" not in values:
            self._reset(stream, PROTOCOL_ERROR)
            return
        method = values[b":method"]
        content_type = values.get(b"content-type", b"")
        if method != b"POST" or not (content_type == b"application/grpc"
                                     or content_type.startswith((b"application/grpc+", b"application/grpc;"))):
            # not gRPC: an HTTP answer, as grpc-go gives
            self._finish(stream, _status_headers(b"415" if method == b"POST" else b"405", b"text/plain"))
            return
        path = values[b":path"].decode("latin-1")
        stream.method = self.server.methods.get(path)
        if stream.method is None:
            service, _, name = path.lstrip("/").rpartition("/")
            known = any(p.startswith(f"/{service}/") for p in self.server.methods)
            self._fail(stream, UNIMPLEMENTED, f"unknown method {name} for service {service}" if known and service
                       else f"unknown service {service or path}")
            return
        timeout = values.get(b"grpc-timeout")
        if timeout is not None:
            seconds = parse_timeout(timeout)
            if seconds is None:
                self._fail(stream, INTERNAL, f"malformed grpc-timeout: {timeout.decode('latin-1')}")
                return
            stream.deadline = time.monotonic() + seconds
        stream.encoding = values.get(b"grpc-encoding", b"identity")

    def _check_size(self, stream: _Stream) -> bool:
        if len(stream.body) >= 5:
            size = int.from_bytes(stream.body[1:5], "big")
            if size > self.server.max_receive_bytes:
                self._fail(stream, RESOURCE_EXHAUSTED, f"grpc: received message larger than max "
                                                       f"({size} vs. {self.server.max_receive_bytes})")
                return False
            if len(stream.body) > 5 + size:   # a second message: refused now, not buffered without end
                self._fail(stream, INTERNAL, "grpc: a unary call carries exactly one request message")
                return False
        return True

    def _dispatch(self, stream: _Stream) -> None:
        body = stream.body
        if len(body) < 5 or len(body) != 5 + int.from_bytes(body[1:5], "big"):
            self._fail(stream, INTERNAL, "grpc: a unary call carries exactly one request message"
                       if len(body) >= 5 else "grpc: no request message received")
            return
        if body[0]:
            encoding = stream.encoding
            if encoding in (b"identity", b""):
                self._fail(stream, INTERNAL, "grpc: compressed flag set with identity or empty encoding")
            else:
                self._fail(stream, UNIMPLEMENTED, "grpc: Decompressor is not installed for grpc-encoding "
                           f"\"{encoding.decode('latin-1')}\"")
            return
        request = bytes(memoryview(body)[5:])
        stream.body = bytearray()
        if stream.method.inline:
            self.complete(stream.id, *_call(stream.method, request))
        else:
            self.server.submit(self, stream.id, stream.method, request)

    # -- output -------------------------------------------------------------------------------
    def complete(self, stream_id: int, code: int, payload: bytes, message: str) -> None:
        """A handler's outcome: the reply, or the status it failed with (with ``lock`` held)."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.discard or self.closed:
            return  # reset by the client, timed out, or the connection is gone
        if code != OK:
            self._fail(stream, code, message)
            return
        self.outbox += _frame(HEADERS, END_HEADERS, stream_id, _OK_HEADERS)
        stream.pending = memoryview(b"\0" + len(payload).to_bytes(4, "big") + payload)
        stream.trailers = _OK_TRAILERS
        stream.discard = True
        self._send_pending(stream)
        if stream.method is not None and stream.method.after_reply is not None:
            stream.method.after_reply()

    def _send_pending(self, stream: _Stream) -> None:
        """DATA as far as both windows allow; once all is out, the trailers end the stream."""
        data = stream.pending
        while data:
            room = min(self.peer_window, stream.window, self.peer_max_frame, len(data))
            if room <= 0:
                stream.pending = data
                return
            self.outbox += _frame(DATA, 0, stream.id, data[:room])
            self.peer_window -= room
            stream.window -= room
            data = data[room:]
        stream.pending = None
        self._finish(stream, stream.trailers)

    def _send_all_pending(self) -> None:
        for stream in list(self.streams.values()):
            if stream.pending is not None:
                self._send_pending(stream)

    def _finish(self, stream: _Stream, block: bytes) -> None:
        """Headers that end the stream; a client still sending is told to stop (RST_STREAM NO_ERROR,
        as grpc-go does), and nothing of the stream is kept."""
        stream.discard = True
        self.streams.pop(stream.id, None)
        self._headers(stream.id, block, END_STREAM)
        if not stream.remote_closed:
            self.outbox += _frame(RST_STREAM, 0, stream.id, NO_ERROR.to_bytes(4, "big"))

    def _headers(self, stream_id: int, block: bytes, flags: int) -> None:
        size = self.peer_max_frame
        if len(block) <= size:
            self.outbox += _frame(HEADERS, flags | END_HEADERS, stream_id, block)
            return
        chunks = [block[i:i + size] for i in range(0, len(block), size)]
        self.outbox += _frame(HEADERS, flags, stream_id, chunks[0])
        for i, chunk in enumerate(chunks[1:], 2):
            self.outbox += _frame(CONTINUATION, END_HEADERS if i == len(chunks) else 0, stream_id, chunk)

    def _fail(self, stream: _Stream, code: int, message: str) -> None:
        """A trailers-only response: status and message in the one HEADERS frame that ends the stream."""
        self._finish(stream, _OK_HEADERS + _literal(b"grpc-status", str(code).encode())
                     + _literal(b"grpc-message", percent_encode(message)))

    def _reset(self, stream: _Stream, code: int) -> None:
        stream.discard = True
        self.streams.pop(stream.id, None)
        self.outbox += _frame(RST_STREAM, 0, stream.id, code.to_bytes(4, "big"))

    def _goaway(self, code: int, why: str = "") -> None:
        if not self.goaway_sent:
            self.goaway_sent = True
            self.outbox += _frame(GOAWAY, 0, 0, self.last_stream_id.to_bytes(4, "big") + code.to_bytes(4, "big")
                                  + why.encode()[:256])
        self.closing = True

    def expire(self, stream_id: int) -> None:
        with self.lock:
            stream = self.streams.get(stream_id)
            if stream is not None and not (stream.discard and stream.pending is None):
                if stream.pending is not None:   # its reply is half sent: the client stopped reading it
                    self._reset(stream, CANCEL)
                else:
                    self._fail(stream, DEADLINE_EXCEEDED, "Deadline Exceeded")
        self.flush()

    def write(self) -> bool:
        """Send what is queued, as far as the socket takes it (with ``lock`` held, any thread);
        False if the I/O thread has more to do: wait for the socket, or hang up."""
        while self.outbox:
            try:
                sent = self.sock.send(self.outbox)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                self.broken = True
                return False
            del self.outbox[:sent]
        return not self.closing

    def flush(self) -> None:
        """``write``, then what only the I/O thread does: watch for writability, hang up."""
        if self.closed:
            return
        with self.lock:
            self.write()
        if self.broken:
            self.close()
            return
        want_write = bool(self.outbox)
        if want_write != self.writing:
            self.writing = want_write
            self.server.selector.modify(self.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0),
                                        self)
        if self.closing and not self.outbox:
            self.close()

    def goaway(self) -> None:
        """GOAWAY and hang up once what is queued is written."""
        with self.lock:
            self._goaway(NO_ERROR)
        self.flush()

    def close(self) -> None:
        if self.closed:
            return
        with self.lock:
            self.closed = True
            self.streams.clear()
        self.server.forget(self)
        try:
            self.server.selector.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        self.sock.close()


def _unpad(flags: int, payload: memoryview) -> memoryview:
    if not flags & PADDED:
        return payload
    if not len(payload) or payload[0] >= len(payload):
        raise _ConnectionError(PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1:len(payload) - payload[0]]


def _call(method: Method, request: bytes) -> tuple[int, bytes, str]:
    try:
        return OK, method.handler(request), ""
    except Status as exc:
        return exc.code, b"", exc.message
    except Exception as exc:  # the handler layer maps its own errors; this is the last resort
        return UNKNOWN, b"", f"Exception calling application: {exc}"


class UnaryServer:
    """Serve ``methods`` (``"/package.Service/Method"`` -> :class:`Method`) on a unix socket."""

    def __init__(self, methods: dict[str, Method], *, workers: int = 2, max_receive_bytes: int = MAX_RECEIVE_BYTES,
                 before_call: Callable[[], None] | None = None, after_reply: Callable[[], None] | None = None):
        self.methods = dict(methods)
        # run on the handler's thread around each call that is not inline: before the handler, and
        # once its reply has been handed to the socket (work deferred there costs no thread switch)
        self._before_call = before_call
        self._after_reply = after_reply
        self.max_receive_bytes = max_receive_bytes
        self.selector = selectors.DefaultSelector()
        self.stopping = False
        self._workers = max(1, workers)   # handlers at once; one more thread leads
        self._turns = threading.Condition(threading.Lock())   # guards the four below
        self._idle = 0                 # threads waiting for a turn
        self._lead_free = False        # the I/O loop waits for a thread to take it
        self._ready: collections.deque = collections.deque()  # calls read, for any idle thread
        self._exit = False
        self._read: list[tuple] = []   # calls read by the leader in its current round
        self._kicked: queue.SimpleQueue = queue.SimpleQueue()   # connections a worker left to the I/O thread
        self._connections: set[_Connection] = set()
        self._listeners: list[socket.socket] = []
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_lock = threading.Lock()
        self._wake_closed = False
        self._threads: list[threading.Thread] = []
        self._stop_by: float | None = None
        self._stop_requested = threading.Event()
        self._grace = 0.0
        self.stopped = threading.Event()

    def bind(self, path: str) -> None:
        """Listen on ``path`` too (raises OSError); serving starts with :meth:`start`. Every socket
        serves every method (a sidecar answering the hook API and the Plugin API at once)."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            listener.bind(path)
            listener.listen(socket.SOMAXCONN)
        except OSError:
            listener.close()
            raise
        listener.setblocking(False)
        self._listeners.append(listener)

    def start(self) -> None:
        for listener in self._listeners:
            self.selector.register(listener, selectors.EVENT_READ, "listener")
        self.selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._lead_free = True
        for i in range(self._workers + 1):
            thread = threading.Thread(target=self._follow, name=f"netbind-hook-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, grace: float = 2.0) -> None:
        """Refuse new calls, send GOAWAY, let calls in flight finish for up to ``grace`` s, close."""
        if self.stopped.is_set():
            return
        if not self._threads:   # never started: only the listening socket to close
            for listener in self._listeners:
                listener.close()
            return
        self._grace = grace
        self._stop_requested.set()
        self._wake()
        self.stopped.wait()

    # -- called on the I/O thread -------------------------------------------------------------
    def submit(self, conn: _Connection, stream_id: int, method: Method, request: bytes) -> None:
        self._read.append((conn, stream_id, method, request))

    def forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)

    # -- threads ------------------------------------------------------------------------------
    def _wake(self) -> None:
        with self._wake_lock:   # a handler may finish after the loop closed the pipe (and its fd got reused)
            if self._wake_closed:
                return
            try:
                os.write(self._wake_w, b"\0")
            except BlockingIOError:
                pass  # a wake-up is pending already

    def _follow(self) -> None:
        """A thread's life: wait for a turn (lead the I/O loop, or run a call read by the leader)."""
        turns = self._turns
        while True:
            with turns:
                self._idle += 1
                while not (self._exit or self._lead_free or self._ready):
                    turns.wait()
                self._idle -= 1
                if self._exit:
                    return
                if self._lead_free:   # the loop first: it answers every socket
                    self._lead_free = False
                    job = None
                else:
                    job = self._ready.popleft()
            if job is None:
                job = self._lead()
                if job is None:
                    return   # the server has stopped
            self._serve_one(*job)
            job = None   # a waiting thread keeps nothing of its last call alive

    def _serve_one(self, conn: _Connection, stream_id: int, method: Method, request: bytes) -> None:
        if self._before_call is not None:
            self._before_call()
        try:
            code, payload, message = _call(method, request)
            with conn.lock:   # the reply goes out from here: no second hand-over to the I/O thread
                if conn.closed:
                    return
                conn.complete(stream_id, code, payload, message)
                sent = conn.write()
            if not sent:
                self._kicked.put(conn)
                self._wake()
        finally:
            if self._after_reply is not None:
                self._after_reply()

    def _lead(self):
        """Run the I/O loop until a call has been read and an idle thread can take the loop over;
        returns that call, to be run on this thread (None once the server has stopped). Without an
        idle thread the calls wait in ``_ready`` for the first handler thread to finish."""
        job = None
        try:
            while True:
                if self._tick():
                    return None
                if not self._read:
                    continue
                with self._turns:
                    job = self._read.pop(0) if self._idle else None
                    self._ready.extend(self._read)
                    self._read.clear()
                    if job is not None:
                        self._lead_free = True
                    self._turns.notify(len(self._ready) + (job is not None))
                if job is not None:
                    return job
        finally:
            if job is None:   # stopped, or the loop failed: nobody leads after this thread
                self._shut_down()

    def _shut_down(self) -> None:
        for conn in list(self._connections):
            conn.close()
        with self._turns:
            self._exit = True
            self._ready.clear()
            self._turns.notify_all()
        self.selector.close()
        with self._wake_lock:
            self._wake_closed = True
            os.close(self._wake_r)
            os.close(self._wake_w)
        self.stopped.set()

    def _deadlines(self) -> list[tuple[float, _Connection, int]]:
        # scanned, not kept in a heap: a heap would hold every connection until its deadline
        # passed (seconds after the call), and a sidecar has a call or two in flight at most
        return [(stream.deadline, conn, stream.id) for conn in self._connections
                for stream in list(conn.streams.values()) if stream.deadline is not None]

    def _timeout(self) -> float | None:
        soonest = [d for d, _, _ in self._deadlines()]
        if self._stop_by is not None:
            soonest.append(self._stop_by)
        return max(0.0, min(soonest) - time.monotonic()) if soonest else None

    def _tick(self) -> bool:
        """One round of the I/O loop; True when the server has stopped."""
        for key, mask in self.selector.select(self._timeout()):
            if key.data == "listener":
                self._accept(key.fileobj)
            elif key.data == "wake":
                self._drain_wake()
            else:
                conn: _Connection = key.data
                if mask & selectors.EVENT_READ and not conn.closed:
                    conn.readable()
                if mask & selectors.EVENT_WRITE and not conn.closed:
                    conn.flush()
        now = time.monotonic()
        for deadline, conn, stream_id in self._deadlines():
            if deadline <= now and not conn.closed:
                conn.expire(stream_id)
        if self._stop_requested.is_set() and not self.stopping:
            self._begin_stop()
        if self.stopping:
            for conn in list(self._connections):
                if not conn.streams and not conn.closing:
                    conn.goaway()   # its calls in flight are done
            return not self._connections or time.monotonic() >= self._stop_by
        return False

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            conn = _Connection(self, sock)
            self._connections.add(conn)
            self.selector.register(sock, selectors.EVENT_READ, conn)
            conn.flush()

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                conn = self._kicked.get_nowait()
            except queue.Empty:
                return
            conn.flush()

    def _begin_stop(self) -> None:
        self.stopping = True
        self._stop_by = time.monotonic() + self._grace
        for listener in self._listeners:
            self.selector.unregister(listener)
            listener.close()
