"""The requests `netbind cluster` sends, against a fake API client (no API server exists here)."""
import copy

import jsonpatch
import pytest

from netbind.api.loading import DEFAULT_KUBEVIRT_CR, load_manifests
from netbind.api.versions import V1_4
from netbind.bundle import compose_bundle, merge_patch
from netbind.cluster import JSON_PATCH, MERGE, Cluster, ClusterError


class ApiError(Exception):
    def __init__(self, status):
        self.status = status


class FakeApi:
    """Keeps objects in a dict and applies patches as the API server does (RFC 6902 / 7386)."""

    def __init__(self, kubevirt=None):
        self.objects = {}
        self.calls = []
        if kubevirt is not None:
            self.objects[("kubevirts", "kubevirt", "kubevirt")] = copy.deepcopy(kubevirt)
        self.ready = (1, 1)

    # CustomObjectsApi
    def get_namespaced_custom_object(self, group, version, ns, plural, name):
        self.calls.append(("get", plural, ns, name))
        try:
            return copy.deepcopy(self.objects[(plural, ns, name)])
        except KeyError:
            raise ApiError(404) from None

    def create_namespaced_custom_object(self, group, version, ns, plural, body):
        self.calls.append(("create", plural, ns, body["metadata"]["name"]))
        key = (plural, ns, body["metadata"]["name"])
        if key in self.objects:
            raise ApiError(409)
        self.objects[key] = body

    def patch_namespaced_custom_object(self, group, version, ns, plural, name, body, _content_type):
        self.calls.append(("patch", plural, ns, name, _content_type, copy.deepcopy(body)))
        key = (plural, ns, name)
        if _content_type == MERGE:
            self.objects[key] = merge_patch(self.objects[key], body)
        else:
            try:
                self.objects[key] = jsonpatch.apply_patch(self.objects[key], body)
            except jsonpatch.JsonPatchTestFailed:
                raise ApiError(422) from None
        self.objects[key]["metadata"]["resourceVersion"] = str(int(self.objects[key]["metadata"].get("resourceVersion", "1")) + 1)

    def delete_namespaced_custom_object(self, group, version, ns, plural, name):
        self.calls.append(("delete", plural, ns, name))
        if self.objects.pop((plural, ns, name), None) is None:
            raise ApiError(404)

    # AppsV1Api
    def create_namespaced_daemon_set(self, ns, body):
        self.calls.append(("create", "daemonsets", ns, body["metadata"]["name"]))
        self.objects[("daemonsets", ns, body["metadata"]["name"])] = body

    def patch_namespaced_daemon_set(self, name, ns, body):
        self.calls.append(("patch", "daemonsets", ns, name))

    def read_namespaced_daemon_set(self, name, ns):
        if ("daemonsets", ns, name) not in self.objects:
            raise ApiError(404)
        desired, ready = self.ready
        return {"status": {"desiredNumberScheduled": desired, "numberReady": ready}}


@pytest.fixture
def bundle():
    return compose_bundle(load_manifests(["examples/passt/"]), V1_4)


def kubevirt(**config):
    cr = copy.deepcopy(DEFAULT_KUBEVIRT_CR)
    cr["metadata"]["resourceVersion"] = "10"
    cr["spec"]["configuration"] = config
    return cr


def test_register_creates_objects_and_patches_the_cr(bundle):
    api = FakeApi(kubevirt(developerConfiguration={"featureGates": ["Snapshot"]}))
    lines = Cluster(api, api).register(bundle)
    assert lines[:2] == ["NetworkAttachmentDefinition default/netbindingpasst: created",
                         "DaemonSet kubevirt/netbind-cni: created"]
    patches = [c for c in api.calls if c[0] == "patch"]
    assert [p[4] for p in patches] == [MERGE, JSON_PATCH]
    # the gate patch appends, guarded by the resourceVersion read just before
    assert patches[1][5] == [{"op": "test", "path": "/metadata/resourceVersion", "value": "11"},
                             {"op": "add", "path": "/spec/configuration/developerConfiguration/featureGates/-",
                              "value": "NetworkBindingPlugins"}]
    cr = api.objects[("kubevirts", "kubevirt", "kubevirt")]
    assert cr["spec"]["configuration"]["developerConfiguration"]["featureGates"] == ["Snapshot", "NetworkBindingPlugins"]
    # again: objects updated, the gate not listed twice
    lines = Cluster(api, api).register(bundle)
    assert "NetworkAttachmentDefinition default/netbindingpasst: updated" in lines
    assert lines[-1].endswith("NetworkBindingPlugins already listed")
    assert cr["spec"]["configuration"]["developerConfiguration"]["featureGates"].count("NetworkBindingPlugins") == 1


def test_register_creates_the_gate_list_when_there_is_none(bundle):
    api = FakeApi(kubevirt(network={"binding": {"macvtap": {"domainAttachmentType": "tap"}}}))
    Cluster(api, api).register(bundle)
    cr = api.objects[("kubevirts", "kubevirt", "kubevirt")]
    assert cr["spec"]["configuration"]["developerConfiguration"]["featureGates"] == ["NetworkBindingPlugins"]
    assert sorted(cr["spec"]["configuration"]["network"]["binding"]) == ["macvtap", "passt"]


def test_a_missing_cr_is_named(bundle):
    api = FakeApi()
    with pytest.raises(ClusterError, match="KubeVirt kubevirt/kubevirt not found"):
        Cluster(api, api).register(bundle)


def test_check_reports_each_missing_piece(bundle):
    api = FakeApi(kubevirt())
    cluster = Cluster(api, api)
    [result] = cluster.check(bundle, gate_enabled_by_default=False)
    assert result.nad == "binding not registered"
    cluster.register(bundle)
    api.ready = (3, 2)
    [result] = cluster.check(bundle, gate_enabled_by_default=False)
    assert (result.nad, result.gate) == (None, None)
    assert result.installer == "CNI installer DaemonSet kubevirt/netbind-cni ready on 2 of 3 nodes"
    api.ready = (3, 3)
    del api.objects[("network-attachment-definitions", "default", "netbindingpasst")]
    [result] = cluster.check(bundle, gate_enabled_by_default=False)
    assert result.nad == "NAD default/netbindingpasst missing (VMs there cannot start)" and result.installer is None
    cr = api.objects[("kubevirts", "kubevirt", "kubevirt")]
    cr["spec"]["configuration"]["developerConfiguration"]["featureGates"] = []
    [result] = cluster.check(bundle, gate_enabled_by_default=False)
    assert result.gate == "feature gate NetworkBindingPlugins needed and not listed"
    [result] = cluster.check(bundle, gate_enabled_by_default=True)
    assert result.gate is None


def test_unregister_and_list(bundle):
    api = FakeApi(kubevirt(network={"binding": {"macvtap": {"domainAttachmentType": "tap"}}}))
    cluster = Cluster(api, api)
    cluster.register(bundle)
    assert sorted(cluster.list(bundle.registration.target)) == ["macvtap", "passt"]
    lines = cluster.unregister(bundle)
    assert lines == ["passt: unregistered", "NetworkAttachmentDefinition default/netbindingpasst: deleted"]
    assert list(cluster.list(bundle.registration.target)) == ["macvtap"]
    assert cluster.unregister(bundle) == ["passt: not registered"]
