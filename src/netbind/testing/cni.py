"""Drive a CNI plugin binary the way a runtime does (like CNI's testutils).

``cmd_add`` / ``cmd_del`` / ``cmd_check`` / ``cmd_version`` set the CNI environment, feed the
netconf on stdin, and decode stdout: ADD returns a ``Result`` (read from whatever version the
plugin printed), failures raise ``PluginError`` with the plugin's code and message.
``run_plugin`` returns the raw exit code, stdout and stderr for byte-exact assertions.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Mapping

from netbind.cni import Result
from netbind.cni.exec import PluginError


@dataclass(frozen=True)
class PluginRun:
    exit_code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout) if self.stdout.strip() else None


def plugin_path(plugin: str) -> str:
    """A path as is, else the name looked up on PATH (our console scripts sit next to python)."""
    if os.sep in plugin:
        return plugin
    found = shutil.which(plugin) or shutil.which(plugin, path=os.path.dirname(os.sys.executable))
    if not found:
        raise FileNotFoundError(f"CNI plugin {plugin!r} is not on PATH")
    return found


def run_plugin(plugin: str, command: str, netconf: Mapping | str | bytes | None = None, *,
               netns: str = "", ifname: str = "", container_id: str = "",
               cni_args: str = "", cni_path: str = "/opt/cni/bin",
               plugin_netns: str | None = None, env: Mapping[str, str] | None = None,
               timeout: float = 30.0) -> PluginRun:
    """Run ``plugin`` once. Empty env values are left out (to test missing variables)."""
    variables = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
                 "CNI_IFNAME": ifname, "CNI_ARGS": cni_args, "CNI_PATH": cni_path}
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    full_env.update({k: v for k, v in variables.items() if v})
    full_env.update(env or {})
    if isinstance(netconf, Mapping):
        stdin = json.dumps(netconf).encode()
    elif isinstance(netconf, str):
        stdin = netconf.encode()
    else:
        stdin = netconf or b""
    argv = [plugin_path(plugin)]
    if plugin_netns:
        argv = ["ip", "netns", "exec", plugin_netns, *argv]
    proc = subprocess.run(argv, input=stdin, env=full_env, capture_output=True, timeout=timeout)
    return PluginRun(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def _raise_for(plugin: str, command: str, run: PluginRun) -> None:
    if run.exit_code == 0:
        return
    try:
        error = run.json()
    except ValueError:
        error = None
    if isinstance(error, dict) and "code" in error:
        raise PluginError(error["code"], error.get("msg", ""), error.get("details", ""),
                          plugin=plugin, command=command, stderr=run.stderr)
    raise PluginError(999, f"exited {run.exit_code}", run.stderr or run.stdout, plugin=plugin,
                      command=command, stderr=run.stderr)


def cmd_add(plugin: str, netconf, *, netns: str, ifname: str, container_id: str = "nb-test",
            **kwargs) -> Result:
    run = run_plugin(plugin, "ADD", netconf, netns=netns, ifname=ifname,
                     container_id=container_id, **kwargs)
    _raise_for(plugin, "ADD", run)
    return Result.from_dict(run.json())


def cmd_del(plugin: str, netconf, *, netns: str, ifname: str, container_id: str = "nb-test",
            **kwargs) -> None:
    _raise_for(plugin, "DEL", run_plugin(plugin, "DEL", netconf, netns=netns, ifname=ifname,
                                         container_id=container_id, **kwargs))


def cmd_check(plugin: str, netconf, *, netns: str, ifname: str, container_id: str = "nb-test",
              **kwargs) -> None:
    _raise_for(plugin, "CHECK", run_plugin(plugin, "CHECK", netconf, netns=netns, ifname=ifname,
                                           container_id=container_id, **kwargs))


def cmd_version(plugin: str, **kwargs) -> dict:
    run = run_plugin(plugin, "VERSION", b"", **kwargs)
    _raise_for(plugin, "VERSION", run)
    return run.json()


def with_prev_result(netconf: Mapping, result: Result | Mapping) -> dict:
    """``netconf`` plus ``prevResult`` in the netconf's own version (for CHECK and chaining)."""
    conf = dict(netconf)
    version = conf.get("cniVersion", "1.0.0")
    res = result if isinstance(result, Result) else Result.from_dict(dict(result))
    conf["prevResult"] = res.to_dict(version)
    return conf


__all__ = ["PluginRun", "cmd_add", "cmd_check", "cmd_del", "cmd_version", "plugin_path",
           "run_plugin", "with_prev_result"]
