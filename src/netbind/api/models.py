"""KubeVirt, VM/VMI and NetworkAttachmentDefinition models (the parts binding plugins touch).

Field names and JSON spellings follow KubeVirt's ``kubevirt.io/api/core/v1`` types. Every model keeps
fields it does not know (``extra="allow"``) so a manifest round-trips unchanged through
``to_json()``; absent and empty are different things in KubeVirt (``pod: {}`` selects the pod
network), so optional members are ``None`` when absent and an empty model when given as ``{}``.
"""
from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from . import quantity as _quantity


def _parses_as_quantity(value: str | int | float) -> str | int | float:
    # the API server refuses a resource.Quantity it cannot parse; the value is kept as written
    try:
        _quantity.Quantity.parse(value)
    except _quantity.QuantityError as exc:
        raise ValueError(f"{exc}; write a number with an optional suffix: Ki, Mi, Gi, Ti, Pi, Ei (powers "
                         "of 1024) or k, M, G, T, P, E (powers of 1000), e.g. 1Gi") from None
    return value


Quantity = Annotated[str | int | float, AfterValidator(_parses_as_quantity)]
ResourceList = dict[str, Quantity]


class KubeModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        strict=True,
        defer_build=True,
    )
    # The members of KubeVirt's (or Kubernetes') type that this model leaves out. Set on models that
    # cover their type, so that any other member is an unknown field (the API server drops it with a
    # warning); None on models that cover only part of theirs.
    unmodeled: ClassVar[frozenset[str] | None] = None

    def to_json(self) -> dict[str, Any]:
        """The object as it was given (camelCase, unset fields left out, unknown fields kept)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Empty(KubeModel):
    """A marker object such as ``pod: {}`` or ``masquerade: {}``."""


# --- shared Kubernetes pieces -------------------------------------------------------------------


class ObjectMeta(KubeModel):
    unmodeled = frozenset({"selfLink", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                           "deletionGracePeriodSeconds", "ownerReferences", "finalizers", "managedFields"})
    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class ResourceRequirements(KubeModel):
    unmodeled = frozenset()
    requests: ResourceList | None = None
    limits: ResourceList | None = None


# --- KubeVirt CR: the binding registry ----------------------------------------------------------


class InterfaceBindingMigration(KubeModel):
    unmodeled = frozenset()
    method: str | None = None  # "link-refresh" is the only method KubeVirt acts on


class InterfaceBindingPlugin(KubeModel):
    """``spec.configuration.network.binding.<name>``. KubeVirt validates none of the values."""
    unmodeled = frozenset()

    sidecar_image: str | None = None
    network_attachment_definition: str | None = None
    domain_attachment_type: str | None = None  # "tap" | "managedTap"; others accepted, ignored
    migration: InterfaceBindingMigration | None = None
    downward_api: str | None = Field(default=None, alias="downwardAPI")  # "device-info"
    compute_resource_overhead: ResourceRequirements | None = None


class NetworkConfiguration(KubeModel):
    unmodeled = frozenset()
    binding: dict[str, InterfaceBindingPlugin] | None = None
    default_network_interface: str | None = None
    permit_bridge_interface_on_pod_network: bool | None = None
    permit_slirp_interface: bool | None = None


class DeveloperConfiguration(KubeModel):
    feature_gates: list[str] | None = None
    disabled_feature_gates: list[str] | None = None


class SupportContainerResources(KubeModel):
    type: str
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)


class KubeVirtConfiguration(KubeModel):
    network: NetworkConfiguration | None = None
    developer_configuration: DeveloperConfiguration | None = None
    image_pull_policy: str | None = None
    support_container_resources: list[SupportContainerResources] | None = None

    @property
    def bindings(self) -> dict[str, InterfaceBindingPlugin]:
        if self.network is None or self.network.binding is None:
            return {}
        return self.network.binding

    @property
    def feature_gates(self) -> list[str]:
        dev = self.developer_configuration
        return list(dev.feature_gates or []) if dev else []

    @property
    def disabled_feature_gates(self) -> list[str]:
        dev = self.developer_configuration
        return list(dev.disabled_feature_gates or []) if dev else []

    @property
    def permit_bridge_interface_on_pod_network(self) -> bool:
        # KubeVirt's default is true
        if self.network is None or self.network.permit_bridge_interface_on_pod_network is None:
            return True
        return self.network.permit_bridge_interface_on_pod_network


class KubeVirtSpec(KubeModel):
    configuration: KubeVirtConfiguration = Field(default_factory=KubeVirtConfiguration)


class KubeVirt(KubeModel):
    unmodeled = frozenset({"status"})
    api_version: str = "kubevirt.io/v1"
    kind: Literal["KubeVirt"] = "KubeVirt"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: KubeVirtSpec = Field(default_factory=KubeVirtSpec)


# --- VMI spec: interfaces and networks ----------------------------------------------------------


class PluginBinding(KubeModel):
    name: str  # required by the CRD schema, may be empty


class Port(KubeModel):
    name: str | None = None
    protocol: str | None = None
    port: int


class PortRange(KubeModel):
    protocol: str | None = None
    start: int
    end: int


class DHCPPrivateOption(KubeModel):
    option: int
    value: str


class DHCPOptions(KubeModel):
    boot_file_name: str | None = None
    tftp_server_name: str | None = None
    ntp_servers: list[str] | None = None
    private_options: list[DHCPPrivateOption] | None = None


class Interface(KubeModel):
    """``spec.domain.devices.interfaces[]``."""

    name: str
    binding: PluginBinding | None = None
    bridge: Empty | None = None
    masquerade: Empty | None = None
    sriov: Empty | None = None
    passt_binding: Empty | None = None
    # discontinued core bindings: still in the schema, rejected on creation
    slirp: Empty | None = None
    macvtap: Empty | None = None
    passt: Empty | None = None
    model: str | None = None
    mac_address: str | None = None
    pci_address: str | None = None
    boot_order: int | None = None
    acpi_index: int | None = None
    ports: list[Port] | None = None
    port_ranges: list[PortRange] | None = None
    dhcp_options: DHCPOptions | None = None
    tag: str | None = None
    state: str | None = None

    @property
    def core_binding(self) -> str | None:
        for member in ("bridge", "masquerade", "sriov", "passt_binding"):
            if getattr(self, member) is not None:
                return member
        return None


class PodNetwork(KubeModel):
    vm_network_cidr: str | None = Field(default=None, alias="vmNetworkCIDR")
    vm_ipv6_network_cidr: str | None = Field(default=None, alias="vmIPv6NetworkCIDR")


class MultusNetwork(KubeModel):
    network_name: str = ""
    default: bool = False


class ResourceClaimNetwork(KubeModel):
    claim_name: str | None = None
    request_name: str | None = None


class Network(KubeModel):
    name: str
    pod: PodNetwork | None = None
    multus: MultusNetwork | None = None
    resource_claim: ResourceClaimNetwork | None = None

    @property
    def is_pod(self) -> bool:
        return self.pod is not None

    @property
    def is_multus_default(self) -> bool:
        return self.multus is not None and self.multus.default

    @property
    def is_secondary_multus(self) -> bool:
        return self.multus is not None and not self.multus.default

    @property
    def is_primary(self) -> bool:
        return self.is_pod or self.is_multus_default


class Devices(KubeModel):
    interfaces: list[Interface] | None = None
    disks: list[dict[str, Any]] | None = None
    use_virtio_transitional: bool | None = None
    network_interface_multiqueue: bool | None = None
    autoattach_pod_interface: bool | None = None
    autoattach_graphics_device: bool | None = None
    autoattach_serial_console: bool | None = None
    autoattach_mem_balloon: bool | None = None
    disable_hotplug: bool | None = None
    inputs: list[dict[str, Any]] | None = None
    video: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None
    tpm: dict[str, Any] | None = None


class CPU(KubeModel):
    cores: int | None = None
    sockets: int | None = None
    threads: int | None = None
    dedicated_cpu_placement: bool | None = None
    model: str | None = None
    features: list[dict[str, Any]] | None = None
    max_sockets: int | None = None
    numa: dict[str, Any] | None = None


class Hugepages(KubeModel):
    page_size: str | None = None


class Memory(KubeModel):
    guest: Quantity | None = None
    max_guest: Quantity | None = None
    hugepages: Hugepages | None = None


class DomainResources(KubeModel):
    requests: ResourceList | None = None
    limits: ResourceList | None = None
    overcommit_guest_overhead: bool | None = None


class DomainSpec(KubeModel):
    devices: Devices = Field(default_factory=Devices)
    resources: DomainResources | None = None
    cpu: CPU | None = None
    memory: Memory | None = None
    machine: dict[str, Any] | None = None
    launch_security: dict[str, Any] | None = None
    firmware: dict[str, Any] | None = None
    features: dict[str, Any] | None = None
    chassis: dict[str, Any] | None = None
    clock: dict[str, Any] | None = None


class Volume(KubeModel):
    name: str
    container_disk: dict[str, Any] | None = None
    cloud_init_no_cloud: dict[str, Any] | None = None
    cloud_init_config_drive: dict[str, Any] | None = None


class VirtualMachineInstanceSpec(KubeModel):
    domain: DomainSpec = Field(default_factory=DomainSpec)
    networks: list[Network] | None = None
    volumes: list[Volume] | None = None
    architecture: str | None = None
    hostname: str | None = None
    subdomain: str | None = None
    termination_grace_period_seconds: int | None = None
    resource_claims: list[dict[str, Any]] | None = None

    @property
    def interfaces(self) -> list[Interface]:
        return list(self.domain.devices.interfaces or [])

    @property
    def network_list(self) -> list[Network]:
        return list(self.networks or [])

    def network(self, name: str) -> Network | None:
        return next((n for n in self.network_list if n.name == name), None)

    def interface(self, name: str) -> Interface | None:
        return next((i for i in self.interfaces if i.name == name), None)


class InterfaceStatus(KubeModel):
    name: str | None = None
    mac: str | None = None
    ip_address: str | None = None
    ip_addresses: list[str] | None = None
    interface_name: str | None = None
    info_source: str | None = None
    pod_interface_name: str | None = None
    link_state: str | None = None
    queue_count: int | None = None


class Condition(KubeModel):
    type: str
    status: str
    reason: str | None = None
    message: str | None = None


class VirtualMachineInstanceStatus(KubeModel):
    phase: str | None = None
    interfaces: list[InterfaceStatus] | None = None
    conditions: list[Condition] | None = None
    runtime_user: int | None = None


class VirtualMachineInstance(KubeModel):
    api_version: str = "kubevirt.io/v1"
    kind: Literal["VirtualMachineInstance"] = "VirtualMachineInstance"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: VirtualMachineInstanceSpec = Field(default_factory=VirtualMachineInstanceSpec)
    status: VirtualMachineInstanceStatus | None = None

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.metadata.annotations or {})

    @property
    def is_non_root(self) -> bool:
        # virt-controller: the VMI runs as non-root unless status.runtimeUser is 0
        return self.status is None or self.status.runtime_user is None or self.status.runtime_user != 0


class VirtualMachineInstanceTemplateSpec(KubeModel):
    unmodeled = frozenset()
    metadata: ObjectMeta | None = None
    spec: VirtualMachineInstanceSpec = Field(default_factory=VirtualMachineInstanceSpec)


class VirtualMachineSpec(KubeModel):
    unmodeled = frozenset({"instancetype", "preference", "dataVolumeTemplates", "updateVolumesStrategy"})
    template: VirtualMachineInstanceTemplateSpec
    run_strategy: str | None = None
    running: bool | None = None


class VirtualMachine(KubeModel):
    unmodeled = frozenset({"status"})
    api_version: str = "kubevirt.io/v1"
    kind: Literal["VirtualMachine"] = "VirtualMachine"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: VirtualMachineSpec

    def to_vmi(self) -> VirtualMachineInstance:
        """The VMI virt-controller creates from this VM (name and namespace of the VM)."""
        template = self.spec.template
        meta = template.metadata.model_copy(deep=True) if template.metadata else ObjectMeta()
        meta.name = self.metadata.name
        meta.namespace = self.metadata.namespace
        return VirtualMachineInstance(metadata=meta, spec=template.spec.model_copy(deep=True))


# --- Multus ---------------------------------------------------------------------------------------


class NetworkAttachmentDefinitionSpec(KubeModel):
    unmodeled = frozenset()
    config: str = ""


class Secret(KubeModel):
    """A core/v1 Secret: here only as the source of cloud-init data (``secretRef``)."""

    unmodeled = frozenset({"immutable"})
    api_version: str = "v1"
    kind: Literal["Secret"] = "Secret"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    type: str | None = None
    data: dict[str, str] | None = None
    string_data: dict[str, str] | None = None

    @field_validator("data")
    @classmethod
    def _base64_values(cls, data: dict[str, str] | None) -> dict[str, str] | None:
        for key, value in (data or {}).items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"data.{key} is not valid base64 (the API server refuses it; use stringData "
                                 "for plain text)") from None
        return data

    def decoded(self) -> dict[str, bytes]:
        """The values as a pod sees them: data decoded, stringData (which wins, as on the API server)."""
        values = {k: base64.b64decode(v) for k, v in (self.data or {}).items()}
        values.update({k: v.encode() for k, v in (self.string_data or {}).items()})
        return values


class NetworkAttachmentDefinition(KubeModel):
    unmodeled = frozenset()
    api_version: str = "k8s.cni.cncf.io/v1"
    kind: Literal["NetworkAttachmentDefinition"] = "NetworkAttachmentDefinition"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: NetworkAttachmentDefinitionSpec = Field(default_factory=NetworkAttachmentDefinitionSpec)

    @property
    def resource_name(self) -> str | None:
        return (self.metadata.annotations or {}).get("k8s.v1.cni.cncf.io/resourceName")


# --- plugin.kubevirt.io/v1alpha1 Plugin (VEP 190, FG Plugins) --------------------------------------
#
# The CRD's schema checks only types, required members, minLength and minItems; enumerations
# (failureStrategy, permittedHooks) and "exactly one of cel or sidecar" are left to KubeVirt's
# ValidatingAdmissionPolicies, so they are plain strings here and judged in netbind.admission.plugin.

PLUGIN_API_VERSION = "plugin.kubevirt.io/v1alpha1"


class CELDomainHook(KubeModel):
    expression: str = Field(min_length=1)


class SidecarDomainHook(KubeModel):
    socket_path: str = Field(min_length=1)


class DomainHook(KubeModel):
    """``spec.domainHooks[]``: exactly one of ``cel`` or ``sidecar`` (a policy checks it)."""

    cel: CELDomainHook | None = None
    sidecar: SidecarDomainHook | None = None
    condition: str | None = None
    failure_strategy: str | None = None  # "Fail" | "Ignore"; empty means the plugin's
    timeout: str | None = None  # a metav1.Duration ("30s", "1m30s"); parsed by the webhook


class NodeHook(KubeModel):
    """``spec.nodeHooks[]``: called by virt-handler on the node (netbind does not call them)."""

    socket: str = Field(min_length=1)
    permitted_hooks: list[str] = Field(min_length=1)
    condition: str | None = None
    failure_strategy: str | None = None
    timeout: str | None = None


class AdmissionReference(KubeModel):
    name: str = Field(min_length=1)


class PluginSpec(KubeModel):
    condition: str | None = None
    failure_strategy: str | None = None  # "Fail" (the default) | "Ignore"
    domain_hooks: list[DomainHook] | None = None
    node_hooks: list[NodeHook] | None = None
    mutating_admission_policies: list[AdmissionReference] | None = None
    validating_admission_policies: list[AdmissionReference] | None = None
    mutating_admission_webhooks: list[AdmissionReference] | None = None
    validating_admission_webhooks: list[AdmissionReference] | None = None


class Plugin(KubeModel):
    """A cluster-scoped KubeVirt extension: domain hooks, node hooks, admission references."""

    api_version: str = PLUGIN_API_VERSION
    kind: Literal["Plugin"] = "Plugin"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PluginSpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name or ""
