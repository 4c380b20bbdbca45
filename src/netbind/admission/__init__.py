"""KubeVirt's admission of VMIs and VMs, network side, faithful to the real webhooks.

``validate_network`` is KubeVirt's network admitter (the causes ``netbind validate`` prints);
``admit_vmi_create`` and ``admit_vm`` are the whole webhook answers (including KubeVirt's duplicated
network causes for VMIs). What virt-controller refuses later (an unknown binding) is found by
rendering the launcher pod: see ``netbind.review``.
"""
from .causes import Cause, FieldPath
from netbind.gocompat import MacAddressError, go_quote, is_ipv4, is_valid_port_name, parse_mac, parse_pci_address
from .plugin import PluginCause, PluginNotServed, PluginReview, PluginWarning, validate_plugin
from .network import validate_network, validate_network_creation, validate_network_spec
from .schema import schema_causes
from .webhook import (
    admission_response,
    admit_vm,
    admit_vmi_create,
    feature_gate_causes,
    metadata_causes,
)

__all__ = [
    "Cause",
    "PluginCause",
    "PluginNotServed",
    "PluginReview",
    "PluginWarning",
    "FieldPath",
    "MacAddressError",
    "admission_response",
    "admit_vm",
    "admit_vmi_create",
    "feature_gate_causes",
    "go_quote",
    "is_ipv4",
    "is_valid_port_name",
    "metadata_causes",
    "parse_mac",
    "parse_pci_address",
    "schema_causes",
    "validate_network",
    "validate_network_creation",
    "validate_network_spec",
    "validate_plugin",
]
