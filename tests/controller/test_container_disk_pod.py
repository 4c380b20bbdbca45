"""containerDisk volumes in the virt-launcher pod, as KubeVirt's virt-controller renders them.

Mirrors (KubeVirt source, read from the mirror):
* v1.4.1 and main without FG ImageVolume: ``pkg/virt-controller/services/template.go``
  ``renderLaunchManifest`` (containers after compute; ``newInitContainerRenderer`` and
  ``GenerateInitContainers`` as init containers), ``pkg/container-disk/container-disk.go``
  ``generateContainerFromVolume`` / ``getMinimalInitContainerDiskResources``,
  ``renderresources.go`` ``initContainerResourceRequirementsForVMI``, ``rendervolumes.go``
  ``Volumes``/``Mounts``/``imgPullSecrets``;
* main with FG ImageVolume (Beta, on by default): ``rendervolumes.go`` ``withImageVolumes``,
  ``addContainerDiskVolume(Mount)``, ``addLauncherBinaryVolume``; ``container-disk.go``
  ``CreateImageVolumeInitContainer``;
* ``pkg/defaults/defaults.go`` ``setDefaultPullPoliciesOnContainerDisks`` for unset pull policies.
"""
from __future__ import annotations

import copy

import pytest

from netbind import controller
from netbind.api.versions import LATEST, V1_4

UID = "0f3c7d4e-1111-2222-3333-444455556666"
DISK_DIR = f"/var/run/kubevirt/container-disks/{UID}"
IMAGE = "quay.io/containerdisks/fedora:41"

VMI = {"metadata": {"name": "v", "namespace": "ns", "uid": UID},
       "spec": {"domain": {"devices": {"disks": [{"name": "rootdisk", "disk": {"bus": "virtio"}},
                                                 {"name": "cloudinit", "disk": {"bus": "virtio"}},
                                                 {"name": "data", "disk": {"bus": "virtio"}}]}},
                "volumes": [{"name": "rootdisk", "containerDisk": {"image": IMAGE}},
                            {"name": "cloudinit", "cloudInitNoCloud": {"userData": "#cloud-config\n"}},
                            {"name": "data", "containerDisk": {"image": "registry.local/data",
                                                               "imagePullSecret": "regcred"}}]}}

DISK_RESOURCES = {"limits": {"cpu": "10m", "memory": "40M"},
                  "requests": {"cpu": "1m", "ephemeral-storage": "50M", "memory": "1M"}}
DISK_SECURITY = {"capabilities": {"drop": ["ALL"]}, "runAsUser": 107, "runAsNonRoot": True,
                 "allowPrivilegeEscalation": False}


def config(*gates, disabled=(), **extra):
    return {"developerConfiguration": {"featureGates": list(gates), "disabledFeatureGates": list(disabled)},
            **extra}


def render(vmi=VMI, cfg=None, profile=LATEST):
    return controller.render_launcher_pod(vmi, cfg if cfg is not None else config(), profile=profile,
                                          qemu_timeout="250s")


def names(items):
    return [item["name"] for item in items]


def compute_of(pod):
    return pod["spec"]["containers"][0]


def disk_container(name, image, policy, args):
    return {"name": name, "image": image, "command": ["/usr/bin/container-disk"], "args": args,
            "resources": DISK_RESOURCES,
            "volumeMounts": [{"name": "container-disks", "mountPath": DISK_DIR},
                             {"name": "virt-bin-share-dir", "mountPath": "/usr/bin"}],
            "imagePullPolicy": policy, "securityContext": DISK_SECURITY}


# --- v1.4 (and main with FG ImageVolume off): disk containers in emptyDirs -----------------------


def test_v1_4_serves_each_disk_from_a_volume_container_after_compute():
    pod = render(profile=V1_4)
    containers = pod["spec"]["containers"]
    assert names(containers) == ["compute", "volumerootdisk", "volumedata", "guest-console-log"]
    # the copy path names the disk by its index among all spec.volumes (cloudinit is index 1)
    assert containers[1] == disk_container("volumerootdisk", IMAGE, "IfNotPresent",
                                           ["--copy-path", f"{DISK_DIR}/disk_0"])
    assert containers[2] == disk_container("volumedata", "registry.local/data", "Always",
                                           ["--copy-path", f"{DISK_DIR}/disk_2"])


