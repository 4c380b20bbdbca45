"""virt-launcher's hook manager: find sidecar sockets, ask Info, and call the hooks in chain.

Behaves as KubeVirt's ``pkg/hooks/manager.go`` (spec 6.1, 6.4): sockets are the plain files of the
sockets directory and of its per-container subdirectories (sorted), counted once per *base name*;
``Info`` has a 1 s deadline and an error there fails at once, while a socket that cannot be dialled
is retried every poll period until the collect timeout; the newest common Callbacks version is
used; ``OnDefineDomain`` is chained in discovery order with a 1 min deadline. Like KubeVirt, every
call dials a fresh connection; ``HookManager(persistent=True)`` keeps one channel per sidecar
instead (faster, but not what virt-launcher does). Error texts are
KubeVirt's, so a caller can compare them with what a real virt-launcher reports. The calls go
through ``_grpc`` (h2) with the messages of ``netbind.hooks._wire``: no grpcio or protobuf here.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netbind.hooks import _wire
from netbind.launcher import _grpc

HOOKS_DIR = Path("/var/run/kubevirt-hooks")
SUPPORTED_VERSIONS = ("v1alpha3", "v1alpha2", "v1alpha1")  # preference order
ON_DEFINE_DOMAIN = "OnDefineDomain"
PRE_CLOUD_INIT_ISO = "PreCloudInitIso"
SHUTDOWN = "Shutdown"

POLL_PERIOD = 0.3  # seconds between discovery rounds (KubeVirt >= 1.8)
INFO_TIMEOUT = 1.0
CALL_TIMEOUT = 60.0
DIAL_TIMEOUT = 2.0
DEFAULT_COLLECT_TIMEOUT = 180.0  # virt-launcher's --qemu-timeout default

COLLECT_TIMEOUT_MESSAGE = "Failed to collect all expected sidecar hook sockets within given timeout"

class HookClientError(Exception):
    """A hook exchange failed; ``str()`` is the text virt-launcher would report."""


class CollectTimeoutError(HookClientError):
    """Not all expected sockets answered in time. ``pending`` says why each missing one failed."""

    def __init__(self, expected: int, collected: list["Sidecar"], pending: dict[str, str]):
        super().__init__(COLLECT_TIMEOUT_MESSAGE)
        self.expected = expected
        self.collected = collected
        self.pending = pending

    def explain(self) -> str:
        lines = [f"expected {self.expected} sidecar socket(s), collected {len(self.collected)}"]
        lines += [f"  ok      {s.socket_path} ({s.name}, {s.version})" for s in self.collected]
        lines += [f"  not ok  {path}: {why}" for path, why in sorted(self.pending.items())]
        if not self.pending and len(self.collected) < self.expected:
            lines.append("  (no further socket files: a sidecar has not created its socket, or two "
                         "sidecars use the same socket file name, which virt-launcher counts once)")
        return "\n".join(lines)


class RPCError(HookClientError):
    """A gRPC call failed; formatted as Go's ``rpc error: code = <Code> desc = <message>``."""

    def __init__(self, code: str, desc: str):
        super().__init__(f"rpc error: code = {code} desc = {desc}")
        self.code = code
        self.desc = desc

    @classmethod
    def from_call(cls, exc: "_grpc.CallError") -> "RPCError":
        return cls(exc.code_name, exc.message)


@dataclass
class Sidecar:
    """One collected hook socket and what its Info said."""

    socket_path: Path
    name: str
    versions: list[str]
    version: str  # the Callbacks version virt-launcher uses with it
    hook_points: list[tuple[str, int]]
    _channel: Any = field(default=None, repr=False, compare=False)   # kept when persistent

    def subscribes(self, hook_point: str) -> bool:
        return any(name == hook_point for name, _ in self.hook_points)

    def as_dict(self) -> dict:
        return {"socket": str(self.socket_path), "name": self.name, "versions": self.versions,
                "version": self.version,
                "hookPoints": [{"name": n, "priority": p} for n, p in self.hook_points]}


