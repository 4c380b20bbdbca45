"""KubeVirt version profiles: which behaviour netbind reproduces.

``latest`` is KubeVirt main after v1.9 (what ``../shared/oracle`` records); ``1.4`` is v1.4.1 (the
user guide's version, ``../shared/oracle-v1.4``). Feature gates are the main difference between them.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .models import KubeVirtConfiguration


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


LATEST = Profile(
    name="latest",
    gates={
        "NetworkBindingPlugins": GateState.GA,
        "DynamicPodInterfaceNaming": GateState.GA,
        "PasstBinding": GateState.BETA,
        "ExternalNetResourceInjection": GateState.BETA,
        "PodSecondaryInterfaceNamingUpgrade": GateState.BETA,
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
)

PROFILES = {"latest": LATEST, "1.4": V1_4, "v1.4": V1_4, "1.4.1": V1_4}


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown KubeVirt version {name!r}; choose one of: latest, 1.4") from None
