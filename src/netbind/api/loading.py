"""Loading manifests from YAML/JSON files and folders, with errors that say where and what.

A manifest set is what ``kubectl apply -f`` would get: a KubeVirt CR, NetworkAttachmentDefinitions,
Plugins (plugin.kubevirt.io) and one VirtualMachine or VirtualMachineInstance, in any number of files
and documents.
"""
from __future__ import annotations

import difflib
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml
from pydantic import BaseModel, ValidationError

from ._bounded import MAX_FILE_BYTES, BoundError, YAMLLoader, check_yaml, load_json, path_text, read_text
from .models import (
    PLUGIN_API_VERSION,
    KubeModel,
    KubeVirt,
    NetworkAttachmentDefinition,
    Plugin,
    Secret,
    VirtualMachine,
    VirtualMachineInstance,
)

KINDS: dict[str, tuple[str, type[BaseModel]]] = {
    "KubeVirt": ("kubevirt.io/", KubeVirt),
    "VirtualMachine": ("kubevirt.io/", VirtualMachine),
    "VirtualMachineInstance": ("kubevirt.io/", VirtualMachineInstance),
    "NetworkAttachmentDefinition": ("k8s.cni.cncf.io/", NetworkAttachmentDefinition),
    "Plugin": (PLUGIN_API_VERSION, Plugin),
    "Secret": ("", Secret),
}
# kinds whose group serves exactly one version: any other apiVersion is refused by the API server
EXACT_API_VERSIONS = {"Plugin": PLUGIN_API_VERSION, "Secret": "v1"}
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


class ManifestError(Exception):
    """Bad input: names the file, the document, the field path and what is expected."""

    def __init__(self, message: str, *, file: str | None = None, document: int | None = None,
                 line: int | None = None, field: str | None = None, kind: str | None = None):
        self.message = message
        self.file = file
        self.document = document
        self.line = line
        self.field = field
        self.kind = kind
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        parts = [where]
        if self.document is not None:
            parts.append(f"document {self.document}" + (f" ({self.kind})" if self.kind else ""))
        if self.field:
            parts.append(f"field {self.field}")
        return ": ".join(parts) + f": {self.message}"


@dataclass
class Document:
    data: Any
    file: str
    index: int  # 1-based position in its file
    lines: dict[tuple, int] = field(default_factory=dict)  # path -> 1-based line


# KubeVirt's CR as its release manifest creates it (manifests/generated/kubevirt-cr.yaml.in, v1.4.1 and
# main): what a kubectl JSON patch file is applied to. Its empty featureGates list is why the user
# guide's gate patch works "when the FG subtree is already defined".
DEFAULT_KUBEVIRT_CR: dict[str, Any] = {
    "apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
    "spec": {"certificateRotateStrategy": {}, "configuration": {"developerConfiguration": {"featureGates": []}},
             "customizeComponents": {}, "imagePullPolicy": "IfNotPresent", "workloadUpdateStrategy": {}}}
HCO_API_GROUP = "hco.kubevirt.io/"


