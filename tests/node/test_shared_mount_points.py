"""Host mount points (/run/libvirt, the hooks dir, ...) shared by two runtime dirs at once (root):
whichever runtime goes last removes the ones netbind made, and one the host had is never removed.
Each runtime alone used to leave them behind while the other still used them."""
from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from netbind.node import sandbox

from .conftest import require_node_runtime


@pytest.fixture
def points(monkeypatch):
    require_node_runtime()
    base = Path("/run") / f"nb-mpt-{secrets.token_hex(3)}"
    made, hosts = base / "made-by-netbind", base / "the-hosts-own"
    hosts.mkdir(parents=True)
    monkeypatch.setattr(sandbox, "MOUNT_POINTS", (made, hosts))
    runtimes = [Path("/run") / f"nb-mpr-{secrets.token_hex(3)}" for _ in range(2)]
    try:
        yield made, hosts, runtimes
    finally:
        for runtime in runtimes:
            sandbox.down_all(runtime)
        hosts.rmdir()
        made.exists() and made.rmdir()
        base.rmdir()


@pytest.mark.parametrize("first_down", [0, 1])
def test_the_last_runtime_to_go_removes_the_mount_points_netbind_made(points, first_down):
    made, hosts, runtimes = points
    for runtime in runtimes:
        sandbox.ensure_node(runtime)
    assert made.is_dir()
    sandbox.down_all(runtimes[first_down])
    assert made.is_dir(), "removed while the other runtime still uses it"
    sandbox.down_all(runtimes[1 - first_down])
    assert not made.exists(), "left behind by the last runtime"
    assert hosts.is_dir()


def test_a_runtime_that_outlives_the_removal_makes_the_point_again_on_its_next_up(points):
    made, _, runtimes = points
    sandbox.ensure_node(runtimes[0])
    made.rmdir()   # as a runtime that did not know of the other would have done
    sandbox.ensure_node(runtimes[0])
    assert made.is_dir()
    sandbox.down_all(runtimes[0])
    assert not made.exists()
