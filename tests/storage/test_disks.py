"""Domain disks and cloud-init contents against KubeVirt's behaviour, as read from its source.

Sources (kubevirt/kubevirt main): pkg/virt-launcher/virtwrap/converter/storage/{disk.go, volume.go,
configurator.go}, pkg/virt-launcher/virtwrap/api/schema.go (element order), pkg/cloud-init/cloud-init.go,
pkg/container-disk/container-disk.go, pkg/ephemeral-disk/ephemeral-disk.go, pkg/emptydisk/emptydisk.go,
pkg/defaults/amd64.go and staging/src/kubevirt.io/api/core/v1/defaults.go (webhook defaults),
pkg/virt-api/webhooks/validating-webhook/admitters/vmi-create-admitter.go (2048-byte limits), and the
converter's own golden file converter/testdata/domain_x86_64.xml.
"""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from netbind.api.models import VirtualMachineInstance
from netbind.cli import cli
from netbind.launcher import disks
from netbind.launcher.goxml import marshal_indent
from netbind.node.libvirt import with_direct_kernel_boot

SEED = Path(__file__).resolve().parents[3] / "shared" / "seed" / "network-binding-plugins.txt"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UUID = "5a8e1c52-6a1f-4a53-9c0a-3f0f1a1b2c3d"


def _vmi(disks_: list, volumes: list, **spec) -> VirtualMachineInstance:
    return VirtualMachineInstance.model_validate({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": "vm1.example", "namespace": "ns1"},
        "spec": {"domain": {"devices": {"disks": disks_}, "firmware": {"uuid": UUID}}, "volumes": volumes, **spec}})


def _xml(vmi: VirtualMachineInstance, **kw) -> list[str]:
    return [marshal_indent(el, "  ") for el in disks.domain_disks(vmi, virtio_model="virtio-non-transitional", **kw)]


USER_GUIDE_DISKS = [{"name": "containerdisk", "disk": {"bus": "virtio"}},
                    {"name": "cloudinitdisk", "disk": {"bus": "virtio"}}]
USER_GUIDE_VOLUMES = [
    {"name": "containerdisk", "containerDisk": {"image": "quay.io/kubevirt/fedora-with-test-tooling-container-disk:v1.1.0"}},
    {"name": "cloudinitdisk", "cloudInitNoCloud": {"networkData": "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n"}},
]


def test_user_guide_disks_are_a_qcow2_overlay_and_the_nocloud_iso():
    # volume.go convert_v1_ContainerDiskSource_To_api_Disk: overlay in the ephemeral disk dir, backed by
    # disk_<volume index>.img; convert_v1_CloudInitSource_To_api_Disk: raw ISO in cloud-init-data/<ns>/<name>;
    # disk.go: discard=unmap for every disk, model from useVirtioTransitional, alias ua-<name>.
    out = _xml(_vmi(USER_GUIDE_DISKS, USER_GUIDE_VOLUMES))
    assert out == [
        '<disk device="disk" type="file" model="virtio-non-transitional">\n'
        '  <source file="/var/run/kubevirt-ephemeral-disks/disk-data/containerdisk/disk.qcow2"></source>\n'
        '  <target bus="virtio" dev="vda"></target>\n'
        '  <driver error_policy="stop" name="qemu" type="qcow2" discard="unmap"></driver>\n'
        '  <alias name="ua-containerdisk"></alias>\n'
        '  <backingStore type="file">\n'
        '    <format type="qcow2"></format>\n'
        '    <source file="/var/run/kubevirt/container-disks/disk_0.img"></source>\n'
        '  </backingStore>\n'
        '</disk>',
        '<disk device="disk" type="file" model="virtio-non-transitional">\n'
        '  <source file="/var/run/kubevirt-ephemeral-disks/cloud-init-data/ns1/vm1.example/noCloud.iso"></source>\n'
        '  <target bus="virtio" dev="vdb"></target>\n'
        '  <driver error_policy="stop" name="qemu" type="raw" discard="unmap"></driver>\n'
        '  <alias name="ua-cloudinitdisk"></alias>\n'
        '</disk>',
    ]


