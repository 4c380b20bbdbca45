"""Which hook sidecars the virt-launcher pod gets (annotation sidecars, then binding sidecars).

Binding sidecars are KubeVirt's ``NetBindingPluginSidecarList``: every interface's binding (absent
ones too) must be registered, and each distinct binding *name* with a ``sidecarImage`` gets one
sidecar. KubeVirt walks a Go map, so its order is random; ours is sorted by binding name.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from netbind.api.models import KubeVirtConfiguration, VirtualMachineInstance
from netbind.api.versions import LATEST, Profile

from ._inputs import as_config, as_vmi
from .errors import RenderError

HOOK_SIDECARS_ANNOTATION = "hooks.kubevirt.io/hookSidecars"
DEFAULT_IMAGE_PULL_POLICY = "IfNotPresent"
DEVICE_INFO = "device-info"


@dataclass(frozen=True)
class HookSidecar:
    """One requested sidecar (KubeVirt's ``hooks.HookSidecar``)."""

    image: str = ""
    image_pull_policy: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    config_map: dict[str, str] | None = field(default=None, hash=False)
    pvc: dict[str, str] | None = field(default=None, hash=False)
    downward_api: str = ""
    network_binding_plugin_name: str = ""


def image_pull_policy(config: KubeVirtConfiguration) -> str:
    return config.image_pull_policy or DEFAULT_IMAGE_PULL_POLICY


def _unknown_binding(name: str, profile: Profile) -> RenderError:
    # v1.4's message carries a typo ("bindining"); it is what users of v1.4 see
    word = "bindining" if profile.name == "1.4" else "binding"
    return RenderError(f"couldn't find configuration for network {word}: {name}")


def plugin_sidecars(vmi: VirtualMachineInstance, config: KubeVirtConfiguration,
                    profile: Profile = LATEST) -> list[HookSidecar]:
    """Binding sidecars, one per distinct registered binding name with an image, by name."""
    registry = config.bindings
    used: dict[str, Any] = {}
    for iface in vmi.spec.interfaces:  # absent interfaces included, as in KubeVirt
        if iface.binding is None:
            continue
        name = iface.binding.name
        if name not in registry:
            raise _unknown_binding(name, profile)
        used[name] = registry[name]
    pull_policy = image_pull_policy(config)
    return [HookSidecar(image=plugin.sidecar_image, image_pull_policy=pull_policy,
                        downward_api=plugin.downward_api or "",
                        network_binding_plugin_name=name)
            for name, plugin in sorted(used.items()) if plugin.sidecar_image]


def annotation_sidecars(vmi: VirtualMachineInstance) -> list[HookSidecar]:
    """Sidecars from the ``hooks.kubevirt.io/hookSidecars`` annotation (a JSON list)."""
    raw = vmi.annotations.get(HOOK_SIDECARS_ANNOTATION)
    if raw is None:
        return []
    where = f"annotation {HOOK_SIDECARS_ANNOTATION}"
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RenderError(f"{where}: not valid JSON ({exc.msg} at character {exc.pos}); "
                          "expected a list of sidecar objects", field=where) from None
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise RenderError(f"{where}: expected a JSON list of sidecar objects "
                          '(e.g. [{"args": ["--version", "v1alpha3"]}])', field=where)
    sidecars = []
    for index, item in enumerate(items):
        try:
            sidecars.append(HookSidecar(
                image=_string(item, "image"),
                image_pull_policy=_string(item, "imagePullPolicy"),
                command=tuple(_strings(item, "command")),
                args=tuple(_strings(item, "args")),
                config_map=_object(item, "configMap", ("name", "key", "hookPath")),
                pvc=_object(item, "pvc", ("name", "volumePath", "sharedComputePath")),
            ))
        except ValueError as exc:
            raise RenderError(f"{where}[{index}]: {exc}", field=where) from None
    return sidecars


def _string(item: dict, key: str) -> str:
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _strings(item: dict, key: str) -> list[str]:
    value = item.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} must be a list of strings")
    return value


def _object(item: dict, key: str, members: tuple[str, ...]) -> dict[str, str] | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be an object with {', '.join(members)}")
    return {m: _string(value, m) for m in members}


def requested_sidecars(vmi: VirtualMachineInstance, config: KubeVirtConfiguration,
                       profile: Profile = LATEST) -> list[HookSidecar]:
    """All sidecars of the pod in container order: annotation sidecars first."""
    return annotation_sidecars(vmi) + plugin_sidecars(vmi, config, profile)


def binding_sidecars(vmi: Any, config: Any, *, profile: Profile = LATEST) -> list[dict]:
    """KubeVirt's binding sidecar list, as the vectors record it (raises :class:`RenderError`)."""
    vmi, config = as_vmi(vmi, profile), as_config(config)
    result = []
    for sidecar in plugin_sidecars(vmi, config, profile):
        entry = {"networkBindingPluginName": sidecar.network_binding_plugin_name}
        if profile.name == "1.4":
            entry = {}  # v1.4's HookSidecar has no plugin-name field
        entry.update(image=sidecar.image, imagePullPolicy=sidecar.image_pull_policy,
                     downwardAPI=sidecar.downward_api)
        result.append(entry)
    return result
