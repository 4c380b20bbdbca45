from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Callable, Iterable

from netbind.domain import MAX_DOMAIN_XML_BYTES, Domain, DomainXMLError
from netbind.hooks._audit import AuditLog, audit_mode_from_env
from netbind.hooks._context import NETWORK_INFO_PATH, HookContext
from netbind.hooks._vmi import VMIDecodeError, decode_vmi

HOOKS_DIR = Path("/var/run/kubevirt-hooks")
ON_DEFINE_DOMAIN = "OnDefineDomain"
PRE_CLOUD_INIT_ISO = "PreCloudInitIso"
SHUTDOWN = "Shutdown"
MUTATE_DOMAIN = "MutateDomain"  # the Plugin API's hook (kubevirt.hooks.plugins.v1alpha1)
PLUGIN_API_VERSION = "v1alpha1"
PLUGIN_SOCKET_ENV = "NETBIND_PLUGIN_SOCKET"  # where the Plugin API is served, when no flag says
VERSIONS = ("v1alpha3", "v1alpha2", "v1alpha1")  # preference order, newest first

DefineDomainHandler = Callable[[Domain, HookContext], "Domain | None"]
CloudInitHandler = Callable[[dict, HookContext], "dict | None"]


class HookError(Exception):
    """Raise from a handler to fail the call; the message reaches virt-launcher verbatim
    (gRPC status Unknown, as KubeVirt's Go sidecars return their errors)."""


class InvalidInput(Exception):
    """The request itself is unusable (oversized or malformed domain XML): gRPC INVALID_ARGUMENT."""


def describe_error(exc: BaseException) -> str:
    """The text a caller sees: a handler's own HookError verbatim, anything else labelled."""
    if isinstance(exc, (HookError, InvalidInput)):
        return str(exc)
    return f"hook handler failed: {type(exc).__name__}: {exc}"


