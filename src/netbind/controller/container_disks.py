"""What a ``containerDisk`` volume adds to the virt-launcher pod, as virt-controller renders it.

Two ways, chosen by the ``ImageVolume`` feature gate (KubeVirt main only, Beta so on by default):

* without it (always in v1.4): the launcher image's ``container-disk-binary`` init container copies
  the ``container-disk`` program into the ``virt-bin-share-dir`` emptyDir; one ``volume<name>-init``
  init container per disk pre-pulls its image, and one ``volume<name>`` container serves the disk
  file from the ``container-disks`` emptyDir (``pkg/container-disk/container-disk.go``);
* with it: each disk image is a Kubernetes ``image`` volume mounted read-only into the compute
  container under ``/var/run/kubevirt-image-volume/disk_<index>``; a ``volume<name>`` init container
  per disk (running the program from the ``launcher-volume`` image volume) only makes the kubelet
  record the image digest (``CreateImageVolumeInitContainer``, ``withImageVolumes``).

``<index>`` is the volume's position in ``spec.volumes`` (all kinds counted), as in KubeVirt. Every
builder here is pure: it takes the VMI and configuration and returns manifest fragments.
"""
from __future__ import annotations

import copy
import posixpath
from typing import Any

from netbind.api.models import KubeVirtConfiguration, VirtualMachineInstance, Volume
from netbind.api.quantity import Quantity

from .memory import is_cpu_dedicated, wants_guaranteed_qos

CONTAINER_DISKS_VOLUME = "container-disks"
VIRT_BIN_VOLUME = "virt-bin-share-dir"
LAUNCHER_VOLUME = "launcher-volume"
CONTAINER_DISK_BINARY = "container-disk-binary"
CONTAINER_BINARY_DIR = "/container-disk-binary"  # util.ContainerBinary: the launcher-volume mount
IMAGE_VOLUME_DIR = "/var/run/kubevirt-image-volume"  # util.VirtImageVolumeDir
CONTAINER_DISK_MOUNT_BASE = "/var/run/kubevirt/container-disks"
SKIP_DIGEST_ANNOTATION = "kubevirt.io/image-volume-skip-digest-resolution"
SUPPORT_TYPE = "container-disk"  # supportContainerResources[].type
NON_ROOT_UID = 107
EPHEMERAL_STORAGE_OVERHEAD = "50M"


def container_disk_volumes(vmi: VirtualMachineInstance) -> list[tuple[int, Volume]]:
    """The containerDisk volumes with their index in ``spec.volumes``."""
    return [(index, volume) for index, volume in enumerate(vmi.spec.volumes or [])
            if volume.container_disk is not None]


def image_of(volume: Volume) -> str:
    return str((volume.container_disk or {}).get("image") or "")


def pull_policy_of(volume: Volume) -> str:
    """The disk's pull policy; an unset one as virt-api's defaulting fills it in.

    ``setDefaultPullPoliciesOnContainerDisks`` (pkg/defaults): ``Always`` for a ``:latest`` or
    untagged image, ``IfNotPresent`` otherwise. virt-controller only ever sees defaulted VMIs.
    """
    policy = (volume.container_disk or {}).get("imagePullPolicy")
    if policy:
        return str(policy)
    image = image_of(volume)
    if image.endswith(":latest") or not any(c in image for c in ":@"):
        return "Always"
    return "IfNotPresent"


def image_pull_secrets(vmi: VirtualMachineInstance) -> list[dict[str, str]]:
    """``imgPullSecrets``: each containerDisk's ``imagePullSecret`` once, in volume order."""
    secrets: list[dict[str, str]] = []
    for _, volume in container_disk_volumes(vmi):
        name = (volume.container_disk or {}).get("imagePullSecret")
        if name and {"name": name} not in secrets:
            secrets.append({"name": name})
    return secrets


def _configured(config: KubeVirtConfiguration, part: str, name: str) -> Quantity | None:
    """``GetSupportContainerRequest/Limit(ContainerDisk, name)``: a zero value counts as unset."""
    for entry in config.support_container_resources or []:
        if entry.type == SUPPORT_TYPE:
            values = (entry.resources.requests if part == "requests" else entry.resources.limits) or {}
            if name in values:
                quantity = Quantity.parse(values[name])
                if not quantity.is_zero():
                    return quantity
    return None


def _rendered(limits: dict[str, Quantity], requests: dict[str, Quantity]) -> dict[str, Any]:
    return {"limits": {k: str(limits[k]) for k in sorted(limits)},
            "requests": {k: str(requests[k]) for k in sorted(requests)}}


def disk_container_resources(vmi: VirtualMachineInstance, config: KubeVirtConfiguration) -> dict[str, Any]:
    """``getMinimalInitContainerDiskResources`` (used by every ``volume<name>`` container)."""
    requests = {"cpu": _configured(config, "requests", "cpu") or Quantity.parse("1m"),
                "memory": _configured(config, "requests", "memory") or Quantity.parse("1M"),
                "ephemeral-storage": Quantity.parse(EPHEMERAL_STORAGE_OVERHEAD)}
    limits = {"cpu": _configured(config, "limits", "cpu") or Quantity.parse("10m"),
              "memory": _configured(config, "limits", "memory") or Quantity.parse("40M")}
    if is_cpu_dedicated(vmi) or wants_guaranteed_qos(vmi):
        requests["cpu"], requests["memory"] = limits["cpu"], limits["memory"]
    return _rendered(limits, requests)


