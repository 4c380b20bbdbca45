"""The kubelet's part for a pod's containers, run with podman.

``compose`` turns one container of the rendered virt-launcher pod into a ``ContainerPlan`` (pure
data: what ``podman run`` gets) the way the kubelet would realize it: the image and its entrypoint
unless ``command``/``args`` override them, the declared environment with its downward-API
``fieldRef`` values, every volume mount (emptyDir volumes as pod directories, ``subPath`` included;
the downward-API volume as the pod's podinfo directory), the pod's network namespace, user and
group (container over pod securityContext), capabilities, ``allowPrivilegeEscalation: false`` as
no-new-privileges, ``readOnlyRootFilesystem``, and resources as the kubelet's cgroup settings.
``start`` applies a plan with the journal: the container is recorded before ``podman run``, so
``netbind down`` removes it (and its storage) whatever happened to the runtime in between.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from netbind import _podman
from netbind.node import procs

POD_LABEL = "io.netbind.pod"
CONTAINER_LABEL = "io.netbind.container"
# the kubelet makes emptyDir volumes world-writable; with fsGroup their group is it, setgid
EMPTYDIR_MODE = 0o2777
FIELD_REFS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
              "spec.serviceAccountName", "status.podIP", "status.hostIP")


class ContainerSpecError(ValueError):
    """The pod's container asks for something the local runtime cannot give; the message names the field."""


class ContainerError(RuntimeError):
    """A container failed to start; what was created for it is removed. The message names container and image."""


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = False
    volume: str = ""          # the pod volume, for messages


@dataclass(frozen=True)
class ContainerPlan:
    name: str                              # podman's name, unique on the host: nb-<netns>-<container>
    container: str                         # the pod's container name
    image: str                             # the local image it runs
    netns: str
    entrypoint: tuple[str, ...] | None     # command: replaces the image's ENTRYPOINT (and its CMD)
    args: tuple[str, ...] | None           # args: replace the image's CMD
    env: tuple[tuple[str, str], ...]
    mounts: tuple[Mount, ...]
    user: str | None                       # "uid[:gid]"; None: the image's USER
    fs_group: int | None
    cap_drop: tuple[str, ...]
    cap_add: tuple[str, ...]
    no_new_privileges: bool
    read_only: bool
    privileged: bool
    memory: int | None                     # limits.memory, bytes
    cpu_quota: int | None                  # limits.cpu as CFS quota (us per 100 ms period)
    cpu_shares: int | None                 # requests.cpu as cpu.shares
    hostname: str
    labels: tuple[tuple[str, str], ...]
    log: Path | None = None                # the container's log file (CRI format, as the kubelet keeps it)

    def run_args(self) -> list[str]:
        """The arguments of ``podman run`` that realize the plan (after ``run``)."""
        args = ["--detach", "--pull", "never", "--name", self.name, "--network", f"ns:/run/netns/{self.netns}",
                "--hostname", self.hostname, "--log-driver", "k8s-file"]
        if self.log is not None:
            args += ["--log-opt", f"path={self.log}"]
        for key, value in self.labels:
            args += ["--label", f"{key}={value}"]
        if self.user is not None:
            args += ["--user", self.user]
        if self.fs_group is not None:
            args += ["--group-add", str(self.fs_group)]
        args += [w for cap in self.cap_drop for w in ("--cap-drop", cap)]
        args += [w for cap in self.cap_add for w in ("--cap-add", cap)]
        if self.no_new_privileges:
            args += ["--security-opt", "no-new-privileges"]
        if self.read_only:
            args += ["--read-only"]
        if self.privileged:
            args += ["--privileged"]
        if self.memory is not None:
            args += ["--memory", str(self.memory)]
        if self.cpu_quota is not None:
            args += ["--cpu-period", "100000", "--cpu-quota", str(self.cpu_quota)]
        if self.cpu_shares is not None:
            args += ["--cpu-shares", str(self.cpu_shares)]
        for key, value in self.env:
            args += ["--env", f"{key}={value}"]
        for mount in self.mounts:
            args += ["--volume", f"{mount.source}:{mount.target}:{'ro' if mount.read_only else 'rw'}"]
        if self.entrypoint is not None:
            args += ["--entrypoint", json.dumps(list(self.entrypoint))]
        args.append(self.image)
        if self.args is not None:   # command without args runs no CMD: podman drops it with --entrypoint
            args += list(self.args)
        return args

    def describe(self) -> str:
        bits = [f"user {self.user or '(image)'}", f"caps -{','.join(self.cap_drop) or '-'}"
                + (f" +{','.join(self.cap_add)}" if self.cap_add else "")]
        if self.no_new_privileges:
            bits.append("no-new-privileges")
        if self.read_only:
            bits.append("read-only root")
        limits = [f"memory {self.memory}"] if self.memory else []
        limits += [f"cpu quota {self.cpu_quota}/100000"] if self.cpu_quota else []
        limits += [f"cpu.shares {self.cpu_shares}"] if self.cpu_shares else []
        bits.append("limits: " + (", ".join(limits) if limits else "none (resources: {})"))
        return "; ".join(bits)


