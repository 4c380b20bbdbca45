"""A sidecar's serving: Info + Callbacks v1alpha1/2/3 (the hook API) and the Plugin API's
DomainHookService.MutateDomain on one or more unix sockets, over :mod:`._grpc` (h2) with the
messages encoded by :mod:`._wire` (no grpcio or protobuf in the sidecar process)."""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import threading
from pathlib import Path

from netbind.hooks import _grpc, _wire
from netbind.hooks._app import PLUGIN_API_VERSION, App, HookError, InvalidInput, describe_error

UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
DOMAIN_TYPE = "libvirt"  # the only domain_type KubeVirt's launcher sends


class SocketError(RuntimeError):
    """The socket path cannot be served (too long, in use, or not a socket)."""


def _status(exc: BaseException) -> _grpc.Status:
    code = _grpc.INVALID_ARGUMENT if isinstance(exc, InvalidInput) else _grpc.UNKNOWN
    return _grpc.Status(code, describe_error(exc))


def _decoded(decode, request: bytes):
    try:
        return decode(request)
    except _wire.DecodeError as exc:  # grpc-go: codes.Internal for a request that does not unmarshal
        raise _grpc.Status(_grpc.INTERNAL, f"grpc: error unmarshalling request: {exc}") from None


def _methods(server: "SidecarServer") -> dict[str, _grpc.Method]:
    app = server.app
    info = _wire.encode_info_result(app.name, [(p, 0) for p in app.hook_points], app.versions)

    def answer_info(request: bytes) -> bytes:
        _decoded(_wire.check_message, request)
        return info

    def mutate_domain(request: bytes) -> bytes:
        domain_type, domain_xml, vmi, invocation = _decoded(_wire.decode_mutate_domain_request, request)
        if domain_type not in ("", DOMAIN_TYPE):
            raise _grpc.Status(_grpc.INVALID_ARGUMENT, f"domain_type {domain_type!r} is not supported: this"
                               f" sidecar edits {DOMAIN_TYPE} domain XML")
        try:
            out = app.define_domain(domain_xml, vmi, PLUGIN_API_VERSION, invocation_context=invocation)
        except Exception as exc:
            raise _status(exc) from None
        return _wire.encode_mutate_domain_response(out)

    methods = {_wire.INFO_PATH: _grpc.Method(answer_info, inline=True),
               _wire.MUTATE_DOMAIN_PATH: _grpc.Method(mutate_domain)}
    for version in ("v1alpha1", "v1alpha2", "v1alpha3"):

        def on_define_domain(request: bytes, version=version) -> bytes:
            domain_xml, vmi = _decoded(_wire.decode_on_define_domain_params, request)
            try:
                return _wire.encode_on_define_domain_result(app.define_domain(domain_xml, vmi, version))
            except Exception as exc:
                raise _status(exc) from None

        methods[_wire.callbacks_path(version, "OnDefineDomain")] = _grpc.Method(on_define_domain)
        if version == "v1alpha1":
            continue

        def pre_cloud_init_iso(request: bytes, version=version) -> bytes:
            data, vmi, _legacy = _decoded(_wire.decode_pre_cloud_init_iso_params, request)
            try:
                out = app.cloud_init(data, vmi, version)
            except Exception as exc:
                raise _status(exc) from None
            return _wire.encode_pre_cloud_init_iso_result(out, _legacy_source(out))

        methods[_wire.callbacks_path(version, "PreCloudInitIso")] = _grpc.Method(pre_cloud_init_iso)
        if version == "v1alpha3":
            def shutdown(request: bytes) -> bytes:
                _decoded(_wire.check_message, request)
                app.audit.event("shutdown-requested", via="Shutdown RPC")
                return b""

            # reply first, then stop: the stop lets the reply (and any call in flight) finish
            methods[_wire.callbacks_path(version, "Shutdown")] = _grpc.Method(
                shutdown, inline=True, after_reply=lambda: server.request_stop("Shutdown RPC"))
    return methods


def _legacy_source(cloud_init_data: bytes) -> bytes:
    """The legacy result field (``{"userData", "networkData"}``) for launchers that fall back to it."""
    try:
        data = json.loads(cloud_init_data or b"null")
    except (ValueError, RecursionError):
        return b""
    if not isinstance(data, dict):
        return b""
    return json.dumps({"userData": data.get("UserData", ""), "networkData": data.get("NetworkData", "")}).encode()


