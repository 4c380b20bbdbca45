"""What this host's stack can do for the runtime: libvirt, passt, KVM (detected, never assumed).

KubeVirt's passt binding writes ``<interface type="vhostuser">`` with ``<backend type="passt"/>``:
that needs libvirt >= 11 (Debian 12's 9.0 rejects the passt backend at parse time, Debian patch
Disable-passt-support) and a passt with ``--vhost-user`` (2025 builds). ``HostStack.notes`` says
what is missing for that native path and what the runtime substitutes instead.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from netbind.node import paths

NATIVE_LIBVIRT = (11, 0, 0)


def _run(*argv: str) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout + proc.stderr


def _version(text: str) -> tuple[int, ...] | None:
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in found.groups()) if found else None


@dataclass(frozen=True)
class HostStack:
    libvirt: tuple[int, ...] | None
    passt: str | None                 # path of the passt binary
    passt_vhost_user: bool
    kvm: bool                         # usable for our guests (else TCG)
    kvm_note: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def native_passt(self) -> bool:
        """libvirt can run KubeVirt's passt interface as written (vhost-user + passt backend)."""
        return bool(self.libvirt and self.libvirt >= NATIVE_LIBVIRT and self.passt_vhost_user)

    @property
    def libvirt_text(self) -> str:
        return ".".join(map(str, self.libvirt)) if self.libvirt else "missing"

    def as_dict(self) -> dict:
        return {"libvirt": self.libvirt_text, "passt": self.passt, "passtVhostUser": self.passt_vhost_user,
                "kvm": self.kvm, "kvmNote": self.kvm_note, "nativePasst": self.native_passt,
                "notes": list(self.notes)}


def _kvm() -> tuple[bool, str]:
    if os.environ.get("NETBIND_ACCEL") == "tcg":
        return False, "TCG forced by NETBIND_ACCEL=tcg"
    if not os.path.exists("/dev/kvm"):
        return False, "no /dev/kvm: QEMU runs under TCG"
    try:
        cpuinfo = open("/proc/cpuinfo").read()
        cmdline = open("/proc/cmdline").read()
    except OSError:
        cpuinfo = cmdline = ""
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    if "vmx" not in flags and "svm" not in flags:
        pvm = " (a PVM guest: kvm_pvm cannot run a stock Debian kernel)" if "pvm" in cmdline else ""
        return False, f"/dev/kvm exists but the CPU has no vmx/svm flag{pvm}: QEMU runs under TCG"
    if os.environ.get("NETBIND_ACCEL") == "kvm":
        return True, "KVM (NETBIND_ACCEL=kvm)"
    return True, "KVM"


def _identity(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _binary_facts(libvirtd: str | None, passt: str | None) -> dict:
    """libvirtd's version and passt's vhost-user support. Each ``up`` needs them, and an exec of
    libvirtd alone costs ~35 ms: they are kept in the cache, keyed by the binaries' identity
    (inode, size, times), so an upgrade or a different binary is probed afresh."""
    key = {"libvirtd": [libvirtd, _identity(libvirtd) if libvirtd else None],
           "passt": [passt, _identity(passt) if passt else None]}
    cache = paths.cache_dir() / "host-facts.json"
    try:
        kept = json.loads(cache.read_text())
        if kept.get("key") == key:
            return kept["facts"]
    except (OSError, ValueError, AttributeError, KeyError):
        pass
    libvirt = _version(_run(libvirtd, "--version")) if libvirtd else None
    facts = {"libvirt": list(libvirt) if libvirt else None,
             "vhostUser": bool(passt) and "--vhost-user" in _run(passt, "--help")}
    scratch = cache.with_name(f".{cache.name}.{os.getpid()}")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        scratch.write_text(json.dumps({"key": key, "facts": facts}))
        scratch.replace(cache)
    except OSError:   # not writable (no root, disk full): probed again next time
        try:
            scratch.unlink(missing_ok=True)
        except OSError:
            pass
    return facts


@functools.lru_cache(maxsize=1)
def detect() -> HostStack:
    passt = shutil.which("passt")
    facts = _binary_facts(shutil.which("libvirtd"), passt)
    libvirt = tuple(facts["libvirt"]) if facts["libvirt"] else None
    vhost_user = facts["vhostUser"]
    kvm, kvm_note = _kvm()
    notes = []
    if libvirt is None:
        notes.append("libvirtd is missing: apt-get install libvirt-daemon-system")
    elif libvirt < NATIVE_LIBVIRT:
        notes.append(f"libvirt {'.'.join(map(str, libvirt))} rejects <backend type='passt'> (native path needs"
                     " >= 11: bookworm-backports' libvirt 11.3, or Debian 13)")
    if passt is None:
        notes.append("passt is missing: apt-get install passt")
    elif not vhost_user:
        notes.append("passt has no --vhost-user (native path needs a 2025 passt: Debian 13's, or built from"
                     " its source package on Debian 12)")
    return HostStack(libvirt, passt, vhost_user, kvm, kvm_note, tuple(notes))
