"""The base images, made from Debian packages: no registry is needed to build netbind's images.

One ``debootstrap --variant=minbase`` root of Debian 12 (cached as a tarball under the cache dir,
keyed by its inputs) gives two images:

* ``localhost/netbind/debian-build:12``: the root as bootstrapped, with what build stages need
  (python3, the shared libpython PyInstaller bundles, binutils, patchelf, a static busybox,
  iproute2);
* ``localhost/netbind/debian-base:12``: the same without the build-only packages, docs, man pages,
  locales and apt lists: what runtime stages start from (python3 and the essential set).

Containerfiles name them only through their ``BUILD_IMAGE`` / ``BASE_IMAGE`` build arguments, whose
defaults are public images, so the same files build unchanged on a machine with a registry.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from netbind import _podman
from netbind.node import apt, paths

SUITE = "bookworm"
BASE_TAG = "localhost/netbind/debian-base:12"
BUILD_TAG = "localhost/netbind/debian-build:12"
RUNTIME_PACKAGES = ("python3",)
BUILD_ONLY_PACKAGES = ("libpython3.11", "binutils", "busybox-static", "iproute2", "patchelf")
INPUTS_LABEL = "io.netbind.inputs"
# What runtime images never read; removing it from the base makes every image smaller.
STRIP = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
         "var/cache/apt", "var/lib/apt/lists", "var/log", "var/cache/debconf")


class BaseImageError(RuntimeError):
    """The base could not be made; the message says which step and how to fix it."""


@dataclass(frozen=True)
class BaseImages:
    base: str
    build: str
    built: bool          # made now (False: reused)
    seconds: float


def _key(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def bootstrap_key() -> str:
    return _key({"suite": SUITE, "runtime": RUNTIME_PACKAGES, "build": BUILD_ONLY_PACKAGES, "mirror": apt.mirror()})


def inputs_key() -> str:
    """What both bases are made from (images built on them carry it in their own inputs)."""
    return _key({"bootstrap": bootstrap_key(), "strip": STRIP, "layout": 2})


def _run(argv: list[str], what: str, timeout: float = 900) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise BaseImageError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _bootstrap(root: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise BaseImageError("debootstrap is not installed (Debian: apt-get install debootstrap)")
    include = ",".join(RUNTIME_PACKAGES + BUILD_ONLY_PACKAGES)
    _run(["debootstrap", "--variant=minbase", f"--include={include}", SUITE, str(root), apt.mirror()],
         f"debootstrap {SUITE} from {apt.mirror()}")
    # apt inside a build on a registry machine needs its lists again; here nothing runs apt
    (root / "etc/apt/apt.conf.d/90netbind-no-recommends").write_text('APT::Install-Recommends "false";\n')


def _strip_to_runtime(root: Path) -> None:
    # debootstrap marks every package manual: mark all but the runtime ones automatic, so purging
    # the build-only packages also takes their now unneeded dependencies (binutils' libraries)
    keep = " ".join(f"-e {p}" for p in RUNTIME_PACKAGES)
    _run(["chroot", str(root), "sh", "-c",
          f"apt-mark auto $(dpkg-query -W -f '${{Package}}\\n' | grep -vx {keep}) >/dev/null"],
         "marking the bootstrapped packages automatic")
    _run(["chroot", str(root), "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "purge", "-qq", "-y",
          "--auto-remove", *BUILD_ONLY_PACKAGES], "removing the build-only packages from the runtime base")
    for rel in STRIP:
        target = root / rel
        if target.is_dir():
            for child in target.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def _tar(root: Path, out: Path) -> None:
    tmp = out.with_suffix(".tmp")
    _run(["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cf", str(tmp), "."], f"tar of {root}")
    tmp.replace(out)


def _import(tarball: Path, tag: str, key: str) -> None:
    _podman.run("import", "--change", f"LABEL {INPUTS_LABEL}={key}", "--change", 'CMD ["/bin/sh"]',
                str(tarball), tag, timeout=600)


def _current(tag: str, key: str) -> bool:
    return _podman.image_label(tag, INPUTS_LABEL) == key


def ensure_base(force: bool = False) -> BaseImages:
    """Both base images, made now if missing or made from other inputs (cached, locked)."""
    reason = _podman.unavailable()
    if reason:
        raise BaseImageError(reason)
    build_key, key = bootstrap_key(), inputs_key()
    cache = paths.cache_dir() / "images" / "base"
    t0 = time.perf_counter()
    with paths.locked(cache):
        if not force and _current(BASE_TAG, key) and _current(BUILD_TAG, build_key):
            return BaseImages(BASE_TAG, BUILD_TAG, False, time.perf_counter() - t0)
        build_tar, base_tar = cache / f"{build_key}-build.tar", cache / f"{key}-base.tar"
        work = cache / f".work-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        try:
            if force or not build_tar.exists():
                _bootstrap(work / "root")
                _tar(work / "root", build_tar)
            if force or not base_tar.exists():
                if not (work / "root").exists():
                    (work / "root").mkdir(parents=True)
                    _run(["tar", "--numeric-owner", "--xattrs", "-C", str(work / "root"), "-xf", str(build_tar)],
                         f"unpacking {build_tar}")
                _strip_to_runtime(work / "root")
                _tar(work / "root", base_tar)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _import(build_tar, BUILD_TAG, build_key)
        _import(base_tar, BASE_TAG, key)
        for old in cache.glob("*.tar"):
            if old not in (build_tar, base_tar):
                old.unlink(missing_ok=True)
    return BaseImages(BASE_TAG, BUILD_TAG, True, time.perf_counter() - t0)
