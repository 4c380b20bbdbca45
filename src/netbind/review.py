"""What KubeVirt will do with a manifest set, as plain data: the engine behind validate/explain.

Each function composes the KubeVirt-side pieces (admission, virt-controller, virt-launcher) for a
loaded manifest set; the CLI only formats the result.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netbind.api.loading import Manifests
from netbind.api.models import KubeVirtConfiguration, VirtualMachine
from netbind.api.versions import Profile


def configuration(manifests: Manifests) -> KubeVirtConfiguration:
    if manifests.kubevirt is None:
        return KubeVirtConfiguration()
    return manifests.kubevirt.spec.configuration


@dataclass
class Finding:
    """A refusal that happens after admission (KubeVirt admits the object, then fails later)."""

    component: str
    reason: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"component": self.component, "reason": self.reason, "message": self.message}


@dataclass
class Validation:
    allowed: bool
    causes: list[Any] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    plugins: list[Any] = field(default_factory=list)  # PluginReview per Plugin, in file order
    has_workload: bool = True
    notes: list[str] = field(default_factory=list)  # netbind's own hints, not KubeVirt's words

    def to_json(self) -> dict[str, Any]:
        data = {"allowed": self.allowed, "causes": [c.to_json() for c in self.causes],
                "findings": [f.to_json() for f in self.findings]}
        if self.plugins:
            data["plugins"] = [p.to_json() for p in self.plugins]
        if self.notes:
            data["notes"] = list(self.notes)
        return data


def has_workload(manifests: Manifests) -> bool:
    return bool(manifests.vms or manifests.vmis)


def plugin_reviews(manifests: Manifests, profile: Profile) -> list[Any]:
    """KubeVirt's answer to creating each Plugin; a version without the resource is bad input."""
    from netbind.admission import PluginNotServed, validate_plugin
    from netbind.api.loading import ManifestError

    config = configuration(manifests)
    reviews = []
    for plugin in manifests.plugins:
        try:
            reviews.append(validate_plugin(plugin, config, profile))
        except PluginNotServed as exc:
            raise ManifestError(str(exc), file=manifests.sources.get(id(plugin))) from None
    return reviews


def controller_findings(manifests: Manifests, profile: Profile) -> list[Finding]:
    """What virt-controller refuses when it renders the launcher pod (e.g. an unknown binding)."""
    from netbind.api.models import NetworkAttachmentDefinition
    from netbind.controller import RenderError, render_launcher_pod

    config = configuration(manifests)
    vmi = manifests.vmi
    # A NAD missing from the files may well exist in the cluster: only the registry is judged here
    # (missing NADs are explain's notes).
    assumed = [NetworkAttachmentDefinition.model_validate(
        {"metadata": {"namespace": ref.split("/", 1)[0], "name": ref.split("/", 1)[1]}})
        for ref in _missing_nads(manifests, profile.decoded(vmi), config)]
    try:
        render_launcher_pod(vmi, config, nads=[*manifests.nads, *assumed], profile=profile)
    except RenderError as exc:
        return [Finding("virt-controller", "FailedCreate", exc.sync_message)]
    return []


def validate(manifests: Manifests, profile: Profile) -> Validation:
    """Admission of the VM/VMI (and what virt-controller refuses later) and of each Plugin.

    A manifest set of Plugins alone is judged without a workload.
    """
    from netbind.admission import validate_network

    plugins = plugin_reviews(manifests, profile)
    plugins_allowed = all(p.allowed for p in plugins)
    if manifests.plugins and not has_workload(manifests):
        return Validation(allowed=plugins_allowed, plugins=plugins, has_workload=False)
    workload = manifests.workload
    config = configuration(manifests)
    if isinstance(workload, VirtualMachine):
        spec = workload.spec.template.spec
        meta = workload.spec.template.metadata
        annotations = dict(meta.annotations or {}) if meta else {}
    else:
        spec = workload.spec
        annotations = workload.annotations
    causes = validate_network(spec, config, profile=profile, field=manifests.field_prefix,
                              creation=True, annotations=annotations)
    return Validation(allowed=not causes and plugins_allowed, causes=causes,
                      findings=controller_findings(manifests, profile), plugins=plugins,
                      notes=registry_notes(manifests, profile) + nad_namespace_notes(manifests, profile))