@dataclass
class Manifests:
    kubevirt: KubeVirt | None = None
    nads: list[NetworkAttachmentDefinition] = field(default_factory=list)
    vms: list[VirtualMachine] = field(default_factory=list)
    vmis: list[VirtualMachineInstance] = field(default_factory=list)
    plugins: list[Plugin] = field(default_factory=list)
    secrets: list[Secret] = field(default_factory=list)  # cloud-init data (secretRef)
    sources: dict[int, str] = field(default_factory=dict)  # id(object) -> "file, document N"
    # what the API server would warn about (unknown fields it drops), each naming file and line
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # what was read, for errors about the whole set
    # a HyperConverged CR as given (its spec.networkBinding is read as the KubeVirt CR's bindings,
    # as the operator copies them)
    hyperconverged: dict[str, Any] | None = None

    @property
    def workload(self) -> VirtualMachine | VirtualMachineInstance:
        found = [*self.vms, *self.vmis]
        if len(found) != 1:
            what = ", ".join(self.sources.get(id(o), "?") for o in found) or "none found"
            raise ManifestError(
                f"expected exactly one VirtualMachine or VirtualMachineInstance, got {len(found)} ({what})",
                file=", ".join(self.files) or None)
        return found[0]

    @property
    def vmi(self) -> VirtualMachineInstance:
        """The VMI as the API server stores it: namespace and uid filled in when absent."""
        workload = self.workload
        vmi = workload.to_vmi() if isinstance(workload, VirtualMachine) else workload.model_copy(deep=True)
        if not vmi.metadata.namespace:
            vmi.metadata.namespace = "default"
        if not vmi.metadata.uid:
            # the API server assigns a random uid; a stable one keeps renders reproducible
            vmi.metadata.uid = str(uuid.uuid5(uuid.NAMESPACE_URL,
                                              f"kubevirt.io/vmi/{vmi.metadata.namespace}/{vmi.metadata.name}"))
        return vmi

    @property
    def field_prefix(self) -> str:
        """Where admission reports fields: ``spec`` for a VMI, ``spec.template.spec`` for a VM."""
        return "spec.template.spec" if isinstance(self.workload, VirtualMachine) else "spec"

    def secret_data(self, namespace: str) -> dict[str, dict[str, bytes]]:
        """The given Secrets of ``namespace`` by name, their values decoded."""
        return {s.metadata.name or "": s.decoded() for s in self.secrets
                if (s.metadata.namespace or "default") == namespace}

    def nad(self, namespace: str, name: str) -> NetworkAttachmentDefinition | None:
        for nad in self.nads:
            if nad.metadata.name == name and (nad.metadata.namespace or "default") == namespace:
                return nad
        return None


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file())
            if not found:
                raise ManifestError(f"folder holds no {'/'.join(MANIFEST_SUFFIXES)} files", file=str(path))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ManifestError("no such file or folder", file=str(path))
    return files


def _yaml_lines(node: yaml.Node, path: tuple, out: dict[tuple, int], seen: set[int]) -> None:
    out[path] = node.start_mark.line + 1
    if id(node) in seen:  # an alias: its target's lines are recorded where it is defined
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[path + (key.value,)] = key.start_mark.line + 1
            _yaml_lines(value, path + (key.value,), out, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _yaml_lines(item, path + (i,), out, seen)


def parse_documents(text: str, file: str, *, as_json: bool | None = None) -> list[Document]:
    """The documents of a file's text (JSON if ``as_json``, by default if the name ends in .json, else
    YAML), within the API server's bounds (see ``_bounded``)."""
    try:
        if file.endswith(".json") if as_json is None else as_json:
            try:
                return [Document(load_json(text), file, 1)]
            except json.JSONDecodeError as exc:
                raise ManifestError(f"not valid JSON: {_json_problem(exc)} (line {exc.lineno}, column {exc.colno})",
                                    file=file, line=exc.lineno) from None
        check_yaml(text)
    except BoundError as exc:
        raise ManifestError(exc.message, file=file, line=exc.line) from None
    docs: list[Document] = []
    loader = YAMLLoader(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            index += 1
            if node is None:
                continue
            lines: dict[tuple, int] = {}
            _yaml_lines(node, (), lines, set())
            try:
                data = loader.construct_document(node)
            except ValueError as exc:  # a scalar Python cannot hold: !!timestamp 2024-02-30, a 5,000-digit int
                raise ManifestError(f"not valid YAML: {exc}", file=file, document=index,
                                    line=node.start_mark.line + 1) from None
            docs.append(Document(data, file, index, lines))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"not valid YAML: {problem}", file=file,
                            line=mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
    return [d for d in docs if d.data is not None]


def _json_problem(exc: json.JSONDecodeError) -> str:
    """Python's message, or the comma mistake it means (the user guide's patches have both kinds)."""
    before = exc.doc[:exc.pos].rstrip()
    if exc.msg.startswith("Expecting ',' delimiter"):
        return "a comma is missing before this value"
    if before.endswith(",") and exc.doc[exc.pos:exc.pos + 1] in ("}", "]"):
        return f"a trailing comma before {exc.doc[exc.pos]!r}; remove the comma"
    return exc.msg


def read_data_file(path: str | Path, *, as_json: bool | None = None) -> Any:
    """The one document of a file netbind takes besides manifests (the image map, ``--pod-network``,
    ``--pod-links``), read within the same bounds; bad input is a :class:`ManifestError` naming it."""
    try:
        text = read_text(path)
    except OSError as exc:
        raise ManifestError(f"cannot read: {exc.strerror or exc}", file=str(path)) from None
    except BoundError as exc:
        raise ManifestError(exc.message, file=str(path), line=exc.line) from None
    docs = parse_documents(text, str(path), as_json=as_json)
    if len(docs) > 1:
        raise ManifestError(f"expected one document, got {len(docs)}", file=str(path),
                            line=docs[1].lines.get(()))
    return docs[0].data if docs else None


def _explain(error: dict[str, Any]) -> str:
    msg = error["msg"]
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    got = error.get("input")
    if kind.endswith("_type") or kind == "model_type":
        shown = type(got).__name__ if isinstance(got, (dict, list)) else repr(got)
        return f"{msg} (got {shown})"
    return msg


def _unknown_fields(value: Any, path: list[Any]) -> Iterator[tuple[list[Any], list[str]]]:
    """Members the API server does not know (it drops them with a warning), with the known names."""
    if isinstance(value, KubeModel):
        fields = type(value).model_fields
        if value.unmodeled is not None:
            known = [info.alias or name for name, info in fields.items()] + sorted(value.unmodeled)
            for key in value.model_extra or {}:
                if key not in value.unmodeled:
                    yield path + [key], known
        for name, info in fields.items():
            child = getattr(value, name)
            if isinstance(child, (KubeModel, list, dict)):
                yield from _unknown_fields(child, path + [info.alias or name])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, KubeModel):
                yield from _unknown_fields(item, path + [index])
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, KubeModel):
                yield from _unknown_fields(item, path + [key])


