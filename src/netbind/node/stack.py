"""The native passt stack: what KubeVirt's current passt binding needs, provisioned privately.

KubeVirt's passt sidecar writes ``<interface type="vhostuser">`` with ``<backend type="passt"/>``.
libvirt >= 11 runs that itself (``passt --vhost-user``, QEMU's ``-netdev vhost-user``). It needs
libvirt >= 11, a passt with ``--vhost-user`` and a QEMU whose vhost-user works with it (Debian 12's
QEMU 7.2 segfaults when the guest's virtio-net driver starts on passt's vhost-user backend;
QEMU 10.0 works).

Debian 13 has all three as plain packages: :func:`host_native` finds them. On Debian 12,
:func:`ensure_stack` provisions them under ``$NETBIND_CACHE_DIR/stack`` without touching the
system: libvirt 11.3 and QEMU 10.0 (+ the SeaBIOS it requires) are *extracted* from
bookworm-backports .debs, and passt is built with ``make`` from the Debian 13 source package
(orig + debian tarballs; the ``.dsc`` is not always served). Everything comes from Debian's archive
through apt with a private configuration (own sources, lists, cache, an empty dpkg status):
``/etc/apt`` and the installed libvirt/QEMU stay as they are. Builds are keyed by the input versions,
lock-protected and reused; :func:`cached_stack` never touches the network.

Host notes: R6b, "Newer passt on Debian 12", pitfalls 2, 3, 9, 10.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from netbind.node import paths

# Bump when the provisioning steps change, so that cached builds are redone.
RECIPE = 1
MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
BACKPORTS = "bookworm-backports"
SOURCE_SUITE = "trixie"
MIN_LIBVIRT = (11, 0, 0)
MIN_QEMU = (8, 0, 0)  # 7.2 crashes on passt's vhost-user (measured); 10.0 works
LIBVIRT_PACKAGES = ("libvirt0", "libvirt-common", "libvirt-daemon-common", "libvirt-daemon-log",
                    "libvirt-daemon-driver-qemu", "libvirt-daemon", "libvirt-clients", "libvirt-daemon-lock")
QEMU_PACKAGES = ("qemu-system-x86", "qemu-system-common", "qemu-system-data")
# host path -> path inside the stack root; bound over the host's in the private libvirtd's mount
# namespace (so the 11.3 drivers, cpu_map and QEMU 10's binary and firmware are the ones used)
STACK_BINDS = {
    "/usr/lib/x86_64-linux-gnu/libvirt": "usr/lib/x86_64-linux-gnu/libvirt",
    "/usr/share/libvirt": "usr/share/libvirt",
    "/usr/lib/libvirt": "usr/lib/libvirt",
    "/usr/bin/qemu-system-x86_64": "usr/bin/qemu-system-x86_64",
    "/usr/share/qemu": "usr/share/qemu",
    "/usr/share/seabios": "usr/share/seabios",
    "/usr/lib/x86_64-linux-gnu/qemu": "usr/lib/x86_64-linux-gnu/qemu",
}


class StackError(RuntimeError):
    """The native stack could not be provisioned; the message says which step and why."""


@dataclass(frozen=True)
class StackInputs:
    libvirt: str
    qemu: str
    seabios: str
    passt: str          # source version (Debian 13)
    recipe: int = RECIPE

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class NativeStack:
    """Everything the runtime needs to run libvirt's own passt backend."""
    origin: str                               # "provisioned" or "host"
    libvirtd: str                             # binary
    libvirt_etc: Path                         # configuration template copied into each pod
    passt: str                                # passt binary libvirt will find first on PATH
    versions: dict[str, str]
    lib_dir: Path | None = None               # LD_LIBRARY_PATH for libvirtd (and so QEMU)
    binds: tuple[tuple[Path, str], ...] = ()  # (stack path, host path) bound in libvirtd's namespace
    root: Path | None = None
    built: bool = False
    seconds: float = 0.0

    @property
    def key(self) -> str:
        return self.root.name if self.root else "host"

    @property
    def bin_dir(self) -> Path:
        return Path(self.passt).parent

    def describe(self) -> str:
        what = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        if self.origin == "host":
            return f"this host's packages ({what})"
        return f"the provisioned stack {self.root} ({what})"

    def to_json(self) -> dict:
        return {"origin": self.origin, "root": str(self.root) if self.root else None, "versions": self.versions,
                "libvirtd": self.libvirtd, "passt": self.passt}


