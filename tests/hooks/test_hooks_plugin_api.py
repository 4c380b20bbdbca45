"""KubeVirt's Plugin API (VEP 190) from the SDK's side and the launcher's: the same handler served as
DomainHookService.MutateDomain, the socket choice, and the launcher's domain-hook pipeline."""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import grpc
import pytest

from netbind.hooks import App, HookError, Interface
from netbind.hooks._app import PLUGIN_SOCKET_ENV
from netbind.hooks.proto import api_plugins_v1alpha1_pb2 as pb2
from netbind.hooks.proto import api_plugins_v1alpha1_pb2_grpc as pb2_grpc
from netbind.launcher.hooks import HookManager
from netbind.launcher.plugin_hooks import PlannedHook
from netbind.launcher.plugins import PluginHookError, apply_domain_hooks, mutate_domain
from netbind.testing.hooks import short_tempdir

VMI = b'{"metadata": {"name": "vm", "namespace": "ns"}, "spec": {"domain": {"devices": {"interfaces": [' \
      b'{"name": "blue", "binding": {"name": "mine"}}]}}}}'
DOMAIN = b"<domain type='kvm'><name>vm</name>\n  <devices>\n    <disk/>\n  </devices>\n</domain>"


def make_app(seen: list | None = None) -> App:
    app = App("test-binding", binding="mine", audit="off")

    @app.on_define_domain
    def define(domain, ctx):
        if seen is not None:
            seen.append((ctx.hook, ctx.version, ctx.invocation_context))
        if ctx.invocation_context == "MigrationTarget":
            raise HookError("refused on the target")
        for spec in ctx.interfaces:
            iface = Interface.create("ethernet")
            iface.alias = "ua-" + spec["name"]
            domain.put_interface(iface)

    return app


