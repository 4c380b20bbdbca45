"""Admission of a ``plugin.kubevirt.io/v1alpha1`` Plugin, as a KubeVirt cluster does it on CREATE.

Three KubeVirt pieces judge a Plugin, each reproduced with its messages:

* virt-api's webhook ``plugin-validator.plugin.kubevirt.io`` (``plugin-admitter.go``): without the
  ``Plugins`` gate every CREATE is refused; then the object is decoded (a ``timeout`` Go's
  ``time.ParseDuration`` rejects fails the request), CEL is compiled (not here: see
  ``netbind.launcher.plugin_hooks.CEL_NOT_EVALUATED``) and each sidecar ``socketPath`` must be a
  clean path (Go's ``filepath.Clean``);
* virt-operator's ValidatingAdmissionPolicies, installed only with the gate:
  ``kubevirt-plugin-validation-policy`` and ``kubevirt-plugin-socket-path-policy`` (Deny) and
  ``kubevirt-plugin-warning-policy`` (Warn). Their denials carry no field; we name the policy, and
  ``where`` points at the offending element (netbind's hint, not KubeVirt's).

The CRD schema (required members, minLength, minItems, types) is checked when the manifest loads.

``causes`` lists the webhook's causes, then the policies' (the order of the brief we follow).
The API server runs policies *before* webhooks and answers with the first denial only: that answer
is ``PluginReview.message``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netbind.api.models import PLUGIN_API_VERSION, KubeVirtConfiguration, Plugin
from netbind.api.versions import Profile
from netbind.gocompat import GoDurationError, go_clean_path, parse_go_duration

from .causes import FIELD_VALUE_INVALID

__all__ = [
    "PluginCause",
    "PluginNotServed",
    "PluginReview",
    "PluginWarning",
    "validate_plugin",
]

PLUGINS_GATE = "Plugins"
WEBHOOK = "plugin-validator.plugin.kubevirt.io"
VALIDATION_POLICY = "kubevirt-plugin-validation-policy"
SOCKET_PATH_POLICY = "kubevirt-plugin-socket-path-policy"
WARNING_POLICY = "kubevirt-plugin-warning-policy"
POLICY_BINDINGS = {
    VALIDATION_POLICY: "kubevirt-plugin-validation-binding",
    SOCKET_PATH_POLICY: "kubevirt-plugin-socket-path-binding",
    WARNING_POLICY: "kubevirt-plugin-warning-binding",
}

GATE_DISABLED = "Plugins feature gate is not enabled"
UNCLEAN_SOCKET_PATH = "socketPath must be a clean path (no '..' segments or redundant separators)"
ONE_OF_CEL_OR_SIDECAR = "exactly one of cel or sidecar must be specified for each domain hook"
BAD_FAILURE_STRATEGY = "failureStrategy must be either 'Fail' or 'Ignore'"
BAD_HOOK_POINT = "permittedHooks must only contain valid node hook points"
SOCKET_NOT_DOT_SOCK = "sidecar socketPath must end with .sock"
SOCKET_TOO_LONG = "sidecar socketPath must not exceed 108 characters (Unix socket limit)"
SOCKET_OUTSIDE_DIR = "sidecar socketPath must start with /var/run/kubevirt-plugin/<plugin-name>/"
NO_EFFECT = "no hooks or admission references are defined; this plugin will have no effect"

FAILURE_STRATEGIES = ("Fail", "Ignore")
# The policy's list, which also admits PostMigrationSource (the Go enum has no such constant).
POLICY_HOOK_POINTS = ("PreVMStart", "PostVMStart", "PreVMStop", "PostVMStop", "PreMigrationSource",
                      "PostMigrationSource", "PreMigrationTarget", "PostMigrationTarget")
UNIX_SOCKET_PATH_LIMIT = 108


class PluginNotServed(ValueError):
    """The chosen KubeVirt version has no Plugin resource."""


@dataclass(frozen=True)
class PluginCause:
    """One reason a Plugin is refused.

    ``source`` is the webhook's name or the policy's; ``type`` and ``field`` are KubeVirt's
    (empty where it gives none, as for every policy denial); ``where`` is netbind's pointer to the
    offending element(s) when KubeVirt's own answer names none.
    """

    source: str
    message: str
    type: str = ""
    field: str = ""
    where: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"source": self.source, "type": self.type, "field": self.field,
                                "message": self.message}
        if self.where:
            data["where"] = list(self.where)
        return data


@dataclass(frozen=True)
class PluginWarning:
    source: str
    message: str

    @property
    def api_server_text(self) -> str:
        """The warning as the API server returns it (kubectl prefixes ``Warning: ``)."""
        return (f"Validation failed for ValidatingAdmissionPolicy '{self.source}' with binding "
                f"'{POLICY_BINDINGS[self.source]}': {self.message}")

    def to_json(self) -> dict[str, str]:
        return {"source": self.source, "message": self.message, "apiServerText": self.api_server_text}


@dataclass
class PluginReview:
    plugin: str
    causes: list[PluginCause] = field(default_factory=list)
    warnings: list[PluginWarning] = field(default_factory=list)
    uses_cel: bool = False  # a condition or a CEL hook: KubeVirt compiles it, netbind does not

    @property
    def allowed(self) -> bool:
        return not self.causes

    @property
    def message(self) -> str:
        """The API server's answer: the first policy denial, else the webhook's (first cause)."""
        policy = next((c for c in self.causes if c.source in POLICY_BINDINGS), None)
        if policy is not None:
            return (f"ValidatingAdmissionPolicy '{policy.source}' with binding "
                    f"'{POLICY_BINDINGS[policy.source]}' denied request: {policy.message}")
        if self.causes:
            return f'admission webhook "{WEBHOOK}" denied the request: {self.causes[0].message}'
        return ""

    def to_json(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "allowed": self.allowed, "message": self.message,
                "causes": [c.to_json() for c in self.causes],
                "warnings": [w.to_json() for w in self.warnings], "usesCEL": self.uses_cel}


def validate_plugin(plugin: Plugin, kubevirt_config: KubeVirtConfiguration | None,
                    profile: Profile) -> PluginReview:
    """What a KubeVirt cluster of ``profile`` answers to ``kubectl create`` of ``plugin``.

    Raises PluginNotServed on a profile without the Plugin resource (v1.4).
    """
    if not profile.knows(PLUGINS_GATE):
        raise PluginNotServed(
            f"the Plugin resource ({PLUGIN_API_VERSION}) needs KubeVirt v1.9+ with the Plugins feature "
            f"gate; --kubevirt-version {profile.name} does not have it")
    review = PluginReview(plugin=plugin.name, uses_cel=uses_cel(plugin))
    if not profile.gate_enabled(kubevirt_config, PLUGINS_GATE):
        # virt-operator installs the plugin policies only with the gate: the webhook alone answers
        review.causes.append(PluginCause(WEBHOOK, GATE_DISABLED))
        return review
    review.causes += webhook_causes(plugin)
    review.causes += validation_policy_causes(plugin)
    review.causes += socket_path_policy_causes(plugin)
    review.warnings += warning_policy_warnings(plugin)
    return review


def uses_cel(plugin: Plugin) -> bool:
    spec = plugin.spec
    return bool(spec.condition) or any(h.condition for h in spec.node_hooks or []) or any(
        (h.cel is not None and h.cel.expression) or h.condition for h in spec.domain_hooks or [])


# --- the webhook --------------------------------------------------------------------------------


def webhook_causes(plugin: Plugin) -> list[PluginCause]:
    """``PluginAdmitter.Admit`` after the gate check: decoding, then the socket-path causes."""
    # json.Unmarshal into metav1.Duration runs time.ParseDuration; its error fails the whole
    # request (400, Go's message alone). KubeVirt names no field; we do, to say where it is.
    hooks = [("domainHooks", i, h.timeout) for i, h in enumerate(plugin.spec.domain_hooks or [])]
    hooks += [("nodeHooks", i, h.timeout) for i, h in enumerate(plugin.spec.node_hooks or [])]
    for member, index, timeout in hooks:
        if timeout is None:
            continue
        try:
            parse_go_duration(timeout)
        except GoDurationError as exc:
            return [PluginCause(WEBHOOK, str(exc), field=f"spec.{member}[{index}].timeout")]
    # CEL compilation would come here: netbind cannot type Go's libvirtxml/VMI CEL environment
    causes = []
    for index, hook in enumerate(plugin.spec.domain_hooks or []):
        if hook.sidecar is None:
            continue
        path = hook.sidecar.socket_path
        if go_clean_path(path) != path:
            causes.append(PluginCause(WEBHOOK, UNCLEAN_SOCKET_PATH, type=FIELD_VALUE_INVALID,
                                      field=f"spec.domainHooks[{index}].sidecar.socketPath"))
    return causes


# --- the policies -------------------------------------------------------------------------------


def validation_policy_causes(plugin: Plugin) -> list[PluginCause]:
    """``kubevirt-plugin-validation-policy``: one denial per failing validation, in its order."""
    spec = plugin.spec
    domain = list(enumerate(spec.domain_hooks or []))
    node = list(enumerate(spec.node_hooks or []))
    # CEL's has() is true for a member that is present, even as "": failureStrategy: "" is denied
    checks = [
        (ONE_OF_CEL_OR_SIDECAR,
         [f"spec.domainHooks[{i}]" for i, h in domain if (h.cel is None) == (h.sidecar is None)]),
        (BAD_FAILURE_STRATEGY,
         [f"spec.domainHooks[{i}].failureStrategy" for i, h in domain
          if h.failure_strategy is not None and h.failure_strategy not in FAILURE_STRATEGIES]),
        (BAD_FAILURE_STRATEGY,
         [f"spec.nodeHooks[{i}].failureStrategy" for i, h in node
          if h.failure_strategy is not None and h.failure_strategy not in FAILURE_STRATEGIES]),
        (BAD_HOOK_POINT,
         [f"spec.nodeHooks[{i}].permittedHooks[{j}]" for i, h in node
          for j, point in enumerate(h.permitted_hooks) if point not in POLICY_HOOK_POINTS]),
        (BAD_FAILURE_STRATEGY,
         ["spec.failureStrategy"] if spec.failure_strategy is not None
         and spec.failure_strategy not in FAILURE_STRATEGIES else []),
    ]
    return [PluginCause(VALIDATION_POLICY, message, where=tuple(where)) for message, where in checks if where]


def socket_path_policy_causes(plugin: Plugin) -> list[PluginCause]:
    """``kubevirt-plugin-socket-path-policy``: sidecar sockets are ``.sock`` files in the plugin's dir."""
    sidecars = [(f"spec.domainHooks[{i}].sidecar.socketPath", h.sidecar.socket_path)
                for i, h in enumerate(plugin.spec.domain_hooks or []) if h.sidecar is not None]
    prefix = f"/var/run/kubevirt-plugin/{plugin.name}/"
    checks = [
        (SOCKET_NOT_DOT_SOCK, [where for where, path in sidecars if not path.endswith(".sock")]),
        # CEL's size() of a string counts code points, as len() does
        (SOCKET_TOO_LONG, [where for where, path in sidecars if len(path) > UNIX_SOCKET_PATH_LIMIT]),
        (SOCKET_OUTSIDE_DIR, [where for where, path in sidecars if not path.startswith(prefix)]),
    ]
    return [PluginCause(SOCKET_PATH_POLICY, message, where=tuple(where)) for message, where in checks if where]


def warning_policy_warnings(plugin: Plugin) -> list[PluginWarning]:
    """``kubevirt-plugin-warning-policy`` (Warn): a Plugin that references nothing does nothing."""
    spec = plugin.spec
    referenced = [spec.domain_hooks, spec.node_hooks, spec.mutating_admission_policies,
                  spec.validating_admission_policies, spec.mutating_admission_webhooks,
                  spec.validating_admission_webhooks]
    if any(referenced):
        return []
    return [PluginWarning(WARNING_POLICY, NO_EFFECT)]

