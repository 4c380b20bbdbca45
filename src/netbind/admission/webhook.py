"""What KubeVirt's validating webhooks answer for a VMI or VM, network side.

The VMI create webhook (``vmi-create-admitter.go``) runs, in order: the OpenAPI schema check (which
answers alone when it fails), the discontinued-feature-gate check, the SIG-network spec validator
(creation-only + general network rules; latest only), ``ValidateVirtualMachineInstanceSpec`` (whose
network part runs the general rules again, hence KubeVirt's duplicated causes), the mandatory-memory
check, the metadata checks and the architecture check. The VM webhook (``vms-admitter.go``) stops at
the first failing step and prefixes the general rules with ``spec.template.spec``.

Storage, CPU, memory-size, probes, devices other than interfaces and every other non-network rule of
``ValidateVirtualMachineInstanceSpec`` are outside this module.
"""
from __future__ import annotations

import re
from typing import Any

from netbind.api.models import (
    Interface,
    KubeVirtConfiguration,
    Network,
    ObjectMeta,
    PodNetwork,
    VirtualMachine,
    VirtualMachineInstance,
    VirtualMachineInstanceSpec,
)
from netbind.api.versions import LATEST, Profile

from .causes import FIELD_VALUE_INVALID, FIELD_VALUE_NOT_SUPPORTED, FIELD_VALUE_REQUIRED, Cause, FieldPath
from .network import validate_network, validate_network_creation, validate_network_spec
from .schema import schema_causes

__all__ = [
    "admission_response",
    "admit_vm",
    "admit_vmi_create",
    "feature_gate_causes",
    "metadata_causes",
]

HOOK_SIDECARS_ANNOTATION = "hooks.kubevirt.io/hookSidecars"
IGNITION_ANNOTATION = "kubevirt.io/ignitiondata"
RESTRICTED_VMI_LABELS = frozenset({
    "kubevirt.io/created-by",
    "kubevirt.io/migrationJobUID",
    "kubevirt.io/nodeName",
    "kubevirt.io/migrationTargetNodeName",
    "kubevirt.io/schedulable",
    "kubevirt.io/install-strategy",
})
SUPPORTED_ARCHITECTURES = frozenset({"amd64", "arm64", "s390x"})
MAX_CAUSES_IN_RESPONSE = 10

# discontinued gates that still reject VMIs using the old API they gated
_DISCONTINUED_GATE_USES = {
    "Passt": ("passt", "Passt network binding is discontinued since v1.3. "
                       "Please refer to Kubevirt user guide for alternatives."),
    "Macvtap": ("macvtap", "Macvtap network binding is discontinued since v1.3. "
                           "Please refer to Kubevirt user guide for alternatives."),
}


# --- response -----------------------------------------------------------------------------------


def admission_response(causes: list[Cause]) -> dict[str, Any]:
    """KubeVirt's ToAdmissionResponse: allowed, or 422 with the first 10 causes and their messages."""
    if not causes:
        return {"allowed": True, "causes": []}
    shown = causes[:MAX_CAUSES_IN_RESPONSE]
    message = ""
    for cause in shown:
        message = cause.message if message == "" else f"{message}, {cause.message}"
    if len(causes) > MAX_CAUSES_IN_RESPONSE:
        message = f"{message}, and {len(causes) - MAX_CAUSES_IN_RESPONSE} more validation errors"
    return {"allowed": False, "message": message, "reason": "Invalid", "code": 422,
            "causes": [cause.to_json() for cause in shown]}


def _error_response(message: str) -> dict[str, Any]:
    """KubeVirt's ToAdmissionResponseError (HTTP 400, no causes)."""
    return {"allowed": False, "message": message, "code": 400, "causes": []}


# --- shared steps -------------------------------------------------------------------------------


def feature_gate_causes(spec: VirtualMachineInstanceSpec, config: KubeVirtConfiguration | None) -> list[Cause]:
    """ValidateFeatureGates: a listed discontinued gate whose old API the VMI still uses."""
    interfaces = spec.interfaces
    causes = []
    for gate in (config.feature_gates if config else []):
        use = _DISCONTINUED_GATE_USES.get(gate)
        if use and any(getattr(iface, use[0]) is not None for iface in interfaces):
            causes.append(Cause(FIELD_VALUE_NOT_SUPPORTED, use[1], ""))
    return causes


def metadata_causes(metadata: ObjectMeta | None, config: KubeVirtConfiguration | None, *,
                    profile: Profile = LATEST, field: str = "metadata") -> list[Cause]:
    """ValidateVirtualMachineInstanceMetadata for a request made by a user (not a KubeVirt service account)."""
    config = config or KubeVirtConfiguration()
    labels = (metadata.labels if metadata else None) or {}
    annotations = (metadata.annotations if metadata else None) or {}
    path = FieldPath(field)
    causes = []
    if any(label in RESTRICTED_VMI_LABELS for label in labels):
        causes.append(Cause(FIELD_VALUE_NOT_SUPPORTED,
                            "creation of the following reserved kubevirt.io/ labels on a VMI object is prohibited",
                            str(path.child("labels"))))
    if annotations.get(IGNITION_ANNOTATION, "") and not profile.gate_enabled(config, "ExperimentalIgnitionSupport"):
        causes.append(Cause(FIELD_VALUE_INVALID,
                            "ExperimentalIgnitionSupport feature gate is not enabled in kubevirt-config, invalid entry "
                            f"{path.child('annotations', IGNITION_ANNOTATION)}", str(path.child("annotations"))))
    if annotations.get(HOOK_SIDECARS_ANNOTATION, "") and not profile.gate_enabled(config, "Sidecar"):
        causes.append(Cause(FIELD_VALUE_INVALID,
                            "sidecar feature gate is not enabled in kubevirt-config, invalid entry "
                            f"{path.child('annotations', HOOK_SIDECARS_ANNOTATION)}", str(path.child("annotations"))))
    return causes