def test_backing_index_is_the_volume_position_and_format_is_injected():
    vols = [USER_GUIDE_VOLUMES[1], USER_GUIDE_VOLUMES[0]]
    out = _xml(_vmi(USER_GUIDE_DISKS, vols), container_disk_formats={"containerdisk": "raw"})
    assert '<source file="/var/run/kubevirt/container-disks/disk_1.img">' in out[0]
    assert '<format type="raw"></format>' in out[0]


def test_device_names_follow_the_sd_c_scheme():
    # disk.go formatDeviceName: a port of Linux sd.c naming
    assert [disks._device_name("sd", i) for i in (0, 25, 26, 51, 701, 702)] == \
        ["sda", "sdz", "sdaa", "sdaz", "sdzz", "sdaaa"]


def test_buses_targets_cdrom_scsi_address_and_defaults():
    # amd64.go: an empty bus is sata; SetDefaults_DiskDevice: no target is a disk; SetDefaults_CDRomTarget:
    # readonly and tray closed; disk.go: sata/scsi/usb share the sd prefix, scsi disks get a drive address.
    vols = [{"name": n, "emptyDisk": {"capacity": "1Gi"}} for n in ("a", "b", "c", "d")] + \
        [{"name": "e", "cloudInitNoCloud": {"userData": "#cloud-config\n"}}]
    out = _xml(_vmi([{"name": "a"}, {"name": "b", "disk": {"bus": "scsi"}},
                     {"name": "c", "disk": {"bus": "virtio"}}, {"name": "d", "disk": {"bus": "usb"}},
                     {"name": "e", "cdrom": {}}], vols))
    assert out[0].startswith('<disk device="disk" type="file">\n'
                             '  <source file="/var/run/libvirt/empty-disks/a.qcow2"></source>\n'
                             '  <target bus="sata" dev="sda"></target>')
    assert '<target bus="scsi" dev="sdb"></target>' in out[1]
    assert out[1].endswith('  <address type="drive" controller="0" bus="0" unit="1"></address>\n</disk>')
    assert '<target bus="virtio" dev="vda"></target>' in out[2]
    assert '<target bus="usb" dev="sdc"></target>' in out[3]
    assert out[4] == ('<disk device="cdrom" type="file">\n'
                      '  <source file="/var/run/kubevirt-ephemeral-disks/cloud-init-data/ns1/vm1.example/noCloud.iso">'
                      '</source>\n'
                      '  <target bus="sata" dev="sdd" tray="closed"></target>\n'
                      '  <driver error_policy="stop" name="qemu" type="raw"></driver>\n'
                      '  <readonly></readonly>\n'
                      '  <alias name="ua-e"></alias>\n'
                      '</disk>')


def test_volume_status_targets_are_kept():
    # newDeviceNamer: a target in status.volumeStatus stays with its volume; the others skip it
    vmi = _vmi([{"name": "a", "disk": {"bus": "virtio"}}, {"name": "b", "disk": {"bus": "virtio"}}],
               [{"name": "a", "emptyDisk": {"capacity": "1Gi"}}, {"name": "b", "emptyDisk": {"capacity": "1Gi"}}])
    vmi = VirtualMachineInstance.model_validate({**vmi.to_json(), "status": {"volumeStatus": [
        {"name": "b", "target": "vda"}]}})
    out = _xml(vmi)
    assert 'dev="vdb"' in out[0] and 'dev="vda"' in out[1]


def test_boot_order_serial_cache_io_readonly_shareable():
    vmi = _vmi([{"name": "a", "disk": {"bus": "virtio", "readonly": True}, "bootOrder": 1, "serial": "SER1",
                 "cache": "writethrough", "io": "threads"},
                {"name": "b", "disk": {"bus": "sata"}, "shareable": True, "errorPolicy": "report"}],
               [{"name": "a", "containerDisk": {"image": "x"}}, {"name": "b", "emptyDisk": {"capacity": "1Gi"}}])
    a, b = _xml(vmi)
    # schema.go: source, target, serial, driver, readonly, alias, backingStore, boot, address, shareable
    assert '  <serial>SER1</serial>\n  <driver cache="writethrough" error_policy="stop" io="threads" name="qemu" ' \
           'type="qcow2" discard="unmap"></driver>\n  <readonly></readonly>\n  <alias name="ua-a"></alias>' in a
    assert a.endswith('  </backingStore>\n  <boot order="1"></boot>\n</disk>')
    # disk.go: a shareable disk defaults to cache=none
    assert '<driver cache="none" error_policy="report" name="qemu" type="qcow2" discard="unmap">' in b
    assert b.endswith('  <shareable></shareable>\n</disk>')


