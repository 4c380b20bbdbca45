"""`netbind up` with hook sidecars as real containers (root, podman): the images built from deploy/,
run with the container spec the launcher pod gives them; a missing image, a crashing container and
a sidecar that never serves fail naming container and image; kill -9 of `up` leaves nothing that
`down` does not remove; the compute container's limits land on libvirtd and QEMU as cgroups."""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from netbind import _iproute as iproute
from netbind import _podman
from netbind.api.loading import load_manifests
from netbind.node import containers, multus, netcheck, runtime, sandbox
from netbind.node.images import ImageMap
from netbind.node.journal import Journal

from .conftest import wait_for_reports
from .test_up import EXAMPLES, Run, _console, _pod_address, _reports, require_node_binaries
from .conftest import require_node_runtime

PASST_REF = "quay.io/kubevirt/network-passt-binding"


class ContainerRun(Run):
    """A run whose leak check also covers podman containers and cgroups of its pods."""

    def __init__(self, runtime_dir: Path) -> None:
        super().__init__(runtime_dir)
        self.pods: set[str] = set()

    def up(self, manifests, **kw) -> runtime.UpResult:
        kw.setdefault("sidecars", "container")
        try:
            result = runtime.up(manifests, self.options(**kw), self.progress)
        finally:
            self.pods |= {n for n in self.progress.netns if n != self.node_netns}
        return result

    def assert_nothing_left(self) -> None:
        super().assert_nothing_left()
        for netns in self.pods:
            assert containers.list_containers(netns) == [], f"containers of {netns} left"
            for controller in ("cpu", "memory"):
                assert not _cgroup_dir(controller, netns).exists(), f"{controller} cgroup of {netns} left"


@pytest.fixture
def crun(guest_image, built_images):
    require_node_runtime()
    require_node_binaries()
    path = Path("/run") / f"nb-uc-{secrets.token_hex(3)}"
    r = ContainerRun(path)
    try:
        yield r
    finally:
        sandbox.down_all(path)
    r.assert_nothing_left()


def _inspect(name: str) -> dict:
    return json.loads(_podman.run("container", "inspect", name).stdout)[0]


def _status_field(pid: int, key: str) -> str:
    line = next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith(key + ":"))
    return line.split(":", 1)[1].split()[0]


def _cgroup_dir(controller: str, netns: str) -> Path:
    own = next(l.split(":", 2)[2] for l in Path("/proc/self/cgroup").read_text().splitlines()
               if controller in l.split(":")[1].split(","))
    return Path("/sys/fs/cgroup") / controller / own.lstrip("/") / f"netbind-{netns}"


def _qemu_pid(netns: str) -> int:
    for pid in iproute.netns_pids(netns):
        try:
            if b"qemu-system" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]:
                return pid
        except OSError:
            continue
    raise AssertionError(f"no QEMU in {netns}")


def _tcp_both_ways(crun: ContainerRun, example: str, **kw) -> tuple[runtime.UpResult, str]:
    node = crun.node()
    server = netcheck.start_server(node.netns, multus.WORLD_ADDRESS, 9000, crun.runtime / "node" / "server.log")
    try:
        result = crun.up(load_manifests([EXAMPLES / example]),
                         guest_args=("nb.echo=8080", f"nb.probe={multus.WORLD_ADDRESS}:9000"), **kw)
        pod_ip = _pod_address(result.pod)
        lease = next(r for r in _reports(result) if r.word == "LEASE")
        assert lease.fields["ip"] == pod_ip
        reports = wait_for_reports(_console(result), lambda rs: any(r.word == "PROBE" for r in rs), timeout=20)
        assert next(r for r in reports if r.word == "PROBE").fields["ok"] == "yes"
        assert server.seen() and server.seen()[0].startswith(f"from {pod_ip}: nb-probe")
        assert netcheck.exchange(node.netns, pod_ip, 8080, "ping-from-node") == "ping-from-node"
    finally:
        server.stop()
    return result, pod_ip


