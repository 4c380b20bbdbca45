"""`netbind up` through KubeVirt's Plugin API (root, end to end): the passt binding's domain work done
by a Plugin's sidecar over MutateDomain, not by a binding sidecar; and the failures a user meets."""
from __future__ import annotations

import json
import shutil

import pytest

from netbind.api.loading import load_manifests
from netbind.node import multus, netcheck, runtime, sandbox
from netbind.node.images import ImageMap

from .test_up import EXAMPLES, _console, _interface, _pod_address, _reports, run  # noqa: F401  (fixture)
from .conftest import wait_for_reports

EXAMPLE = EXAMPLES / "plugin-api"


def test_the_vm_gets_its_passt_nic_through_the_plugin_api_and_talks_tcp_both_ways(run):
    node = run.node()
    server = netcheck.start_server(node.netns, multus.WORLD_ADDRESS, 9001, run.runtime / "node" / "server.log")
    try:
        result = run.up(load_manifests([EXAMPLE]), passt="substitute",
                        guest_args=("nb.echo=8080", f"nb.probe={multus.WORLD_ADDRESS}:9001"))
        pod_ip = _pod_address(result.pod)
        lease = next(r for r in _reports(result) if r.word == "LEASE")
        assert lease.fields["ip"] == pod_ip
        reports = wait_for_reports(_console(result), lambda rs: any(r.word == "PROBE" for r in rs), timeout=20)
        assert next(r for r in reports if r.word == "PROBE").fields["ok"] == "yes"
        assert netcheck.exchange(node.netns, pod_ip, 8080, "ping-via-plugin-api") == "ping-via-plugin-api"

        # no binding sidecar: the injected Plugin sidecar did the domain work, twice (two defines), Boot
        state = runtime.load_state(result.pod)
        assert [s.split(":")[0] for s in state["sidecars"]] == ["plugin-sidecar-passt-plugin-api"]
        log = (result.pod.names.logs_dir / "plugin-sidecar-passt-plugin-api.log").read_text()
        calls = [json.loads(line) for line in log.splitlines() if line.startswith("{") and '"call"' in line]
        assert [(c["hook"], c["status"], c["invocationContext"]) for c in calls] == [("MutateDomain", "ok", "Boot")] * 2
        assert not (result.pod.names.hooks_dir / "plugin-sidecar-passt-plugin-api").exists()   # no hook API socket
        assert "passt" in (result.pod.names.directory / "domain.xml").read_text()
        assert _interface(runtime.current_vmi(result.pod), "passtnet")["ipAddress"] == pod_ip
        assert any("Plugin MutateDomain (Boot) x2" in p["detail"] for p in state["phases"])
    finally:
        server.stop()
    assert sandbox.down("vm-net-binding-passt", run.runtime) == [result.pod.netns]


def _copy_example(tmp_path, plugin_text: str):
    for name in ("kubevirt.yaml", "nad.yaml", "vm.yaml"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    (tmp_path / "plugin.yaml").write_text(plugin_text)
    return load_manifests([tmp_path])


def test_a_plugin_sidecar_without_an_image_is_refused_before_anything_is_created(run, tmp_path):
    text = (EXAMPLE / "plugin.yaml").read_text()
    text = "\n".join(line for line in text.splitlines() if "netbind.io/sidecar-image" not in line
                     and line.strip() != "annotations:")
    with pytest.raises(runtime.UpError, match="netbind.io/sidecar-image") as err:
        run.up(_copy_example(tmp_path, text), passt="substitute")
    assert err.value.phase == "validate"


def test_a_denied_plugin_stops_up_with_the_api_servers_answer(run, tmp_path):
    text = (EXAMPLE / "plugin.yaml").read_text().replace("hook.sock", "hook")
    with pytest.raises(runtime.UpError, match="sidecar socketPath must end with .sock"):
        run.up(_copy_example(tmp_path, text), passt="substitute")


def _broken_sidecar_images(tmp_path) -> ImageMap:
    """An image map whose sidecar image runs and never serves (as KubeVirt's test sidecar with --sleep)."""
    path = tmp_path / "images.yaml"
    path.write_text("sidecars:\n  example.com/nb-broken-sidecar:\n    command: [sleep, \"600\"]\n")
    return ImageMap.load(path)


@pytest.mark.parametrize("strategy", ["Fail", "Ignore"])
def test_a_plugin_sidecar_that_never_serves_fails_or_is_skipped_as_its_failure_strategy_says(run, tmp_path, strategy):
    text = (EXAMPLE / "plugin.yaml").read_text().replace(
        "quay.io/kubevirt/network-passt-binding:20231205_29a16d5c9", "example.com/nb-broken-sidecar").replace(
        "failureStrategy: Fail", f"failureStrategy: {strategy}")
    manifests = _copy_example(tmp_path, text)
    options = dict(passt="substitute", images=_broken_sidecar_images(tmp_path), plugin_socket_timeout=1.5,
                   wait=False)
    if strategy == "Fail":
        with pytest.raises(runtime.UpError, match="virt-launcher: plugin passt-plugin-api hook 0 failed: sidecar"
                                                  " socket /var/run/kubevirt-plugin/passt-plugin-api/hook.sock not"
                                                  " ready after 1.5s"):
            run.up(manifests, **options)
    else:
        result = run.up(manifests, **options)
        assert any("Plugin passt-plugin-api hook 0 failed (ignored)" in s for s in result.substitutions)
        assert "<interface" not in (result.pod.names.directory / "domain.xml").read_text()   # no one added it
        assert sandbox.down("vm-net-binding-passt", run.runtime) == [result.pod.netns]
