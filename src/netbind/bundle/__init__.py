"""What a cluster needs for the bindings of a manifest set: ``netbind bundle`` (pure, no I/O).

:func:`compose_bundle` turns loaded manifests into the NADs, the CNI installer DaemonSet and the
registration (patches of the KubeVirt or HyperConverged CR); :func:`apply_registration` applies that
registration to a CR as the API server would, which the validation (``schemas``) and
``netbind cluster`` build on.
"""
from ._compose import (
    NETBIND_CNI_TYPES,
    Bundle,
    BundleError,
    CniImage,
    Registration,
    apply_registration,
    compose_bundle,
    merge_patch,
    parse_cni_image,
)

__all__ = ["NETBIND_CNI_TYPES", "Bundle", "BundleError", "CniImage", "Registration", "apply_registration",
           "compose_bundle", "merge_patch", "parse_cni_image"]
from ._validate import check, default_cr, validate_bundle  # noqa: E402

__all__ += ["check", "default_cr", "validate_bundle"]
