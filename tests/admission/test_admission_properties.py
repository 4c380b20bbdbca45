"""Property-based tests of admission invariants (hypothesis)."""
from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netbind.admission import (
    Cause,
    admission_response,
    admit_vm,
    admit_vmi_create,
    validate_network,
    validate_network_creation,
    validate_network_spec,
)
from netbind.api.models import KubeVirtConfiguration, VirtualMachine, VirtualMachineInstance
from netbind.api.versions import LATEST, V1_4

PROFILES = st.sampled_from([LATEST, V1_4])
NAMES = st.sampled_from(["default", "a", "b", "sec", "my.net", "x y", "", "dup", "é"])
BINDING_MEMBERS = ["binding", "bridge", "masquerade", "sriov", "passtBinding", "slirp", "macvtap", "passt"]
MACS = st.sampled_from(["", "02:00:00:00:00:00", "de:ad:00:00:be:ef", "DE-AD-00-00-BE-AF", "dead.0000.beef",
                        "de:ad:00:00:be", "02:00:5e:10:00:00:00:01", "zz:zz:zz:zz:zz:zz"]) | st.text(max_size=20)
STATES = st.sampled_from(["", "absent", "down", "up", "weird"])


@st.composite
def interfaces(draw):
    iface = {"name": draw(NAMES)}
    for member in draw(st.lists(st.sampled_from(BINDING_MEMBERS), max_size=3, unique=True)):
        iface[member] = {"name": draw(st.sampled_from(["passt", "", "unknown"]))} if member == "binding" else {}
    optional = {
        "macAddress": MACS,
        "model": st.sampled_from(["virtio", "e1000e", "rtl8139", "bogus", ""]),
        "pciAddress": st.sampled_from(["0000:81:11.1", "0000:81:11", "zz"]),
        "state": STATES,
        "ports": st.lists(st.fixed_dictionaries(
            {"port": st.integers(-2, 70000)},
            optional={"name": st.sampled_from(["http", "http", "HTTP", "1", ""]),
                      "protocol": st.sampled_from(["TCP", "UDP", "tcp", "SCTP", ""])}), max_size=3),
        "portRanges": st.lists(st.fixed_dictionaries(
            {"protocol": st.sampled_from(["TCP", "UDP", "x"]), "start": st.integers(-1, 70000),
             "end": st.integers(-1, 70000)}), max_size=12),
        "dhcpOptions": st.fixed_dictionaries({}, optional={
            "ntpServers": st.lists(st.sampled_from(["10.0.0.1", "x", "fd00::1"]), max_size=3),
            "privateOptions": st.lists(st.fixed_dictionaries({"option": st.integers(200, 260),
                                                              "value": st.just("v")}), max_size=3)}),
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), max_size=4, unique=True)):
        iface[key] = draw(optional[key])
    return iface


@st.composite
def networks(draw):
    net = {"name": draw(NAMES)}
    for source in draw(st.lists(st.sampled_from(["pod", "multus", "resourceClaim"]), max_size=2, unique=True)):
        if source == "pod":
            net["pod"] = {}
        elif source == "multus":
            net["multus"] = {"networkName": draw(st.sampled_from(["nad", "ns/nad", ""])), "default": draw(st.booleans())}
        else:
            net["resourceClaim"] = {"claimName": draw(st.sampled_from(["c1", ""])),
                                    "requestName": draw(st.sampled_from(["r1", ""]))}
    return net


CONFIGS = st.fixed_dictionaries({}, optional={
    "network": st.fixed_dictionaries({}, optional={
        "binding": st.just({"passt": {"sidecarImage": "img"}}),
        "permitBridgeInterfaceOnPodNetwork": st.booleans(),
        "permitSlirpInterface": st.booleans()}),
    "developerConfiguration": st.fixed_dictionaries({}, optional={
        "featureGates": st.lists(st.sampled_from(["NetworkBindingPlugins", "Passt", "Macvtap", "PortRangesSpec",
                                                  "NetworkDevicesWithDRA", "Sidecar"]), max_size=4),
        "disabledFeatureGates": st.lists(st.sampled_from(["PasstBinding"]), max_size=1)}),
})


@st.composite
def vmi_documents(draw):
    spec = {"architecture": "amd64",
            "domain": {"resources": {"requests": {"memory": "128Mi"}},
                       "devices": {"interfaces": draw(st.lists(interfaces(), max_size=4))}},
            "networks": draw(st.lists(networks(), max_size=4))}
    if draw(st.booleans()):
        spec["resourceClaims"] = [{"name": "c1", "resourceClaimName": "claim"}]
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": "vmi", "namespace": "default"}, "spec": spec}