def stack_dir(cache: Path | None = None) -> Path:
    return (cache or paths.cache_dir()) / "stack"


# ---- detection (no network) -------------------------------------------------------------------

def _run(argv: list[str], env: dict | None = None, timeout: float = 20) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout + proc.stderr


def parse_version(text: str) -> tuple[int, ...] | None:
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in found.groups()) if found else None


def host_native() -> NativeStack | None:
    """The host's own libvirt, QEMU and passt, when they run the passt backend (Debian 13)."""
    libvirtd, qemu, passt = (shutil.which(b) for b in ("libvirtd", "qemu-system-x86_64", "passt"))
    if not (libvirtd and qemu and passt):
        return None
    lv = parse_version(_run([libvirtd, "--version"]))
    qv = parse_version(_run([qemu, "--version"]))
    if not lv or lv < MIN_LIBVIRT or not qv or qv < MIN_QEMU or "--vhost-user" not in _run([passt, "--help"]):
        return None
    return NativeStack("host", libvirtd, Path("/etc/libvirt"), passt,
                       {"libvirt": ".".join(map(str, lv)), "qemu": ".".join(map(str, qv)), "passt": passt})


def _complete(root: Path) -> bool:
    return (root / "manifest.json").is_file()


def _load(root: Path, built: bool = False, seconds: float = 0.0) -> NativeStack:
    manifest = json.loads((root / "manifest.json").read_text())
    fs = root / "root"
    binds = tuple((fs / inside, host) for host, inside in STACK_BINDS.items())
    return NativeStack("provisioned", str(fs / "usr/sbin/libvirtd"), fs / "etc/libvirt", str(root / "bin/passt"),
                       manifest["versions"], fs / "usr/lib/x86_64-linux-gnu", binds, root, built, seconds)


def cached_stack(cache: Path | None = None) -> NativeStack | None:
    """The provisioned stack named by ``current.json``, if it is complete (no network)."""
    base = stack_dir(cache)
    try:
        key = json.loads((base / "current.json").read_text())["key"]
    except (OSError, ValueError, KeyError):
        return None
    return _load(base / key) if _complete(base / key) else None


# ---- the private apt -------------------------------------------------------------------------