def test_sev_and_block_multiqueue_on_virtio_disks():
    vmi = _vmi([{"name": "a", "disk": {"bus": "virtio"}}, {"name": "b", "disk": {"bus": "sata"}}],
               [{"name": "a", "emptyDisk": {"capacity": "1Gi"}}, {"name": "b", "emptyDisk": {"capacity": "1Gi"}}])
    vmi.spec.domain.devices.model_extra["blockMultiQueue"] = True
    a, b = _xml(vmi, sev=True)
    assert 'queues="1" discard="unmap" iommu="on"' in a
    assert "queues" not in b and "iommu" not in b


@pytest.mark.parametrize("disk, volume, field, text", [
    ({"name": "a", "disk": {"bus": "virtio"}}, {"name": "x", "emptyDisk": {}},
     "spec.domain.devices.disks[0]", "no matching volume with name a found"),
    ({"name": "a", "lun": {}}, {"name": "a", "containerDisk": {"image": "x"}},
     "spec.volumes[0]", "device a is of type lun. Not compatible with a file based disk"),
    ({"name": "a", "shareable": True, "cache": "writeback"}, {"name": "a", "emptyDisk": {}},
     "spec.domain.devices.disks[0].cache", "a sharable disk requires cache = none got: writeback"),
    ({"name": "a", "disk": {"bus": "ide"}}, {"name": "a", "emptyDisk": {}},
     "spec.domain.devices.disks[0].disk.bus", "unsupported disk bus 'ide'"),
    ({"name": "a"}, {"name": "a", "persistentVolumeClaim": {"claimName": "c"}},
     "spec.volumes[0]", "volume 'a' is a persistentVolumeClaim, which netbind does not convert; supported "
                        "volume kinds: containerDisk, cloudInitNoCloud, cloudInitConfigDrive, emptyDisk"),
])
def test_unconvertible_disks_name_the_field(disk, volume, field, text):
    with pytest.raises(disks.DiskError) as err:
        _xml(_vmi([disk], [volume]))
    assert err.value.field == field and text in str(err.value)


def test_unsupported_volume_kinds_are_listed():
    vmi = _vmi([], [{"name": "root", "dataVolume": {"name": "dv"}}, {"name": "h", "hostDisk": {"path": "/x"}},
                    {"name": "ok", "containerDisk": {"image": "x"}}])
    assert [m.split(" is a ")[1].split(",")[0] for m in disks.unsupported_volumes(vmi)] == ["dataVolume", "hostDisk"]


# --- cloud-init contents (cloud-init.go GenerateLocalData) -------------------------------------------


def test_nocloud_files_label_and_meta_data():
    image = disks.cloud_init_image(_vmi(USER_GUIDE_DISKS, USER_GUIDE_VOLUMES))
    assert image.label == "cidata" and image.volume == "cloudinitdisk"
    assert image.path == "/var/run/kubevirt-ephemeral-disks/cloud-init-data/ns1/vm1.example/noCloud.iso"
    # NoCloudMetadata json: instance-id (firmware UUID), local-hostname (SanitizeHostname: up to the first dot)
    assert image.files == {
        "user-data": b"",
        "meta-data": json.dumps({"instance-id": UUID, "local-hostname": "vm1"}, separators=(",", ":")).encode(),
        "network-config": b"version: 2\nethernets:\n  eth0:\n    dhcp4: true\n",
    }


def test_nocloud_base64_and_spec_hostname_and_no_network_file_without_network_data():
    vmi = _vmi([], [{"name": "ci", "cloudInitNoCloud": {"userDataBase64": base64.b64encode(b"#cloud-config\n").decode()}}],
               hostname="guest")
    image = disks.cloud_init_image(vmi)
    assert image.files["user-data"] == b"#cloud-config\n"
    assert json.loads(image.files["meta-data"])["local-hostname"] == "guest"
    assert "network-config" not in image.files


