"""The reference cloud guest booted from its disk: the user guide's VM, unchanged, through passt;
cloud-init applies its networkData; after `netbind migrate` systemd-networkd renews on the
link-refresh and the guest takes the target pod's address. Plus the pure parts (MBR, image map)."""
from __future__ import annotations

import os
import shutil
import struct
import time
from pathlib import Path

import pytest

from netbind.node import cloud_guest
from netbind.node.images import ImageMap, ImageMapError

REPO = Path(__file__).resolve().parents[2]
FEDORA = "quay.io/kubevirt/fedora-with-test-tooling-container-disk:v1.1.0"


def _root_or_fail() -> None:
    if os.geteuid() != 0:
        pytest.fail("CI=true: the cloud guest tests need root (netns, libvirt)")


needs_root = pytest.mark.skipif(os.geteuid() != 0 and os.environ.get("CI") != "true", reason="needs root")


def test_the_mbr_has_grubs_boot_code_one_active_linux_partition_and_the_signature():
    boot = bytes(range(256)) * 2
    sector = cloud_guest.mbr(boot, 2048, 4194304)
    assert len(sector) == 512 and sector[:440] == boot[:440] and sector[510:] == b"\x55\xaa"
    status, _, kind, _, start, count = struct.unpack("<B3sB3sII", sector[446:462])
    assert (status, kind, start, count) == (0x80, 0x83, 2048, 4194304)
    assert sector[462:510] == bytes(48)          # the other three entries are empty


def test_the_default_map_boots_the_user_guides_fedora_image_as_the_cloud_guest(tmp_path):
    images = ImageMap.load()
    assert images.disk(FEDORA).boots_disk and images.disk(FEDORA).guest == "cloud"
    assert not images.disk("quay.io/kubevirt/alpine-container-disk-demo:v1.4.0").boots_disk
    assert not images.disk(FEDORA, guest="tiny").boots_disk


def test_a_disk_entry_naming_a_missing_file_says_which_and_how(tmp_path):
    mapping = tmp_path / "images.yaml"
    mapping.write_text(f"containerDisks:\n  {FEDORA.split(':')[0]}:\n    disk: {tmp_path}/nope.qcow2\n")
    with pytest.raises(ImageMapError, match=r"nope.qcow2.*does not exist; give the path of a qcow2 or raw"):
        ImageMap.load(mapping).disk(FEDORA)
    mapping.write_text(f"containerDisks:\n  x:\n    guest: fedora\n")
    with pytest.raises(ImageMapError, match="guest: 'fedora' is not a guest; expected one of tiny, cloud"):
        ImageMap.load(mapping)


def _cloud_init_vmi(source: dict, kind: str = "cloudInitNoCloud"):
    from netbind.api.models import VirtualMachineInstance

    return VirtualMachineInstance.model_validate({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": "vm1", "namespace": "ns1"},
        "spec": {"domain": {"devices": {"disks": [{"name": "containerdisk", "disk": {"bus": "virtio"}},
                                                  {"name": "cloudinitdisk", "disk": {"bus": "virtio"}}]}},
                 "volumes": [{"name": "containerdisk", "containerDisk": {"image": FEDORA}},
                             {"name": "cloudinitdisk", kind: source}]}})


@pytest.mark.parametrize("network, problem", [
    ("version: 2\nethernets:\n  eth0:\n dhcp4: true\n", r"networkData: not YAML at line \d"),
    ("- eth0\n", "networkData: a list, not a mapping"),
    ("ethernets: {eth0: {dhcp4: true}}\n", "networkData: version None, cloud-init knows 1 and 2"),
    ("version: 3\n", "networkData: version 3"),
    ("version: 2\nethernets: [eth0]\n", "networkData: ethernets is a list, not a mapping of interface names"),
])
def test_network_data_cloud_init_would_not_apply_is_refused_naming_the_volume(network, problem):
    from netbind.launcher import disks
    from netbind.node import guest_disks

    vmi = _cloud_init_vmi({"networkData": network})
    with pytest.raises(guest_disks.GuestDiskError, match=r"^spec\.volumes\[1\]\.cloudInitNoCloud\." + problem) as err:
        guest_disks.check_network_config(vmi, disks.cloud_init_image(vmi))
    assert "e.g. version: 2, ethernets: {eth0: {dhcp4: true}}" in str(err.value)


