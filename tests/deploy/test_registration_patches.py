"""The registration's patches on every shape a KubeVirt CR can have (jsonpatch applies RFC 6902)."""
import copy

import jsonpatch
import jsonpointer
import pytest

from netbind.api.loading import load_manifests
from netbind.api.versions import LATEST, V1_4
from netbind.bundle import apply_registration, compose_bundle, merge_patch, validate_bundle

PASST = {"networkAttachmentDefinition": "netbindingpasst",
         "sidecarImage": "quay.io/kubevirt/network-passt-binding:20231205_29a16d5c9",
         "migration": {"method": "link-refresh"}, "computeResourceOverhead": {"requests": {"memory": "500Mi"}}}
OTHER = {"domainAttachmentType": "tap"}


def cr(spec):
    return {"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt",
            "metadata": {"name": "kubevirt", "namespace": "kubevirt", "resourceVersion": "7"}, "spec": spec}


VARIANTS = {
    "no spec.configuration": cr({}),
    "configuration without network": cr({"configuration": {"imagePullPolicy": "Always"}}),
    "network without binding": cr({"configuration": {"network": {"permitSlirpInterface": True}}}),
    "binding with another plugin": cr({"configuration": {"network": {"binding": {"macvtap": OTHER}}}}),
    "featureGates present": cr({"configuration": {"developerConfiguration": {"featureGates": ["Snapshot"]}}}),
    "developerConfiguration without featureGates": cr({"configuration": {"developerConfiguration": {"logVerbosity": {}}}}),
    "default CR": cr({"configuration": {"developerConfiguration": {"featureGates": []}}, "customizeComponents": {}}),
}


@pytest.fixture(scope="module")
def bundles():
    manifests = load_manifests(["examples/passt/"])
    return {p.name: compose_bundle(manifests, p) for p in (LATEST, V1_4)}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("version", ["1.4", "latest"])
def test_registration_keeps_everything_else_and_adds_the_binding(bundles, variant, version):
    before = VARIANTS[variant]
    after = apply_registration(copy.deepcopy(before), bundles[version].registration)
    config = after["spec"]["configuration"]
    assert config["network"]["binding"]["passt"] == PASST
    # nothing that was there is lost
    old = before["spec"].get("configuration", {})
    for key, value in old.items():
        if key == "network":
            for k, v in value.items():
                if k == "binding":
                    assert config["network"]["binding"]["macvtap"] == OTHER
                else:
                    assert config["network"][k] == v
        elif key == "developerConfiguration":
            for k, v in value.items():
                if k != "featureGates":
                    assert config[key][k] == v
        else:
            assert config[key] == value
    gates = config.get("developerConfiguration", {}).get("featureGates")
    old_gates = old.get("developerConfiguration", {}).get("featureGates", [])
    if version == "1.4":
        assert gates == old_gates + ["NetworkBindingPlugins"]
    else:  # GA after v1.4: no gate step, the list is untouched
        assert gates == (old_gates if "featureGates" in old.get("developerConfiguration", {}) else None)


def test_registering_again_replaces_the_entry_exactly(bundles):
    stale = cr({"configuration": {"network": {"binding": {"passt": {**PASST, "downwardAPI": "device-info"}}}}})
    after = apply_registration(stale, bundles["latest"].registration)
    assert after["spec"]["configuration"]["network"]["binding"]["passt"] == PASST


def test_a_plain_add_of_the_parent_would_have_destroyed_the_other_binding():
    # why the bundle does not emit the user guide's `add /spec/configuration/network`
    before = VARIANTS["binding with another plugin"]
    naive = [{"op": "add", "path": "/spec/configuration/network", "value": {"binding": {"passt": PASST}}}]
    assert "macvtap" not in jsonpatch.apply_patch(before, naive)["spec"]["configuration"]["network"]["binding"]


def test_gate_alternatives_first_appends_then_creates(bundles):
    step = bundles["1.4"].registration.steps[1]
    first, second = step["firstOf"]
    with_list = cr({"configuration": {"developerConfiguration": {"featureGates": ["A"]}}})
    without = cr({"configuration": {"developerConfiguration": {}}})
    assert jsonpatch.apply_patch(with_list, first)["spec"]["configuration"]["developerConfiguration"]["featureGates"] == ["A", "NetworkBindingPlugins"]
    with pytest.raises((jsonpatch.JsonPatchException, jsonpointer.JsonPointerException)):
        jsonpatch.apply_patch(without, first)
    assert jsonpatch.apply_patch(without, second)["spec"]["configuration"]["developerConfiguration"]["featureGates"] == ["NetworkBindingPlugins"]


def test_merge_patch_is_rfc7386():
    # RFC 7386 appendix A examples
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": ["b"]}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch([1, 2], {"a": "b", "c": None}) == {"a": "b"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_result_passes_kubevirts_schema(bundles, variant):
    validate_bundle(bundles["1.4"], "1.4", copy.deepcopy(VARIANTS[variant]))
