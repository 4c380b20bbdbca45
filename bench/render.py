"""Benchmark: VMIs validated and launcher pods rendered per second (issue 2).

Two VMIs: one passt-plugin interface on the pod network, and 16 interfaces (pod network with a
plugin, 15 Multus secondaries alternating tap/managedTap/sidecar/NAD plugins). Each figure is the
median over runs of the rate within a run.  Run: .venv/bin/python bench/render.py
"""
from __future__ import annotations

import json
import statistics
import sys
import time

from netbind.admission import validate_network
from netbind.api.models import KubeVirtConfiguration, VirtualMachineInstance
from netbind.api.versions import LATEST
from netbind.controller import render_launcher_pod

CONFIG = KubeVirtConfiguration.model_validate({"network": {"binding": {
    "passt": {"sidecarImage": "quay.io/kubevirt/network-passt-binding:v1.9.0",
              "networkAttachmentDefinition": "default/netbindingpasst", "migration": {},
              "computeResourceOverhead": {"requests": {"memory": "250Mi"}}},
    "macvtap": {"domainAttachmentType": "tap"},
    "l2": {"domainAttachmentType": "managedTap"},
    "dhcp": {"sidecarImage": "example.org/dhcp-binding:v1", "downwardAPI": "device-info"},
    "nadonly": {"networkAttachmentDefinition": "kube-system/plugin-nad"},
}}})
SECONDARY_PLUGINS = ["macvtap", "l2", "dhcp", "nadonly"]


def vmi(interfaces: int) -> VirtualMachineInstance:
    ifaces = [{"name": "default", "binding": {"name": "passt"}}]
    nets = [{"name": "default", "pod": {}}]
    for i in range(1, interfaces):
        ifaces.append({"name": f"sec{i}", "binding": {"name": SECONDARY_PLUGINS[i % 4]},
                       "macAddress": f"02:00:00:00:00:{i:02x}"})
        nets.append({"name": f"sec{i}", "multus": {"networkName": f"nad{i}"}})
    return VirtualMachineInstance.model_validate({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": "bench", "namespace": "default", "uid": "1234"},
        "spec": {"domain": {"resources": {"requests": {"memory": "1Gi"}},
                            "devices": {"interfaces": ifaces}}, "networks": nets},
        "status": {"runtimeUser": 107}})


def rate(func, seconds: float = 0.5) -> float:
    count = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        func()
        count += 1
    return count / elapsed


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    results = {}
    for n in (1, 16):
        v = vmi(n)
        validate = lambda: validate_network(v.spec, CONFIG, profile=LATEST)  # noqa: E731
        render = lambda: render_launcher_pod(v, CONFIG, profile=LATEST)  # noqa: E731
        assert validate() == [], validate()
        render()
        results[f"{n}-interface"] = {
            "validations_per_s": round(statistics.median(rate(validate) for _ in range(runs))),
            "pod_renders_per_s": round(statistics.median(rate(render) for _ in range(runs))),
        }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
