"""Webhook answers beyond the recorded vectors: VM admitter, schema, metadata, findings (from KubeVirt's code)."""
from __future__ import annotations

import copy

import pytest

from netbind.admission import admit_vm, admit_vmi_create, validate_network
from netbind.api.models import KubeVirtConfiguration, VirtualMachine, VirtualMachineInstance
from netbind.api.versions import LATEST, V1_4

REGISTRY = KubeVirtConfiguration.model_validate({"network": {"binding": {"passt": {"sidecarImage": "img"}}}})


def vmi_doc(interfaces, networks, **metadata):
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": "vmi", "namespace": "default", **metadata},
            "spec": {"architecture": "amd64", "networks": networks,
                     "domain": {"resources": {"requests": {"memory": "128Mi"}}, "devices": {"interfaces": interfaces}}}}


def vm_of(document):
    template = {"spec": document["spec"]}
    if "annotations" in document["metadata"] or "labels" in document["metadata"]:
        template["metadata"] = {k: v for k, v in document["metadata"].items() if k in ("annotations", "labels")}
    return VirtualMachine.model_validate({"metadata": {"name": "vm"}, "spec": {"template": template}})


POD = [{"name": "default", "pod": {}}]


def test_vm_creation_causes_keep_kubevirts_spec_prefix_and_answer_alone():
    document = vmi_doc([{"name": "default", "slirp": {}}], POD)
    answer = admit_vm(vm_of(document), REGISTRY)
    assert answer["causes"] == [{"type": "FieldValueInvalid",
                                 "message": "Slirp interface support has been discontinued since v1.3",
                                 "field": "spec.domain.devices.interfaces[0].slirp"}]
    # on update the discontinued member is only a missing binding method, under the template prefix
    update = admit_vm(vm_of(document), REGISTRY, creation=False)
    assert update["causes"] == [{"type": "FieldValueInvalid",
                                 "message": "logical default interface must have exactly one binding method or "
                                            "binding plugin",
                                 "field": "spec.template.spec.domain.devices.interfaces[0]"}]


def test_vm_feature_gate_cause_answers_alone():
    config = KubeVirtConfiguration.model_validate({"developerConfiguration": {"featureGates": ["Macvtap"]}})
    document = vmi_doc([{"name": "mv", "macvtap": {}}], [{"name": "mv", "multus": {"networkName": "n"}}])
    answer = admit_vm(vm_of(document), config)
    assert [c["message"] for c in answer["causes"]] == [
        "Macvtap network binding is discontinued since v1.3. Please refer to Kubevirt user guide for alternatives."]


def test_vm_general_causes_are_not_duplicated_and_carry_the_template_prefix():
    document = vmi_doc([{"name": "default", "binding": {"name": "passt"}, "macAddress": "de:ad"}], POD)
    answer = admit_vm(vm_of(document), REGISTRY)
    assert answer["causes"] == [{
        "type": "FieldValueInvalid",
        "message": "interface spec.template.spec.domain.devices.interfaces[0].name has malformed MAC address (de:ad).",
        "field": "spec.template.spec.domain.devices.interfaces[0].macAddress"}]
    assert answer["message"] == answer["causes"][0]["message"]


def test_vm_pod_network_cause_names_the_template_path():
    document = vmi_doc([{"name": "a", "masquerade": {}}, {"name": "b", "masquerade": {}}],
                       [{"name": "a", "pod": {}}, {"name": "b", "pod": {}}])
    cause = admit_vm(vm_of(document), REGISTRY)["causes"][0]
    assert cause == {"type": "FieldValueDuplicate",
                     "message": "more than one interface is connected to a pod network in "
                                "spec.template.spec.interfaces",
                     "field": "spec.template.spec.interfaces"}


@pytest.mark.parametrize(("network", "answer"), [
    ({}, {"allowed": True, "causes": []}),
    ({"permitBridgeInterfaceOnPodNetwork": False},
     {"allowed": False, "message": "bridge interface is not enabled in kubevirt-config", "code": 400, "causes": []}),
    ({"defaultNetworkInterface": "slirp"},
     {"allowed": False, "message": "slirp interface is deprecated as of v1.3", "code": 400, "causes": []}),
    ({"defaultNetworkInterface": "masquerade"}, {"allowed": True, "causes": []}),
])
def test_vm_without_networks_gets_kubevirts_default_interface(network, answer):
    config = KubeVirtConfiguration.model_validate({"network": network})
    assert admit_vm(vm_of(vmi_doc([], [])), config) == answer


def test_vm_with_unknown_default_interface_kind_gets_a_pod_network_without_interface():
    config = KubeVirtConfiguration.model_validate({"network": {"defaultNetworkInterface": "passt"}})
    answer = admit_vm(vm_of(vmi_doc([], [])), config)
    assert [c["message"] for c in answer["causes"]] == ["spec.template.spec.networks[0].name 'default' not found."]


