"""The launcher's gRPC client: unary calls on a unix socket, HTTP/2 by the ``h2`` library.

What virt-launcher's hook manager and its Plugin API client ask of gRPC: one request, one reply,
a deadline (sent as ``grpc-timeout`` and kept here too), the status and message from the trailers,
and Go's texts for what fails on this side (dial, deadline, EOF, an oversized reply, a reset
stream), so a caller reports what virt-launcher would. A ``Channel`` dials on its first call and
carries calls one after another until ``close()``; virt-launcher itself dials for every call.
This replaced grpcio here: loading grpcio and protobuf cost ``netbind up`` ~0.1 s per VM start.
"""
from __future__ import annotations

import errno
import os
import socket
import time
import urllib.parse

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

MAX_RECEIVE_BYTES = 4 * 1024 * 1024   # grpc-go's default for a client, as grpcio's
UNMARSHAL_FAILED = "grpc: failed to unmarshal the received message"   # grpc-go's text, before the cause
_WINDOW = 1 << 24                      # what we let the server send before it waits for us
_READ_SIZE = 1 << 16

# codes.Code's String() in grpc-go, by number
GO_CODE_NAMES = ("OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
                 "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
                 "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated")
CANCELLED, UNKNOWN, DEADLINE_EXCEEDED, PERMISSION_DENIED, RESOURCE_EXHAUSTED = 1, 2, 4, 7, 8
UNIMPLEMENTED, INTERNAL, UNAVAILABLE, UNAUTHENTICATED = 12, 13, 14, 16

# grpc-go's mapping of an HTTP/2 RST_STREAM error code to a status code (http2ErrConvTab)
_RESET_CODES = {h2.errors.ErrorCodes.REFUSED_STREAM: UNAVAILABLE, h2.errors.ErrorCodes.CANCEL: CANCELLED,
                h2.errors.ErrorCodes.FLOW_CONTROL_ERROR: RESOURCE_EXHAUSTED,
                h2.errors.ErrorCodes.ENHANCE_YOUR_CALM: RESOURCE_EXHAUSTED,
                h2.errors.ErrorCodes.INADEQUATE_SECURITY: PERMISSION_DENIED}
# ... and of a non-200 HTTP status (HTTPStatusConvTab)
_HTTP_CODES = {400: INTERNAL, 401: UNAUTHENTICATED, 403: PERMISSION_DENIED, 404: UNIMPLEMENTED, 429: UNAVAILABLE,
               502: UNAVAILABLE, 503: UNAVAILABLE, 504: UNAVAILABLE}
_HTTP_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
                 503: "Service Unavailable", 504: "Gateway Timeout"}


class CallError(Exception):
    """A call ended with a non-OK status; ``str()`` is Go's ``rpc error: code = ... desc = ...``."""

    def __init__(self, code: int, message: str):
        self.code = code
        self.message = message
        super().__init__(f"rpc error: code = {self.code_name} desc = {message}")

    @property
    def code_name(self) -> str:
        return GO_CODE_NAMES[self.code] if 0 <= self.code < len(GO_CODE_NAMES) else f"Code({self.code})"


