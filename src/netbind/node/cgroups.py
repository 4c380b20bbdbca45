"""The compute container's resources as cgroup limits on the pod's libvirtd, and so on its QEMU.

The kubelet turns a container's resources into cgroup settings (``containers.cgroup_settings``):
limits.memory a memory limit, limits.cpu a CFS quota, requests.cpu CPU shares; a memory request
alone limits nothing. The compute container's figures already hold the launcher overhead and the
bindings' ``computeResourceOverhead`` (virt-controller adds them). Here they go on a cgroup per
pod, below the runtime's own, that libvirtd joins right after it starts; QEMU, forked by it later
(the private libvirtd manages no cgroups of its own), inherits it. cgroup v1 (per-controller
hierarchies) and v2 (unified, with the controllers delegated) are handled; what the host does not
allow is said, not silently dropped. The cgroup is in the pod's journal (kind ``cgroup``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

ROOT = Path("/sys/fs/cgroup")


def _own_path(controller: str) -> str | None:
    """This process's cgroup in the v1 hierarchy of ``controller`` ("" key: the v2 one)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (controller == "" and controllers == ""):
            return path
    return None


def _v1_dir(controller: str, leaf: str) -> Path | None:
    mount = ROOT / controller
    own = _own_path(controller)
    if own is None or not (mount / "cgroup.procs").exists():
        return None
    return mount / own.lstrip("/") / leaf


def plan(resources: Mapping[str, Any], leaf: str) -> list[tuple[Path, str, str, str]]:
    """(cgroup dir, file, value, what it means) for each setting the resources ask for, on this host."""
    from netbind.node.containers import cgroup_settings

    settings = cgroup_settings(resources)
    wanted = [(key, value) for key, value in settings.items() if value is not None]
    out = []
    if (ROOT / "memory" / "cgroup.procs").exists() or (ROOT / "cpu" / "cgroup.procs").exists():   # v1
        files = {"memory": ("memory", "memory.limit_in_bytes"), "cpu_quota": ("cpu", "cpu.cfs_quota_us"),
                 "cpu_shares": ("cpu", "cpu.shares")}
        for key, value in wanted:
            controller, name = files[key]
            directory = _v1_dir(controller, leaf)
            if directory is not None:
                out.append((directory, name, str(value), key))
    elif (ROOT / "cgroup.controllers").exists():                                                  # v2
        own = _own_path("")
        directory = ROOT / (own or "/").lstrip("/") / leaf
        for key, value in wanted:
            if key == "memory":
                out.append((directory, "memory.max", str(value), key))
            elif key == "cpu_quota":
                out.append((directory, "cpu.max", f"{value} 100000", key))
            elif key == "cpu_shares":   # the kubelet's shares -> weight conversion
                out.append((directory, "cpu.weight", str(1 + ((value - 2) * 9999) // 262142), key))
    return out


MEANING = {"memory": "limits.memory", "cpu_quota": "limits.cpu", "cpu_shares": "requests.cpu"}


def confine(journal, resources: Mapping[str, Any], pid: int, leaf: str) -> list[str]:
    """Put ``pid`` in a cgroup with the resources' limits; returns what was enforced and what not."""
    report: list[str] = []
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    if "memory" in requests and "memory" not in limits:
        report.append(f"memory: request {requests['memory']} only, no limit (the kubelet sets none for a request)")
    steps = plan(resources, leaf)
    if not steps:
        if any(k in limits for k in ("memory", "cpu")) or "cpu" in requests:
            report.append("not enforced: this host offers no writable cgroup hierarchy for memory/cpu")
        return report
    for directory in dict.fromkeys(d for d, *_ in steps):
        entry = journal.intend("cgroup", str(directory))
        try:
            directory.mkdir(exist_ok=True)
        except OSError as exc:
            journal.forget(entry)
            report.append(f"not enforced in {directory.parent}: {exc.strerror or exc}")
            continue
        journal.created(entry)
        for step_dir, name, value, key in steps:
            if step_dir != directory:
                continue
            source = {"memory": limits.get("memory"), "cpu_quota": limits.get("cpu"),
                      "cpu_shares": requests.get("cpu", limits.get("cpu"))}[key]
            try:
                (directory / name).write_text(value)
                report.append(f"{MEANING[key]} {source} -> {name} {value}")
            except OSError as exc:
                report.append(f"{MEANING[key]}: {name} not set ({exc.strerror or exc})")
        try:
            (directory / "cgroup.procs").write_text(str(pid))
        except OSError as exc:
            report.append(f"libvirtd not moved into {directory}: {exc.strerror or exc}")
    return report


def undo_cgroup(attrs: dict[str, Any]) -> None:
    """Move what is still inside to the parent, then remove the cgroup; idempotent."""
    directory = Path(attrs["name"])
    if not directory.exists():
        return
    procs_file = directory / "cgroup.procs"
    for _ in range(50):
        try:
            pids = procs_file.read_text().split()
        except OSError:
            break
        for pid in pids:
            try:
                (directory.parent / "cgroup.procs").write_text(pid)
            except OSError:
                pass   # gone meanwhile
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError:
            continue   # a process forked in between: move it too
    os.rmdir(directory)
