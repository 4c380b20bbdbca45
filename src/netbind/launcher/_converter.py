"""The non-network parts of virt-launcher's VMI -> domain conversion (amd64 only).

Covers what binding-plugin VMs use: memory, memory backing (hugepages, memfd/shared for passt),
q35 OS with SMBIOS sysinfo, guest-agent channel, USB/SCSI/virtio-serial controllers, VGA video, VNC
graphics, memballoon, serial console, virtio RNG, KubeVirt metadata, hypervisor features (ACPI/APIC/SMM),
CPU model/features/topology/synthetic NUMA, vCPUs, SEV launch security and the disks of containerDisk,
cloud-init and emptyDisk volumes (:mod:`.disks`). Everything else the VMI
asks for is reported in ``uncovered`` rather than silently dropped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from netbind.api.models import VirtualMachineInstance

from . import disks
from ._gonet import quantity_bytes, quantity_value
from .goxml import KUBEVIRT_NS, QEMU_NS, element

VIRT_PRIVATE_DIR = "/var/run/kubevirt-private"
_HOST_CPU_MODES = ("host-model", "host-passthrough")
_MEMFD_ANNOTATION = "kubevirt.io/memfd"
_DISABLE_PCI_HOLE64_ANNOTATION = "kubevirt.io/disablePCIHole64"
# Parts of the VMI spec this converter does not translate (KubeVirt does).
_UNCOVERED_DEVICES = ("filesystems", "gpus", "hostDevices", "watchdog", "sound", "tpm",
                      "clientPassthrough", "autoattachVSOCK", "downwardMetrics", "panicDevices")


@dataclass
class ConverterContext:
    virtio_model: str  # model of the virtio controllers and memballoon
    sev: bool
    features_always: bool  # main writes <features/> even when the VMI asks for none; v1.4 does not
    uncovered: list[str] = field(default_factory=list)


def virtio_model(vmi: VirtualMachineInstance) -> str:
    return "virtio-transitional" if vmi.spec.domain.devices.use_virtio_transitional else "virtio-non-transitional"


def cpu_topology(vmi: VirtualMachineInstance) -> tuple[int, int, int]:
    """(sockets, cores, threads) as vcpu.GetCPUTopology: sockets from the CPU request if unset."""
    cpu = vmi.spec.domain.cpu
    sockets = (cpu.sockets if cpu and cpu.sockets else 1)
    cores = (cpu.cores if cpu and cpu.cores else 1)
    threads = (cpu.threads if cpu and cpu.threads else 1)
    if cpu is None or not (cpu.cores or cpu.sockets or cpu.threads):
        resources = vmi.spec.domain.resources
        limits = (resources.limits or {}) if resources else {}
        requests = (resources.requests or {}) if resources else {}
        if "cpu" in limits:
            sockets = quantity_value(limits["cpu"])
        elif "cpu" in requests:
            sockets = quantity_value(requests["cpu"])
    return sockets, cores, threads


def vcpu_count(vmi: VirtualMachineInstance) -> int:
    sockets, cores, threads = cpu_topology(vmi)
    return sockets * cores * threads


def _guest_memory(vmi: VirtualMachineInstance) -> Any:
    domain = vmi.spec.domain
    if domain.memory is not None and domain.memory.guest is not None:
        return domain.memory.guest
    requests = (domain.resources.requests or {}) if domain.resources else {}
    limits = (domain.resources.limits or {}) if domain.resources else {}
    if "memory" not in requests and "memory" in limits:
        return limits["memory"]
    return requests.get("memory", 0)


def _has_passt_binding(vmi: VirtualMachineInstance) -> bool:
    return any(i.passt_binding is not None for i in vmi.spec.interfaces)


def _has_hugepages(vmi: VirtualMachineInstance) -> bool:
    memory = vmi.spec.domain.memory
    return memory is not None and memory.hugepages is not None


def _memfd_required(vmi: VirtualMachineInstance) -> bool:
    if _has_hugepages(vmi) and vmi.annotations.get(_MEMFD_ANNOTATION) != "false":
        return True
    return _has_passt_binding(vmi)


def _memory_elements(vmi: VirtualMachineInstance, ctx: ConverterContext) -> list[etree._Element]:
    memory = vmi.spec.domain.memory
    elements = []
    if memory is not None and memory.max_guest is not None and not (
            memory.guest is not None and quantity_bytes(memory.guest) == quantity_bytes(memory.max_guest)):
        ctx.uncovered.append("spec.domain.memory.maxGuest (memory hotplug: <maxMemory>/<memory> device)")
    elements.append(element("memory", [("unit", "b")], text=str(quantity_bytes(_guest_memory(vmi)))))
    hugepages, shared = _has_hugepages(vmi), _has_passt_binding(vmi)
    if hugepages or shared:
        elements.append(element(
            "memoryBacking", (),
            element("hugepages") if hugepages else None,
            element("source", [("type", "memfd")]) if _memfd_required(vmi) else None,
            element("access", [("mode", "shared")]) if shared else None,
        ))
    return elements


def _os(vmi: VirtualMachineInstance, ctx: ConverterContext) -> etree._Element:
    machine = (vmi.spec.domain.machine or {}).get("type") or "q35"
    if vmi.spec.domain.firmware and any(k in vmi.spec.domain.firmware for k in ("bootloader", "kernelBoot", "acpi")):
        ctx.uncovered.append("spec.domain.firmware bootloader/kernelBoot/acpi (EFI loader, kernel boot)")
    paused = (vmi.spec.model_extra or {}).get("startStrategy") == "Paused"
    return element(
        "os", (),
        element("type", [("arch", "x86_64"), ("machine", machine)], text="hvm"),
        element("smbios", [("mode", "sysinfo")]),
        element("bootmenu", [("enable", "yes"), ("timeout", 10000)]) if paused else None,
    )


def _entries(parent: str, entries: list[tuple[str, str]]) -> etree._Element:
    return element(parent, (), *[element("entry", [("name", n)], text=v) for n, v in entries])


def _sysinfo(vmi: VirtualMachineInstance) -> etree._Element:
    firmware = vmi.spec.domain.firmware
    system: list[tuple[str, str]] = []
    if firmware is not None:
        system.append(("uuid", str(firmware.get("uuid", ""))))
        if firmware.get("serial"):
            system.append(("serial", str(firmware["serial"])))
    chassis = vmi.spec.domain.chassis
    chassis_entries = [(k, str(chassis.get(k, ""))) for k in ("manufacturer", "version", "serial", "asset", "sku")] \
        if chassis is not None else []
    return element("sysinfo", [("type", "smbios")], _entries("system", system), _entries("bios", []),
                   _entries("baseBoard", []), _entries("chassis", chassis_entries))


def _usb_needed(vmi: VirtualMachineInstance) -> bool:
    devices = vmi.spec.domain.devices
    if any(i.get("bus", "") in ("usb", "") for i in devices.inputs or []):
        return True
    return any((d.get("disk") or {}).get("bus") == "usb" for d in devices.disks or [])


def _disk_bus(disk: dict) -> str:
    for kind in ("lun", "disk", "cdrom"):
        if disk.get(kind) is not None:
            return (disk[kind] or {}).get("bus", "")
    return ""


def _devices(vmi: VirtualMachineInstance, interfaces: list[etree._Element], ctx: ConverterContext) -> etree._Element:
    devices = vmi.spec.domain.devices
    uid = vmi.metadata.uid or ""
    iommu = element("driver", [("iommu", "on")]) if ctx.sev else None
    children: list[etree._Element | None] = list(interfaces)
    children.append(element("channel", [("type", "unix")],
                            element("target", [("name", "org.qemu.guest_agent.0"), ("type", "virtio")])))
    children.append(element("controller", [("type", "usb"), ("index", "0"),
                                           ("model", "qemu-xhci" if _usb_needed(vmi) else "none")]))
    if not devices.disable_hotplug or any(_disk_bus(d) == "scsi" for d in devices.disks or []):
        children.append(element("controller", [("type", "scsi"), ("index", "0"), ("model", ctx.virtio_model)],
                                _copy(iommu)))
    if vmi.annotations.get(_DISABLE_PCI_HOLE64_ANNOTATION, "").lower() == "true":
        children.append(element("controller", [("type", "pci"), ("index", "0"), ("model", "pcie-root")],
                                element("pcihole64", [("unit", "KiB")], text="0")))
    serial_console = devices.autoattach_serial_console is None or devices.autoattach_serial_console
    if serial_console:
        children.append(element("controller", [("type", "virtio-serial"), ("index", "0"),
                                               ("model", ctx.virtio_model)], _copy(iommu)))
    if devices.autoattach_graphics_device is None or devices.autoattach_graphics_device:
        if devices.video is not None:
            children.append(element("video", (), element("model", [("type", devices.video.get("type", "")),
                                                                   ("heads", 1), ("vram", 16384)])))
        else:
            children.append(element("video", (), element("model", [("type", "vga"), ("heads", 1),
                                                                   ("vram", 16384)])))
        children.append(element("graphics", [("type", "vnc")],
                                element("listen", [("type", "socket"),
                                                   ("socket", f"{VIRT_PRIVATE_DIR}/{uid}/virt-vnc")])))
    if devices.autoattach_mem_balloon is False:
        children.append(element("memballoon", [("model", "none")]))
    else:
        # freePageReporting: virt-handler's choice; "off" as in the recorded vectors
        children.append(element("memballoon", [("model", ctx.virtio_model), ("freePageReporting", "off")],
                                _copy(iommu)))
    children += disks.domain_disks(vmi, virtio_model=virtio_model(vmi), sev=ctx.sev)
    if devices.inputs:
        for item in devices.inputs:
            children.append(element("input", [("type", item.get("type", "")), ("bus", item.get("bus") or "usb")],
                                    element("alias", [("name", "ua-" + item.get("name", ""))])))
    if serial_console:
        socket = f"{VIRT_PRIVATE_DIR}/{uid}/virt-serial0"
        children.append(element("serial", [("type", "unix")], element("target", [("port", 0)]),
                                element("source", [("mode", "bind"), ("path", socket)])))
        children.append(element("console", [("type", "pty")],
                                element("target", [("type", "serial"), ("port", 0)])))
    if devices.rng is not None:
        children.append(element("rng", [("model", ctx.virtio_model)],
                                element("backend", [("model", "random")], text="/dev/urandom"), _copy(iommu)))
    extra = devices.model_extra or {}
    for name in _UNCOVERED_DEVICES:
        value = getattr(devices, name, None) if name in type(devices).model_fields else extra.get(name)
        if value:
            ctx.uncovered.append(f"spec.domain.devices.{name}")
    ctx.uncovered += disks.unsupported_volumes(vmi)
    return element("devices", (), *children)


def _copy(el: etree._Element | None) -> etree._Element | None:
    return None if el is None else etree.fromstring(etree.tostring(el))


def _features(vmi: VirtualMachineInstance, ctx: ConverterContext) -> etree._Element | None:
    source = vmi.spec.domain.features
    if source is None:
        return element("features") if ctx.features_always else None

    def enabled(name: str, default_present: bool) -> bool:
        if name not in source:
            return default_present
        return (source[name] or {}).get("enabled", True) is not False

    children = [
        element("acpi") if enabled("acpi", True) else None,
        element("apic") if "apic" in source and enabled("apic", False) else None,
        element("smm") if "smm" in source and enabled("smm", False) else None,
        element("vmport", [("state", "off")]),
    ]
    for unsupported in ("hyperv", "hypervPassthrough", "kvm", "pvspinlock"):
        if unsupported in source:
            ctx.uncovered.append(f"spec.domain.features.{unsupported}")
    return element("features", (), *children)


def _cpu(vmi: VirtualMachineInstance, ctx: ConverterContext) -> list[etree._Element]:
    cpu = vmi.spec.domain.cpu
    sockets, cores, threads = cpu_topology(vmi)
    count = sockets * cores * threads
    model = cpu.model if cpu else None
    attrs: list[tuple[str, Any]]
    children: list[etree._Element | None] = []
    if model and model not in _HOST_CPU_MODES:
        attrs = [("mode", "custom")]
        children.append(element("model", text=model))
    else:
        attrs = [("mode", model or "host-model")]
    if cpu is not None:
        names = set()
        for feature in cpu.features or []:
            names.add(feature.get("name"))
            children.append(element("feature", [("name", feature.get("name", "")),
                                                ("policy", feature.get("policy") or None)]))
        if "mpx" not in names and model not in _HOST_CPU_MODES:
            children.append(element("feature", [("name", "mpx"), ("policy", "disable")]))
        if cpu.max_sockets:
            ctx.uncovered.append("spec.domain.cpu.maxSockets (CPU hotplug <vcpus>)")
        if cpu.dedicated_cpu_placement:
            ctx.uncovered.append("spec.domain.cpu.dedicatedCpuPlacement (pinning happens on the node)")
    children.append(element("topology", [("sockets", sockets), ("cores", cores), ("threads", threads)]))
    if _memfd_required(vmi) and not (cpu is not None and cpu.numa is not None):
        kib = quantity_value(_guest_memory(vmi)) // 1024
        children.append(element("numa", (), element("cell", [("id", "0"), ("cpus", f"0-{count - 1}"),
                                                           ("memory", kib), ("unit", "KiB")])))
    return [element("cpu", attrs, *children), element("vcpu", [("placement", "static")], text=str(count))]


def _launch_security(vmi: VirtualMachineInstance, ctx: ConverterContext) -> etree._Element | None:
    security = vmi.spec.domain.launch_security
    if not security:
        return None
    if security.get("sev") is not None:
        sev = security["sev"] or {}
        bits = 0x1  # NoDebug, always on for SEV and SEV-ES
        if (sev.get("policy") or {}).get("encryptedState"):
            bits |= 0x4
        return element("launchSecurity", [("type", "sev")],
                       element("dhCert", text=sev["dhCert"]) if sev.get("dhCert") else None,
                       element("session", text=sev["session"]) if sev.get("session") else None,
                       element("policy", text=f"0x{bits:x}"))
    ctx.uncovered.append("spec.domain.launchSecurity other than sev (snp, tdx, secure execution)")
    return None


def convert_domain(vmi: VirtualMachineInstance, interfaces: list[etree._Element],
                   ctx: ConverterContext) -> etree._Element:
    """The ``<domain>`` for ``vmi`` with the given (already built) ``<interface>`` elements."""
    name = f"{vmi.namespace}_{vmi.metadata.name or ''}"
    clock = vmi.spec.domain.clock
    if clock:
        ctx.uncovered.append("spec.domain.clock")
    children: list[etree._Element | None] = [element("name", text=name)]
    children += _memory_elements(vmi, ctx)
    children.append(_os(vmi, ctx))
    children.append(_sysinfo(vmi))
    children.append(_devices(vmi, interfaces, ctx))
    children.append(element("metadata", (), element(f"{{{KUBEVIRT_NS}}}kubevirt", (), element("uid"),
                                                    nsmap={None: KUBEVIRT_NS})))
    children.append(_features(vmi, ctx))
    children += _cpu(vmi, ctx)
    children.append(_launch_security(vmi, ctx))
    return element("domain", [("type", "kvm")], *children, nsmap={"qemu": QEMU_NS})