class PrivateApt:
    """apt-get/apt-cache with their own sources, lists, cache and an empty dpkg status: the
    system's apt configuration and installed packages are neither read for sources nor changed."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.sources = base / "sources.list.d"
        self.status = base / "status"

    def options(self) -> list[str]:
        return ["-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={self.sources}",
                "-o", f"Dir::State::Lists={self.base / 'lists'}", "-o", f"Dir::Cache={self.base / 'cache'}",
                "-o", f"Dir::State::status={self.status}", "-o", "Dir::Etc::Preferences=/dev/null",
                "-o", f"Dir::Etc::PreferencesParts={self.base / 'preferences.d'}",
                "-o", "APT::Get::List-Cleanup=0", "-o", "Acquire::Retries=2", "-o", "Debug::NoLocking=1"]

    def prepare(self) -> None:
        for sub in ("sources.list.d", "lists/partial", "cache/archives/partial", "preferences.d"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.status.touch()
        (self.sources / "netbind.sources").write_text(
            f"Types: deb\nURIs: {MIRROR}\nSuites: {BACKPORTS}\nComponents: main\nSigned-By: {KEYRING}\n\n"
            f"Types: deb-src\nURIs: {MIRROR}\nSuites: {SOURCE_SUITE}\nComponents: main\nSigned-By: {KEYRING}\n")

    def run(self, tool: str, *args: str, cwd: Path | None = None, check: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess:
        argv = [tool, *self.options(), *args]
        env = dict(os.environ, LC_ALL="C", DEBIAN_FRONTEND="noninteractive")
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
        except FileNotFoundError:
            raise StackError(f"{tool} is missing: the native stack is fetched through apt (Debian only)") from None
        except subprocess.TimeoutExpired:
            raise StackError(f"{tool} {' '.join(args)} took longer than {timeout:g} s (mirror {MIRROR})") from None
        if check and proc.returncode != 0:
            raise StackError(f"{tool} {' '.join(args)} failed (exit {proc.returncode}): {_apt_errors(proc)}")
        return proc

    def update(self) -> None:
        proc = self.run("apt-get", "update", check=False)
        errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith(("E:", "W:", "Err:"))]
        if proc.returncode != 0 or any(line.startswith(("E:", "Err:")) for line in errors):
            raise StackError(f"the Debian mirror {MIRROR} did not serve {BACKPORTS} / {SOURCE_SUITE} sources"
                             f" (apt-get update): {'; '.join(errors[-4:]) or _apt_errors(proc)}")

    def newest(self, package: str) -> str:
        out = self.run("apt-cache", "madison", package).stdout
        versions = [line.split("|")[1].strip() for line in out.splitlines()
                    if line.count("|") >= 2 and "Packages" in line.split("|")[2]]
        if not versions:
            raise StackError(f"{package} is not in {BACKPORTS} on {MIRROR}")
        return versions[0]

    def source(self, package: str) -> dict:
        """The newest source paragraph: version, file names and their SHA-256."""
        best = newest_source(self.run("apt-cache", "showsrc", package).stdout)
        if best is None:
            raise StackError(f"no source package {package} in {SOURCE_SUITE} on {MIRROR}")
        return best


def newest_source(showsrc: str) -> dict | None:
    """From ``apt-cache showsrc`` output: the newest version with its files' SHA-256 (pure)."""
    best = None
    for para in showsrc.split("\n\n"):
        if not para.strip().startswith("Package:"):
            continue
        version = re.search(r"^Version: (\S+)", para, re.M)
        sums = re.search(r"^Checksums-Sha256:\n((?: .+\n?)+)", para, re.M)
        if not version or not sums:
            continue
        files = {f.split()[2]: f.split()[0] for f in sums.group(1).splitlines() if len(f.split()) == 3}
        if best is None or _dpkg_newer(version.group(1), best["version"]):
            best = {"version": version.group(1), "files": files}
    return best


def _dpkg_newer(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "gt", b]).returncode == 0


def _apt_errors(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith(("E:", "Err:"))]
    return "; ".join(lines[-4:]) or (proc.stderr.strip().splitlines() or ["(no output)"])[-1]


# ---- provisioning ------------------------------------------------------------------------------

def _for_apt(directory: Path) -> None:
    """apt downloads as ``_apt`` when that user may write the target (else as root, with a warning)."""
    try:
        import pwd
        os.chown(directory, pwd.getpwnam("_apt").pw_uid, -1)
    except (KeyError, OSError):
        pass


def resolve_inputs(apt: PrivateApt) -> tuple[StackInputs, dict]:
    libvirt = apt.newest("libvirt-daemon")
    if (parse_version(libvirt) or (0,)) < MIN_LIBVIRT:
        raise StackError(f"{BACKPORTS} has libvirt {libvirt}; the passt backend needs >= 11")
    qemu = apt.newest("qemu-system-x86")
    if (parse_version(qemu.split(":", 1)[-1]) or (0,)) < MIN_QEMU:
        raise StackError(f"{BACKPORTS} has QEMU {qemu}; vhost-user with passt needs >= 8")
    source = apt.source("passt")
    return StackInputs(libvirt, qemu, apt.newest("seabios"), source["version"]), source


