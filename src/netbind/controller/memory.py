"""Memory overhead of the virt-launcher pod: KubeVirt's launcher estimate plus the network part.

The launcher part is KubeVirt's ``GetMemoryOverhead`` (fixed per-process figures, page tables,
vCPUs, video, devices); the network part (``MemoryCalculator``) adds 250Mi for core ``passtBinding``
and each *distinct registered* binding's ``computeResourceOverhead.requests.memory`` once. Plugin
CPU requests and all plugin limits are ignored, as in KubeVirt. Quantities follow Go's arithmetic, so
the totals print exactly as KubeVirt's do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netbind.api.models import KubeVirtConfiguration, VirtualMachineInstance
from netbind.api.quantity import Format, Quantity
from netbind.api.versions import LATEST, Profile

from ._inputs import as_config, as_vmi

PASST_BINDING_MEMORY_OVERHEAD = "250Mi"


@dataclass(frozen=True)
class LauncherOverheads:
    """The fixed figures of one KubeVirt release (``ps`` RSS of each launcher process)."""

    virt_launcher_monitor: str
    virt_launcher: str
    virtlogd: str
    virtqemud: str
    qemu: str
    video: str
    # main adds the dedicated-CPU 100Mi before applying the overhead ratio, v1.4 after it
    dedicated_cpu_before_ratio: bool


OVERHEADS = {
    "latest": LauncherOverheads("25Mi", "100Mi", "25Mi", "40Mi", "50Mi", "32Mi", True),
    "1.4": LauncherOverheads("25Mi", "100Mi", "20Mi", "40Mi", "30Mi", "16Mi", False),  # v1.4.1
    "1.4.0": LauncherOverheads("25Mi", "100Mi", "20Mi", "35Mi", "30Mi", "16Mi", False),
}


def launcher_overheads(profile: Profile, release: str | None = None) -> LauncherOverheads:
    """Figures for a profile; ``release="1.4.0"`` picks v1.4.0's smaller virtqemud figure."""
    if release is not None:
        key = release.removeprefix("v")
        if key not in OVERHEADS:
            raise ValueError(f"unknown KubeVirt release {release!r}; known: 1.4.0, 1.4 (1.4.1), latest")
        return OVERHEADS[key]
    return OVERHEADS["1.4" if profile.name == "1.4" else "latest"]


def _resource(resources: dict | None, name: str) -> Quantity:
    if not resources or name not in resources:
        return Quantity()
    return Quantity.parse(resources[name])


def _domain_resources(vmi: VirtualMachineInstance) -> tuple[dict, dict]:
    res = vmi.spec.domain.resources
    if res is None:
        return {}, {}
    return dict(res.requests or {}), dict(res.limits or {})


def vcpu_count(vmi: VirtualMachineInstance) -> int:
    """``hardware.GetNumberOfVCPUs`` (cores x sockets x threads, zeros skipped)."""
    cpu = vmi.spec.domain.cpu
    vcpus = 0
    for part in ((cpu.cores, cpu.sockets, cpu.threads) if cpu else ()):
        if part:
            vcpus = part if vcpus == 0 else vcpus * part
    return vcpus


def is_cpu_dedicated(vmi: VirtualMachineInstance) -> bool:
    cpu = vmi.spec.domain.cpu
    return bool(cpu and cpu.dedicated_cpu_placement)


def wants_guaranteed_qos(vmi: VirtualMachineInstance) -> bool:
    requests, limits = _domain_resources(vmi)
    req_mem, lim_mem = _resource(requests, "memory"), _resource(limits, "memory")
    req_cpu, lim_cpu = _resource(requests, "cpu"), _resource(limits, "cpu")
    memory_wants = ((req_mem.is_zero() and not lim_mem.is_zero())
                    or (not req_mem.is_zero() and req_mem == lim_mem))
    return memory_wants and not req_cpu.is_zero() and req_cpu == lim_cpu


def _extra(model: Any, key: str) -> Any:
    return (model.model_extra or {}).get(key) if model is not None else None


def _has_vfio(vmi: VirtualMachineInstance) -> bool:
    devices = vmi.spec.domain.devices
    if any(i.sriov is not None for i in vmi.spec.interfaces):
        return True
    return bool(_extra(devices, "gpus") or _extra(devices, "hostDevices"))


def _has_tpm(vmi: VirtualMachineInstance) -> bool:
    tpm = vmi.spec.domain.devices.tpm
    return tpm is not None and tpm.get("enabled", True) is not False


def _is_sev(vmi: VirtualMachineInstance) -> bool:
    launch = vmi.spec.domain.launch_security or {}
    return "sev" in launch or "snp" in launch


def _probe_overhead(vmi: VirtualMachineInstance) -> Quantity:
    total = Quantity()
    liveness = _extra(vmi.spec, "livenessProbe") or {}
    readiness = _extra(vmi.spec, "readinessProbe") or {}
    has_liveness, has_readiness = "exec" in liveness, "exec" in readiness
    for present in (has_liveness, has_readiness):
        if present:
            total = total.add(Quantity.parse("10Mi"))
    if has_liveness or has_readiness:
        total = total.add(Quantity.parse("100Mi"))
    return total


