"""Admission throughput: VMIs validated per second (median of runs), 1- and 16-interface VMIs.

Run: .venv/bin/python bench/admission.py  [--runs N]
Measures the network admitter (validate_network, from a parsed VMI) and the whole VMI create
webhook answer (admit_vmi_create, from raw JSON: schema check, model parsing, rules run twice).
"""
from __future__ import annotations

import argparse
import statistics
import time

from netbind.admission import admit_vmi_create, validate_network
from netbind.api.models import KubeVirtConfiguration, VirtualMachineInstance

CONFIG = KubeVirtConfiguration.model_validate({"network": {"binding": {
    "passt": {"sidecarImage": "quay.io/kubevirt/network-passt-binding:v1.7.0",
              "networkAttachmentDefinition": "default/netbindingpasst", "migration": {}},
    "l2": {"domainAttachmentType": "managedTap"}}}})


def vmi_json(count: int) -> dict:
    interfaces = [{"name": "default", "binding": {"name": "passt"}, "ports": [{"name": "http", "port": 80}]}]
    networks = [{"name": "default", "pod": {}}]
    for i in range(1, count):
        interfaces.append({"name": f"sec{i}", "binding": {"name": "l2"}, "macAddress": f"02:00:00:00:00:{i:02x}"})
        networks.append({"name": f"sec{i}", "multus": {"networkName": f"ns/nad{i}"}})
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": "vmi", "namespace": "default"},
            "spec": {"architecture": "amd64", "networks": networks,
                     "domain": {"resources": {"requests": {"memory": "1Gi"}}, "devices": {"interfaces": interfaces}}}}


def rate(func, seconds: float = 0.3) -> float:
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        func()
        calls += 1
    return calls / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for count in (1, 16):
        document = vmi_json(count)
        spec = VirtualMachineInstance.model_validate(document).spec
        assert validate_network(spec, CONFIG) == [] and admit_vmi_create(document, CONFIG)["allowed"]
        network = statistics.median(rate(lambda: validate_network(spec, CONFIG)) for _ in range(args.runs))
        webhook = statistics.median(rate(lambda: admit_vmi_create(document, CONFIG)) for _ in range(args.runs))
        print(f"{count:2d} interface(s): validate_network {network:9.0f}/s   admit_vmi_create {webhook:9.0f}/s")


if __name__ == "__main__":
    main()