def test_vm_autoattach_off_adds_nothing():
    document = vmi_doc([], [])
    document["spec"]["domain"]["devices"]["autoattachPodInterface"] = False
    config = KubeVirtConfiguration.model_validate({"network": {"permitBridgeInterfaceOnPodNetwork": False}})
    assert admit_vm(vm_of(document), config) == {"allowed": True, "causes": []}


def test_more_than_ten_causes_are_cut_and_counted():
    interfaces = [{"name": f"i{n}", "binding": {"name": "passt"}, "masquerade": {}} for n in range(6)]
    networks = [{"name": f"i{n}", "multus": {"networkName": "nad"}} for n in range(6)]
    answer = admit_vmi_create(vmi_doc(interfaces, networks), REGISTRY)
    # 6 x (exactly-one + masquerade-not-on-pod), twice: 24 causes
    assert len(answer["causes"]) == 10
    assert answer["message"].endswith(", and 14 more validation errors")
    assert answer["message"].count(", ") == 10


def test_unknown_interface_field_is_a_forbidden_property_on_latest_too():
    document = vmi_doc([{"name": "default", "binding": {"name": "passt"}, "macAdress": "x"}], POD)
    assert admit_vmi_create(document, REGISTRY) == {
        "allowed": False, "reason": "Invalid", "code": 422,
        "message": "spec.domain.devices.interfaces.macAdress in body is a forbidden property",
        "causes": [{"type": "", "message": "spec.domain.devices.interfaces.macAdress in body is a forbidden property",
                    "field": ""}]}


def test_schema_reports_missing_required_fields_once_per_path():
    document = vmi_doc([{"binding": {}}, {"binding": {}}], [{"pod": {}}])
    messages = [c["message"] for c in admit_vmi_create(document, REGISTRY)["causes"]]
    assert messages == ["spec.domain.devices.interfaces.binding.name in body is required",
                        "spec.domain.devices.interfaces.name in body is required",
                        "spec.networks.name in body is required"]


def test_v14_rejects_main_only_fields_before_anything_else():
    document = vmi_doc([{"name": "default", "passtBinding": {}, "portRanges": []}], POD)
    answer = admit_vmi_create(document, REGISTRY, profile=V1_4)
    assert [c["message"] for c in answer["causes"]] == [
        "spec.domain.devices.interfaces.passtBinding in body is a forbidden property",
        "spec.domain.devices.interfaces.portRanges in body is a forbidden property"]


def test_memory_must_be_requested_somehow():
    document = vmi_doc([{"name": "default", "binding": {"name": "passt"}}], POD)
    del document["spec"]["domain"]["resources"]
    for profile, hugepages in ((LATEST, "pageSize"), (V1_4, "size")):
        config = REGISTRY.model_copy(update={"developer_configuration": None})
        if profile is V1_4:
            config = KubeVirtConfiguration.model_validate(
                {**REGISTRY.to_json(), "developerConfiguration": {"featureGates": ["NetworkBindingPlugins"]}})
        assert admit_vmi_create(document, config, profile=profile)["causes"] == [{
            "type": "FieldValueRequired", "field": "",
            "message": "no memory requested, at least one of 'spec.domain.memory.guest', "
                       f"'spec.domain.memory.hugepages.{hugepages}' or 'spec.domain.resources.requests.memory' "
                       "must be set"}]
    with_guest = copy.deepcopy(document)
    with_guest["spec"]["domain"]["memory"] = {"guest": "1Gi"}
    assert admit_vmi_create(with_guest, REGISTRY)["allowed"] is True


def test_metadata_rules_use_the_vm_template_path():
    document = vmi_doc([{"name": "default", "binding": {"name": "passt"}}], POD,
                       labels={"kubevirt.io/nodeName": "n1"},
                       annotations={"kubevirt.io/ignitiondata": "{}", "hooks.kubevirt.io/hookSidecars": "[]"})
    vmi_causes = admit_vmi_create(document, REGISTRY)["causes"]
    assert [(c["type"], c["field"]) for c in vmi_causes] == [
        ("FieldValueNotSupported", "metadata.labels"), ("FieldValueInvalid", "metadata.annotations"),
        ("FieldValueInvalid", "metadata.annotations")]
    assert vmi_causes[2]["message"] == ("sidecar feature gate is not enabled in kubevirt-config, invalid entry "
                                        "metadata.annotations.hooks.kubevirt.io/hookSidecars")
    vm_causes = admit_vm(vm_of(document), REGISTRY)["causes"]
    assert [c["field"] for c in vm_causes] == ["spec.template.metadata.labels",
                                               "spec.template.metadata.annotations",
                                               "spec.template.metadata.annotations"]
    gates = KubeVirtConfiguration.model_validate({"developerConfiguration": {
        "featureGates": ["Sidecar", "ExperimentalIgnitionSupport"]}})
    assert [c["field"] for c in admit_vmi_create(document, gates)["causes"]] == ["metadata.labels"]


