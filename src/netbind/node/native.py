"""Which passt path ``up`` takes, and the private libvirtd that runs the native one.

``native``: the sidecar's ``<interface type="vhostuser">`` + ``<backend type="passt"/>`` is defined
unchanged and libvirt >= 11 starts ``passt --vhost-user`` itself (host notes R6b), from the host's
packages (Debian 13) or the provisioned stack (``netbind.node.stack``). ``substitute``: recipe R6a
(``netbind.node.passt``). ``auto`` takes native when it is available without a download, else
substitutes and says what is missing. ``choose`` is pure apart from the detection it is handed.

The native libvirtd differs from the 9.0 one (``netbind.node.libvirt``) in what the notes found:
QEMU runs as ``libvirt-qemu`` (passt, started by libvirt as that user, cannot write its pidfile when
QEMU runs as root: pitfall 3); ``/dev/kvm`` is given group ``kvm`` mode 0660 *inside libvirtd's mount
namespace only* (a device node on a private tmpfs bound over it: what Debian's udev rule does, without
touching the host's node), or libvirt re-probes QEMU on every define and start (pitfall 9: 64 s for
one define here); the stack's libraries, drivers, cpu_map and QEMU 10 binary and firmware are bound
over the host's in that namespace; ``/var/run/kubevirt`` (the sidecar's passt ``logFile``) is a pod
directory writable by libvirt-qemu; the pod gets its own resolv.conf without a resolver (passt copies
DNS from it: pitfall 5), like R6a's ``--dns none``.
"""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from netbind.node import libvirt as lv
from netbind.node import paths, procs
from netbind.node.sandbox import Pod
from netbind.node.stack import NativeStack, StackError, cached_stack, ensure_stack, host_native

MODES = ("auto", "native", "substitute")
ENV = "NETBIND_PASST"
QEMU_USER = "libvirt-qemu"
KVM_GROUP = "kvm"
KUBEVIRT_RUN = "/var/run/kubevirt"   # the passt logFile's directory (a node mount point: sandbox.MOUNT_POINTS)


@dataclass(frozen=True)
class PasstPath:
    native: bool
    reason: str
    stack: NativeStack | None = None

    def describe(self) -> str:
        if self.native:
            return f"passt: native (vhost-user + <backend type='passt'> defined unchanged; libvirt starts passt) [{self.reason}]"
        return f"passt: recipe R6a substitution [{self.reason}]"

    def to_json(self) -> dict:
        return {"path": "native" if self.native else "substitute", "reason": self.reason,
                "stack": self.stack.to_json() if self.stack else None}


def requested_mode(option: str | None) -> str:
    mode = option or os.environ.get(ENV) or "auto"
    if mode not in MODES:
        raise ValueError(f"passt path {mode!r} (from {'--passt' if option else ENV}): expected one of {', '.join(MODES)}")
    return mode


def choose(mode: str, host: NativeStack | None, cached: NativeStack | None,
           provision: Callable[[], NativeStack]) -> PasstPath:
    """The path for ``mode`` given the host's native stack, the cached provisioned one, and how to
    provision one (called only when ``native`` is forced and neither exists)."""
    if mode == "substitute":
        return PasstPath(False, "forced (--passt substitute)")
    forced = " (--passt native)" if mode == "native" else ""
    if host is not None:
        return PasstPath(True, f"{host.describe()}{forced}", host)
    if cached is not None:
        return PasstPath(True, f"{cached.describe()}{forced}", cached)
    if mode == "native":
        stack = provision()  # StackError propagates: the user asked for exactly this
        return PasstPath(True, f"{stack.describe()}, provisioned now in {stack.seconds:.1f} s (--passt native)", stack)
    return PasstPath(False, "the native path needs libvirt >= 11, QEMU >= 8 and a passt with --vhost-user: this host"
                            " has none and no stack is provisioned (make stack, or"
                            " python -m netbind.node.stack ensure)")


def select(option: str | None = None) -> PasstPath:
    mode = requested_mode(option)
    if mode == "substitute":
        return choose(mode, None, None, ensure_stack)
    from netbind.node import host as hostmod
    from netbind.node.stack import MIN_LIBVIRT

    system_libvirt = hostmod.detect().libvirt  # already probed by up: skip three more execs on Debian 12
    host = host_native() if system_libvirt and system_libvirt >= MIN_LIBVIRT else None
    return choose(mode, host, cached_stack(), ensure_stack)


def start_libvirtd(pod: Pod, path: PasstPath, wait: bool = True) -> lv.PrivateLibvirtd:
    """The pod's libvirtd; ``wait=False`` returns once it is spawned (its first use waits)."""
    if path.native and path.stack is not None:
        return NativeLibvirtd.start(pod, path.stack, wait=wait)
    return lv.PrivateLibvirtd.start(pod, wait=wait)


# ---- the native private libvirtd ---------------------------------------------------------------

def qemu_ids() -> tuple[int, int]:
    """The uid and gid QEMU runs as on the native path (the stack's libvirt default user)."""
    try:
        return pwd.getpwnam(QEMU_USER).pw_uid, grp.getgrnam(KVM_GROUP).gr_gid
    except KeyError:
        raise StackError(f"user {QEMU_USER} / group {KVM_GROUP} are missing: install libvirt-daemon-system"
                         " (it creates them)") from None


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for sub in path.rglob("*"):
        os.chown(sub, uid, gid, follow_symlinks=False)


