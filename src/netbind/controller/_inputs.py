"""Accept the objects callers naturally hold: models, their JSON dicts, a VM or a whole KubeVirt CR."""
from __future__ import annotations

from typing import Any

from netbind.api.models import (KubeVirt, KubeVirtConfiguration, NetworkAttachmentDefinition,
                                VirtualMachine, VirtualMachineInstance)
from netbind.api.versions import Profile


def as_vmi(vmi: Any, profile: Profile) -> VirtualMachineInstance:
    if isinstance(vmi, dict):
        vmi = (VirtualMachine if vmi.get("kind") == "VirtualMachine" else VirtualMachineInstance
               ).model_validate(vmi)
    if isinstance(vmi, VirtualMachine):
        vmi = vmi.to_vmi()
    if not isinstance(vmi, VirtualMachineInstance):
        raise TypeError(f"expected a VirtualMachineInstance, got {type(vmi).__name__}")
    # the Go code of older versions never sees API fields it does not know
    return profile.decoded(vmi)


def as_config(config: Any) -> KubeVirtConfiguration:
    if config is None:
        return KubeVirtConfiguration()
    if isinstance(config, dict):
        if config.get("kind") == "KubeVirt":
            return KubeVirt.model_validate(config).spec.configuration
        return KubeVirtConfiguration.model_validate(config)
    if isinstance(config, KubeVirt):
        return config.spec.configuration
    if not isinstance(config, KubeVirtConfiguration):
        raise TypeError(f"expected a KubeVirt configuration, got {type(config).__name__}")
    return config


def as_nads(nads: Any) -> list[NetworkAttachmentDefinition]:
    return [NetworkAttachmentDefinition.model_validate(n) if isinstance(n, dict) else n
            for n in nads or ()]