@pytest.fixture
def tmp_short():
    path = short_tempdir("nb-pl-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_one_process_serves_both_apis_from_the_same_handler(tmp_short):
    seen: list = []
    app = make_app(seen)
    hooks_socket, plugin_socket = tmp_short / "hooks" / "mine.sock", tmp_short / "kubevirt-plugin" / "p" / "hook.sock"
    server = app.serve(hooks_socket, plugin_socket=plugin_socket)
    try:
        with HookManager(hooks_socket.parent) as manager:
            manager.collect(1, timeout=5)
            legacy = manager.on_define_domain(DOMAIN, VMI)
        assert b'<alias name="ua-blue"/>' in legacy
        assert mutate_domain(plugin_socket, "p", DOMAIN, VMI, "Boot") == legacy
        # either socket answers either API
        assert mutate_domain(hooks_socket, "p", DOMAIN, VMI, "MigrationSource") == legacy
        with pytest.raises(PluginHookError, match="^MutateDomain RPC to p failed with Unknown: refused on the target$"):
            mutate_domain(plugin_socket, "p", DOMAIN, VMI, "MigrationTarget")
    finally:
        server.stop()
    assert seen == [("OnDefineDomain", "v1alpha3", None), ("MutateDomain", "v1alpha1", "Boot"),
                    ("MutateDomain", "v1alpha1", "MigrationSource"), ("MutateDomain", "v1alpha1", "MigrationTarget")]
    assert not hooks_socket.exists() and not plugin_socket.exists()


def test_a_plugin_socket_alone_serves_no_hook_api_socket(tmp_short, monkeypatch):
    app = make_app()
    monkeypatch.setenv(PLUGIN_SOCKET_ENV, str(tmp_short / "p" / "hook.sock"))
    assert app.sockets() == (None, tmp_short / "p" / "hook.sock")
    assert app.sockets("/x/h.sock") == (Path("/x/h.sock"), tmp_short / "p" / "hook.sock")
    assert app.sockets(plugin_socket="/y/p.sock") == (None, Path("/y/p.sock"))
    monkeypatch.delenv(PLUGIN_SOCKET_ENV)
    assert app.sockets() == (app.default_socket_path(), None)


def test_other_domain_types_and_garbage_are_refused_with_grpc_statuses(tmp_short):
    app = make_app()
    socket_path = tmp_short / "hook.sock"
    server = app.serve(plugin_socket=socket_path)
    channel = grpc.insecure_channel(f"unix:{socket_path}")
    try:
        stub = pb2_grpc.DomainHookServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.MutateDomain(pb2.MutateDomainRequest(domain_type="vz", domain=DOMAIN, vmi=VMI), timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "domain_type 'vz' is not supported" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            stub.MutateDomain(pb2.MutateDomainRequest(domain_type="libvirt", domain=b"<nope", vmi=VMI), timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        raw = channel.unary_unary("/kubevirt.hooks.plugins.v1alpha1.DomainHookService/MutateDomain")
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\x0a\x05ab", timeout=5)
        assert err.value.code() == grpc.StatusCode.INTERNAL
        # the node hook service is not implemented by domain-hook sidecars: grpc-go's wording
        node = channel.unary_unary("/kubevirt.hooks.plugins.v1alpha1.NodeHookService/ExecuteNodeHook")
        with pytest.raises(grpc.RpcError) as err:
            node(b"", timeout=5)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        channel.close()
        server.stop()


def test_a_socket_that_cannot_be_bound_leaves_no_other_socket_behind(tmp_short):
    app = make_app()
    hooks_socket = tmp_short / "mine.sock"
    blocker = tmp_short / "p" / "hook.sock"
    blocker.parent.mkdir()
    blocker.write_text("not a socket")
    from netbind.hooks._server import SocketError

    with pytest.raises(SocketError, match="exists and is not a socket"):
        app.serve(hooks_socket, plugin_socket=blocker)
    assert not hooks_socket.exists()


# ---- the launcher's pipeline -------------------------------------------------------------------

def _launcher_view(root: Path):
    """Map the launcher's /var/run/kubevirt-plugin/... onto ``root`` (a pod's socket volume here)."""
    def host_path(path: str) -> Path:
        return root / os.path.relpath(path, "/var/run/kubevirt-plugin") if path.startswith("/var/run/") else Path(path)
    return host_path


def _sidecar(plugin: str, index: int, strategy: str, socket_path: str) -> PlannedHook:
    return PlannedHook(plugin, index, "sidecar", strategy, 5.0, socket_path=socket_path)


def test_pipeline_applies_hooks_in_order_and_ignores_what_may_fail(tmp_short):
    seen: list = []
    server = make_app(seen).serve(plugin_socket=tmp_short / "a-plugin" / "hook.sock")
    try:
        hooks = [
            _sidecar("a-plugin", 0, "Fail", "/var/run/kubevirt-plugin/a-plugin/hook.sock"),
            _sidecar("b-plugin", 0, "Ignore", "/var/run/kubevirt-plugin/b-plugin/none.sock"),
            PlannedHook("c-plugin", 0, "cel", "Ignore", 30.0, expression="Domain{}"),
            _sidecar("d-plugin", 1, "Ignore", "/var/run/kubevirt-plugin/d-plugin/../a-plugin/hook.sock"),
        ]
        out, outcomes = apply_domain_hooks(hooks, DOMAIN, VMI, "Boot", host_path=_launcher_view(tmp_short),
                                           readiness=0.2)
    finally:
        server.stop()
    assert b'<alias name="ua-blue"/>' in out
    assert [o.status for o in outcomes] == ["applied", "ignored", "ignored", "ignored"]
    assert "sidecar socket /var/run/kubevirt-plugin/b-plugin/none.sock not ready after 0.2s" in outcomes[1].detail
    assert "CEL, which netbind does not evaluate" in outcomes[2].detail
    assert "is outside /var/run/kubevirt-plugin/d-plugin/" in outcomes[3].detail
    assert seen == [("MutateDomain", "v1alpha1", "Boot")]


def test_pipeline_fails_the_domain_for_a_failing_hook_whose_strategy_is_fail(tmp_short):
    server = make_app().serve(plugin_socket=tmp_short / "p" / "hook.sock")
    link = tmp_short / "p" / "link.sock"
    link.symlink_to(tmp_short / "p" / "hook.sock")
    try:
        hooks = [_sidecar("p", 2, "Fail", "/var/run/kubevirt-plugin/p/hook.sock")]
        with pytest.raises(PluginHookError, match="^plugin p hook 2 failed: MutateDomain RPC to p failed with "
                                                  "Unknown: refused on the target$"):
            apply_domain_hooks(hooks, DOMAIN, VMI, "MigrationTarget", host_path=_launcher_view(tmp_short))
        hooks = [_sidecar("p", 0, "Fail", "/var/run/kubevirt-plugin/p/link.sock")]
        with pytest.raises(PluginHookError, match="is a symlink, which is not allowed"):
            apply_domain_hooks(hooks, DOMAIN, VMI, "Boot", host_path=_launcher_view(tmp_short))
        with pytest.raises(ValueError, match="invocation context 'Start'"):
            apply_domain_hooks(hooks, DOMAIN, VMI, "Start")
    finally:
        server.stop()