def _resolve(document: dict, field: str) -> bool:
    """Does the cause's field path name something that exists in the submitted object?"""
    node = document
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field):
        if name:
            if not isinstance(node, dict) or name not in node:
                return False
            node = node[name]
        else:
            if not isinstance(node, list) or int(index) >= len(node):
                return False
            node = node[int(index)]
    return True


# KubeVirt paths that name no element: the pod-network rule's "spec.interfaces" (sic), and causes
# with no field (feature gates, mandatory fields)
_NON_ELEMENT_FIELDS = {"", "spec.interfaces", "spec.template.spec.interfaces"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vmi_documents(), CONFIGS, PROFILES)
def test_admission_never_crashes_and_every_field_path_exists(document, config_json, profile):
    vmi = VirtualMachineInstance.model_validate(document)
    config = KubeVirtConfiguration.model_validate(config_json)
    causes = validate_network(vmi.spec, config, profile=profile)
    assert all(isinstance(c, Cause) and c.type and c.message for c in causes)
    for cause in causes:
        assert cause.field in _NON_ELEMENT_FIELDS or _resolve(document, cause.field), cause
    answer = admit_vmi_create(document, config, profile=profile)
    assert answer["allowed"] is (not answer["causes"])
    assert len(answer["causes"]) <= 10


@settings(max_examples=200, deadline=None)
@given(vmi_documents(), CONFIGS, PROFILES)
def test_causes_are_creation_then_spec_and_deterministic(document, config_json, profile):
    vmi = VirtualMachineInstance.model_validate(document)
    config = KubeVirtConfiguration.model_validate(config_json)
    creation = validate_network_creation(vmi.spec, config, profile=profile)
    general = validate_network_spec(vmi.spec, config, profile=profile)
    assert validate_network(vmi.spec, config, profile=profile) == creation + general
    assert validate_network(vmi.spec, config, profile=profile, creation=False) == general
    # the same input gives the same causes in the same order, also from a re-parsed copy
    again = VirtualMachineInstance.model_validate(vmi.to_json())
    assert validate_network(again.spec, config, profile=profile) == creation + general


@settings(max_examples=200, deadline=None)
@given(vmi_documents(), CONFIGS, PROFILES)
def test_vm_causes_are_vmi_causes_with_the_template_prefix(document, config_json, profile):
    vmi = VirtualMachineInstance.model_validate(document)
    config = KubeVirtConfiguration.model_validate(config_json)
    as_vmi = validate_network_spec(vmi.spec, config, profile=profile)
    as_vm = validate_network_spec(vmi.spec, config, profile=profile, field="spec.template.spec")

    expected = [Cause(c.type, _swap(c.message), _swap(c.field)) for c in as_vmi]
    assert as_vm == expected


def _swap(text: str) -> str:
    """Move every KubeVirt field path in `text` from the VMI prefix to the VM template prefix."""
    text = re.sub(r"(?<![\w.])spec\.(domain|interfaces|networks)", r"spec.template.spec.\1", text)
    return "spec.template.spec" if text == "spec" else text


@settings(max_examples=150, deadline=None)
@given(vmi_documents(), CONFIGS, PROFILES)
def test_vm_webhook_reports_general_causes_once(document, config_json, profile):
    vmi = VirtualMachineInstance.model_validate(document)
    if not vmi.spec.interfaces and not vmi.spec.networks:
        return  # defaulting adds the pod network first
    config = KubeVirtConfiguration.model_validate(config_json)
    vm = VirtualMachine.model_validate({"metadata": {"name": "vm"}, "spec": {"template": {"spec": document["spec"]}}})
    answer = admit_vm(vm, config, profile=profile)
    creation = validate_network_creation(vmi.spec, config, profile=profile)
    if creation or any(i.passt is not None or i.macvtap is not None for i in vmi.spec.interfaces):
        return  # answered by an earlier step alone
    general = validate_network_spec(vmi.spec, config, profile=profile, field="spec.template.spec")
    assert answer == admission_response(general)


