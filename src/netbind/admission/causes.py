"""Status causes and field paths as KubeVirt's admission webhooks write them."""
from __future__ import annotations

from dataclasses import dataclass

# metav1.CauseType values used by the rules here
FIELD_VALUE_INVALID = "FieldValueInvalid"
FIELD_VALUE_REQUIRED = "FieldValueRequired"
FIELD_VALUE_DUPLICATE = "FieldValueDuplicate"
FIELD_VALUE_NOT_SUPPORTED = "FieldValueNotSupported"
FIELD_VALUE_NOT_FOUND = "FieldValueNotFound"


@dataclass(frozen=True)
class Cause:
    """One ``metav1.StatusCause``: what is wrong, and where (``field`` may be empty)."""

    type: str
    message: str
    field: str

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "field": self.field}

    @classmethod
    def from_json(cls, data: dict) -> "Cause":
        return cls(data.get("type", ""), data.get("message", ""), data.get("field", ""))


@dataclass(frozen=True)
class FieldPath:
    """k8s ``field.Path``: ``spec.domain.devices.interfaces[0].name``."""

    path: str

    def child(self, *names: str) -> "FieldPath":
        path = self.path
        for name in names:
            path = f"{path}.{name}" if path else name
        return FieldPath(path)

    def index(self, i: int) -> "FieldPath":
        return FieldPath(f"{self.path}[{i}]")

    def __str__(self) -> str:
        return self.path
