"""The plugin side of CNI: ``Plugin`` collects handlers, ``Plugin.run`` is the dispatcher.

``run`` takes its environment and streams as parameters (like CNI's skel), so a plugin can be
driven in-process by tests; ``main`` wires it to the real process. Only the stdlib is imported.
"""
from __future__ import annotations

import os
import sys
import time

from netbind.cni import _json
from netbind.cni._netns import own_netns_error
from netbind.cni._types import (
    ERR_DECODING_FAILURE,
    ERR_INCOMPATIBLE_CNI_VERSION,
    ERR_INTERNAL,
    ERR_INVALID_ENVIRONMENT_VARIABLES,
    ERR_INVALID_NETWORK_CONFIG,
    ERR_IO_FAILURE,
    SUPPORTED_VERSIONS,
    CNIError,
    Result,
    parse_version,
    version_at_least,
)

COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")
# Environment variables in the order the spec lists them, and the commands that require each.
_REQUIRED_ENV = (
    ("CNI_COMMAND", COMMANDS),
    ("CNI_CONTAINERID", ("ADD", "CHECK", "DEL")),
    ("CNI_NETNS", ("ADD", "CHECK")),
    ("CNI_IFNAME", ("ADD", "CHECK", "DEL")),
    ("CNI_ARGS", ()),
    ("CNI_PATH", ("ADD", "CHECK", "DEL", "GC", "STATUS")),
)
# Minimum config version per command (older configs cannot express it).
# A network configuration is a few KiB (a GC's validAttachments list may be long): far past any
# real one, refuse before parsing instead of holding the runtime's exec for seconds.
MAX_STDIN_BYTES = 4 * 2**20
_MIN_VERSION = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _valid_identifier(value: str) -> bool:
    return bool(value) and value[0] not in "_.-" and set(value) <= _NAME_CHARS


def _ifname_problem(ifname: str) -> str | None:
    if not ifname:
        return "interface name is empty"
    if len(ifname.encode()) > 15:
        return f"interface name {ifname!r} is longer than 15 bytes"
    if ifname in (".", ".."):
        return "interface name is . or .."
    if any(c in "/:" or c.isspace() for c in ifname):
        return f"interface name {ifname!r} contains / or : or whitespace"
    return None


class CmdArgs:
    """What a handler gets: the environment, the parsed netconf and helpers to read it."""

    __slots__ = ("command", "container_id", "netns", "ifname", "args", "path", "stdin_data",
                 "netconf", "cni_version", "_log", "_prev")

    def __init__(self, command: str, container_id: str, netns: str, ifname: str, args: str,
                 path: str, stdin_data: bytes, netconf: dict, log) -> None:
        self.command, self.container_id, self.netns, self.ifname = command, container_id, netns, ifname
        self.args = args  # raw CNI_ARGS
        self.path = [p for p in path.split(os.pathsep) if p]
        self.stdin_data = stdin_data
        self.netconf = netconf
        self.cni_version = str(netconf.get("cniVersion") or "0.1.0")
        self._log = log
        self._prev: Result | None | bool = False

    @property
    def name(self) -> str:
        return str(self.netconf.get("name", ""))

    @property
    def runtime_config(self) -> dict:
        value = self.netconf.get("runtimeConfig")
        return value if isinstance(value, dict) else {}

    @property
    def cni_args(self) -> dict:
        """``args.cni`` of the netconf (what Multus fills from a selection's ``cni-args``)."""
        args = self.netconf.get("args")
        value = args.get("cni") if isinstance(args, dict) else None
        return value if isinstance(value, dict) else {}

    @property
    def env_args(self) -> dict[str, str]:
        """``CNI_ARGS`` (``K=V;K2=V2``) as a dict."""
        out: dict[str, str] = {}
        for item in self.args.split(";"):
            if item:
                key, sep, value = item.partition("=")
                if not sep:
                    raise CNIError(ERR_INVALID_ENVIRONMENT_VARIABLES,
                                   f"CNI_ARGS item {item!r} is not KEY=VALUE")
                out[key] = value
        return out

    @property
    def prev_result(self) -> Result | None:
        """``prevResult``, read from whatever version it is in, or None."""
        if self._prev is False:
            raw = self.netconf.get("prevResult")
            try:
                self._prev = Result.from_dict(raw) if raw is not None else None
            except (ValueError, TypeError, AttributeError) as exc:
                raise CNIError(ERR_DECODING_FAILURE, f"prevResult cannot be read: {exc}") from None
        return self._prev  # type: ignore[return-value]

    @property
    def valid_attachments(self) -> list[dict] | None:
        """GC: ``cni.dev/valid-attachments`` ([{containerID, ifname}]), None when absent."""
        value = self.netconf.get("cni.dev/valid-attachments")
        return [a for a in value if isinstance(a, dict)] if isinstance(value, list) else None

    def log(self, message: str) -> None:
        self._log(message)


