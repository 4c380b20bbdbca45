"""Pod sandboxes: a network namespace per VMI (the virt-launcher pod) next to a node namespace
(the node and the outside world), described as plain data and applied with a journal.

A *plan* is a tuple of steps (frozen dataclasses). ``compose`` functions build plans without
touching the host; ``apply`` realizes one through the iproute2 adapter, recording each thing in
the owner's journal before and after creating it, and undoes what it created if a step fails.
Everything lives under the runtime dir (``$NETBIND_RUNTIME_DIR``, default ``/run/netbind``):
``node/`` for the node namespace and ``pods/<netns>/`` per pod, so ``down`` works from disk alone.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence, Union

from netbind import _iproute as iproute
from netbind.node import paths, procs
from netbind.node.journal import Journal, mountpoint_recorded_elsewhere

HOOKS_TARGET = "/var/run/kubevirt-hooks"
PODINFO_TARGET = "/etc/podinfo"


class SandboxError(RuntimeError):
    """A sandbox step failed; what the step had created is already removed."""


# ---- plan steps (plain data) -------------------------------------------------------------------

@dataclass(frozen=True)
class Netns:
    name: str


@dataclass(frozen=True)
class Veth:
    name: str
    netns: str
    peer: str
    peer_netns: str


@dataclass(frozen=True)
class Bridge:
    name: str
    netns: str


@dataclass(frozen=True)
class Tap:
    name: str
    netns: str
    multiqueue: bool = False


@dataclass(frozen=True)
class Enslave:
    link: str
    master: str
    netns: str


@dataclass(frozen=True)
class Address:
    cidr: str
    link: str
    netns: str


@dataclass(frozen=True)
class LinkUp:
    link: str
    netns: str


@dataclass(frozen=True)
class DefaultRoute:
    via: str
    netns: str


@dataclass(frozen=True)
class Sysctl:
    key: str
    value: str
    netns: str


@dataclass(frozen=True)
class Directory:
    path: Path


@dataclass(frozen=True)
class MountPoint:
    """A host directory that exists only to be mounted over inside private mount namespaces."""
    path: Path


Step = Union[Netns, Veth, Bridge, Tap, Enslave, Address, LinkUp, DefaultRoute, Sysctl, Directory, MountPoint]
Plan = tuple[Step, ...]


# ---- names and plans (pure) --------------------------------------------------------------------

def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:limit].strip("-") or "x"


@dataclass(frozen=True)
class NodeNames:
    runtime: Path

    @property
    def netns(self) -> str:  # one node per runtime dir, so parallel runtimes never collide
        return "nb-node-" + hashlib.sha256(str(self.runtime.resolve()).encode()).hexdigest()[:6]

    @property
    def directory(self) -> Path:
        return self.runtime / "node"


@dataclass(frozen=True)
class PodNames:
    vmi: str
    namespace: str
    suffix: str
    runtime: Path

    @classmethod
    def new(cls, vmi: str, namespace: str = "default", runtime: Path | None = None) -> "PodNames":
        return cls(vmi, namespace, secrets.token_hex(3), runtime or paths.runtime_dir())

    @property
    def netns(self) -> str:
        return f"nb-{_slug(self.vmi, 20)}-{self.suffix}"

    @property
    def directory(self) -> Path:
        return self.runtime / "pods" / self.netns

    @property
    def hooks_dir(self) -> Path:
        """The launcher's /var/run/kubevirt-hooks; sidecar i sees only its subdirectory."""
        return self.directory / "hooks"

    @property
    def podinfo_dir(self) -> Path:
        return self.directory / "podinfo"

    @property
    def logs_dir(self) -> Path:
        return self.directory / "logs"