def _check_socket_path(path: Path, app: App, hooks_dir: bool) -> None:
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        raise SocketError(f"socket path {str(path)!r} is {len(os.fsencode(path))} bytes; unix sockets "
                          f"allow at most {UNIX_PATH_MAX}: choose a shorter path")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        st = path.lstat()
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise SocketError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # stale socket of a previous run
            app.audit.event("stale-socket-removed", socket=str(path))
        else:
            raise SocketError(f"{path} is in use by a running server; stop it or choose another path")
        finally:
            probe.close()
    if not hooks_dir:  # the Plugin API names its socket: nothing scans the directory
        return
    # virt-launcher treats every plain file in the sidecar's directory as a hook socket
    strays = sorted(p.name for p in path.parent.iterdir()
                    if p != path and not p.is_dir() and not stat.S_ISSOCK(p.lstat().st_mode))
    if strays:
        app.audit.event("warning", message="files in the sockets directory that are not sockets make "
                        "virt-launcher wait for them: move them into a subdirectory", files=strays)


class SidecarServer:
    """A running sidecar: the gRPC server bound to ``socket_path`` (the hook API's socket, or None)
    and ``plugin_socket`` (the Plugin API's, or None); either socket answers both APIs."""

    def __init__(self, app: App, socket_path: Path | None, *, plugin_socket: Path | None = None,
                 max_workers: int = 2):
        if socket_path is None and plugin_socket is None:
            raise ValueError("give a hook socket, a Plugin API socket or both")
        self.app = app
        self.socket_path = Path(socket_path) if socket_path is not None else None
        self.plugin_socket = Path(plugin_socket) if plugin_socket is not None else None
        self.socket_paths = [p for p in (self.socket_path, self.plugin_socket) if p is not None]
        self.stopped = threading.Event()
        self.started = False
        self._stop_lock = threading.Lock()
        self._stopping = False
        # audit records of a call are composed (diff, JSON) on its thread once the reply is out
        self._server = _grpc.UnaryServer(_methods(self), workers=max_workers, before_call=lambda: app.audit.hold(),
                                         after_reply=lambda: app.audit.release())

    def start(self) -> "SidecarServer":
        bound: list[Path] = []
        try:
            for path in self.socket_paths:
                _check_socket_path(path, self.app, hooks_dir=path == self.socket_path)
                try:
                    self._server.bind(str(path))
                except OSError as exc:
                    raise SocketError(f"cannot listen on {path}: {exc.strerror or exc}") from None
                bound.append(path)
        except SocketError:
            self._server.stop(0)    # closes what was bound; no socket file is left behind
            for path in bound:
                path.unlink(missing_ok=True)
            raise
        self._server.start()
        self.app.audit.start_background()  # diffs and writes happen after the reply has gone out
        self.app.audit.event("serving", socket=str(self.socket_path) if self.socket_path else None,
                             plugin_socket=str(self.plugin_socket) if self.plugin_socket else None,
                             binding=self.app.binding,
                             versions=list(self.app.versions), hook_points=self.app.hook_points)
        self.started = True
        return self

    def request_stop(self, reason: str) -> None:
        """Stop from any thread (an RPC callback, a signal handler): never blocks the caller."""
        threading.Thread(target=self.stop, args=(reason,), name="netbind-hook-stop", daemon=True).start()

    def stop(self, reason: str = "stop", grace: float = 2.0) -> None:
        with self._stop_lock:
            if self._stopping:
                return
            self._stopping = True
        self._server.stop(grace)
        for path in self.socket_paths:
            path.unlink(missing_ok=True)
        self.app.run_shutdown_handlers()
        self.app.audit.event("stopped", reason=reason)
        self.app.audit.close()  # every record is written before the process may exit
        self.stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.stopped.wait(timeout)

    def __enter__(self) -> "SidecarServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop("context exit")


def run_until_stopped(app: App, socket_path: Path | None, plugin_socket: Path | None = None) -> int:
    """Serve in the main thread until Shutdown or a stop signal; 0 on a clean stop, 1 if listening fails."""
    server = SidecarServer(app, socket_path, plugin_socket=plugin_socket)
    stop_reasons: list[str] = []

    def on_signal(signum, _frame):
        stop_reasons.append(f"signal {signal.Signals(signum).name}")
        if server.started:
            server.request_stop(stop_reasons[0])

    # handlers first: a signal may come as soon as the socket exists (a launcher tearing down early)
    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    try:
        try:
            server.start()
        except SocketError as exc:
            app.audit.event("listen-failed", socket=str(socket_path or plugin_socket), error=str(exc))
            import sys

            print(f"error: {exc}", file=sys.stderr)
            return 1
        if stop_reasons:  # signalled while starting
            server.request_stop(stop_reasons[0])
        while not server.wait(0.5):  # short waits keep the main thread responsive to signals
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


__all__ = ["SidecarServer", "SocketError", "run_until_stopped", "HookError"]
