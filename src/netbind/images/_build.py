"""Building the images of ``deploy/`` with podman, offline, as they would be built for a registry.

A build context is assembled per image: the repository's ``deploy/`` tree and ``wheels/`` (the
netbind wheel built from the checkout, the wheels of the image's requirements at the versions this
environment runs, and pip's own wheel, since a Debian python3 has no pip). The Containerfile gets
the local bases through its ``BASE_IMAGE``/``BUILD_IMAGE`` arguments and ``PIP_NO_INDEX=1``; the
build runs with ``--network none`` and ``--pull never``, so it provably needs no registry.

An image is rebuilt only when its inputs change: their hash (the Containerfile, deploy/, the
package sources, the requirement pins, the bases) is a label on the image.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, Sequence

from netbind import _podman
from netbind.images import _base
from netbind.node import paths

INPUTS_LABEL = _base.INPUTS_LABEL
# What the sidecar images import at run time (netbind itself goes in with --no-deps: the node
# runtime's libvirt-python and the CLI's packages have no place in a sidecar).
SIDECAR_REQUIREMENTS = ("hpack", "lxml")   # the hook server frames HTTP/2 itself (hpack: header blocks); no grpcio/protobuf
# The bridge sidecar's DHCP server validates its configuration with pydantic.
BRIDGE_REQUIREMENTS = (*SIDECAR_REQUIREMENTS, "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
                       "typing-extensions")
# What freezes the CNI plugins (build stage only; nothing of it reaches the node). Pinned here: the
# test environment does not run PyInstaller, so its versions cannot be the pins.
CNI_BUILD_REQUIREMENTS = ("pyinstaller==6.22.3", "pyinstaller-hooks-contrib==2026.10", "altgraph==0.17.5",
                          "packaging", "setuptools")


class ImageBuildError(RuntimeError):
    """An image could not be built; the message names the image, the step and podman's words."""


@dataclass(frozen=True)
class ImageSpec:
    name: str                        # short name: netbind image build NAME
    containerfile: str               # relative to the repository root
    tag: str
    about: str
    requirements: tuple[str, ...] = ()   # wheels the build context carries (pinned to this environment)
    guest_disk: bool = False         # a containerDisk image of the cloud guest (FROM scratch; no bases, no wheels)


IMAGES: dict[str, ImageSpec] = {spec.name: spec for spec in (
    ImageSpec("passt", "deploy/passt/Containerfile", "localhost/netbind-passt-sidecar:latest",
              "passt binding hook sidecar (KubeVirt's network-passt-binding)", SIDECAR_REQUIREMENTS),
    ImageSpec("bridge", "deploy/bridge/Containerfile", "localhost/netbind-bridge-sidecar:latest",
              "bridge binding hook sidecar (hook server + DHCP)", BRIDGE_REQUIREMENTS),
    ImageSpec("cni", "deploy/cni/Containerfile", "localhost/netbind-cni-installer:latest",
              "CNI plugin installer (self-contained plugins for /opt/cni/bin)",
              CNI_BUILD_REQUIREMENTS),
    ImageSpec("cloud-guest", "deploy/cloud-guest/Containerfile", "localhost/netbind-cloud-guest-container-disk:latest",
              "the reference cloud guest as a containerDisk (its qcow2 at /disk/)", guest_disk=True),
)}


@dataclass
class BuiltImage:
    name: str
    tag: str
    size: int                 # bytes, as podman reports the image
    seconds: float
    built: bool               # False: the image with these inputs was already there
    inputs: str

    def to_json(self) -> dict:
        return {"name": self.name, "tag": self.tag, "size": self.size, "seconds": round(self.seconds, 1),
                "built": self.built, "inputs": self.inputs}


