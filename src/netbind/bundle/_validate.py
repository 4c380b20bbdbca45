"""Every object the bundle emits, against the pinned OpenAPI schemas of ``schemas/`` (jsonschema)."""
from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

from ._compose import Bundle, BundleError, apply_registration

SCHEMAS = Path(__file__).parent / "schemas"
_OPEN = ("additionalProperties", "x-kubernetes-preserve-unknown-fields", "x-netbind-pruned", "$ref")


def _strict(node: Any) -> Any:
    """The API server's strict field validation (kubectl's default): an unknown member is an error,
    except where the schema keeps unknown fields or the extraction cut members away."""
    if isinstance(node, dict):
        node = {k: _strict(v) for k, v in node.items()}
        if "properties" in node and not any(k in node for k in _OPEN):
            node["additionalProperties"] = False
    elif isinstance(node, list):
        node = [_strict(v) for v in node]
    return node


@functools.cache
def _validator(name: str):
    import jsonschema

    schema = json.loads((SCHEMAS / name).read_text())
    if "properties" in schema:  # a CRD's root: the API server serves these members for every CRD
        schema["properties"] = {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                "metadata": {"type": "object"}} | schema["properties"]
        # ObjectMeta is the API server's, whole: a CRD may constrain a member (HCO's name) but not close it
        schema["properties"]["metadata"] = schema["properties"]["metadata"] | {"additionalProperties": True}
    schema = _strict(schema)
    return jsonschema.Draft202012Validator(schema)


def check(obj: Any, schema: str) -> None:
    errors = sorted(_validator(schema).iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        path = ".".join(str(p) for p in first.absolute_path) or "(the object)"
        raise BundleError(f"{obj.get('kind', '?')} {obj.get('metadata', {}).get('name', '')}: field {path}: "
                          f"{first.message} (schema {schema})")


def validate_bundle(bundle: Bundle, profile_name: str, current: dict[str, Any] | None) -> dict[str, Any]:
    """Checks the NADs, the DaemonSet and the CR the registration leaves (applied to ``current``, the
    CR as given, else KubeVirt's default CR); returns that CR."""
    for nad in bundle.nads:
        check(nad, "network-attachment-definition-v1.json")
    if bundle.daemonset:
        check(bundle.daemonset, "daemonset-apps-v1.json")
    target = bundle.registration.target
    base = current or default_cr(target)
    result = apply_registration(base, bundle.registration)
    if target["kind"] == "KubeVirt":
        check(result, f"kubevirt-{'1.4' if profile_name == '1.4' else 'latest'}.json")
    else:
        check(result, "hyperconverged-v1beta1.json")
    return result


def default_cr(target: dict[str, str]) -> dict[str, Any]:
    """The CR of a fresh install: KubeVirt's release CR, or a HyperConverged CR with an empty spec."""
    from netbind.api.loading import DEFAULT_KUBEVIRT_CR

    meta = {"name": target["name"], "namespace": target["namespace"]}
    if target["kind"] == "KubeVirt":
        return copy.deepcopy(DEFAULT_KUBEVIRT_CR) | {"metadata": meta}
    return {"apiVersion": "hco.kubevirt.io/v1beta1", "kind": "HyperConverged", "metadata": meta, "spec": {}}
