"""The bundle: NADs, CNI installer DaemonSet, registration patches (see the package docstring)."""
from __future__ import annotations

import copy
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from netbind.api.loading import Manifests
from netbind.api.versions import Profile

GATE = "NetworkBindingPlugins"
# netbind's own binding CNI plugins: the installer image (deploy/cni) serves exactly these
NETBIND_CNI_TYPES = ("netbind-cni-passt-binding", "netbind-cni-macvtap", "netbind-cni-bridge-binding")
# names other projects give to plugins netbind reimplements (as netbind up's image map does)
NETBIND_CNI_ALIASES = {"cni-passt-binding-plugin": "netbind-cni-passt-binding",
                       "kubevirt-passt-binding": "netbind-cni-passt-binding",
                       "macvtap": "netbind-cni-macvtap",
                       "netbind-bridge-binding": "netbind-cni-bridge-binding"}
# the reference plugins (containernetworking/plugins) every Multus cluster's nodes carry
STANDARD_CNI_TYPES = frozenset({"bridge", "ipvlan", "macvlan", "ptp", "host-device", "vlan", "tap", "dummy",
                                "loopback", "host-local", "dhcp", "static", "tuning", "portmap", "bandwidth",
                                "firewall", "sbr", "vrf"})
# every member of KubeVirt's InterfaceBindingPlugin: a registration sets the absent ones to null so
# that a merge patch replaces an earlier registration of the same name exactly
BINDING_MEMBERS = ("sidecarImage", "networkAttachmentDefinition", "domainAttachmentType", "migration",
                   "downwardAPI", "computeResourceOverhead")
# binding names the HyperConverged operator writes into KubeVirt's CR over the user's
HCO_OWNED_BINDINGS = {"latest": {"l2bridge"}, "1.4": {"l2bridge", "passt"}}
DAEMONSET_FILE = Path(__file__).resolve().parents[3] / "deploy" / "cni" / "daemonset.yaml"


class BundleError(ValueError):
    """The manifests cannot make a bundle: the message names what and the fix."""


@dataclass(frozen=True)
class CniImage:
    """A vendor's CNI plugin: the image that holds its binary and where (``--cni-image``)."""
    type: str
    image: str
    path: str


def parse_cni_image(text: str) -> CniImage:
    plugin_type, sep, rest = text.partition("=")
    image, colon, path = rest.rpartition(":")
    if not sep or not plugin_type or not colon or not image or not path.startswith("/"):
        raise BundleError(f"--cni-image {text!r}: expected TYPE=IMAGE:/PATH/IN/IMAGE, e.g. "
                          "my-binding=registry.example/my-binding-cni:v1:/usr/bin/my-binding")
    return CniImage(plugin_type, image, path)


@dataclass
class Registration:
    """Patches of one CR, applied in order. A ``json`` step lists alternatives: the first that
    applies is taken (RFC 6902 has no "add if missing")."""
    target: dict[str, str]  # apiVersion, kind, namespace, name
    steps: list[dict[str, Any]]
    bindings: dict[str, dict[str, Any]]
    gate: str | None

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "bindings": sorted(self.bindings), "featureGate": self.gate,
                "steps": self.steps}


@dataclass
class Bundle:
    nads: list[dict[str, Any]]
    daemonset: dict[str, Any] | None
    registration: Registration
    notes: list[str] = field(default_factory=list)

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [*self.nads, *([self.daemonset] if self.daemonset else [])]

    def to_json(self) -> dict[str, Any]:
        return {"objects": self.objects, "registration": self.registration.to_json(), "notes": self.notes}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what ``kubectl patch --type=merge`` sends), on a copy."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_registration(obj: dict[str, Any], registration: Registration) -> dict[str, Any]:
    """The CR after the registration, as the API server would store it; raises BundleError when a
    JSON patch step has no alternative that applies."""
    import jsonpatch
    import jsonpointer

    for step in registration.steps:
        if step["type"] == "merge":
            obj = merge_patch(obj, step["patch"])
            continue
        errors = []
        for patch in step["firstOf"]:
            try:
                obj = jsonpatch.apply_patch(obj, patch)
                break
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                errors.append(str(exc))
        else:
            raise BundleError(f"no alternative of step {step['why']!r} applies: {'; '.join(errors)}")
    return obj


# --- composition -----------------------------------------------------------------------------------

def _nad_ref(ref: str, vm_namespace: str) -> tuple[str, str]:
    namespace, sep, name = ref.partition("/")
    return (namespace, name) if sep else (vm_namespace, ref)


def _cni_types(config: str, where: str) -> list[str]:
    try:
        conf = json.loads(config) if config else {}
    except json.JSONDecodeError as exc:
        raise BundleError(f"{where}: spec.config is not valid JSON: {exc.msg} (line {exc.lineno}, column "
                          f"{exc.colno})") from None
    plugins = conf.get("plugins") if isinstance(conf, dict) else None
    entries = plugins if isinstance(plugins, list) else [conf]
    return [e["type"] for e in entries if isinstance(e, dict) and isinstance(e.get("type"), str)]


