"""virt-launcher pod rendering against the pod vectors recorded from real KubeVirt (main and v1.4.1)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from netbind import controller
from netbind.api.versions import LATEST, V1_4
from netbind.controller import RenderError

PLACEHOLDER = "<qemu-timeout: 240s + random jitter [0,120)s>"
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PROFILES = {"oracle": LATEST, "oracle-v1.4": V1_4}


def _vectors(kind: str):
    for directory in PROFILES:
        for path in sorted((SHARED / directory / kind).glob("*.json")):
            yield pytest.param(directory, path, id=f"{directory}/{path.stem}")


POD_VECTORS = list(_vectors("pod"))


def _load(directory: str, path: Path):
    return json.loads(path.read_text()), PROFILES[directory]


def _outcome(call):
    try:
        return {"value": call()}
    except RenderError as exc:
        return {"error": str(exc)}


def test_every_vector_directory_is_present():
    assert len(POD_VECTORS) >= 36, "expected the 14 main and 22 v1.4 pod vectors in ../shared"


@pytest.mark.parametrize("directory,path", POD_VECTORS)
def test_functions(directory, path):
    case, profile = _load(directory, path)
    fn, vmi, config = case["functions"], case["vmi"], case["kubevirt_config"]

    sidecars = _outcome(lambda: controller.binding_sidecars(vmi, config, profile=profile))
    assert sidecars == fn["netbinding_sidecars"]

    multus = _outcome(lambda: controller.multus_networks_annotation(vmi, config, profile=profile) or "")
    assert multus == fn["multus_generate_cni_annotation"]

    annotations = _outcome(lambda: controller.network_pod_annotations(vmi, config, profile=profile))
    assert annotations == fn["net_pod_annotations_generate"]

    if "net_generate_from_active_pod" in fn:
        active = controller.generate_from_active_pod(vmi, config, case["active_pod_annotations"],
                                                     profile=profile)
        assert active == (fn["net_generate_from_active_pod"] or {})

    net = controller.network_memory_overhead(vmi, config, profile=profile)
    assert (str(net), net.value()) == (fn["net_memory_overhead"], fn["net_memory_overhead_bytes"])
    total = controller.memory_overhead(vmi, config, profile=profile)
    assert (str(total), total.value()) == (fn["calculate_memory_overhead_total"],
                                           fn["calculate_memory_overhead_total_bytes"])
    without_net = controller.memory_overhead(vmi, config, profile=profile, include_network=False)
    assert str(without_net) == fn["calculate_memory_overhead_without_net"]


def relevant(pod: dict) -> dict:
    """The vectors' ``render.relevant`` view of a pod."""
    spec = pod["spec"]
    compute = spec["containers"][0]
    flags = compute.get("command", []) + compute.get("args", [])
    keys = ("name", "image", "imagePullPolicy", "command", "args", "env", "volumeMounts", "resources",
            "securityContext")
    return {
        "annotations": pod["metadata"]["annotations"],
        "containers": [{k: c[k] for k in keys if k in c} for c in spec["containers"]],
        "compute_resources": compute["resources"],
        "compute_arg_hook_sidecars": flags[flags.index("--hook-sidecars") + 1],
        "network_related_volumes": [v for v in spec["volumes"]
                                    if v["name"] in ("hook-sidecar-sockets", "network-info-annotation")]
        or None,  # the recorder wrote Go's nil slice
    }


def _sidecar_order(pod: dict) -> str:
    return ",".join(f"{c['name']}={c['image']}" for c in pod["spec"]["containers"]
                    if c["name"].startswith("hook-sidecar-"))


def _resource_env_order(pod: dict) -> str:
    return ",".join(e["name"] for e in pod["spec"]["containers"][0].get("env", [])
                    if e["name"].startswith("KUBEVIRT_RESOURCE_NAME_"))


def _canonical(pod: dict, render: dict) -> dict:
    """Our pod in the vector's order where KubeVirt's order is random (and we checked it is allowed)."""
    pod = copy.deepcopy(pod)
    expected = render["pod"]
    if render.get("sidecar_order_nondeterministic"):
        assert _sidecar_order(pod) in render["observed_sidecar_orders"]
        want = [c["image"] for c in expected["spec"]["containers"] if c["name"].startswith("hook-sidecar-")]
        ours = {c["image"]: c for c in pod["spec"]["containers"] if c["name"].startswith("hook-sidecar-")}
        others = [c for c in pod["spec"]["containers"] if not c["name"].startswith("hook-sidecar-")]
        reordered = []
        for index, image in enumerate(want):
            container = json.loads(json.dumps(ours[image]).replace(
                json.dumps(ours[image]["name"]), json.dumps(f"hook-sidecar-{index}")))
            reordered.append(container)
        pod["spec"]["containers"] = others + reordered
    if render.get("resource_env_order_nondeterministic"):
        assert _resource_env_order(pod) in render["observed_resource_env_orders"]
        env = pod["spec"]["containers"][0]["env"]
        order = [e["name"] for e in expected["spec"]["containers"][0]["env"]]
        env.sort(key=lambda e: order.index(e["name"]))
    return pod


