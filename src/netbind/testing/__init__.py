"""Test kit for netbind and for plugin authors (pytest fixtures and helpers).

``require(capability, ok, how)`` is the one way tests ask for a host capability: outside CI a
missing capability skips the test; in CI (``CI=true``) it fails with a message that says how to
provide it, because CI must never silently skip what it is meant to check.
"""
from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(capability: str, ok: bool, how: str) -> None:
    if ok:
        return
    message = f"needs {capability}: {how}"
    if in_ci():
        pytest.fail(f"CI requires this capability: {message}", pytrace=False)
    pytest.skip(message)


def require_root() -> None:
    require("root", os.geteuid() == 0, "run the tests as root (CI does)")


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    require(f"the {name} binary", path is not None, f"apt-get install {package} (make test does)")
    return path or name


def require_podman() -> None:
    """Root, podman and runc: what building and running netbind's images needs here."""
    from netbind import _podman

    require_root()
    reason = _podman.unavailable()
    require("podman", reason is None, f"{reason} (make test installs podman and runc)")