def ensure_stack(cache: Path | None = None, refresh: bool = False,
                 say: Callable[[str], None] | None = None) -> NativeStack:
    """The provisioned stack for the newest inputs (``refresh``) or the cached one, built when
    missing. Safe to call concurrently (one builder, the others wait and reuse its result)."""
    say = say or (lambda _text: None)
    base = stack_dir(cache)
    if not refresh:
        current = cached_stack(cache)
        if current is not None:
            return current
    started = time.monotonic()
    with paths.locked(base):
        if not refresh:
            current = cached_stack(cache)
            if current is not None:  # built by someone else while we waited
                return current
        apt = PrivateApt(base / "apt")
        apt.prepare()
        say(f"apt-get update ({BACKPORTS}, {SOURCE_SUITE} sources; private configuration under {apt.base})")
        apt.update()
        inputs, source = resolve_inputs(apt)
        target = base / inputs.key()
        built = False
        if not _complete(target):
            say(f"building: libvirt {inputs.libvirt}, QEMU {inputs.qemu}, SeaBIOS {inputs.seabios},"
                f" passt {inputs.passt} (from source)")
            _build(apt, inputs, source, target, say)
            built = True
        (base / "current.tmp").write_text(json.dumps({"key": target.name, "inputs": asdict(inputs)}))
        (base / "current.tmp").replace(base / "current.json")
        paths.prune_builds(base, keep=target)
    return _load(target, built=built, seconds=round(time.monotonic() - started, 2))


def _build(apt: PrivateApt, inputs: StackInputs, source: dict, target: Path, say: Callable[[str], None]) -> None:
    with paths.building(target) as work:
        os.chmod(work, 0o755)  # _check_runs runs QEMU and passt as libvirt-qemu
        debs = work / "debs"
        debs.mkdir()
        _for_apt(debs)
        wanted = [f"{p}={inputs.libvirt}" for p in LIBVIRT_PACKAGES] + \
                 [f"{p}={inputs.qemu}" for p in QEMU_PACKAGES] + [f"seabios={inputs.seabios}"]
        t0 = time.monotonic()
        apt.run("apt-get", "download", *wanted, cwd=debs)
        fs = work / "root"
        for deb in sorted(debs.glob("*.deb")):
            _checked(["dpkg-deb", "-x", str(deb), str(fs)], f"unpack {deb.name}")
        shutil.rmtree(debs)
        say(f"libvirt + QEMU fetched and extracted in {time.monotonic() - t0:.1f} s")
        t0 = time.monotonic()
        passt = _build_passt(apt, source, work)
        say(f"passt {source['version']} fetched and built in {time.monotonic() - t0:.1f} s")
        _check_runs(fs, passt)
        manifest = {"inputs": asdict(inputs), "versions": {
            "libvirt": inputs.libvirt, "qemu": inputs.qemu, "seabios": inputs.seabios, "passt": inputs.passt},
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1))


def _checked(argv: list[str], what: str, cwd: Path | None = None, log: Path | None = None) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=900)
    except FileNotFoundError:
        raise StackError(f"{what}: {argv[0]} is missing (make deps installs it)") from None
    output = proc.stdout + proc.stderr
    if log is not None:
        with open(log, "a") as f:
            f.write(f"$ {' '.join(argv)}\n{output}\n")
    if proc.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-8:])
        raise StackError(f"{what} failed (exit {proc.returncode}): {tail}")
    return output


