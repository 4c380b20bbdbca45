"""Invariants of the rendered virt-launcher pod for generated VMIs and registries."""
from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st

from netbind import controller
from netbind.api.quantity import Quantity
from netbind.api.versions import LATEST, V1_4
from netbind.controller import RenderError

names = st.text(alphabet="abcdefghij", min_size=1, max_size=6)
images = st.sampled_from(["", "quay.io/a/one:v1", "quay.io/a/two:v1", "quay.io/b/three:v2"])
memory = st.sampled_from([None, "0", "64Mi", "500Mi", "1Gi", "100M"])


@st.composite
def plugins(draw):
    entry = {}
    if image := draw(images):
        entry["sidecarImage"] = image
    if draw(st.booleans()):
        entry["networkAttachmentDefinition"] = draw(st.sampled_from(["nad", "ns/nad"]))
    if draw(st.booleans()):
        entry["downwardAPI"] = "device-info"
    if (mem := draw(memory)) is not None:
        entry["computeResourceOverhead"] = {"requests": {"memory": mem, "cpu": "100m"},
                                            "limits": {"memory": "9Gi"}}
    return entry


@st.composite
def cases(draw):
    registry = draw(st.dictionaries(names, plugins(), max_size=4))
    bindings = sorted(registry) + ["unregistered"] * draw(st.integers(0, 1))
    count = draw(st.integers(1, 5))
    interfaces, networks = [], []
    for index in range(count):
        net = f"net{index}x"
        iface = {"name": net}
        if bindings and draw(st.booleans()):
            iface["binding"] = {"name": draw(st.sampled_from(bindings))}
        else:
            iface["masquerade" if index == 0 else "bridge"] = {}
        if draw(st.booleans()) and index:
            iface["state"] = "absent"
        interfaces.append(iface)
        networks.append({"name": net, "pod": {}} if index == 0 else
                        {"name": net, "multus": {"networkName": f"nad-{index}"}})
    annotation_sidecars = draw(st.lists(st.just({"args": ["--version", "v1alpha3"]}), max_size=2))
    vmi = {"metadata": {"name": "vm", "namespace": "ns", "uid": "u1"},
           "spec": {"domain": {"resources": {"requests": {"memory": "256Mi"}},
                               "devices": {"interfaces": interfaces}},
                    "networks": networks},
           "status": {"runtimeUser": draw(st.sampled_from([0, 107]))}}
    if annotation_sidecars:
        vmi["metadata"]["annotations"] = {"hooks.kubevirt.io/hookSidecars": json.dumps(annotation_sidecars)}
    return vmi, {"network": {"binding": registry}}, len(annotation_sidecars)


def _used(vmi):
    return [i["binding"]["name"] for i in vmi["spec"]["domain"]["devices"]["interfaces"] if "binding" in i]


@settings(max_examples=150, deadline=None)
@given(cases(), st.sampled_from([LATEST, V1_4]))
def test_pod_invariants(case, profile):
    vmi, config, annotation_count = case
    registry = config["network"]["binding"]
    used = _used(vmi)
    try:
        nads = [{"metadata": {"name": n["multus"]["networkName"], "namespace": "ns"}}
                for n in vmi["spec"]["networks"] if "multus" in n]  # v1.4 looks every NAD up
        pod = controller.render_launcher_pod(vmi, config, nads=nads, profile=profile, qemu_timeout="250s")
    except RenderError as exc:
        assert any(name not in registry for name in used)
        assert "couldn't find configuration for network" in str(exc)
        return
    assert all(name in registry for name in used)
    containers = pod["spec"]["containers"]
    sidecars = [c for c in containers if c["name"].startswith("hook-sidecar-")]
    compute = containers[0]
    flags = compute.get("command", []) + compute.get("args", [])
    # --hook-sidecars counts exactly the sidecar containers, named hook-sidecar-0..N-1
    assert int(flags[flags.index("--hook-sidecars") + 1]) == len(sidecars)
    assert [c["name"] for c in sidecars] == [f"hook-sidecar-{i}" for i in range(len(sidecars))]
    # one sidecar per distinct binding name with an image, after the annotation sidecars
    with_image = sorted({n for n in used if registry[n].get("sidecarImage")})
    assert len(sidecars) == annotation_count + len(with_image)
    assert [c["image"] for c in sidecars[annotation_count:]] == [registry[n]["sidecarImage"] for n in with_image]
    volume_names = [v["name"] for v in pod["spec"]["volumes"]]
    assert ("hook-sidecar-sockets" in volume_names) == bool(sidecars)
    device_info = any(registry[n].get("downwardAPI") == "device-info" for n in used)
    assert ("network-info-annotation" in volume_names) == device_info
    for container in sidecars[annotation_count:]:
        mounts = [m["name"] for m in container["volumeMounts"]]
        assert mounts[0] == "hook-sidecar-sockets"
        non_root = vmi["status"]["runtimeUser"] != 0
        assert container["securityContext"]["runAsNonRoot"] is non_root
    # the overhead counts each distinct binding's memory request once
    expected = Quantity()
    for name in dict.fromkeys(used):
        mem = registry[name].get("computeResourceOverhead", {}).get("requests", {}).get("memory")
        if mem is not None:
            expected = expected.add(Quantity.parse(mem))
    assert controller.network_memory_overhead(vmi, config, profile=profile) == expected
    total = controller.memory_overhead(vmi, config, profile=profile)
    request = Quantity.parse(compute["resources"]["requests"]["memory"])
    assert request == Quantity.parse("256Mi").add(total)
    if profile is LATEST:
        assert pod["metadata"]["annotations"]["kubevirt.io/memory-overhead-bytes"] == str(total.value())


@settings(max_examples=100, deadline=None)
@given(cases())
def test_multus_binding_elements_follow_their_network(case):
    vmi, config, _ = case
    registry = config["network"]["binding"]
    try:
        value = controller.multus_networks_annotation(vmi, config)
    except RenderError:
        return
    elements = json.loads(value) if value else []
    present = [i for i in vmi["spec"]["domain"]["devices"]["interfaces"] if i.get("state") != "absent"]
    expected_binding = [i["name"] for i in present if "binding" in i
                        and registry.get(i["binding"]["name"], {}).get("networkAttachmentDefinition")]
    assert [e["cni-args"]["logicNetworkName"] for e in elements if "cni-args" in e] == expected_binding
    for element in elements:
        assert list(element)[:2] == ["name", "namespace"]
        assert ("interface" in element) != ("cni-args" in element)
    assert value is None or value == json.dumps(elements, separators=(",", ":"))
