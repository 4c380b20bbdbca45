"""The launcher pod's hook sidecars: as containers of their images, or as host processes.

``choose`` decides per sidecar container, before anything is created: a container when its image
(or the image the image map names for it) is in the local podman store, else the image map's host
command; ``--sidecars container|process`` ($NETBIND_SIDECARS) forces either. Every choice carries
the reason ``up`` prints. ``start`` runs them in the pod (``netbind.node.containers`` for
containers, the pod's process spec for processes); ``await_hook_sockets`` is virt-launcher's
collection of their sockets, watching each sidecar so that one that dies is named at once.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from netbind.controller.pod import PLUGIN_SOCKETS_DIR, PLUGIN_SOCKETS_VOLUME
from netbind.hooks._app import PLUGIN_SOCKET_ENV   # where netbind.hooks.App serves MutateDomain
from netbind.node import containers, procs, sandbox
from netbind.node.images import ImageMap, ImageMapError, SidecarImage

ENV_VAR = "NETBIND_SIDECARS"
MODES = ("auto", "container", "process")
HOOK_SOCKETS_VOLUME = "hook-sidecar-sockets"
# On a cluster the admin's admission policy injects a Plugin's sidecar into the launcher pod; this
# annotation on the Plugin names the image netbind injects in its place (resolved by the image map)
PLUGIN_SIDECAR_IMAGE_ANNOTATION = "netbind.io/sidecar-image"


class SidecarError(RuntimeError):
    """A sidecar could not be chosen, started or collected; ``details`` has its log."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.message, self.details = message, details


def mode_of(value: str | None) -> str:
    mode = value or os.environ.get(ENV_VAR) or "auto"
    if mode not in MODES:
        raise SidecarError(f"--sidecars / ${ENV_VAR}: {mode!r} is not one of {', '.join(MODES)}")
    return mode


@dataclass(frozen=True)
class SidecarChoice:
    container: str                     # the pod's container name (hook-sidecar-N)
    image: str                         # the image the pod names
    kind: str                          # "container" or "process"
    why: str
    local_image: str | None = None     # kind container: the local image it runs
    process: SidecarImage | None = None

    def describe(self) -> str:
        what = (f"container of {self.local_image}" if self.kind == "container"
                else f"host process {' '.join(self.process.argv)}")
        return f"{self.container}: image {self.image} -> {what} [{self.why}]"


def _build_hint(local_image: str) -> str:
    from netbind.images import IMAGES

    name = next((s.name for s in IMAGES.values() if s.tag == local_image), None)
    return f"`netbind image build {name}`" if name else f"build or `podman load` {local_image}"


def choose(container: Mapping[str, Any], images: ImageMap, mode: str, present: Callable[[str], bool],
           containers_unavailable: str | None) -> SidecarChoice:
    """How one sidecar container runs here (pure apart from ``present``, the local store lookup)."""
    name, ref = container["name"], container["image"]
    mapped = images.sidecar_image(ref)
    if mode == "process":
        no_container = "--sidecars process"
    elif containers_unavailable:
        no_container = f"containers cannot run here: {containers_unavailable}"
    else:
        if present(ref):
            return SidecarChoice(name, ref, "container", "the image is in the local image store", ref)
        if mapped and present(mapped[0]):
            return SidecarChoice(name, ref, "container", f"image map {mapped[1]}; in the local image store",
                                 mapped[0])
        no_container = (f"neither {ref} nor {mapped[0]} (image map) is in the local image store;"
                        f" {_build_hint(mapped[0])} runs it as a container" if mapped else
                        f"{ref} is not in the local image store and the image map names no local image for it")
    if mode == "container":
        raise SidecarError(f"sidecar {name} (image {ref}) cannot run as a container: {no_container}"
                           " (or run with --sidecars auto|process to use the image map's host command)")
    try:
        process = images.sidecar(ref)
    except ImageMapError as exc:
        raise SidecarError(f"sidecar {name} (image {ref}): {exc}"
                           + (f"\n(as a container: {no_container})" if mode == "auto" else "")) from None
    return SidecarChoice(name, ref, "process", f"{no_container}; image map {process.source}", process=process)


def choose_all(pod_containers: Sequence[Mapping[str, Any]], images: ImageMap, mode: str | None = None
               ) -> list[SidecarChoice]:
    from netbind import _podman

    mode = mode_of(mode)
    unavailable = _podman.unavailable() if mode != "process" else None
    known: dict[str, bool] = {}
    if mode != "process" and not unavailable:
        # each lookup is a podman exec (~50 ms): every one a choice may need, at once
        candidates = {c["image"] for c in pod_containers}
        candidates |= {m[0] for m in map(images.sidecar_image, list(candidates)) if m}
        if len(candidates) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(len(candidates), 4)) as pool:
                known.update(zip(candidates, pool.map(_podman.image_exists, candidates)))

    def present(ref: str) -> bool:
        if ref not in known:
            known[ref] = _podman.image_exists(ref)
        return known[ref]

    return [choose(c, images, mode, present, unavailable) for c in pod_containers]