def test_passt_sidecar_runs_as_its_image_with_the_pods_container_spec(crun, built_images):
    result, _ = _tcp_both_ways(crun, "passt")
    pod = result.pod
    assert result.sidecars == [f"hook-sidecar-0: image {PASST_REF}:20231205_29a16d5c9 -> container of"
                               f" {built_images['passt'].tag} [image map {PASST_REF} (netbind default image map);"
                               " in the local image store]"]
    name = f"{pod.netns}-hook-sidecar-0"
    info = _inspect(name)
    assert info["State"]["Running"] and info["Config"]["User"] == "107:107"
    assert info["HostConfig"]["NetworkMode"] == f"ns:/run/netns/{pod.netns}"
    assert "no-new-privileges" in info["HostConfig"]["SecurityOpt"] and not info["HostConfig"]["CapAdd"]
    assert {"CAP_KILL", "CAP_CHOWN", "CAP_NET_BIND_SERVICE"} <= set(info["HostConfig"]["CapDrop"])  # podman lists its defaults
    assert not info["HostConfig"]["ReadonlyRootfs"]
    mounts = {m["Destination"]: m["Source"] for m in info["Mounts"]}
    assert mounts == {"/var/run/kubevirt-hooks": str(pod.names.hooks_dir / "hook-sidecar-0")}
    env = dict(e.split("=", 1) for e in info["Config"]["Env"])
    assert env["CONTAINER_NAME"] == "hook-sidecar-0" and env["NETWORK_BINDING_PLUGIN_NAME"] == "passt"
    # the sidecar itself: UID 107, no capabilities, in the pod's network namespace
    pid = info["State"]["Pid"]
    assert _status_field(pid, "Uid") == "107" and int(_status_field(pid, "CapEff"), 16) == 0
    assert _status_field(pid, "NoNewPrivs") == "1"
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(iproute.NETNS_DIR / pod.netns).st_ino
    log = containers.cri_log_text((pod.names.logs_dir / "hook-sidecar-0.log").read_text())
    assert '"event":"serving"' in log and '"hook":"OnDefineDomain"' in log
    # the compute container's requests.cpu on libvirtd and its QEMU; the memory request limits nothing
    cpu = _cgroup_dir("cpu", pod.netns)
    assert (cpu / "cpu.shares").read_text().strip() == "102"
    assert str(_qemu_pid(pod.netns)) in (cpu / "cgroup.procs").read_text().split()
    assert "compute (libvirtd + QEMU): requests.cpu 100m -> cpu.shares 102" in result.limits
    assert any("computeResourceOverhead 500Mi" in line for line in result.limits)
    assert sandbox.down("vm-net-binding-passt", crun.runtime) == [pod.netns]
    assert _podman.container_state(name) is None and not cpu.exists()


def test_bridge_sidecar_container_serves_dhcp_as_uid_107(crun, built_images):
    result, pod_ip = _tcp_both_ways(crun, "bridge-plugin")
    assert "container of localhost/netbind-bridge-sidecar:latest" in result.sidecars[0]
    log = containers.cri_log_text((result.pod.names.logs_dir / "hook-sidecar-0.log").read_text())
    assert "v4 ACK" in log                                   # the lease _tcp_both_ways checked came from it
    pid = _inspect(f"{result.pod.netns}-hook-sidecar-0")["State"]["Pid"]
    assert _status_field(pid, "Uid") == "107" and int(_status_field(pid, "CapEff"), 16) == 0


def _map(tmp_path: Path, image: str, command: bool = True) -> ImageMap:
    entry = {"image": image, **({"command": ["netbind-passt-sidecar"]} if command else {})}
    path = tmp_path / "images.yaml"
    path.write_text(yaml.safe_dump({"sidecars": {PASST_REF: entry}}))
    return ImageMap.load(path)


def test_missing_image_fails_before_anything_is_made(crun, tmp_path):
    with pytest.raises(runtime.UpError) as failed:
        crun.up(load_manifests([EXAMPLES / "passt"]), images=_map(tmp_path, "localhost/nb-test-missing:absent"))
    assert failed.value.phase == "images"
    assert failed.value.message.startswith(f"sidecar hook-sidecar-0 (image {PASST_REF}:20231205_29a16d5c9) cannot"
                                           f" run as a container: neither {PASST_REF}:20231205_29a16d5c9 nor"
                                           " localhost/nb-test-missing:absent (image map)")
    # auto falls back to the image map's command, and says why
    result = crun.up(load_manifests([EXAMPLES / "passt"]), images=_map(tmp_path, "localhost/nb-test-missing:absent"),
                     sidecars="auto", wait=False)
    assert "-> host process" in result.sidecars[0] and "neither " + PASST_REF + ":20231205_29a16d5c9 nor localhost/nb-test-missing:absent (image map) is in" \
        in result.sidecars[0]


