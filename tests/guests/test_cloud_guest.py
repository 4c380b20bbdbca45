"""The reference cloud guest booted from its disk: the user guide's VM, unchanged, through passt;
cloud-init applies its networkData; after `netbind migrate` systemd-networkd renews on the
link-refresh and the guest takes the target pod's address. Plus the pure parts (MBR, image map)."""
from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from netbind.node import cloud_guest
from netbind.node.images import ImageMap, ImageMapError

REPO = Path(__file__).resolve().parents[2]
FEDORA = "quay.io/kubevirt/fedora-with-test-tooling-container-disk:v1.1.0"


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


@pytest.mark.skipif(os.geteuid() != 0 and os.environ.get("CI") != "true", reason="needs root")
def test_the_user_guide_vm_boots_the_cloud_guest_leases_the_pod_address_and_renews_after_migration(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("CI=true: the cloud guest test needs root (netns, libvirt)")
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
