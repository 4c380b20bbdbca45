from __future__ import annotations

import json
import time
from functools import cached_property
from pathlib import Path
from typing import Any

from contextlib import contextmanager

from netbind.hooks._vmi import GoObject, VMIDecodeError, vmi_root

NETWORK_INFO_PATH = Path("/etc/podinfo/network-info")
ISTIO_INJECT_ANNOTATION = "sidecar.istio.io/inject"


@contextmanager
def _as_hook_error():
    """A VMI field of the wrong JSON type fails the call as KubeVirt's decoder would."""
    from netbind.hooks._app import HookError

    try:
        yield
    except VMIDecodeError as exc:
        raise HookError(f"failed to unmarshal VMI: {exc}") from None


class HookContext:
    """What a handler knows about the call besides the domain: binding, VMI, pod facts."""

    def __init__(self, *, hook: str, version: str, binding: str, vmi_json: dict,
                 network_info_path: Path = NETWORK_INFO_PATH, invocation_context: str | None = None):
        self.hook = hook  # "OnDefineDomain" | "PreCloudInitIso" | "MutateDomain" (the Plugin API)
        self.version = version  # API version the caller used, e.g. "v1alpha3" (Plugin API: "v1alpha1")
        # the Plugin API's reason for the call: "Boot" | "MigrationSource" | "MigrationTarget";
        # None on the hook API, which does not say
        self.invocation_context = invocation_context
        self.binding = binding  # the binding name this sidecar serves
        self.vmi_json = vmi_json  # the decoded VMI, exactly as received
        self.network_info_path = Path(network_info_path)

    def __repr__(self) -> str:
        extra = f", invocation_context={self.invocation_context!r}" if self.invocation_context is not None else ""
        return f"HookContext(hook={self.hook!r}, binding={self.binding!r}, vmi={self.vmi_name!r}{extra})"

    @cached_property
    def _vmi(self) -> GoObject:
        return vmi_root(self.vmi_json)

    @property
    def vmi_name(self) -> str:
        try:
            meta = self._vmi.obj("metadata", "ObjectMeta")
            return f"{meta.str('namespace')}/{meta.str('name')}"
        except VMIDecodeError:
            return "?"

    @cached_property
    def vmi(self) -> Any:
        """The VMI as netbind's typed model (``netbind.api.VirtualMachineInstance``), built on first use."""
        try:
            from netbind.api import VirtualMachineInstance
        except ImportError as exc:  # pragma: no cover - depends on the installed netbind
            raise RuntimeError("ctx.vmi needs netbind.api; use ctx.vmi_json (the decoded dict)") from exc
        return VirtualMachineInstance.model_validate(self.vmi_json)

    @cached_property
    def interfaces(self) -> list[dict]:
        """The VMI spec interfaces (as dicts) whose ``binding.name`` is this sidecar's binding."""
        with _as_hook_error():
            spec = self._vmi.obj("spec", "VirtualMachineInstanceSpec")
            devices = spec.obj("domain", "DomainSpec").obj("devices", "Devices")
            return [
                iface.data for iface in devices.list("interfaces", "Interface")
                if iface.has("binding") and iface.obj("binding", "PluginBinding").str("name") == self.binding
                and iface.str("name") is not None  # type-checks the name the handler will use
            ]

    @cached_property
    def pod_interface_names(self) -> dict[str, str]:
        """VMI interface name -> pod interface name, from ``status.interfaces`` (may be incomplete)."""
        names: dict[str, str] = {}
        with _as_hook_error():
            status = self._vmi.obj("status", "VirtualMachineInstanceStatus")
            for entry in status.list("interfaces", "VirtualMachineInstanceNetworkInterface"):
                name, pod_iface = entry.str("name"), entry.str("podInterfaceName")
                if name and pod_iface and name not in names:
                    names[name] = pod_iface
        return names

    @cached_property
    def istio_injection(self) -> bool:
        """True when the VMI asks for an Istio proxy (``sidecar.istio.io/inject`` equal-folds ``true``)."""
        with _as_hook_error():
            annotations = self._vmi.obj("metadata", "ObjectMeta").str_map("annotations")
        return annotations.get(ISTIO_INJECT_ANNOTATION, "").casefold() == "true"

    def network_info(self) -> dict | None:
        """``/etc/podinfo/network-info`` (``downwardAPI: device-info``) decoded, or None while it is
        absent or still empty (kubelet fills it only once the pod is ready: poll)."""
        try:
            text = self.network_info_path.read_text()
        except FileNotFoundError:
            return None
        if not text.strip():
            return None
        return json.loads(text)

    def wait_network_info(self, timeout: float = 10.0, period: float = 0.2) -> dict | None:
        """Poll :meth:`network_info` until it has content or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.network_info()
            if info is not None or time.monotonic() >= deadline:
                return info
            time.sleep(period)
