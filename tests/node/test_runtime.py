"""The node runtime for real (root): a pod sandbox wired to a node namespace, a private libvirtd,
the tiny guest booted under TCG, DHCP from dnsmasq in the node namespace, link refresh, teardown
from the on-disk record, rollback and process supervision."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from netbind import _iproute as iproute
from netbind.node import guest, procs, sandbox
from netbind.node import libvirt as lv
from netbind.node.seed import NoCloudSeed

from .conftest import Footprint, dhcp_server, wait_for_reports

MAC0, MAC1 = "52:54:00:5b:00:01", "52:54:00:5b:00:02"


def _wire(pod: sandbox.Pod, node: sandbox.Node, subnet: str) -> str:
    """eth0 of the pod on a veth to the node (gateway .1), bridged with tap0 and tap1."""
    peer = sandbox.node_veth_name(pod.names, "eth0")
    pod.apply(sandbox.veth_to_node(pod.names, node.names, "eth0", peer)
              + (sandbox.Address(f"{subnet}.1/24", peer, node.netns),)
              + sandbox.bridged_tap(pod.netns, "eth0", "k6t-eth0", "tap0")
              + (sandbox.Tap("tap1", pod.netns), sandbox.Enslave("tap1", "k6t-eth0", pod.netns),
                 sandbox.LinkUp("tap1", pod.netns)))
    return peer


def _boot(pod: sandbox.Pod, image: guest.GuestImage, name: str, seed: NoCloudSeed | None = None):
    libvirtd = lv.PrivateLibvirtd.start(pod)
    initrd = image.initrd_with_seed(seed, pod.names.directory / "initrd.gz") if seed else image.initrd
    xml = lv.minimal_domain_xml(name, [("tap0", MAC0), ("tap1", MAC1)])
    xml = lv.with_serial_log(lv.with_direct_kernel_boot(lv.to_tcg(xml), image.kernel, initrd, image.cmdline()),
                             pod.names.directory / "console.log")
    libvirtd.define(xml)
    libvirtd.start_domain(name)
    return libvirtd


def _leases(reports, iface):
    return [r for r in reports if r.word == "LEASE" and r.fields["iface"] == iface]


def test_guest_image_is_cached(guest_image):
    again = guest.ensure_guest()
    assert not again.built and again.directory == guest_image.directory
    assert again.kernel.read_bytes()[:4] == b"\x7fELF"
    assert again.inputs.key() == guest.resolve_inputs().key()


def test_guest_leases_every_nic_and_renews_after_link_refresh(guest_image, runtime):
    node = sandbox.ensure_node(runtime)
    pod = sandbox.create_pod("vm-dhcp", runtime=runtime)
    footprint = Footprint()
    try:
        peer = _wire(pod, node, "10.237.0")
        footprint.node_links.add(peer)
        dhcp_server(pod, node, peer, {MAC0: "10.237.0.20", MAC1: "10.237.0.21"}, "10.237.0.100,10.237.0.110")
        libvirtd = _boot(pod, guest_image, "nb-vm-dhcp")
        console = lambda: libvirtd.console_log("nb-vm-dhcp")  # noqa: E731
        reports = wait_for_reports(console, lambda rs: any(r.word == "READY" for r in rs))
        assert [(r.fields["ip"], r.fields["mac"], r.fields["router"]) for r in _leases(reports, "eth0")] == \
            [("10.237.0.20", MAC0, "10.237.0.1")]
        assert [r.fields["ip"] for r in _leases(reports, "eth1")] == ["10.237.0.21"]
        assert next(r for r in reports if r.word == "READY").fields["ifaces"] == "eth0,eth1"

        # KubeVirt's link refresh: link down, then up, through update-device on the live domain
        libvirtd.set_link_state("nb-vm-dhcp", MAC1, up=False)
        wait_for_reports(console, lambda rs: any(r.word == "LINK" and (r.fields["iface"], r.fields["state"]) == ("eth1", "down")
                                                 for r in rs), timeout=10)
        libvirtd.set_link_state("nb-vm-dhcp", MAC1, up=True)
        reports = wait_for_reports(console, lambda rs: len(_leases(rs, "eth1")) == 2, timeout=15)
        words = [(r.word, r.fields.get("iface")) for r in reports]
        assert words.index(("LINK", "eth1")) < len(words) - 1 - words[::-1].index(("LEASE", "eth1"))
        assert len(_leases(reports, "eth0")) == 1  # the other NIC was left alone
        # the fresh lease is a new DHCP exchange, seen by the server too
        log = Path(pod.names.logs_dir / "dnsmasq.log").read_text()
        assert log.count(f"DHCPACK({peer}) 10.237.0.21") == 2

        # libvirtd is pinned to CPU 0 (stable capabilities cache); its qemu must not be
        qemu = [pid for pid in iproute.netns_pids(pod.netns)
                if Path(f"/proc/{pid}/comm").read_text().strip().startswith("qemu-system")]
        assert len(qemu) == 1 and os.sched_getaffinity(qemu[0]) == os.sched_getaffinity(0)
        footprint.note_pod(pod, node)
        libvirtd.close()
    finally:
        removed = sandbox.down("vm-dhcp", runtime)  # from the on-disk journal, like `netbind down`
    assert removed == [pod.netns]
    footprint.assert_gone()
    assert sandbox.down("vm-dhcp", runtime) == []  # idempotent


def test_cloud_init_network_data_and_crash_cleanup(guest_image, runtime):
    node = sandbox.ensure_node(runtime)
    pod = sandbox.create_pod("vm-seed", runtime=runtime)
    footprint = Footprint()
    try:
        peer = _wire(pod, node, "10.238.0")
        footprint.node_links.add(peer)
        dhcp_server(pod, node, peer, {MAC0: "10.238.0.30", MAC1: "10.238.0.31"}, "10.238.0.100,10.238.0.110")
        network_config = ("version: 2\nethernets:\n"
                          f"  first:\n    match: {{macaddress: '{MAC0}'}}\n    addresses: [10.238.0.77/24]\n"
                          "    gateway4: 10.238.0.1\n")
        seed = NoCloudSeed.for_vmi("vm-seed", hostname="seeded", network_config=network_config)
        libvirtd = _boot(pod, guest_image, "nb-vm-seed", seed)
        reports = wait_for_reports(lambda: libvirtd.console_log("nb-vm-seed"),
                                   lambda rs: any(r.word == "READY" for r in rs))
        assert [r.fields for r in reports if r.word == "ADDR"] == [
            {"iface": "eth0", "ip": "10.238.0.77", "mask": "24", "mac": MAC0, "source": "static"}]
        assert [r.fields for r in reports if r.word == "IFACE"] == [{"iface": "eth1", "mac": MAC1, "config": "none"}]
        assert not [r for r in reports if r.word == "LEASE"]  # a network-config only configures what it lists
        # the static address answers from the node namespace
        ping = subprocess.run(["ip", "netns", "exec", node.netns, "busybox", "ping", "-c", "1", "-W", "5", "10.238.0.77"],
                              capture_output=True, text=True)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        footprint.note_pod(pod, node)
        # "crash": forget every object; only the runtime dir remains to clean up from
        del libvirtd, pod, node
    finally:
        sandbox.down_all(runtime)
    footprint.assert_gone()


def test_failed_step_rolls_back_what_it_created(runtime):
    node = sandbox.ensure_node(runtime)
    pod = sandbox.create_pod("vm-fail", runtime=runtime)
    try:
        before = list(pod.journal.entries)
        peer = sandbox.node_veth_name(pod.names, "eth0")
        bad = sandbox.veth_to_node(pod.names, node.names, "eth0", peer) + (
            sandbox.Bridge("k6t-eth0", pod.netns), sandbox.Enslave("eth0", "no-such-br", pod.netns))
        with pytest.raises(sandbox.SandboxError, match="no-such-br"):
            pod.apply(bad)
        assert pod.journal.entries == before
        assert not iproute.link_exists("eth0", pod.netns) and not iproute.link_exists("k6t-eth0", pod.netns)
        assert not iproute.link_exists(peer, node.netns)
        assert iproute.netns_exists(pod.netns)  # what earlier applies made stays, for `down`
    finally:
        sandbox.down_all(runtime)
    assert not iproute.netns_exists(pod.netns) and not runtime.exists()


def test_pod_process_mounts_and_supervision(runtime):
    node = sandbox.ensure_node(runtime)
    pod = sandbox.create_pod("vm-proc", runtime=runtime)
    try:
        (pod.names.podinfo_dir / "network-info").write_text('{"interfaces":[]}')
        script = ("set -u; echo sock > /var/run/kubevirt-hooks/x.sock; cat /etc/podinfo/network-info; echo;"
                  " touch /etc/podinfo/w 2>/dev/null && echo podinfo-writable || echo podinfo-ro;"
                  " readlink /proc/self/ns/net; echo ready; trap '' TERM; while :; do sleep 0.1; done")
        spec = pod.process_spec("hook-sidecar-0", ["/bin/sh", "-c", script], hooks_subdir="hook-sidecar-0",
                                podinfo=True, env={"PATH": "/usr/bin:/bin", "CONTAINER_NAME": "hook-sidecar-0"})
        record = pod.start(spec)
        deadline = time.monotonic() + 10
        while "ready" not in Path(record.log).read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        out = Path(record.log).read_text().split()
        assert out[:2] == ['{"interfaces":[]}', "podinfo-ro"]
        assert out[2] == os.readlink(f"/proc/{record.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        assert (pod.names.hooks_dir / "hook-sidecar-0" / "x.sock").read_text() == "sock\n"
        assert not Path("/var/run/kubevirt-hooks/x.sock").exists()  # the mount stayed private
        assert Path(record.pidfile).read_text().strip() == str(record.pid)
        # SIGTERM is ignored: stop escalates to SIGKILL after the grace period
        pod.journal.find("process", "hook-sidecar-0")[0].attrs["grace"] = 0.3
        pod.stop("hook-sidecar-0")
        assert not procs.alive(record.pid, record.starttime)
        assert not Path(record.pidfile).exists() and not pod.journal.find("process")
        # a process that cannot start reports its log
        with pytest.raises(procs.ProcessError, match="exited at once"):
            pod.start(pod.process_spec("broken", ["/bin/sh", "-c", "echo boom >&2; exit 3"]))
        assert not pod.journal.find("process", "broken")
    finally:
        sandbox.down_all(runtime)
    assert not runtime.exists()