# Host directories that private mount namespaces mount over (a pod's libvirtd, sidecars).
# /var/run/kubevirt: where the passt sidecar's logFile points (the native passt path, netbind.node.native).
# /var/run/kubevirt-plugin: Plugin API sidecars run as processes (netbind.node.sidecars).
MOUNT_POINTS = (Path("/run/libvirt"), Path(HOOKS_TARGET).resolve(), Path(PODINFO_TARGET),
                Path("/var/run/kubevirt").resolve(), Path("/var/run/kubevirt-plugin").resolve(),
                # the pod libvirtds' disk directories (libvirt.MOUNTS)
                Path("/var/run/kubevirt-ephemeral-disks").resolve(), Path("/var/run/kubevirt/container-disks").resolve())


def node_plan(node: NodeNames) -> Plan:
    return (Netns(node.netns), *(MountPoint(p) for p in MOUNT_POINTS))


def pod_plan(pod: PodNames) -> Plan:
    return (Netns(pod.netns), Directory(pod.hooks_dir), Directory(pod.podinfo_dir), Directory(pod.logs_dir))


def veth_to_node(pod: PodNames, node: NodeNames, pod_ifname: str, node_ifname: str) -> Plan:
    """A veth between the pod and the node namespace, both ends up (no addresses)."""
    return (Veth(pod_ifname, pod.netns, node_ifname, node.netns),
            LinkUp(pod_ifname, pod.netns), LinkUp(node_ifname, node.netns))


def bridged_tap(netns: str, uplink: str, bridge: str, tap: str, multiqueue: bool = False) -> Plan:
    """KubeVirt's bridge-binding wiring: the pod interface and the VM's tap on one in-pod bridge."""
    return (Bridge(bridge, netns), Tap(tap, netns, multiqueue), Enslave(uplink, bridge, netns),
            Enslave(tap, bridge, netns), LinkUp(bridge, netns), LinkUp(tap, netns))


def node_veth_name(pod: PodNames, ifname: str) -> str:
    """The node-side name of a pod's veth: unique per (pod, interface), within 15 characters."""
    return "nbv" + hashlib.sha256(f"{pod.netns}/{ifname}".encode()).hexdigest()[:8]


# ---- apply (effectful) -------------------------------------------------------------------------