def test_network_data_cloud_init_applies_passes_in_both_sources():
    from netbind.launcher import disks
    from netbind.node import guest_disks

    for source, kind in [({"networkData": "version: 2\nethernets: {eth0: {dhcp4: true}}\n"}, "cloudInitNoCloud"),
                         ({"networkData": "network:\n  version: 1\n  config: []\n"}, "cloudInitNoCloud"),
                         ({"userData": "#cloud-config\n"}, "cloudInitNoCloud"),
                         ({"networkData": '{"links": [], "networks": []}'}, "cloudInitConfigDrive")]:
        vmi = _cloud_init_vmi(source, kind)
        guest_disks.check_network_config(vmi, disks.cloud_init_image(vmi))
    vmi = _cloud_init_vmi({"networkData": "links: []"}, "cloudInitConfigDrive")
    with pytest.raises(guest_disks.GuestDiskError, match=r"cloudInitConfigDrive\.networkData: not JSON"):
        guest_disks.check_network_config(vmi, disks.cloud_init_image(vmi))


def test_a_users_own_disk_is_ready_when_cloud_init_finished_or_a_login_is_offered():
    from netbind.node.runtime import user_disk_ready

    booting = "[  OK  ] Started cloud-final.service\nCloud-init v. 22.4.2 running 'modules:final'\n"
    assert user_disk_ready(booting) == ""
    done = booting + ("[   36.42] cloud-init[381]: Cloud-init v. 22.4.2 finished at Mon, 07 Dec 2026 17:20:01 +0000. Datasource"
                      " DataSourceNoCloud [seed=/dev/vdb][dsmode=net].  Up 41.20 seconds\n")
    assert user_disk_ready(done).startswith("Cloud-init v. 22.4.2 finished at Mon, 07 Dec 2026")
    # getty's prompt comes before cloud-init's last stage: it counts only without cloud-init
    assert user_disk_ready("Debian GNU/Linux 12 vm1 ttyS0\n\nvm1 login: [   35.99] cloud-init[381]: ...") == ""
    assert user_disk_ready("Welcome to Alpine\nvm1 login: ", cloud_init=False) == "vm1 login:"
    assert user_disk_ready("Last login: yesterday\n", cloud_init=False) == ""


@needs_root
def test_the_user_guide_vm_boots_the_cloud_guest_leases_the_pod_address_and_renews_after_migration(tmp_path):
    _root_or_fail()
    from netbind.api.loading import load_manifests
    from netbind.node import guest, migrate, runtime, sandbox

    run_dir = Path(f"/run/nb-cg-{os.urandom(3).hex()}")
    try:
        result = runtime.up(load_manifests([REPO / "examples" / "passt"]),
                            runtime.UpOptions(runtime=run_dir, wait=True, guest="cloud"))
        assert any("netbind cloud guest" in s and "booted from its disk" in s for s in result.substitutions)
        state = runtime.load_state(result.pod)
        console = Path(state["console"])
        reports = guest.parse_reports(console.read_text(errors="replace"))
        lease = next(r for r in reports if r.word == "LEASE")
        pod_ip = state["networkStatus"][0]["ips"][0]
        # cloud-init's networkData (dhcp4 on eth0) applied by systemd-networkd; passt's DHCP
        assert (lease.fields["iface"], lease.fields["ip"], lease.fields["mtu"]) == ("eth0", pod_ip, "65520")
        assert "finished at" in console.read_text(errors="replace")     # cloud-init ran to its end
        assert state["disks"]["overlays"][0]["path"].endswith("/disk-data/containerdisk/disk.qcow2")

        moved = migrate.migrate("vm-net-binding-passt", migrate.MigrateOptions(runtime=run_dir, wait=True,
                                                                            wait_timeout=60))
        # networkd dropped the lease on the link-refresh and took the target pod's address
        assert moved.lease["ip"].startswith("10.244.1.") and moved.lease["ip"] != pod_ip
        assert moved.vmi["status"]["interfaces"][0]["ipAddress"] == moved.lease["ip"]
    finally:
        sandbox.down_all(run_dir)
    assert not run_dir.exists() or not any(p for p in run_dir.iterdir() if p.name != ".lock")


# ---- the cloud guest with more than the user guide: two NICs, TCP, your own disk, failures --------

