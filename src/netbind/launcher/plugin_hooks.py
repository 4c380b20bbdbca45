"""virt-launcher's domain hooks from Plugin resources (VEP 190): which hooks run, in which order, how.

KubeVirt applies them after the legacy ``OnDefineDomain`` sidecar chain
(``pkg/virt-launcher/virtwrap/plugins/pipeline.go`` ``ApplyDomainHooks``): plugins sorted by name
(a stable sort, byte order), each plugin's hooks in declaration order; the plugin's ``condition``
gates all of its hooks, then the hook's own ``condition``; the failure strategy is the hook's, else
the plugin's, else ``Fail``. A sidecar hook waits up to 30 s for its socket, dials it with a 5 s
timeout and calls ``MutateDomain`` with the hook's timeout (default 30 s); before dialing, the socket
must not be a symlink and its cleaned path must lie under ``/var/run/kubevirt-plugin/<plugin>/``
(``sidecar.go`` ``validateSocketPath``).

This module is the pure part: the plan. Calling the sidecars is the runtime's job.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

from netbind.api.models import Plugin
from netbind.gocompat import GoDurationError, go_clean_path, go_quote, parse_go_duration

__all__ = [
    "CEL_NOT_EVALUATED",
    "DEFAULT_SIDECAR_CALL_TIMEOUT_SECONDS",
    "PLUGIN_SOCKET_BASE_DIR",
    "PlannedHook",
    "SIDECAR_DIAL_TIMEOUT_SECONDS",
    "SIDECAR_READINESS_TIMEOUT_SECONDS",
    "domain_hook_plan",
    "socket_path_outside_plugin_dir",
]

# What netbind says wherever a Plugin carries CEL (validate, explain, the runtime's log).
CEL_NOT_EVALUATED = (
    "CEL is not evaluated by netbind: KubeVirt types it over Go's libvirtxml.Domain and "
    "VirtualMachineInstance; a condition is treated as unknown, a CEL hook is not applied locally"
)

PLUGIN_SOCKET_BASE_DIR = "/var/run/kubevirt-plugin"
SIDECAR_READINESS_TIMEOUT_SECONDS = 30.0
SIDECAR_DIAL_TIMEOUT_SECONDS = 5.0
DEFAULT_SIDECAR_CALL_TIMEOUT_SECONDS = 30.0
FAIL, IGNORE = "Fail", "Ignore"


@dataclass(frozen=True)
class PlannedHook:
    """One domain hook in the order virt-launcher considers it."""

    plugin: str
    index: int  # position in the plugin's spec.domainHooks (KubeVirt's "hook <index>" in errors)
    kind: Literal["cel", "sidecar"]
    failure_strategy: str  # "Fail" | "Ignore" (whatever the policy let through otherwise)
    timeout_seconds: float  # the MutateDomain call timeout; unused for CEL hooks
    socket_path: str | None = None  # sidecar hooks only
    expression: str | None = None  # CEL hooks only
    plugin_condition: str | None = None  # CEL; the hook runs only if both conditions hold
    hook_condition: str | None = None

    @property
    def conditions(self) -> list[str]:
        return [c for c in (self.plugin_condition, self.hook_condition) if c]

    @property
    def has_cel(self) -> bool:
        """Whether netbind cannot decide or apply this hook by itself (see CEL_NOT_EVALUATED)."""
        return self.kind == "cel" or bool(self.conditions)

    def to_json(self) -> dict:
        data = {"plugin": self.plugin, "index": self.index, "kind": self.kind,
                "failureStrategy": self.failure_strategy, "timeoutSeconds": self.timeout_seconds}
        if self.socket_path is not None:
            data["socketPath"] = self.socket_path
        if self.expression is not None:
            data["expression"] = self.expression
        if self.conditions:
            data["conditions"] = self.conditions
        return data


def domain_hook_plan(plugins: Iterable[Plugin]) -> list[PlannedHook]:
    """The domain hooks of ``plugins`` in KubeVirt's order, with their effective settings.

    A hook with neither ``cel`` nor ``sidecar`` is skipped, as the launcher does (admission
    denies it anyway). Conditions are carried, not evaluated. Raises GoDurationError for a
    ``timeout`` Go cannot parse (admission denies such a Plugin, so a runtime never sees one).
    """
    # Go's cmp.Compare on strings is byte order; Python's code-point order is the same for UTF-8
    ordered = sorted(plugins, key=lambda p: (p.metadata.name or "").encode("utf-8", "surrogatepass"))
    plan: list[PlannedHook] = []
    for plugin in ordered:
        spec = plugin.spec
        for index, hook in enumerate(spec.domain_hooks or []):
            # cmp.Or: the first non-empty value
            strategy = hook.failure_strategy or spec.failure_strategy or FAIL
            common = dict(plugin=plugin.metadata.name or "", index=index, failure_strategy=strategy,
                          plugin_condition=spec.condition or None, hook_condition=hook.condition or None)
            if hook.cel is not None:
                plan.append(PlannedHook(kind="cel", expression=hook.cel.expression,
                                        timeout_seconds=_timeout_seconds(hook.timeout, plugin, index),
                                        **common))
            elif hook.sidecar is not None:
                plan.append(PlannedHook(kind="sidecar", socket_path=hook.sidecar.socket_path,
                                        timeout_seconds=_timeout_seconds(hook.timeout, plugin, index),
                                        **common))
    return plan


def _timeout_seconds(timeout: str | None, plugin: Plugin, index: int) -> float:
    if timeout is None:
        return DEFAULT_SIDECAR_CALL_TIMEOUT_SECONDS
    try:
        return parse_go_duration(timeout) / 1e9
    except GoDurationError as exc:
        raise GoDurationError(f"Plugin {plugin.metadata.name}: spec.domainHooks[{index}].timeout: {exc}") from None


def socket_path_outside_plugin_dir(socket_path: str, plugin_name: str) -> str | None:
    """The launcher's lexical socket check: its error text, or None when the path is allowed.

    The symlink check needs the file system and is the runtime's (``os.lstat`` before dialing).
    """
    plugin_dir = f"{PLUGIN_SOCKET_BASE_DIR}/{plugin_name}/"
    if not go_clean_path(socket_path).startswith(plugin_dir):
        return f"socket path {go_quote(socket_path)} is outside {plugin_dir}"
    return None
