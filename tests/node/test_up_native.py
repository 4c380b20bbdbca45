"""`netbind up` through the native passt path (root): the passt sidecar's vhost-user interface with
``<backend type='passt'/>`` defined unchanged into libvirt >= 11, which starts ``passt --vhost-user``
itself (the provisioned stack on Debian 12, the host's packages on Debian 13). Same checks as the
R6a test in test_up.py, plus what makes it native; the leak check of the ``run`` fixture after each."""
from __future__ import annotations

import subprocess
from pathlib import Path

import libvirt
import pytest
from lxml import etree

from netbind.api.loading import load_manifests
from netbind.node import multus, netcheck, runtime, sandbox, stack
from netbind.testing import require

from .conftest import wait_for_reports
from .test_up import EXAMPLES, _console, _interface, _pod_address, _reports, run  # noqa: F401  (fixture)


def test_native_passt_leases_the_pod_address_and_talks_tcp_both_ways(run, native_stack):
    node = run.node()
    server = netcheck.start_server(node.netns, multus.WORLD_ADDRESS, 9000, run.runtime / "node" / "server.log")
    try:
        result = run.up(load_manifests([EXAMPLES / "passt"]), passt="native",
                        guest_args=("nb.echo=8080", f"nb.probe={multus.WORLD_ADDRESS}:9000"))
        # the path taken, and why
        assert any(s.startswith("passt: native") and native_stack.describe() in s for s in result.substitutions)
        assert not any("recipe R6a" in s for s in result.substitutions)
        assert result.host["passtPath"]["path"] == "native" and result.host["notes"] == []

        # the domain libvirt runs carries the sidecar's interface as written: no -netdev stream rewrite
        state = runtime.load_state(result.pod)
        conn = libvirt.open(state["uri"])
        try:
            assert conn.getLibVersion() >= 11_000_000
            xml = etree.fromstring(conn.lookupByName(state["domain"]).XMLDesc(0).encode())
        finally:
            conn.close()
        iface = xml.find("devices/interface[@type='vhostuser']")
        assert iface is not None and iface.find("backend").get("type") == "passt"
        assert iface.find("alias").get("name") == "ua-passtnet" and iface.find("source").get("dev") == "eth0"
        assert [r.get("start") for r in iface.findall("portForward/range")] == ["8080"]
        assert xml.find("memoryBacking/access").get("mode") == "shared"
        assert xml.find("{http://libvirt.org/schemas/domain/qemu/1.0}commandline") is None
        # libvirt started passt --vhost-user in the pod netns; no passt of ours is recorded
        assert not result.pod.journal.find("process", "passt-passtnet")
        pod_pids = subprocess.run(["ip", "netns", "pids", result.pod.netns], capture_output=True, text=True).stdout.split()
        cmdlines = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in pod_pids
                    if Path(f"/proc/{pid}/cmdline").exists()]
        passt = [c for c in cmdlines if c and c[0].endswith(b"passt")]
        assert len(passt) == 1 and b"--vhost-user" in passt[0] and b"--interface" in passt[0]
        assert (result.pod.names.directory / "kubevirt-run" / "passt.log").stat().st_size > 0

        # what the guest saw: the pod's address by passt's DHCP, then TCP both ways
        pod_ip = _pod_address(result.pod)
        lease = next(r for r in _reports(result) if r.word == "LEASE")
        assert (lease.fields["ip"], lease.fields["router"], lease.fields["mtu"]) == (pod_ip, "10.244.0.1", "65520")
        assert lease.fields["dns"] == ""   # the pod's own resolv.conf has no resolver (not the host's)
        reports = wait_for_reports(_console(result), lambda rs: any(r.word == "PROBE" for r in rs), timeout=20)
        probe = next(r for r in reports if r.word == "PROBE")
        assert probe.fields["ok"] == "yes" and probe.fields["reply"].startswith("nb-node-reply_nb-probe")
        assert server.seen() == [f"from {pod_ip}: nb-probe from vm-net-binding-passt"]
        assert netcheck.exchange(node.netns, pod_ip, 8080, "ping-from-node") == "ping-from-node"

        vmi = runtime.current_vmi(result.pod)
        status = _interface(vmi, "passtnet")
        # the MAC libvirt chose (the sidecar gave none) is the one the guest leased with
        assert status["ipAddress"] == pod_ip and status["mac"] == lease.fields["mac"]
        assert {c["type"]: c["status"] for c in vmi["status"]["conditions"]} == {"Ready": "True", "LiveMigratable": "True"}
    finally:
        server.stop()
    assert sandbox.down("vm-net-binding-passt", run.runtime) == [result.pod.netns]
    # passt's logFile went to the pod's own /var/run/kubevirt, never the host's (the node's mount
    # points themselves are checked by the runtime fixture, which knows another run may share them)
    assert not (Path("/run/kubevirt") / "passt.log").exists()


def test_auto_takes_the_native_path_when_the_stack_is_there(run, native_stack):
    result = run.up(load_manifests([EXAMPLES / "passt"]), passt="auto")
    assert any(s.startswith("passt: native") for s in result.substitutions)
    lease = next(r for r in _reports(result) if r.word == "LEASE")
    assert lease.fields["ip"] == _pod_address(result.pod)