def test_config_drive_layout():
    vmi = _vmi([], [{"name": "cd", "cloudInitConfigDrive": {"userData": "#cloud-config\n",
                                                           "networkData": '{"links": []}'}}])
    image = disks.cloud_init_image(vmi)
    assert image.label == "config-2"
    assert image.path.endswith("/ns1/vm1.example/configdrive.iso")
    assert set(image.files) == {"openstack/latest/user_data", "openstack/latest/meta_data.json",
                                "openstack/latest/network_data.json"}
    # ConfigDriveMetadata field order: instance_id "<name>.<namespace>", hostname, uuid
    assert image.files["openstack/latest/meta_data.json"] == \
        f'{{"instance_id":"vm1.example.ns1","hostname":"vm1","uuid":"{UUID}"}}'.encode()


def test_inline_data_limit_is_2048_bytes():
    ok = _vmi([], [{"name": "ci", "cloudInitNoCloud": {"userData": "x" * 2048}}])
    assert len(disks.cloud_init_image(ok).files["user-data"]) == 2048
    for key in ("userData", "networkData"):
        too_big = _vmi([], [{"name": "ci", "cloudInitNoCloud": {key: "x" * 2049}}])
        with pytest.raises(disks.DiskError, match=f"{key.lower().replace('data', 'data')} exceeds 2048 byte limit"):
            disks.cloud_init_image(too_big)


def test_secret_refs_read_the_given_secret_and_name_a_missing_one():
    vmi = _vmi([], [{"name": "ci", "cloudInitNoCloud": {"secretRef": {"name": "s"},
                                                        "networkDataSecretRef": {"name": "s"}}}])
    # the Go field UserDataSecretRef is `secretRef` in the API; resolveNoCloudSecrets reads userdata/userData
    image = disks.cloud_init_image(vmi, {"s": {"userdata": b"big" * 1000, "networkData": b"version: 2\n"}})
    assert image.files["user-data"] == b"big" * 1000  # no 2048-byte limit on a Secret
    assert image.files["network-config"] == b"version: 2\n"
    with pytest.raises(disks.DiskError, match="names Secret 's', which is not among the manifests"):
        disks.cloud_init_image(vmi, {})


def test_empty_cloud_init_and_bad_base64_are_errors():
    with pytest.raises(disks.DiskError, match="userDataBase64, userData, networkDataBase64 or networkData is required"):
        disks.cloud_init_image(_vmi([], [{"name": "ci", "cloudInitNoCloud": {}}]))
    with pytest.raises(disks.DiskError, match="networkDataBase64 is not valid base64") as err:
        disks.cloud_init_image(_vmi([], [{"name": "ci", "cloudInitNoCloud": {"networkDataBase64": "!!"}}]))
    assert err.value.field == "spec.volumes[0].cloudInitNoCloud.networkDataBase64"


def _isoinfo() -> str:
    found = shutil.which("isoinfo")
    assert found, "isoinfo not found: install the Debian package 'genisoimage' (make deps)"
    return found


@pytest.mark.parametrize("volume, label", [
    ({"name": "ci", "cloudInitNoCloud": {"userData": "#cloud-config\n", "networkData": "version: 2\n"}}, "cidata"),
    ({"name": "ci", "cloudInitConfigDrive": {"userData": "#cloud-config\n"}}, "config-2"),
])
def test_written_iso_has_the_label_and_files(tmp_path, volume, label):
    image = disks.cloud_init_image(_vmi([], [volume]))
    iso = tmp_path / "ci.iso"
    disks.write_iso(image, iso)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ci.iso"]  # no staging file left
    info = subprocess.run([_isoinfo(), "-d", "-i", str(iso)], capture_output=True, text=True, check=True).stdout
    assert f"Volume id: {label}" in info
    listing = subprocess.run([_isoinfo(), "-R", "-f", "-i", str(iso)], capture_output=True, text=True,
                             check=True).stdout.split()
    for name, data in image.files.items():
        assert f"/{name}" in listing
        content = subprocess.run([_isoinfo(), "-R", "-i", str(iso), "-x", f"/{name}"], capture_output=True,
                                 check=True).stdout
        assert content == data


def _iso_files(iso: Path) -> dict[str, bytes]:
    listing = subprocess.run([_isoinfo(), "-R", "-f", "-i", str(iso)], capture_output=True, text=True,
                             check=True).stdout.split()
    return {name.lstrip("/"): subprocess.run([_isoinfo(), "-R", "-i", str(iso), "-x", name], capture_output=True,
                                             check=True).stdout for name in listing}