# ---- compose (pure) ------------------------------------------------------------------------------

def container_env(container: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, str]:
    """The environment the container declares, ``fieldRef``s resolved from ``fields`` (pod field paths)."""
    env: dict[str, str] = {}
    for index, var in enumerate(container.get("env") or []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = ((var.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if ref is None:
            source = next(iter(var.get("valueFrom") or {"(nothing)": None}))
            raise ContainerSpecError(f"containers[{container.get('name')}].env[{index}] ({var.get('name')}):"
                                     f" valueFrom.{source} is not supported locally (only value and fieldRef)")
        env[var["name"]] = fields.get(ref, "")
    return env


def _cpu_millis(value: Any) -> int:
    from netbind.api.quantity import Quantity

    return Quantity.parse(value).milli_value()


def _bytes(value: Any) -> int:
    from netbind.api.quantity import Quantity

    return Quantity.parse(value).value()


def cgroup_settings(resources: Mapping[str, Any]) -> dict[str, int | None]:
    """The kubelet's cgroup v1 settings for a container's resources: limits.memory -> memory limit,
    limits.cpu -> CFS quota per 100 ms, requests.cpu -> cpu.shares (1024 per core, at least 2);
    requests.memory sets nothing."""
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    cpu_request = requests.get("cpu", limits.get("cpu"))   # a limit alone is also the request
    return {
        "memory": _bytes(limits["memory"]) if "memory" in limits else None,
        "cpu_quota": max(1000, _cpu_millis(limits["cpu"]) * 100) if "cpu" in limits else None,
        "cpu_shares": max(2, _cpu_millis(cpu_request) * 1024 // 1000) if cpu_request is not None else None,
    }


def compose(container: Mapping[str, Any], pod_spec: Mapping[str, Any], *, image: str, netns: str,
            volume_dirs: Mapping[str, Path], pod_name: str, fields: Mapping[str, str],
            log: Path | None = None) -> ContainerPlan:
    """The container as the kubelet would run it. ``volume_dirs`` maps pod volume names to host
    directories (emptyDir and the downward-API volume); ``fields`` gives the pod's field paths."""
    name = container["name"]
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    mounts = []
    for index, mount in enumerate(container.get("volumeMounts") or []):
        volume = volumes.get(mount["name"])
        where = f"containers[{name}].volumeMounts[{index}] ({mount['name']})"
        if volume is None:
            raise ContainerSpecError(f"{where}: no pod volume of that name")
        kinds = set(volume) - {"name"}
        if not kinds & {"emptyDir", "downwardAPI"} or mount["name"] not in volume_dirs:
            raise ContainerSpecError(f"{where}: volume kind {', '.join(sorted(kinds)) or '(none)'} is not"
                                     " supported locally (emptyDir and downwardAPI are)")
        source = volume_dirs[mount["name"]]
        if mount.get("subPath"):
            sub = Path(mount["subPath"])
            if sub.is_absolute() or ".." in sub.parts:
                raise ContainerSpecError(f"{where}: subPath {mount['subPath']!r} must be a relative path"
                                         " inside the volume")
            source = source / sub
        read_only = bool(mount.get("readOnly")) or "downwardAPI" in volume   # the kubelet mounts it ro
        mounts.append(Mount(source, mount["mountPath"], read_only, mount["name"]))

    pod_security = pod_spec.get("securityContext") or {}
    security = container.get("securityContext") or {}
    uid = security.get("runAsUser", pod_security.get("runAsUser"))
    gid = security.get("runAsGroup", pod_security.get("runAsGroup"))
    if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) and uid == 0:
        raise ContainerSpecError(f"containers[{name}].securityContext: runAsNonRoot with runAsUser 0"
                                 " (the kubelet refuses to start it)")
    user = None if uid is None else (f"{uid}:{gid}" if gid is not None else str(uid))
    caps = security.get("capabilities") or {}
    cgroup = cgroup_settings(container.get("resources") or {})
    return ContainerPlan(
        name=f"{netns}-{name}", container=name, image=image, netns=netns,
        entrypoint=tuple(container["command"]) if container.get("command") else None,
        args=tuple(container["args"]) if container.get("args") else None,
        env=tuple(container_env(container, fields).items()), mounts=tuple(mounts), user=user,
        fs_group=pod_security.get("fsGroup"), cap_drop=tuple(caps.get("drop") or ()),
        cap_add=tuple(caps.get("add") or ()),
        no_new_privileges=security.get("allowPrivilegeEscalation") is False,
        read_only=bool(security.get("readOnlyRootFilesystem")), privileged=bool(security.get("privileged")),
        memory=cgroup["memory"], cpu_quota=cgroup["cpu_quota"], cpu_shares=cgroup["cpu_shares"],
        hostname=pod_name[:63], labels=((POD_LABEL, netns), (CONTAINER_LABEL, name)), log=log)


# ---- apply -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ContainerRecord:
    name: str          # podman's
    container: str     # the pod's
    image: str
    pid: int           # the container's first process, on the host
    starttime: int
    log: Path | None = None

    def alive(self) -> bool:
        return procs.alive(self.pid, self.starttime)

    def logs(self, lines: int = 15) -> str:
        return log_tail(self.name, self.log, lines)


def log_tail(name: str, log: Path | None, lines: int = 15) -> str:
    """The last lines the container wrote. Read from its k8s-file ourselves: podman 4.3's ``logs --tail``
    drops a line that conmon split into a partial ("P") record and an empty final one."""
    if log is None or not log.exists():
        return _podman.container_logs(name, lines)
    text = cri_log_text(log.read_text(errors="replace"))
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def _prepare_mount(mount: Mount, fs_group: int | None) -> None:
    # emptyDir (and its subPath) exist before the container starts, writable by its user
    mount.source.mkdir(parents=True, exist_ok=True)
    if mount.read_only:
        return
    os.chmod(mount.source, EMPTYDIR_MODE)
    if fs_group is not None:
        os.chown(mount.source, -1, fs_group)


def start(journal, plan: ContainerPlan, timeout: float = 60) -> ContainerRecord:
    """``podman run`` the plan, recorded in ``journal`` first; a failure removes the container again."""
    for mount in plan.mounts:
        _prepare_mount(mount, plan.fs_group)
    if plan.log is not None:
        plan.log.parent.mkdir(parents=True, exist_ok=True)
    entry = journal.intend("container", plan.name, container=plan.container, image=plan.image)

    def fail(why: str) -> ContainerError:
        logs = log_tail(plan.name, plan.log) if _podman.container_state(plan.name) else ""
        journal.undo(since=journal.entries.index(entry))
        return ContainerError(f"container {plan.container} (image {plan.image}) {why}"
                              + (f"\n--- {plan.container} log ---\n{logs}" if logs and logs != "(no output)" else ""))

    try:
        _podman.run("run", *plan.run_args(), timeout=timeout)
    except _podman.PodmanError as exc:
        raise fail(f"failed to start: {exc.stderr or exc}") from None
    state = _podman.container_state(plan.name) or {}
    pid = int(state.get("Pid") or 0)
    starttime = procs.starttime_of(pid) if pid else None
    if not state.get("Running") or starttime is None:
        raise fail(f"exited at once (exit code {state.get('ExitCode', '?')})")
    record = ContainerRecord(plan.name, plan.container, plan.image, pid, starttime, plan.log)
    journal.created(entry, pid=pid, starttime=starttime, id=state.get("Id", ""))
    return record


def undo_container(attrs: dict[str, Any]) -> None:
    _podman.remove_container(attrs["name"])


def cri_log_text(raw: str) -> str:
    """A CRI log file ("<time> <stream> <P|F> <text>" per line) as the program wrote it."""
    out = []
    for line in raw.splitlines():
        parts = line.split(" ", 3)
        if len(parts) >= 3 and parts[1] in ("stdout", "stderr") and parts[2] in ("P", "F"):
            text = parts[3] if len(parts) == 4 else ""
            out.append(text if parts[2] == "F" else text + "\0")
        else:
            out.append(line)
    return "\n".join(out).replace("\0\n", "") + ("\n" if out else "")


def list_containers(netns: str) -> list[str]:
    """The names of podman's containers labelled with this pod (running or not)."""
    proc = _podman.run("ps", "--all", "--filter", f"label={POD_LABEL}={netns}", "--format", "{{.Names}}",
                       check=False)
    return [line for line in (proc.stdout or "").split() if line]
