"""A containerDisk image from the local podman store: its /disk/ file (KubeVirt's layout) boots
through the overlay, extracted once into the cache without running the image. The reference cloud
guest packaged as such an image (`netbind image build cloud-guest`) boots the user guide's VM; an
image without a disk fails `up` in one line, exit 2, with nothing left. Plus the pure parts (which
file, which formats, which entry wins)."""
from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from netbind.node import oci_disks
from netbind.node.images import ImageMap

REPO = Path(__file__).resolve().parents[2]
FEDORA = "quay.io/kubevirt/fedora-with-test-tooling-container-disk:v1.1.0"
CLOUD_GUEST_IMAGE = "localhost/netbind-cloud-guest-container-disk:latest"


# ---- pure parts ------------------------------------------------------------------------------------

def test_the_one_file_under_disk_is_the_disk_and_none_or_several_are_refused():
    assert oci_disks.choose_disk(["fedora.qcow2"], "img") == "fedora.qcow2"
    with pytest.raises(oci_disks.OciDiskError, match=r"'img' has no file in /disk/: .*ADD --chown=107:107"):
        oci_disks.choose_disk([], "img")
    with pytest.raises(oci_disks.OciDiskError,
                       match=r"'img' has 2 files in /disk/ \(a.img, b.qcow2\), and KubeVirt allows only one"):
        oci_disks.choose_disk(["b.qcow2", "a.img"], "img")


def test_qcow2_without_backing_file_and_raw_boot_other_formats_do_not():
    assert oci_disks.verify_disk({"format": "qcow2", "virtual-size": 1 << 30}, "img", "/disk/d", 1 << 20) == "qcow2"
    assert oci_disks.verify_disk({"format": "raw", "virtual-size": 1 << 20}, "img", "/disk/d", 1 << 20) == "raw"
    with pytest.raises(oci_disks.OciDiskError, match=r"/disk/d is not a disk image KubeVirt boots \(vmdk format\)"):
        oci_disks.verify_disk({"format": "vmdk", "virtual-size": 1 << 20}, "img", "/disk/d", 1 << 20)
    with pytest.raises(oci_disks.OciDiskError, match="qcow2 with a backing file \\(base.qcow2\\), which KubeVirt"):
        oci_disks.verify_disk({"format": "qcow2", "backing-filename": "base.qcow2"}, "img", "/disk/d", 1 << 16)
    # qemu-img calls a 12-byte text file a raw disk of 512 bytes
    with pytest.raises(oci_disks.OciDiskError, match=r"is not a disk image \(12 bytes, less than one sector\)"):
        oci_disks.verify_disk({"format": "raw", "virtual-size": 512}, "img", "/disk/d", 12)


def test_symlinks_in_the_image_resolve_inside_its_root(tmp_path):
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    (root / "images" / "f.qcow2").write_text("x")
    (root / "disk").symlink_to("/images")                     # absolute: the image's /, not the host's
    (root / "escape").symlink_to("../../../../etc/passwd")    # .. stops at the image's root
    assert oci_disks.resolve_in_root(root, "/disk/f.qcow2") == root / "images" / "f.qcow2"
    assert oci_disks.resolve_in_root(root, "/escape") == root / "etc" / "passwd"
    (root / "loop").symlink_to("/loop")
    with pytest.raises(oci_disks.OciDiskError, match="too many symbolic links"):
        oci_disks.resolve_in_root(root, "/loop")


def test_the_cache_key_is_the_image_id_and_a_custom_path_makes_another():
    image_id = "b092d94517385e98c6749a2fb5d2271938f8768d94d414076b65cd511530c7ae"
    assert oci_disks.cache_key(image_id, None) == "b092d94517385e98"
    assert oci_disks.cache_key(f"sha256:{image_id}", None) == "b092d94517385e98"
    assert oci_disks.cache_key(image_id, "/images/f.qcow2") not in ("b092d94517385e98",
                                                                    oci_disks.cache_key(image_id, "/other"))


def test_the_store_is_asked_once_per_reference():
    asked = []
    lookup = oci_disks.StoreLookup(inspect=lambda ref: asked.append(ref) or ({"Id": "abc"} if ref == "here" else None))
    assert (lookup("here"), lookup("here"), lookup("gone"), lookup("")) == ("abc", "abc", None, None)
    assert asked == ["here", "gone"]


