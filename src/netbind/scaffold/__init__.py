"""``netbind new``: a plugin project scaffold, one of three shapes.

* ``zero-code``: a ``domainAttachmentType: tap`` binding; KubeVirt attaches the NIC itself.
* ``sidecar``: a hook sidecar (netbind.hooks.App) writes the NIC into the domain.
* ``cni-sidecar``: a binding CNI (netbind.cni.Plugin) prepares the pod, then the sidecar.

The files come from ``templates/`` (package data), laid over each other in order (``common``, then
``code`` for the shapes with code, then the shape's own), with ``@@key@@`` placeholders filled and
``.tmpl`` dropped from the names (so the templates are never collected as tests or modules).
:func:`plan` is the pure part (relative path -> text); :func:`create` writes it, all or nothing.
"""
from __future__ import annotations

import hashlib
import keyword
import os
import re
import shutil
import tempfile
from importlib import metadata, resources
from pathlib import Path

SHAPES = ("zero-code", "sidecar", "cni-sidecar")
_LAYERS = {"zero-code": ("common", "zero-code"), "sidecar": ("common", "code", "sidecar"),
           "cni-sidecar": ("common", "code", "cni-sidecar")}
_EXECUTABLE = ("rootfs.sh", "install.sh")
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# a binding's sidecar image is `<registry>/<name>-sidecar`; its local stand-in is built under this tag
REGISTRY = "quay.io/example"


class ScaffoldError(ValueError):
    """Bad input to ``netbind new``; the message names the field and the fix."""


def check_name(name: str) -> str:
    """NAME names the binding, its NADs and VM (DNS-1123 labels) and, with ``_``, its Python package."""
    if not _NAME.match(name) or len(name) > 40:
        raise ScaffoldError(f"NAME {name!r} is not a valid plugin name: use lower-case letters, digits and '-',"
                            " starting with a letter and ending with a letter or digit, at most 40 characters"
                            " (it becomes the binding name, a DNS-1123 label, and its NAD and VM names), e.g."
                            " my-binding")
    if keyword.iskeyword(package_name(name)):
        raise ScaffoldError(f"NAME {name!r} is a Python keyword, which cannot name the package; e.g. {name}-binding")
    return name


def package_name(name: str) -> str:
    return name.replace("-", "_")