def binary_init_resources(vmi: VirtualMachineInstance, config: KubeVirtConfiguration) -> dict[str, Any]:
    """``initContainerResourceRequirementsForVMI(vmi, ContainerDisk, ...)`` (container-disk-binary)."""
    if is_cpu_dedicated(vmi) or wants_guaranteed_qos(vmi):
        dedicated = {"cpu": _configured(config, "limits", "cpu") or Quantity.parse("10m"),
                     "memory": _configured(config, "limits", "memory") or Quantity.parse("40M")}
        return _rendered(dedicated, dict(dedicated))
    limits = {"cpu": _configured(config, "limits", "cpu") or Quantity.parse("100m"),
              "memory": _configured(config, "limits", "memory") or Quantity.parse("40M")}
    requests = {"cpu": _configured(config, "requests", "cpu") or Quantity.parse("10m"),
                "memory": _configured(config, "requests", "memory") or Quantity.parse("1M")}
    return _rendered(limits, requests)


def _disk_security_context() -> dict[str, Any]:  # a fresh dict each time: no shared YAML anchors
    # always uid 107 without a group, whatever the VMI's root-ness (container-disk.go)
    return {"capabilities": {"drop": ["ALL"]}, "runAsUser": NON_ROOT_UID, "runAsNonRoot": True,
            "allowPrivilegeEscalation": False}


def mount_dir(vmi: VirtualMachineInstance) -> str:
    """``GetVolumeMountDirOnGuest``: where the disk containers see the ``container-disks`` emptyDir."""
    uid = vmi.metadata.uid or ""
    return posixpath.normpath(posixpath.join(CONTAINER_DISK_MOUNT_BASE, uid))


def disk_containers(vmi: VirtualMachineInstance, config: KubeVirtConfiguration, *,
                    init: bool) -> list[dict[str, Any]]:
    """``GenerateContainers`` / ``GenerateInitContainers`` (``generateContainerFromVolume``)."""
    directory = mount_dir(vmi)
    resources = disk_container_resources(vmi, config)
    containers = []
    for index, volume in container_disk_volumes(vmi):
        name = f"volume{volume.name}"
        if init:
            name, args = name + "-init", ["--no-op"]
        else:
            args = ["--copy-path", f"{directory}/disk_{index}"]
        containers.append({
            "name": name, "image": image_of(volume), "command": ["/usr/bin/container-disk"],
            "args": args, "resources": copy.deepcopy(resources),
            "volumeMounts": [{"name": CONTAINER_DISKS_VOLUME, "mountPath": directory},
                             {"name": VIRT_BIN_VOLUME, "mountPath": "/usr/bin"}],
            "imagePullPolicy": pull_policy_of(volume), "securityContext": _disk_security_context(),
        })
    return containers


def image_volume_init_containers(vmi: VirtualMachineInstance,
                                 config: KubeVirtConfiguration) -> list[dict[str, Any]]:
    """``CreateImageVolumeInitContainer`` per disk, unless digest resolution is skipped.

    A fresh launch has no source pod, so no disk has a resolved digest yet and each gets one.
    """
    if vmi.annotations.get(SKIP_DIGEST_ANNOTATION) == "true":
        return []
    resources = disk_container_resources(vmi, config)
    return [{
        "name": f"volume{volume.name}", "image": image_of(volume),
        "command": [CONTAINER_BINARY_DIR + "/usr/bin/container-disk"], "args": ["--no-op"],
        "resources": copy.deepcopy(resources),
        "volumeMounts": [{"name": LAUNCHER_VOLUME, "readOnly": True, "mountPath": CONTAINER_BINARY_DIR}],
        "imagePullPolicy": pull_policy_of(volume), "securityContext": _disk_security_context(),
    } for _, volume in container_disk_volumes(vmi)]


def image_volumes(vmi: VirtualMachineInstance, launcher_image: str,
                  launcher_pull_policy: str) -> tuple[list[dict], list[dict]]:
    """``withImageVolumes``: the pod volumes and compute mounts of the disk images (and launcher)."""
    volumes: list[dict] = []
    mounts: list[dict] = []
    disks = container_disk_volumes(vmi)
    for index, volume in disks:
        volumes.append({"name": volume.name, "image": {"reference": image_of(volume),
                                                        "pullPolicy": pull_policy_of(volume)}})
        mounts.append({"name": volume.name, "readOnly": True,
                       "mountPath": f"{IMAGE_VOLUME_DIR}/disk_{index}"})
    if disks and vmi.annotations.get(SKIP_DIGEST_ANNOTATION) != "true":
        # the init containers above run the launcher's container-disk program from here
        volumes.append({"name": LAUNCHER_VOLUME, "image": {"reference": launcher_image,
                                                            "pullPolicy": launcher_pull_policy}})
    return volumes, mounts