def grpc_timeout(seconds: float) -> bytes:
    """The ``grpc-timeout`` header for what is left of a deadline: at most 8 digits, in the finest
    unit that fits, as grpc-go encodes it."""
    nanos = max(1, int(seconds * 1e9))
    for unit, size in ((b"n", 1), (b"u", 10**3), (b"m", 10**6), (b"S", 10**9), (b"M", 60 * 10**9)):
        value = -(-nanos // size)  # rounded up: the server must not time out before we do
        if value < 10**8:
            return b"%d%s" % (value, unit)
    return b"%dH" % -(-nanos // (3600 * 10**9))


def _dial_text(path: str, exc: OSError) -> str:
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    return f'connection error: desc = "transport: Error while dialing: dial unix {path}: connect: {reason}"'


class Channel:
    """Unary calls to the gRPC server on the unix socket ``path``, one at a time."""

    def __init__(self, path: str | os.PathLike, *, authority: str = "localhost"):
        self.path = os.path.abspath(path)
        self._authority = authority.encode()
        self._sock: socket.socket | None = None
        self._conn: h2.connection.H2Connection | None = None

    def __enter__(self) -> "Channel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            try:
                if self._conn is not None:
                    self._conn.close_connection()
                    self._sock.sendall(self._conn.data_to_send())
            except (OSError, h2.exceptions.ProtocolError):
                pass
            self._sock.close()
        self._sock = self._conn = None

    def connect(self, timeout: float, *, wait: bool = False) -> None:
        """Dial now. ``wait``: retry a refused or missing socket until ``timeout`` (grpc's blocking
        dial), then fail with Go's "context deadline exceeded"."""
        deadline = time.monotonic() + timeout
        while self._sock is None:
            try:
                self._dial(deadline)
            except CallError:
                if not wait:
                    raise
                if time.monotonic() >= deadline:
                    raise CallError(DEADLINE_EXCEEDED, "context deadline exceeded") from None
                time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))

    def _dial(self, deadline: float) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.connect(self.path)
        except socket.timeout:
            sock.close()
            raise CallError(DEADLINE_EXCEEDED, "context deadline exceeded") from None
        except OSError as exc:
            sock.close()
            raise CallError(UNAVAILABLE, _dial_text(self.path, exc)) from None
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW, h2.settings.SettingCodes.ENABLE_PUSH: 0})
        conn.initiate_connection()
        conn.increment_flow_control_window(_WINDOW - 65535)
        self._sock, self._conn = sock, conn

    def call(self, method: str, request: bytes, timeout: float) -> bytes:
        """Send ``request`` to ``method`` (``/package.Service/Method``); returns the reply message.
        Raises CallError. A failure other than a status from the server closes the connection. On
        a kept connection that the server has since closed, the call is made again on a new one
        (gRPC's transparent retry: the server never saw it)."""
        deadline = time.monotonic() + timeout
        if self._conn is not None and self._conn.state_machine.state is h2.connection.ConnectionState.CLOSED:
            self.close()   # the server's GOAWAY came with the last call: dial again
        reused = self._sock is not None
        call = None
        try:
            self.connect(timeout)
            call = _Call(self._sock, self._conn, deadline)
            return call.run(self._authority, method.encode(), request)
        except (h2.exceptions.ProtocolError, CallError) as exc:
            failure = exc if isinstance(exc, CallError) else CallError(
                INTERNAL, f'connection error: desc = "transport: {exc}"')
            if failure.code in (DEADLINE_EXCEEDED, UNAVAILABLE, INTERNAL, RESOURCE_EXHAUSTED, CANCELLED):
                self.close()   # the connection's state is not known: the next call dials again
            # the kept connection died under us (EOF, or its old GOAWAY read as a protocol error)
            # before the server answered: it never saw the call
            # (a real fault shows again on the new connection)
            if reused and failure.code in (UNAVAILABLE, INTERNAL) and call is not None and not call.headers:
                return self.call(method, request, max(0.0, deadline - time.monotonic()))
            raise failure from None


