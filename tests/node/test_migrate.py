"""`netbind migrate` end to end (root): a VM moves between two launcher pods on two "nodes" (own pod
CIDRs, own sidecars, own libvirtd), and the guest's console shows the link-refresh and the new lease
from the target pod. Refusals and failures leave the VM running on the source and nothing of the
target. Each test ends with the leak check of test_up."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netbind import _iproute as iproute
from netbind.node import guest, libvirt as lv, migrate, netcheck, runtime, sandbox
from netbind.node.images import ImageMap
from netbind.api.loading import load_manifests

from .conftest import wait_for_reports
from .test_up import EXAMPLES, HERE, PASST_IMAGE, run  # noqa: F401  (the `run` fixture)

NOT_MIGRATABLE = ("Cannot migrate VMI, Reason: InterfaceNotLiveMigratable, Message: cannot migrate VMI which does"
                  " not use masquerade or a migratable plugin to connect to the pod network")


def _pod_address(netns: str) -> str:
    return iproute.ip("-4", "-o", "addr", "show", "dev", "eth0", netns=netns).split()[3].split("/")[0]


def _reports(pod: sandbox.Pod) -> list[guest.Report]:
    return guest.parse_reports(Path(runtime.load_state(pod)["console"]).read_text())


def _domain_running(pod: sandbox.Pod) -> bool:
    state = runtime.load_state(pod)
    return runtime._domain_phase(state) == "Running"


def _options(run, **kw) -> migrate.MigrateOptions:
    return migrate.MigrateOptions(runtime=run.runtime, wait_timeout=30, **kw)


def _up(run, manifests, passt="substitute", **kw):
    node = run.node()
    result = run.up(manifests, guest_args=("nb.echo=8080",), passt=passt, **kw)
    source_ip = _pod_address(result.pod.netns)
    assert netcheck.exchange(node.netns, source_ip, 8080, "before") == "before"
    return node, result, source_ip


@pytest.mark.parametrize("passt", ["substitute", "native"])
def test_passt_vm_migrates_with_link_refresh_new_lease_from_target_pod_and_tcp(run, passt, request):
    if passt == "native":
        request.getfixturevalue("native_stack")
    node, result, source_ip = _up(run, load_manifests([EXAMPLES / "passt"]), passt=passt)
    assert result.host["passtPath"]["path"] == passt
    source = result.pod
    moved = migrate.migrate("vm-net-binding-passt", _options(run, wait=True))
    target = moved.target
    target_ip = _pod_address(target.netns)
    assert target_ip.startswith("10.244.1.") and source_ip.startswith("10.244.0.")   # another node's pod CIDR

    # the guest's own account: the link went down and up, then a fresh lease from the target pod's passt
    reports = _reports(target)
    flap = [r for r in reports if r.word == "LINK" and r.fields["iface"] == "eth0"]
    assert [r.fields["state"] for r in flap][-2:] == ["down", "up"]
    after = reports[reports.index(flap[-1]) + 1:]
    lease = next(r for r in after if r.word == "LEASE")
    assert (lease.fields["ip"], lease.fields["router"]) == (target_ip, "10.244.1.1")
    assert moved.lease["ip"] == target_ip and moved.link_refresh[0]["interface"] == "passtnet"
    # ... and what came before the migration is still in the console (the target started on a copy)
    assert any(r.word == "LEASE" and r.fields["ip"] == source_ip for r in reports[:reports.index(flap[-1])])

    # TCP to the guest at its new address, through the target pod's passt
    assert netcheck.exchange(node.netns, target_ip, 8080, "after-migration") == "after-migration"

    # the source pod is gone; its v1alpha3 sidecar exited on Shutdown; the target's got OnDefineDomain once
    assert not iproute.netns_exists(source.netns) and not source.names.directory.exists()
    assert moved.shutdown == {"hook-sidecar-0": "exited after Shutdown"}
    target_log = (target.names.logs_dir / "hook-sidecar-0.log").read_text().replace(" ", "")
    assert target_log.count('"hook":"OnDefineDomain"') == 1
    assert {"downtime", "time_elapsed"} <= set(moved.job)
    # QEMU 7.2 under TCG (the substitute path) loses guest writes in a live migration: paused there
    paused = [s for s in runtime.load_state(target)["substitutions"] if s.startswith("migration: paused")]
    assert bool(paused) == (passt == "substitute")

    # VMI status follows: node, migration state, interface address
    vmi = runtime.current_vmi(target)
    st = vmi["status"]
    assert st["phase"] == "Running" and st["nodeName"] == runtime.node_name(1)
    assert st["migrationState"]["completed"] is True and st["migrationState"]["failed"] is False
    assert (st["migrationState"]["sourceNode"], st["migrationState"]["targetNode"]) == (runtime.node_name(0),
                                                                                        runtime.node_name(1))
    iface = next(i for i in st["interfaces"] if i["name"] == "passtnet")
    assert iface["ipAddress"] == target_ip
    assert sandbox.find_pods("vm-net-binding-passt", run.runtime) == [target] or \
        [p.netns for p in sandbox.find_pods("vm-net-binding-passt", run.runtime)] == [target.netns]


def test_pod_network_binding_without_migration_is_refused_with_kubevirts_message(run):
    result = run.up(load_manifests([HERE / "manifests" / "not-migratable"]), wait=False)
    condition = next(c for c in result.vmi["status"]["conditions"] if c["type"] == "LiveMigratable")
    assert (condition["status"], condition["reason"]) == ("False", "InterfaceNotLiveMigratable")
    with pytest.raises(migrate.MigrationError) as refused:
        migrate.migrate("vmi-pinned", _options(run))
    assert refused.value.message == NOT_MIGRATABLE and refused.value.phase == "admission"
    assert NOT_MIGRATABLE.endswith(condition["message"])
    assert [p.netns for p in sandbox.list_pods(run.runtime)] == [result.pod.netns]   # no target pod
    # the CLI says the same and exits 1
    cli = subprocess.run([sys.executable, "-m", "netbind.cli", "migrate", "vmi-pinned", "-o", "json"],
                         capture_output=True, text=True, env={**os.environ, "NETBIND_RUNTIME_DIR": str(run.runtime)})
    assert cli.returncode == 1 and json.loads(cli.stdout)["error"] == NOT_MIGRATABLE


def _images_with(tmp_path: Path, **entries) -> ImageMap:
    images = ImageMap.load()
    images.cni["nb-test-tap"] = str(HERE / "helpers" / "tap_cni.py")
    if "sidecar" in entries:
        images.sidecars[PASST_IMAGE] = {"command": entries["sidecar"]}
    if "tap" in entries:
        images.cni["nb-test-tap"] = entries["tap"]
    path = tmp_path / "images.json"
    path.write_text(json.dumps({"sidecars": images.sidecars, "cni": images.cni}))
    return ImageMap.load(path)


@pytest.mark.parametrize("fault", ["target-tap-missing", "target-sidecar-fails", "migration-error"])
def test_failed_migration_keeps_the_vm_on_the_source_and_removes_the_target(run, tmp_path, fault):
    manifests = load_manifests([HERE / "manifests" / "tap-secondary"])
    node, result, source_ip = _up(run, manifests, images=_images_with(tmp_path))
    before = {p.netns for p in sandbox.list_pods(run.runtime)}
    created: list[sandbox.Pod] = []
    target_images, hook = None, None
    if fault == "target-tap-missing":
        forgetful = tmp_path / "forgetful-tap"
        forgetful.write_text(f"#!/bin/sh\nexec {HERE / 'helpers' / 'tap_cni.py'} --forgetful\n")
        forgetful.chmod(0o755)
        target_images = _images_with(tmp_path, tap=str(forgetful))
    elif fault == "target-sidecar-fails":
        target_images = _images_with(tmp_path, sidecar=[sys.executable, str(HERE / "helpers" / "bad_xml_sidecar.py")])
    else:
        def hook(pod):   # the target's libvirtd goes away just before the transfer
            pod.stop("libvirtd")

    def remember(pod):
        created.append(pod)
        if hook:
            hook(pod)

    options = _options(run, images=target_images, before_transfer=remember)
    with pytest.raises(migrate.MigrationError) as failed:
        migrate.migrate("vmi-tap", options)
    text = str(failed.value)
    assert "the VMI keeps running on" in text
    if fault == "target-tap-missing":
        assert failed.value.phase == "transfer" and "target managed='no' but specified dev doesn't exist" in text
    elif fault == "target-sidecar-fails":
        assert failed.value.phase == "target hooks"
        assert "executing custom preStart hooks failed: Failed to unmarshal given domain spec" in text
    else:
        assert failed.value.phase == "transfer" and "live migration failed" in text

    # the VM still runs on the source, reachable as before; the target pod is gone without a trace
    assert {p.netns for p in sandbox.list_pods(run.runtime)} == before
    assert _domain_running(result.pod)
    assert netcheck.exchange(node.netns, source_ip, 8080, "still-here") == "still-here"
    for pod in created:
        assert not iproute.netns_exists(pod.netns) and not pod.names.directory.exists()
    state = failed.value.vmi["status"]["migrationState"]
    assert state["failed"] is True and state["completed"] is False and state["failureReason"]
    assert runtime.current_vmi(result.pod)["status"]["migrationState"]["failed"] is True


def test_tap_interface_link_refresh_through_update_device(run, tmp_path):
    """The libvirt path of link-refresh (virDomainUpdateDeviceFlags LIVE|CONFIG) on a tap interface."""
    node, result, _ = _up(run, load_manifests([HERE / "manifests" / "tap-secondary"]), images=_images_with(tmp_path))
    moved = migrate.migrate("vmi-tap", _options(run, wait=True))
    assert {r["interface"]: r["how"] for r in moved.link_refresh} == {
        "default": "QMP set_link (R6a NIC)", "side": "virDomainUpdateDeviceFlags LIVE|CONFIG"}
    reports = wait_for_reports(lambda: Path(runtime.load_state(moved.target)["console"]).read_text(),
                               lambda rs: [r.fields["state"] for r in rs if r.word == "LINK"
                                           and r.fields["iface"] == "eth1"][-2:] == ["down", "up"], timeout=10)
    assert reports
    conn = lv.PrivateLibvirtd(moved.target, lv.Layout(moved.target.names.directory / "libvirt"), None)
    try:   # up again, live and in the persistent definition
        for flags in (0, lv.libvirt.VIR_DOMAIN_XML_INACTIVE):
            xml = conn.domain("default_vmi-tap").XMLDesc(flags)
            assert "<link state='down'/>" not in xml and "<link state=\"down\"/>" not in xml
    finally:
        conn.close()
    assert netcheck.exchange(node.netns, _pod_address(moved.target.netns), 8080, "tap-vm") == "tap-vm"


def test_macvtap_example_is_migratable_for_kubevirt_but_refused_here_with_the_reason(run):
    """examples/macvtap has no pod network, so KubeVirt calls it migratable (spec 9.1); the local
    nodes share one lower device, so the runtime says why it cannot and creates nothing."""
    result = run.up(load_manifests([EXAMPLES / "macvtap"]), wait=False)
    condition = next(c for c in result.vmi["status"]["conditions"] if c["type"] == "LiveMigratable")
    assert condition["status"] == "True"
    with pytest.raises(migrate.MigrationError) as refused:
        migrate.migrate("vm-net-binding-macvtap", _options(run))
    assert refused.value.phase == "target pod" and "KubeVirt would migrate this VMI" in refused.value.message
    assert "lower device 'eth0'" in refused.value.message
    assert [p.netns for p in sandbox.list_pods(run.runtime)] == [result.pod.netns]


def test_a_vm_wired_through_the_plugin_api_migrates_and_its_target_sidecar_gets_migration_target(run):
    node, result, source_ip = _up(run, load_manifests([EXAMPLES / "plugin-api"]))
    moved = migrate.migrate("vm-net-binding-passt", _options(run, wait=True))
    target_ip = _pod_address(moved.target.netns)
    assert moved.lease["ip"] == target_ip != source_ip
    assert netcheck.exchange(node.netns, target_ip, 8080, "after-migration") == "after-migration"
    # the target's Plugin sidecar: one MutateDomain, MigrationTarget; no hook API sidecar to shut down
    log = (moved.target.names.logs_dir / "plugin-sidecar-passt-plugin-api.log").read_text()
    calls = [json.loads(line) for line in log.splitlines() if line.startswith("{") and '"call"' in line]
    assert [(c["hook"], c.get("invocationContext")) for c in calls] == [("MutateDomain", "MigrationTarget")]
    assert moved.shutdown == {}
