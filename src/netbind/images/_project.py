"""Images of a plugin project made by ``netbind new`` (``netbind image build --project DIR``).

The project's ``netbind-plugin.yaml`` lists its images (Containerfile, local tag, the wheels the
image needs). Each is built as netbind's own images are (``netbind.images._build``): the same
Debian bases, no network, the inputs' hash as a label; the context is the project's ``deploy/`` and
``wheels/`` with the project's wheel, netbind's (from this checkout) and the listed requirements.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

from netbind.images import _base, _build
from netbind.node import paths

MANIFEST = "netbind-plugin.yaml"


def project_specs(project: Path) -> list[_build.ImageSpec]:
    from netbind.api.loading import ManifestError, read_data_file

    manifest = project / MANIFEST
    if not manifest.is_file():
        raise _build.ImageBuildError(f"--project {project}: no {MANIFEST} there (a project made by netbind new has one)")
    try:
        data = read_data_file(manifest)
    except ManifestError as exc:
        raise _build.ImageBuildError(f"--project: {exc}") from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list) or not images:
        raise _build.ImageBuildError(f"{manifest}: images: no image to build (a zero-code plugin has none)")
    specs = []
    for index, entry in enumerate(images):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) and entry[k]
                                                  for k in ("name", "containerfile", "tag")):
            raise _build.ImageBuildError(f"{manifest}: images[{index}]: give name, containerfile and tag")
        if not (project / entry["containerfile"]).is_file():
            raise _build.ImageBuildError(f"{manifest}: images[{index}].containerfile: {entry['containerfile']}"
                                         " is not a file in the project")
        requirements = entry.get("requirements") or []
        if not isinstance(requirements, list) or not all(isinstance(r, str) for r in requirements):
            raise _build.ImageBuildError(f"{manifest}: images[{index}].requirements: give a list of package names")
        specs.append(_build.ImageSpec(entry["name"], entry["containerfile"], entry["tag"],
                                      f"{data.get('name', project.name)} {entry['name']}", tuple(requirements)))
    return specs


def _project_files(project: Path):
    for top in ("src", "deploy"):
        for path in sorted((project / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and ".egg-info" not in str(path):
                yield path
    for name in ("pyproject.toml", MANIFEST):
        yield project / name


def inputs_hash(spec: _build.ImageSpec, project: Path, root: Path) -> str:
    digest = hashlib.sha256(_build.inputs_hash(spec, root).encode())   # netbind's side, the bases, the pins
    for path in _project_files(project):
        digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes())
    digest.update(json.dumps({"project": 1}).encode())
    return digest.hexdigest()[:16]


def ensure_project(project: str | Path, *, force: bool = False,
                   say: Callable[[str], None] = lambda text: None) -> list[_build.BuiltImage]:
    project = Path(project).resolve()
    specs = project_specs(project)
    root = _build.repository_root()
    try:
        bases = _base.ensure_base()
    except _base.BaseImageError as exc:
        raise _build.ImageBuildError(f"base image: {exc}") from None

    def context(spec: _build.ImageSpec, into: Path) -> None:
        shutil.copytree(project / "deploy", into / "deploy")
        _build.wheelhouse(root, spec.requirements, into / "wheels")
        _build._pip("wheel", "--no-deps", "--quiet", "--no-build-isolation", "--wheel-dir", str(into / "wheels"),
                    str(project), what=f"building the wheel of {project}")

    with paths.locked(paths.cache_dir() / "images"):
        return [_build.build_one(spec, project, bases, force=force, say=say, key=inputs_hash(spec, project, root),
                                 make_context=context) for spec in specs]
