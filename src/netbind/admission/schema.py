"""The OpenAPI check KubeVirt's webhooks run on the raw object before anything else.

KubeVirt validates the request body against its OpenAPI schema with every definition closed
(``additionalProperties: false``); a failure answers the request on its own, with causes that have
only a message (empty type and field), e.g. ``spec.domain.devices.interfaces.passtBinding in body is
a forbidden property``. Array items share their array's path (no index), and a message is reported
once. Covered here: the top level, ``spec``, ``spec.domain``, ``spec.domain.devices`` and the whole
interface and network subtree, for each version profile (so v1.4 rejects main-only fields).

Go walks maps in random order, so KubeVirt's order between sibling problems is not stable; this
module reports an object's own unknown keys first (sorted), then its children (sorted), then its
missing required fields, which is the order KubeVirt's validator uses between those groups.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from netbind.api.versions import Profile

from .causes import Cause

__all__ = ["schema_causes"]

_TOP_LEVEL_KEYS = frozenset({"kind", "apiVersion", "spec", "status", "metadata"})
_IGNORED_KEYS = frozenset({"$schema", "id"})


@lru_cache(maxsize=None)
def _definitions(profile_name: str) -> dict[str, Any]:
    data = json.loads(resources.files(__package__).joinpath("openapi_schema.json").read_text())
    return data[profile_name]


def schema_causes(obj: Any, profile: Profile, spec_definition: str = "v1.VirtualMachineInstanceSpec") -> list[Cause]:
    """Schema problems of a raw VMI (or VM template) object, as KubeVirt's webhook reports them."""
    messages: list[str] = []
    if not isinstance(obj, dict):
        return [Cause("", "body must be of type object", "")]
    for key in sorted(obj):
        if key not in _TOP_LEVEL_KEYS:
            messages.append(f".{key} in body is a forbidden property")
    if "spec" not in obj:
        messages.append("spec in body is required")
    else:
        _walk(obj["spec"], spec_definition, "spec", _definitions(profile.name), messages)
    unique = list(dict.fromkeys(messages))
    return [Cause("", message, "") for message in unique]


def _walk(value: Any, definition: str, path: str, definitions: dict[str, Any], out: list[str]) -> None:
    if not isinstance(value, dict):
        return  # type errors are left to the model layer
    schema = definitions[definition]
    properties: dict[str, dict[str, str]] = schema["properties"]
    for key in sorted(value):
        if key not in properties and key not in _IGNORED_KEYS:
            out.append(f"{path}.{key} in body is a forbidden property")
    for name in sorted(properties):
        if name not in value or value[name] is None:
            continue
        node = properties[name]
        child = f"{path}.{name}"
        if "object" in node:
            _walk(value[name], node["object"], child, definitions, out)
        elif "items" in node and isinstance(value[name], list):
            for item in value[name]:
                _walk(item, node["items"], child, definitions, out)
    for name in schema["required"]:
        if name not in value:
            out.append(f"{path}.{name} in body is required")