def kill_netns_processes(name: str, grace: float = 3.0) -> None:
    """Whatever still runs in the namespace (a crash left it, or a child we never recorded)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 3.0)):
        pids = iproute.netns_pids(name)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while iproute.netns_pids(name) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            time.sleep(0.02)


def undo_netns(attrs: dict) -> None:
    if iproute.netns_exists(attrs["name"]):
        kill_netns_processes(attrs["name"])
        iproute.delete_netns(attrs["name"])


def undo_link(attrs: dict) -> None:
    iproute.delete_link(attrs["name"], attrs.get("netns"))


def _apply_step(step: Step, journal: Journal) -> None:
    if isinstance(step, Netns):
        entry = journal.intend("netns", step.name)
        iproute.add_netns(step.name)
    elif isinstance(step, Veth):
        entry = journal.intend("link", step.name, netns=step.netns)
        iproute.ip("link", "add", step.name, "type", "veth", "peer", "name", step.peer,
                  "netns", step.peer_netns, netns=step.netns)
    elif isinstance(step, Bridge):
        entry = journal.intend("link", step.name, netns=step.netns)
        iproute.ip("link", "add", step.name, "type", "bridge", netns=step.netns)
    elif isinstance(step, Tap):
        entry = journal.intend("link", step.name, netns=step.netns)
        iproute.ip("tuntap", "add", "dev", step.name, "mode", "tap",
                  *(("multi_queue",) if step.multiqueue else ()), netns=step.netns)
    elif isinstance(step, Directory):
        if step.path.exists():
            return
        entry = journal.intend("dir", str(step.path))
        step.path.mkdir(parents=True)
    elif isinstance(step, MountPoint):
        # A point another runtime made is recorded here too, so that whichever runtime goes last
        # removes it (each one alone left it behind while the other still used it); a point the
        # host had already is never ours.
        if step.path.exists() and not mountpoint_recorded_elsewhere(str(step.path), {journal.directory.parent}):
            return
        entry = journal.intend("mountpoint", str(step.path), runtime=str(journal.directory.parent))
        step.path.mkdir(mode=0o755, exist_ok=True)   # another runtime may make it in between: shared
    else:  # configuration of things created above: undone with them
        if isinstance(step, Enslave):
            iproute.ip("link", "set", step.link, "master", step.master, netns=step.netns)
        elif isinstance(step, Address):
            iproute.ip("addr", "add", step.cidr, "dev", step.link, netns=step.netns)
        elif isinstance(step, LinkUp):
            iproute.ip("link", "set", step.link, "up", netns=step.netns)
        elif isinstance(step, DefaultRoute):
            iproute.ip("route", "add", "default", "via", step.via, netns=step.netns)
        elif isinstance(step, Sysctl):
            iproute.sysctl(step.key, step.value, netns=step.netns)
        else:
            raise TypeError(f"unknown plan step {step!r}")
        return
    journal.created(entry)


def apply(plan: Sequence[Step], journal: Journal) -> None:
    """Apply the plan; on failure undo what this call created and raise SandboxError."""
    mark = len(journal.entries)
    for step in plan:
        try:
            _apply_step(step, journal)
        except Exception as exc:
            try:
                journal.undo(since=mark)
            except Exception as undo_exc:  # report both; the journal keeps the leftovers for `down`
                raise SandboxError(f"{step}: {exc}; rollback incomplete: {undo_exc}") from exc
            raise SandboxError(f"{step}: {exc}") from exc


# ---- owners: the node and the pods -------------------------------------------------------------

@dataclass
class Node:
    names: NodeNames
    journal: Journal

    @property
    def netns(self) -> str:
        return self.names.netns


def ensure_node(runtime: Path | None = None) -> Node:
    """The node namespace of this runtime dir, created on first use."""
    names = NodeNames(runtime or paths.runtime_dir())
    with paths.locked(names.runtime):
        journal = Journal(names.directory)
        if journal.path.exists() and iproute.netns_exists(names.netns):
            # a node made by an older netbind may lack a mount point added since; one another
            # runtime made (or removed) since this node started is taken up now
            recorded = {e.name for e in journal.find("mountpoint")}
            apply(tuple(MountPoint(p) for p in MOUNT_POINTS if not p.exists() or str(p) not in recorded),
                  journal)
            return Node(names, journal)
        journal = Journal.create(names.directory, {"netns": names.netns})
        try:
            apply(node_plan(names), journal)
        except SandboxError:
            journal.destroy()
            raise
        return Node(names, journal)


@dataclass
class Pod:
    names: PodNames
    journal: Journal

    @property
    def netns(self) -> str:
        return self.names.netns

    def apply(self, plan: Sequence[Step]) -> None:
        apply(plan, self.journal)

    def process_spec(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
                     hooks_subdir: str | None = None, podinfo: bool = False,
                     binds: Sequence[procs.Bind] = (), devices: Sequence[procs.Device] = ()
                     ) -> procs.ProcessSpec:
        """A process of this pod: its netns, its log and pidfile, and the container-like mounts."""
        mounts = list(binds)
        if hooks_subdir is not None:
            mounts.append(procs.Bind(self.names.hooks_dir / hooks_subdir, HOOKS_TARGET))
        if podinfo:
            mounts.append(procs.Bind(self.names.podinfo_dir, PODINFO_TARGET, read_only=True))
        return procs.ProcessSpec(name=name, argv=tuple(argv), netns=self.netns, binds=tuple(mounts), env=env,
                                 devices=tuple(devices), log=self.names.logs_dir / f"{name}.log",
                                 pidfile=self.names.directory / "pids" / f"{name}.pid")

    def start(self, spec: procs.ProcessSpec, settle: float = 0.05) -> procs.ProcessRecord:
        """``settle``: procs.start's; 0 where the caller's readiness wait watches the process too."""
        for bind in spec.binds:
            if bind.target == HOOKS_TARGET:  # the sidecar's own sockets subdirectory
                bind.source.mkdir(parents=True, exist_ok=True)
        entry = self.journal.intend("process", spec.name, log=str(spec.log), pidfile=str(spec.pidfile))
        try:
            record = procs.start(spec, settle)
        except Exception:
            self.journal.undo(since=self.journal.entries.index(entry))
            raise
        self.journal.created(entry, **record.attrs())
        return record

    def stop(self, name: str) -> None:
        for entry in self.journal.find("process", name):
            self.journal.undo(since=self.journal.entries.index(entry))
            return

    def down(self) -> None:
        self.journal.destroy()


def create_pod(vmi: str, namespace: str = "default", runtime: Path | None = None) -> Pod:
    """A new pod sandbox (netns, state dirs) for one VMI; unique even for equal VMI names. The
    node (its namespace and host mount points) is created first if this runtime has none."""
    ensure_node(runtime)
    names = PodNames.new(vmi, namespace, runtime)
    journal = Journal.create(names.directory, {"vmi": vmi, "namespace": namespace, "netns": names.netns})
    try:
        apply(pod_plan(names), journal)
    except SandboxError:
        journal.destroy()
        raise
    return Pod(names, journal)


def list_pods(runtime: Path | None = None) -> list[Pod]:
    runtime = runtime or paths.runtime_dir()
    pods = []
    for directory in sorted((runtime / "pods").glob("*")):
        journal = Journal(directory)
        meta = journal.meta
        names = PodNames(meta.get("vmi", directory.name), meta.get("namespace", "default"),
                         directory.name.rsplit("-", 1)[-1], runtime)
        pods.append(Pod(names, journal))
    return pods


def find_pods(name: str, runtime: Path | None = None) -> list[Pod]:
    """Pods of a VMI (``name`` or ``namespace/name``) or the pod whose netns is ``name``."""
    namespace, _, vmi = name.rpartition("/")
    return [p for p in list_pods(runtime)
            if p.netns == name or (p.names.vmi == vmi and (not namespace or p.names.namespace == namespace))]


def down(name: str, runtime: Path | None = None) -> list[str]:
    """Remove the pods of ``name`` (idempotent), then the node if no pod is left; returns netns names."""
    runtime = runtime or paths.runtime_dir()
    removed = []
    for pod in find_pods(name, runtime):
        pod.down()
        removed.append(pod.netns)
    for pod in list_pods(runtime):
        # a crash between a pod directory's mkdir and its journal's first write: nothing was recorded,
        # so nothing else exists; left there it would name no VMI and keep the node up for ever
        if not pod.journal.path.exists():
            pod.down()
    if not list_pods(runtime):
        down_node(runtime)
    return removed


def down_all(runtime: Path | None = None) -> list[str]:
    """Remove every pod and the node recorded under the runtime dir (crash cleanup)."""
    runtime = runtime or paths.runtime_dir()
    removed = []
    for pod in list_pods(runtime):
        pod.down()
        removed.append(pod.netns)
    down_node(runtime)
    return removed


@contextmanager
def uninterrupted() -> Iterator[list[int]]:
    """A teardown that a second Ctrl-C or SIGTERM does not cut short: both are noted (the list
    yielded) and otherwise ignored until the block ends. Only the main thread can do this; in any
    other thread the block runs as it is. SIGKILL still ends everything (then `netbind down`)."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    noted: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: noted.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield noted
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def node_lock(runtime: Path | None = None):
    """Serializes changes to the node namespace between concurrent runtimes of one runtime dir."""
    return paths.locked(runtime or paths.runtime_dir())


def down_node_if_idle(runtime: Path | None = None) -> None:
    """Remove the node when no pod is left (after a failed ``up``)."""
    if not list_pods(runtime or paths.runtime_dir()):
        down_node(runtime)


def down_node(runtime: Path | None = None) -> None:
    names = NodeNames(runtime or paths.runtime_dir())
    with paths.locked(names.runtime):
        if names.directory.exists():
            Journal(names.directory).destroy()
    for leftover in (names.runtime / "pods", names.runtime / ".lock"):
        try:
            leftover.rmdir() if leftover.is_dir() else leftover.unlink()
        except OSError:
            pass
    try:
        names.runtime.rmdir()
    except OSError:
        pass