class Plugin:
    """A CNI plugin: register handlers with decorators, then call ``main()``.

    ::

        plugin = Plugin("my-plugin")

        @plugin.add
        def add(args: CmdArgs) -> Result | None: ...

    Handlers raise ``CNIError`` for spec errors; any other exception becomes code 999. An ADD
    handler returns a ``Result`` (or a result dict of any version, or None for a result with only
    ``cniVersion``); it is printed in the config's version. DEL/CHECK/STATUS/GC print nothing and
    are successful no-ops when no handler is registered. ADD, CHECK and DEL never reach a handler
    with ``CNI_NETNS`` naming the plugin's own network namespace (code 4: that is the node's).
    """

    def __init__(self, name: str, *, versions=SUPPORTED_VERSIONS, about: str = "") -> None:
        self.name = name
        self.versions = tuple(versions)
        self.about = about
        self._handlers: dict[str, object] = {}

    def _register(self, command: str):
        def decorator(func):
            self._handlers[command] = func
            return func
        return decorator

    @property
    def add(self):
        return self._register("ADD")

    @property
    def delete(self):
        return self._register("DEL")

    @property
    def check(self):
        return self._register("CHECK")

    @property
    def status(self):
        return self._register("STATUS")

    @property
    def gc(self):
        return self._register("GC")

    def version_info(self) -> dict:
        return {"cniVersion": self.versions[-1], "supportedVersions": list(self.versions)}

    def main(self) -> None:
        sys.exit(self.run())

    def run(self, env=None, stdin=None, stdout=None, stderr=None) -> int:
        """Dispatch one CNI invocation; returns the exit code (0 or 1).

        ``env`` is a mapping (default ``os.environ``); ``stdin`` bytes, str or a binary/text
        stream (default the process stdin); ``stdout``/``stderr`` text streams.
        """
        env = os.environ if env is None else env
        stdout = sys.stdout if stdout is None else stdout
        stderr = sys.stderr if stderr is None else stderr
        log_target = [stderr]

        def log(message: str) -> None:
            line = time.strftime("%Y/%m/%d %H:%M:%S ") + message + "\n"
            target = log_target[0]
            if isinstance(target, str):
                try:
                    with open(target, "a", encoding="utf-8") as fh:
                        fh.write(line)
                    return
                except (OSError, ValueError):  # unwritable, or a NUL byte in the path
                    target = stderr
            target.write(line)
            target.flush()

        try:
            output = self._dispatch(env, stdin, log, log_target)
        except CNIError as exc:
            stdout.write(_json.dumps(exc.to_dict(), indent=4))
            stdout.flush()
            return 1
        except Exception as exc:  # noqa: BLE001 - a plugin must answer in CNI terms, not crash
            log(f"internal error in {self.name}: {type(exc).__name__}: {exc}")
            stdout.write(_json.dumps(CNIError(ERR_INTERNAL, str(exc) or type(exc).__name__).to_dict(),
                                     indent=4))
            stdout.flush()
            return 1
        if output:
            stdout.write(output)
            stdout.flush()
        return 0

    def _dispatch(self, env, stdin, log, log_target) -> str:
        command = env.get("CNI_COMMAND", "")
        values: dict[str, str] = {}
        missing: list[str] = []
        for var, required_for in _REQUIRED_ENV:
            values[var] = env.get(var, "")
            if not values[var] and (command in required_for or var == "CNI_COMMAND"):
                missing.append(var)
        if missing:
            if not command and self.about:  # run by hand: say what this is
                log_target[0].write(f"{self.about}\nCNI protocol versions supported: "
                                    f"{', '.join(self.versions)}\n")
                return ""
            raise CNIError(ERR_INVALID_ENVIRONMENT_VARIABLES,
                           f"required env variables [{','.join(missing)}] missing")
        if command == "VERSION":
            return _json.dumps(self.version_info()) + "\n"

        stdin_data = self._read_stdin(stdin)
        try:
            netconf = _json.loads(stdin_data)
        except _json.JSONError as exc:
            raise CNIError(ERR_DECODING_FAILURE,
                           f"network config on stdin is not valid JSON: {exc}") from None
        if not isinstance(netconf, dict):
            raise CNIError(ERR_DECODING_FAILURE, "network config on stdin must be a JSON object")
        log_file = netconf.get("logFile")
        if isinstance(log_file, str) and log_file:
            log_target[0] = log_file
        name = netconf.get("name")
        if not name:
            raise CNIError(ERR_INVALID_NETWORK_CONFIG, "missing network name")
        if not isinstance(name, str) or not _valid_identifier(name):
            raise CNIError(ERR_INVALID_NETWORK_CONFIG,
                           f"invalid characters in network name {name!r}: use [a-zA-Z0-9_.-]")
        container_id = values["CNI_CONTAINERID"]
        if container_id and not _valid_identifier(container_id):
            raise CNIError(ERR_INVALID_ENVIRONMENT_VARIABLES,
                           f"invalid characters in CNI_CONTAINERID {container_id!r}")
        ifname = values["CNI_IFNAME"]
        if ifname or command in ("ADD", "CHECK", "DEL"):
            problem = _ifname_problem(ifname)
            if problem:
                raise CNIError(ERR_INVALID_ENVIRONMENT_VARIABLES, f"CNI_IFNAME: {problem}")
        if command not in COMMANDS:
            raise CNIError(ERR_INVALID_ENVIRONMENT_VARIABLES, f"unknown CNI_COMMAND: {command}")

        version = netconf.get("cniVersion")
        if version is not None and not isinstance(version, str):
            raise CNIError(ERR_DECODING_FAILURE,
                           f"cniVersion must be a string like \"1.0.0\", got {_json.dumps(version)[:64]}")
        version = version or "0.1.0"   # libcni: an absent or empty version is 0.1.0
        if version not in self.versions:
            supported = " ".join(f'"{v}"' for v in self.versions)
            raise CNIError(ERR_INCOMPATIBLE_CNI_VERSION, "incompatible CNI versions",
                           f'config is "{version}", plugin supports [{supported}]')
        minimum = _MIN_VERSION.get(command)
        if minimum and not version_at_least(version, minimum):
            raise CNIError(ERR_INCOMPATIBLE_CNI_VERSION,
                           f"config version does not allow {command} (needs cniVersion >= {minimum})")

        if values["CNI_NETNS"] and command in ("ADD", "CHECK", "DEL"):
            error = own_netns_error(values["CNI_NETNS"])
            if error is not None:
                raise error
        handler = self._handlers.get(command)
        if handler is None:
            if command == "ADD":
                raise CNIError(ERR_INTERNAL, f"{self.name} does not implement ADD")
            return ""
        args = CmdArgs(command, container_id, values["CNI_NETNS"], ifname, values["CNI_ARGS"],
                       values["CNI_PATH"], stdin_data, netconf, log)
        result = handler(args)
        if command != "ADD":
            return ""
        if result is None:
            result = Result(version)
        elif isinstance(result, dict):
            result = Result.from_dict(result)
        return _json.dumps(result.to_dict(version), indent=4)

    @staticmethod
    def _read_stdin(stdin) -> bytes:
        if isinstance(stdin, str):
            stdin = stdin.encode()
        if isinstance(stdin, bytes):
            data = stdin[:MAX_STDIN_BYTES + 1]
        else:
            stream = sys.stdin.buffer if stdin is None else stdin
            try:
                data = stream.read(MAX_STDIN_BYTES + 1)
            except OSError as exc:
                raise CNIError(ERR_IO_FAILURE, f"error reading from stdin: {exc}") from None
            data = data.encode() if isinstance(data, str) else data
        if len(data) > MAX_STDIN_BYTES:
            raise CNIError(ERR_IO_FAILURE, f"network config on stdin is larger than {MAX_STDIN_BYTES // 2**20} MiB")
        return data


__all__ = ["CmdArgs", "Plugin", "parse_version"]