def registry_notes(manifests: Manifests, profile: Profile) -> list[str]:
    """netbind's hints on binding names: KubeVirt's admission does not look at the registry
    (an unknown name is admitted and fails in virt-controller), so these are ours."""
    import difflib

    registered = sorted(configuration(manifests).bindings)
    wanted = [i.binding.name for i in profile.decoded(manifests.vmi).spec.interfaces if i.binding]
    notes = []
    if manifests.kubevirt is None:
        notes.append("no KubeVirt CR in the given files, so no network binding is registered "
                     "(spec.configuration.network.binding is empty)"
                     + ("; add the cluster's KubeVirt CR with -f" if wanted else ""))
    elif wanted and not registered:
        notes.append("the KubeVirt CR registers no network binding (spec.configuration.network.binding is empty)")
    for name in dict.fromkeys(wanted):
        if name in registered or not registered:
            continue
        near = difflib.get_close_matches(name, registered, n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        notes.append(f"binding {name!r} is not registered in the KubeVirt CR (registered: "
                     f"{', '.join(registered)}){hint}")
    return notes


def _nad_refs(vmi: Any, config: KubeVirtConfiguration) -> list[tuple[str, str, str]]:
    """(what refers, namespace, name) of every NAD the VMI's pod needs, resolved as Multus does."""
    refs = []
    for iface in vmi.spec.interfaces:
        net = vmi.spec.network(iface.name)
        if net is not None and net.multus is not None and net.multus.network_name:
            refs.append((f"network {net.name}", *_resolve_nad(net.multus.network_name, vmi.namespace)))
        entry = config.bindings.get(iface.binding.name) if iface.binding else None
        if entry is not None and entry.network_attachment_definition:
            refs.append((f"binding {iface.binding.name}",
                         *_resolve_nad(entry.network_attachment_definition, vmi.namespace)))
    return list(dict.fromkeys(refs))


def _resolve_nad(ref: str, vmi_namespace: str) -> tuple[str, str]:
    # KubeVirt splits on the first "/"; no "/" means the VMI's namespace (not "default")
    namespace, _, name = ref.partition("/") if "/" in ref else (vmi_namespace, "", ref)
    return namespace, name


def nad_namespace_notes(manifests: Manifests, profile: Profile) -> list[str]:
    """netbind's warnings on NAD namespaces, which admission never checks: a NAD referenced in
    another namespace than the VM's (the user guide recommends the VM's own), and a NAD given in
    the files whose name matches but whose namespace is not the one the reference resolves to."""
    vmi = profile.decoded(manifests.vmi)
    notes = []
    for who, namespace, name in _nad_refs(vmi, configuration(manifests)):
        if manifests.nad(namespace, name) is None:
            elsewhere = sorted((n.metadata.namespace or "default") for n in manifests.nads
                               if n.metadata.name == name)
            if elsewhere:
                notes.append(f"{who} refers to NetworkAttachmentDefinition {namespace}/{name}, but the given "
                             f"files have {name} in namespace {', '.join(elsewhere)}: Multus looks only in "
                             f"{namespace} (write '<namespace>/{name}' to point elsewhere)")
        elif namespace != vmi.namespace:
            reach = ("every namespace can use a NAD in default" if namespace == "default" else
                     "it works only if Multus lets pods use other namespaces' NADs (no namespaceIsolation)")
            notes.append(f"{who} uses NetworkAttachmentDefinition {namespace}/{name}, outside the VM's namespace "
                         f"{vmi.namespace}: {reach}; the user guide recommends the VM's namespace")
    return notes


def admission_review(manifests: Manifests, profile: Profile, uid: str = "") -> dict[str, Any]:
    """The AdmissionReview KubeVirt's webhook answers for this VMI (create) or VM (create)."""
    from netbind.admission import admit_vm, admit_vmi_create

    workload = manifests.workload
    config = configuration(manifests)
    if isinstance(workload, VirtualMachine):
        result = admit_vm(workload, config, profile=profile, creation=True)
    else:
        result = admit_vmi_create(workload.to_json(), config, profile=profile)
    response: dict[str, Any] = {"uid": uid, "allowed": result["allowed"]}
    if not result["allowed"]:
        response["status"] = {
            "metadata": {},
            "message": result.get("message", ""),
            "reason": result.get("reason", "Invalid"),
            "details": {"causes": result.get("causes", [])},
            "code": result.get("code", 422),
        }
    if result.get("warnings"):
        response["warnings"] = result["warnings"]
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def _network_kind(net: Any) -> str:
    if net is None:
        return "missing"
    if net.is_pod:
        return "pod network"
    if net.is_multus_default:
        return f"Multus default network {net.multus.network_name}"
    if net.multus is not None:
        return f"Multus secondary network {net.multus.network_name}"
    if net.resource_claim is not None:
        return "DRA network"
    return "no network source"


def explain(manifests: Manifests, profile: Profile) -> dict[str, Any]:
    """A per-interface account of what KubeVirt does, plus pod-level effects and problems."""
    from netbind import bindings, naming
    from netbind.controller import (RenderError, memory_overhead, multus_networks_annotation,
                                    network_memory_overhead)
    from netbind.controller.sidecars import plugin_sidecars

    config = configuration(manifests)
    validation = validate(manifests, profile)
    if not validation.has_workload:
        return {"kubevirtVersion": profile.name, "allowed": validation.allowed,
                "plugins": explain_plugins(validation.plugins, manifests, profile)}
    vmi = manifests.vmi
    decoded = profile.decoded(vmi)
    registry = config.bindings
    scheme = naming.hashed_scheme(decoded.spec.network_list)
    attachments = bindings.domain_attachment_by_interface_name(decoded, config)
    methods = bindings.binding_migration_method_by_interface_name(decoded, config)

    sidecar_names: dict[str, str] = {}
    try:
        # by binding name on every version (v1.4's rendered HookSidecar has no plugin-name field)
        sidecars = plugin_sidecars(decoded, config, profile)
        for index, sidecar in enumerate(sidecars, start=_annotation_sidecar_count(decoded)):
            sidecar_names[sidecar.network_binding_plugin_name] = f"hook-sidecar-{index}"
    except RenderError:
        sidecars = []
    try:
        multus = multus_networks_annotation(decoded, config, profile=profile)
    except RenderError:
        multus = None

    interfaces = []
    for iface in decoded.spec.interfaces:
        net = decoded.spec.network(iface.name)
        entry = registry.get(iface.binding.name) if iface.binding else None
        pod_iface = scheme.get(iface.name)
        item: dict[str, Any] = {
            "name": iface.name,
            "network": _network_kind(net),
            "binding": (f"plugin {iface.binding.name!r}" if iface.binding else
                        f"core {iface.core_binding}" if iface.core_binding else "none"),
            "registered": entry is not None if iface.binding else None,
            "podInterface": pod_iface,
            "state": iface.state or "up",
        }
        cni = []
        if net is not None and net.is_pod:
            cni.append(f"cluster default network CNI creates {pod_iface}")
        elif net is not None and net.multus is not None:
            cni.append(f"Multus runs NAD {net.multus.network_name}"
                       + (f" as ifname {pod_iface}" if not net.is_multus_default else " as the default network"))
        if entry is not None and entry.network_attachment_definition:
            cni.append(f"then binding NAD {entry.network_attachment_definition} with "
                       f"cni-args.logicNetworkName={iface.name}")
        item["cni"] = cni
        if entry is not None and entry.sidecar_image:
            item["sidecar"] = {"container": sidecar_names.get(iface.binding.name, "?"),
                               "image": entry.sidecar_image,
                               "deviceInfo": entry.downward_api == "device-info"}
        attachment = attachments.get(iface.name)
        if attachment == bindings.TAP and net is not None and pod_iface:
            tap = naming.tap_name(pod_iface, net)
            how = f'core <interface type="ethernet"> on {tap} (or {pod_iface} when no tap exists)'
            if entry is not None and entry.domain_attachment_type == bindings.MANAGED_TAP:
                how = (f"virt-handler builds bridge {naming.bridge_name(pod_iface)}, tap {tap} and a dummy "
                       f"{pod_iface} keeping the pod address; " + how + "; no DHCP from KubeVirt")
            item["domain"] = how
        elif iface.binding and entry is not None:
            plugin_hooks = _plugin_sidecar_hooks(manifests, validation)
            item["domain"] = (f"no core interface: the sidecar must add one with alias ua-{iface.name}"
                              if entry.sidecar_image else
                              f"no core interface: a Plugin domain hook ({', '.join(plugin_hooks)}) must add one"
                              f" with alias ua-{iface.name}" if plugin_hooks else
                              f"nothing: no domainAttachmentType ({entry.domain_attachment_type or 'unset'}) "
                              "and no sidecar, so the guest gets no NIC for it")
        if iface.name in methods:
            item["migration"] = methods[iface.name] or "migratable (no method)"
        if iface.binding and _is_passt_plugin(iface.binding.name, entry) and profile.knows("PasstBinding"):
            item["notes"] = [_passt_core_binding_note(profile.gate_enabled(config, "PasstBinding"))]
        interfaces.append(item)

    migratability = bindings.verify_vmi_migratable(vmi, config, profile)
    result: dict[str, Any] = {
        "vmi": f"{vmi.namespace}/{vmi.metadata.name}",
        "kubevirtVersion": profile.name,
        "allowed": not validation.causes,
        "interfaces": interfaces,
        "multusNetworks": multus,
        "sidecars": len(sidecars),
        "liveMigratable": migratability.condition(),
        "problems": [{"type": c.type, "field": c.field, "message": c.message} for c in validation.causes]
        + [f.to_json() for f in validation.findings],
    }
    from netbind.launcher import disks as disksmod
    result["disks"], disk_problems, disk_notes = disksmod.describe(decoded, manifests.secret_data(decoded.namespace))
    prefix = manifests.field_prefix
    result["problems"] += [{**p, "field": prefix + p["field"][len("spec"):]} for p in disk_problems]
    try:
        result["networkMemoryOverhead"] = str(network_memory_overhead(decoded, config, profile=profile))
        result["memoryOverhead"] = str(memory_overhead(decoded, config, profile=profile))
    except RenderError:
        pass
    if manifests.plugins:
        result["plugins"] = explain_plugins(validation.plugins, manifests, profile,
                                            legacy_sidecars=_annotation_sidecar_count(decoded) + len(sidecars))
    missing = _missing_nads(manifests, decoded, config)
    notes = [f"NetworkAttachmentDefinition {n} is not in the given manifests: Multus fails "
             "the pod sandbox unless it exists in the cluster" for n in missing]
    notes += disk_notes + validation.notes
    if notes:
        result["notes"] = notes
    return result


PASST_SIDECAR_IMAGE_MARK = "network-passt-binding"


def _is_passt_plugin(name: str, entry: Any) -> bool:
    return name == "passt" or bool(entry and entry.sidecar_image and PASST_SIDECAR_IMAGE_MARK in entry.sidecar_image)


def _passt_core_binding_note(enabled: bool) -> str:
    # Facts from KubeVirt main: featuregate/passt.go (PasstIPStackMigration, Discontinued since v1.8),
    # network/resources/memory.go (250Mi), network/passt/repair.go (passt-repair for passtBinding only).
    state = "on here" if enabled else "off here (listed in disabledFeatureGates)"
    return ("KubeVirt has a core passtBinding (Beta feature gate PasstBinding, on by default since v1.9; "
            f"{state}): replace `binding: {{name: passt}}` with `passtBinding: {{}}`. It works on the pod "
            "network only, adds 250Mi to the compute container's memory overhead, and migrates with "
            "passt-repair keeping the guest's connections; the passt plugin lost that seamless migration in "
            "v1.8 (its PasstIPStackMigration gate is discontinued, KubeVirt points to the core binding). "
            "Changing an interface's binding takes a VM restart.")


def _plugin_sidecar_hooks(manifests: Manifests, validation: Validation) -> list[str]:
    """The admitted Plugins with sidecar domain hooks (they may add what core leaves out)."""
    admitted = {r.plugin for r in validation.plugins if r.allowed} if validation.plugins else set()
    return sorted({p.metadata.name for p in manifests.plugins if p.metadata.name in admitted
                   and any(h.sidecar is not None for h in p.spec.domain_hooks or [])})


def explain_plugins(reviews: list[Any], manifests: Manifests, profile: Profile,
                    legacy_sidecars: int = 0) -> dict[str, Any]:
    """Each Plugin's admission, and the domain hooks virt-launcher runs, in its order."""
    from netbind.controller.pod import PLUGIN_SOCKETS_DIR, plugin_sockets_enabled
    from netbind.launcher.plugin_hooks import CEL_NOT_EVALUATED, domain_hook_plan

    config = configuration(manifests)
    by_name = {p.metadata.name: p for p in manifests.plugins}
    admitted = [by_name[r.plugin] for r in reviews if r.allowed]
    plan = domain_hook_plan(admitted)
    items = []
    for review in reviews:
        plugin = by_name[review.plugin]
        spec = plugin.spec
        item: dict[str, Any] = {
            "name": review.plugin,
            "admitted": review.allowed,
            "message": review.message,
            "causes": [c.to_json() for c in review.causes],
            "warnings": [w.api_server_text for w in review.warnings],
            "domainHooks": len(spec.domain_hooks or []),
            "nodeHooks": len(spec.node_hooks or []),
            "admissionReferences": sum(len(refs or []) for refs in (
                spec.mutating_admission_policies, spec.validating_admission_policies,
                spec.mutating_admission_webhooks, spec.validating_admission_webhooks)),
        }
        if review.uses_cel:
            item["cel"] = CEL_NOT_EVALUATED
        items.append(item)
    notes = []
    notes.append("plugin domain hooks run after the legacy OnDefineDomain chain "
                 f"({legacy_sidecars} hook sidecar(s) here)")
    if any(not r.allowed for r in reviews):
        notes.append("a Plugin admission refuses does not exist in the cluster: its hooks do not run")
    if plan and not plugin_sockets_enabled(config, profile):
        notes.append(f"the Plugins feature gate is off: the launcher pod gets no {PLUGIN_SOCKETS_DIR} volume")
    if any(p.spec.node_hooks for p in admitted):
        notes.append("node hooks are virt-handler's: netbind does not call them")
    if any(p.spec.mutating_admission_policies or p.spec.mutating_admission_webhooks for p in admitted):
        notes.append("sidecar containers a referenced mutating policy/webhook injects into the launcher pod "
                     "are not rendered by netbind")
    return {"reviews": items, "domainHookOrder": [h.to_json() for h in plan], "notes": notes}


def _annotation_sidecar_count(vmi: Any) -> int:
    import json

    raw = vmi.annotations.get("hooks.kubevirt.io/hookSidecars")
    try:
        parsed = json.loads(raw) if raw else []
    except ValueError:
        return 0
    return len(parsed) if isinstance(parsed, list) else 0


def _missing_nads(manifests: Manifests, vmi: Any, config: KubeVirtConfiguration) -> list[str]:
    refs = (f"{namespace}/{name}" for _, namespace, name in _nad_refs(vmi, config))
    return [ref for ref in dict.fromkeys(refs) if manifests.nad(*ref.split("/", 1)) is None]
