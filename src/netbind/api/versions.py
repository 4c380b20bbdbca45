"""KubeVirt version profiles: which behaviour netbind reproduces.

``latest`` is KubeVirt main after v1.9 (what ``../shared/oracle`` records); ``1.4`` is v1.4.1 (the
user guide's version, ``../shared/oracle-v1.4``). Feature gates are the main difference between them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from .models import KubeVirtConfiguration, VirtualMachineInstance


class GateState(str, Enum):
    ALPHA = "Alpha"
    BETA = "Beta"
    GA = "GA"
    DISCONTINUED = "Discontinued"


@dataclass(frozen=True)
class Profile:
    name: str
    gates: dict[str, GateState]
    beta_on_by_default: bool
    has_disabled_feature_gates: bool
    # API fields this version does not have: Go's decoder drops them (the webhook rejects them)
    unknown_interface_fields: frozenset[str] = frozenset()
    unknown_network_fields: frozenset[str] = frozenset()
    unknown_spec_fields: frozenset[str] = frozenset()
    # KubeVirt v1.4.0's GenerateTapDeviceName: "tap" + podIface[3:] even for the primary network
    tap_name_always_derived: bool = False

    def decoded(self, vmi: VirtualMachineInstance) -> VirtualMachineInstance:
        """The VMI as this version's Go code sees it after json.Unmarshal (unknown fields gone)."""
        if not (self.unknown_interface_fields or self.unknown_network_fields or self.unknown_spec_fields):
            return vmi
        vmi = vmi.model_copy(deep=True)
        spec = vmi.spec
        for iface in spec.domain.devices.interfaces or []:
            _drop(iface, self.unknown_interface_fields)
        for net in spec.networks or []:
            _drop(net, self.unknown_network_fields)
        _drop(spec, self.unknown_spec_fields)
        return vmi

    def gate_enabled(self, config: KubeVirtConfiguration | None, gate: str) -> bool:
        """KubeVirt's IsEnabled: GA on; listed on; disabled-listed off; else Beta per profile."""
        state = self.gates.get(gate)
        if state is GateState.GA:
            return True
        enabled = config.feature_gates if config else []
        disabled = config.disabled_feature_gates if config and self.has_disabled_feature_gates else []
        if gate in enabled:
            return True
        if gate in disabled:
            return False
        return state is GateState.BETA and self.beta_on_by_default

    def knows(self, gate: str) -> bool:
        return gate in self.gates


def _drop(model, names: frozenset[str]) -> None:
    for name in names:
        setattr(model, name, None)
        model.__pydantic_fields_set__.discard(name)


LATEST = Profile(
    name="latest",
    gates={
        "NetworkBindingPlugins": GateState.GA,
        "DynamicPodInterfaceNaming": GateState.GA,
        "PasstBinding": GateState.BETA,
        "ExternalNetResourceInjection": GateState.BETA,
        "PodSecondaryInterfaceNamingUpgrade": GateState.BETA,
        "ImageVolume": GateState.BETA,  # containerDisks as Kubernetes image volumes
        "PortRangesSpec": GateState.ALPHA,
        "NetworkDevicesWithDRA": GateState.ALPHA,
        "Sidecar": GateState.ALPHA,
        "Plugins": GateState.ALPHA,
        "Passt": GateState.DISCONTINUED,
        "Macvtap": GateState.DISCONTINUED,
        "PasstIPStackMigration": GateState.DISCONTINUED,
    },
    beta_on_by_default=True,
    has_disabled_feature_gates=True,
)

V1_4 = Profile(
    name="1.4",
    gates={
        "NetworkBindingPlugins": GateState.BETA,  # Beta but opt-in: v1.4 had no "beta = on" rule
        "Sidecar": GateState.ALPHA,
        "Passt": GateState.DISCONTINUED,
        "Macvtap": GateState.DISCONTINUED,
    },
    beta_on_by_default=False,
    has_disabled_feature_gates=False,
    unknown_interface_fields=frozenset({"passt_binding", "port_ranges"}),
    unknown_network_fields=frozenset({"resource_claim"}),
    unknown_spec_fields=frozenset({"resource_claims"}),
)

# v1.4.0 differs from v1.4.1 only in what ../shared/oracle-v1.4/v1.4.0-deltas.json lists; it keeps the
# name "1.4" so everything keyed on the minor version treats it as v1.4.
V1_4_0 = replace(V1_4, tap_name_always_derived=True)

PROFILES = {"latest": LATEST, "1.4": V1_4, "v1.4": V1_4, "1.4.1": V1_4, "1.4.0": V1_4_0}


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown KubeVirt version {name!r}; choose one of: latest, 1.4") from None