TWO_NICS = """\
apiVersion: kubevirt.io/v1
kind: KubeVirt
metadata: {name: kubevirt, namespace: kubevirt}
spec:
  configuration:
    network:
      binding:
        passt:
          networkAttachmentDefinition: default/netbindingpasst
          sidecarImage: quay.io/kubevirt/network-passt-binding:20231205_29a16d5c9
          migration: {method: link-refresh}
        netbind-bridge:
          networkAttachmentDefinition: default/netbind-bridge-binding
          sidecarImage: quay.io/netbind/bridge-binding-sidecar:v0.1.0
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: netbindingpasst, namespace: default}
spec:
  config: '{"cniVersion": "1.0.0", "name": "netbindingpasst", "plugins": [{"type": "cni-passt-binding-plugin"}]}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: netbind-bridge-binding, namespace: default}
spec:
  config: '{"cniVersion": "1.0.0", "name": "netbind-bridge-binding", "plugins": [{"type": "netbind-bridge-binding"}]}'
---
# the second network: Debian's bridge CNI on a node bridge, host-local addresses
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: lan, namespace: default}
spec:
  config: '{"cniVersion": "1.0.0", "name": "lan", "plugins": [{"type": "bridge", "bridge": "nbcglan0",
            "isGateway": true, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.251.7.0/24"}]],
            "dataDir": "@IPAM@"}}]}'
---
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: vmi-cloud-two-nics, namespace: default}
spec:
  domain:
    devices:
      disks:
      - {name: containerdisk, disk: {bus: virtio}}
      - {name: cloudinitdisk, disk: {bus: virtio}}
      interfaces:
      - name: passtnet
        binding: {name: passt}
        ports: [{name: echo, port: 8080}]
        macAddress: "02:00:00:00:0e:00"
      - name: lan
        binding: {name: netbind-bridge}
        macAddress: "02:00:00:00:0e:01"
    resources: {requests: {memory: 1024M}}
  networks:
  - {name: passtnet, pod: {}}
  - {name: lan, multus: {networkName: lan}}
  volumes:
  - name: containerdisk
    containerDisk: {image: "quay.io/kubevirt/fedora-with-test-tooling-container-disk:v1.1.0"}
  - name: cloudinitdisk
    cloudInitNoCloud:
      networkData: |
        version: 2
        ethernets:
          # by MAC: each sidecar adds its own <interface>, so the guest's NIC order is theirs
          pod:
            match: {macaddress: "02:00:00:00:0e:00"}
            dhcp4: true
          lan:
            match: {macaddress: "02:00:00:00:0e:01"}
            dhcp4: true
      userData: |
        #cloud-config
        runcmd:
        - [bash, -c, 'exec 3<>/dev/tcp/198.18.0.1/9000; echo "nb-probe from the cloud guest" >&3; read -r reply <&3; echo "NB: PROBE ok=yes reply=${reply// /_}" > /dev/ttyS0']
"""


@needs_root
def test_two_nics_lease_by_dhcp_from_passt_and_the_bridge_plugin_and_tcp_works_both_ways(tmp_path):
    """cloud-init applies networkData to both NICs (the second matched by MAC); systemd-networkd
    takes the pod address from passt on eth0 and the secondary network's address from the bridge
    binding plugin's DHCP server on eth1; user data reaches the node through passt; the node
    reaches the guest through passt's forwarded port and straight over the second network."""
    _root_or_fail()
    from netbind.api.loading import load_manifests
    from netbind.node import guest, multus, netcheck, runtime, sandbox
    from netbind.testing.leaks import LeakChecker

    (tmp_path / "vm").mkdir()
    (tmp_path / "vm" / "all.yaml").write_text(TWO_NICS.replace("@IPAM@", str(tmp_path / "ipam")))
    run_dir = Path(f"/run/nb-cg-{os.urandom(3).hex()}")
    checker = LeakChecker(run_dir)
    server = None
    try:
        node = sandbox.ensure_node(run_dir)
        multus.ensure_world(node.journal, node.netns)
        server = netcheck.start_server(node.netns, multus.WORLD_ADDRESS, 9000, tmp_path / "server.log")
        result = runtime.up(load_manifests([tmp_path / "vm"]),
                            runtime.UpOptions(runtime=run_dir, wait=True, guest="cloud"))
        checker.note()
        state = runtime.load_state(result.pod)
        reports = guest.parse_reports(Path(state["console"]).read_text(errors="replace"))
        leases = {r.fields["mac"]: r.fields for r in reports if r.word == "LEASE"}
        pod_ip = state["networkStatus"][0]["ips"][0]
        vmi = runtime.current_vmi(result.pod)
        lan = next(i for i in vmi["status"]["interfaces"] if i["name"] == "lan")
        assert lan["ipAddress"].startswith("10.251.7."), lan
        assert leases["02:00:00:00:0e:01"]["ip"] == lan["ipAddress"]
        assert leases["02:00:00:00:0e:01"]["router"] == ""          # the second network routes nothing
        assert leases["02:00:00:00:0e:00"]["ip"] == pod_ip
        assert leases["02:00:00:00:0e:00"]["mtu"] == "65520"         # passt's
        assert {l["iface"] for l in leases.values()} == {"eth0", "eth1"}

        # guest -> node (user data, through passt): the node sees the pod's address
        probe = next(r for r in reports if r.word == "PROBE")
        assert probe.fields["reply"] == "nb-node-reply_nb-probe_from_the_cloud_guest"
        assert server.seen() == [f"from {pod_ip}: nb-probe from the cloud guest"]
        # node -> guest: the forwarded port through passt, and the second network directly
        assert netcheck.exchange(node.netns, pod_ip, 8080, "via passt") == "via passt"
        assert netcheck.exchange(node.netns, lan["ipAddress"], 7, "via the bridge plugin") == "via the bridge plugin"
    finally:
        if server is not None:
            server.stop()
        checker.note()
        sandbox.down_all(run_dir)
    assert checker.leaks() == []
    assert not run_dir.exists() or not any(p for p in run_dir.iterdir() if p.name != ".lock")


