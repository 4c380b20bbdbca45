"""KubeVirt's admission of VMIs and VMs, network side, faithful to the real webhooks.

``validate_network`` is KubeVirt's network admitter (the causes ``netbind validate`` prints);
``admit_vmi_create`` and ``admit_vm`` are the whole webhook answers (including KubeVirt's duplicated
network causes for VMIs); ``controller_findings`` is what virt-controller refuses later.
"""
from .causes import Cause, FieldPath
from .goparse import MacAddressError, go_quote, is_ipv4, is_valid_port_name, parse_mac, parse_pci_address
from .network import validate_network, validate_network_creation, validate_network_spec
from .schema import schema_causes
from .webhook import (
    Finding,
    admission_response,
    admit_vm,
    admit_vmi_create,
    controller_findings,
    feature_gate_causes,
    metadata_causes,
)

__all__ = [
    "Cause",
    "FieldPath",
    "Finding",
    "MacAddressError",
    "admission_response",
    "admit_vm",
    "admit_vmi_create",
    "controller_findings",
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
]