def inject_plugin_sidecars(pod_manifest: dict, plugin_sockets: Mapping[str, str],
                           images_by_plugin: Mapping[str, str]) -> list[str]:
    """Stand in for the admission policy that injects each Plugin's sidecar: a container
    ``plugin-sidecar-<plugin>`` of the named image (as KubeVirt's own e2e policy writes it: no
    privilege escalation, non-root, all capabilities dropped), the plugin's socket directory mounted
    from ``kubevirt-plugin-sockets`` by subPath, and ``$NETBIND_PLUGIN_SOCKET`` set to the Plugin's
    socketPath. ``plugin_sockets``: plugin -> socketPath; returns the container names added."""
    spec = pod_manifest["spec"]
    volumes = spec.setdefault("volumes", [])
    if plugin_sockets and not any(v["name"] == PLUGIN_SOCKETS_VOLUME for v in volumes):
        volumes.append({"name": PLUGIN_SOCKETS_VOLUME, "emptyDir": {}})
    added = []
    for plugin, socket_path in sorted(plugin_sockets.items()):
        name = f"plugin-sidecar-{plugin}"
        spec["containers"].append({
            "name": name, "image": images_by_plugin[plugin], "imagePullPolicy": "IfNotPresent",
            "env": [{"name": PLUGIN_SOCKET_ENV, "value": socket_path}],
            "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                "seccompProfile": {"type": "RuntimeDefault"}, "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": PLUGIN_SOCKETS_VOLUME, "mountPath": f"{PLUGIN_SOCKETS_DIR}/{plugin}/",
                              "subPath": plugin}],
        })
        added.append(name)
    return added


def sidecar_containers(pod_manifest: Mapping[str, Any]) -> list[dict]:
    """The pod's containers netbind runs beside compute: hook sidecars and injected Plugin sidecars."""
    return [c for c in pod_manifest["spec"]["containers"] if c["name"].startswith(("hook-sidecar-", "plugin-sidecar-"))]


def serves_hook_api(name: str) -> bool:
    return name.startswith("hook-sidecar-")


def hook_api_sidecars(running: Sequence["RunningSidecar"]) -> list["RunningSidecar"]:
    """The sidecars virt-launcher collects in its hooks directory (Plugin sidecars are not)."""
    return [r for r in running if serves_hook_api(r.name)]


def plugin_socket_host_path(pod: sandbox.Pod, launcher_path: str) -> Path:
    """Where the launcher's /var/run/kubevirt-plugin/... is on this machine: the pod's volume."""
    relative = os.path.relpath(launcher_path, PLUGIN_SOCKETS_DIR)
    if relative.startswith(".."):
        return Path(launcher_path)   # outside the volume: the launcher's path check names it
    return plugin_sockets_dir(pod) / relative


def plugin_sockets_dir(pod: sandbox.Pod) -> Path:
    return pod.names.directory / "plugin"


# ---- running them ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunningSidecar:
    choice: SidecarChoice
    pid: int
    starttime: int
    log: Callable[[], str]
    detail: str = ""          # containers: the security and limits they run with

    @property
    def name(self) -> str:
        return self.choice.container

    def alive(self) -> bool:
        return procs.alive(self.pid, self.starttime)

    def log_tail(self) -> str:
        kind = "container" if self.choice.kind == "container" else "process"
        return f"--- {self.name} ({kind}, image {self.choice.image}) log, last lines ---\n{self.log()}"


def volume_dirs(pod: sandbox.Pod, pod_spec: Mapping[str, Any]) -> dict[str, Path]:
    """Host directories for the pod's emptyDir and downward-API volumes (a pod shares them)."""
    dirs: dict[str, Path] = {}
    for volume in pod_spec.get("volumes") or []:
        if volume["name"] == HOOK_SOCKETS_VOLUME:
            dirs[volume["name"]] = pod.names.hooks_dir
        elif volume["name"] == PLUGIN_SOCKETS_VOLUME:
            dirs[volume["name"]] = plugin_sockets_dir(pod)   # short: the launcher dials sockets in it
        elif "downwardAPI" in volume:
            dirs[volume["name"]] = pod.names.podinfo_dir
        elif "emptyDir" in volume:
            dirs[volume["name"]] = pod.names.directory / "volumes" / volume["name"]
    return dirs