_QUANTITY_NUMBER = re.compile(r"\s*([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))")


def _nonzero_quantity(quantity: Any) -> bool:
    if isinstance(quantity, (int, float)):
        return quantity != 0
    match = _QUANTITY_NUMBER.match(str(quantity))
    return match is None or float(match.group(1)) != 0  # unparsable: not KubeVirt's "no memory" case


def _mandatory_memory_causes(spec: VirtualMachineInstanceSpec, profile: Profile) -> list[Cause]:
    """ValidateVirtualMachineInstanceMandatoryFields: some memory must be requested."""
    domain = spec.domain
    requested = (domain.resources.requests or {}).get("memory") if domain.resources else None
    if requested is not None and _nonzero_quantity(requested):
        return []
    memory = domain.memory
    if memory is not None and (memory.guest is not None or memory.hugepages is not None):
        return []
    hugepages = "spec.domain.memory.hugepages.size" if profile.name == "1.4" else \
        "spec.domain.memory.hugepages.pageSize"
    return [Cause(FIELD_VALUE_REQUIRED,
                  "no memory requested, at least one of 'spec.domain.memory.guest', "
                  f"'{hugepages}' or 'spec.domain.resources.requests.memory' must be set", "")]


def _architecture_causes(spec: VirtualMachineInstanceSpec, profile: Profile) -> list[Cause]:
    # an empty architecture is filled in by KubeVirt's mutating webhook before validation
    if profile.name == "1.4" or not spec.architecture or spec.architecture in SUPPORTED_ARCHITECTURES:
        return []
    return [Cause(FIELD_VALUE_INVALID, f"unsupported architecture: {spec.architecture}", "spec.architecture")]


# --- VMI create ---------------------------------------------------------------------------------


def admit_vmi_create(vmi_json: dict[str, Any], config: KubeVirtConfiguration | None, *,
                     profile: Profile = LATEST) -> dict[str, Any]:
    """The VMI create webhook's answer for the raw object ``vmi_json`` (network rules and what they need).

    Raises pydantic.ValidationError when the object cannot be read at all (wrong types).
    """
    schema = schema_causes(vmi_json, profile)
    if schema:
        return admission_response(schema)
    vmi = VirtualMachineInstance.model_validate(vmi_json)
    spec = profile.decoded(vmi).spec
    config = config or KubeVirtConfiguration()
    causes = feature_gate_causes(spec, config)
    if profile.name == "1.4":
        causes += validate_network_creation(spec, config, profile=profile)
    else:
        # the SIG-network spec validator hook (creation-only + general rules) ...
        causes += validate_network(spec, config, profile=profile)
    # ... and ValidateVirtualMachineInstanceSpec, which runs the general rules (again, on latest)
    causes += validate_network_spec(spec, config, profile=profile)
    causes += _mandatory_memory_causes(spec, profile)
    causes += metadata_causes(vmi.metadata, config, profile=profile)
    causes += _architecture_causes(spec, profile)
    return admission_response(causes)


# --- VM create/update ---------------------------------------------------------------------------

VM_SPEC_FIELD = "spec.template.spec"


def _with_default_network(spec: VirtualMachineInstanceSpec,
                          config: KubeVirtConfiguration) -> VirtualMachineInstanceSpec | str:
    """SetDefaultNetworkInterface as VM admission applies it; a string is KubeVirt's error."""
    devices = spec.domain.devices
    if devices.autoattach_pod_interface is False or spec.networks or devices.interfaces:
        return spec
    kind = (config.network.default_network_interface if config.network else None) or "bridge"
    spec = spec.model_copy(deep=True)
    if kind == "bridge":
        if not config.permit_bridge_interface_on_pod_network:
            return "bridge interface is not enabled in kubevirt-config"
        spec.domain.devices.interfaces = [Interface.model_validate({"name": "default", "bridge": {}})]
    elif kind == "masquerade":
        spec.domain.devices.interfaces = [Interface.model_validate({"name": "default", "masquerade": {}})]
    elif kind == "slirp":
        return "slirp interface is deprecated as of v1.3"
    spec.networks = [Network(name="default", pod=PodNetwork())]
    return spec


def admit_vm(vm: VirtualMachine, config: KubeVirtConfiguration | None, *, profile: Profile = LATEST,
             creation: bool = True) -> dict[str, Any]:
    """The VM webhook's answer (network rules and what they need): CREATE when ``creation``, else UPDATE.

    KubeVirt answers with the first failing step alone: feature gates, then (sic) the creation-only
    network rules with the field prefix ``spec`` (not ``spec.template.spec``), then template metadata
    and the general network rules under ``spec.template.spec``.
    """
    config = config or KubeVirtConfiguration()
    spec = profile.decoded(VirtualMachineInstance(spec=vm.spec.template.spec)).spec
    defaulted = _with_default_network(spec, config)
    if isinstance(defaulted, str):
        return _error_response(defaulted)
    if creation:
        gates = feature_gate_causes(spec, config)
        if gates:
            return admission_response(gates)
        discontinued = validate_network_creation(defaulted, config, profile=profile, field="spec")
        if discontinued:
            return admission_response(discontinued)
    causes = metadata_causes(vm.spec.template.metadata, config, profile=profile, field="spec.template.metadata")
    causes += validate_network_spec(defaulted, config, profile=profile, field=VM_SPEC_FIELD)
    return admission_response(causes)