def discover_sockets(sockets_dir: Path) -> list[Path]:
    """Candidate socket files in discovery order: the directory's entries sorted by name; a
    subdirectory contributes its own plain entries (sorted, sub-subdirectories skipped)."""
    found: list[Path] = []
    for entry in sorted(os.scandir(sockets_dir), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            try:
                inner = sorted(os.scandir(entry.path), key=lambda e: e.name)
            except OSError:
                continue
            found += [Path(e.path) for e in inner if not e.is_dir(follow_symlinks=False)]
        else:
            found.append(Path(entry.path))
    return found


def _dial_error(path: Path, timeout: float) -> str | None:
    """Why ``path`` cannot be dialled right now (None if it accepts a connection)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return exc.strerror or str(exc)
    if not stat.S_ISSOCK(mode):
        return "not a socket (virt-launcher counts every file here as a hook socket)"
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(timeout)
    try:
        probe.connect(str(path))
    except OSError as exc:
        return f"dial unix {path}: {exc.strerror or exc}"
    finally:
        probe.close()
    return None


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def query_info(path: Path, *, timeout: float = INFO_TIMEOUT, channel: "_grpc.Channel | None" = None) -> dict:
    """Call ``Info`` on one socket; returns ``{name, versions, hookPoints}``. Raises RPCError."""
    own = channel is None
    channel = channel or _grpc.Channel(path)
    try:
        reply = channel.call(_wire.INFO_PATH, b"", timeout)
        name, points, versions = _wire.decode_info_result(reply)
    except _grpc.CallError as exc:
        raise RPCError.from_call(exc) from None
    except _wire.DecodeError as exc:
        raise RPCError("Internal", f"{_grpc.UNMARSHAL_FAILED}: {exc}") from None
    finally:
        if own:
            channel.close()
    return {"name": name, "versions": versions, "hookPoints": points}


class HookManager:
    """Collects sidecars from ``sockets_dir`` and calls their hooks the way virt-launcher does."""

    def __init__(self, sockets_dir: str | os.PathLike = HOOKS_DIR, *, poll_period: float = POLL_PERIOD,
                 info_timeout: float = INFO_TIMEOUT, call_timeout: float = CALL_TIMEOUT,
                 dial_timeout: float = DIAL_TIMEOUT, persistent: bool = False):
        self.sockets_dir = Path(sockets_dir)
        # False: a fresh connection per call, as virt-launcher dials (spec 6.1); True: one channel
        # per sidecar, kept until close()
        self.persistent = persistent
        self.poll_period = poll_period
        self.info_timeout = info_timeout
        self.call_timeout = call_timeout
        self.dial_timeout = dial_timeout
        self.sidecars: list[Sidecar] = []

    def __enter__(self) -> "HookManager":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for sidecar in self.sidecars:
            if sidecar._channel is not None:
                sidecar._channel.close()
                sidecar._channel = None

    # -- Collect --------------------------------------------------------------------------------
    def collect(self, expected: int, timeout: float = DEFAULT_COLLECT_TIMEOUT) -> list[Sidecar]:
        """Wait until ``expected`` sockets (distinct base names) answered Info."""
        deadline = time.monotonic() + timeout
        processed: set[str] = set()
        pending: dict[str, str] = {}
        while len(processed) < expected:
            try:
                candidates = discover_sockets(self.sockets_dir)
            except OSError as exc:
                raise HookClientError(f"open {self.sockets_dir}: {exc.strerror or exc}") from None
            for path in candidates:
                if time.monotonic() >= deadline:
                    raise CollectTimeoutError(expected, list(self.sidecars), pending)
                if path.name in processed:  # keyed by base name, as KubeVirt does
                    continue
                why = _dial_error(path, self.dial_timeout)
                if why is not None:
                    pending[str(path)] = why  # not ready: retried next round
                    continue
                pending.pop(str(path), None)
                self.sidecars.append(self._register(path))
                processed.add(path.name)
                if len(processed) >= expected:
                    break
            if len(processed) >= expected:
                break
            if time.monotonic() + self.poll_period > deadline:
                time.sleep(max(0.0, deadline - time.monotonic()))
                raise CollectTimeoutError(expected, list(self.sidecars), pending)
            time.sleep(self.poll_period)
        return self.sidecars

    def _register(self, path: Path) -> Sidecar:
        channel = _grpc.Channel(path)
        try:
            info = query_info(path, timeout=self.info_timeout, channel=channel)
            version = next((v for v in SUPPORTED_VERSIONS if v in info["versions"]), None)
            if version is None:
                raise HookClientError(
                    "Hook sidecar does not expose a supported version. Exposed versions: "
                    f"{_go_list(info['versions'])}, supported versions: {_go_list(list(SUPPORTED_VERSIONS))}")
        except BaseException:
            channel.close()
            raise
        if not self.persistent:
            channel.close()
            channel = None
        return Sidecar(socket_path=path, name=info["name"], versions=info["versions"], version=version,
                       hook_points=info["hookPoints"], _channel=channel)

    def callbacks(self, hook_point: str) -> list[Sidecar]:
        """Sidecars subscribed to ``hook_point``, in discovery order (priority has no effect)."""
        return [s for s in self.sidecars if s.subscribes(hook_point)]

    def _call(self, sidecar: Sidecar, method: str, request: bytes) -> bytes:
        """One Callbacks call: on a fresh connection, closed after it, or on the sidecar's kept one
        when ``persistent``. Raises ``_grpc.CallError``."""
        path = _wire.callbacks_path(sidecar.version, method)
        if not self.persistent:
            with _grpc.Channel(sidecar.socket_path) as channel:
                return channel.call(path, request, self.call_timeout)
        if sidecar._channel is None:
            sidecar._channel = _grpc.Channel(sidecar.socket_path)
        return sidecar._channel.call(path, request, self.call_timeout)

    # -- hook points ----------------------------------------------------------------------------
    def on_define_domain(self, domain_xml: bytes, vmi_json: bytes, *, trace: list | None = None) -> bytes:
        """Chain OnDefineDomain: each sidecar gets the raw bytes the previous one returned."""
        current = bytes(domain_xml)
        subscribers = self.callbacks(ON_DEFINE_DOMAIN)
        for sidecar in subscribers:
            started = time.perf_counter()
            try:
                reply = self._call(sidecar, ON_DEFINE_DOMAIN, _wire.encode_on_define_domain_params(current, vmi_json))
                current = _wire.decode_on_define_domain_result(reply)
            except _grpc.CallError as exc:
                raise RPCError.from_call(exc) from None
            except _wire.DecodeError as exc:
                raise RPCError("Internal", f"{_grpc.UNMARSHAL_FAILED}: {exc}") from None
            if trace is not None:
                trace.append({"socket": str(sidecar.socket_path), "version": sidecar.version,
                              "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                              "bytes": len(current)})
        if subscribers:
            _check_domain_xml(current)
        return current

    def pre_cloud_init_iso(self, cloud_init_data: dict, vmi_json: bytes) -> dict:
        """Only the first v1alpha2/v1alpha3 subscriber is used; returns the new CloudInitData."""
        for sidecar in self.callbacks(PRE_CLOUD_INIT_ISO):
            if sidecar.version == "v1alpha1":
                continue  # v1alpha1 has no PreCloudInitIso; KubeVirt logs and skips it
            legacy = {"userData": cloud_init_data.get("UserData", ""),
                      "networkData": cloud_init_data.get("NetworkData", "")}
            request = _wire.encode_pre_cloud_init_iso_params(json.dumps(cloud_init_data).encode(), vmi_json,
                                                             json.dumps(legacy).encode())
            try:
                data_raw, source_raw = _wire.decode_pre_cloud_init_iso_result(
                    self._call(sidecar, PRE_CLOUD_INIT_ISO, request))
            except _grpc.CallError as exc:
                raise HookClientError(f"PreCloudInitIso hook failed: {RPCError.from_call(exc)}") from None
            except _wire.DecodeError as exc:
                raise HookClientError(f"PreCloudInitIso hook failed: {exc}") from None
            data = _decode_json(data_raw, "PreCloudInitIso hook failed")
            if (isinstance(data, dict) and data.get("UserData")
                    and (isinstance(data.get("NoCloudMetaData"), dict)
                         or isinstance(data.get("ConfigDriveMetaData"), dict))):
                return data
            source = _decode_json(source_raw, "PreCloudInitIso hook failed")
            source = source if isinstance(source, dict) else {}
            merged = dict(cloud_init_data)
            merged["UserData"] = source.get("userData", "")
            merged["NetworkData"] = source.get("networkData", "")
            return merged
        return cloud_init_data

    def shutdown(self) -> None:
        """Shutdown every v1alpha3 subscriber in order; the first error stops the loop and is raised."""
        for sidecar in self.callbacks(SHUTDOWN):
            if sidecar.version != "v1alpha3":
                continue
            try:
                self._call(sidecar, SHUTDOWN, b"")
            except _grpc.CallError as exc:
                raise RPCError.from_call(exc) from None


def _decode_json(raw: bytes, prefix: str) -> Any:
    if not raw:
        raise HookClientError(f"{prefix}: unexpected end of JSON input")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise HookClientError(f"{prefix}: {exc}") from None


def _check_domain_xml(xml: bytes) -> None:
    """KubeVirt parses the chain's result into its DomainSpec; an empty or broken result fails."""
    from netbind.domain import Domain, DomainXMLError

    if not xml.strip():
        raise HookClientError("Failed to unmarshal given domain spec: EOF")
    try:
        Domain.parse(xml)
    except DomainXMLError as exc:
        raise HookClientError(f"Failed to unmarshal given domain spec: {exc}") from None


__all__ = [
    "COLLECT_TIMEOUT_MESSAGE", "CollectTimeoutError", "HOOKS_DIR", "HookClientError", "HookManager",
    "RPCError", "SUPPORTED_VERSIONS", "Sidecar", "discover_sockets", "query_info",
]
