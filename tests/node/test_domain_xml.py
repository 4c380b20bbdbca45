"""Pure domain XML rewrites for the node runtime (TCG, direct kernel boot, console, link state)."""
from __future__ import annotations

import pytest
from lxml import etree

from netbind.node import libvirt as lv

KUBEVIRT_LIKE = """<domain type="kvm" xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0">
  <name>default_vm1</name><memory unit="b">268435456</memory>
  <os><type arch="x86_64" machine="q35">hvm</type><loader readonly="yes" type="pflash">/usr/share/OVMF/OVMF_CODE.fd</loader>
      <nvram>/var/run/kubevirt-private/libvirt/qemu/nvram/vm1_VARS.fd</nvram><smbios mode="sysinfo"/></os>
  <features><acpi/><kvm><hidden state="on"/></kvm></features>
  <cpu mode="host-model"><topology sockets="1" cores="2" threads="1"/><feature policy="require" name="vmx"/></cpu>
  <clock offset="utc"><timer name="kvmclock" present="yes"/><timer name="rtc" tickpolicy="catchup"/></clock>
  <devices>
    <disk type="file" device="disk"><source file="/var/run/kubevirt/container-disks/disk_0.img"/><target bus="virtio" dev="vda"/><boot order="1"/></disk>
    <interface type="ethernet"><mac address="02:00:00:AA:BB:01"/><target dev="tap0" managed="no"/><model type="virtio-non-transitional"/></interface>
    <serial type="unix"><target port="0"/><source mode="bind" path="/var/run/kubevirt-private/x/virt-serial0"/><log file="/var/run/kubevirt-private/x/virt-serial0-log" append="on"/></serial>
    <console type="pty"><target type="serial" port="0"/></console>
  </devices>
</domain>"""


def _root(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode())


def test_to_tcg_rewrites_type_cpu_and_drops_kvm_only_features():
    root = _root(lv.to_tcg(KUBEVIRT_LIKE))
    assert root.get("type") == "qemu"
    cpu = root.find("cpu")
    assert (cpu.get("mode"), cpu.get("match"), cpu.findtext("model")) == ("custom", "exact", "qemu64")
    assert cpu.find("topology").get("cores") == "2"
    assert cpu.find("feature") is None
    assert root.find("features/kvm") is None and root.find("features/acpi") is not None
    assert [t.get("name") for t in root.findall("clock/timer")] == ["rtc"]


def test_to_tcg_keeps_a_named_cpu_model():
    xml = KUBEVIRT_LIKE.replace('<cpu mode="host-model">', '<cpu mode="custom"><model>Haswell</model>')
    assert _root(lv.to_tcg(xml)).findtext("cpu/model") == "Haswell"


def test_direct_kernel_boot_replaces_firmware_and_boot_orders():
    root = _root(lv.with_direct_kernel_boot(KUBEVIRT_LIKE, "/g/vmlinux", "/g/initrd", "console=ttyS0"))
    os_el = root.find("os")
    assert [os_el.findtext(t) for t in ("kernel", "initrd", "cmdline")] == ["/g/vmlinux", "/g/initrd", "console=ttyS0"]
    assert os_el.find("loader") is None and os_el.find("nvram") is None
    assert os_el.find("smbios") is not None
    assert root.find("devices/disk/boot") is None
    assert root.find("devices/disk") is None  # the VMI's disks are not booted locally (yet)


def test_serial_log_replaces_unix_console():
    xml = lv.with_serial_log(KUBEVIRT_LIKE, "/run/x/console.log")
    root = _root(xml)
    assert [s.get("type") for s in root.findall("devices/serial")] == ["file"]
    assert root.find("devices/console") is None
    assert lv.serial_log_path(xml) == lv.Path("/run/x/console.log")
    assert lv.serial_log_path(KUBEVIRT_LIKE) == lv.Path("/var/run/kubevirt-private/x/virt-serial0-log")


@pytest.mark.parametrize("up, state", [(True, "up"), (False, "down")])
def test_link_state_device_is_matched_by_mac_case_insensitively(up, state):
    iface = _root(lv.interface_with_link_state(KUBEVIRT_LIKE, "02:00:00:aa:bb:01", up))
    assert iface.tag == "interface" and iface.find("link").get("state") == state
    assert iface.find("target").get("dev") == "tap0"


def test_link_state_for_unknown_mac_is_a_clear_error():
    with pytest.raises(lv.LibvirtError, match="no interface with MAC 02:00:00:00:00:09"):
        lv.interface_with_link_state(KUBEVIRT_LIKE, "02:00:00:00:00:09", True)


def test_entities_are_not_resolved():
    evil = '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/hostname">]><domain type="kvm"><name>&x;</name><devices/></domain>'
    assert "&x;" in lv.to_tcg(evil)


@pytest.mark.parametrize("domain_type, qemu_version, paused", [
    ("qemu", 7_002_022, True),     # Debian 12's QEMU 7.2.22 under TCG: the live path loses guest writes
    ("qemu", 8_002_000, True),
    ("qemu", 9_000_000, False),    # the TCG dirty-tracking fix is in 9.0
    ("qemu", 10_000_002, False),   # the native stack's QEMU 10
    ("kvm", 7_002_022, False),     # KVM tracks dirty pages in the kernel: live as KubeVirt does
])
def test_migration_is_paused_only_under_tcg_on_a_qemu_without_the_fix(domain_type, qemu_version, paused):
    reason = lv.paused_migration_reason(domain_type, qemu_version)
    assert (reason is not None) == paused
    if paused:
        assert f"QEMU {qemu_version // 1_000_000}.{qemu_version // 1000 % 1000} under TCG" in reason
