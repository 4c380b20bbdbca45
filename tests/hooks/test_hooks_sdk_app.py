"""The sidecar SDK (netbind.hooks.App): Info, all versions, errors, idempotency, audit, lifecycle."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from netbind.hooks import App, HookError, Interface
from netbind.launcher.hooks import HookManager, RPCError, query_info
from netbind.testing.hooks import SidecarProcess

VMI = {
    "metadata": {"name": "vm", "namespace": "ns", "annotations": {"sidecar.istio.io/inject": "TRUE"}},
    "spec": {"domain": {"devices": {"interfaces": [
        {"name": "blue", "binding": {"name": "mine"}},
        {"name": "red", "binding": {"name": "other"}},
        {"name": "green", "Binding": {"name": "mine"}},  # Go matches keys case-insensitively
    ]}}},
    "status": {"interfaces": [{"name": "blue", "podInterfaceName": "pod1234"}]},
}
DOMAIN = b"<domain type='kvm'><name>vm</name>\n  <devices>\n    <disk/>\n  </devices>\n</domain>"


def make_app(**kwargs) -> App:
    app = App("test-binding", binding="mine", audit="off", **kwargs)

    @app.on_define_domain
    def define(domain, ctx):
        for spec in ctx.interfaces:
            iface = Interface.create("ethernet")
            iface.alias = "ua-" + spec["name"]
            iface.target_dev = ctx.pod_interface_names.get(spec["name"], "none")
            domain.put_interface(iface)
        if ctx.istio_injection:
            domain.root.set("istio", "yes")

    return app


def test_info_reports_versions_and_implemented_hook_points(hook_sidecar):
    sidecar = hook_sidecar(make_app())
    info = sidecar.info()
    assert info == {"name": "test-binding", "versions": ["v1alpha3", "v1alpha2", "v1alpha1"],
                    "hookPoints": [("OnDefineDomain", 0), ("Shutdown", 0)]}
    bare = App("bare", audit="off")
    bare.pre_cloud_init_iso(lambda data, ctx: data)
    assert bare.hook_points == ["PreCloudInitIso", "Shutdown"]
    assert App("old", versions=["v1alpha1"], audit="off").hook_points == []


def test_context_and_idempotent_handler_through_every_version(hook_sidecar):
    sidecar = hook_sidecar(make_app())
    with HookManager(sidecar.socket_path.parent) as manager:
        manager.collect(1, timeout=5)
        first = manager.on_define_domain(DOMAIN, json.dumps(VMI).encode())
        # called again with its own output (KubeVirt defines the domain 2-3 times)
        second = manager.on_define_domain(first, json.dumps(VMI).encode())
        assert second == first
        for version in ("v1alpha1", "v1alpha2"):
            manager.sidecars[0].version = version
            assert manager.on_define_domain(DOMAIN, json.dumps(VMI).encode()) == first
    assert first.count(b"<interface") == 2
    assert b'<alias name="ua-blue"/><target dev="pod1234" managed' not in first  # target precedes alias
    assert b'<target dev="pod1234"/>' in first and b'<alias name="ua-green"/>' in first
    assert b'istio="yes"' in first


@pytest.mark.parametrize("domain, vmi, code, desc", [
    (b"<domain", b"{}", "InvalidArgument", "domain XML is not well-formed"),
    (b"<domain>" + b"x" * 5000 + b"</domain>", b"{}", "InvalidArgument", "over the limit of 4096 bytes"),
    (DOMAIN, b"{not json", "Unknown", "failed to unmarshal VMI: invalid character 'n' looking for beginning of object key string"),
    (DOMAIN, b'{"spec": {"domain": {"devices": {"interfaces": [{"name": 5, "binding": {"name": "mine"}}]}}}}', "Unknown",
     "failed to unmarshal VMI: json: cannot unmarshal number into Go struct field Interface.spec.domain.devices.interfaces.name of type string"),
    (DOMAIN, b"[]", "Unknown", "failed to unmarshal VMI: json: cannot unmarshal array into Go value of type v1.VirtualMachineInstance"),
])
def test_bad_input_errors_and_sidecar_keeps_serving(hook_sidecar, domain, vmi, code, desc):
    sidecar = hook_sidecar(make_app(max_domain_bytes=4096))
    with HookManager(sidecar.socket_path.parent) as manager:
        manager.collect(1, timeout=5)
        with pytest.raises(RPCError) as err:
            manager.on_define_domain(domain, vmi)
        assert err.value.code == code
        assert desc in err.value.desc
        assert b"ua-blue" in manager.on_define_domain(DOMAIN, json.dumps(VMI).encode())


def test_handler_errors_map_to_unknown_and_crashes_are_contained(hook_sidecar):
    app = App("failing", audit="off")
    calls = []

    @app.on_define_domain
    def define(domain, ctx):
        calls.append(1)
        if len(calls) == 1:
            raise HookError("interface \"x\" is not ready")
        if len(calls) == 2:
            raise KeyError("boom")
        return "not a domain"

    sidecar = hook_sidecar(app)
    with HookManager(sidecar.socket_path.parent) as manager:
        manager.collect(1, timeout=5)
        messages = []
        for _ in range(3):
            with pytest.raises(RPCError) as err:
                manager.on_define_domain(DOMAIN, b"{}")
            messages.append(str(err.value))
    assert messages == [
        'rpc error: code = Unknown desc = interface "x" is not ready',
        "rpc error: code = Unknown desc = hook handler failed: KeyError: 'boom'",
        "rpc error: code = Unknown desc = hook handler failed: TypeError: OnDefineDomain handler returned str, "
        "expected a Domain or None",
    ]


def test_pre_cloud_init_iso_echo_and_handler(hook_sidecar):
    data = {"DataSource": "noCloud", "UserData": "#cloud-config\n", "NetworkData": "",
            "NoCloudMetaData": {"instance-id": "i"}}
    echo = App("echo", audit="off")
    echo.on_define_domain(lambda d, c: None)
    assert hook_sidecar(echo).pre_cloud_init_iso(data, b"{}") == data  # not subscribed: unchanged

    app = App("ci", audit="off")

    @app.pre_cloud_init_iso
    def edit(cloud_init, ctx):
        cloud_init["UserData"] += "packages: [passt]\n"

    assert hook_sidecar(app).pre_cloud_init_iso(data, b"{}")["UserData"] == "#cloud-config\npackages: [passt]\n"


def test_audit_lines_carry_a_unified_diff(hook_sidecar, capsys):
    import io

    app = make_app()
    app.audit.mode = "diff"
    app.audit.stream = stream = io.StringIO()
    sidecar = hook_sidecar(app)
    sidecar.define_domain(DOMAIN, VMI)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    call = next(r for r in records if r["event"] == "call")
    assert call["hook"] == "OnDefineDomain" and call["status"] == "ok" and call["changed"] is True
    assert call["vmi"] == "ns/vm" and call["duration_ms"] >= 0
    assert any(line.startswith("+") and '<alias name="ua-blue"/>' in line for line in call["diff"].splitlines())
    assert call["diff"].startswith("--- domain.in.xml\n+++ domain.out.xml\n")


def test_socket_path_defaults_and_stale_socket_handling(tmp_path, monkeypatch, hook_sockets_dir):
    monkeypatch.delenv("NETWORK_BINDING_PLUGIN_NAME", raising=False)
    monkeypatch.setenv("CONTAINER_NAME", "hook-sidecar-3")
    assert str(App("x", audit="off").default_socket_path()) == "/var/run/kubevirt-hooks/hook-sidecar-3.sock"
    monkeypatch.setenv("NETWORK_BINDING_PLUGIN_NAME", "mine")
    assert str(App("x", audit="off").default_socket_path()) == "/var/run/kubevirt-hooks/mine.sock"

    from netbind.hooks._server import SocketError

    path = hook_sockets_dir / "s.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on any more
    server = make_app().serve(path)
    try:
        assert query_info(path)["name"] == "test-binding"
        with pytest.raises(SocketError, match="in use"):
            make_app().serve(path)
    finally:
        server.stop()
    assert not path.exists()
    path.write_text("not a socket")
    with pytest.raises(SocketError, match="not a socket"):
        make_app().serve(path)
    assert path.read_text() == "not a socket"
    with pytest.raises(SocketError, match="at most 107"):
        make_app().serve(hook_sockets_dir / ("x" * 120))


SIDECAR_SCRIPT = textwrap.dedent("""
    import sys
    from netbind.hooks import App
    app = App("script", audit="summary")
    app.on_define_domain(lambda domain, ctx: None)
    app.on_shutdown(lambda: print("cleanup-ran", file=sys.stderr, flush=True))
    sys.argv.pop(1)  # --socket
    sys.exit(app.run(sys.argv[1]))
