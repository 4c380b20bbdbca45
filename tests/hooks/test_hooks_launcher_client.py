"""netbind.launcher.hooks against misbehaving directories and sidecars (real sockets, real gRPC)."""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from netbind.hooks import App, Interface
from netbind.launcher.hooks import (
    COLLECT_TIMEOUT_MESSAGE,
    CollectTimeoutError,
    HookClientError,
    HookManager,
    RPCError,
    discover_sockets,
)


def tagging_app(tag: str, **kwargs) -> App:
    app = App(tag, audit="off", **kwargs)

    @app.on_define_domain
    def define(domain, ctx):
        domain.root.set("chain", (domain.root.get("chain", "") + " " + tag).strip())

    return app


def test_discovery_order_subdirectories_and_base_names(hook_sockets_dir):
    d = hook_sockets_dir
    for rel in ("hook-sidecar-2/b.sock", "hook-sidecar-10/a.sock", "hook-sidecar-10/deeper/x.sock", "top.sock"):
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text("")
    assert [str(p.relative_to(d)) for p in discover_sockets(d)] == [
        "hook-sidecar-10/a.sock", "hook-sidecar-2/b.sock", "top.sock"]  # "10" sorts before "2"


def test_chain_runs_in_discovery_order_and_passes_raw_bytes(hook_sidecar):
    hook_sidecar(tagging_app("second"), subdir="hook-sidecar-1", socket_name="b.sock")
    first = hook_sidecar(tagging_app("first"), subdir="hook-sidecar-0", socket_name="a.sock")
    trace: list = []
    with HookManager(first.sockets_dir) as manager:
        manager.collect(2, timeout=5)
        out = manager.on_define_domain(b"<domain/>", b"{}", trace=trace)
    assert out == b'<domain chain="first second"/>'
    assert [t["socket"].split("/")[-1] for t in trace] == ["a.sock", "b.sock"]


def test_no_subscriber_passes_xml_through_unchanged(hook_sidecar):
    app = App("nothing", audit="off")
    sidecar = hook_sidecar(app)
    with HookManager(sidecar.sockets_dir) as manager:
        manager.collect(1, timeout=5)
        assert manager.on_define_domain(b"not even xml", b"{}") == b"not even xml"


def test_empty_result_is_an_error(hook_sidecar):
    app = App("emptier", audit="off")

    @app.on_define_domain
    def define(domain, ctx):
        for child in list(domain.root):
            domain.root.remove(child)
        domain.root.tag = "notdomain"

    sidecar = hook_sidecar(app)
    with HookManager(sidecar.sockets_dir) as manager:
        manager.collect(1, timeout=5)
        with pytest.raises(HookClientError, match="^Failed to unmarshal given domain spec: .*<domain> root"):
            manager.on_define_domain(b"<domain/>", b"{}")


@pytest.mark.parametrize("kind", ["plain-file", "dead-socket"])
def test_unusable_socket_times_out_with_kubevirts_message_and_reasons(hook_sockets_dir, kind):
    path = hook_sockets_dir / "hook-sidecar-0" / "x.sock"
    path.parent.mkdir()
    if kind == "plain-file":
        path.write_text("")
    else:
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
    started = time.monotonic()
    with HookManager(hook_sockets_dir, poll_period=0.05) as manager:
        with pytest.raises(CollectTimeoutError) as err:
            manager.collect(1, timeout=0.5)
    assert 0.45 <= time.monotonic() - started < 3
    assert str(err.value) == COLLECT_TIMEOUT_MESSAGE
    reason = err.value.pending[str(path)]
    assert ("not a socket" in reason) if kind == "plain-file" else ("Connection refused" in reason)
    assert str(path) in err.value.explain()


def test_empty_directory_times_out_too(hook_sockets_dir):
    with HookManager(hook_sockets_dir, poll_period=0.05) as manager:
        with pytest.raises(CollectTimeoutError, match=COLLECT_TIMEOUT_MESSAGE):
            manager.collect(1, timeout=0.3)


def test_missing_directory_is_reported(hook_sockets_dir):
    with pytest.raises(HookClientError, match=r"^open .*/nope: No such file or directory$"):
        HookManager(hook_sockets_dir / "nope").collect(1, timeout=1)


