"""The HTTP requests the official kubernetes client makes for `netbind cluster register`: its REST
layer is replaced by a recorder (no API server can run here), everything above it is the real client."""
import json

from netbind.api.loading import DEFAULT_KUBEVIRT_CR, load_manifests
from netbind.api.versions import V1_4
from netbind.bundle import compose_bundle
from netbind.cluster import Cluster


class Response:
    def __init__(self, status, body):
        self.status, self.reason, self.data = status, "OK", json.dumps(body).encode()
        self.headers = {"content-type": "application/json"}

    def read(self):
        return self.data

    def getheader(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def getheaders(self):
        return self.headers


def test_register_sends_these_requests(monkeypatch):
    import kubernetes
    from kubernetes.client import rest

    sent = []
    cr = {**DEFAULT_KUBEVIRT_CR, "metadata": {"name": "kubevirt", "namespace": "kubevirt", "resourceVersion": "5"}}

    def request(self, method, url, headers=None, body=None, post_params=None, _request_timeout=None):
        sent.append((method, url.split("://x")[1], (headers or {}).get("Content-Type"), body))
        if method == "POST":  # the API server answers with the object created
            return Response(201, body)
        return Response(200, cr if "kubevirts" in url else {})

    monkeypatch.setattr(rest.RESTClientObject, "request", request)
    config = kubernetes.client.Configuration(host="https://x")
    api = kubernetes.client.ApiClient(config)
    cluster = Cluster(kubernetes.client.CustomObjectsApi(api), kubernetes.client.AppsV1Api(api))
    cluster.register(compose_bundle(load_manifests(["examples/passt/"]), V1_4))
    summary = [(m, u, t) for m, u, t, _ in sent]
    assert summary == [
        ("GET", "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt", None),
        ("POST", "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions", None),
        ("POST", "/apis/apps/v1/namespaces/kubevirt/daemonsets", None),
        ("PATCH", "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt", "application/merge-patch+json"),
        ("GET", "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt", None),
        ("PATCH", "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt", "application/json-patch+json"),
    ]
    assert sent[-1][3] == [{"op": "test", "path": "/metadata/resourceVersion", "value": "5"},
                           {"op": "add", "path": "/spec/configuration/developerConfiguration/featureGates/-",
                            "value": "NetworkBindingPlugins"}]
    assert sent[3][3]["spec"]["configuration"]["network"]["binding"]["passt"]["domainAttachmentType"] is None