def _own_disk_map(tmp_path: Path, disk: Path, monkeypatch) -> ImageMap:
    monkeypatch.delenv("NETBIND_GUEST", raising=False)   # the suite's tiny-guest default would win over the map
    mapping = tmp_path / "images.yaml"
    mapping.write_text(f"containerDisks:\n  {FEDORA.split(':')[0]}:\n    disk: {disk}\n")
    return ImageMap.load(mapping)


def _user_guide_vm(tmp_path: Path, **cloud_init) -> Path:
    """examples/passt with the cloudInitNoCloud source replaced."""
    import yaml

    (tmp_path / "vm").mkdir(exist_ok=True)
    for name in ("kubevirt.yaml", "nad.yaml"):
        (tmp_path / "vm" / name).write_text((REPO / "examples" / "passt" / name).read_text())
    vm = yaml.safe_load((REPO / "examples" / "passt" / "vm.yaml").read_text())
    volume = next(v for v in vm["spec"]["template"]["spec"]["volumes"] if "cloudInitNoCloud" in v)
    volume["cloudInitNoCloud"] = cloud_init
    (tmp_path / "vm" / "vm.yaml").write_text(yaml.safe_dump(vm))
    return tmp_path / "vm"


@needs_root
def test_your_own_disk_boots_through_an_overlay_and_status_shows_its_guest_agents_addresses(tmp_path, monkeypatch):
    """A disk of the user's (here the cloud guest's file, with its console reports removed by user
    data, as a stranger's image would have none) is booted unchanged; its QEMU guest agent tells
    the addresses: `up --wait` waits for the NIC's, `status` (text and -o json) shows them matched
    by MAC with KubeVirt's infoSource, and `migrate --wait` waits for the target pod's address
    after link-refresh. The file is never written."""
    _root_or_fail()
    import json

    from click.testing import CliRunner

    from netbind.api.loading import load_manifests
    from netbind.cli import cli
    from netbind.node import migrate, runtime, sandbox

    disk = cloud_guest.ensure_cloud_guest().disk
    before = disk.stat().st_mtime_ns, disk.stat().st_size
    vm = _user_guide_vm(tmp_path, networkData="version: 2\nethernets:\n  eth0:\n    dhcp4: true\n",
                        userData="#cloud-config\nbootcmd:\n- [systemctl, stop, nb-report.service]\n"
                                 "- [rm, -f, /usr/local/sbin/nb-report]\n")
    run_dir = Path(f"/run/nb-cg-{os.urandom(3).hex()}")
    try:
        result = runtime.up(load_manifests([vm]), runtime.UpOptions(
            runtime=run_dir, wait=True, wait_timeout=240, images=_own_disk_map(tmp_path, disk, monkeypatch)))
        assert any(f"your disk {disk}" in s for s in result.substitutions)
        state = runtime.load_state(result.pod)
        console = Path(state["console"]).read_text(errors="replace")
        # nb-report may say its first LEASE before bootcmd stops it, but nothing after: no READY, and
        # no word of the target's address below
        assert "NB: READY" not in console
        pod_ip = state["networkStatus"][0]["ips"][0]
        # up --wait ended on the guest agent's address for the NIC (passt hands the guest the pod's)
        waited = next(p for p in result.phases if p["phase"] == "guest lease")
        nic = state["nics"][0]
        assert waited["detail"] == f"guest agent: {nic['name']} {pod_ip}", waited

        env = {"NETBIND_RUNTIME_DIR": str(run_dir)}
        shown = CliRunner().invoke(cli, ["status", "vm-net-binding-passt", "-o", "json"], env=env)
        assert shown.exit_code == 0, shown.output
        default = json.loads(shown.output)["status"]["interfaces"][0]
        assert (default["name"], default["mac"]) == (nic["name"], nic["mac"])
        assert (default["interfaceName"], default["ipAddress"]) == ("eth0", pod_ip), default
        assert default["ipAddresses"][0] == pod_ip
        assert default["infoSource"] == "domain, guest-agent, multus-status"
        text = CliRunner().invoke(cli, ["status", "vm-net-binding-passt"], env=env)
        assert text.exit_code == 0, text.output
        assert f"interface {nic['name']}: mac {nic['mac']} ip {pod_ip}" in text.output, text.output
        assert "guest eth0" in text.output and "(domain, guest-agent, multus-status)" in text.output

        moved = migrate.migrate("vm-net-binding-passt", migrate.MigrateOptions(runtime=run_dir, wait=True,
                                                                            wait_timeout=90))
        # networkd dropped the lease on the link-refresh and took the target pod's; the agent says so
        target_ip = runtime.load_state(moved.target)["networkStatus"][0]["ips"][0]
        assert target_ip.startswith("10.244.1.") and target_ip != pod_ip
        assert (moved.lease["source"], moved.lease["iface"], moved.lease["ip"]) == ("guest-agent", "eth0", target_ip)
        assert moved.vmi["status"]["interfaces"][0]["ipAddress"] == target_ip
        assert not any("--wait" in s for s in runtime.load_state(moved.target)["substitutions"])
    finally:
        sandbox.down_all(run_dir)
    assert (disk.stat().st_mtime_ns, disk.stat().st_size) == before
    assert not run_dir.exists() or not any(p for p in run_dir.iterdir() if p.name != ".lock")


