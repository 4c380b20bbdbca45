"""Launcher-pod behaviour the vectors do not record: root VMIs, support-container resources,
annotation sidecars, bad input."""
from __future__ import annotations

import json

import pytest

from netbind import controller
from netbind.api.versions import LATEST, V1_4
from netbind.controller import RenderError

REGISTRY = {"network": {"binding": {"passt": {
    "sidecarImage": "quay.io/kubevirt/network-passt-binding:v1.9.0",
    "networkAttachmentDefinition": "default/netbindingpasst",
    "computeResourceOverhead": {"requests": {"memory": "500Mi"}}}}}}


def _vmi(runtime_user=107, annotations=None, **domain):
    vmi = {"metadata": {"name": "vm1", "namespace": "ns1", "uid": "u-1"},
           "spec": {"domain": {"devices": {"interfaces": [{"name": "default", "binding": {"name": "passt"}}]},
                               **domain},
                    "networks": [{"name": "default", "pod": {}}]},
           "status": {"runtimeUser": runtime_user}}
    if annotations:
        vmi["metadata"]["annotations"] = annotations
    return vmi


def _sidecars(pod):
    return [c for c in pod["spec"]["containers"] if c["name"].startswith("hook-sidecar-")]


def test_root_vmi_sidecar_runs_as_root_without_xdg_env():
    pod = controller.render_launcher_pod(_vmi(runtime_user=0), REGISTRY, qemu_timeout="240s")
    (sidecar,) = _sidecars(pod)
    assert sidecar["securityContext"] == {"runAsUser": 0, "runAsNonRoot": False}
    assert sidecar["env"] == [{"name": "CONTAINER_NAME", "value": "hook-sidecar-0"},
                              {"name": "NETWORK_BINDING_PLUGIN_NAME", "value": "passt"}]
    compute = pod["spec"]["containers"][0]
    assert compute["securityContext"]["capabilities"] == {"add": ["NET_BIND_SERVICE", "SYS_NICE"]}
    assert "--run-as-nonroot" not in compute["args"]
    assert pod["spec"]["securityContext"] == {"runAsUser": 0, "fsGroup": 107}


def test_root_vmi_sidecar_v1_4_has_no_env():
    pod = controller.render_launcher_pod(_vmi(runtime_user=0), REGISTRY, profile=V1_4)
    (sidecar,) = _sidecars(pod)
    assert "env" not in sidecar
    assert sidecar["securityContext"] == {"privileged": False, "runAsUser": 0, "runAsNonRoot": False}
    assert sidecar["volumeMounts"] == [{"name": "hook-sidecar-sockets", "mountPath": "/var/run/kubevirt-hooks"}]


def test_support_container_resources_apply_to_sidecars():
    config = {**REGISTRY, "supportContainerResources": [
        {"type": "sidecar", "resources": {"requests": {"cpu": "50m", "memory": "0"},
                                          "limits": {"memory": "80Mi"}}}]}
    (sidecar,) = _sidecars(controller.render_launcher_pod(_vmi(), config))
    assert sidecar["resources"] == {"limits": {"memory": "80Mi"}, "requests": {"cpu": "50m"}}


def test_guaranteed_qos_gives_sidecars_default_limits():
    resources = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    (sidecar,) = _sidecars(controller.render_launcher_pod(_vmi(resources=resources), REGISTRY))
    assert sidecar["resources"] == {"limits": {"cpu": "200m", "memory": "64M"},
                                    "requests": {"cpu": "200m", "memory": "64M"}}


def test_annotation_sidecars_come_first():
    hooks = json.dumps([{"args": ["--version", "v1alpha3"], "image": "example/hook:v1",
                         "imagePullPolicy": "Always"}])
    pod = controller.render_launcher_pod(_vmi(annotations={"hooks.kubevirt.io/hookSidecars": hooks}),
                                         REGISTRY)
    first, second = _sidecars(pod)
    assert (first["image"], first["args"], first["imagePullPolicy"]) == \
        ("example/hook:v1", ["--version", "v1alpha3"], "Always")
    assert {"name": "NETWORK_BINDING_PLUGIN_NAME", "value": "passt"} not in first["env"]
    assert second["image"] == "quay.io/kubevirt/network-passt-binding:v1.9.0"
    assert second["volumeMounts"][0]["subPath"] == "hook-sidecar-1"
    args = pod["spec"]["containers"][0]["args"]
    assert args[args.index("--hook-sidecars") + 1] == "2"


def test_unparsable_hook_annotation_is_a_render_error():
    vmi = _vmi(annotations={"hooks.kubevirt.io/hookSidecars": "[{"})
    with pytest.raises(RenderError, match="hooks.kubevirt.io/hookSidecars"):
        controller.render_launcher_pod(vmi, REGISTRY)


@pytest.mark.parametrize("profile,word", [(LATEST, "binding"), (V1_4, "bindining")])
def test_unknown_binding_is_reported_like_virt_controller(profile, word):
    with pytest.raises(RenderError) as info:
        controller.render_launcher_pod(_vmi(), {}, profile=profile)
    assert str(info.value) == f"couldn't find configuration for network {word}: passt"
    assert info.value.condition() == {
        "type": "Synchronized", "status": "False", "reason": "FailedCreate",
        "message": f"failed to render launch manifest: couldn't find configuration for network {word}: passt"}


def test_absent_interface_keeps_its_sidecar_but_not_its_multus_element():
    vmi = _vmi()
    vmi["spec"]["domain"]["devices"]["interfaces"].append(
        {"name": "sec", "binding": {"name": "passt"}, "state": "absent"})
    vmi["spec"]["networks"].append({"name": "sec", "multus": {"networkName": "other/sec-nad"}})
    assert len(controller.binding_sidecars(vmi, REGISTRY)) == 1
    assert controller.multus_networks_annotation(vmi, REGISTRY) == (
        '[{"name":"netbindingpasst","namespace":"default","cni-args":{"logicNetworkName":"default"}}]')


def test_vm_and_kubevirt_cr_are_accepted():
    vm = {"kind": "VirtualMachine", "metadata": {"name": "vm1", "namespace": "ns1"},
          "spec": {"template": {"spec": _vmi()["spec"]}}}
    kubevirt = {"kind": "KubeVirt", "spec": {"configuration": REGISTRY}}
    pod = controller.render_launcher_pod(vm, kubevirt)
    assert pod["metadata"]["generateName"] == "virt-launcher-vm1-"
    assert len(_sidecars(pod)) == 1


def test_multus_json_escapes_like_go():
    vmi = _vmi()
    vmi["spec"]["domain"]["devices"]["interfaces"][0] = {"name": "default", "masquerade": {}}
    vmi["spec"]["domain"]["devices"]["interfaces"].append({"name": "a&b", "bridge": {}})
    vmi["spec"]["networks"].append({"name": "a&b", "multus": {"networkName": "n<1>"}})
    value = controller.multus_networks_annotation(vmi, REGISTRY)
    assert "\\u003c1\\u003e" in value and "<" not in value