def unknown_field_warnings(obj: BaseModel, doc: Document, kind: str) -> list[str]:
    """kubectl's ``Warning: unknown field "spec..."`` for each, with the file, line and a likely fix."""
    warnings = []
    for path, known in _unknown_fields(obj, []):
        key = str(path[-1])
        close = difflib.get_close_matches(key.lower(), [k.lower() for k in known], n=1, cutoff=0.75)
        hint = f"; did you mean {next(k for k in known if k.lower() == close[0])}?" if close else ""
        warnings.append(str(ManifestError(
            f'unknown field "{path_text(path)}" (the API server drops it{hint or ""})', file=doc.file,
            document=doc.index, kind=kind, line=doc.lines.get(tuple(path)))))
    return warnings


def _check_names(obj: Any, doc: Document, kind: str) -> None:
    """The API server's object-meta rules: a name (DNS-1123 subdomain, as for every custom resource)
    or a generateName, and a namespace that is a DNS-1123 label."""
    from netbind.gocompat import dns1123_label_errors, dns1123_subdomain_errors, go_quote

    meta = obj.metadata

    def refuse(member: str, value: str, errors: list[str]) -> None:
        raise ManifestError(f"Invalid value: {go_quote(value)}: {'; '.join(errors)}", file=doc.file,
                            document=doc.index, kind=kind, field=f"metadata.{member}",
                            line=doc.lines.get(("metadata", member), doc.lines.get(("metadata",))))

    if meta.name is None and not meta.generate_name and kind != "Plugin":  # a Plugin's is asked for below
        raise ManifestError("Required value: name or generateName is required", file=doc.file,
                            document=doc.index, kind=kind, field="metadata.name",
                            line=doc.lines.get(("metadata",), doc.lines.get(())))
    if meta.name is not None and (errors := dns1123_subdomain_errors(meta.name)):
        refuse("name", meta.name, errors)
    if meta.name is None and meta.generate_name:
        # a prefix: the API server masks a trailing '-' before checking it
        prefix = meta.generate_name[:-1] + "a" if meta.generate_name.endswith("-") else meta.generate_name
        if errors := dns1123_subdomain_errors(prefix):
            refuse("generateName", meta.generate_name, errors)
        if kind in ("VirtualMachine", "VirtualMachineInstance"):
            raise ManifestError("netbind does not generate names; give metadata.name", file=doc.file,
                                document=doc.index, kind=kind, field="metadata.name",
                                line=doc.lines.get(("metadata",)))
    if meta.namespace and kind != "Plugin" and (errors := dns1123_label_errors(meta.namespace)):
        refuse("namespace", meta.namespace, errors)