def test_unsupported_architecture():
    document = vmi_doc([{"name": "default", "masquerade": {}}], POD)
    document["spec"]["architecture"] = "riscv64"
    assert admit_vmi_create(document, None)["causes"] == [
        {"type": "FieldValueInvalid", "message": "unsupported architecture: riscv64", "field": "spec.architecture"}]


@pytest.mark.parametrize(("ranges", "messages"), [
    ([{"protocol": "UDP", "start": 1, "end": 5}, {"protocol": "TCP", "start": 3, "end": 9},
      {"protocol": "UDP", "start": 5, "end": 6}, {"protocol": "TCP", "start": 1, "end": 3}],
     ["portRanges are only supported on masquerade interfaces",
      "TCP portRanges [1-3] and [3-9] overlap", "UDP portRanges [1-5] and [5-6] overlap"]),
    ([{"protocol": "TCP", "start": 0, "end": 5}, {"protocol": "TCP", "start": 9, "end": 70000},
      {"protocol": "TCP", "start": 9, "end": 3}, {"protocol": "SCTP", "start": 1, "end": 2}],
     ["portRanges are only supported on masquerade interfaces", "Start must be a valid port number, 0 < x < 65536",
      "End must be a valid port number, 0 < x < 65536", "Start must be less than or equal to end",
      "Unknown protocol, only TCP or UDP allowed"]),
])
def test_port_range_rules(ranges, messages):
    config = KubeVirtConfiguration.model_validate({"developerConfiguration": {"featureGates": ["PortRangesSpec"]}})
    spec = VirtualMachineInstance.model_validate(
        vmi_doc([{"name": "default", "binding": {"name": "x"}, "portRanges": ranges}], POD)).spec
    assert [c.message for c in validate_network(spec, config)] == messages


def test_sriov_link_state_and_twenty_octet_mac():
    document = vmi_doc([{"name": "sec", "sriov": {}, "state": "down",
                         "macAddress": ":".join(["aa"] * 20)}], [{"name": "sec", "multus": {"networkName": "n"}}])
    spec = VirtualMachineInstance.model_validate(document).spec
    assert [(c.message, c.field) for c in validate_network(spec, None)] == [
        ('"sec" interface\'s state "down" is not supported for SR-IOV NICs', "spec.domain.devices.interfaces[0].state"),
        (f"interface spec.domain.devices.interfaces[0].name has too long MAC address ({':'.join(['aa'] * 20)}).",
         "spec.domain.devices.interfaces[0].macAddress")]


@pytest.mark.parametrize(("gates", "networks", "claims", "expected"), [
    ([], [{"name": "d", "resourceClaim": {"claimName": "c", "requestName": "r"}}], [],
     [("FieldValueInvalid", "vmi.spec.networks contains DRA networks but NetworkDevicesWithDRA feature gate is not "
                            "enabled", "spec.networks")]),
    (["NetworkDevicesWithDRA"], [{"name": "d", "resourceClaim": {"claimName": "c", "requestName": "r"}},
                                 {"name": "m", "multus": {"networkName": "n"}}], [{"name": "c"}],
     [("FieldValueInvalid", "mixing Multus and DRA resourceClaim networks in the same VMI is not supported",
       "spec.networks")]),
    (["NetworkDevicesWithDRA"], [{"name": "d", "resourceClaim": {"claimName": "c", "requestName": "r"}},
                                 {"name": "m", "resourceClaim": {"claimName": "c", "requestName": "r"}},
                                 {"name": "e", "resourceClaim": {}}], [],
     [("FieldValueNotFound", 'network references resourceClaim "c" which is not defined in spec.resourceClaims',
       "spec.networks[0].resourceClaim.claimName"),
      ("FieldValueNotFound", 'network references resourceClaim "c" which is not defined in spec.resourceClaims',
       "spec.networks[1].resourceClaim.claimName"),
      ("FieldValueDuplicate", 'duplicate claimName/requestName combination "c/r"', "spec.networks[1]"),
      ("FieldValueRequired", "claimName is required for DRA network", "spec.networks[2].resourceClaim.claimName"),
      ("FieldValueRequired", "requestName is required for DRA network", "spec.networks[2].resourceClaim.requestName")]),
])
def test_dra_network_rules(gates, networks, claims, expected):
    config = KubeVirtConfiguration.model_validate({"developerConfiguration": {"featureGates": gates}})
    interfaces = [{"name": n["name"], "binding": {"name": "vdpa"}} for n in networks]
    document = vmi_doc(interfaces, networks)
    document["spec"]["resourceClaims"] = claims
    spec = VirtualMachineInstance.model_validate(document).spec
    assert [(c.type, c.message, c.field) for c in validate_network(spec, config)] == expected
