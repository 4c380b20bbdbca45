"""netbind.hooks: write a KubeVirt hook sidecar as plain functions.

    from netbind.hooks import App, Interface

    app = App("my-binding")

    @app.on_define_domain
    def define(domain, ctx):
        for spec in ctx.interfaces:                    # VMI interfaces using this binding
            iface = Interface.create("ethernet")
            iface.alias = "ua-" + spec["name"]
            domain.put_interface(iface)                # replaces its own previous output

    if __name__ == "__main__":
        raise SystemExit(app.main())                   # --socket, --plugin-socket

The SDK serves ``Info`` and the ``Callbacks`` of hook API v1alpha1, v1alpha2 and v1alpha3, and the
Plugin API's ``MutateDomain`` (``--plugin-socket``), from the same handlers, gives them a lossless :class:`~netbind.domain.Domain`, maps errors to gRPC status
codes, logs an audit line (JSON, stderr) with a diff per call, and exits on ``Shutdown``/SIGTERM.
Serving uses h2 and hand-coded hook messages: neither grpcio nor protobuf is loaded.
"""
from __future__ import annotations

from netbind.domain import Domain, DomainXMLError, Interface, PortForward, PortRange
from netbind.hooks._app import (
    HOOKS_DIR,
    ON_DEFINE_DOMAIN,
    PRE_CLOUD_INIT_ISO,
    SHUTDOWN,
    VERSIONS,
    App,
    HookError,
    InvalidInput,
)
from netbind.hooks._context import HookContext

__all__ = [
    "App",
    "Domain",
    "DomainXMLError",
    "HOOKS_DIR",
    "HookContext",
    "HookError",
    "Interface",
    "InvalidInput",
    "ON_DEFINE_DOMAIN",
    "PRE_CLOUD_INIT_ISO",
    "PortForward",
    "PortRange",
    "SHUTDOWN",
    "VERSIONS",
]