def _renamed_types(config: str, renames: dict[str, str]) -> str:
    conf = json.loads(config)
    for entry in conf["plugins"] if isinstance(conf.get("plugins"), list) else [conf]:
        if isinstance(entry, dict) and entry.get("type") in renames:
            entry["type"] = renames[entry["type"]]
    return json.dumps(conf)


def _kubectl(target: dict[str, str], kind: str, patch: Any) -> str:
    resource = "kubevirt" if target["kind"] == "KubeVirt" else "hyperconverged"
    return (f"kubectl patch {resource} {target['name']} -n {target['namespace']} --type={kind} "
            f"-p {shlex.quote(json.dumps(patch, separators=(',', ':')))}")


def _binding_value(binding: dict[str, Any]) -> dict[str, Any]:
    return {member: binding.get(member) for member in BINDING_MEMBERS} | binding


def _kubevirt_registration(manifests: Manifests, bindings: dict[str, dict[str, Any]], profile: Profile,
                           ) -> Registration:
    meta = manifests.kubevirt.metadata if manifests.kubevirt else None
    target = {"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt",
              "namespace": (meta.namespace if meta and meta.namespace else "kubevirt"),
              "name": (meta.name if meta and meta.name else "kubevirt")}
    # Why a merge patch for the binding: RFC 6902 cannot "add if missing". An `add` of an empty
    # parent (`/spec/configuration/network: {}`) replaces a network that exists, with its other
    # bindings, and a chain of adds tried most-specific-first is non-destructive only while no one
    # else writes the CR between two tries. An RFC 7386 merge patch creates every missing parent,
    # keeps every sibling and is one atomic, idempotent request. Absent members are sent as null so
    # that registering again replaces the entry exactly.
    configuration: dict[str, Any] = {
        "network": {"binding": {name: _binding_value(b) for name, b in bindings.items()}}}
    gate = GATE if profile.knows(GATE) and not profile.gate_enabled(None, GATE) else None
    if gate:
        configuration["developerConfiguration"] = {}  # created if missing, untouched if present
    steps: list[dict[str, Any]] = []
    merge = {"spec": {"configuration": configuration}}
    steps.append({"type": "merge", "why": "register the bindings", "patch": merge,
                  "command": _kubectl(target, "merge", merge)})
    if gate:
        # A merge patch replaces a list whole, so the gate is added by RFC 6902: append to the list
        # when there is one (the user guide's patch); only when that fails, which proves there is no
        # list, create it. (A CR that lists the gate already needs neither: `netbind cluster
        # register` reads the CR first; applied blindly, the first alternative lists it twice,
        # which KubeVirt reads the same.)
        path = "/spec/configuration/developerConfiguration/featureGates"
        alternatives = [[{"op": "add", "path": path + "/-", "value": gate}],
                        [{"op": "add", "path": path, "value": [gate]}]]
        steps.append({"type": "json", "why": f"enable the {gate} feature gate (KubeVirt {profile.name})",
                      "firstOf": alternatives,
                      "command": " || ".join(_kubectl(target, "json", p) for p in alternatives)})
    return Registration(target, steps, bindings, gate)


def _hco_registration(manifests: Manifests, bindings: dict[str, dict[str, Any]], profile: Profile,
                      ) -> Registration:
    owned = sorted(set(bindings) & HCO_OWNED_BINDINGS.get(profile.name, set()))
    if owned:
        raise BundleError(f"binding {owned[0]!r}: the HyperConverged operator (KubeVirt {profile.name}) writes "
                          f"its own {owned[0]!r} into KubeVirt's CR over yours; register it under another name")
    hco = manifests.hyperconverged
    meta = (hco or {}).get("metadata") or {}
    target = {"apiVersion": "hco.kubevirt.io/v1beta1", "kind": "HyperConverged",
              "namespace": meta.get("namespace") or "kubevirt-hyperconverged",
              "name": meta.get("name") or "kubevirt-hyperconverged"}
    # spec.networkBinding (v1beta1; v1's spec.networking.networkBinding is converted from it): the
    # operator copies it into KubeVirt's CR and always enables the NetworkBindingPlugins gate there
    # (HCO v1.14, KubeVirt 1.4: one of its hard-coded gates), so no gate step.
    merge = {"spec": {"networkBinding": {name: _binding_value(b) for name, b in bindings.items()}}}
    return Registration(target, [{"type": "merge", "why": "register the bindings", "patch": merge,
                                  "command": _kubectl(target, "merge", merge)}], bindings, None)