def model_from_document(doc: Document) -> BaseModel:
    data = doc.data
    if not isinstance(data, dict):
        raise ManifestError(f"a document must be a mapping (an object), got {type(data).__name__}",
                            file=doc.file, document=doc.index, line=doc.lines.get(()))
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise ManifestError(
            f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}" if kind else
            f"missing 'kind'; expected one of {', '.join(KINDS)}",
            file=doc.file, document=doc.index, line=doc.lines.get(("kind",), doc.lines.get(())), field="kind")
    group, model = KINDS[kind]
    api_version = data.get("apiVersion")
    exact = EXACT_API_VERSIONS.get(kind)
    if exact is not None and api_version != exact:
        raise ManifestError(f"apiVersion {api_version!r} does not serve {kind}; expected {exact}",
                            file=doc.file, document=doc.index, kind=kind, field="apiVersion",
                            line=doc.lines.get(("apiVersion",)))
    if not isinstance(api_version, str) or not api_version.startswith(group):
        raise ManifestError(f"apiVersion {api_version!r} does not serve {kind}; expected {group}v1",
                            file=doc.file, document=doc.index, kind=kind, field="apiVersion",
                            line=doc.lines.get(("apiVersion",)))
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = list(first["loc"])
        if first["type"] != "missing":
            # a union (str | int) adds its member's name to the location: keep what the input has
            while len(loc) > 1 and tuple(loc) not in doc.lines and not isinstance(loc[-1], int):
                loc.pop()
        line = doc.lines.get(tuple(loc), doc.lines.get(tuple(loc[:-1])))
        more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        raise ManifestError(_explain(first) + more, file=doc.file, document=doc.index, kind=kind,
                            field=path_text(loc), line=line) from None
    _check_names(obj, doc, kind)
    return obj


def _documents_of(doc: Document) -> list[Document]:
    """Unwrap ``kind: List`` (what ``kubectl get -o yaml`` writes) into its items."""
    data = doc.data
    if isinstance(data, dict) and data.get("kind") == "List" and isinstance(data.get("items"), list):
        return [Document(item, doc.file, doc.index,
                         {k[2:]: v for k, v in doc.lines.items() if k[:2] == ("items", i)})
                for i, item in enumerate(data["items"])]
    return [doc]


def load_manifests(paths: Iterable[str | Path]) -> Manifests:
    manifests = Manifests()
    budget = MAX_FILE_BYTES  # for all files together: memory stays bounded however many are given
    for file in expand_paths(paths):
        try:
            text = read_text(file, budget)
        except OSError as exc:
            raise ManifestError(f"cannot read: {exc.strerror or exc}", file=str(file)) from None
        except BoundError as exc:
            if budget < MAX_FILE_BYTES:
                exc.message += f" (the files before it took {MAX_FILE_BYTES - budget} of the bytes netbind reads)"
            raise ManifestError(exc.message, file=str(file), line=exc.line) from None
        budget -= len(text.encode("utf-8"))
        manifests.files.append(str(file))
        for outer in parse_documents(text, str(file)):
            for doc in _documents_of(outer):
                if _is_json_patch(doc.data):
                    doc = _patched_default_kubevirt(doc)
                elif isinstance(doc.data, dict) and doc.data.get("kind") == "HyperConverged":
                    doc = _hyperconverged(manifests, doc)
                obj = model_from_document(doc)
                manifests.sources[id(obj)] = f"{doc.file}, document {doc.index}"
                manifests.warnings += unknown_field_warnings(obj, doc, obj.kind)
                if isinstance(obj, KubeVirt):
                    if manifests.kubevirt is not None:
                        raise ManifestError("a second KubeVirt CR; give exactly one",
                                            file=doc.file, document=doc.index, kind="KubeVirt")
                    manifests.kubevirt = obj
                elif isinstance(obj, NetworkAttachmentDefinition):
                    manifests.nads.append(obj)
                elif isinstance(obj, Plugin):
                    _add_plugin(manifests, obj, doc)
                elif isinstance(obj, Secret):
                    manifests.secrets.append(obj)
                elif isinstance(obj, VirtualMachine):
                    manifests.vms.append(obj)
                else:
                    manifests.vmis.append(obj)
    return manifests


