"""Pod sandbox names, plans and process command lines: pure, no root."""
from __future__ import annotations

from pathlib import Path

from netbind.node import procs, sandbox
from netbind.node.sandbox import PodNames


def test_pod_names_are_unique_prefixed_and_short_enough():
    a = PodNames.new("My_VM.with-a-very-long-name-indeed", runtime=Path("/r"))
    b = PodNames.new("My_VM.with-a-very-long-name-indeed", runtime=Path("/r"))
    assert a.netns != b.netns and a.netns.startswith("nb-my-vm-with-a-very-")
    assert a.directory == Path("/r/pods") / a.netns
    assert len(sandbox.node_veth_name(a, "eth0")) <= 15
    assert sandbox.node_veth_name(a, "eth0") != sandbox.node_veth_name(b, "eth0")


def test_node_names_differ_per_runtime_dir():
    assert sandbox.NodeNames(Path("/a")).netns != sandbox.NodeNames(Path("/b")).netns


def test_pod_plan_and_bridge_wiring_are_plain_data():
    pod = PodNames("vm", "default", "abc123", Path("/r"))
    plan = sandbox.pod_plan(pod) + sandbox.bridged_tap(pod.netns, "eth0", "k6t-eth0", "tap0")
    assert plan[0] == sandbox.Netns("nb-vm-abc123")
    assert sandbox.Tap("tap0", "nb-vm-abc123") in plan
    assert plan.index(sandbox.Bridge("k6t-eth0", pod.netns)) < plan.index(sandbox.Enslave("tap0", "k6t-eth0", pod.netns))


def test_sidecar_process_sees_its_subdirectory_as_kubevirt_hooks():
    pod = sandbox.Pod(PodNames("vm", "default", "abc123", Path("/r")), journal=None)  # type: ignore[arg-type]
    spec = pod.process_spec("hook-sidecar-0", ["sidecar", "--v"], hooks_subdir="hook-sidecar-0", podinfo=True)
    argv = procs.command_line(spec)
    assert argv[:4] == ["ip", "netns", "exec", "nb-vm-abc123"]
    words = argv[argv.index("nb-launch") + 1:]
    assert words == ["/r/pods/nb-vm-abc123/pids/hook-sidecar-0.dev", "--",
                     "/r/pods/nb-vm-abc123/hooks/hook-sidecar-0", "/var/run/kubevirt-hooks", "rw",
                     "/r/pods/nb-vm-abc123/podinfo", "/etc/podinfo", "ro", "--", "sidecar", "--v"]
    assert spec.log == Path("/r/pods/nb-vm-abc123/logs/hook-sidecar-0.log")


def test_a_process_gets_device_nodes_of_its_own_before_its_binds():
    pod = sandbox.Pod(PodNames("vm", "default", "abc123", Path("/r")), journal=None)  # type: ignore[arg-type]
    spec = pod.process_spec("libvirtd", ["libvirtd"], devices=[procs.Device("/dev/tap3", 246, 1, 0o600),
                                                               procs.Device("/dev/kvm", 10, 232, 0o660, "kvm")])
    words = procs.command_line(spec)
    words = words[words.index("nb-launch") + 1:]
    assert words == ["/r/pods/nb-vm-abc123/pids/libvirtd.dev", "/dev/tap3", "246", "1", "600", "-",
                     "/dev/kvm", "10", "232", "660", "kvm", "--", "--", "libvirtd"]


def test_process_without_netns_gets_its_own_mount_namespace():
    spec = procs.ProcessSpec("x", ("true",), Path("/l"), Path("/p"), binds=(procs.Bind(Path("/a"), "/b"),))
    assert procs.command_line(spec)[:4] == ["unshare", "--mount", "--propagation", "slave"]
    assert procs.command_line(procs.ProcessSpec("x", ("true",), Path("/l"), Path("/p"))) == ["true"]