def start(pod: sandbox.Pod, choices: Sequence[SidecarChoice], pod_manifest: Mapping[str, Any],
          pod_name: str, namespace: str) -> list[RunningSidecar]:
    """The kubelet's part: each sidecar as a container in the pod's netns, or as a process with the
    container's environment, its own sockets subdirectory and, if mounted, /etc/podinfo."""
    spec = pod_manifest["spec"]
    by_name = {c["name"]: c for c in spec["containers"]}
    fields = {"metadata.name": pod_name, "metadata.namespace": namespace}
    running = []
    for choice in choices:
        container = by_name[choice.container]
        if choice.kind == "container":
            try:
                plan = containers.compose(container, spec, image=choice.local_image, netns=pod.netns,
                                          volume_dirs=volume_dirs(pod, spec), pod_name=pod_name, fields=fields,
                                          log=pod.names.logs_dir / f"{choice.container}.log")
                record = containers.start(pod.journal, plan)
            except (containers.ContainerSpecError, containers.ContainerError) as exc:
                raise SidecarError(f"sidecar {exc}" if isinstance(exc, containers.ContainerError)
                                   else f"sidecar {choice.container} (image {choice.image}): {exc}") from None
            running.append(RunningSidecar(choice, record.pid, record.starttime, record.logs, plan.describe()))
            continue
        try:
            env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                   **containers.container_env(container, fields), **choice.process.env}
        except containers.ContainerSpecError as exc:
            raise SidecarError(f"sidecar {choice.container} (image {choice.image}): {exc}") from None
        podinfo = any(m.get("mountPath") == sandbox.PODINFO_TARGET for m in container.get("volumeMounts", []))
        binds = []
        for mount in container.get("volumeMounts", []):
            if mount["name"] == PLUGIN_SOCKETS_VOLUME:
                # a process sees the whole volume at /var/run/kubevirt-plugin (a container gets its
                # subPath only); the sockets land where the launcher looks either way
                root = plugin_sockets_dir(pod)
                (root / mount.get("subPath", "")).mkdir(parents=True, exist_ok=True)
                binds.append(procs.Bind(root, PLUGIN_SOCKETS_DIR))
        process_spec = pod.process_spec(choice.container, choice.process.argv, env=env,
                                        hooks_subdir=choice.container if serves_hook_api(choice.container) else None,
                                        podinfo=podinfo, binds=binds)
        try:
            record = pod.start(process_spec, settle=0)   # await_hook_sockets watches it
        except procs.ProcessError as exc:
            raise SidecarError(f"sidecar {choice.container} ({choice.image}) failed to start",
                               details=str(exc)) from None
        running.append(RunningSidecar(choice, record.pid, record.starttime,
                                      lambda log=record.log: procs.log_tail(log, 15)))
    return running


def _dialable(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def hook_sockets(hooks_dir: Path) -> list[Path]:
    from netbind.launcher.hooks import discover_sockets

    try:
        return discover_sockets(hooks_dir)
    except OSError:
        return []


def await_hook_sockets(pod: sandbox.Pod, running: Sequence[RunningSidecar], timeout: float) -> None:
    """virt-launcher's collection: every sidecar serves a dialable socket, or the sidecar's log says why not."""
    deadline = time.monotonic() + timeout
    while True:
        for sidecar in running:
            if not sidecar.alive():
                raise SidecarError(f"sidecar {sidecar.name} (image {sidecar.choice.image}, {sidecar.choice.kind})"
                                   " exited before it served its hook socket", details=sidecar.log_tail())
        sockets = [p for p in hook_sockets(pod.names.hooks_dir) if _dialable(p)]
        ready = {p.parent.name for p in sockets}
        if len(sockets) >= len(running):
            return
        if time.monotonic() > deadline:
            missing = [s for s in running if s.name not in ready]
            raise SidecarError(
                f"{', '.join(f'{s.name} (image {s.choice.image})' for s in missing) or 'a sidecar'} did not open a"
                f" hook socket under {pod.names.hooks_dir} within {timeout:g} s (virt-launcher: Failed to collect"
                " all expected sidecar hook sockets within given timeout)",
                details="\n".join(s.log_tail() for s in missing))
        time.sleep(0.005)


def recorded(pod: sandbox.Pod) -> list[tuple[str, int, int]]:
    """(container name, pid, starttime) of the pod's started hook sidecars, processes or containers."""
    out = []
    for entry in pod.journal.entries:
        name = entry.attrs.get("container", entry.name) if entry.kind == "container" else entry.name
        if entry.kind in ("process", "container") and serves_hook_api(name) and "pid" in entry.attrs:
            out.append((name, entry.attrs["pid"], entry.attrs["starttime"]))
    return out