class NativeLibvirtd(lv.PrivateLibvirtd):
    """libvirt >= 11 in a pod's netns, QEMU as libvirt-qemu, passt on its PATH."""

    stack: NativeStack

    def shared_capabilities(self) -> Path:
        return native_capabilities_dir(self.stack)

    def hand_to_qemu(self, path: Path) -> None:
        """QEMU runs as libvirt-qemu: it binds the incoming migration socket in ``path``."""
        uid, gid = qemu_ids()
        os.chown(path, uid, gid)

    @classmethod
    def start(cls, pod: Pod, stack: NativeStack, timeout: float = 15.0,  # type: ignore[override]
              wait: bool = True) -> "NativeLibvirtd":
        layout = lv.Layout(pod.names.directory / "libvirt")
        if len(str(layout.socket)) > lv._SUN_PATH_MAX:
            raise lv.LibvirtError(f"{layout.socket} is longer than a unix socket path may be; use a shorter"
                                  " runtime dir (NETBIND_RUNTIME_DIR)")
        uid, gid = qemu_ids()
        _prepare(layout, stack, uid, gid)
        kubevirt_run = pod.names.directory / "kubevirt-run"
        kubevirt_run.mkdir(exist_ok=True)
        os.chown(kubevirt_run, uid, gid)
        resolv = pod.names.directory / "resolv.conf"
        resolv.write_text("# netbind pod: no cluster DNS here (passt advertises none)\n")
        # /run/kubevirt first: MOUNTS binds /run/kubevirt/container-disks inside it
        (kubevirt_run / "container-disks").mkdir(exist_ok=True)
        binds: list[tuple[Path | str, str]] = [(kubevirt_run, KUBEVIRT_RUN)]
        binds += [(layout.dir(host), host) for host in lv.MOUNTS]
        binds += [(source, target) for source, target in stack.binds]
        binds += [(resolv, "/etc/resolv.conf")]
        for source, target in binds:
            if not os.path.exists(target):
                raise lv.LibvirtError(f"cannot bind {source} over {target}: {target} does not exist on this host"
                                      " (install qemu-system-x86 and libvirt-daemon-system)")
        devices = list(lv.pod_tap_devices(pod.netns))
        try:
            st = os.stat("/dev/kvm")
            if stat.S_ISCHR(st.st_mode):
                devices.append(procs.Device("/dev/kvm", os.major(st.st_rdev), os.minor(st.st_rdev), 0o660, KVM_GROUP))
        except OSError:
            pass
        # pinned to CPU 0 for a stable capabilities cache key, as for the 9.0 libvirtd
        argv = ["taskset", "--cpu-list", "0", stack.libvirtd, "--pid-file", str(layout.pidfile)]
        env = dict(os.environ, PATH=f"{stack.bin_dir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}")
        if stack.lib_dir is not None:
            env["LD_LIBRARY_PATH"] = str(stack.lib_dir)
        record = pod.start(pod.process_spec("libvirtd", argv, env=env, devices=devices,
                                            binds=[procs.Bind(Path(source), target) for source, target in binds]),
                           settle=0)   # await_socket watches it
        daemon = cls(pod, layout, record, (time.monotonic() + timeout, f"libvirtd ({stack.libvirtd})"))
        daemon.stack = stack
        if wait:
            daemon.ready()
        return daemon


def native_capabilities_dir(stack: NativeStack) -> Path:
    """QEMU capabilities probed by this stack's libvirt (its own: 9.0's cache would not match)."""
    return paths.cache_dir() / f"libvirt-qemu-capabilities-native-{stack.key}"


def _prepare(layout: lv.Layout, stack: NativeStack, uid: int, gid: int) -> None:
    for host_dir in lv.MOUNTS:
        layout.dir(host_dir).mkdir(parents=True, exist_ok=True)
    etc = layout.dir("/etc/libvirt")
    shutil.copytree(stack.libvirt_etc, etc, dirs_exist_ok=True, symlinks=True)
    for autostart in etc.glob("qemu/networks/autostart/*"):
        autostart.unlink()
    with open(etc / "qemu.conf", "a") as conf:
        conf.write(lv.qemu_conf(None, "native passt stack"))   # QEMU as libvirt-qemu, the build's default
    lv.write_host_uuid(layout)
    lib, cache, log = (layout.dir(d) for d in ("/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt"))
    for sub in ("qemu/channel/target", "qemu/nvram", "images"):
        (lib / sub).mkdir(parents=True, exist_ok=True)
    (log / "qemu").mkdir(parents=True, exist_ok=True)
    layout.capabilities.mkdir(parents=True, exist_ok=True)
    shared = native_capabilities_dir(stack)
    if shared.is_dir():
        for cached in shared.glob("*.xml"):
            shutil.copy2(cached, layout.capabilities / cached.name)
    # what Debian's packaging makes libvirt-qemu's
    for owned in (lib / "qemu", cache / "qemu", log / "qemu"):
        _chown_tree(owned, uid, gid)
