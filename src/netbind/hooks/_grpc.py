"""A unary-only gRPC server on a unix socket: HTTP/2 by the ``h2`` library, threads, no asyncio.

What a hook sidecar needs of gRPC and no more: unary calls (one request message, one reply),
status codes and messages in trailers, ``grpc-timeout`` deadlines, concurrent streams on one
connection, a client that dials and hangs up per call, GOAWAY on stop. Leader and followers: one
thread at a time (the leader) runs the I/O loop and owns every socket and h2 state machine; when it
has read a call and another thread is idle, it hands the loop to that thread and runs the handler
itself, so one thread reads, answers and sends a call (calls that never block run inline). A
handler's reply goes out from its own thread; what the socket does not take, the leader sends.
"""
from __future__ import annotations

import collections
import functools
import os
import queue
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

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
_RESPONSE_HEADERS = ((b":status", b"200"), (b"content-type", b"application/grpc"))


class _H2Connection(h2.connection.H2Connection):
    # h2 remembers how each closed stream ended, up to 65,536 of them per connection: on a kept
    # connection that is megabytes. A unary server needs only the last few (late frames of a call
    # it has just answered or reset).
    MAX_CLOSED_STREAMS = 256


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


@dataclass
class _Stream:
    id: int
    method: Method | None = None
    deadline: float | None = None
    body: bytearray = field(default_factory=bytearray)
    discard: bool = False       # answered already (an error): later DATA is only flow-controlled
    pending: memoryview | None = None   # reply DATA waiting for flow-control window
    trailers: tuple = ()
    encoding: bytes = b"identity"


class _Connection:
    def __init__(self, server: "UnaryServer", sock: socket.socket):
        self.server = server
        self.sock = sock
        # our outbound headers are constants: validating and normalizing them per call is waste
        self.h2 = _H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=True,
            validate_outbound_headers=False, normalize_outbound_headers=False))
        # Huffman-coding them costs more time than the bytes it saves on a unix socket
        self.h2.encoder.encode = functools.partial(self.h2.encoder.encode, huffman=False)
        # one SETTINGS frame with our window (not a second one the client must also acknowledge)
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW})
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(_CONNECTION_WINDOW - 65535)
        self.streams: dict[int, _Stream] = {}
        self.outbox = bytearray()
        self.closing = False     # flush what is queued, then close
        self.closed = False
        self.broken = False      # the peer is gone (a send failed)
        self.writing = False     # registered for EVENT_WRITE (I/O thread only)
        # h2 state, streams and outbox: the I/O thread and a worker sending its reply take turns
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
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError as exc:
                self.h2.close_connection(error_code=getattr(exc, "error_code", h2.errors.ErrorCodes.PROTOCOL_ERROR))
                self.closing = True
                events = []
            for event in events:
                self._on_event(event)
        self.flush()

    def _on_event(self, event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._on_request(event.stream_id, event.headers)
        elif isinstance(event, h2.events.DataReceived):
            if event.flow_controlled_length:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream = self.streams.get(event.stream_id)
            if stream is not None and not stream.discard:
                stream.body += event.data
                self._check_size(stream)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None and not stream.discard:
                self._dispatch(stream)
        elif isinstance(event, h2.events.StreamReset):
            self.streams.pop(event.stream_id, None)   # the client gave up: a late reply is dropped
        elif isinstance(event, h2.events.WindowUpdated):
            for stream in list(self.streams.values()):
                if stream.pending is not None:
                    self._send_pending(stream)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closing = True

    def _on_request(self, stream_id: int, headers) -> None:
        stream = _Stream(stream_id)
        self.streams[stream_id] = stream
        if self.server.stopping:
            self.streams.pop(stream_id)
            self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        values = dict(headers)
        content_type = values.get(b"content-type", b"")
        if values.get(b":method") != b"POST" or not (content_type == b"application/grpc"
                                                     or content_type.startswith((b"application/grpc+",
                                                                                 b"application/grpc;"))):
            # not gRPC: an HTTP answer, as grpc-go gives
            stream.discard = True
            self.streams.pop(stream_id)
            self.h2.send_headers(stream_id, ((b":status", b"415" if values.get(b":method") == b"POST" else b"405"),
                                             (b"content-type", b"text/plain")), end_stream=True)
            return
        path = values.get(b":path", b"").decode("latin-1")
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

    def _check_size(self, stream: _Stream) -> None:
        if len(stream.body) >= 5:
            size = int.from_bytes(stream.body[1:5], "big")
            if size > self.server.max_receive_bytes:
                self._fail(stream, RESOURCE_EXHAUSTED, f"grpc: received message larger than max "
                                                       f"({size} vs. {self.server.max_receive_bytes})")

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
        request = bytes(body[5:])
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
        try:
            self.h2.send_headers(stream_id, _RESPONSE_HEADERS)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.streams.pop(stream_id, None)
            return
        stream.pending = memoryview(b"\0" + len(payload).to_bytes(4, "big") + payload)
        stream.trailers = ((b"grpc-status", b"0"),)
        self._send_pending(stream)
        if stream.method is not None and stream.method.after_reply is not None:
            stream.method.after_reply()

    def _send_pending(self, stream: _Stream) -> None:
        data = stream.pending
        try:
            while data:
                room = min(self.h2.local_flow_control_window(stream.id), self.h2.max_outbound_frame_size)
                if room <= 0:
                    stream.pending = data
                    return
                self.h2.send_data(stream.id, data[:room])
                data = data[room:]
            stream.pending = None
            self.h2.send_headers(stream.id, stream.trailers, end_stream=True)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        self.streams.pop(stream.id, None)

    def _fail(self, stream: _Stream, code: int, message: str) -> None:
        """A trailers-only response: status and message in the one HEADERS frame that ends the stream."""
        stream.discard = True
        self.streams.pop(stream.id, None)
        try:
            self.h2.send_headers(stream.id, (*_RESPONSE_HEADERS, (b"grpc-status", str(code).encode()),
                                             (b"grpc-message", percent_encode(message))), end_stream=True)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass

    def expire(self, stream_id: int) -> None:
        with self.lock:
            stream = self.streams.get(stream_id)
            if stream is None or stream.discard:
                return
            if stream.pending is not None:   # its reply is half sent: the client stopped reading it
                self.streams.pop(stream_id)
                try:
                    self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                    pass
            else:
                self._fail(stream, DEADLINE_EXCEEDED, "Deadline Exceeded")
        self.flush()

    def write(self) -> bool:
        """Send what h2 has queued, as far as the socket takes it (with ``lock`` held, any thread);
        False if the I/O thread has more to do: wait for the socket, or hang up."""
        self.outbox += self.h2.data_to_send()
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
        """GOAWAY and hang up once what is queued is written (h2 sends nothing more after it)."""
        with self.lock:
            self.closing = True
            try:
                self.h2.close_connection()
            except h2.exceptions.ProtocolError:
                pass
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
