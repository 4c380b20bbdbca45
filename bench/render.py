"""Benchmark: KubeVirt-side throughput (issue 2): VMIs validated, launcher pods rendered, domains built.

Two VMIs: one passt-plugin interface on the pod network, and 16 interfaces (pod network with a
plugin, 15 Multus secondaries alternating tap/managedTap/sidecar/NAD plugins). Each figure is the
median over runs of the rate within a run (operations per second).
Run: .venv/bin/python bench/render.py [RUNS]

- validate: the network admitter on a parsed VMI (``netbind validate``'s causes)
- admit: the whole VMI create webhook answer from raw JSON (schema check, parsing, rules twice)
- render_pod: the whole virt-launcher Pod (``netbind render pod``)
- build_domain: phase 1 + phase 2 + whole-domain XML (``netbind render domain``)
"""
from __future__ import annotations

import json
import statistics
import sys
import time

from netbind.admission import admit_vmi_create, validate_network
from netbind.api.models import KubeVirtConfiguration, VirtualMachineInstance
from netbind.api.versions import LATEST
from netbind.controller import render_launcher_pod
from netbind.launcher.domain import build_domain, derive_pod_links

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
        "spec": {"architecture": "amd64", "domain": {"resources": {"requests": {"memory": "1Gi"}},
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
        raw = v.to_json()
        links = derive_pod_links(v, CONFIG, profile=LATEST)
        operations = {
            "validate": lambda: validate_network(v.spec, CONFIG, profile=LATEST),
            "admit": lambda: admit_vmi_create(raw, CONFIG, profile=LATEST),
            "render_pod": lambda: render_launcher_pod(v, CONFIG, profile=LATEST),
            "build_domain": lambda: build_domain(v, CONFIG, links, profile=LATEST),
        }
        assert operations["validate"]() == []
        assert operations["admit"]()["allowed"]
        results[f"{n}-interface"] = {
            f"{name}_per_s": round(statistics.median(rate(op) for _ in range(runs)))
            for name, op in operations.items()
        }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