class _Call:
    """One unary exchange on an open connection."""

    def __init__(self, sock: socket.socket, conn: h2.connection.H2Connection, deadline: float):
        self.sock, self.conn, self.deadline = sock, conn, deadline
        self.stream = conn.get_next_available_stream_id()
        self.headers: dict[bytes, bytes] = {}
        self.trailers: dict[bytes, bytes] | None = None
        self.body = bytearray()
        self.ended = False
        self.peer_gone = False   # our writes fail: only reading is left

    def run(self, authority: bytes, path: bytes, request: bytes) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise CallError(DEADLINE_EXCEEDED, "context deadline exceeded")
        self.conn.send_headers(self.stream, [
            (b":method", b"POST"), (b":scheme", b"http"), (b":path", path), (b":authority", authority),
            (b"content-type", b"application/grpc"), (b"te", b"trailers"), (b"grpc-timeout", grpc_timeout(remaining)),
            (b"user-agent", b"netbind-launcher")])
        self._send_message(b"\0" + len(request).to_bytes(4, "big") + request)
        while not self.ended:
            self._read()
        return self._result()

    def _send_message(self, data: bytes) -> None:
        view = memoryview(data)
        while True:
            window = min(self.conn.local_flow_control_window(self.stream), self.conn.max_outbound_frame_size)
            if window > 0 or not view:
                chunk, view = view[:window], view[window:]
                self.conn.send_data(self.stream, chunk.tobytes(), end_stream=not view)
                self._flush()
                if not view:
                    return
            else:
                self._read()   # wait for the server to open its window
                if self.ended:   # it answered (an error) before taking the whole request
                    return

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.peer_gone:
            self.sock.settimeout(max(0.001, self.deadline - time.monotonic()))
            try:
                self.sock.sendall(data)
            except socket.timeout:
                raise CallError(DEADLINE_EXCEEDED, "context deadline exceeded") from None
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.ECONNRESET):
                    # the server hung up (a sidecar does right after its Shutdown reply): what it
                    # sent before may still be unread here, so reading decides, up to the EOF
                    self.peer_gone = True
                    return
                raise CallError(UNAVAILABLE, f"connection error: desc = \"transport: {exc.strerror}\"") from None

    def _read(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise CallError(DEADLINE_EXCEEDED, "context deadline exceeded")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(_READ_SIZE)
        except socket.timeout:
            raise CallError(DEADLINE_EXCEEDED, "context deadline exceeded") from None
        except OSError:
            data = b""
        if not data:
            raise CallError(UNAVAILABLE, "error reading from server: EOF")
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            raise CallError(INTERNAL, f"connection error: desc = \"transport: {exc}\"") from None
        for event in events:
            self._event(event)
        self._flush()   # acknowledgements (SETTINGS, WINDOW_UPDATE)

    def _event(self, event) -> None:
        if isinstance(event, h2.events.ConnectionTerminated):
            if not self.ended:
                raise CallError(UNAVAILABLE, "the server closed the connection (GOAWAY"
                                f" {getattr(event.error_code, 'name', event.error_code)})")
            return
        if getattr(event, "stream_id", self.stream) != self.stream:
            return
        if isinstance(event, h2.events.ResponseReceived):
            self.headers = dict(event.headers)
        elif isinstance(event, h2.events.TrailersReceived):
            self.trailers = dict(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            self.body += event.data
            self.conn.acknowledge_received_data(event.flow_controlled_length, self.stream)
            if len(self.body) >= 5:
                size = int.from_bytes(self.body[1:5], "big")
                if size > MAX_RECEIVE_BYTES:
                    self.conn.reset_stream(self.stream, h2.errors.ErrorCodes.CANCEL)
                    raise CallError(RESOURCE_EXHAUSTED, f"grpc: received message larger than max ({size} vs."
                                    f" {MAX_RECEIVE_BYTES})")
        elif isinstance(event, h2.events.StreamEnded):
            self.ended = True
        elif isinstance(event, h2.events.StreamReset):
            if self.ended:   # the reply is complete; the server only stops the rest of our request
                return
            code = _RESET_CODES.get(event.error_code, INTERNAL)
            name = getattr(event.error_code, "name", str(event.error_code))
            raise CallError(code, f"stream terminated by RST_STREAM with error code: {name}")

    def _result(self) -> bytes:
        http_status = self.headers.get(b":status", b"")
        if http_status != b"200":
            status = int(http_status) if http_status.isdigit() else 0
            raise CallError(_HTTP_CODES.get(status, UNKNOWN), "unexpected HTTP status code received from server:"
                            f" {status} ({_HTTP_REASONS.get(status, 'Unknown')})")
        # a call that fails at once ends in its headers ("trailers only")
        trailers = self.trailers if self.trailers is not None else self.headers
        code_text = trailers.get(b"grpc-status")
        if code_text is None:
            raise CallError(INTERNAL, "server closed the stream without sending trailers")
        code = int(code_text) if code_text.isdigit() else UNKNOWN
        if code != 0:
            message = urllib.parse.unquote_to_bytes(trailers.get(b"grpc-message", b"")).decode("utf-8", "replace")
            raise CallError(code, message)
        body = bytes(self.body)
        if len(body) < 5:
            raise CallError(INTERNAL, "grpc: the server sent no reply message")   # grpc-go: io.ErrUnexpectedEOF
        if body[0] != 0:
            raise CallError(INTERNAL, "grpc: compressed flag set with identity or empty encoding")
        size = int.from_bytes(body[1:5], "big")
        if len(body) < 5 + size:
            raise CallError(INTERNAL, "grpc: the reply message is cut short")
        if len(body) > 5 + size:
            raise CallError(INTERNAL, "cardinality violation: expected <EOF> for non server-streaming RPCs, but"
                            " received another message")
        return body[5:]
