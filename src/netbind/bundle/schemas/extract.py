"""Regenerates the pinned schemas of this folder (a maintainer's tool; see README.md here).

    python src/netbind/bundle/schemas/extract.py KUBEVIRT_GIT HCO_GIT NAD_GIT K8S_DEFINITIONS_JSON

Each schema keeps only what netbind emits or patches, without descriptions, so the files stay small:
KubeVirt's CR down to ``spec.configuration.{network,developerConfiguration}``, the HyperConverged
CR down to ``spec.networkBinding``, the NAD CRD whole, and the DaemonSet closure of Kubernetes'
definitions. A pruned object keeps ``type: object`` (members outside the kept paths are unchecked).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent
KUBEVIRT_REVS = {"latest": "d923fdb815cd2016ddaebdaaa51db04133576d72", "1.4": "v1.4.1"}
HCO_REV = "v1.18.1"
NAD_REV = "HEAD"


def _git_show(git_dir: str, rev: str, path: str) -> str:
    return subprocess.run(["git", "--git-dir", git_dir, "show", f"{rev}:{path}"], check=True,
                          capture_output=True, text=True).stdout


def _strip(node):
    if isinstance(node, dict):
        # a member may be called "description" (a property), so only drop it where it is text
        return {k: _strip(v) for k, v in node.items() if not (k == "description" and isinstance(v, str))}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _prune(schema: dict, keep: dict) -> dict:
    """``keep`` maps member names to sub-trees to keep (``True``: the member whole)."""
    # marked, so that the validator's strict unknown-field check skips what was cut away here
    out = {k: v for k, v in schema.items() if k != "properties"} | {"x-netbind-pruned": True}
    props = schema.get("properties", {})
    out["properties"] = {}
    for name, sub in keep.items():
        if name in props:
            out["properties"][name] = props[name] if sub is True else _prune(props[name], sub)
    if "required" in out:
        out["required"] = [r for r in out["required"] if r in out["properties"]]
    return out


def _crd_schema(crd_yaml: str, version: str) -> dict:
    for doc in yaml.safe_load_all(crd_yaml):
        if doc and doc.get("kind") == "CustomResourceDefinition":
            for v in doc["spec"]["versions"]:
                if v["name"] == version:
                    return v["schema"]["openAPIV3Schema"]
    raise SystemExit(f"no version {version} in the CRD")


def _write(name: str, schema: dict, source: str) -> None:
    schema = {"$comment": source, **_strip(schema)}
    (HERE / name).write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


def main(kubevirt_git: str, hco_git: str, nad_git: str, k8s_definitions: str) -> None:
    keep_kv = {"apiVersion": True, "kind": True, "metadata": True,
               "spec": {"configuration": {"network": True, "developerConfiguration": True}}}
    for profile, rev in KUBEVIRT_REVS.items():
        go = _git_show(kubevirt_git, rev, "pkg/virt-operator/resource/generate/components/validations_generated.go")
        start = go.index('"kubevirt": `') + len('"kubevirt": `')
        body = yaml.safe_load(go[start:go.index("`", start)])["openAPIV3Schema"]
        _write(f"kubevirt-{profile}.json", _prune(body, keep_kv),
               f"kubevirt/kubevirt {rev}: pkg/virt-operator/resource/generate/components/validations_generated.go")
    hco = _crd_schema(_git_show(hco_git, HCO_REV, "deploy/crds/hco00.crd.yaml"), "v1beta1")
    _write("hyperconverged-v1beta1.json",
           _prune(hco, {"apiVersion": True, "kind": True, "metadata": True, "spec": {"networkBinding": True}}),
           f"kubevirt/hyperconverged-cluster-operator {HCO_REV}: deploy/crds/hco00.crd.yaml, version v1beta1")
    nad = _crd_schema(_git_show(nad_git, NAD_REV, "artifacts/networks-crd.yaml"), "v1")
    rev = subprocess.run(["git", "--git-dir", nad_git, "rev-parse", NAD_REV], capture_output=True, text=True).stdout.strip()
    _write("network-attachment-definition-v1.json", nad,
           f"k8snetworkplumbingwg/network-attachment-definition-client {rev}: artifacts/networks-crd.yaml")
    definitions = json.loads(Path(k8s_definitions).read_text())["$defs"]
    closure, todo = {}, ["io.k8s.api.apps.v1.DaemonSet"]
    while todo:
        name = todo.pop()
        if name in closure:
            continue
        closure[name] = definitions[name]
        text = json.dumps(definitions[name])
        for part in text.split('"$ref": "')[1:]:
            todo.append(part.split('"')[0].rsplit("/", 1)[-1])
    _write("daemonset-apps-v1.json", {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": "#/$defs/io.k8s.api.apps.v1.DaemonSet", "$defs": closure},
           "kubernetes-validate 1.37.0 (PyPI), kubernetes-json-schema/v1.37.0-local-strict/_definitions.json "
           "(from kubernetes/kubernetes v1.37.0 api/openapi-spec): the closure of io.k8s.api.apps.v1.DaemonSet")


if __name__ == "__main__":
    main(*sys.argv[1:5])