@settings(max_examples=150, deadline=None)
@given(vmi_documents(), CONFIGS)
def test_vmi_webhook_duplicates_general_causes_on_latest_only(document, config_json):
    config = KubeVirtConfiguration.model_validate(config_json)
    vmi = VirtualMachineInstance.model_validate(document)
    if "resourceClaims" in document["spec"]:
        return
    for profile, copies in ((LATEST, 2), (V1_4, 1)):
        if profile is V1_4 and any("passtBinding" in i or "portRanges" in i
                                   for i in document["spec"]["domain"]["devices"]["interfaces"]):
            continue  # the v1.4 schema check answers alone
        if profile is V1_4 and any("resourceClaim" in n for n in document["spec"]["networks"]):
            continue
        gates = [c for c in (config.feature_gates or []) if c in ("Passt", "Macvtap")]
        if gates:
            continue
        expected = (validate_network_creation(vmi.spec, config, profile=profile)
                    + validate_network_spec(vmi.spec, config, profile=profile) * copies)
        assert admit_vmi_create(document, config, profile=profile) == admission_response(expected)


@st.composite
def valid_vmis(draw):
    """VMIs built to pass every network rule of the profile."""
    profile = draw(PROFILES)
    count = draw(st.integers(0, 5))
    names = draw(st.lists(st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True), min_size=count, max_size=count,
                          unique=True))
    primary = draw(st.sampled_from(["pod", "multus-default", "none"])) if names else "none"
    ifaces, nets = [], []
    for i, name in enumerate(names):
        on_pod = i == 0 and primary == "pod"
        if on_pod:
            kinds = ["masquerade", "binding", "bridge"] + (["passtBinding"] if profile is LATEST else [])
            nets.append({"name": name, "pod": {}})
        else:
            kinds = ["binding", "bridge", "sriov"]
            nets.append({"name": name, "multus": {"networkName": f"ns/{name}",
                                                  "default": i == 0 and primary == "multus-default"}})
        kind = draw(st.sampled_from(kinds))
        iface = {"name": name, kind: {"name": "passt"} if kind == "binding" else {}}
        mac = draw(st.binary(min_size=6, max_size=6)).hex(":")
        if draw(st.booleans()) and not (kind == "masquerade" and mac == "02:00:00:00:00:00"):
            iface["macAddress"] = mac
        if draw(st.booleans()):
            iface["model"] = draw(st.sampled_from(sorted(["e1000", "e1000e", "igb", "ne2k_pci", "pcnet", "rtl8139",
                                                          "virtio"])))
        if on_pod and draw(st.booleans()):
            iface["ports"] = [{"name": "http", "port": 80}, {"port": draw(st.integers(1, 65535)), "protocol": "UDP"}]
        if profile is LATEST and kind != "sriov" and draw(st.booleans()):
            iface["state"] = draw(st.sampled_from(["up", "down"]))
        ifaces.append(iface)
    draw(st.randoms()).shuffle(nets)  # network order does not matter to the rules
    document = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
                "metadata": {"name": "vmi", "namespace": "ns"},
                "spec": {"architecture": "amd64",
                         "domain": {"resources": {"requests": {"memory": "1Gi"}}, "devices": {"interfaces": ifaces}},
                         "networks": nets}}
    return document, profile


@settings(max_examples=200, deadline=None)
@given(valid_vmis())
def test_a_vmi_built_to_be_valid_is_allowed(case):
    document, profile = case
    config = KubeVirtConfiguration.model_validate({
        "network": {"binding": {"passt": {"sidecarImage": "img"}}},
        "developerConfiguration": {"featureGates": ["NetworkBindingPlugins"]}})
    vmi = VirtualMachineInstance.model_validate(document)
    assert validate_network(vmi.spec, config, profile=profile) == []
    assert admit_vmi_create(document, config, profile=profile) == {"allowed": True, "causes": []}
    vm = VirtualMachine.model_validate({"spec": {"template": {"spec": document["spec"]}}})
    assert admit_vm(vm, config, profile=profile)["allowed"] is True


@given(st.lists(st.builds(Cause, st.just("FieldValueInvalid"), st.text(min_size=1, max_size=5), st.just("f")),
                max_size=25))
def test_response_keeps_ten_causes_and_counts_the_rest(causes):
    answer = admission_response(causes)
    assert answer["causes"] == [c.to_json() for c in causes[:10]]
    if len(causes) > 10:
        assert answer["message"].endswith(f", and {len(causes) - 10} more validation errors")
    if causes:
        assert answer["message"].startswith(causes[0].message)
        assert (answer["reason"], answer["code"]) == ("Invalid", 422)
