"""netbind's images: built offline from deploy/ on Debian-package bases, run as KubeVirt runs sidecars."""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from netbind import _podman, images
from netbind.images import _base, _build
from netbind.node import apt

REPO = Path(__file__).resolve().parents[2]


# ---- pure parts ----------------------------------------------------------------------------------

def test_unknown_image_names_the_known_ones():
    with pytest.raises(images.ImageBuildError, match="unknown image nope; known: passt, bridge, cni, cloud-guest"):
        images.select(["nope"])


def test_select_keeps_order_and_drops_repeats():
    assert [s.name for s in images.select(["bridge", "passt", "bridge"])] == ["bridge", "passt"]
    assert [s.name for s in images.select([])] == list(images.IMAGES)


def test_requirements_are_pinned_to_the_tested_versions():
    from importlib import metadata

    assert _build._pinned("grpcio") == f"grpcio=={metadata.version('grpcio')}"
    assert _build._pinned("lxml>=5") == "lxml>=5"
    assert _build._pinned("surely-not-installed-pkg") == "surely-not-installed-pkg"


def _fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for rel in ("deploy/passt/Containerfile", "src/netbind/__init__.py", "pyproject.toml", "README.md"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    return root


def test_inputs_hash_follows_sources_and_containerfile_not_bytecode(tmp_path):
    root = _fake_root(tmp_path)
    spec = images.IMAGES["passt"]
    first = _build.inputs_hash(spec, root)
    assert _build.inputs_hash(spec, root) == first
    (root / "src/netbind/__pycache__").mkdir()
    (root / "src/netbind/__pycache__/x.cpython-311.pyc").write_bytes(b"\0")
    assert _build.inputs_hash(spec, root) == first
    (root / "deploy/passt/Containerfile").write_text("changed")
    second = _build.inputs_hash(spec, root)
    assert second != first
    (root / "src/netbind/__init__.py").write_text("changed")
    assert _build.inputs_hash(spec, root) not in (first, second)


@pytest.mark.parametrize("name", list(images.IMAGES))
def test_containerfiles_build_unchanged_with_a_registry(name):
    """FROM comes from BASE_IMAGE/BUILD_IMAGE whose defaults are public images, never a local tag."""
    text = (REPO / images.IMAGES[name].containerfile).read_text()
    defaults = dict(re.findall(r"^ARG (BASE_IMAGE|BUILD_IMAGE)=(\S+)", text, re.M))
    if re.findall(r"^FROM (\S+)", text, re.M) == ["scratch"]:
        assert not defaults      # the cloud guest image: nothing but its disk, no base
    else:
        assert defaults, "a Containerfile names its bases by ARG BASE_IMAGE/BUILD_IMAGE with public defaults"
    for used in re.findall(r"^FROM \$\{(\w+)\}", text, re.M):
        assert used in defaults, f"FROM ${{{used}}} without an ARG default"
    for ref in defaults.values():
        assert not ref.startswith("localhost/") and "/" in ref
    for line in re.findall(r"^FROM (\S+)", text, re.M):
        assert line in ("${BASE_IMAGE}", "${BUILD_IMAGE}", "scratch"), line


@pytest.mark.parametrize("name", ["passt", "bridge"])
def test_sidecar_images_run_as_107(name):
    text = (REPO / images.IMAGES[name].containerfile).read_text()
    assert re.findall(r"^USER (\S+)", text, re.M)[-1] == "107:107"


def test_the_cloud_guest_image_is_its_disk_at_disk_owned_by_qemu_and_follows_the_guest_build():
    from types import SimpleNamespace

    spec = images.IMAGES["cloud-guest"]
    text = (REPO / spec.containerfile).read_text()
    assert re.findall(r"^(FROM|ADD|COPY|RUN) (.*)$", text, re.M) == [("FROM", "scratch"),
                                                                     ("ADD", "--chown=107:107 disk.qcow2 /disk/")]

    def guest(key, root):
        return SimpleNamespace(inputs=SimpleNamespace(key=lambda: key), manifest={"root_uuid": root})

    first = _build.cloud_guest_key(spec, REPO, guest("a" * 16, "u1"))
    assert _build.cloud_guest_key(spec, REPO, guest("a" * 16, "u1")) == first
    assert first not in (_build.cloud_guest_key(spec, REPO, guest("b" * 16, "u1")),
                         _build.cloud_guest_key(spec, REPO, guest("a" * 16, "u2")))


def test_mirror_is_the_hosts_debian_mirror():
    assert apt.mirror().startswith("http")


# ---- built for real (root, podman) -----------------------------------------------------------------

def _run(image: str, *args: str, entrypoint: str | None = None) -> str:
    extra = ["--entrypoint", entrypoint] if entrypoint else []
    return _podman.run("run", "--rm", "--network=none", *extra, image, *args, timeout=120).stdout


def test_bases_come_from_debian_packages_and_the_runtime_base_has_no_build_tools(built_images):
    # python3 in both; binutils, busybox and the shared libpython only in the build base
    probe = ("dpkg-query -W -f '${db:Status-Status} ${Package}\\n' python3 binutils busybox-static libpython3.11 iproute2 patchelf"
             " 2>/dev/null | awk '$1 == \"installed\" {print $2}'")
    assert _run(images.BASE_TAG, "sh", "-c", probe).split() == ["python3"]
    assert set(_run(images.BUILD_TAG, "sh", "-c", probe).split()) == {"python3", "binutils", "busybox-static",
                                                                      "libpython3.11", "iproute2", "patchelf"}
    assert _podman.image_label(images.BASE_TAG, images._build.INPUTS_LABEL) == _base.inputs_key()


@pytest.mark.parametrize("name", ["passt", "bridge"])
def test_sidecar_image_is_current_and_runs_as_qemu(built_images, name):
    spec = images.IMAGES[name]
    assert _podman.image_label(spec.tag, _build.INPUTS_LABEL) == _build.inputs_hash(spec, REPO)
    assert _run(spec.tag, "-c", "import os; print(os.getuid(), os.getgid())", entrypoint="python3").split() \
        == ["107", "107"]
    # only what a sidecar runs: no shell, no package manager, no libvirt-python, no CLI stack, no
    # grpcio/protobuf and no h2 (the SDK frames HTTP/2 itself, with hpack for header blocks);
    # pydantic only where the plugin reads a validated config (the bridge plugin's DHCP settings)
    assert _run(spec.tag, "-c", "import os; print([p for p in ('/bin/sh', '/usr/bin/apt', '/usr/bin/dpkg')"
                                " if os.path.exists(p)])", entrypoint="python3").strip() == "[]"
    present = _run(spec.tag, "-c", "import importlib.util as u; print(' '.join(m for m in ('libvirt', 'click', 'rich',"
                                   " 'pydantic', 'grpc', 'google.protobuf', 'h2', 'hyperframe') if u.find_spec(m.split('.')[0]) and u.find_spec(m)))",
                   entrypoint="python3")
    assert present.split() == ([] if name == "passt" else ["pydantic"])


@pytest.mark.parametrize("name,socket,binding", [("passt", "passt.sock", "passt"),
                                                  ("bridge", "netbind-bridge.sock", "netbind-bridge")])
def test_sidecar_image_serves_info_locked_down(built_images, tmp_path, name, socket, binding):
    """As KubeVirt runs a binding sidecar: non-root, no capabilities, no privilege escalation,
    read-only root, only the hook sockets directory writable."""
    from netbind.launcher.hooks import query_info

    hooks = tmp_path / "hooks"
    hooks.mkdir()
    shutil.chown(hooks, 107, 107)
    container = f"nb-test-img-{name}-{tmp_path.name[-6:]}"
    _podman.run("run", "-d", "--name", container, "--network=none", "--user", "107:107", "--cap-drop", "ALL",
                "--security-opt", "no-new-privileges", "--read-only", "-v", f"{hooks}:/var/run/kubevirt-hooks",
                "-e", f"NETWORK_BINDING_PLUGIN_NAME={binding}", images.IMAGES[name].tag, timeout=60)
    try:
        deadline = time.monotonic() + 30
        while not (hooks / socket).exists():
            state = _podman.container_state(container) or {}
            assert state.get("Running", True), _podman.container_logs(container)
            assert time.monotonic() < deadline, _podman.container_logs(container)
            time.sleep(0.05)
        info = query_info(hooks / socket)
        assert info["name"] and "v1alpha3" in info["versions"]
        assert "OnDefineDomain" in [point for point, _ in info["hookPoints"]]
    finally:
        _podman.remove_container(container, grace=2)
    assert _podman.container_state(container) is None


def test_cli_unknown_image_is_bad_input():
    from click.testing import CliRunner

    from netbind.cli import cli

    result = CliRunner().invoke(cli, ["image", "build", "nope"])
    assert result.exit_code == 2
    assert "unknown image nope; known: passt, bridge, cni" in result.output
    result = CliRunner().invoke(cli, ["image", "build", "--all", "passt"])
    assert result.exit_code == 2 and "not both" in result.output
