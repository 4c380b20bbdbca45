"""A leak checker for the node runtime: what one runtime dir's runs left on this host.

``LeakChecker(runtime_dir)`` snapshots the host when made; ``note()`` (call it after a run or a
crash, before the cleanup, as often as you like) reads every journal under the runtime dir and
remembers what the runtime recorded (namespaces and their inodes, processes, containers, cgroups,
libvirt sockets, CNI attachments) and which processes run in those namespaces or name the runtime
dir; ``leaks()`` (after the cleanup) lists what is still there, one line per leak:

- network namespaces: ours by name in ``ip netns``, and ours by inode in any ``/proc/*/ns/net``;
- links in the host namespace that are new and ours (recorded, or named as the runtime names them);
- processes: recorded ones alive (pid + start time), and new ones that run in our namespaces or
  name the runtime dir or one of our namespaces in their argv, environment, cwd or mounts (an
  orphaned CNI plugin, QEMU forked by libvirtd, a sidecar, passt, dnsmasq);
- mounts: of the runtime dir or our namespaces in any mount namespace; host mount points the
  runtime made that no other runtime uses;
- libvirt: a recorded libvirtd socket that still exists;
- podman containers labelled with one of our pods, or recorded;
- cgroups recorded that still exist;
- CNI state: new files under ``/var/lib/cni`` that name one of our pods (binding plugins' attachment
  state, host-local's leases);
- the runtime dir itself (``down`` removes it, files included).

Only things that are provably this runtime dir's count: other runtimes (other test runs, other
people's VMs) on the same machine are never reported. Nothing here changes the host.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from netbind.node.procs import proc_stat

CNI_STATE_ROOT = Path("/var/lib/cni")
NETNS_DIR = Path("/run/netns")
# how the runtime names what it makes (netbind.naming, netbind.netpod, netbind.node.sandbox/multus)
_OUR_LINK = re.compile(r"(nb|k6t-|tap|pod[0-9a-f]{7})")


def _netns_names() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in listed.splitlines() if line.strip()}


def _host_links() -> set[str]:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout
    try:
        return {link["ifname"] for link in json.loads(out or "[]")}
    except ValueError:
        return set()


def _processes() -> set[tuple[int, int]]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None and stat.running:
                found.add((int(entry.name), stat.starttime))
    return found


def _files(root: Path) -> set[Path]:
    found: set[Path] = set()
    if root.is_dir():
        for directory, _, names in os.walk(root):
            found.update(Path(directory) / n for n in names)
    return found


def _read(path: Path, limit: int = 1 << 20) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return b""


def _describe(pid: int) -> str:
    argv = _read(Path(f"/proc/{pid}/cmdline")).replace(b"\0", b" ").decode(errors="replace").strip()
    return f"pid {pid} ({argv[:160] or '?'})"


@dataclass
class Footprint:
    """What the runtime recorded, accumulated over ``note()`` calls."""
    netns: set[str] = field(default_factory=set)
    inodes: set[int] = field(default_factory=set)
    pids: set[tuple[int, int]] = field(default_factory=set)
    links: set[str] = field(default_factory=set)
    containers: set[str] = field(default_factory=set)
    cgroups: set[str] = field(default_factory=set)
    sockets: set[str] = field(default_factory=set)
    mount_points: set[str] = field(default_factory=set)


class LeakChecker:
    def __init__(self, runtime: Path) -> None:
        from netbind.node.sandbox import MOUNT_POINTS, NodeNames

        self.runtime = Path(runtime)
        self.node_netns = NodeNames(self.runtime).netns
        self.footprint = Footprint(netns={self.node_netns})
        self.before_links = _host_links()
        self.before_pids = _processes()
        self.before_cni = _files(CNI_STATE_ROOT)
        self.before_mount_points = {p for p in MOUNT_POINTS if p.exists()}
        self.mount_points = tuple(MOUNT_POINTS)
        self.me = {os.getpid(), *self._ancestors()}

    @staticmethod
    def _ancestors() -> set[int]:
        found, pid = set(), os.getppid()
        while pid > 1:
            found.add(pid)
            stat = proc_stat(pid)
            if stat is None:
                break
            pid = stat.ppid
        return found

    # ---- before the cleanup ----------------------------------------------------------------------

    def note(self) -> Footprint:
        """Remember what the journals under the runtime dir record now, and who runs in it."""
        fp = self.footprint
        for journal in self.runtime.glob("**/journal.json"):
            try:
                data = json.loads(journal.read_text())
            except (OSError, ValueError):
                continue
            if data.get("meta", {}).get("netns"):
                fp.netns.add(data["meta"]["netns"])
            for entry in data.get("entries", []):
                kind, name, attrs = entry.get("kind"), entry.get("name"), entry.get("attrs", {})
                if kind == "netns":
                    fp.netns.add(name)
                elif kind == "process" and "pid" in attrs:
                    fp.pids.add((attrs["pid"], attrs["starttime"]))
                elif kind == "link":
                    fp.links.add(name)
                elif kind == "container":
                    fp.containers.add(name)
                elif kind == "cgroup":
                    fp.cgroups.add(name)
                elif kind == "mountpoint":
                    fp.mount_points.add(name)
                elif kind == "domain" and "socket=" in attrs.get("uri", ""):
                    fp.sockets.add(attrs["uri"].split("socket=", 1)[1])
                elif kind == "cni-attachment" and attrs.get("container_id"):
                    fp.netns.add(attrs["container_id"])
        for name in fp.netns:
            try:
                fp.inodes.add(os.stat(NETNS_DIR / name).st_ino)
            except OSError:
                pass
        for pid, start in _processes():
            if pid not in self.me and self._ours(pid):
                fp.pids.add((pid, start))
        return fp

    def _markers(self) -> list[bytes]:
        return [str(self.runtime).encode(), *(n.encode() for n in self.footprint.netns)]

    def _ours(self, pid: int) -> bool:
        """A process names the runtime dir or one of our namespaces in its argv or environment, or
        the runtime dir in its cwd or mounts. (Being in a namespace whose inode was ours is not
        enough: a freed namespace inode is reused by the next namespace anyone creates.)"""
        proc = Path(f"/proc/{pid}")
        markers = self._markers()
        for part in ("cmdline", "environ"):
            data = _read(proc / part)
            if any(m in data for m in markers):
                return True
        # not the namespaces' names here: `ip netns add` mounts /run/netns/NAME in the host's mount
        # namespace, so every host process sees those while they exist
        if str(self.runtime).encode() in _read(proc / "mountinfo"):
            return True
        try:
            if str(self.runtime) in os.readlink(proc / "cwd"):
                return True
        except OSError:
            pass
        return False

    # ---- after the cleanup -----------------------------------------------------------------------

    def leaks(self) -> list[str]:
        fp = self.footprint
        found: list[str] = []
        left = sorted(_netns_names() & fp.netns)
        if left:
            found.append(f"network namespaces left: {', '.join(left)}")

        alive = _processes()
        recorded = sorted(p for p in fp.pids if p in alive)
        found += [f"process left: {_describe(pid)}" for pid, _ in recorded]
        for pid, start in sorted(alive - self.before_pids - set(recorded)):
            if pid in self.me or pid == os.getpid():
                continue
            try:
                inode = os.stat(f"/proc/{pid}/ns/net").st_ino
            except OSError:
                inode = None
            if self._ours(pid):
                why = "in one of our namespaces" if inode in fp.inodes else "naming our runtime"
                found.append(f"process left ({why}): {_describe(pid)}")

        mounts = []
        marker = str(self.runtime).encode()
        for info in Path("/proc").glob("[0-9]*/mountinfo"):
            if marker in _read(info):
                mounts.append(info.parent.name)
        if mounts:
            found.append(f"mounts of {self.runtime} left in the mount namespaces of pids {', '.join(sorted(mounts)[:10])}")
        host = _read(Path("/proc/self/mountinfo")).decode(errors="replace")
        netns_mounts = sorted(n for n in fp.netns if f" {NETNS_DIR / n} " in host)
        if netns_mounts:
            found.append(f"namespace mounts left: {', '.join(netns_mounts)}")
        for point in self.mount_points:
            # only the points our journals recorded: the host's /run/libvirt and friends are
            # shared, and another runtime (or a crashed one) may have made them
            if (str(point) in fp.mount_points and point not in self.before_mount_points and point.exists()
                    and not self._used_elsewhere(point)):
                found.append(f"host mount point left: {point}")

        new_links = _host_links() - self.before_links
        ours = sorted(n for n in new_links if n in fp.links or _OUR_LINK.match(n))
        if ours:
            found.append(f"links left in the host namespace: {', '.join(ours)}")

        found += [f"libvirt socket left: {s}" for s in sorted(fp.sockets) if Path(s).exists()]
        found += [f"cgroup left: {c}" for c in sorted(fp.cgroups) if Path(c).exists()]
        found += [f"podman container left: {c}" for c in self._containers()]

        cni = []
        for path in sorted(_files(CNI_STATE_ROOT) - self.before_cni):
            if any(m in str(path).encode() or m in _read(path, 65536) for m in self._markers()):
                cni.append(str(path))
        if cni:
            found.append(f"CNI state files left: {', '.join(cni)}")

        if self.runtime.exists():
            files = sorted(str(p.relative_to(self.runtime)) for p in self.runtime.rglob("*"))
            found.append(f"runtime dir {self.runtime} left ({len(files)} entries: {', '.join(files[:12])})")
        return found

    def _containers(self) -> list[str]:
        from netbind import _podman
        from netbind.node.containers import POD_LABEL

        if _podman.unavailable() is not None:
            return []
        proc = _podman.run("ps", "--all", "--format", "json", check=False)
        try:
            listed = json.loads(proc.stdout or "[]")
        except ValueError:
            return [f"(podman ps failed: {(proc.stderr or '').strip()[:200]})"]
        left = []
        for c in listed:
            names = set(c.get("Names") or [])
            pod = (c.get("Labels") or {}).get(POD_LABEL)
            if names & self.footprint.containers or pod in self.footprint.netns:
                left.append(", ".join(sorted(names)) + (f" (pod {pod})" if pod else ""))
        return left

    def _used_elsewhere(self, path: Path) -> bool:
        return mount_point_used_elsewhere(path, {self.runtime})


def mount_point_used_elsewhere(path: Path, ours: set[Path]) -> bool:
    """Another runtime's node journal (not one of the runtime dirs ``ours``) records the mount
    point, or something is mounted on it."""
    from netbind.node.journal import mounted_anywhere, mountpoint_recorded_elsewhere

    if mounted_anywhere(str(path)):
        return True
    return mountpoint_recorded_elsewhere(str(path), ours)


def assert_no_leaks(checker: LeakChecker, context: str = "") -> None:
    leaks = checker.leaks()
    assert not leaks, (f"{context}: " if context else "") + "left behind:\n  " + "\n  ".join(leaks)


__all__ = ["Footprint", "LeakChecker", "assert_no_leaks", "mount_point_used_elsewhere"]
