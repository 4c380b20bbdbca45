"""virt-launcher's side of KubeVirt's Plugin API (VEP 190): calling the domain hooks of ``Plugin``
resources (the plan, pure, is ``netbind.launcher.plugin_hooks``).

After the hook API's OnDefineDomain chain, KubeVirt main applies every Plugin's domain hooks
(``pkg/virt-launcher/virtwrap/plugins/pipeline.go``): plugins in name order, hooks in declaration
order; a sidecar hook is ``DomainHookService.MutateDomain`` on the Plugin's ``socketPath`` (under
``/var/run/kubevirt-plugin/<plugin>/``, not a symlink), awaited up to 30 s, dialled within 5 s,
called with the hook's timeout (30 s by default); a failing hook with ``failureStrategy: Ignore`` is
skipped with a warning, any other failure fails the domain. CEL (conditions and CEL hooks) is typed
by KubeVirt over Go's libvirtxml and VMI structs; netbind does not evaluate it (see
``CEL_NOT_EVALUATED``): such a hook fails as a hook, so ``Ignore`` skips it.

The socket paths are the launcher's view; ``host_path`` maps one to where it is on this machine.
"""
from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from netbind.launcher.plugin_hooks import (
    DEFAULT_SIDECAR_CALL_TIMEOUT_SECONDS as CALL_TIMEOUT,
    PLUGIN_SOCKET_BASE_DIR,
    SIDECAR_DIAL_TIMEOUT_SECONDS as DIAL_TIMEOUT,
    SIDECAR_READINESS_TIMEOUT_SECONDS as READINESS_TIMEOUT,
    PlannedHook,
    socket_path_outside_plugin_dir,
)

DOMAIN_TYPE = "libvirt"
READINESS_POLL = 0.5
INVOCATION_CONTEXTS = ("Boot", "MigrationSource", "MigrationTarget")


class PluginHookError(RuntimeError):
    """A domain hook failed and its failure strategy is Fail: the domain is not defined."""


@dataclass
class HookOutcome:
    hook: PlannedHook
    status: str                # "applied" | "ignored"
    detail: str
    duration_ms: float = 0.0


def validate_socket_path(socket_path: str, plugin: str, host_path: Callable[[str], Path]) -> None:
    """validateSocketPath: exists, is not a symlink, and cleans to a path under the plugin's dir."""
    try:
        info = os.lstat(host_path(socket_path))
    except OSError as exc:
        raise PluginHookError(f"invalid socket path: stat socket path {socket_path!r}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        raise PluginHookError(f"invalid socket path: socket path {socket_path!r} is a symlink, which is not allowed")
    outside = socket_path_outside_plugin_dir(socket_path, plugin)
    if outside:
        raise PluginHookError(f"invalid socket path: {outside}")


def wait_for_socket(socket_path: str, host_path: Path, deadline: float, readiness: float) -> None:
    """waitForSidecarSocket: poll every 0.5 s (first check at once) until the file exists."""
    while True:
        if host_path.exists():
            return
        if time.monotonic() >= deadline:
            raise PluginHookError(f"sidecar socket {socket_path} not ready after {readiness:g}s")
        time.sleep(min(READINESS_POLL, max(0.0, deadline - time.monotonic())))


def mutate_domain(socket: Path, plugin: str, domain_xml: bytes, vmi_json: bytes, invocation_context: str,
                  timeout: float = CALL_TIMEOUT, dial_timeout: float = DIAL_TIMEOUT) -> bytes:
    """One MutateDomain call on a fresh connection (callSidecarHook); returns the new domain XML."""
    from netbind.hooks import _wire
    from netbind.launcher import _grpc

    with _grpc.Channel(socket) as channel:
        try:
            channel.connect(dial_timeout, wait=True)   # grpc.DialContext with WithBlock
        except _grpc.CallError:
            raise PluginHookError(f"dialing sidecar socket {socket}: context deadline exceeded") from None
        request = _wire.encode_mutate_domain_request(DOMAIN_TYPE, domain_xml, vmi_json, invocation_context)
        try:
            return _wire.decode_on_define_domain_result(channel.call(_wire.MUTATE_DOMAIN_PATH, request, timeout))
        except _grpc.CallError as exc:
            raise PluginHookError(f"MutateDomain RPC to {plugin} failed with {exc.code_name}: {exc.message}") from None
        except _wire.DecodeError as exc:
            raise PluginHookError(f"MutateDomain RPC to {plugin} failed with Internal: {_grpc.UNMARSHAL_FAILED}:"
                                  f" {exc}") from None


def apply_domain_hooks(hooks: Sequence[PlannedHook], domain_xml: bytes, vmi_json: bytes, invocation_context: str,
                       *, host_path: Callable[[str], Path] = Path, readiness: float = READINESS_TIMEOUT
                       ) -> tuple[bytes, list[HookOutcome]]:
    """ApplyDomainHooks over ``hooks`` (already in the launcher's order): the final domain XML and
    what happened to each hook. Raises PluginHookError for a failing hook whose strategy is Fail."""
    from netbind.launcher.hooks import HookClientError, _check_domain_xml

    if invocation_context not in INVOCATION_CONTEXTS:
        raise ValueError(f"invocation context {invocation_context!r}: one of {', '.join(INVOCATION_CONTEXTS)}")
    current = bytes(domain_xml)
    outcomes: list[HookOutcome] = []
    for hook in hooks:
        started = time.perf_counter()
        deadline = time.monotonic() + readiness  # per hook, as the launcher sets it
        try:
            if hook.has_cel:
                what = "its condition" if hook.kind != "cel" else "a CEL hook"
                raise PluginHookError(f"{what} is CEL, which netbind does not evaluate (KubeVirt types it over"
                                      " Go's libvirtxml and VMI structs)")
            socket_path = hook.socket_path or ""
            wait_for_socket(socket_path, host_path(socket_path), deadline, readiness)
            validate_socket_path(socket_path, hook.plugin, host_path)
            result = mutate_domain(host_path(socket_path), hook.plugin, current, vmi_json, invocation_context,
                                   hook.timeout_seconds)
            try:
                _check_domain_xml(result)
            except HookClientError as exc:
                raise PluginHookError(f"unmarshal sidecar response: {exc}") from None
        except PluginHookError as exc:
            if hook.failure_strategy == "Ignore":
                outcomes.append(HookOutcome(hook, "ignored", f"Plugin {hook.plugin} hook {hook.index} failed"
                                            f" (ignored): {exc}", _ms(started)))
                continue
            raise PluginHookError(f"plugin {hook.plugin} hook {hook.index} failed: {exc}") from None
        current = result
        outcomes.append(HookOutcome(hook, "applied", f"plugin {hook.plugin} hook {hook.index}: MutateDomain"
                                    f" ({invocation_context}) on {hook.socket_path}", _ms(started)))
    return current, outcomes


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


__all__ = ["HookOutcome", "INVOCATION_CONTEXTS", "PluginHookError", "apply_domain_hooks", "mutate_domain",
           "validate_socket_path"]
