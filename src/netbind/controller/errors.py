"""The one error rendering raises: KubeVirt's own message, plus how virt-controller reports it."""
from __future__ import annotations

SYNC_FAILED_REASON = "FailedCreate"


class RenderError(Exception):
    """virt-controller could not render the virt-launcher pod.

    ``str(error)`` is the error ``RenderLaunchManifest`` returns (what the vectors record);
    :attr:`sync_message` is how the VMI controller wraps it, and :meth:`condition` is the VMI
    condition a user sees (``Synchronized=False``, reason ``FailedCreate``). No pod is created.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def sync_message(self) -> str:
        return f"failed to render launch manifest: {self.message}"

    def condition(self) -> dict[str, str]:
        return {"type": "Synchronized", "status": "False", "reason": SYNC_FAILED_REASON,
                "message": self.sync_message}
