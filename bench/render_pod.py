"""Launcher pods rendered per second for a 1-interface and a 16-interface VMI (median of 5 runs).

Run: .venv/bin/python bench/render_pod.py
"""
from __future__ import annotations

import statistics
import time

from netbind import controller
from netbind.api.models import KubeVirtConfiguration, VirtualMachineInstance

CONFIG = KubeVirtConfiguration.model_validate({"network": {"binding": {
    "passt": {"sidecarImage": "quay.io/kubevirt/network-passt-binding:v1.9.0",
              "networkAttachmentDefinition": "default/netbindingpasst",
              "migration": {"method": "link-refresh"},
              "computeResourceOverhead": {"requests": {"memory": "500Mi"}}},
    "macvtap": {"domainAttachmentType": "tap"}}}})


def vmi(interfaces: int) -> VirtualMachineInstance:
    ifaces = [{"name": "default", "binding": {"name": "passt"}}]
    nets = [{"name": "default", "pod": {}}]
    for i in range(1, interfaces):
        ifaces.append({"name": f"sec{i}", "binding": {"name": "macvtap"}})
        nets.append({"name": f"sec{i}", "multus": {"networkName": f"macvtapnet{i}"}})
    return VirtualMachineInstance.model_validate({
        "metadata": {"name": "bench", "namespace": "default", "uid": "u"},
        "spec": {"domain": {"resources": {"requests": {"memory": "1Gi"}}, "devices": {"interfaces": ifaces}},
                 "networks": nets},
        "status": {"runtimeUser": 107}})


def rate(obj: VirtualMachineInstance, seconds: float = 0.5) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        controller.render_launcher_pod(obj, CONFIG, qemu_timeout="240s")
        count += 1
    return count / elapsed


if __name__ == "__main__":
    for n in (1, 16):
        obj = vmi(n)
        runs = [rate(obj) for _ in range(5)]
        print(f"render_launcher_pod, {n:2d} interface(s): {statistics.median(runs):8.0f} pods/s (median of 5)")
