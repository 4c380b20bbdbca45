"""`netbind new` without root: bad input, the files it writes, what ships in the wheel, and the
zero-code scaffold's own tests (the root e2e is test_new_up.py)."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from netbind import scaffold

REPO = Path(__file__).resolve().parents[2]


def netbind(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netbind.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.mark.parametrize("name", ["My_Binding", "-lead", "trail-", "9lives", "a" * 41, "dots.in.name", "import"])
def test_an_invalid_name_is_one_line_exit_2_and_nothing_written(tmp_path, name):
    done = netbind("new", "--shape", "sidecar", "--", name, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: NAME ")
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_non_empty_directory_is_refused_and_left_as_it_was(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("mine")
    done = netbind("new", "my-binding", "--shape", "cni-sidecar", "--dir", str(tmp_path / "mine"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: --dir {tmp_path / 'mine'}: exists and is not empty; choose a new or empty directory"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["keep.txt", "mine"]


def test_an_unknown_shape_is_a_usage_error(tmp_path):
    done = netbind("new", "my-binding", "--shape", "tap", cwd=tmp_path)
    assert done.returncode == 2 and "zero-code" in done.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shape, expected", [
    ("zero-code", {"example/kubevirt.yaml", "example/nad.yaml", "example/vm.yaml", "tests/test_domain.py"}),
    ("sidecar", {"src/my_binding/sidecar.py", "src/my_binding/images.yaml", "deploy/sidecar/Containerfile",
                 "tests/test_sidecar.py"}),
    ("cni-sidecar", {"src/my_binding/cni.py", "src/my_binding/sidecar.py", "src/my_binding/handoff.py",
                     "deploy/cni/install.sh", "example/binding-nad.yaml", "tests/test_cni.py"}),
])
def test_each_shape_writes_its_files_into_an_empty_dir(tmp_path, shape, expected):
    (tmp_path / "empty").mkdir()
    done = netbind("new", "my-binding", "--shape", shape, "--dir", str(tmp_path / "empty"))
    assert done.returncode == 0, done.stderr
    written = {str(p.relative_to(tmp_path / "empty")) for p in (tmp_path / "empty").rglob("*") if p.is_file()}
    assert expected | {"netbind-plugin.yaml", "README.md", "pyproject.toml", "tests/test_example.py"} <= written
    assert not [p for p in written if p.endswith(".tmpl") or "@@" in (tmp_path / "empty" / p).read_text()]
    assert not [p for p in tmp_path.iterdir() if p.name != "empty"]          # no staging dir left


def test_the_sidecar_root_script_is_netbinds_own():
    """The scaffold's Containerfile gathers its root with a copy of deploy/sidecar/rootfs.sh: one script."""
    template = Path(scaffold.__file__).parent / "templates/code/deploy/sidecar/rootfs.sh.tmpl"
    assert template.read_text() == (REPO / "deploy/sidecar/rootfs.sh").read_text()


def test_the_templates_ship_in_the_wheel(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("netbind-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for layer in ("common", "code", "zero-code", "sidecar", "cni-sidecar"):
        shipped = {n for n in names if n.startswith(f"netbind/scaffold/templates/{layer}/")}
        on_disk = {str(p.relative_to(REPO / "src")) for p in (REPO / "src/netbind/scaffold/templates" / layer).rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts}
        assert shipped == on_disk, layer


def test_the_zero_code_scaffold_passes_its_own_tests(tmp_path):
    assert netbind("new", "my-tap", "--shape", "zero-code", cwd=tmp_path).returncode == 0
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=tmp_path / "my-tap",
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "3 passed" in done.stdout


def test_the_cni_installer_entry_puts_the_executables_named_in_the_manifest_on_the_node(tmp_path):
    import yaml

    assert netbind("new", "my-cni", "--shape", "cni-sidecar", cwd=tmp_path).returncode == 0
    project = tmp_path / "my-cni"
    manifest = yaml.safe_load((project / "netbind-plugin.yaml").read_text())
    assert manifest["cni"]["types"] == manifest["cni"]["executables"] == ["my-cni-cni"]
    source, node = tmp_path / "src", tmp_path / "node-bin"
    source.mkdir(), node.mkdir()
    (source / "my-cni-cni").write_text("#!/bin/sh\necho v1\n")
    (source / "my-cni-cni").chmod(0o755)
    done = subprocess.run(["sh", project / manifest["cni"]["installer"]], env={"SRC": str(source), "CNI_BIN_DIR": str(node),
                          "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in node.iterdir()] == ["my-cni-cni"]
    assert subprocess.run([node / "my-cni-cni"], capture_output=True, text=True).stdout == "v1\n"


def test_a_dir_whose_parent_is_missing_is_refused(tmp_path):
    done = netbind("new", "my-binding", "--shape", "sidecar", "--dir", str(tmp_path / "no" / "such"))
    assert done.returncode == 2 and "does not exist" in done.stderr and list(tmp_path.iterdir()) == []


def test_image_build_project_refuses_a_folder_without_images_before_building(tmp_path):
    assert netbind("new", "my-tap", "--shape", "zero-code", cwd=tmp_path).returncode == 0
    done = netbind("image", "build", "--project", str(tmp_path / "my-tap"))
    assert done.returncode == 2 and "images: no image to build (a zero-code plugin has none)" in done.stderr
    done = netbind("image", "build", "--project", str(tmp_path))
    assert done.returncode == 2 and "no netbind-plugin.yaml there" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