def test_guest_forces_then_the_users_entry_then_the_local_image_then_the_default_map(tmp_path):
    local = {FEDORA: "fedora-id", "quay.io/x/mine:1": "mine-id"}.get
    defaults = ImageMap.load()
    # in the store: the image boots, over the default map's entry (cloud) and its '*' (tiny)
    assert defaults.disk(FEDORA, local_image=local).local_image == "fedora-id"
    mine = defaults.disk("quay.io/x/mine:1", local_image=local)
    assert (mine.local_image, mine.boots_disk, mine.source) == ("mine-id", True, "the image in the local podman store")
    # not in the store: the map decides as before
    assert not defaults.disk("quay.io/x/other:1", local_image=local).boots_disk
    assert defaults.disk(FEDORA).local_image is None and defaults.disk(FEDORA).guest == "cloud"
    # --guest forces
    assert defaults.disk(FEDORA, guest="tiny", local_image=local).local_image is None
    # the user's own entry for the reference wins; the user's '*' does not
    disk = tmp_path / "mine.qcow2"
    disk.write_bytes(b"\0" * 512)
    user = tmp_path / "images.yaml"
    user.write_text(json.dumps({"containerDisks": {FEDORA.split(":")[0]: {"disk": str(disk)}, "*": {"guest": "cloud"}}}))
    mapped = ImageMap.load(user)
    assert (mapped.disk(FEDORA, local_image=local).disk, mapped.disk(FEDORA, local_image=local).local_image) == (
        str(disk), None)
    assert mapped.disk("quay.io/x/mine:1", local_image=local).local_image == "mine-id"


# ---- for real: podman's store, the cache, the VM ---------------------------------------------------------

def _require_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: local containerDisk images need root (podman's store, netns, libvirt)")
        pytest.skip("needs root")


def _import_image(files: dict[str, bytes | None], tag: str) -> None:
    """An image whose root is ``files`` (None: a directory), made by podman import (nothing runs)."""
    from netbind import _podman

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
    path = Path(f"/tmp/nb-oci-{secrets.token_hex(4)}.tar")
    path.write_bytes(data.getvalue())
    try:
        _podman.run("import", str(path), tag, timeout=120)
    finally:
        path.unlink()


def _mounted_images() -> set[str]:
    """The IDs of the images podman has mounted (its plain listing names them by tag, not by ID)."""
    from netbind import _podman

    listing = _podman.run("image", "mount", "--format", "json", check=False).stdout.strip()
    return {str(entry["id"]) for entry in json.loads(listing or "[]")}


def _qcow2_with_backing_file() -> bytes:
    directory = Path(f"/tmp/nb-oci-{secrets.token_hex(4)}")
    directory.mkdir()
    try:
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(directory / "base.raw"), "1M"], check=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(directory / "base.raw"),
                        str(directory / "top.qcow2")], check=True)
        return (directory / "top.qcow2").read_bytes()
    finally:
        subprocess.run(["rm", "-rf", str(directory)], check=True)


@pytest.fixture
def scratch_tag():
    from netbind import _podman

    _require_root()
    tag = f"localhost/nb-test-oci-{secrets.token_hex(3)}:latest"
    yield tag
    _podman.remove_image(tag)


@pytest.mark.parametrize("files, message", [
    ({"disk/": None, "etc/hostname": b"x\n"}, r"has no file in /disk/: a containerDisk image holds its disk"),
    ({"etc/hostname": b"x\n"}, r"has no /disk/ directory"),
    ({"disk/a.qcow2": b"\0" * 4096, "disk/b.qcow2": b"\0" * 4096}, r"has 2 files in /disk/ \(a.qcow2, b.qcow2\)"),
    ({"disk/notes.txt": b"hello\n"}, r"/disk/notes.txt is not a disk image \(6 bytes, less than one sector\)"),
    ({"disk/top.qcow2": "backing"}, r"/disk/top.qcow2 is a qcow2 with a backing file"),
], ids=["empty-disk-dir", "no-disk-dir", "two-files", "text-file", "backing-file"])
def test_a_local_image_without_one_bootable_disk_is_refused_and_nothing_is_left(scratch_tag, tmp_path, files, message):
    if files.get("disk/top.qcow2") == "backing":
        files = {"disk/top.qcow2": _qcow2_with_backing_file()}
    _import_image(files, scratch_tag)
    image_id = oci_disks.StoreLookup()(scratch_tag)
    assert image_id
    cache = tmp_path / "cache"
    with pytest.raises(oci_disks.OciDiskError, match=message):
        oci_disks.ensure_disk(scratch_tag, image_id, cache=cache)
    assert [p.name for p in cache.iterdir()] == [".lock"]          # no half extraction
    assert image_id not in _mounted_images()                        # the image is unmounted again