""")


@pytest.mark.parametrize("stop", ["shutdown-rpc", "sigterm"])
def test_process_exits_cleanly_on_shutdown_and_sigterm(tmp_path, hook_sockets_dir, stop):
    script = tmp_path / "sidecar.py"
    script.write_text(SIDECAR_SCRIPT)
    path = hook_sockets_dir / "hook-sidecar-0" / "script.sock"
    with SidecarProcess([sys.executable, str(script)], path) as proc:
        if stop == "sigterm":
            proc.process.send_signal(signal.SIGTERM)
        else:
            with HookManager(hook_sockets_dir) as manager:
                manager.collect(1, timeout=5)
                manager.shutdown()
        assert proc.wait(10) == 0
        assert "cleanup-ran" in proc.stderr()
        events = [r["event"] for r in proc.audit_records()]
        assert events[0] == "serving" and events[-1] == "stopped"
    assert not path.exists()


def test_context_vmi_is_the_typed_api_model():
    from netbind.api import VirtualMachineInstance
    from netbind.hooks import HookContext

    ctx = HookContext(hook="OnDefineDomain", version="v1alpha3", binding="mine", vmi_json=VMI)
    assert isinstance(ctx.vmi, VirtualMachineInstance)
    assert ctx.vmi.metadata.name == "vm"
    assert [i["name"] for i in ctx.interfaces] == ["blue", "green"]
    assert ctx.pod_interface_names == {"blue": "pod1234"} and ctx.istio_injection is True


def test_sigterm_right_after_the_socket_appears_is_a_clean_stop(tmp_path):
    """A launcher may tear the pod down as soon as it sees the socket: the handlers must be in place."""
    script = tmp_path / "sidecar.py"
    script.write_text("import sys\nfrom netbind.hooks import App\napp = App('early')\n"
                      "@app.on_define_domain\ndef define(domain, ctx):\n    pass\n"
                      "raise SystemExit(app.run(socket_path=sys.argv[1]))\n")
    for attempt in range(5):
        sock = tmp_path / f"s{attempt}.sock"
        proc = subprocess.Popen([sys.executable, str(script), str(sock)], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not sock.exists() and time.monotonic() < deadline:
                time.sleep(0.0005)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert not sock.exists()
