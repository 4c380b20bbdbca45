"""KubeVirt's virt-controller side of binding plugins: the virt-launcher pod.

Public API (pure functions: VMI + KubeVirt configuration in, manifest pieces out):

* :func:`render_launcher_pod` - the whole Pod manifest;
* :func:`binding_sidecars` - the binding sidecar list (unknown binding -> :class:`RenderError`);
* :func:`multus_networks_annotation`, :func:`network_pod_annotations` - Multus/istio annotations;
* :func:`generate_from_active_pod`, :func:`network_info_annotation` - annotations of a running pod;
* :func:`network_memory_overhead`, :func:`memory_overhead` - launcher memory overhead (Quantity).

Every function takes ``profile=`` (``LATEST`` or ``V1_4`` from :mod:`netbind.api.versions`).
"""
from .annotations import (generate_from_active_pod, multus_networks_annotation, network_info_annotation,
                          network_pod_annotations)
from .errors import RenderError
from .memory import memory_overhead, network_memory_overhead
from .pod import render_launcher_pod
from .sidecars import binding_sidecars

__all__ = [
    "RenderError",
    "binding_sidecars",
    "generate_from_active_pod",
    "memory_overhead",
    "multus_networks_annotation",
    "network_info_annotation",
    "network_memory_overhead",
    "network_pod_annotations",
    "render_launcher_pod",
]