@needs_root
def test_your_own_disk_without_a_guest_agent_waits_for_cloud_init_and_says_so(tmp_path, monkeypatch):
    """The same disk with its guest agent masked: nothing tells the addresses, so `up --wait` ends
    on cloud-init's final line, `status` shows no guest data (no error, no wait), and `migrate
    --wait` ends with the migration and says why."""
    _root_or_fail()
    from netbind.api.loading import load_manifests
    from netbind.node import migrate, runtime, sandbox

    disk = cloud_guest.ensure_cloud_guest().disk
    vm = _user_guide_vm(tmp_path, networkData="version: 2\nethernets:\n  eth0:\n    dhcp4: true\n",
                        userData="#cloud-config\nbootcmd:\n- [systemctl, stop, nb-report.service]\n"
                                 "- [rm, -f, /usr/local/sbin/nb-report]\n"
                                 "- [systemctl, mask, --now, qemu-guest-agent.service]\n")
    run_dir = Path(f"/run/nb-cg-{os.urandom(3).hex()}")
    try:
        result = runtime.up(load_manifests([vm]), runtime.UpOptions(
            runtime=run_dir, wait=True, wait_timeout=240, images=_own_disk_map(tmp_path, disk, monkeypatch)))
        console = Path(runtime.load_state(result.pod)["console"])
        # bootcmd masks the agent early in cloud-init's run; by its last line the agent is gone
        # (the wait may have ended before, if the agent told the address before bootcmd ran)
        deadline = time.monotonic() + 240
        while not runtime.user_disk_ready(console.read_text(errors="replace")) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "NB: READY" not in console.read_text(errors="replace")
        assert runtime.user_disk_ready(console.read_text(errors="replace")).startswith("Cloud-init v.")
        state = runtime.load_state(result.pod)
        assert runtime.guest_agent_interfaces(state) is None     # no agent answers: no error either
        # status still reads, from the domain and what the console said (nb-report's first LEASE, if
        # it beat bootcmd)
        assert runtime.current_vmi(result.pod)["status"]["interfaces"][0]["mac"] == state["nics"][0]["mac"]
        moved = migrate.migrate("vm-net-binding-passt", migrate.MigrateOptions(runtime=run_dir, wait=True,
                                                                            wait_timeout=60))
        assert moved.lease == {}
        assert any("no guest agent answered" in s for s in runtime.load_state(moved.target)["substitutions"])
    finally:
        sandbox.down_all(run_dir)
    assert not run_dir.exists() or not any(p for p in run_dir.iterdir() if p.name != ".lock")