def values(name: str, shape: str) -> dict[str, str]:
    """What the placeholders of a shape's templates are filled with."""
    package = package_name(name)
    digest = hashlib.sha256(name.encode()).digest()
    mac = "02:" + ":".join(f"{b:02x}" for b in digest[:5])      # locally administered, stable per name
    registry_image = f"{REGISTRY}/{name}-sidecar"
    local_image = f"localhost/{name}-sidecar:latest"
    try:
        version = metadata.version("netbind")
    except metadata.PackageNotFoundError:
        version = "0.1.0"
    has_cni = shape == "cni-sidecar"
    scripts = [f'{name}-sidecar = "{package}.sidecar:main"'] + ([f'{name}-cni = "{package}.cni:main"'] if has_cni else [])
    manifest = []
    if shape != "zero-code":
        manifest += ["images:", "- name: sidecar", "  containerfile: deploy/sidecar/Containerfile",
                     f"  tag: {local_image}", f"  registry: {registry_image}:v0.1.0",
                     "  # what the sidecar imports (netbind's and this project's wheels always go in)",
                     "  requirements: [hpack, lxml]"]
    if has_cni:
        manifest += ["cni:", f"  types: [{name}-cni]            # NAD plugin types", "  # executables the node needs"
                     " in /opt/cni/bin (console scripts of this package)", f"  executables: [{name}-cni]",
                     "  installer: deploy/cni/install.sh"]
    else:
        manifest += ["cni: {}      # no binding CNI: the network's own CNI (macvtap in example/) makes the pod interface"]
    install = [f"pip install -e .                 # into netbind's environment: {name}-sidecar"
               + (f", {name}-cni" if has_cni else "") + " and the image map entry"] if shape != "zero-code" else []
    steps = [*install, "pytest                           # its tests" + (" (the CNI's as root)" if has_cni else ""),
             *(["netbind image build --project .  # the sidecar image (optional locally)"] if shape != "zero-code"
               else []),
             "sudo netbind up -f example/ --wait # the VM, for real, on this machine",
             f"sudo netbind down vm-{name}"]
    about = {
        "zero-code": "No code: `example/kubevirt.yaml` registers the binding with `domainAttachmentType: tap`, so "
                     "KubeVirt itself puts the VM's NIC on the pod interface the network's CNI made.",
        "sidecar": f"`src/{package}/sidecar.py` is the hook sidecar that writes the VM's NIC into the domain "
                   "(netbind.hooks.App); `deploy/sidecar/Containerfile` builds its image.",
        "cni-sidecar": f"`src/{package}/cni.py` is the binding CNI (netbind.cni.Plugin, run as root in the pod), "
                       f"`src/{package}/sidecar.py` the hook sidecar that writes the VM's NIC; the CNI hands the "
                       f"sidecar what it found through `src/{package}/handoff.py`. `deploy/sidecar/Containerfile` "
                       "builds the sidecar image, `deploy/cni/install.sh` is the CNI's installer entry.",
    }[shape]
    return {
        "name": name, "package": package, "shape": shape, "mac": mac, "netbind_version": version,
        "registry_image": registry_image, "registry_image_tagged": f"{registry_image}:v0.1.0",
        "local_image": local_image, "scripts": "\n".join(scripts) + "\n",
        "cni_map": f"cni:\n  {name}-cni: {name}-cni           # NAD type -> the installed executable" if has_cni else "",
        "cni_executables": f"{name}-cni", "manifest_body": "\n".join(manifest),
        "sidecars": "[]" if shape == "zero-code" else "['hook-sidecar-0']",
        "steps": "\n".join(steps), "about": about,
    }


def _fill(text: str, subst: dict[str, str]) -> str:
    filled = re.sub(r"@@([a-z_]+)@@", lambda m: subst[m.group(1)], text)
    return filled


def plan(name: str, shape: str) -> dict[str, str]:
    """Relative path -> file text of the project (pure: no file is written)."""
    check_name(name)
    if shape not in SHAPES:
        raise ScaffoldError(f"--shape {shape!r}: choose one of {', '.join(SHAPES)}")
    subst = values(name, shape)
    files: dict[str, str] = {}
    root = resources.files("netbind.scaffold").joinpath("templates")
    for layer in _LAYERS[shape]:
        stack = [(root.joinpath(layer), "")]
        while stack:
            node, prefix = stack.pop()
            for child in node.iterdir():
                if child.name == "__pycache__":
                    continue
                rel = prefix + child.name.replace("PKG", subst["package"])
                if child.is_dir():
                    stack.append((child, rel + "/"))
                    continue
                target = rel.removesuffix(".tmpl")
                if target == "gitignore":
                    target = ".gitignore"
                files[target] = _fill(child.read_text(), subst)
    return dict(sorted(files.items()))


def create(name: str, shape: str, directory: str | os.PathLike | None = None) -> Path:
    """Write the project to ``directory`` (default ``./NAME``), which must be absent or empty. The
    files are written to a temporary sibling first and moved into place at once: a failure leaves
    nothing behind."""
    files = plan(name, shape)
    target = Path(directory if directory is not None else name)
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"--dir {target}: exists and is not a directory; choose another --dir")
    if target.is_dir() and any(target.iterdir()):
        raise ScaffoldError(f"--dir {target}: exists and is not empty; choose a new or empty directory")
    parent = target.absolute().parent
    if not parent.is_dir():
        raise ScaffoldError(f"--dir {target}: its parent {parent} does not exist; create it first")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        for rel, text in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            if path.name in _EXECUTABLE:
                path.chmod(0o755)
        staging.chmod(0o755)
        if target.is_dir():
            target.rmdir()                 # empty (checked above): replaced by the finished tree
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