def test_silent_sidecar_fails_at_the_info_deadline(hook_sockets_dir):
    path = hook_sockets_dir / "silent.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # accept and never answer
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        with HookManager(hook_sockets_dir) as manager:
            with pytest.raises(RPCError) as err:
                manager.collect(1, timeout=30)
        assert time.monotonic() - started < 5  # the 1 s Info deadline, not the collect timeout
        assert str(err.value) == "rpc error: code = DeadlineExceeded desc = context deadline exceeded"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_unsupported_version_is_rejected_with_kubevirts_text(hook_sidecar, monkeypatch):
    app = tagging_app("x")
    app.versions = ("v1alpha0",)  # bypasses the constructor check on purpose
    sidecar = hook_sidecar(app)
    with HookManager(sidecar.sockets_dir) as manager:
        with pytest.raises(HookClientError) as err:
            manager.collect(1, timeout=5)
    assert str(err.value) == ("Hook sidecar does not expose a supported version. Exposed versions: [v1alpha0], "
                              "supported versions: [v1alpha3 v1alpha2 v1alpha1]")


def test_version_pick_prefers_newest(hook_sidecar):
    hook_sidecar(tagging_app("a", versions=["v1alpha1", "v1alpha2"]), subdir="s0", socket_name="a.sock")
    hook_sidecar(tagging_app("b", versions=["v1alpha1"]), subdir="s1", socket_name="b.sock")
    runner_dir = hook_sidecar.sockets_dir
    with HookManager(runner_dir) as manager:
        manager.collect(2, timeout=5)
        assert [s.version for s in manager.sidecars] == ["v1alpha2", "v1alpha1"]
        assert manager.on_define_domain(b"<domain/>", b"{}") == b'<domain chain="a b"/>'
        manager.shutdown()  # neither is v1alpha3: nobody is asked to shut down
        assert all(s.socket_path.exists() for s in manager.sidecars)


def test_pre_cloud_init_iso_uses_only_the_first_v1alpha2_plus_subscriber(hook_sidecar):
    def app_adding(text, versions=("v1alpha3",)):
        app = App("ci-" + text, audit="off", versions=versions)

        @app.pre_cloud_init_iso
        def edit(data, ctx):
            data["UserData"] += text

        return app

    hook_sidecar(app_adding("old", versions=("v1alpha1",)), subdir="s0", socket_name="a.sock")
    hook_sidecar(app_adding("first"), subdir="s1", socket_name="b.sock")
    hook_sidecar(app_adding("second"), subdir="s2", socket_name="c.sock")
    data = {"DataSource": "noCloud", "UserData": "x:", "NoCloudMetaData": {"instance-id": "i"}}
    with HookManager(hook_sidecar.sockets_dir) as manager:
        manager.collect(3, timeout=5)
        assert manager.pre_cloud_init_iso(data, b"{}")["UserData"] == "x:first"

    # without metadata the launcher falls back to the legacy userData/networkData field
    with HookManager(hook_sidecar.sockets_dir) as manager:
        manager.collect(3, timeout=5)
        result = manager.pre_cloud_init_iso({"DataSource": "noCloud", "UserData": "y:"}, b"{}")
    assert result == {"DataSource": "noCloud", "UserData": "y:first", "NetworkData": ""}


def test_interface_helper_through_the_wire(hook_sidecar):
    app = App("iface", audit="off")

    @app.on_define_domain
    def define(domain, ctx):
        iface = Interface.create("ethernet")
        iface.alias = "ua-x"
        domain.put_interface(iface)

    sidecar = hook_sidecar(app)
    out = sidecar.define_domain("<domain><devices><disk/></devices></domain>", {})
    assert out == b'<domain><devices><interface type="ethernet"><alias name="ua-x"/></interface><disk/></devices></domain>'
    assert json.loads(json.dumps(sidecar.info()))["name"] == "iface"


def _open_connections(socket_path) -> int:
    """Connected server-side sockets of ``socket_path`` (accepted sockets carry the bound path)."""
    with open("/proc/net/unix") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(1 for row in rows if len(row) >= 8 and row[7] == str(socket_path) and row[5] == "03")


def _wait_for_connections(socket_path, expected: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while (count := _open_connections(socket_path)) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return count


@pytest.mark.parametrize("persistent", [False, True])
def test_dials_per_call_like_virt_launcher_unless_persistent(hook_sidecar, persistent):
    sidecar = hook_sidecar(tagging_app("t"))
    with HookManager(sidecar.sockets_dir, persistent=persistent) as manager:
        manager.collect(1, timeout=5)
        for _ in range(3):
            assert manager.on_define_domain(b"<domain/>", b"{}") == b'<domain chain="t"/>'
        # per call: every connection is closed after its call; persistent: one stays open
        assert _wait_for_connections(sidecar.socket_path, 1 if persistent else 0) == (1 if persistent else 0)
    assert _wait_for_connections(sidecar.socket_path, 0) == 0
