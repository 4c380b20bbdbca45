"""Pure parts of container sidecars: the pod container -> podman run translation, the kubelet's
cgroup figures, the per-sidecar choice between a container and a host process, CRI logs."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from netbind.api.loading import load_manifests
from netbind.controller import render_launcher_pod
from netbind.node import containers, sidecars
from netbind.node.images import ImageMap, ImageMapError
from netbind.review import configuration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOOKS = Path("/run/nb-x/pods/nb-p/hooks")
PODINFO = Path("/run/nb-x/pods/nb-p/podinfo")


def _pod(example: str = "passt") -> dict:
    manifests = load_manifests([EXAMPLES / example])
    return render_launcher_pod(manifests.vmi, configuration(manifests), nads=manifests.nads)


def _sidecar(pod: dict) -> dict:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "hook-sidecar-0")


def _compose(container: dict, pod: dict, **kw) -> containers.ContainerPlan:
    dirs = {"hook-sidecar-sockets": HOOKS, containers_podinfo(pod): PODINFO}
    return containers.compose(container, pod["spec"], image="localhost/s:1", netns="nb-p", volume_dirs=dirs,
                              pod_name="virt-launcher-x", fields={"metadata.name": "virt-launcher-x",
                                                                  "metadata.namespace": "ns1"}, **kw)


def containers_podinfo(pod: dict) -> str:
    return next((v["name"] for v in pod["spec"]["volumes"] if "downwardAPI" in v), "network-info-annotation")


def test_the_rendered_passt_sidecar_becomes_this_podman_run():
    pod = _pod()
    plan = _compose(_sidecar(pod), pod)
    args = plan.run_args()
    assert plan.name == "nb-p-hook-sidecar-0" and args[-1] == "localhost/s:1"     # the image's entrypoint
    pairs = list(zip(args, args[1:]))
    assert ("--network", "ns:/run/netns/nb-p") in pairs and ("--pull", "never") in pairs
    assert ("--user", "107:107") in pairs and ("--group-add", "107") in pairs        # fsGroup of the pod
    assert ("--cap-drop", "ALL") in pairs and "--cap-add" not in args
    assert ("--security-opt", "no-new-privileges") in pairs                            # allowPrivilegeEscalation
    assert "--read-only" not in args and "--privileged" not in args and "--memory" not in args
    assert ("--volume", f"{HOOKS}/hook-sidecar-0:/var/run/kubevirt-hooks:rw") in pairs   # subPath
    env = [v for k, v in pairs if k == "--env"]
    assert env == ["XDG_CACHE_HOME=/var/run/kubevirt-private", "XDG_CONFIG_HOME=/var/run/kubevirt-private",
                   "XDG_RUNTIME_DIR=/var/run", "CONTAINER_NAME=hook-sidecar-0", "NETWORK_BINDING_PLUGIN_NAME=passt"]
    assert ("--label", "io.netbind.pod=nb-p") in pairs and ("--hostname", "virt-launcher-x") in pairs
    assert "--entrypoint" not in args


def test_command_args_env_refs_read_only_and_resources_follow_the_container():
    pod = _pod()
    container = copy.deepcopy(_sidecar(pod))
    container.update(command=["/bin/sidecar", "--serve"], args=["--verbose"],
                     env=[{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                          {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                     resources={"limits": {"memory": "64Mi", "cpu": "200m"}, "requests": {"cpu": "100m"}})
    container["securityContext"] = {**container["securityContext"], "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}
    pod["spec"]["volumes"].append({"name": "network-info-annotation", "downwardAPI": {"items": []}})
    container["volumeMounts"].append({"name": "network-info-annotation", "mountPath": "/etc/podinfo"})
    args = _compose(container, pod).run_args()
    pairs = list(zip(args, args[1:]))
    assert args[-4:] == ["--entrypoint", '["/bin/sidecar", "--serve"]', "localhost/s:1", "--verbose"]
    assert [v for k, v in pairs if k == "--env"] == ["POD=virt-launcher-x", "NS=ns1"]
    assert "--read-only" in args and ("--cap-add", "NET_BIND_SERVICE") in pairs
    assert ("--memory", str(64 * 2**20)) in pairs and ("--cpu-quota", "20000") in pairs
    assert ("--cpu-shares", "102") in pairs
    assert ("--volume", f"{PODINFO}:/etc/podinfo:ro") in pairs        # the downward API: read-only


def test_kubelet_cgroup_figures():
    assert containers.cgroup_settings({}) == {"memory": None, "cpu_quota": None, "cpu_shares": None}
    assert containers.cgroup_settings({"requests": {"cpu": "100m", "memory": "1Gi"}}) == \
        {"memory": None, "cpu_quota": None, "cpu_shares": 102}               # a memory request limits nothing
    assert containers.cgroup_settings({"limits": {"cpu": "2", "memory": "1G"}}) == \
        {"memory": 10**9, "cpu_quota": 200000, "cpu_shares": 2048}          # a limit alone is the request too
    assert containers.cgroup_settings({"requests": {"cpu": "1m"}})["cpu_shares"] == 2   # the kubelet's floor


@pytest.mark.parametrize("change, message", [
    (lambda c, p: c["volumeMounts"].append({"name": "nope", "mountPath": "/x"}),
     r"volumeMounts\[1\] \(nope\): no pod volume of that name"),
    (lambda c, p: (p["spec"]["volumes"].append({"name": "cfg", "configMap": {"name": "x"}}),
                   c["volumeMounts"].append({"name": "cfg", "mountPath": "/cfg"})),
     r"volumeMounts\[1\] \(cfg\): volume kind configMap is not supported locally"),
    (lambda c, p: c["volumeMounts"][0].update(subPath="../../etc"), r"subPath '../../etc' must be a relative path"),
    (lambda c, p: c["securityContext"].update(runAsUser=0), r"runAsNonRoot with runAsUser 0"),
    (lambda c, p: c["env"].append({"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}),
     r"env\[5\] \(S\): valueFrom.secretKeyRef is not supported locally"),
])
def test_what_cannot_run_here_is_named(change, message):
    pod = copy.deepcopy(_pod())
    container = _sidecar(pod)
    change(container, pod)
    with pytest.raises(containers.ContainerSpecError, match=message):
        _compose(container, pod)


def test_cri_log_text_joins_partial_lines_and_drops_the_prefix():
    raw = ("2026-12-06T13:00:00.1Z stdout F serving\n"
           "2026-12-06T13:00:00.2Z stderr P part one \n"
           "2026-12-06T13:00:00.3Z stderr F and two\n")
    assert containers.cri_log_text(raw) == "serving\npart one and two\n"


def test_log_tail_keeps_a_line_conmon_split_into_a_partial_and_an_empty_final_record(tmp_path):
    # what conmon wrote for print(..., flush=True) in a failing run, where `podman logs --tail` showed nothing
    log = tmp_path / "hook-sidecar-0.log"
    log.write_text("".join(f"2026-12-06T19:04:57.{i:09d}+00:00 stdout F line {i}\n" for i in range(20))
                   + "2026-12-06T19:04:57.939925023+00:00 stdout P never serving\n"
                     "2026-12-06T19:04:57.940052121+00:00 stdout F \n")
    tail = containers.log_tail("unused", log, lines=3)
    assert tail == "line 18\nline 19\nnever serving"


# ---- container or process ----------------------------------------------------------------------

MAP = {"sidecars": {"quay.io/x/sidecar": {"image": "localhost/netbind-passt-sidecar:latest",
                                          "command": ["true"]},
                    "quay.io/x/image-only": {"image": "localhost/only:1"},
                    "quay.io/x/command-only": {"command": ["true"]}}}


@pytest.fixture
def image_map(tmp_path) -> ImageMap:
    import yaml

    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump(MAP))
    return ImageMap.load(path)


def _choose(image_map, image, mode="auto", present=(), unavailable=None):
    return sidecars.choose({"name": "hook-sidecar-0", "image": image}, image_map, mode,
                           lambda ref: ref in present, unavailable)


def test_the_pods_own_image_in_the_store_wins(image_map):
    choice = _choose(image_map, "quay.io/x/sidecar:v1", present={"quay.io/x/sidecar:v1",
                                                               "localhost/netbind-passt-sidecar:latest"})
    assert (choice.kind, choice.local_image, choice.why) == ("container", "quay.io/x/sidecar:v1",
                                                             "the image is in the local image store")


def test_the_mapped_image_runs_when_the_pods_is_absent(image_map):
    choice = _choose(image_map, "quay.io/x/sidecar:v1", present={"localhost/netbind-passt-sidecar:latest"})
    assert choice.kind == "container" and choice.local_image == "localhost/netbind-passt-sidecar:latest"
    assert "image map quay.io/x/sidecar" in choice.why
    assert choice.describe().startswith("hook-sidecar-0: image quay.io/x/sidecar:v1 -> container of localhost/")


def test_auto_falls_back_to_the_command_and_says_how_to_get_the_container(image_map):
    choice = _choose(image_map, "quay.io/x/sidecar:v1")
    assert choice.kind == "process" and choice.process.argv[0].endswith("true")
    assert "neither quay.io/x/sidecar:v1 nor localhost/netbind-passt-sidecar:latest" in choice.why
    assert "`netbind image build passt`" in choice.why and "image map quay.io/x/sidecar" in choice.why
    unavailable = _choose(image_map, "quay.io/x/sidecar:v1", present={"quay.io/x/sidecar:v1"},
                          unavailable="podman is not installed")
    assert unavailable.kind == "process" and "containers cannot run here: podman is not installed" in unavailable.why


def test_container_mode_refuses_a_missing_image_naming_container_and_image(image_map):
    with pytest.raises(sidecars.SidecarError, match=r"sidecar hook-sidecar-0 \(image quay.io/x/sidecar:v1\) cannot"
                       r" run as a container: neither .* --sidecars auto\|process"):
        _choose(image_map, "quay.io/x/sidecar:v1", mode="container")


def test_process_mode_ignores_the_store(image_map):
    choice = _choose(image_map, "quay.io/x/sidecar:v1", mode="process", present={"quay.io/x/sidecar:v1"})
    assert choice.kind == "process" and choice.why.startswith("--sidecars process")


def test_an_image_only_entry_has_no_process_fallback(image_map):
    assert _choose(image_map, "quay.io/x/image-only", present={"localhost/only:1"}).kind == "container"
    with pytest.raises(sidecars.SidecarError, match="maps only to the image 'localhost/only:1'.*no command"):
        _choose(image_map, "quay.io/x/image-only")
    with pytest.raises(sidecars.SidecarError, match=r"(?s)not in the image map.*\n\(as a container: quay.io/x/unknown"
                       r" is not in the local image store and the image map names no local image for it\)"):
        _choose(image_map, "quay.io/x/unknown")


def test_mode_comes_from_the_option_then_the_environment(monkeypatch):
    monkeypatch.setenv("NETBIND_SIDECARS", "container")
    assert sidecars.mode_of(None) == "container" and sidecars.mode_of("process") == "process"
    monkeypatch.delenv("NETBIND_SIDECARS")
    assert sidecars.mode_of(None) == "auto"
    with pytest.raises(sidecars.SidecarError, match="'podman' is not one of auto, container, process"):
        sidecars.mode_of("podman")


@pytest.mark.parametrize("entry, message", [
    ({"env": {"A": "1"}}, r"sidecars.quay.io/y: give image: \(a local image\) and/or command:"),
    ({"image": ""}, r"sidecars.quay.io/y.image: give a local image reference"),
])
def test_bad_image_map_sidecar_entries_are_named(tmp_path, entry, message):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"sidecars": {"quay.io/y": entry}}))
    with pytest.raises(ImageMapError, match=message):
        ImageMap.load(path)


def test_the_default_map_names_the_built_images_for_both_reference_sidecars():
    from netbind.images import IMAGES

    default = ImageMap.load()
    assert default.sidecar_image("quay.io/kubevirt/network-passt-binding:20231205_29a16d5c9")[0] == IMAGES["passt"].tag
    assert default.sidecar_image("quay.io/netbind/bridge-binding-sidecar:v0.1.0")[0] == IMAGES["bridge"].tag