@pytest.fixture
def broken_images(built_images, tmp_path_factory):
    """Two images from the passt sidecar's: one exits at once with a message, one never serves."""
    tag = secrets.token_hex(3)
    made = {}
    for kind, code in (("crash", "print('nb-test sidecar crashing on purpose', flush=True); raise SystemExit(3)"),
                       ("silent", "import time; print('nb-test sidecar never serving', flush=True); time.sleep(600)")):
        ref = f"localhost/nb-test-{kind}:{tag}"
        containerfile = (f"FROM {built_images['passt'].tag}\n"
                         f'ENTRYPOINT ["/usr/bin/python3", "-c", {json.dumps(code)}]\n')
        context = tmp_path_factory.mktemp(f"nb-{kind}")
        (context / "Containerfile").write_text(containerfile)
        _podman.run("build", "--pull=never", "--network", "none", "-t", ref, str(context))
        made[kind] = ref
    yield made
    for ref in made.values():
        _podman.remove_image(ref)


def test_crashing_container_fails_naming_container_and_image_and_leaves_nothing(crun, tmp_path, broken_images):
    with pytest.raises(runtime.UpError) as failed:
        crun.up(load_manifests([EXAMPLES / "passt"]), images=_map(tmp_path, broken_images["crash"], command=False))
    text = str(failed.value)
    # it dies before `podman run` returns or while virt-launcher collects sockets: both say so
    assert text.startswith(f"sidecar container hook-sidecar-0 (image {broken_images['crash']}) exited at once"
                           " (exit code 3)") or \
        text.startswith(f"sidecar hook-sidecar-0 (image {PASST_REF}:20231205_29a16d5c9, container) exited before")
    assert "nb-test sidecar crashing on purpose" in text


def test_container_that_never_serves_times_out_naming_it(crun, tmp_path, broken_images):
    with pytest.raises(runtime.UpError) as failed:
        crun.up(load_manifests([EXAMPLES / "passt"]), images=_map(tmp_path, broken_images["silent"], command=False),
                socket_timeout=3)
    assert failed.value.message.startswith(f"hook-sidecar-0 (image {PASST_REF}:20231205_29a16d5c9) did not open a"
                                           " hook socket")
    assert "within 3 s" in failed.value.message and "nb-test sidecar never serving" in failed.value.details


def test_kill_9_after_the_container_started_leaves_only_what_down_removes(crun):
    env = dict(os.environ, NETBIND_RUNTIME_DIR=str(crun.runtime), NETBIND_SIDECARS="container")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "netbind"), "up", "-f", str(EXAMPLES / "passt"), "--wait"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        journal = None
        while time.monotonic() < deadline and journal is None:
            for path in (crun.runtime / "pods").glob("*/journal.json"):
                candidate = Journal(path.parent)
                if any(e.kind == "container" and e.state == "created" for e in candidate.entries):
                    journal = candidate
            time.sleep(0.02)
        assert journal is not None, "up never started the sidecar container"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    netns = journal.meta["netns"]
    crun.pods.add(netns)
    assert containers.list_containers(netns) == [f"{netns}-hook-sidecar-0"]   # it outlived up
    assert sandbox.down_all(crun.runtime) == [netns]
    assert containers.list_containers(netns) == []


def test_compute_limits_become_memory_and_cpu_limits_on_libvirtd_and_qemu(crun, tmp_path):
    from netbind.controller import render_launcher_pod
    from netbind.review import configuration

    example = tmp_path / "passt"
    example.mkdir()
    for f in (EXAMPLES / "passt").iterdir():
        (example / f.name).write_text(f.read_text())
    vm = yaml.safe_load((example / "vm.yaml").read_text())
    vm["spec"]["template"]["spec"]["domain"]["resources"] = {"requests": {"memory": "1024M", "cpu": "500m"},
                                                             "limits": {"memory": "1024M", "cpu": "1"}}
    (example / "vm.yaml").write_text(yaml.safe_dump(vm))
    manifests = load_manifests([example])
    compute = next(c for c in render_launcher_pod(manifests.vmi, configuration(manifests), nads=manifests.nads)
                   ["spec"]["containers"] if c["name"] == "compute")
    want = containers.cgroup_settings(compute["resources"])
    result = crun.up(manifests, sidecars="process")
    memory, cpu = _cgroup_dir("memory", result.pod.netns), _cgroup_dir("cpu", result.pod.netns)
    limit = int((memory / "memory.limit_in_bytes").read_text())
    assert want["memory"] - 4096 < limit <= want["memory"]            # the kernel rounds down to a page
    assert want["memory"] > 1024 * 10**6                                # the overhead is in the limit
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "100000"
    assert (cpu / "cpu.shares").read_text().strip() == "512"
    qemu = str(_qemu_pid(result.pod.netns))
    assert qemu in (memory / "cgroup.procs").read_text().split() and qemu in (cpu / "cgroup.procs").read_text().split()
    assert any(f"limits.memory {compute['resources']['limits']['memory']} -> memory.limit_in_bytes" in line
               for line in result.limits)
