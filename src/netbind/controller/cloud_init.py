"""The Secret volumes virt-controller adds for cloud-init ``*SecretRef`` sources.

``rendervolumes.go`` ``handleCloudInitNoCloud`` / ``handleCloudInitConfigDrive`` (same in v1.4.1 and
main): a ``userDataSecretRef`` becomes the Secret volume ``<volume>-udata``, a
``networkDataSecretRef`` the volume ``<volume>-ndata``; the compute container mounts the Secret's
key under both spellings KubeVirt accepts (``userdata``/``userData``, ``networkdata``/``networkData``)
below ``/var/run/kubevirt-private/secret/<volume>/``, where virt-launcher reads them.
"""
from __future__ import annotations

from typing import Any

from netbind.api.models import VirtualMachineInstance

SECRET_SOURCE_DIR = "/var/run/kubevirt-private/secret"  # pkg/config SecretSourceDir

_REFS = (("userDataSecretRef", "udata", ("userdata", "userData")),
         ("networkDataSecretRef", "ndata", ("networkdata", "networkData")))


def cloud_init_secret_volumes(vmi: VirtualMachineInstance) -> tuple[list[dict], list[dict]]:
    """Pod volumes and compute mounts, in ``spec.volumes`` order (NoCloud or ConfigDrive alike)."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for volume in vmi.spec.volumes or []:
        source = volume.cloud_init_no_cloud or volume.cloud_init_config_drive
        if source is None:
            continue
        for ref_key, suffix, keys in _REFS:
            ref = source.get(ref_key)
            if not isinstance(ref, dict):
                continue
            name = f"{volume.name}-{suffix}"
            volumes.append({"name": name, "secret": {"secretName": ref.get("name") or ""}})
            mounts += [{"name": name, "readOnly": True,
                        "mountPath": f"{SECRET_SOURCE_DIR}/{volume.name}/{key}", "subPath": key}
                       for key in keys]
    return volumes, mounts