def test_v1_4_init_containers_copy_the_binary_then_pre_pull_every_disk():
    init = render(profile=V1_4)["spec"]["initContainers"]
    assert names(init) == ["container-disk-binary", "volumerootdisk-init", "volumedata-init"]
    assert init[0] == {
        "name": "container-disk-binary", "image": "quay.io/kubevirt/virt-launcher:v1.4.1",
        "command": ["/usr/bin/cp", "/usr/bin/container-disk", "/init/usr/bin/container-disk"],
        "resources": {"limits": {"cpu": "100m", "memory": "40M"}, "requests": {"cpu": "10m", "memory": "1M"}},
        "volumeMounts": [{"name": "virt-bin-share-dir", "mountPath": "/init/usr/bin"}],
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {"capabilities": {"drop": ["ALL"]}, "privileged": False, "runAsUser": 107,
                            "runAsGroup": 107, "runAsNonRoot": True, "allowPrivilegeEscalation": False},
    }
    assert init[1] == disk_container("volumerootdisk-init", IMAGE, "IfNotPresent", ["--no-op"])
    assert init[2]["args"] == ["--no-op"]


def test_v1_4_volumes_and_compute_mounts_keep_the_emptydirs():
    pod = render(profile=V1_4)
    volumes = pod["spec"]["volumes"]
    assert {"name": "container-disks", "emptyDir": {}} in volumes
    assert {"name": "virt-bin-share-dir", "emptyDir": {}} in volumes
    assert not any("image" in v for v in volumes)
    mounts = compute_of(pod)["volumeMounts"]
    assert names(mounts)[:4] == ["private", "public", "ephemeral-disks", "container-disks"]
    assert mounts[3] == {"name": "container-disks", "mountPath": "/var/run/kubevirt/container-disks",
                         "mountPropagation": "HostToContainer"}