def _multiply(overhead: Quantity, ratio: float) -> Quantity:
    addition = int(float(overhead.scaled_value(3)) * (ratio - 1.0))
    return overhead.add(Quantity.scaled(addition, 3))


def launcher_memory_overhead(vmi: VirtualMachineInstance, config: KubeVirtConfiguration,
                             profile: Profile = LATEST, release: str | None = None) -> Quantity:
    """KubeVirt's ``GetMemoryOverhead``: everything but the network part."""
    figures = launcher_overheads(profile, release)
    domain = vmi.spec.domain
    requests, limits = _domain_resources(vmi)
    memory_request = _resource(requests, "memory")

    overhead = Quantity.scaled(0, 3)
    # page tables: one bit for every 512 bytes of guest RAM
    pagetables = Quantity.scaled(memory_request.scaled_value(3), 3)
    overhead = overhead.add(pagetables.set_value(pagetables.value() // 512))
    for figure in (figures.virt_launcher_monitor, figures.virt_launcher, figures.virtlogd,
                   figures.virtqemud, figures.qemu):
        overhead = overhead.add(Quantity.parse(figure))

    if domain.cpu is not None:
        vcpus = vcpu_count(vmi)
    elif "cpu" in limits:
        vcpus = Quantity.parse(limits["cpu"]).value()
    elif "cpu" in requests:
        vcpus = Quantity.parse(requests["cpu"]).value()
    else:
        vcpus = 0
    vcpus = max(vcpus, 1)
    per_vcpu = Quantity.parse("8Mi")
    overhead = overhead.add(Quantity.of(per_vcpu.value() * vcpus, per_vcpu.format))
    overhead = overhead.add(Quantity.parse("8Mi"))  # the IOThread
    if domain.devices.autoattach_graphics_device in (None, True):
        overhead = overhead.add(Quantity.parse(figures.video))
    architecture = vmi.spec.architecture or "amd64"
    if architecture == "arm64":
        overhead = overhead.add(Quantity.parse("128Mi"))  # two UEFI pflash devices
    if _has_vfio(vmi):
        overhead = overhead.add(Quantity.parse("1Gi"))
    if any(_extra(v, "downwardMetrics") is not None for v in vmi.spec.volumes or []):
        overhead = overhead.add(Quantity.parse("1Mi"))
    probes = _probe_overhead(vmi)
    if not probes.is_zero():
        overhead = overhead.add(probes)
    if _is_sev(vmi):
        overhead = overhead.add(Quantity.parse("256Mi"))
    if _has_tpm(vmi):
        overhead = overhead.add(Quantity.parse("53Mi"))
    dedicated = is_cpu_dedicated(vmi) or wants_guaranteed_qos(vmi)
    if dedicated and figures.dedicated_cpu_before_ratio:
        overhead = overhead.add(Quantity.parse("100Mi"))
    if figures.dedicated_cpu_before_ratio:  # main: a reserved overhead the user asked for
        reserved = _extra(domain.memory, "reservedOverhead") or {}
        if reserved.get("addedOverhead") is not None:
            overhead = overhead.add(Quantity.parse(reserved["addedOverhead"]))
    ratio = _extra(config, "additionalGuestMemoryOverheadRatio")
    if ratio:
        try:
            overhead = _multiply(overhead, float(ratio))
        except ValueError:
            pass  # KubeVirt only logs this (the CR webhook rejects such values)
    if dedicated and not figures.dedicated_cpu_before_ratio:
        overhead = overhead.add(Quantity.parse("100Mi"))
    return overhead


def _network_memory(vmi: VirtualMachineInstance, config: KubeVirtConfiguration,
                    profile: Profile) -> Quantity:
    total = Quantity(0, Format.DECIMAL_SI)
    if profile.name != "1.4" and any(i.passt_binding is not None for i in vmi.spec.interfaces):
        total = total.add(Quantity.parse(PASST_BINDING_MEMORY_OVERHEAD))
    registry = config.bindings
    seen: set[str] = set()
    for iface in vmi.spec.interfaces:  # absent interfaces included
        if iface.binding is None or iface.binding.name in seen or iface.binding.name not in registry:
            continue
        seen.add(iface.binding.name)
        overhead = registry[iface.binding.name].compute_resource_overhead
        if overhead is not None and overhead.requests and "memory" in overhead.requests:
            total = total.add(Quantity.parse(overhead.requests["memory"]))
    return total


def network_memory_overhead(vmi: Any, config: Any, *, profile: Profile = LATEST) -> Quantity:
    """The network part of the launcher overhead (``MemoryCalculator.Calculate``)."""
    return _network_memory(as_vmi(vmi, profile), as_config(config), profile)


def memory_overhead(vmi: Any, config: Any, *, profile: Profile = LATEST, include_network: bool = True,
                    release: str | None = None) -> Quantity:
    """The whole launcher memory overhead (``CalculateMemoryOverhead``): the compute container's
    memory request grows by this much, and so does its limit when it has one."""
    vmi, config = as_vmi(vmi, profile), as_config(config)
    total = launcher_memory_overhead(vmi, config, profile, release)
    if include_network:
        total = total.add(_network_memory(vmi, config, profile))
    return total
