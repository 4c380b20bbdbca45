"""KubeVirt API models for binding plugins, and manifest loading."""
from .loading import ManifestError, Manifests, load_manifests, parse_documents, read_data_file
from .models import (
    Interface,
    InterfaceBindingPlugin,
    KubeVirt,
    KubeVirtConfiguration,
    Network,
    NetworkAttachmentDefinition,
    Plugin,
    VirtualMachine,
    VirtualMachineInstance,
)

__all__ = [
    "Interface",
    "InterfaceBindingPlugin",
    "KubeVirt",
    "KubeVirtConfiguration",
    "ManifestError",
    "Manifests",
    "Network",
    "NetworkAttachmentDefinition",
    "Plugin",
    "VirtualMachine",
    "VirtualMachineInstance",
    "load_manifests",
    "parse_documents",
    "read_data_file",
]