def test_an_iso_written_ahead_is_placed_with_the_planned_files_and_its_staging_removed(tmp_path):
    from netbind.node import guest_disks

    image = disks.cloud_init_image(_vmi([], [{"name": "ci", "cloudInitNoCloud": {
        "userData": "#cloud-config\n", "networkData": "version: 2\n"}}]))
    pending = guest_disks.PendingIso(image)
    staging = pending._dir
    plan = guest_disks.DiskPlan((), (), (guest_disks.Iso("ci", "/pod/ci/noCloud.iso", image),), "")
    guest_disks.place(plan, lambda pod_path: tmp_path / pod_path.lstrip("/"), written={"ci": pending})
    iso = tmp_path / "pod" / "ci" / "noCloud.iso"
    assert _iso_files(iso) == image.files
    assert oct(iso.stat().st_mode & 0o777) == "0o644"
    assert not staging.exists()


def test_an_iso_written_ahead_for_other_content_is_not_used(tmp_path):
    from netbind.node import guest_disks

    first = disks.cloud_init_image(_vmi([], [{"name": "ci", "cloudInitNoCloud": {"userData": "#cloud-config\n"}}]))
    hooked = disks.cloud_init_image(_vmi([], [{"name": "ci", "cloudInitNoCloud": {"userData": "#hooked\n"}}]))
    pending = guest_disks.PendingIso(first)
    plan = guest_disks.DiskPlan((), (), (guest_disks.Iso("ci", "/ci.iso", hooked),), "")
    guest_disks.place(plan, lambda pod_path: tmp_path / pod_path.lstrip("/"), written={"ci": pending})
    assert _iso_files(tmp_path / "ci.iso")["user-data"] == b"#hooked\n"
    pending.discard()
    assert not pending._dir.exists()


def test_an_iso_that_fails_ahead_fails_at_place_and_leaves_nothing(tmp_path, monkeypatch):
    from netbind.node import guest_disks

    monkeypatch.setattr(disks, "iso_tool", lambda: shutil.which("false"))   # xorrisofs failing
    image = disks.cloud_init_image(_vmi([], [{"name": "ci", "cloudInitNoCloud": {"userData": "#cloud-config\n"}}]))
    pending = guest_disks.PendingIso(image)
    plan = guest_disks.DiskPlan((), (), (guest_disks.Iso("ci", "/ci.iso", image),), "")
    with pytest.raises(subprocess.CalledProcessError):
        guest_disks.place(plan, lambda pod_path: tmp_path / pod_path.lstrip("/"), written={"ci": pending})
    assert not pending._dir.exists() and not (tmp_path / "ci.iso").exists()


# --- integration -----------------------------------------------------------------------------------


def _user_guide_dir(tmp_path: Path) -> Path:
    text = SEED.read_text()
    start = text.index("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  labels:\n"
                       "    kubevirt.io/vm: vm-net-binding-passt")
    (tmp_path / "vm.yaml").write_text(text[start:].split("\n\n")[0] + "\n")
    shutil.copy(EXAMPLES / "passt" / "kubevirt.yaml", tmp_path / "kubevirt.yaml")
    return tmp_path


def test_render_domain_of_the_user_guide_vm_shows_its_disks(tmp_path):
    result = CliRunner().invoke(cli, ["render", "domain", "-f", str(_user_guide_dir(tmp_path))])
    assert result.exit_code == 0, result.output
    root = etree.fromstring(result.output.encode())
    assert [(d.find("alias").get("name"), d.find("target").get("dev")) for d in root.findall("devices/disk")] == \
        [("ua-containerdisk", "vda"), ("ua-cloudinitdisk", "vdb")]
    # api.Devices order: disks after the memballoon, before serial
    tags = [c.tag for c in root.find("devices")]
    assert tags.index("memballoon") < tags.index("disk") < tags.index("serial")
    # the local stand-in boots a kernel: the disks are not handed to libvirt
    local = etree.fromstring(with_direct_kernel_boot(result.output, "/k", "/i", "").encode())
    assert local.findall("devices/disk") == []


