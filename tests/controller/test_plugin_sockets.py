"""FG Plugins gives the launcher pod the plugin socket volume, where virt-controller puts it."""
from __future__ import annotations

import pytest

from netbind import controller
from netbind.api.versions import LATEST, V1_4

VMI = {"metadata": {"name": "v", "namespace": "ns"},
       "spec": {"domain": {"devices": {"interfaces": [{"name": "default", "binding": {"name": "b"}}]}},
                "networks": [{"name": "default", "pod": {}}]}}


def config(*gates, disabled=()):
    return {"developerConfiguration": {"featureGates": list(gates), "disabledFeatureGates": list(disabled)},
            "network": {"binding": {"b": {"sidecarImage": "img"}}}}


def names(items):
    return [item["name"] for item in items]


def test_volume_and_mount_follow_the_hook_sidecar_volume_with_the_gate():
    pod = controller.render_launcher_pod(VMI, config("Plugins"), profile=LATEST)
    volumes = names(pod["spec"]["volumes"])
    compute = next(c for c in pod["spec"]["containers"] if c["name"] == "compute")
    mounts = names(compute["volumeMounts"])
    assert volumes[volumes.index("hook-sidecar-sockets") + 1] == "kubevirt-plugin-sockets"
    assert mounts[mounts.index("hook-sidecar-sockets") + 1] == "kubevirt-plugin-sockets"
    assert volumes.index("kubevirt-plugin-sockets") < volumes.index("hotplug-disks")
    assert {"name": "kubevirt-plugin-sockets", "emptyDir": {}} in pod["spec"]["volumes"]
    assert {"name": "kubevirt-plugin-sockets", "mountPath": "/var/run/kubevirt-plugin"} in compute["volumeMounts"]
    sidecar = next(c for c in pod["spec"]["containers"] if c["name"] == "hook-sidecar-0")
    assert "kubevirt-plugin-sockets" not in names(sidecar.get("volumeMounts", []))


@pytest.mark.parametrize(("cfg", "profile"), [
    (config(), LATEST),  # Alpha: off unless listed
    (config(disabled=["Plugins"]), LATEST),
    (config("Plugins"), V1_4),  # v1.4 has no such gate
])
def test_no_volume_without_the_gate(cfg, profile):
    pod = controller.render_launcher_pod(VMI, cfg, profile=profile)
    assert "kubevirt-plugin-sockets" not in names(pod["spec"]["volumes"])