class App:
    """A hook sidecar: register handlers with the decorators, then :meth:`run`.

    ``name`` is what ``Info`` reports; ``binding`` is the binding name served when
    ``NETWORK_BINDING_PLUGIN_NAME`` is not set (KubeVirt sets it for binding sidecars).
    """

    def __init__(self, name: str, *, binding: str | None = None, versions: Iterable[str] = VERSIONS,
                 audit: str | None = None, max_domain_bytes: int = MAX_DOMAIN_XML_BYTES,
                 network_info_path: Path | str = NETWORK_INFO_PATH):
        versions = tuple(versions)
        unknown = [v for v in versions if v not in VERSIONS]
        if unknown or not versions:
            raise ValueError(f"versions {list(versions)}: choose from {list(VERSIONS)}")
        self.name = name
        self.versions = versions
        self.binding = os.environ.get("NETWORK_BINDING_PLUGIN_NAME") or binding or name
        self.max_domain_bytes = max_domain_bytes
        self.network_info_path = Path(network_info_path)
        self.audit = AuditLog(audit if audit is not None else audit_mode_from_env(), sidecar=name)
        self._define: DefineDomainHandler | None = None
        self._cloud_init: CloudInitHandler | None = None
        self._shutdown: list[Callable[[], None]] = []

    # -- registration ---------------------------------------------------------------------------
    def on_define_domain(self, fn: DefineDomainHandler) -> DefineDomainHandler:
        """``fn(domain, ctx)`` edits the domain in place (return None) or returns a Domain.
        It is called 2-3 times per VM start with its own previous output: replace, don't append."""
        if self._define is not None:
            raise ValueError("an OnDefineDomain handler is already registered")
        self._define = fn
        return fn

    def pre_cloud_init_iso(self, fn: CloudInitHandler) -> CloudInitHandler:
        """``fn(cloud_init_data, ctx)`` gets KubeVirt's CloudInitData as a dict and returns the new
        one (or None after editing in place)."""
        if self._cloud_init is not None:
            raise ValueError("a PreCloudInitIso handler is already registered")
        self._cloud_init = fn
        return fn

    def on_shutdown(self, fn: Callable[[], None]) -> Callable[[], None]:
        """``fn()`` runs once when the sidecar stops (Shutdown RPC or a signal)."""
        self._shutdown.append(fn)
        return fn

    # -- what Info answers ------------------------------------------------------------------------
    @property
    def hook_points(self) -> list[str]:
        points = []
        if self._define is not None:
            points.append(ON_DEFINE_DOMAIN)
        if self._cloud_init is not None and any(v != "v1alpha1" for v in self.versions):
            points.append(PRE_CLOUD_INIT_ISO)
        if "v1alpha3" in self.versions:
            points.append(SHUTDOWN)  # the SDK always implements it: stop and exit
        return points

    def default_socket_path(self) -> Path:
        """``/var/run/kubevirt-hooks/<name>.sock``; the name comes from the binding or container so
        that two sidecars of one image in one pod never share a socket base name."""
        base = (os.environ.get("NETWORK_BINDING_PLUGIN_NAME") or os.environ.get("CONTAINER_NAME")
                or self.binding or self.name)
        return HOOKS_DIR / f"{base}.sock"

    # -- calls (transport-independent; the gRPC layer maps the exceptions) -----------------------
    def _context(self, hook: str, version: str, vmi_raw: bytes, invocation_context: str | None = None
                 ) -> HookContext:
        try:
            vmi = decode_vmi(vmi_raw)
        except VMIDecodeError as exc:
            raise HookError(f"failed to unmarshal VMI: {exc}") from None
        return HookContext(hook=hook, version=version, binding=self.binding, vmi_json=vmi,
                           network_info_path=self.network_info_path, invocation_context=invocation_context)

    def define_domain(self, domain_xml: bytes, vmi_json: bytes, version: str = "v1alpha3", *,
                      invocation_context: str | None = None) -> bytes:
        """Run the OnDefineDomain handler on raw request bytes; returns the new domain XML.
        With ``invocation_context`` it is the Plugin API's MutateDomain (the same handler)."""
        started = time.perf_counter()
        ctx: HookContext | None = None
        before = out = bytes(domain_xml)
        hook = ON_DEFINE_DOMAIN if invocation_context is None else MUTATE_DOMAIN
        try:
            ctx = self._context(hook, version, vmi_json, invocation_context)
            if self._define is not None:
                try:
                    domain = Domain.parse(domain_xml, max_bytes=self.max_domain_bytes)
                except DomainXMLError as exc:
                    raise InvalidInput(str(exc)) from None
                if self.audit.mode != "off":
                    # the audit compares the input as our serializer writes it (so the record shows
                    # what the handler changed, not how lxml re-spells <a></a>): writing the tree
                    # before the handler edits it costs a fraction of parsing the input again
                    before = domain.to_bytes()
                result = self._define(domain, ctx)
                if result is None:
                    result = domain
                if not isinstance(result, Domain):
                    raise TypeError(f"OnDefineDomain handler returned {type(result).__name__}, "
                                    "expected a Domain or None")
                out = result.to_bytes()
        except BaseException as exc:
            self._audit_error(hook, version, ctx, started, exc)
            raise
        # the diff and the write happen on the audit's own thread
        self.audit.call(hook, version=version, vmi=ctx.vmi_name,
                        duration_s=time.perf_counter() - started, before=before, after=out,
                        invocation_context=invocation_context)
        return out

    def cloud_init(self, cloud_init_data: bytes, vmi_json: bytes, version: str = "v1alpha3") -> bytes:
        """Run the PreCloudInitIso handler; without one the input ``cloudInitData`` is echoed."""
        started = time.perf_counter()
        ctx: HookContext | None = None
        try:
            ctx = self._context(PRE_CLOUD_INIT_ISO, version, vmi_json)
            if self._cloud_init is None:
                out = bytes(cloud_init_data)
            else:
                try:
                    data = json.loads(cloud_init_data or b"null")
                except ValueError as exc:
                    raise HookError(f"failed to unmarshal CloudInitData: {exc}") from None
                except RecursionError:
                    raise HookError("failed to unmarshal CloudInitData: exceeded max depth") from None
                result = self._cloud_init(data, ctx)
                out = json.dumps(data if result is None else result).encode()
        except BaseException as exc:
            self._audit_error(PRE_CLOUD_INIT_ISO, version, ctx, started, exc)
            raise
        self.audit.call(PRE_CLOUD_INIT_ISO, version=version, vmi=ctx.vmi_name,
                        duration_s=time.perf_counter() - started)
        return out

    def run_shutdown_handlers(self) -> None:
        for fn in self._shutdown:
            try:
                fn()
            except Exception as exc:  # a failing cleanup must not keep the sidecar alive
                self.audit.event("shutdown-handler-failed", error=f"{type(exc).__name__}: {exc}",
                                 traceback=traceback.format_exc())

    def _audit_error(self, hook, version, ctx, started, exc) -> None:
        code = "InvalidArgument" if isinstance(exc, InvalidInput) else "Unknown"
        message = describe_error(exc)
        extra = {} if isinstance(exc, (HookError, InvalidInput)) else {"traceback": traceback.format_exc()}
        self.audit.call(hook, version=version, vmi=ctx.vmi_name if ctx else None,
                        duration_s=time.perf_counter() - started, error=message, code=code)
        if extra:
            self.audit.event("handler-crashed", hook=hook, **extra)

    # -- serving --------------------------------------------------------------------------------
    def sockets(self, socket_path: str | os.PathLike | None = None,
                plugin_socket: str | os.PathLike | None = None) -> tuple[Path | None, Path | None]:
        """Where to serve: the hook API's socket (``socket_path`` or the default) and the Plugin
        API's (``plugin_socket`` or ``$NETBIND_PLUGIN_SOCKET``, e.g.
        ``/var/run/kubevirt-plugin/<plugin>/hook.sock`` as the Plugin's ``socketPath`` names it).
        With only a Plugin API socket given, no hook API socket is served: a sidecar injected for
        a Plugin has no ``/var/run/kubevirt-hooks`` mount."""
        plugin = plugin_socket or os.environ.get(PLUGIN_SOCKET_ENV) or None
        hooks = Path(socket_path) if socket_path else (None if plugin else self.default_socket_path())
        return hooks, Path(plugin) if plugin else None

    def serve(self, socket_path: str | os.PathLike | None = None, *, plugin_socket: str | os.PathLike | None = None,
              max_workers: int = 2):
        """Start serving in background threads (sockets as :meth:`sockets` chooses); returns a
        :class:`SidecarServer`."""
        from netbind.hooks._server import SidecarServer

        hooks, plugin = self.sockets(socket_path, plugin_socket)
        server = SidecarServer(self, hooks, plugin_socket=plugin, max_workers=max_workers)
        server.start()
        return server

    def run(self, socket_path: str | os.PathLike | None = None, *,
            plugin_socket: str | os.PathLike | None = None) -> int:
        """Serve until a Shutdown RPC or SIGTERM/SIGINT/SIGHUP/SIGQUIT; returns the exit code."""
        from netbind.hooks._server import run_until_stopped

        return run_until_stopped(self, *self.sockets(socket_path, plugin_socket))

    def main(self, argv: list[str] | None = None, *, prog: str | None = None, description: str | None = None) -> int:
        """A sidecar's command line: ``--socket PATH`` (hook API) and ``--plugin-socket PATH``
        (Plugin API; ``$NETBIND_PLUGIN_SOCKET``); both may be given. Returns the exit code."""
        import argparse

        parser = argparse.ArgumentParser(prog=prog, description=description)
        parser.add_argument("--socket", help="hook API socket (default: /var/run/kubevirt-hooks/"
                            f"$NETWORK_BINDING_PLUGIN_NAME.sock, {self.default_socket_path().name} if unset;"
                            " none when only a Plugin API socket is given)")
        parser.add_argument("--plugin-socket", help="Plugin API (MutateDomain) socket, as the Plugin's"
                            f" domainHooks[].sidecar.socketPath names it (default: ${PLUGIN_SOCKET_ENV})")
        args = parser.parse_args(argv)
        return self.run(args.socket, plugin_socket=args.plugin_socket)
