"""The runtime side of CNI, as libcni does it: run network configuration lists of plugins.

``CNIExecutor`` finds plugin binaries on a CNI path, runs a list's plugins in order for ADD
(threading each result into the next plugin's ``prevResult``), in reverse for DEL, and CHECK,
STATUS and GC; it caches each ADD result (for DEL and CHECK, which need it) under ``cache_dir``.
Unlike libcni, a failing ADD undoes itself: the plugins already run (and the failing one) get a
DEL, so no half-wired namespace remains. ``delegate_nad`` plays Multus for one
NetworkAttachmentDefinition config (its ``cni-args`` become ``args.cni`` of every plugin).
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from netbind.cni._types import (
    ERR_INTERNAL,
    ERR_INVALID_ENVIRONMENT_VARIABLES,
    ERR_INVALID_NETWORK_CONFIG,
    ERR_TRY_AGAIN_LATER,
    ERR_UNKNOWN_CONTAINER,
    SUPPORTED_VERSIONS,
    CNIError,
    parse_version,
    version_at_least,
)

DEFAULT_CNI_PATH = ("/opt/cni/bin", "/usr/lib/cni")
DEFAULT_CACHE_DIR = "/var/lib/cni/netbind"
DEFAULT_TIMEOUT = 60.0
_CACHE_KIND = "netbindCNICacheV1"


class PluginError(CNIError):
    """A plugin failed (its CNI error, or it could not be run); names the plugin and command."""

    def __init__(self, code: int, msg: str, details: str = "", *, plugin: str = "",
                 command: str = "", stderr: str = "") -> None:
        super().__init__(code, msg, details)
        self.plugin, self.command, self.stderr = plugin, command, stderr

    def __str__(self) -> str:
        where = f"plugin {self.plugin!r} {self.command}: " if self.plugin else ""
        text = f"{where}{self.msg} (code {self.code})"
        if self.details:
            text += f": {self.details}"
        return text


@dataclass
class RuntimeConf:
    """Who the attachment is for: the (container, ifname) pair and what else the runtime passes."""

    container_id: str
    netns: str
    ifname: str
    args: Sequence[tuple[str, str]] = ()          # CNI_ARGS, e.g. [("K8S_POD_NAME", "p")]
    capability_args: Mapping[str, object] = field(default_factory=dict)  # -> runtimeConfig

    def cni_args(self) -> str:
        return ";".join(f"{k}={v}" for k, v in self.args)


def _invalid(msg: str) -> CNIError:
    return CNIError(ERR_INVALID_NETWORK_CONFIG, msg)


def normalize_conflist(config: Mapping | str | bytes) -> dict:
    """A network configuration list from a list, a single plugin config, or their JSON text.

    Checks ``name``, ``plugins[*].type`` and resolves the version: the highest entry of
    ``cniVersions`` (CNI 1.1) that we support, else ``cniVersion``.
    """
    if isinstance(config, (str, bytes)):
        try:
            config = json.loads(config)
        except ValueError as exc:
            raise CNIError(6, f"network configuration is not valid JSON: {exc}") from None
    if not isinstance(config, Mapping):
        raise _invalid("network configuration must be a JSON object")
    conf = copy.deepcopy(dict(config))
    if "plugins" not in conf:
        if not conf.get("type"):
            raise _invalid("network configuration needs either 'plugins' (a list) or 'type'")
        conf = {"cniVersion": conf.get("cniVersion", ""), "name": conf.get("name", ""),
                "plugins": [conf]}
    if not conf.get("name") or not isinstance(conf["name"], str):
        raise _invalid("network configuration is missing 'name'")
    plugins = conf.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise _invalid(f"network {conf['name']!r}: 'plugins' must be a non-empty list")
    for i, plugin in enumerate(plugins):
        if not isinstance(plugin, dict) or not plugin.get("type"):
            raise _invalid(f"network {conf['name']!r}: plugins[{i}] is missing 'type'")
    versions = conf.get("cniVersions")
    if isinstance(versions, list) and versions:
        usable = [v for v in versions if v in SUPPORTED_VERSIONS]
        if not usable:
            raise CNIError(1, f"network {conf['name']!r}: none of cniVersions {versions} is "
                              f"supported (we support {list(SUPPORTED_VERSIONS)})")
        conf["cniVersion"] = max(usable, key=parse_version)
    version = conf.get("cniVersion") or "0.1.0"
    if version not in SUPPORTED_VERSIONS:
        raise CNIError(1, f"network {conf['name']!r}: cniVersion {version!r} is not supported "
                          f"(use one of {list(SUPPORTED_VERSIONS)})")
    conf["cniVersion"] = version
    return conf


def nad_conflist(nad_config: str | bytes | Mapping, cni_args: Mapping | None = None) -> dict:
    """The conflist Multus would run for a NAD's ``spec.config`` with a selection's ``cni-args``."""
    if isinstance(nad_config, (str, bytes)) and not nad_config.strip():
        raise _invalid("the NetworkAttachmentDefinition has an empty spec.config; netbind needs "
                       "the CNI configuration inline")
    conf = normalize_conflist(nad_config)
    if cni_args:
        for plugin in conf["plugins"]:
            args = plugin.setdefault("args", {})
            if not isinstance(args, dict):
                raise _invalid(f"plugin {plugin['type']!r}: 'args' must be an object")
            args["cni"] = {**(args.get("cni") or {}), **dict(cni_args)}
    return conf


class CNIExecutor:
    """Run CNI plugins for a runtime (the local runtime uses it to play Multus)."""

    def __init__(self, cni_path: Iterable[str] = DEFAULT_CNI_PATH,
                 cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, *,
                 timeout: float = DEFAULT_TIMEOUT, timeouts: Mapping[str, float] | None = None,
                 plugin_netns: str | None = None, env: Mapping[str, str] | None = None) -> None:
        """``timeouts`` maps plugin type to seconds (default ``timeout``). ``plugin_netns`` runs
        the plugins inside that namespace (a name under /run/netns or a path) instead of ours,
        which keeps host-side links of tests out of the root namespace."""
        self.cni_path = [str(p) for p in cni_path]
        self.cache_dir = Path(cache_dir)
        self.timeout = timeout
        self.timeouts = dict(timeouts or {})
        self.plugin_netns = plugin_netns
        self.env = dict(os.environ if env is None else env)

    # --- plugins -------------------------------------------------------------------------
    def find_plugin(self, plugin_type: str) -> str:
        if "/" in plugin_type or plugin_type in (".", ".."):
            raise _invalid(f"plugin type {plugin_type!r} must be a file name, not a path")
        for directory in self.cni_path:
            candidate = os.path.join(directory, plugin_type)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        raise PluginError(ERR_INVALID_NETWORK_CONFIG,
                          f"failed to find plugin {plugin_type!r} in path {self.cni_path}",
                          plugin=plugin_type)

    def _argv(self, path: str) -> list[str]:
        if not self.plugin_netns:
            return [path]
        if "/" not in self.plugin_netns:
            return ["ip", "netns", "exec", self.plugin_netns, path]
        return ["nsenter", f"--net={self.plugin_netns}", path]

    def invoke(self, plugin_type: str, command: str, netconf: Mapping,
               rt: RuntimeConf | None = None) -> dict | None:
        """Run one plugin once; returns its decoded stdout (ADD, VERSION) or None."""
        path = self.find_plugin(plugin_type)
        env = dict(self.env, CNI_COMMAND=command, CNI_PATH=os.pathsep.join(self.cni_path))
        for var in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS"):
            env.pop(var, None)
        if rt is not None and command in ("ADD", "DEL", "CHECK"):
            env.update(CNI_CONTAINERID=rt.container_id, CNI_NETNS=rt.netns, CNI_IFNAME=rt.ifname,
                       CNI_ARGS=rt.cni_args())
        timeout = self.timeouts.get(plugin_type, self.timeout)
        try:
            proc = subprocess.run(self._argv(path), input=json.dumps(netconf).encode(),
                                  env=env, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise PluginError(ERR_TRY_AGAIN_LATER, f"timed out after {timeout:g} s",
                              plugin=plugin_type, command=command) from None
        except OSError as exc:
            raise PluginError(ERR_INTERNAL, f"cannot run {path}: {exc}", plugin=plugin_type,
                              command=command) from None
        stdout = proc.stdout.decode(errors="replace").strip()
        stderr = proc.stderr.decode(errors="replace").strip()
        if proc.returncode != 0:
            try:
                error = json.loads(stdout)
            except ValueError:
                error = None
            if isinstance(error, dict) and "code" in error:
                raise PluginError(int(error.get("code") or ERR_INTERNAL), str(error.get("msg", "")),
                                  str(error.get("details", "") or ""), plugin=plugin_type,
                                  command=command, stderr=stderr)
            raise PluginError(ERR_INTERNAL, f"exited with status {proc.returncode}",
                              (stderr or stdout)[-2000:], plugin=plugin_type, command=command,
                              stderr=stderr)
        if not stdout:
            return None
        try:
            return json.loads(stdout)
        except ValueError:
            raise PluginError(ERR_INTERNAL, "printed something that is not JSON", stdout[-2000:],
                              plugin=plugin_type, command=command, stderr=stderr) from None

    def version_info(self, plugin_type: str) -> dict:
        return self.invoke(plugin_type, "VERSION", {"cniVersion": SUPPORTED_VERSIONS[-1]}) or {}

    @staticmethod
    def _plugin_conf(plugin: Mapping, conflist: Mapping, prev_result: Mapping | None,
                     rt: RuntimeConf | None) -> dict:
        conf = copy.deepcopy(dict(plugin))
        conf["name"] = conflist["name"]
        conf["cniVersion"] = conflist["cniVersion"]
        if prev_result is not None:
            conf["prevResult"] = prev_result
        else:
            conf.pop("prevResult", None)
        if rt is not None:  # runtimeConfig carries only the capabilities the plugin declares
            caps = plugin.get("capabilities") or {}
            runtime = {k: v for k, v in rt.capability_args.items() if caps.get(k)}
            if runtime:
                conf["runtimeConfig"] = runtime
        return conf

    # --- cache ---------------------------------------------------------------------------
    def _cache_path(self, network: str, rt: RuntimeConf) -> Path:
        return self.cache_dir / "results" / f"{network}-{rt.container_id}-{rt.ifname}"

    def _cache_entries(self, network: str) -> list[dict]:
        directory = self.cache_dir / "results"
        entries = []
        for path in sorted(directory.glob(f"{network}-*")) if directory.is_dir() else ():
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if entry.get("kind") == _CACHE_KIND and entry.get("networkName") == network:
                entries.append(entry)
        return entries

    def cached_result(self, conflist: Mapping, rt: RuntimeConf) -> dict | None:
        """The result of the last successful ADD of ``conflist`` for ``rt``, if cached."""
        path = self._cache_path(normalize_conflist(conflist)["name"], rt)
        try:
            return json.loads(path.read_text()).get("result")
        except FileNotFoundError:
            return None

    def _write_cache(self, conf: dict, rt: RuntimeConf, result: dict | None) -> None:
        path = self._cache_path(conf["name"], rt)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        entry = {"kind": _CACHE_KIND, "containerId": rt.container_id, "ifName": rt.ifname,
                 "networkName": conf["name"], "netns": rt.netns, "cniArgs": list(map(list, rt.args)),
                 "capabilityArgs": dict(rt.capability_args), "config": conf, "result": result}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(entry))
        tmp.replace(path)

    # --- list operations -----------------------------------------------------------------
    def add_network_list(self, conflist: Mapping | str, rt: RuntimeConf) -> dict:
        """ADD every plugin in order; returns the last result. Undoes itself on failure."""
        conf = normalize_conflist(conflist)
        if not os.path.exists(rt.netns):
            raise CNIError(ERR_UNKNOWN_CONTAINER, f"network namespace {rt.netns!r} does not exist")
        if self._cache_path(conf["name"], rt).exists():
            raise CNIError(ERR_INVALID_ENVIRONMENT_VARIABLES,
                           f"network {conf['name']!r} is already attached to container "
                           f"{rt.container_id!r} as {rt.ifname!r}; DEL it before adding it again")
        result: dict | None = None
        for i, plugin in enumerate(conf["plugins"]):
            try:
                result = self.invoke(plugin["type"], "ADD",
                                     self._plugin_conf(plugin, conf, result, rt), rt)
            except CNIError as exc:
                self._undo(conf, i, result, rt, exc)
                raise
        result = result if result is not None else {"cniVersion": conf["cniVersion"]}
        self._write_cache(conf, rt, result)
        return result

    def _undo(self, conf: dict, failed: int, result: dict | None, rt: RuntimeConf,
              exc: CNIError) -> None:
        prev = result if version_at_least(conf["cniVersion"], "0.4.0") else None
        for plugin in reversed(conf["plugins"][: failed + 1]):
            try:
                self.invoke(plugin["type"], "DEL", self._plugin_conf(plugin, conf, prev, rt), rt)
            except CNIError as undo_exc:
                exc.add_note(f"while undoing the failed ADD: {undo_exc}")

    def del_network_list(self, conflist: Mapping | str, rt: RuntimeConf) -> None:
        """DEL every plugin in reverse order (idempotent); drops the cached result."""
        conf = normalize_conflist(conflist)
        cache = self._cache_path(conf["name"], rt)
        prev = None
        if version_at_least(conf["cniVersion"], "0.4.0") and cache.exists():
            try:
                prev = json.loads(cache.read_text()).get("result")
            except (OSError, ValueError):
                prev = None
        for plugin in reversed(conf["plugins"]):
            self.invoke(plugin["type"], "DEL", self._plugin_conf(plugin, conf, prev, rt), rt)
        cache.unlink(missing_ok=True)

    def check_network_list(self, conflist: Mapping | str, rt: RuntimeConf) -> None:
        """CHECK every plugin against the cached ADD result (cniVersion >= 0.4.0)."""
        conf = normalize_conflist(conflist)
        if not version_at_least(conf["cniVersion"], "0.4.0"):
            raise CNIError(1, f"network {conf['name']!r}: cniVersion {conf['cniVersion']} does "
                              "not support CHECK (needs 0.4.0 or later)")
        if conf.get("disableCheck"):
            return
        if not os.path.exists(rt.netns):
            raise CNIError(ERR_UNKNOWN_CONTAINER, f"network namespace {rt.netns!r} does not exist")
        prev = self.cached_result(conf, rt)
        if prev is None:
            raise CNIError(ERR_INVALID_ENVIRONMENT_VARIABLES,
                           f"network {conf['name']!r} has no cached ADD result for container "
                           f"{rt.container_id!r} ifname {rt.ifname!r}: was it added?")
        for plugin in conf["plugins"]:
            self.invoke(plugin["type"], "CHECK", self._plugin_conf(plugin, conf, prev, rt), rt)

    def status_network_list(self, conflist: Mapping | str) -> None:
        """STATUS of every plugin (CNI 1.1; older configs are assumed ready)."""
        conf = normalize_conflist(conflist)
        if not version_at_least(conf["cniVersion"], "1.1.0"):
            return
        for plugin in conf["plugins"]:
            self.invoke(plugin["type"], "STATUS", self._plugin_conf(plugin, conf, None, None))

    def gc_network_list(self, conflist: Mapping | str,
                        valid_attachments: Iterable[Mapping[str, str]]) -> None:
        """DEL cached attachments of this network that are not valid, then GC every plugin."""
        conf = normalize_conflist(conflist)
        valid = [{"containerID": a["containerID"], "ifname": a["ifname"]} for a in valid_attachments]
        keep = {(a["containerID"], a["ifname"]) for a in valid}
        errors = []
        for entry in self._cache_entries(conf["name"]):
            if (entry["containerId"], entry["ifName"]) in keep:
                continue
            rt = RuntimeConf(entry["containerId"], entry.get("netns", ""), entry["ifName"],
                             [tuple(a) for a in entry.get("cniArgs", [])],
                             entry.get("capabilityArgs") or {})
            try:
                self.del_network_list(entry.get("config") or conf, rt)
            except CNIError as exc:
                errors.append(exc)
        if version_at_least(conf["cniVersion"], "1.1.0") and not conf.get("disableGC"):
            for plugin in conf["plugins"]:
                netconf = self._plugin_conf(plugin, conf, None, None)
                netconf["cni.dev/valid-attachments"] = valid
                try:
                    self.invoke(plugin["type"], "GC", netconf)
                except CNIError as exc:
                    errors.append(exc)
        if errors:
            raise errors[0]

    # --- Multus-like delegation ----------------------------------------------------------
    @staticmethod
    def _multus_runtime(ifname: str, netns: str, container_id: str, mac: str | None,
                        pod_namespace: str, pod_name: str, pod_uid: str,
                        runtime_config: Mapping | None) -> RuntimeConf:
        args = [("IgnoreUnknown", "true"), ("K8S_POD_NAMESPACE", pod_namespace),
                ("K8S_POD_NAME", pod_name), ("K8S_POD_INFRA_CONTAINER_ID", container_id),
                ("K8S_POD_UID", pod_uid)]
        caps = dict(runtime_config or {})
        if mac:
            args.append(("MAC", mac))
            caps["mac"] = mac
        return RuntimeConf(container_id, netns, ifname, args, caps)

    def delegate_nad(self, nad_config: str | Mapping, ifname: str, cni_args: Mapping | None,
                     netns: str, container_id: str, *, mac: str | None = None,
                     pod_namespace: str = "", pod_name: str = "", pod_uid: str = "",
                     runtime_config: Mapping | None = None) -> dict:
        """ADD a NAD's config as Multus does for a selection element; returns the result."""
        conf = nad_conflist(nad_config, cni_args)
        rt = self._multus_runtime(ifname, netns, container_id, mac, pod_namespace, pod_name,
                                  pod_uid, runtime_config)
        return self.add_network_list(conf, rt)

    def undelegate_nad(self, nad_config: str | Mapping, ifname: str, cni_args: Mapping | None,
                       netns: str, container_id: str, *, mac: str | None = None,
                       pod_namespace: str = "", pod_name: str = "", pod_uid: str = "",
                       runtime_config: Mapping | None = None) -> None:
        """DEL what ``delegate_nad`` added (same arguments)."""
        conf = nad_conflist(nad_config, cni_args)
        rt = self._multus_runtime(ifname, netns, container_id, mac, pod_namespace, pod_name,
                                  pod_uid, runtime_config)
        self.del_network_list(conf, rt)


def default_cni_path() -> list[str]:
    """``$CNI_PATH`` if set, else the usual directories that exist (/opt/cni/bin, /usr/lib/cni)."""
    env = os.environ.get("CNI_PATH")
    if env:
        return [p for p in env.split(os.pathsep) if p]
    return [p for p in DEFAULT_CNI_PATH if os.path.isdir(p)] or list(DEFAULT_CNI_PATH)


def which_plugin_dirs(*names: str) -> list[str]:
    """Directories holding our console-script plugins (next to the running interpreter)."""
    dirs = []
    for name in names:
        found = shutil.which(name)
        if found and os.path.dirname(found) not in dirs:
            dirs.append(os.path.dirname(found))
    return dirs


__all__ = ["CNIExecutor", "PluginError", "RuntimeConf", "default_cni_path", "nad_conflist",
           "normalize_conflist", "which_plugin_dirs"]