def test_a_local_image_is_extracted_once_and_its_custom_path_is_honoured(scratch_tag, tmp_path):
    raw = b"\xeb\x63" + b"\0" * (1 << 20)
    raw = raw[: 1 << 20]
    _import_image({"disk/": None, "images/": None, "images/boot.raw": raw, "disk/x.raw": raw}, scratch_tag)
    image_id = oci_disks.StoreLookup()(scratch_tag)
    cache = tmp_path / "cache"
    first = oci_disks.ensure_disk(scratch_tag, image_id, cache=cache)
    assert (first.inner, first.format, first.built) == ("/disk/x.raw", "raw", True)
    assert first.path.read_bytes() == raw and first.path.parent.name == image_id[:16]
    again = oci_disks.ensure_disk(scratch_tag, image_id, cache=cache)
    assert (again.path, again.built) == (first.path, False)
    custom = oci_disks.ensure_disk(scratch_tag, image_id, "/images/boot.raw", cache=cache)
    assert custom.inner == "/images/boot.raw" and custom.path != first.path and custom.path.read_bytes() == raw
    assert image_id not in _mounted_images()


def _killed_while_mounted(tag: str, image_id: str, cache: Path) -> None:
    """A process that dies by SIGKILL with the image mounted, in the middle of an extraction."""
    code = ("import os, signal, sys; from pathlib import Path; from netbind.node import oci_disks, paths\n"
            "cache = Path(sys.argv[3])\n"
            "with paths.locked(cache), oci_disks._mounted(sys.argv[2], sys.argv[1], cache):\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    child = subprocess.run([sys.executable, "-c", code, tag, image_id, str(cache)], capture_output=True, text=True)
    assert child.returncode == -9, child.stderr
    assert image_id in _mounted_images()


@pytest.mark.parametrize("recovery", ["next-extraction", "down-all"])
def test_an_extraction_killed_with_the_image_mounted_is_unmounted_afterwards(scratch_tag, tmp_path, recovery):
    raw = b"\xeb\x63" + b"\0" * ((1 << 20) - 2)
    _import_image({"disk/": None, "disk/x.raw": raw}, scratch_tag)
    image_id = oci_disks.StoreLookup()(scratch_tag)
    cache = tmp_path / "cache"
    try:
        _killed_while_mounted(scratch_tag, image_id, cache)
        if recovery == "next-extraction":
            found = oci_disks.ensure_disk(scratch_tag, image_id, cache=cache)
            assert found.built and found.path.read_bytes() == raw
        else:
            env = dict(os.environ, NETBIND_CACHE_DIR=str(tmp_path), NETBIND_RUNTIME_DIR=str(tmp_path / "run"))
            (tmp_path / "container-disks").symlink_to(cache)
            down = subprocess.run([str(Path(sys.executable).with_name("netbind")), "down", "--all"], capture_output=True,
                                  text=True, env=env, timeout=120)
            assert down.returncode == 0, down.stderr
            assert f"unmounted {scratch_tag} (a containerDisk extraction was killed" in down.stdout
        assert image_id not in _mounted_images()
        assert not list(cache.glob(oci_disks.MOUNT_MARK + "*"))
    finally:
        from netbind import _podman

        for _ in range(3):   # the test's own failure must not leave a mount
            if image_id in _mounted_images():
                _podman.run("image", "unmount", image_id, check=False)


@pytest.fixture(scope="module")
def cloud_guest_image() -> str:
    from netbind import images

    _require_root()
    try:
        built = images.ensure(["cloud-guest"])
    except (images.ImageBuildError, images.BaseImageError) as exc:
        pytest.fail(f"building the cloud guest image failed: {exc}", pytrace=False)
    return built[0].tag


def test_the_cloud_guest_image_holds_its_qcow2_at_disk_owned_by_qemu(cloud_guest_image):
    from netbind import _podman

    root = Path(_podman.run("image", "mount", cloud_guest_image).stdout.strip())
    try:
        entries = [(p.name, p.stat().st_uid, p.stat().st_gid) for p in (root / "disk").iterdir()]
        top = sorted(p.name for p in root.iterdir())
    finally:
        _podman.run("image", "unmount", cloud_guest_image, check=False)
    assert entries == [("disk.qcow2", 107, 107)] and top == ["disk"]     # FROM scratch: nothing else


def _user_guide_vm_on(image: str, into: Path) -> Path:
    """examples/passt/ with its containerDisk naming ``image`` instead of the user guide's Fedora image."""
    into.mkdir()
    for path in (REPO / "examples" / "passt").iterdir():
        (into / path.name).write_text(path.read_text().replace(FEDORA, image))
    assert image in (into / "vm.yaml").read_text()
    return into


def test_the_user_guide_vm_boots_the_cloud_guest_from_its_local_container_disk_image(cloud_guest_image, tmp_path,
                                                                                   monkeypatch):
    from netbind.api.loading import load_manifests
    from netbind.node import guest, runtime, sandbox
    from netbind.testing.leaks import LeakChecker, assert_no_leaks

    monkeypatch.delenv("NETBIND_GUEST", raising=False)   # the suite's default (tiny) would force the tiny guest
    run_dir = Path(f"/run/nb-oci-{secrets.token_hex(3)}")
    checker = LeakChecker(run_dir)
    try:
        result = runtime.up(load_manifests([_user_guide_vm_on(cloud_guest_image, tmp_path / "vm")]),
                            runtime.UpOptions(runtime=run_dir, wait=True))
        checker.note()
        line = next(s for s in result.substitutions if s.startswith(f"containerDisk {cloud_guest_image} -> "))
        assert f"/disk/disk.qcow2 (qcow2) of the local image {cloud_guest_image}" in line
        assert "[the image in the local podman store], booted from its disk" in line
        state = runtime.load_state(result.pod)
        base = Path(state["disks"]["overlays"][0]["base"])
        assert base.parent.parent == oci_disks.cache_dir() and base.name == "disk.qcow2"
        console = Path(state["console"]).read_text(errors="replace")
        lease = next(r for r in guest.parse_reports(console) if r.word == "LEASE")
        assert (lease.fields["iface"], lease.fields["ip"]) == ("eth0", state["networkStatus"][0]["ips"][0])
        assert "finished at" in console                                  # cloud-init ran to its end
    finally:
        checker.note()
        sandbox.down_all(run_dir)
    assert_no_leaks(checker, "after down --all")


def test_up_on_a_local_image_without_a_disk_fails_in_one_line_with_exit_2_and_leaves_nothing(scratch_tag, tmp_path):
    _import_image({"disk/": None, "etc/hostname": b"x\n"}, scratch_tag)
    run_dir = Path(f"/run/nb-oci-{secrets.token_hex(3)}")
    from netbind.testing.leaks import LeakChecker, assert_no_leaks

    checker = LeakChecker(run_dir)
    env = {k: v for k, v in os.environ.items() if k != "NETBIND_GUEST"}
    cli = subprocess.run([sys.executable, "-m", "netbind.cli", "up", "-f", str(_user_guide_vm_on(scratch_tag, tmp_path / "vm")),
                          "-o", "quiet"], capture_output=True, text=True, env={**env, "NETBIND_RUNTIME_DIR": str(run_dir)},
                         timeout=300)
    assert cli.returncode == 2, cli.stderr
    assert cli.stderr.strip() == (f"error: images: volume 'containerdisk': containerDisk image '{scratch_tag}' has no"
                                  f" file in /disk/: {oci_disks.LAYOUT}")
    assert "Traceback" not in cli.stderr and not run_dir.exists()
    image_id = oci_disks.StoreLookup()(scratch_tag)
    assert image_id not in _mounted_images()
    assert not (oci_disks.cache_dir() / oci_disks.cache_key(image_id, None)).exists()
    assert not [p for p in oci_disks.cache_dir().glob(".build-*")]
    assert_no_leaks(checker, "after the refused up")
