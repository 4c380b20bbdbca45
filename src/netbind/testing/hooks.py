"""Test kit for hook sidecars: run one on a temp socket and call it as virt-launcher would.

In a plugin's test suite (the ``netbind`` pytest plugin is registered on install)::

    def test_my_sidecar(hook_sidecar):
        sidecar = hook_sidecar(my_app)                                   # in-process, or
        sidecar = hook_sidecar(["my-sidecar"], env={"NETWORK_BINDING_PLUGIN_NAME": "mine"})
        out = sidecar.define_domain(domain_xml, vmi_json)                 # through HookManager

Sockets live in a short ``/tmp/nb-…`` directory (unix socket paths are limited to 107 bytes) laid
out like the pod's: ``<dir>/hook-sidecar-N/<name>.sock``; everything is removed afterwards.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from netbind.launcher.hooks import HookManager, RPCError, query_info


def short_tempdir(prefix: str = "nb-hk-") -> Path:
    """A fresh directory under /tmp with a short path, for unix sockets."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def _as_bytes(value: bytes | str | dict) -> bytes:
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":")).encode()
    return value.encode() if isinstance(value, str) else bytes(value)


def wait_for_info(socket_path: Path, timeout: float = 10.0, process: subprocess.Popen | None = None) -> dict:
    """Poll until ``Info`` answers on ``socket_path`` (or the process died / time ran out)."""
    deadline = time.monotonic() + timeout
    last = "socket not created"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"sidecar exited with code {process.returncode} before serving")
        if socket_path.exists():
            try:
                return query_info(socket_path, timeout=1.0)
            except RPCError as exc:
                last = str(exc)
        time.sleep(0.01)
    raise TimeoutError(f"sidecar did not answer Info on {socket_path} within {timeout}s: {last}")


class SidecarProcess:
    """A sidecar started as a separate process (``argv``), serving on ``socket_path``.

    The socket path is passed as ``--socket PATH`` unless ``socket_arg=False`` (then the program
    must derive it itself, e.g. from the environment)."""

    def __init__(self, argv: Sequence[str], socket_path: Path, *, env: dict[str, str] | None = None,
                 socket_arg: bool = True):
        self.argv = list(argv) + (["--socket", str(socket_path)] if socket_arg else [])
        self.socket_path = Path(socket_path)
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None
        self._stderr_file = None
        self.info: dict | None = None

    def start(self, timeout: float = 10.0) -> "SidecarProcess":
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self._stderr_file = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=self._stderr_file)
        try:
            self.info = wait_for_info(self.socket_path, timeout, self.process)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n--- sidecar stderr ---\n{self.stderr()}") from None
        return self

    def stderr(self) -> str:
        if self._stderr_file is None:
            return ""
        self._stderr_file.seek(0)
        return self._stderr_file.read()

    def audit_records(self) -> list[dict]:
        """The sidecar's JSON audit lines so far."""
        records = []
        for line in self.stderr().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def wait(self, timeout: float = 10.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 5.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def close(self) -> None:
        self.stop()
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None

    def __enter__(self) -> "SidecarProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class RunningSidecar:
    """A started sidecar (process or in-process) plus a virt-launcher-style client for it."""

    def __init__(self, handle: Any, sockets_dir: Path, socket_path: Path):
        self.handle = handle  # SidecarProcess or netbind.hooks SidecarServer
        self.sockets_dir = sockets_dir
        self.socket_path = socket_path

    def manager(self, **kwargs: Any) -> HookManager:
        """A HookManager that collected this sidecar only (close it when done)."""
        manager = HookManager(self.socket_path.parent, **kwargs)
        manager.collect(1, timeout=5.0)
        return manager

    def info(self) -> dict:
        return query_info(self.socket_path)

    def define_domain(self, domain_xml: bytes | str, vmi: bytes | str | dict) -> bytes:
        try:
            with self.manager() as manager:
                return manager.on_define_domain(_as_bytes(domain_xml), _as_bytes(vmi))
        finally:
            self.flush_audit()

    def pre_cloud_init_iso(self, cloud_init_data: dict, vmi: bytes | str | dict) -> dict:
        try:
            with self.manager() as manager:
                return manager.pre_cloud_init_iso(cloud_init_data, _as_bytes(vmi))
        finally:
            self.flush_audit()

    def flush_audit(self) -> None:
        """An in-process sidecar writes its audit records after replying: wait for them, so a
        test reads the records of the calls it made. (A process's records are complete once it
        has stopped.)"""
        app = getattr(self.handle, "app", None)
        if app is not None:
            app.audit.flush()

    def shutdown(self) -> None:
        with self.manager() as manager:
            manager.shutdown()


class SidecarRunner:
    """Starts sidecars in a private sockets directory and stops them all on :meth:`close`."""

    def __init__(self, sockets_dir: Path | None = None):
        self.sockets_dir = sockets_dir or short_tempdir()
        self._owns_dir = sockets_dir is None
        self._running: list[RunningSidecar] = []

    def __call__(self, target: Any, *, socket_name: str = "hook.sock", subdir: str | None = None,
                 env: dict[str, str] | None = None, socket_arg: bool = True,
                 timeout: float = 10.0) -> RunningSidecar:
        """Start ``target``: a :class:`netbind.hooks.App` (served in this process) or an argv list
        (a separate process, e.g. ``[sys.executable, "-m", "my.sidecar"]``)."""
        subdir = subdir or f"hook-sidecar-{len(self._running)}"
        socket_path = self.sockets_dir / subdir / socket_name
        if isinstance(target, (list, tuple)):
            handle = SidecarProcess(target, socket_path, env=env, socket_arg=socket_arg).start(timeout)
        else:
            if env:
                raise ValueError("env applies to sidecar processes; configure an in-process App directly")
            socket_path.parent.mkdir(parents=True, exist_ok=True)
            handle = target.serve(socket_path)
        running = RunningSidecar(handle, self.sockets_dir, socket_path)
        self._running.append(running)
        return running

    def module(self, module: str, **kwargs: Any) -> RunningSidecar:
        """Start ``python -m module`` as a process."""
        return self([sys.executable, "-m", module], **kwargs)

    def close(self) -> None:
        for running in reversed(self._running):
            handle = running.handle
            if isinstance(handle, SidecarProcess):
                handle.close()
            else:
                handle.stop("test teardown")
        self._running.clear()
        if self._owns_dir:
            shutil.rmtree(self.sockets_dir, ignore_errors=True)


@pytest.fixture
def hook_sidecar() -> Iterator[SidecarRunner]:
    """Factory fixture: ``hook_sidecar(app_or_argv, socket_name=..., env=...)`` -> RunningSidecar."""
    runner = SidecarRunner()
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture
def hook_sockets_dir() -> Iterator[Path]:
    """A short, empty sockets directory (removed afterwards)."""
    path = short_tempdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
