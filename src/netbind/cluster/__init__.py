"""``netbind cluster``: the bundle applied to and read from a cluster (a thin effectful layer).

Everything decided here comes from :mod:`netbind.bundle`; this module only sends it. The API clients
are injected (``Cluster(custom, apps)``: kubernetes' CustomObjectsApi and AppsV1Api, or fakes in unit
tests); :func:`connect` builds the real ones from the user's kubeconfig. None of it has run against a
live API server (none can be installed where netbind is developed).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netbind.bundle import Bundle

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
NAD_API = ("k8s.cni.cncf.io", "v1", "network-attachment-definitions")
PLURALS = {"KubeVirt": "kubevirts", "HyperConverged": "hyperconvergeds"}


class ClusterError(RuntimeError):
    """An API answer the command cannot go on from: the message names the object."""


def _status(exc: Exception) -> int | None:
    return getattr(exc, "status", None)


def connect(kubeconfig: str | None = None, context: str | None = None) -> "Cluster":
    from kubernetes import client, config  # imported here: it takes ~0.5 s, and only these commands use it

    config.load_kube_config(config_file=kubeconfig, context=context)
    api = client.ApiClient()
    return Cluster(client.CustomObjectsApi(api), client.AppsV1Api(api))


@dataclass
class BindingCheck:
    binding: str
    nad: str | None          # what is missing, or None
    gate: str | None
    installer: str | None

    @property
    def ok(self) -> bool:
        return not (self.nad or self.gate or self.installer)


class Cluster:
    def __init__(self, custom: Any, apps: Any):
        self.custom = custom
        self.apps = apps

    # --- the registration CR ----------------------------------------------------------------------
    def _cr_call(self, method: str, target: dict[str, str], **kwargs: Any) -> Any:
        group, version = target["apiVersion"].split("/")
        return getattr(self.custom, method)(group, version, target["namespace"], PLURALS[target["kind"]],
                                            target["name"], **kwargs)

    def get_cr(self, target: dict[str, str]) -> dict[str, Any]:
        try:
            return self._cr_call("get_namespaced_custom_object", target)
        except Exception as exc:
            if _status(exc) == 404:
                raise ClusterError(f"{target['kind']} {target['namespace']}/{target['name']} not found; give its "
                                   "name with the CR in -f (metadata.name and namespace)") from None
            raise

    def _patch_cr(self, target: dict[str, str], body: Any, content_type: str) -> Any:
        return self._cr_call("patch_namespaced_custom_object", target, body=body, _content_type=content_type)

    # --- commands ------------------------------------------------------------------------------------
    def register(self, bundle: Bundle) -> list[str]:
        target = bundle.registration.target
        self.get_cr(target)  # before anything is created: a wrong CR name leaves nothing behind
        done = [self._apply_object(obj) for obj in bundle.objects]
        for step in bundle.registration.steps:
            if step["type"] == "merge":
                self._patch_cr(target, step["patch"], MERGE)
                done.append(f"{target['kind']} {target['name']}: {step['why']}")
                continue
            live = self.get_cr(target)
            gates = (((live.get("spec") or {}).get("configuration") or {}).get("developerConfiguration") or {}) \
                .get("featureGates")
            if isinstance(gates, list) and bundle.registration.gate in gates:
                done.append(f"{target['kind']} {target['name']}: {bundle.registration.gate} already listed")
                continue
            # the alternative the CR as read needs, guarded by its resourceVersion: a concurrent
            # writer makes the test fail (HTTP 422) instead of being overwritten
            chosen = step["firstOf"][0 if isinstance(gates, list) else 1]
            guard = [{"op": "test", "path": "/metadata/resourceVersion",
                      "value": live["metadata"]["resourceVersion"]}]
            self._patch_cr(target, guard + chosen, JSON_PATCH)
            done.append(f"{target['kind']} {target['name']}: {step['why']}")
        return done

    def unregister(self, bundle: Bundle, names: list[str] | None = None) -> list[str]:
        target = bundle.registration.target
        wanted = names or sorted(bundle.registration.bindings)
        live = self.get_cr(target)
        registered = list_bindings(live)
        base = "/spec/networkBinding" if target["kind"] == "HyperConverged" else "/spec/configuration/network/binding"
        ops = [{"op": "remove", "path": f"{base}/{name}"} for name in wanted if name in registered]
        done = [f"{name}: not registered" for name in wanted if name not in registered]
        if ops:
            guard = [{"op": "test", "path": "/metadata/resourceVersion", "value": live["metadata"]["resourceVersion"]}]
            self._patch_cr(target, guard + ops, JSON_PATCH)
            done += [f"{op['path'].rsplit('/', 1)[1]}: unregistered" for op in ops]
        for nad in bundle.nads:
            meta = nad["metadata"]
            try:
                self.custom.delete_namespaced_custom_object(*NAD_API[:2], meta["namespace"], NAD_API[2], meta["name"])
                done.append(f"NetworkAttachmentDefinition {meta['namespace']}/{meta['name']}: deleted")
            except Exception as exc:
                if _status(exc) != 404:
                    raise
        return done

    def list(self, target: dict[str, str]) -> dict[str, Any]:
        return list_bindings(self.get_cr(target))

    def check(self, bundle: Bundle, gate_enabled_by_default: bool) -> list[BindingCheck]:
        target = bundle.registration.target
        live = self.get_cr(target)
        registered = list_bindings(live)
        installer = self._installer_problem(bundle)
        gates = ((((live.get("spec") or {}).get("configuration") or {}).get("developerConfiguration") or {})
                 .get("featureGates") or [])
        results = []
        for name in sorted(bundle.registration.bindings):
            binding = registered.get(name)
            if binding is None:
                results.append(BindingCheck(name, "binding not registered", None, None))
                continue
            nad_problem = None
            ref = binding.get("networkAttachmentDefinition")
            if ref:
                nad_problem = self._nad_problem(ref, bundle)
            gate_problem = None
            if target["kind"] == "KubeVirt" and not gate_enabled_by_default and "NetworkBindingPlugins" not in gates:
                gate_problem = "feature gate NetworkBindingPlugins needed and not listed"
            results.append(BindingCheck(name, nad_problem, gate_problem, installer if ref else None))
        return results

    # --- helpers ---------------------------------------------------------------------------------
    def _apply_object(self, obj: dict[str, Any]) -> str:
        meta = obj["metadata"]
        what = f"{obj['kind']} {meta['namespace']}/{meta['name']}"
        try:
            if obj["kind"] == "DaemonSet":
                self.apps.create_namespaced_daemon_set(meta["namespace"], obj)
            else:
                self.custom.create_namespaced_custom_object(*NAD_API[:2], meta["namespace"], NAD_API[2], obj)
            return f"{what}: created"
        except Exception as exc:
            if _status(exc) != 409:
                raise
        if obj["kind"] == "DaemonSet":
            self.apps.patch_namespaced_daemon_set(meta["name"], meta["namespace"], obj)
        else:
            self.custom.patch_namespaced_custom_object(*NAD_API[:2], meta["namespace"], NAD_API[2], meta["name"],
                                                       obj, _content_type=MERGE)
        return f"{what}: updated"

    def _nad_problem(self, ref: str, bundle: Bundle) -> str | None:
        namespace, sep, name = ref.partition("/")
        namespaces = [namespace] if sep else sorted({n["metadata"]["namespace"] for n in bundle.nads}) or ["default"]
        name = name if sep else ref
        missing = []
        for ns in namespaces:
            try:
                self.custom.get_namespaced_custom_object(*NAD_API[:2], ns, NAD_API[2], name)
            except Exception as exc:
                if _status(exc) != 404:
                    raise
                missing.append(f"{ns}/{name}")
        return f"NAD {', '.join(missing)} missing (VMs there cannot start)" if missing else None

    def _installer_problem(self, bundle: Bundle) -> str | None:
        if not bundle.daemonset:
            return None
        meta = bundle.daemonset["metadata"]
        try:
            ds = self.apps.read_namespaced_daemon_set(meta["name"], meta["namespace"])
        except Exception as exc:
            if _status(exc) == 404:
                return f"CNI installer DaemonSet {meta['namespace']}/{meta['name']} missing"
            raise
        status = ds.status if not isinstance(ds, dict) else _Obj(ds.get("status") or {})
        desired, ready = getattr(status, "desired_number_scheduled", 0) or 0, getattr(status, "number_ready", 0) or 0
        if desired == 0 or ready < desired:
            return f"CNI installer DaemonSet {meta['namespace']}/{meta['name']} ready on {ready} of {desired} nodes"
        return None


class _Obj:
    def __init__(self, data: dict[str, Any]):
        self.desired_number_scheduled = data.get("desiredNumberScheduled")
        self.number_ready = data.get("numberReady")


def list_bindings(cr: dict[str, Any]) -> dict[str, Any]:
    spec = cr.get("spec") or {}
    if cr.get("kind") == "HyperConverged":
        return dict(spec.get("networkBinding") or {})
    return dict(((spec.get("configuration") or {}).get("network") or {}).get("binding") or {})