def repository_root() -> Path:
    """The checkout holding deploy/ (images are built from a checkout, not from an installed wheel)."""
    here = Path(__file__).resolve().parents[3]
    if (here / "deploy").is_dir() and (here / "pyproject.toml").is_file():
        return here
    raise ImageBuildError(f"no deploy/ directory beside the netbind package ({here}): run image builds"
                          " from a netbind checkout (pip install -e .)")


def select(names: Sequence[str], all_: bool = False) -> list[ImageSpec]:
    if all_ or not names:
        return list(IMAGES.values())
    unknown = [n for n in names if n not in IMAGES]
    if unknown:
        raise ImageBuildError(f"unknown image {', '.join(unknown)}; known: {', '.join(IMAGES)}")
    return [IMAGES[n] for n in dict.fromkeys(names)]


def _pinned(requirement: str) -> str:
    """``name`` -> ``name==<the version this environment runs>``; explicit specifiers stay."""
    if re.search(r"[=<>!~ @]", requirement):
        return requirement
    try:
        return f"{requirement}=={metadata.version(requirement)}"
    except metadata.PackageNotFoundError:
        return requirement


def _pip_requirement() -> str:
    return f"pip=={metadata.version('pip')}"


def _source_files(root: Path) -> Iterable[Path]:
    for top in ("src/netbind", "deploy"):
        for path in sorted((root / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith((".pyc", ".egg-info")):
                yield path
    yield root / "pyproject.toml"
    yield root / "README.md"


def inputs_hash(spec: ImageSpec, root: Path) -> str:
    digest = hashlib.sha256()
    pins = [_pinned(r) for r in spec.requirements] + [_pip_requirement()]
    digest.update(json.dumps({"spec": spec.__dict__ | {"requirements": pins}, "base": _base.inputs_key(),
                              "layout": 1}, sort_keys=True, default=str).encode())
    for path in _source_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _pip(*args: str, what: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
        raise ImageBuildError(f"{what} failed:\n{tail}")


def wheelhouse(root: Path, requirements: Sequence[str], into: Path) -> None:
    """The netbind wheel (from the checkout) and wheels of ``requirements`` + pip, from the package
    registry (or pip's cache): what the image's pip installs from, with no index."""
    into.mkdir(parents=True, exist_ok=True)
    _pip("wheel", "--no-deps", "--quiet", "--wheel-dir", str(into), str(root), what="building the netbind wheel")
    pins = [_pinned(r) for r in requirements] + [_pip_requirement()]
    # cp311 manylinux wheels: Debian 12's python3 is 3.11, like this environment's
    _pip("download", "--quiet", "--no-deps", "--only-binary", ":all:", "--dest", str(into), *pins,
         what=f"downloading wheels ({', '.join(pins)})")


def _context(spec: ImageSpec, root: Path, into: Path) -> None:
    shutil.copytree(root / "deploy", into / "deploy")
    wheelhouse(root, spec.requirements, into / "wheels")


def build_args(bases: _base.BaseImages | None) -> list[str]:
    if bases is None:
        return []
    return ["--build-arg", f"BASE_IMAGE={bases.base}", "--build-arg", f"BUILD_IMAGE={bases.build}",
            "--build-arg", "PIP_NO_INDEX=1"]


def build_one(spec: ImageSpec, root: Path, bases: _base.BaseImages | None, *, force: bool = False,
              say: Callable[[str], None] = lambda text: None, key: str | None = None,
              make_context: Callable[[ImageSpec, Path], None] | None = None) -> BuiltImage:
    """Build ``spec`` from ``root`` (netbind's checkout, or a plugin project with its own ``key``
    and ``make_context``) unless the image with these inputs is there."""
    key = key or inputs_hash(spec, root)
    t0 = time.perf_counter()
    if not force and _podman.image_label(spec.tag, INPUTS_LABEL) == key:
        return BuiltImage(spec.name, spec.tag, _podman.image_size(spec.tag) or 0, time.perf_counter() - t0,
                          False, key)
    say(f"building {spec.tag} from {spec.containerfile}")
    with tempfile.TemporaryDirectory(prefix=f"nb-image-{spec.name}-", dir=_scratch()) as tmp:
        context = Path(tmp)
        (make_context or (lambda spec_, into: _context(spec_, root, into)))(spec, context)
        try:
            _podman.run("build", "--pull=never", "--network=none", "--layers=false", "--force-rm",
                        "-f", str(context / spec.containerfile), "-t", spec.tag,
                        "--label", f"{INPUTS_LABEL}={key}", *build_args(bases), str(context), timeout=1800)
        except _podman.PodmanError as exc:
            tail = "\n".join(exc.stderr.splitlines()[-20:])
            raise ImageBuildError(f"image {spec.name} ({spec.containerfile}): podman build failed:\n{tail}") from None
    _prune_dangling()
    return BuiltImage(spec.name, spec.tag, _podman.image_size(spec.tag) or 0, time.perf_counter() - t0, True, key)


def _scratch() -> str:
    directory = paths.cache_dir() / "images" / "contexts"
    directory.mkdir(parents=True, exist_ok=True)
    return str(directory)


def _prune_dangling() -> None:
    """The previous build of a tag stays as an untagged image: drop those (ours only by label)."""
    _podman.run("image", "prune", "--force", "--filter", f"label={INPUTS_LABEL}", check=False)


def cloud_guest_key(spec: ImageSpec, root: Path, guest) -> str:
    """The cloud guest image's inputs: its Containerfile and the very disk (its build's inputs and root)."""
    return hashlib.sha256(json.dumps({"containerfile": (root / spec.containerfile).read_text(),
                                      "guest": guest.inputs.key(), "root": guest.manifest.get("root_uuid"),
                                      "layout": 1}, sort_keys=True).encode()).hexdigest()[:16]


def build_cloud_guest(spec: ImageSpec, root: Path, *, force: bool = False,
                      say: Callable[[str], None] = lambda text: None) -> BuiltImage:
    """The cloud guest (built first if it is not cached: ``ensure_cloud_guest``) as a containerDisk
    image; the context holds the Containerfile and the cached qcow2 (a hard link when it can be)."""
    from netbind.node import cloud_guest

    try:
        guest = cloud_guest.ensure_cloud_guest(progress=say)
    except cloud_guest.CloudGuestBuildError as exc:
        raise ImageBuildError(f"image {spec.name}: the cloud guest cannot be built: {exc}") from None

    def context(spec_: ImageSpec, into: Path) -> None:
        (into / spec_.containerfile).parent.mkdir(parents=True)
        shutil.copyfile(root / spec_.containerfile, into / spec_.containerfile)
        try:
            os.link(guest.disk, into / "disk.qcow2")
        except OSError:    # another filesystem
            shutil.copyfile(guest.disk, into / "disk.qcow2")

    return build_one(spec, root, None, force=force, say=say, key=cloud_guest_key(spec, root, guest),
                     make_context=context)


def ensure(names: Sequence[str] = (), *, all_: bool = False, force: bool = False,
           say: Callable[[str], None] = lambda text: None) -> list[BuiltImage]:
    """Build the named images (all when none are named) unless they are current; returns them in order."""
    specs = select(names, all_)
    root = repository_root()
    bases = None
    if any(not spec.guest_disk for spec in specs):   # the cloud guest image is FROM scratch
        try:
            bases = _base.ensure_base()
        except _base.BaseImageError as exc:
            raise ImageBuildError(f"base image: {exc}") from None
        if bases.built:
            say(f"base images {bases.base} and {bases.build} made from Debian packages in {bases.seconds:.0f} s")
    with paths.locked(paths.cache_dir() / "images"):
        return [build_cloud_guest(spec, root, force=force, say=say) if spec.guest_disk
                else build_one(spec, root, bases, force=force, say=say) for spec in specs]


def tags(names: Sequence[str] = ()) -> dict[str, str]:
    return {spec.name: spec.tag for spec in select(names)}