def _add_plugin(manifests: Manifests, plugin: Plugin, doc: Document) -> None:
    # a cluster-scoped object is known by its name alone: the API server requires one, and the
    # socket-path policy and the launcher's ordering both use it
    if not plugin.metadata.name:
        raise ManifestError("a Plugin needs metadata.name (it is cluster-scoped; generateName is not "
                            "resolved here)", file=doc.file, document=doc.index, kind="Plugin",
                            field="metadata.name", line=doc.lines.get(("metadata",)))
    if any(p.metadata.name == plugin.metadata.name for p in manifests.plugins):
        raise ManifestError(f"a second Plugin named {plugin.metadata.name!r}; Plugin names are unique "
                            "in a cluster", file=doc.file, document=doc.index, kind="Plugin",
                            field="metadata.name", line=doc.lines.get(("metadata", "name")))
    manifests.plugins.append(plugin)


def _is_json_patch(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and all(isinstance(op, dict) and "op" in op for op in data)


def _patched_default_kubevirt(doc: Document) -> Document:
    """A kubectl JSON patch file (``kubectl patch kubevirt kubevirt --type=json --patch-file F``): the
    KubeVirt CR it makes of a freshly installed one."""
    import copy

    import jsonpatch
    import jsonpointer

    try:
        patched = jsonpatch.apply_patch(copy.deepcopy(DEFAULT_KUBEVIRT_CR), doc.data)
    # a malformed operation (a path that is no string, a missing value) fails inside the library
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError, ValueError, KeyError,
            AttributeError, IndexError) as exc:
        raise ManifestError(f"this JSON patch does not apply to KubeVirt's default CR: {exc}", file=doc.file,
                            line=doc.lines.get(())) from None
    if not isinstance(patched, dict) or patched.get("kind") != "KubeVirt" or patched.get("apiVersion") != "kubevirt.io/v1":
        raise ManifestError("this JSON patch changes the KubeVirt CR's kind or apiVersion; patch only its spec",
                            file=doc.file, line=doc.lines.get(()))
    # the patched CR has no lines of its own: every field is reported at the patch, by its full path
    lines: dict[tuple, int] = {}
    stack: list[tuple[tuple, Any]] = [((), patched)]
    while stack:
        path, value = stack.pop()
        lines[path] = doc.lines.get((), 1)
        if isinstance(value, dict):
            stack.extend((path + (k,), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((path + (i,), v) for i, v in enumerate(value))
    return Document(patched, doc.file, doc.index, lines)


def _hyperconverged(manifests: Manifests, doc: Document) -> Document:
    data = doc.data
    if not str(data.get("apiVersion", "")).startswith(HCO_API_GROUP):
        raise ManifestError(f"apiVersion {data.get('apiVersion')!r} does not serve HyperConverged; expected "
                            f"{HCO_API_GROUP}v1beta1", file=doc.file, document=doc.index, kind="HyperConverged",
                            field="apiVersion", line=doc.lines.get(("apiVersion",)))
    if manifests.hyperconverged is not None:
        raise ManifestError("a second HyperConverged CR; give exactly one", file=doc.file, document=doc.index)
    manifests.hyperconverged = data
    spec = data.get("spec") or {}
    # v1beta1 spec.networkBinding; v1 moved it to spec.networking.networkBinding
    binding = spec.get("networkBinding") if "networkBinding" in spec else (spec.get("networking") or {}).get(
        "networkBinding")
    kubevirt = {"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "metadata": {"name": "kubevirt"},
                "spec": {"configuration": {"network": {"binding": binding}} if binding is not None else {}}}
    prefix = ("spec", "networkBinding") if "networkBinding" in spec else ("spec", "networking", "networkBinding")
    lines = {("spec", "configuration", "network", "binding") + k[len(prefix):]: v
             for k, v in doc.lines.items() if k[:len(prefix)] == prefix}
    return Document(kubevirt, doc.file, doc.index, lines)