@pytest.mark.parametrize("directory,path", POD_VECTORS)
def test_render(directory, path):
    case, profile = _load(directory, path)
    render = case["render"]
    try:
        pod = controller.render_launcher_pod(case["vmi"], case["kubevirt_config"], nads=case["nads"],
                                             profile=profile, qemu_timeout=PLACEHOLDER)
    except RenderError as exc:
        assert "error" in render, f"unexpected render error: {exc}"
        assert str(exc) == render["error"]
        assert exc.condition()["message"] == f"failed to render launch manifest: {render['error']}"
        return
    assert "error" not in render, f"KubeVirt fails here: {render.get('error')}"
    ordered = _canonical(pod, render)
    assert relevant(ordered) == render["relevant"]
    assert ordered == render["pod"]  # the full manifest matches too
    assert json.loads(json.dumps(pod)) == pod  # plain JSON data


def test_two_plugin_render_is_deterministic():
    path = SHARED / "oracle" / "pod" / "08-two-sidecar-plugins.json"
    case = json.loads(path.read_text())
    orders = {_sidecar_order(controller.render_launcher_pod(case["vmi"], case["kubevirt_config"]))
              for _ in range(5)}
    assert len(orders) == 1
    assert orders.pop() == case["render"]["observed_sidecar_orders"][0]  # sorted by binding name


def test_qemu_timeout_is_jittered_by_default():
    path = SHARED / "oracle" / "pod" / "01-passt-sidecar-plugin.json"
    case = json.loads(path.read_text())
    for _ in range(20):
        args = controller.render_launcher_pod(case["vmi"], case["kubevirt_config"])["spec"]["containers"][0]["args"]
        timeout = args[args.index("--qemu-timeout") + 1]
        assert timeout.endswith("s") and 240 <= int(timeout[:-1]) < 360


ADMISSION_VECTORS = list(_vectors("admission"))


@pytest.mark.parametrize("directory,path", ADMISSION_VECTORS)
def test_admission_netbinding_sidecars(directory, path):
    case, profile = _load(directory, path)
    expected = case["netbinding_sidecars"]
    try:
        sidecars = controller.binding_sidecars(case["vmi"], case["kubevirt_config"], profile=profile)
    except RenderError as exc:
        assert str(exc) == expected.get("error")
        assert expected["sidecars"] is None
        return
    assert "error" not in expected
    stored = expected["sidecars"] or []
    if profile is V1_4:  # v1.4 has no plugin names: stored sorted by (image, downwardAPI)
        sidecars = sorted(sidecars, key=lambda s: (s["image"], s["downwardAPI"]))
    assert sidecars == stored


def test_admission_vectors_are_present():
    assert len(ADMISSION_VECTORS) >= 100


def _v140_deltas():
    deltas = json.loads((SHARED / "oracle-v1.4" / "v1.4.0-deltas.json").read_text())["pod"]
    for path in sorted((SHARED / "oracle-v1.4" / "pod").glob("*.json")):
        if path.stem in deltas:
            yield pytest.param(path, deltas[path.stem], id=path.stem)


@pytest.mark.parametrize("path,delta", list(_v140_deltas()))
def test_v1_4_0_release(path, delta):
    """v1.4.0 differs only in its virtqemud figure (35Mi) and the console log's socket timeout."""
    case = json.loads(path.read_text())
    vmi, config = case["vmi"], case["kubevirt_config"]
    total = controller.memory_overhead(vmi, config, profile=V1_4, release="1.4.0")
    without = controller.memory_overhead(vmi, config, profile=V1_4, release="1.4.0", include_network=False)
    fields = {"functions.calculate_memory_overhead_total": str(total),
              "functions.calculate_memory_overhead_total_bytes": total.value(),
              "functions.calculate_memory_overhead_without_net": str(without)}
    if "error" not in case["render"]:
        pod = controller.render_launcher_pod(vmi, config, nads=case["nads"], profile=V1_4,
                                             qemu_timeout=PLACEHOLDER, release="1.4.0")
        fields["render.relevant.compute_resources"] = pod["spec"]["containers"][0]["resources"]
        console = next(c for c in pod["spec"]["containers"] if c["name"] == "guest-console-log")
        fields["render.relevant.containers[guest-console-log].args"] = console["args"]
    checked = 0
    for key, values in delta.items():
        if key in fields:
            assert fields[key] == values["v1.4.0"], key
            checked += 1
    assert checked >= 3