def test_bad_network_data_fails_before_anything_is_made(tmp_path):
    from netbind.api.loading import load_manifests
    from netbind.node import runtime

    vm = _user_guide_vm(tmp_path, networkData="version: 2\nethernets:\n  eth0:\n dhcp4: true\n")
    run_dir = tmp_path / "run"
    with pytest.raises(runtime.UpError, match=r"spec\.volumes\[1\]\.cloudInitNoCloud\.networkData: not YAML") as err:
        runtime.up(load_manifests([vm]), runtime.UpOptions(runtime=run_dir, guest="cloud"))
    assert err.value.phase == "validate" and not run_dir.exists()


def test_a_missing_disk_file_fails_naming_it_before_anything_is_made(tmp_path, monkeypatch):
    from netbind.api.loading import load_manifests
    from netbind.node import runtime

    run_dir = tmp_path / "run"
    with pytest.raises(runtime.UpError, match=r"nope\.qcow2.*does not exist") as err:
        runtime.up(load_manifests([REPO / "examples" / "passt"]),
                   runtime.UpOptions(runtime=run_dir, images=_own_disk_map(tmp_path, tmp_path / "nope.qcow2", monkeypatch)))
    assert err.value.phase == "images" and not run_dir.exists()


@pytest.fixture
def open_dir():
    """A directory everyone may enter (pytest's own tmp dirs are 0700 up to /tmp/pytest-of-USER)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="nb-cg-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_a_disk_qemu_cannot_open_is_refused_naming_the_directory_or_the_file(open_dir):
    from netbind.node import guest_disks

    nobody = (65534, 65534)
    closed = open_dir / "closed"
    closed.mkdir(mode=0o700)
    disk = closed / "disk.qcow2"
    disk.write_bytes(b"QFI\xfb" + bytes(508))
    qcow2 = lambda path: {"format": "qcow2"}
    with pytest.raises(guest_disks.GuestDiskError, match=rf"cannot enter {closed}; chmod o\+x {closed}"):
        guest_disks.check_base(disk, nobody, info=qcow2)
    closed.chmod(0o755)
    disk.chmod(0o600)
    with pytest.raises(guest_disks.GuestDiskError, match=rf"cannot read it; chmod o\+r {disk}"):
        guest_disks.check_base(disk, nobody, info=qcow2)
    guest_disks.check_base(disk, None, info=qcow2)           # QEMU as root opens it
    disk.chmod(0o644)
    guest_disks.check_base(disk, nobody, info=qcow2)
    # raw is qemu-img's answer for any file: without a boot sector it is no disk
    raw = lambda path: {"format": "raw"}
    with pytest.raises(guest_disks.GuestDiskError, match="not a disk image: qemu-img reads it as raw data"):
        guest_disks.check_base(disk, nobody, info=raw)
    disk.write_bytes(bytes(510) + b"\x55\xaa")
    guest_disks.check_base(disk, nobody, info=raw)


@needs_root
def test_a_disk_file_that_is_no_disk_image_fails_clearly_and_leaves_nothing(tmp_path, monkeypatch):
    _root_or_fail()
    from netbind.api.loading import load_manifests
    from netbind.node import runtime, sandbox
    from netbind.testing.leaks import LeakChecker

    run_dir = Path(f"/run/nb-cg-{os.urandom(3).hex()}")
    junk = run_dir.with_name(run_dir.name + "-disk") / "notes.qcow2"   # where QEMU's user may look
    junk.parent.mkdir(mode=0o755)
    junk.write_text("QFI but not really\n")
    checker = LeakChecker(run_dir)
    try:
        with pytest.raises(runtime.UpError, match=r"notes\.qcow2: not a disk image: qemu-img reads it as raw data"):
            runtime.up(load_manifests([REPO / "examples" / "passt"]),
                       runtime.UpOptions(runtime=run_dir, images=_own_disk_map(tmp_path, junk, monkeypatch)))
    finally:
        checker.note()
        sandbox.down_all(run_dir)
        shutil.rmtree(junk.parent)
    assert checker.leaks() == []
    assert not run_dir.exists() or not any(p for p in run_dir.iterdir() if p.name != ".lock")
