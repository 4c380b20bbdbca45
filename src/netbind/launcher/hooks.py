"""virt-launcher's hook manager: find sidecar sockets, ask Info, and call the hooks in chain.

Behaves as KubeVirt's ``pkg/hooks/manager.go`` (spec 6.1, 6.4): sockets are the plain files of the
sockets directory and of its per-container subdirectories (sorted), counted once per *base name*;
``Info`` has a 1 s deadline and an error there fails at once, while a socket that cannot be dialled
is retried every poll period until the collect timeout; the newest common Callbacks version is
used; ``OnDefineDomain`` is chained in discovery order with a 1 min deadline. Like KubeVirt, every
call dials a fresh connection; ``HookManager(persistent=True)`` keeps one channel per sidecar
instead (faster, but not what virt-launcher does). Error texts are
KubeVirt's, so a caller can compare them with what a real virt-launcher reports.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

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

# grpc.StatusCode names -> the names Go's status package prints
_GO_CODE_NAMES = {
    "OK": "OK", "CANCELLED": "Canceled", "UNKNOWN": "Unknown", "INVALID_ARGUMENT": "InvalidArgument",
    "DEADLINE_EXCEEDED": "DeadlineExceeded", "NOT_FOUND": "NotFound", "ALREADY_EXISTS": "AlreadyExists",
    "PERMISSION_DENIED": "PermissionDenied", "RESOURCE_EXHAUSTED": "ResourceExhausted",
    "FAILED_PRECONDITION": "FailedPrecondition", "ABORTED": "Aborted", "OUT_OF_RANGE": "OutOfRange",
    "UNIMPLEMENTED": "Unimplemented", "INTERNAL": "Internal", "UNAVAILABLE": "Unavailable",
    "DATA_LOSS": "DataLoss", "UNAUTHENTICATED": "Unauthenticated",
}


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
    def from_grpc(cls, exc: Any) -> "RPCError":
        status = exc.code()
        code = _GO_CODE_NAMES.get(status.name, status.name)
        desc = exc.details() or ""
        if status.name == "DEADLINE_EXCEEDED" and desc == "Deadline Exceeded":
            desc = "context deadline exceeded"  # the client-side deadline, worded as Go's context
        return cls(code, desc)


@dataclass
class Sidecar:
    """One collected hook socket and what its Info said."""

    socket_path: Path
    name: str
    versions: list[str]
    version: str  # the Callbacks version virt-launcher uses with it
    hook_points: list[tuple[str, int]]
    _channel: Any = field(default=None, repr=False, compare=False)
    _stub: Any = field(default=None, repr=False, compare=False)

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


def _grpc():
    import grpc  # deferred: importing grpc costs ~50 ms, not needed for discovery-only uses

    return grpc


def _open_channel(path: Path):
    grpc = _grpc()
    return grpc.insecure_channel(
        f"unix:{os.path.abspath(path)}",
        options=[("grpc.default_authority", "localhost"), ("grpc.enable_http_proxy", 0),
                 ("grpc.enable_retries", 0)])


def _proto(version: str):
    from netbind.hooks.proto import (
        api_v1alpha1_pb2,
        api_v1alpha1_pb2_grpc,
        api_v1alpha2_pb2,
        api_v1alpha2_pb2_grpc,
        api_v1alpha3_pb2,
        api_v1alpha3_pb2_grpc,
    )

    return {
        "v1alpha1": (api_v1alpha1_pb2, api_v1alpha1_pb2_grpc),
        "v1alpha2": (api_v1alpha2_pb2, api_v1alpha2_pb2_grpc),
        "v1alpha3": (api_v1alpha3_pb2, api_v1alpha3_pb2_grpc),
    }[version]


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def query_info(path: Path, *, timeout: float = INFO_TIMEOUT, channel=None) -> dict:
    """Call ``Info`` on one socket; returns ``{name, versions, hookPoints}``. Raises RPCError."""
    from netbind.hooks.proto import api_info_pb2, api_info_pb2_grpc

    grpc = _grpc()
    own = channel is None
    channel = channel or _open_channel(path)
    try:
        result = api_info_pb2_grpc.InfoStub(channel).Info(api_info_pb2.InfoParams(), timeout=timeout)
    except grpc.RpcError as exc:
        raise RPCError.from_grpc(exc) from None
    finally:
        if own:
            channel.close()
    return {"name": result.name, "versions": list(result.versions),
            "hookPoints": [(hp.name, hp.priority) for hp in result.hookPoints]}


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
                sidecar._stub = None

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
        channel = _open_channel(path)
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

    @contextmanager
    def _callbacks(self, sidecar: Sidecar) -> Iterator[tuple[Any, Any]]:
        """(messages module, Callbacks stub) for one call: on a fresh connection, closed after the
        call, or on the sidecar's kept channel when ``persistent``."""
        if not self.persistent:
            pb2, pb2_grpc = _proto(sidecar.version)
            channel = _open_channel(sidecar.socket_path)
            try:
                yield pb2, pb2_grpc.CallbacksStub(channel)
            finally:
                channel.close()
            return
        if sidecar._channel is None:
            sidecar._channel = _open_channel(sidecar.socket_path)
            sidecar._stub = None
        if sidecar._stub is None or sidecar._stub[2] != sidecar.version:
            pb2, pb2_grpc = _proto(sidecar.version)
            sidecar._stub = (pb2, pb2_grpc.CallbacksStub(sidecar._channel), sidecar.version)
        yield sidecar._stub[0], sidecar._stub[1]

    # -- hook points ----------------------------------------------------------------------------
    def on_define_domain(self, domain_xml: bytes, vmi_json: bytes, *, trace: list | None = None) -> bytes:
        """Chain OnDefineDomain: each sidecar gets the raw bytes the previous one returned."""
        grpc = _grpc()
        current = bytes(domain_xml)
        subscribers = self.callbacks(ON_DEFINE_DOMAIN)
        for sidecar in subscribers:
            started = time.perf_counter()
            try:
                with self._callbacks(sidecar) as (pb2, stub):
                    result = stub.OnDefineDomain(pb2.OnDefineDomainParams(domainXML=current, vmi=vmi_json),
                                                 timeout=self.call_timeout)
            except grpc.RpcError as exc:
                raise RPCError.from_grpc(exc) from None
            current = result.domainXML
            if trace is not None:
                trace.append({"socket": str(sidecar.socket_path), "version": sidecar.version,
                              "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                              "bytes": len(current)})
        if subscribers:
            _check_domain_xml(current)
        return current

    def pre_cloud_init_iso(self, cloud_init_data: dict, vmi_json: bytes) -> dict:
        """Only the first v1alpha2/v1alpha3 subscriber is used; returns the new CloudInitData."""
        grpc = _grpc()
        for sidecar in self.callbacks(PRE_CLOUD_INIT_ISO):
            if sidecar.version == "v1alpha1":
                continue  # v1alpha1 has no PreCloudInitIso; KubeVirt logs and skips it
            legacy = {"userData": cloud_init_data.get("UserData", ""),
                      "networkData": cloud_init_data.get("NetworkData", "")}
            try:
                with self._callbacks(sidecar) as (pb2, stub):
                    result = stub.PreCloudInitIso(
                        pb2.PreCloudInitIsoParams(cloudInitNoCloudSource=json.dumps(legacy).encode(),
                                                  vmi=vmi_json, cloudInitData=json.dumps(cloud_init_data).encode()),
                        timeout=self.call_timeout)
            except grpc.RpcError as exc:
                raise HookClientError(f"PreCloudInitIso hook failed: {RPCError.from_grpc(exc)}") from None
            data = _decode_json(result.cloudInitData, "PreCloudInitIso hook failed")
            if (isinstance(data, dict) and data.get("UserData")
                    and (isinstance(data.get("NoCloudMetaData"), dict)
                         or isinstance(data.get("ConfigDriveMetaData"), dict))):
                return data
            source = _decode_json(result.cloudInitNoCloudSource, "PreCloudInitIso hook failed")
            source = source if isinstance(source, dict) else {}
            merged = dict(cloud_init_data)
            merged["UserData"] = source.get("userData", "")
            merged["NetworkData"] = source.get("networkData", "")
            return merged
        return cloud_init_data

    def shutdown(self) -> None:
        """Shutdown every v1alpha3 subscriber in order; the first error stops the loop and is raised."""
        grpc = _grpc()
        for sidecar in self.callbacks(SHUTDOWN):
            if sidecar.version != "v1alpha3":
                continue
            try:
                with self._callbacks(sidecar) as (pb2, stub):
                    stub.Shutdown(pb2.ShutdownParams(), timeout=self.call_timeout)
            except grpc.RpcError as exc:
                raise RPCError.from_grpc(exc) from None


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