def test_main_without_image_volume_renders_the_emptydir_way_with_main_fields():
    pod = render(cfg=config(disabled=["ImageVolume"]))
    spec = pod["spec"]
    assert names(spec["initContainers"]) == ["guest-console-log", "container-disk-binary",
                                             "volumerootdisk-init", "volumedata-init"]
    binary = spec["initContainers"][1]
    assert binary["command"] == ["/usr/bin/cp"]
    assert binary["args"] == ["--preserve=all", "/usr/bin/container-disk", "/init/usr/bin/container-disk"]
    assert binary["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert "privileged" not in binary["securityContext"]
    assert names(spec["containers"])[:3] == ["compute", "volumerootdisk", "volumedata"]
    assert {"name": "container-disks", "emptyDir": {}} in spec["volumes"]
    compute = compute_of(pod)
    # main mounts container-disks after the sockets, not after ephemeral-disks as v1.4 does
    assert names(compute["volumeMounts"])[5] == "container-disks"
    assert "--image-volume" not in compute["args"]


# --- main with FG ImageVolume (Beta, on by default): image volumes -------------------------------


def test_main_mounts_each_disk_image_as_an_image_volume():
    pod = render()
    spec = pod["spec"]
    assert "container-disks" not in names(spec["volumes"])
    assert spec["volumes"][6:9] == [
        {"name": "rootdisk", "image": {"reference": IMAGE, "pullPolicy": "IfNotPresent"}},
        {"name": "data", "image": {"reference": "registry.local/data", "pullPolicy": "Always"}},
        {"name": "launcher-volume", "image": {"reference": "quay.io/kubevirt/virt-launcher:v1.7.0",
                                              "pullPolicy": "IfNotPresent"}},
    ]
    mounts = compute_of(pod)["volumeMounts"]
    assert mounts[5:7] == [
        {"name": "rootdisk", "readOnly": True, "mountPath": "/var/run/kubevirt-image-volume/disk_0"},
        {"name": "data", "readOnly": True, "mountPath": "/var/run/kubevirt-image-volume/disk_2"},
    ]
    assert "--image-volume" in compute_of(pod)["args"]
    assert [c["name"] for c in spec["containers"] if c["name"].startswith("volume")] == []


def test_main_image_volume_init_containers_only_resolve_digests():
    init = render()["spec"]["initContainers"]
    assert names(init) == ["guest-console-log", "volumerootdisk", "volumedata"]
    assert init[1] == {
        "name": "volumerootdisk", "image": IMAGE,
        "command": ["/container-disk-binary/usr/bin/container-disk"], "args": ["--no-op"],
        "resources": DISK_RESOURCES,
        "volumeMounts": [{"name": "launcher-volume", "readOnly": True, "mountPath": "/container-disk-binary"}],
        "imagePullPolicy": "IfNotPresent", "securityContext": DISK_SECURITY,
    }


def test_skip_digest_resolution_drops_the_init_containers_and_launcher_volume():
    vmi = copy.deepcopy(VMI)
    vmi["metadata"]["annotations"] = {"kubevirt.io/image-volume-skip-digest-resolution": "true"}
    pod = render(vmi)
    assert names(pod["spec"]["initContainers"]) == ["guest-console-log"]
    assert "launcher-volume" not in names(pod["spec"]["volumes"])
    assert "rootdisk" in names(pod["spec"]["volumes"])


def test_image_volume_gate_listed_in_v1_4_changes_nothing():
    assert render(cfg=config("ImageVolume"), profile=V1_4) == render(profile=V1_4)


# --- shared details -------------------------------------------------------------------------------


def test_no_container_disk_no_disk_containers_nor_launcher_volume():
    vmi = copy.deepcopy(VMI)
    vmi["spec"]["volumes"] = [VMI["spec"]["volumes"][1]]
    vmi["spec"]["domain"]["devices"]["disks"] = [VMI["spec"]["domain"]["devices"]["disks"][1]]
    for profile in (LATEST, V1_4):
        pod = render(vmi, profile=profile)
        assert "container-disk-binary" not in names(pod["spec"].get("initContainers", []))
        assert not any(n.startswith("volume") for n in names(pod["spec"]["containers"]))
        assert "launcher-volume" not in names(pod["spec"]["volumes"])
        assert "imagePullSecrets" not in pod["spec"]


@pytest.mark.parametrize("profile", [LATEST, V1_4])
def test_pull_secrets_of_the_disks_go_to_the_pod_once(profile):
    vmi = copy.deepcopy(VMI)
    vmi["spec"]["volumes"][0]["containerDisk"]["imagePullSecret"] = "regcred"
    spec = render(vmi, profile=profile)["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    keys = list(spec)
    assert keys.index("securityContext") < keys.index("imagePullSecrets") < keys.index("hostname")


@pytest.mark.parametrize(("image", "policy"), [
    ("registry.local/disk", "Always"), ("registry.local/disk:latest", "Always"),
    ("registry.local:5000/disk", "IfNotPresent"),  # a port's colon counts as a tag (as in KubeVirt)
    ("registry.local/disk:v1", "IfNotPresent"), ("registry.local/disk@sha256:" + "a" * 64, "IfNotPresent"),
])
def test_unset_pull_policy_defaults_as_virt_api_does(image, policy):
    vmi = copy.deepcopy(VMI)
    vmi["spec"]["volumes"][0]["containerDisk"] = {"image": image}
    assert render(vmi, profile=V1_4)["spec"]["containers"][1]["imagePullPolicy"] == policy
    assert render(vmi)["spec"]["volumes"][6]["image"]["pullPolicy"] == policy


def test_an_explicit_pull_policy_is_kept():
    vmi = copy.deepcopy(VMI)
    vmi["spec"]["volumes"][0]["containerDisk"]["imagePullPolicy"] = "Never"
    assert render(vmi, profile=V1_4)["spec"]["initContainers"][1]["imagePullPolicy"] == "Never"


def test_support_container_resources_and_dedicated_cpu():
    cfg = config(disabled=["ImageVolume"], supportContainerResources=[
        {"type": "container-disk", "resources": {"requests": {"cpu": "5m", "memory": "0"},
                                                 "limits": {"memory": "80M"}}}])
    spec = render(cfg=cfg)["spec"]
    disk = spec["containers"][1]
    # a zero request counts as unset; ephemeral storage is fixed
    assert disk["resources"] == {"limits": {"cpu": "10m", "memory": "80M"},
                                 "requests": {"cpu": "5m", "ephemeral-storage": "50M", "memory": "1M"}}
    assert spec["initContainers"][1]["resources"] == {"limits": {"cpu": "100m", "memory": "80M"},
                                                      "requests": {"cpu": "5m", "memory": "1M"}}

    vmi = copy.deepcopy(VMI)
    vmi["spec"]["domain"]["cpu"] = {"cores": 1, "dedicatedCpuPlacement": True}
    vmi["spec"]["domain"]["resources"] = {"requests": {"memory": "1Gi"}}
    spec = render(vmi, profile=V1_4)["spec"]
    assert spec["containers"][1]["resources"] == {
        "limits": {"cpu": "10m", "memory": "40M"},
        "requests": {"cpu": "10m", "ephemeral-storage": "50M", "memory": "40M"}}
    assert spec["initContainers"][0]["resources"] == {"limits": {"cpu": "10m", "memory": "40M"},
                                                      "requests": {"cpu": "10m", "memory": "40M"}}


def test_root_vmi_binary_copier_runs_as_root_but_disk_containers_stay_non_root():
    vmi = copy.deepcopy(VMI)
    vmi["status"] = {"runtimeUser": 0}
    pod = render(vmi, profile=V1_4)
    binary = pod["spec"]["initContainers"][0]
    assert binary["securityContext"] == {"capabilities": {"drop": ["ALL"]}, "privileged": False,
                                         "runAsUser": 0, "runAsNonRoot": False}
    assert pod["spec"]["containers"][1]["securityContext"] == DISK_SECURITY


# --- cloud-init Secret references (rendervolumes.go handleCloudInitNoCloud/ConfigDrive) ----------


@pytest.mark.parametrize("profile", [LATEST, V1_4])
def test_cloud_init_secret_refs_become_secret_volumes_before_the_disk_images(profile):
    vmi = copy.deepcopy(VMI)
    vmi["spec"]["volumes"][1] = {"name": "cloudinit", "cloudInitNoCloud": {
        "userDataSecretRef": {"name": "my-user-data"}, "networkDataSecretRef": {"name": "my-net"}}}
    vmi["spec"]["volumes"].append({"name": "cd", "cloudInitConfigDrive": {"userDataSecretRef": {"name": "cd-ud"}}})
    vmi["spec"]["domain"]["devices"]["disks"].append({"name": "cd", "disk": {}})
    pod = render(vmi, profile=profile)
    volumes = pod["spec"]["volumes"]
    secrets = [v for v in volumes if "secret" in v]
    assert secrets == [{"name": "cloudinit-udata", "secret": {"secretName": "my-user-data"}},
                       {"name": "cloudinit-ndata", "secret": {"secretName": "my-net"}},
                       {"name": "cd-udata", "secret": {"secretName": "cd-ud"}}]
    first = volumes.index(secrets[0])
    assert names(volumes)[first - 1] in ("ephemeral-disks", "container-disks")
    if profile is LATEST:
        assert names(volumes)[first + 3] == "rootdisk"  # withImageVolumes after withVMIVolumes
    mounts = [m for m in compute_of(pod)["volumeMounts"] if m["name"].startswith(("cloudinit-", "cd-"))]
    base = "/var/run/kubevirt-private/secret"
    assert mounts == [
        {"name": "cloudinit-udata", "readOnly": True, "mountPath": f"{base}/cloudinit/userdata", "subPath": "userdata"},
        {"name": "cloudinit-udata", "readOnly": True, "mountPath": f"{base}/cloudinit/userData", "subPath": "userData"},
        {"name": "cloudinit-ndata", "readOnly": True, "mountPath": f"{base}/cloudinit/networkdata",
         "subPath": "networkdata"},
        {"name": "cloudinit-ndata", "readOnly": True, "mountPath": f"{base}/cloudinit/networkData",
         "subPath": "networkData"},
        {"name": "cd-udata", "readOnly": True, "mountPath": f"{base}/cd/userdata", "subPath": "userdata"},
        {"name": "cd-udata", "readOnly": True, "mountPath": f"{base}/cd/userData", "subPath": "userData"},
    ]


def test_inline_cloud_init_adds_no_volume():
    assert not any("secret" in v for v in render()["spec"]["volumes"])
