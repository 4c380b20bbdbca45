"""Right after `netbind new`, for each shape: the project's own tests pass (the netbind venv's
pytest) and `netbind up -f example/ --wait` boots its VM for real, which takes its lease through
the plugin; `netbind down --all` then leaves nothing (netbind.testing.leaks). The
sidecar shapes run their sidecar as the installed console script, and after `netbind image build
--project` as a container of the project's image."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from netbind import _podman
from netbind.testing import require_podman
from netbind.testing.leaks import LeakChecker
from node.conftest import guest_image, require_node_runtime  # noqa: F401  (guest_image: the fixture)

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _run(argv, *, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def netbind_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "netbind.cli", *args]


@pytest.fixture
def project(tmp_path, request, guest_image):
    """A fresh scaffold of the shape, installed (editable) into this venv for as long as the test runs."""
    shape = request.param
    name = f"nb{secrets.token_hex(3)}-{shape.split('-')[0]}"
    done = _run(netbind_argv("new", name, "--shape", shape), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    path = tmp_path / name
    installed = shape != "zero-code"
    if installed:
        done = _run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "-e", str(path)], cwd=path)
        assert done.returncode == 0, done.stderr[-2000:]
    try:
        yield name, shape, path
    finally:
        if installed:
            _run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", name], cwd=tmp_path)


@pytest.fixture
def runtime():
    require_node_runtime()
    path = Path("/run") / f"nb-test-{secrets.token_hex(3)}"
    yield path
    assert not path.exists(), f"{path} left behind"


@pytest.mark.parametrize("project, mode", [("zero-code", None), ("sidecar", "process"), ("sidecar", "container"),
                                           ("cni-sidecar", "process"), ("cni-sidecar", "container")],
                         indirect=["project"])
def test_a_fresh_scaffold_passes_its_tests_and_boots_its_vm(project, mode, runtime):
    """mode process: right after scaffolding (and pip install -e), the sidecar as the installed
    console script; container: after `netbind image build --project .`, as a container of its image."""
    name, shape, path = project
    tests = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=path)
    assert tests.returncode == 0, tests.stdout[-3000:]

    env = dict(os.environ, NETBIND_RUNTIME_DIR=str(runtime), NETBIND_SIDECARS="process")
    tag = f"localhost/{name}-sidecar:latest"
    if mode == "container":
        require_podman()
        built = _run(netbind_argv("image", "build", "--project", ".", "-o", "json"), cwd=path, timeout=900)
        assert built.returncode == 0, built.stderr[-3000:]
        assert [b["tag"] for b in json.loads(built.stdout)] == [tag]
        env["NETBIND_SIDECARS"] = "container"
    checker = LeakChecker(runtime)
    try:
        up = _run(netbind_argv("up", "-f", "example/", "--wait", "-o", "json"), cwd=path, env=env)
        assert up.returncode == 0, up.stderr[-3000:]
        report = json.loads(up.stdout)
        (iface,) = report["vmi"]["status"]["interfaces"]
        assert iface["name"] == name and iface["ipAddress"], iface            # the guest took its lease
        assert "guest-agent" in iface["infoSource"]
        sidecars = report["sidecars"]
        if shape == "zero-code":
            assert sidecars == []
        else:
            (sidecar,) = sidecars
            want = f"container of {tag}" if mode == "container" else f"host process {sys.prefix}/bin/{name}-sidecar"
            assert want in sidecar, sidecar
    finally:
        checker.note()
        down = _run(netbind_argv("down", "--all"), cwd=path, env=env)
        if mode == "container":
            _podman.run("rmi", "--force", tag, check=False)
    assert down.returncode == 0, down.stderr
    assert checker.leaks() == []