def _build_passt(apt: PrivateApt, source: dict, work: Path) -> Path:
    version = source["version"]
    src = work / "src"
    src.mkdir()
    _for_apt(src)
    # The .dsc of this version is not always served (404) while both tarballs are: apt then exits
    # non-zero after fetching them, so the result is judged by the tarballs and their checksums.
    proc = apt.run("apt-get", "source", "--download-only", f"passt={version}", cwd=src, check=False)
    tarballs = {name: digest for name, digest in source["files"].items() if ".tar." in name}
    orig = [n for n in tarballs if ".orig.tar." in n]
    debian = [n for n in tarballs if ".debian.tar." in n]
    if len(orig) != 1 or len(debian) != 1:
        raise StackError(f"passt {version}: expected one orig and one debian tarball, the index lists {sorted(tarballs)}")
    for name, digest in tarballs.items():
        path = src / name
        if not path.is_file():
            raise StackError(f"passt {version}: {name} was not fetched from {MIRROR}: {_apt_errors(proc)}")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise StackError(f"passt {version}: {name} does not match the SHA-256 of the signed index")
    tree = work / "passt-src"
    tree.mkdir()
    log = work / "passt-build.log"
    _checked(["tar", "-xf", str(src / orig[0]), "-C", str(tree), "--strip-components=1"], "unpack passt", log=log)
    _checked(["tar", "-xf", str(src / debian[0]), "-C", str(tree)], "unpack passt's debian/", log=log)
    series = tree / "debian/patches/series"
    for patch in (series.read_text().split("\n") if series.exists() else []):
        patch = patch.split("#", 1)[0].strip()
        if patch:
            _checked(["patch", "-p1", "--forward", "--quiet", "-i", str(tree / "debian/patches" / patch)],
                     f"passt: apply debian/patches/{patch}", cwd=tree, log=log)
    targets = ["passt"] + (["passt.avx2"] if platform.machine() == "x86_64" else [])
    _checked(["make", f"-j{os.cpu_count() or 1}", f"VERSION={version}", *targets], "passt: make", cwd=tree, log=log)
    bin_dir = work / "bin"
    bin_dir.mkdir()
    for name in targets:  # passt execs passt.avx2 next to itself on AVX2 CPUs, as Debian installs it
        shutil.copy2(tree / name, bin_dir / name)
    shutil.rmtree(tree)
    shutil.rmtree(src)
    return bin_dir / "passt"


def _check_runs(fs: Path, passt: Path) -> None:
    """The extracted binaries must load against this host's libraries; name what is missing."""
    env = dict(os.environ, LD_LIBRARY_PATH=str(fs / "usr/lib/x86_64-linux-gnu"))
    missing = set()
    for binary in (fs / "usr/sbin/libvirtd", fs / "usr/bin/qemu-system-x86_64",
                   fs / "usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so"):
        if not binary.exists():
            raise StackError(f"{binary.relative_to(fs)} is not in the fetched packages")
        out = _run(["ldd", str(binary)], env=env)
        missing.update(re.findall(r"^\s*(\S+) => not found", out, re.M))
    if missing:
        raise StackError(f"the backported libvirt/QEMU need libraries this host lacks: {', '.join(sorted(missing))}"
                         " (install the Debian packages that ship them: apt-file search NAME)")
    if "--vhost-user" not in _run([str(passt), "--help"]):
        raise StackError(f"the built {passt} does not list --vhost-user")


# ---- CLI entry point for make (python -m netbind.node.stack ensure|status) -------------------

def _main(argv: list[str]) -> int:
    import sys

    command = argv[0] if argv else "status"
    if command == "ensure":
        native = host_native()
        if native is not None:
            print(f"native passt stack: {native.describe()}; nothing to provision")
            return 0
        if os.geteuid() != 0:
            print("provisioning the native passt stack needs root (it is shared under the cache dir)", file=sys.stderr)
            return 1
        try:
            stack = ensure_stack(refresh="--refresh" in argv, say=lambda text: print(f"  {text}", flush=True))
        except StackError as exc:
            print(f"native passt stack: not provisioned: {exc}", file=sys.stderr)
            return 1
        state = f"built in {stack.seconds:.1f} s" if stack.built else "cached"
        print(f"native passt stack: {stack.describe()} ({state})")
        return 0
    if command == "status":
        native = host_native() or cached_stack()
        print(json.dumps(native.to_json() if native else None, indent=1))
        return 0 if native else 1
    print("usage: python -m netbind.node.stack ensure [--refresh] | status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    import sys

    raise SystemExit(_main(sys.argv[1:]))
