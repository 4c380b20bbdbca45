"""gRPC transport of a sidecar: Info + Callbacks v1alpha1/2/3 on a unix socket (imports grpc)."""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import threading
from concurrent import futures
from pathlib import Path

import grpc

from netbind.hooks._app import App, HookError, InvalidInput, describe_error
from netbind.hooks.proto import (
    api_info_pb2,
    api_info_pb2_grpc,
    api_v1alpha1_pb2,
    api_v1alpha1_pb2_grpc,
    api_v1alpha2_pb2,
    api_v1alpha2_pb2_grpc,
    api_v1alpha3_pb2,
    api_v1alpha3_pb2_grpc,
)

UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


class SocketError(RuntimeError):
    """The socket path cannot be served (too long, in use, or not a socket)."""


def _abort(context: grpc.ServicerContext, exc: BaseException):
    code = grpc.StatusCode.INVALID_ARGUMENT if isinstance(exc, InvalidInput) else grpc.StatusCode.UNKNOWN
    context.abort(code, describe_error(exc))


class _InfoServicer(api_info_pb2_grpc.InfoServicer):
    def __init__(self, app: App):
        self._result = api_info_pb2.InfoResult(
            name=app.name, versions=list(app.versions),
            hookPoints=[api_info_pb2.HookPoint(name=p, priority=0) for p in app.hook_points])

    def Info(self, request, context):
        return self._result


def _callbacks_servicer(server: "SidecarServer", version: str, pb2):
    app = server.app

    class Callbacks:
        def OnDefineDomain(self, request, context):
            try:
                out = app.define_domain(request.domainXML, request.vmi, version)
            except Exception as exc:
                _abort(context, exc)
            return pb2.OnDefineDomainResult(domainXML=out)

        def PreCloudInitIso(self, request, context):
            try:
                out = app.cloud_init(request.cloudInitData, request.vmi, version)
            except Exception as exc:
                _abort(context, exc)
            return pb2.PreCloudInitIsoResult(cloudInitData=out, cloudInitNoCloudSource=_legacy_source(out))

        def Shutdown(self, request, context):
            app.audit.event("shutdown-requested", via="Shutdown RPC")
            # reply first, then stop: the stop waits for in-flight RPCs including this one
            context.add_callback(lambda: server.request_stop("Shutdown RPC"))
            return pb2.ShutdownResult()

    return Callbacks()


def _legacy_source(cloud_init_data: bytes) -> bytes:
    """The legacy result field (``{"userData", "networkData"}``) for launchers that fall back to it."""
    try:
        data = json.loads(cloud_init_data or b"null")
    except ValueError:
        return b""
    if not isinstance(data, dict):
        return b""
    return json.dumps({"userData": data.get("UserData", ""), "networkData": data.get("NetworkData", "")}).encode()


def _check_socket_path(path: Path, app: App) -> None:
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
    # virt-launcher treats every plain file in the sidecar's directory as a hook socket
    strays = sorted(p.name for p in path.parent.iterdir()
                    if p != path and not p.is_dir() and not stat.S_ISSOCK(p.lstat().st_mode))
    if strays:
        app.audit.event("warning", message="files in the sockets directory that are not sockets make "
                        "virt-launcher wait for them: move them into a subdirectory", files=strays)


class SidecarServer:
    """A running sidecar: gRPC server bound to ``socket_path``."""

    def __init__(self, app: App, socket_path: Path, *, max_workers: int = 2):
        self.app = app
        self.socket_path = Path(socket_path)
        self.stopped = threading.Event()
        self.started = False
        self._stop_lock = threading.Lock()
        self._stopping = False
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="netbind-hook"),
            options=[("grpc.so_reuseport", 0)])
        api_info_pb2_grpc.add_InfoServicer_to_server(_InfoServicer(app), self._server)
        api_v1alpha1_pb2_grpc.add_CallbacksServicer_to_server(
            _callbacks_servicer(self, "v1alpha1", api_v1alpha1_pb2), self._server)
        api_v1alpha2_pb2_grpc.add_CallbacksServicer_to_server(
            _callbacks_servicer(self, "v1alpha2", api_v1alpha2_pb2), self._server)
        api_v1alpha3_pb2_grpc.add_CallbacksServicer_to_server(
            _callbacks_servicer(self, "v1alpha3", api_v1alpha3_pb2), self._server)

    def start(self) -> "SidecarServer":
        _check_socket_path(self.socket_path, self.app)
        try:
            bound = self._server.add_insecure_port(f"unix:{self.socket_path}")
        except RuntimeError as exc:
            bound = 0
            reason = str(exc)
        else:
            reason = "bind failed"
        if not bound:
            raise SocketError(f"cannot listen on {self.socket_path}: {reason}")
        self._server.start()
        self.app.audit.start_background()  # diffs and writes happen after the reply has gone out
        self.app.audit.event("serving", socket=str(self.socket_path), binding=self.app.binding,
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
        self._server.stop(grace).wait()
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass
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


def run_until_stopped(app: App, socket_path: Path) -> int:
    """Serve in the main thread until Shutdown or a stop signal; 0 on a clean stop, 1 if listening fails."""
    server = SidecarServer(app, socket_path)
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
            app.audit.event("listen-failed", socket=str(socket_path), error=str(exc))
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
