"""`netbind up` end to end (root): real namespaces, CNI plugins, sidecar processes, a private
libvirtd, passt and the tiny guest under TCG. Each test ends with a leak check: no namespace,
process, mount, socket, link or file of the run is left."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from netbind import _iproute as iproute
from netbind import naming
from netbind.api.loading import load_manifests
from netbind.node import guest, multus, netcheck, runtime, sandbox
from netbind.node.images import ImageMap
from netbind.review import validate
from netbind.api.versions import LATEST

from .conftest import require_node_runtime, wait_for_reports

HERE = Path(__file__).parent
EXAMPLES = HERE.parent.parent / "examples"
PASST_IMAGE = "quay.io/kubevirt/network-passt-binding"


class Recorder:
    """Progress that remembers the namespaces a run created (by inode: a deleted namespace that a
    leftover process keeps alive still shows up in /proc/*/ns/net)."""

    def __init__(self) -> None:
        self.phases: list[str] = []
        self.netns: dict[str, int] = {}

    def phase(self, name: str, seconds: float, detail: str) -> None:
        self.phases.append(name)
        if name == "sandbox":
            pod = detail.split()[-1]
            self.netns[pod] = os.stat(iproute.NETNS_DIR / pod).st_ino

    def note(self, kind: str, text: str) -> None:
        pass


class Run:
    def __init__(self, runtime_dir: Path) -> None:
        self.runtime = runtime_dir
        self.progress = Recorder()
        self.node_netns = sandbox.NodeNames(runtime_dir).netns

    def options(self, **kw) -> runtime.UpOptions:
        return runtime.UpOptions(runtime=self.runtime, wait=kw.pop("wait", True), wait_timeout=60, **kw)

    def up(self, manifests, **kw) -> runtime.UpResult:
        return runtime.up(manifests, self.options(**kw), self.progress)

    def node(self) -> sandbox.Node:
        node = sandbox.ensure_node(self.runtime)
        self.progress.netns[node.netns] = os.stat(iproute.NETNS_DIR / node.netns).st_ino
        with sandbox.node_lock(self.runtime):
            multus.ensure_world(node.journal, node.netns)
        return node

    def _ours(self, proc: Path) -> bool:
        """A freed namespace inode is reused by the next namespace anyone creates (other test runs on
        this machine): a holder is ours only if it names our runtime dir (argv, mounts, environment)."""
        marker = str(self.runtime).encode()
        for part in ("cmdline", "mountinfo", "environ"):
            try:
                if marker in (proc / part).read_bytes():
                    return True
            except OSError:
                continue
        return False

    def assert_nothing_left(self) -> None:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        names = {line.split()[0] for line in listed.splitlines() if line}
        assert not names & (set(self.progress.netns) | {self.node_netns}), "namespaces left"
        inodes = set(self.progress.netns.values())
        holders = []
        for ns in Path("/proc").glob("[0-9]*/ns/net"):
            try:
                if os.stat(ns).st_ino in inodes and self._ours(ns.parent.parent):
                    holders.append(ns.parent.parent.name)
            except OSError:
                continue
        assert not holders, f"processes left in the run's namespaces: {holders}"
        mounts = []
        for info in Path("/proc").glob("[0-9]*/mountinfo"):
            try:
                if str(self.runtime) in info.read_text():
                    mounts.append(info.parent.name)
            except OSError:
                continue
        assert not mounts, f"mounts of {self.runtime} left (in the mount namespaces of {mounts})"
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
        assert "nb-br0" not in links and "nbtestlow0" not in links and " nbl2" not in links
        assert not self.runtime.exists(), f"{self.runtime} left behind"


@pytest.fixture
def run(guest_image):
    require_node_runtime()
    require_node_binaries()
    path = Path("/run") / f"nb-up-{secrets.token_hex(3)}"
    r = Run(path)
    try:
        yield r
    finally:
        sandbox.down_all(path)
    r.assert_nothing_left()


def require_node_binaries() -> None:
    from netbind.testing import require_binary

    require_binary("passt", "passt")


def _reports(result: runtime.UpResult) -> list[guest.Report]:
    return guest.parse_reports(Path(runtime.load_state(result.pod)["console"]).read_text())


def _pod_address(pod: sandbox.Pod, ifname: str = "eth0") -> str:
    out = iproute.ip("-4", "-o", "addr", "show", "dev", ifname, netns=pod.netns)
    return out.split()[3].split("/")[0]


def _console(result):
    return lambda: Path(runtime.load_state(result.pod)["console"]).read_text()


def _interface(vmi: dict, name: str) -> dict:
    return next(i for i in vmi["status"]["interfaces"] if i["name"] == name)


# ---- passt ---------------------------------------------------------------------------------------

def test_passt_binding_leases_the_pod_address_and_talks_tcp_both_ways(run):
    node = run.node()
    server = netcheck.start_server(node.netns, multus.WORLD_ADDRESS, 9000, run.runtime / "node" / "server.log")
    try:
        result = run.up(load_manifests([EXAMPLES / "passt"]), passt="substitute",  # R6a (test_up_native: native)
                        guest_args=("nb.echo=8080", f"nb.probe={multus.WORLD_ADDRESS}:9000"))
        pod_ip = _pod_address(result.pod)
        lease = next(r for r in _reports(result) if r.word == "LEASE")
        assert (lease.fields["ip"], lease.fields["router"], lease.fields["mtu"]) == (pod_ip, "10.244.0.1", "65520")

        # guest -> node: out through passt, seen by the server as the pod's address
        reports = wait_for_reports(_console(result), lambda rs: any(r.word == "PROBE" for r in rs), timeout=20)
        probe = next(r for r in reports if r.word == "PROBE")
        assert probe.fields["ok"] == "yes" and probe.fields["reply"].startswith("nb-node-reply_nb-probe")
        assert server.seen() == [f"from {pod_ip}: nb-probe from vm-net-binding-passt"]
        # node -> guest: the VM's `ports` (8080) forwarded by passt to the guest's echo server
        assert netcheck.exchange(node.netns, pod_ip, 8080, "ping-from-node") == "ping-from-node"

        vmi = runtime.current_vmi(result.pod)
        assert vmi["kind"] == "VirtualMachineInstance" and vmi["status"]["phase"] == "Running"
        iface = _interface(vmi, "passtnet")
        assert iface["ipAddress"] == pod_ip and iface["podInterfaceName"] == "eth0"
        assert iface["interfaceName"] == "eth0" and iface["mac"] == lease.fields["mac"]
        assert iface["infoSource"] == "domain, guest-agent, multus-status"
        conditions = {c["type"]: c["status"] for c in vmi["status"]["conditions"]}
        assert conditions == {"Ready": "True", "LiveMigratable": "True"}
        # what was substituted is said, and the sidecar really ran the hook (its audit log)
        assert any("recipe R6a" in s and "tcp 8080" in s for s in result.substitutions)
        sidecar_log = (result.pod.names.logs_dir / "hook-sidecar-0.log").read_text()
        assert '"hook":"OnDefineDomain"' in sidecar_log.replace(" ", "")
        status = json.loads((result.pod.names.directory / "network-status.json").read_text())
        assert status[0]["interface"] == "eth0" and status[0]["ips"] == [pod_ip] and status[0]["default"]
        assert status[1] == {"name": "default/netbindingpasst", "dns": {}}   # no pod interface: none named
        # the passt CNI ran in the pod netns (KubeVirt's sysctls)
        sysctl = subprocess.run(["ip", "netns", "exec", result.pod.netns, "sysctl", "-n",
                                 "net.ipv4.ip_unprivileged_port_start"], capture_output=True, text=True)
        assert sysctl.stdout.strip() == "0"
    finally:
        server.stop()
    assert sandbox.down("vm-net-binding-passt", run.runtime) == [result.pod.netns]


# ---- macvtap (zero-code) and both on one VM ------------------------------------------------------

def test_macvtap_binding_on_a_secondary_network_gets_a_lease_from_the_lower_devices_l2(run):
    result = run.up(load_manifests([EXAMPLES / "macvtap"]))
    segment = multus.segment_for("eth0")
    vmi = result.vmi
    iface = _interface(vmi, "macvtapnet")
    assert iface["mac"] == "02:00:00:00:00:05"
    assert iface["podInterfaceName"].startswith("pod") and iface["ipAddress"].startswith(segment.subnet + ".")
    lease = next(r for r in _reports(result) if r.word == "LEASE")
    assert lease.fields["router"] == segment.gateway and lease.fields["mac"] == "02:00:00:00:00:05"
    # the CNI made a macvtap named pod<hash> with the VM's MAC in the pod netns, on the node's lower device
    link = json.loads(iproute.ip("-j", "-d", "link", "show", "dev", iface["podInterfaceName"],
                                netns=result.pod.netns))[0]
    assert link["linkinfo"]["info_kind"] == "macvtap" and link["address"] == "02:00:00:00:00:05"
    assert [p for p in run.progress.phases][-1] == "guest lease"


def test_passt_and_macvtap_on_one_vm(run):
    result = run.up(load_manifests([HERE / "manifests" / "both"]))
    reports = wait_for_reports(_console(result),
                               lambda rs: len([r for r in rs if r.word == "LEASE"]) >= 2, timeout=20)
    vmi = runtime.current_vmi(result.pod)
    passt, lan = _interface(vmi, "default"), _interface(vmi, "lan")
    assert passt["ipAddress"] == _pod_address(result.pod) and passt["podInterfaceName"] == "eth0"
    assert lan["mac"] == "02:00:00:00:0b:01"
    assert lan["ipAddress"].startswith(multus.segment_for("nbtestlow0").subnet + ".")
    assert {r.fields["mac"] for r in reports if r.word == "LEASE"} == {passt["mac"], lan["mac"]}
    assert any("deviceID nbtestlow0" in s for s in result.substitutions)


# ---- refusals and faults: nothing is created, or everything is removed ---------------------------

def test_unregistered_binding_fails_like_virt_controller_and_creates_nothing(run):
    manifests = load_manifests([HERE / "manifests" / "unregistered"])
    expected = validate(manifests, LATEST).findings[0].message   # KubeVirt's own words
    with pytest.raises(runtime.UpError) as failed:
        run.up(manifests)
    condition = failed.value.vmi["status"]["conditions"][0]
    assert (condition["type"], condition["status"], condition["reason"]) == ("Synchronized", "False", "FailedCreate")
    assert condition["message"] == expected and "nosuchbinding" in expected
    assert run.progress.phases == ["validate"] and not run.runtime.exists()

    # the CLI says the same and exits 1
    cli = subprocess.run([sys.executable, "-m", "netbind.cli", "up", "-f", str(HERE / "manifests" / "unregistered"),
                          "-o", "json"], capture_output=True, text=True,
                         env={**os.environ, "NETBIND_RUNTIME_DIR": str(run.runtime)})
    assert cli.returncode == 1
    assert json.loads(cli.stdout)["vmi"]["status"]["conditions"][0]["message"] == expected


def _sidecar_map(tmp_path: Path, command: list[str]) -> ImageMap:
    path = tmp_path / "images.yaml"
    path.write_text(json.dumps({"sidecars": {PASST_IMAGE: {"command": command}}}))
    return ImageMap.load(path)


@pytest.mark.parametrize("case", ["crash", "no-socket", "bad-xml"])
def test_failing_sidecar_reports_its_log_and_the_hook_error_and_leaves_nothing(run, tmp_path, case):
    command = {
        "crash": ["/bin/sh", "-c", "sleep 0.2; echo 'sidecar: cannot load plugin config' >&2; exit 3"],
        "no-socket": ["/bin/sh", "-c", "echo 'sidecar: waiting for nothing' >&2; exec sleep 60"],
        "bad-xml": [sys.executable, str(HERE / "helpers" / "bad_xml_sidecar.py")],
    }[case]
    with pytest.raises(runtime.UpError) as failed:
        run.up(load_manifests([EXAMPLES / "passt"]), images=_sidecar_map(tmp_path, command), socket_timeout=1.5)
    text = str(failed.value)
    assert failed.value.phase in ("sidecars+libvirtd", "hooks")
    if case == "crash":
        assert "exited before it served its hook socket" in text and "cannot load plugin config" in text
    elif case == "no-socket":
        assert "did not open a hook socket" in text and "waiting for nothing" in text
    else:
        assert "Failed to unmarshal given domain spec" in text and "answering a truncated domain" in text
    assert "sandbox" in run.progress.phases  # something was created, and then removed (leak check)


def test_cni_failure_mid_chain_deletes_what_was_added_in_reverse(run, tmp_path):
    log = tmp_path / "cni.log"
    folder = tmp_path / "manifests"
    folder.mkdir()
    text = (HERE / "manifests" / "cni-chain" / "all.yaml").read_text().replace("@LOG@", str(log))
    (folder / "all.yaml").write_text(text)
    images = ImageMap.load()
    images.cni["nb-recorder"] = str(HERE / "helpers" / "recorder.py")
    pod_network = multus.default_pod_network(run.runtime / "node" / "ipam")
    pod_network["plugins"].append({"type": "nb-recorder", "log": str(log)})
    with pytest.raises(runtime.UpError) as failed:
        run.up(load_manifests([folder]), images=images, pod_network=pod_network)
    assert "nb-recorder: told to fail" in str(failed.value) and failed.value.phase == "network"
    one, two = naming.hashed_interface_name("one"), naming.hashed_interface_name("two")
    assert log.read_text().splitlines() == [
        "ADD eth0 netbind-pod-network",
        f"ADD {one} first",
        f"ADD {two} second",
        f"ADD {two} second fail",
        # the executor undoes the failing list itself, newest plugin first ...
        f"DEL {two} second fail",
        f"DEL {two} second",
        # ... then the runtime DELs the earlier attachments, newest first
        f"DEL {one} first",
        "DEL eth0 netbind-pod-network",
    ]