def test_unsupported_volume_is_one_line_exit_2_in_render_and_a_problem_in_explain(tmp_path):
    path = _user_guide_dir(tmp_path) / "vm.yaml"
    path.write_text(path.read_text().replace(
        "- containerDisk:\n          image: quay.io/kubevirt/fedora-with-test-tooling-container-disk:v1.1.0",
        "- persistentVolumeClaim:\n          claimName: rootdisk"))
    result = CliRunner().invoke(cli, ["render", "domain", "-f", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: spec.volumes[0]: volume 'containerdisk' is a persistentVolumeClaim, which netbind does not "
        "convert; supported volume kinds: containerDisk, cloudInitNoCloud, cloudInitConfigDrive, emptyDisk"]
    explained = CliRunner().invoke(cli, ["explain", "-f", str(tmp_path), "-o", "json"])
    data = json.loads(explained.output)
    assert {"type": "UnsupportedVolume", "field": "spec.template.spec.volumes[0]",
            "message": result.output.strip().split(": ", 2)[2]} in data["problems"]


def test_up_refuses_an_unsupported_volume_before_creating_anything(tmp_path):
    path = _user_guide_dir(tmp_path) / "vm.yaml"
    path.write_text(path.read_text().replace(
        "- containerDisk:\n          image: quay.io/kubevirt/fedora-with-test-tooling-container-disk:v1.1.0",
        "- dataVolume:\n          name: rootdv"))
    runtime_dir = tmp_path / "runtime"
    result = CliRunner().invoke(cli, ["up", "-f", str(path.parent), "-o", "json"],
                                env={"NETBIND_RUNTIME_DIR": str(runtime_dir)})
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert data["phase"] == "validate"
    assert data["error"].startswith("volume 'containerdisk' is a dataVolume, which netbind does not convert")
    assert not runtime_dir.exists() or not any(runtime_dir.iterdir())


# --- Secrets given in -f --------------------------------------------------------------------------


def _secret_dir(tmp_path: Path, secret: str | None) -> Path:
    path = _user_guide_dir(tmp_path) / "vm.yaml"
    text = path.read_text()
    start = text.index("      - cloudInitNoCloud:")
    path.write_text(text[:start] + "      - cloudInitNoCloud:\n          secretRef:\n            name: ci-secret\n"
                    "          networkDataSecretRef:\n            name: ci-secret\n        name: cloudinitdisk\n")
    if secret is not None:
        (tmp_path / "secret.yaml").write_text(secret)
    return tmp_path


SECRET = ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: ci-secret\n  namespace: default\n"
          "stringData:\n  userdata: |\n    #cloud-config\n    password: fedora\n"
          f"data:\n  networkdata: {base64.b64encode(b'version: 2').decode()}\n")


def test_a_secret_in_the_manifests_feeds_the_nocloud_files(tmp_path):
    from netbind.api.loading import load_manifests

    manifests = load_manifests([_secret_dir(tmp_path, SECRET)])
    vmi = manifests.vmi
    image = disks.cloud_init_image(vmi, manifests.secret_data(vmi.namespace))
    assert image.files["user-data"] == b"#cloud-config\npassword: fedora\n"
    assert image.files["network-config"] == b"version: 2"
    data = json.loads(CliRunner().invoke(cli, ["explain", "-f", str(tmp_path), "-o", "json"]).output)
    assert not [p for p in data["problems"] if isinstance(p, dict) and p.get("type", "").startswith(("Cloud", "Disk"))]
    assert not any("ci-secret" in n for n in data.get("notes", []))


def test_a_missing_secret_is_a_note_and_a_bad_one_a_load_error(tmp_path):
    data = json.loads(CliRunner().invoke(cli, ["explain", "-f", str(_secret_dir(tmp_path, None)), "-o", "json"]).output)
    assert any("secretRef names Secret 'ci-secret', which is not among the manifests" in n for n in data["notes"])
    (tmp_path / "secret.yaml").write_text(SECRET.split("data:\n  networkdata:")[0] + "data:\n  networkdata: '!'\n")
    result = CliRunner().invoke(cli, ["explain", "-f", str(tmp_path)])
    assert result.exit_code == 2
    assert "data.networkdata is not valid base64" in result.output and "Traceback" not in result.output
