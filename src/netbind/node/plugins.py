"""The local runtime's part of KubeVirt's Plugin API: which Plugin sidecars a pod gets, and the
launcher's domain hooks after the hook API's chain (``netbind.launcher.plugins`` does the calls).

On a cluster an admin's admission policy injects a Plugin's sidecar into the launcher pod; netbind
cannot evaluate such a policy, so the Plugin names the image in its
``netbind.io/sidecar-image`` annotation and ``up`` injects it (``netbind.node.sidecars``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from netbind.launcher.plugin_hooks import SIDECAR_READINESS_TIMEOUT_SECONDS as READINESS_TIMEOUT, PlannedHook
from netbind.launcher.plugins import HookOutcome, apply_domain_hooks
from netbind.node import sandbox
from netbind.node import sidecars as sidecarmod


class PluginSetupError(RuntimeError):
    """The Plugins of a manifest cannot be run here (denied, or a sidecar with no image)."""


@dataclass
class PluginWiring:
    hooks: list[PlannedHook] = field(default_factory=list)   # in the launcher's order
    sockets: dict[str, str] = field(default_factory=dict)        # plugin -> the socketPath its sidecar serves
    images: dict[str, str] = field(default_factory=dict)         # plugin -> its sidecar's image
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.hooks)


def wiring(plugins: Sequence, hooks: Sequence[PlannedHook]) -> PluginWiring:
    """Which sidecar each plugin needs (pure): one per plugin with sidecar hooks, serving one socket."""
    by_name = {p.metadata.name: p for p in plugins}
    result = PluginWiring(hooks=list(hooks))
    for hook in hooks:
        if hook.kind != "sidecar":
            continue
        known = result.sockets.setdefault(hook.plugin, hook.socket_path)
        if known != hook.socket_path:
            raise PluginSetupError(f"Plugin {hook.plugin}: domainHooks[{hook.index}] names a second sidecar socket"
                                   f" ({hook.socket_path}, besides {known}); netbind runs one sidecar per Plugin")
        annotations = by_name[hook.plugin].metadata.annotations or {}
        image = annotations.get(sidecarmod.PLUGIN_SIDECAR_IMAGE_ANNOTATION)
        if image:
            result.images[hook.plugin] = image
        elif hook.failure_strategy == "Ignore":
            result.sockets.pop(hook.plugin)
            result.notes.append(f"Plugin {hook.plugin}: no sidecar image (annotation"
                                f" {sidecarmod.PLUGIN_SIDECAR_IMAGE_ANNOTATION}); its domainHooks[{hook.index}]"
                                " (failureStrategy Ignore) will find no socket")
        else:
            raise PluginSetupError(
                f"Plugin {hook.plugin}: domainHooks[{hook.index}] is served by a sidecar at {hook.socket_path}, which"
                " a cluster admin's admission policy injects into the launcher pod; netbind cannot run that"
                f" policy: name the sidecar's image in the Plugin's annotation"
                f" {sidecarmod.PLUGIN_SIDECAR_IMAGE_ANNOTATION} (the image map resolves it)")
    return result


def define(pod: sandbox.Pod, plan: PluginWiring, domain_xml: bytes, vmi_json: bytes, invocation_context: str,
           readiness: float = READINESS_TIMEOUT) -> tuple[bytes, list[HookOutcome]]:
    """The launcher's ApplyDomainHooks in this pod (socket paths mapped onto its volume)."""
    return apply_domain_hooks(plan.hooks, domain_xml, vmi_json, invocation_context, readiness=readiness,
                              host_path=lambda path: sidecarmod.plugin_socket_host_path(pod, path))


def plan_for(manifests) -> PluginWiring:
    """The (admitted) Plugins of ``manifests`` as the launcher gets them: their domain hooks in
    order and their sidecars. Admission is ``netbind.review.validate``'s, before this."""
    if not manifests.plugins:
        return PluginWiring()
    from netbind.launcher.plugin_hooks import CEL_NOT_EVALUATED, domain_hook_plan

    plan = wiring(manifests.plugins, domain_hook_plan(manifests.plugins))
    if any(h.has_cel for h in plan.hooks):
        plan.notes.append(f"Plugin API: {CEL_NOT_EVALUATED}")
    return plan