def _installer(types: dict[str, str], cni_images: dict[str, CniImage]) -> dict[str, Any] | None:
    """deploy/cni/daemonset.yaml, plus one init container per vendor plugin."""
    if not set(types.values()) & {"netbind", "vendor"}:  # only plugins the nodes carry anyway
        return None
    daemonset = yaml.safe_load(DAEMONSET_FILE.read_text())
    spec = daemonset["spec"]["template"]["spec"]
    mount = {"name": "cni", "mountPath": "/host/opt/cni"}
    init: list[dict[str, Any]] = []
    for plugin_type, served_by in sorted(types.items()):
        if served_by != "vendor":
            continue
        vendor = cni_images[plugin_type]
        dest = f"/host/opt/cni/bin/{plugin_type}"
        # copied under a temporary name, then renamed: a runtime never runs a half-written plugin
        script = f"cp {shlex.quote(vendor.path)} {dest}.tmp && chmod 0755 {dest}.tmp && mv -f {dest}.tmp {dest}"
        init.append({"name": f"install-{plugin_type}"[:63], "image": vendor.image,
                     "command": ["/bin/sh", "-ce", script], "securityContext": {"privileged": True},
                     "volumeMounts": [mount]})
    if init:
        spec["initContainers"] = init
    return daemonset


def compose_bundle(manifests: Manifests, profile: Profile, *, target: str = "kubevirt",
                   vm_namespaces: list[str] | None = None, nad_namespace: str | None = None,
                   cni_images: list[CniImage] = ()) -> Bundle:
    """The bundle for the bindings registered in the manifests' KubeVirt (or HyperConverged) CR.

    NADs go to each VM namespace (those of the VMs given, else ``default``) and the registration names
    them without a namespace, so KubeVirt finds each VM's own (the user guide's recommendation);
    ``nad_namespace`` instead shares one copy from that namespace."""
    config = manifests.kubevirt.spec.configuration if manifests.kubevirt else None
    bindings = {name: b.to_json() for name, b in (config.bindings if config else {}).items()}
    if not bindings:
        raise BundleError(f"{', '.join(manifests.files) or 'input'}: no binding is registered "
                          "(spec.configuration.network.binding of a KubeVirt CR, spec.networkBinding of a "
                          "HyperConverged CR, or a kubectl JSON patch file adding them)")
    if manifests.hyperconverged is not None and target != "hco":
        raise BundleError("a HyperConverged CR is given: the operator owns the KubeVirt CR and undoes patches of "
                          "it; give --target hco")
    workloads = [*manifests.vms, *manifests.vmis]
    namespaces = vm_namespaces or sorted({w.metadata.namespace or "default" for w in workloads} or {"default"})
    vendor = {c.type: c for c in cni_images}
    nads: list[dict[str, Any]] = []
    types: dict[str, str] = {}
    notes: list[str] = []
    for name, binding in sorted(bindings.items()):
        ref = binding.get("networkAttachmentDefinition")
        if not ref:
            continue
        source_ns, nad_name = _nad_ref(ref, namespaces[0])
        nad = manifests.nad(source_ns, nad_name) or next(
            (n for n in manifests.nads if n.metadata.name == nad_name), None)
        if nad is None:
            raise BundleError(f"binding {name!r}: its NetworkAttachmentDefinition {ref!r} is not among the "
                              "manifests; add it to -f")
        where = f"binding {name!r}: NAD {nad_name!r}"
        renames: dict[str, str] = {}
        for plugin_type in _cni_types(nad.spec.config, where):
            if plugin_type in NETBIND_CNI_TYPES:
                types[plugin_type] = "netbind"
            elif plugin_type in vendor:
                types[plugin_type] = "vendor"
            elif plugin_type in NETBIND_CNI_ALIASES:
                # the installed bundle runs the plugin it is called as, so the NAD names netbind's
                types[NETBIND_CNI_ALIASES[plugin_type]] = "netbind"
                renames[plugin_type] = NETBIND_CNI_ALIASES[plugin_type]
                notes.append(f"{where}: CNI plugin {plugin_type!r} is replaced by netbind's "
                             f"{renames[plugin_type]} in the NAD; give --cni-image "
                             f"{plugin_type}=IMAGE:/PATH to install the original instead")
            elif plugin_type in STANDARD_CNI_TYPES:
                types[plugin_type] = "standard"
            else:
                raise BundleError(f"{where}: CNI plugin {plugin_type!r} is not netbind's and netbind cannot "
                                  f"install it; give --cni-image {plugin_type}=IMAGE:/PATH/IN/IMAGE (the image "
                                  "holding its binary)")
        body = nad.to_json()
        if renames:
            body["spec"]["config"] = _renamed_types(body["spec"]["config"], renames)
        body.setdefault("apiVersion", "k8s.cni.cncf.io/v1")
        body.setdefault("kind", "NetworkAttachmentDefinition")
        for ns in [nad_namespace] if nad_namespace else namespaces:
            obj = copy.deepcopy(body)
            obj["metadata"] = {k: v for k, v in obj.get("metadata", {}).items() if k not in ("uid", "resourceVersion")}
            obj["metadata"]["namespace"] = ns
            nads.append(obj)
        binding["networkAttachmentDefinition"] = f"{nad_namespace}/{nad_name}" if nad_namespace else nad_name
    unused = sorted(set(vendor) - set(types))
    if unused:
        raise BundleError(f"--cni-image {unused[0]}: no registered binding's NAD uses CNI plugin {unused[0]!r}")
    compose = _hco_registration if target == "hco" else _kubevirt_registration
    registration = compose(manifests, bindings, profile)
    return Bundle(nads, _installer(types, vendor), registration, notes)
