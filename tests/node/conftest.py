from __future__ import annotations

import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from netbind import _iproute as iproute
from netbind.node import guest, procs, sandbox, stack
from netbind.testing import require, require_binary, require_root
from netbind.testing.leaks import mount_point_used_elsewhere

HOST_MOUNT_POINTS = [p for p in sandbox.MOUNT_POINTS if not p.exists()]  # the ones ours to remove


def require_node_runtime() -> None:
    require_root()
    for binary, package in (("ip", "iproute2"), ("libvirtd", "libvirt-daemon-system"),
                            ("qemu-system-x86_64", "qemu-system-x86"), ("dnsmasq", "dnsmasq-base"),
                            ("apt-get", "apt"), ("busybox", "busybox")):
        require_binary(binary, package)


@pytest.fixture(scope="session")
def guest_image() -> guest.GuestImage:
    require_node_runtime()
    return guest.ensure_guest()


@pytest.fixture
def runtime() -> Iterator[Path]:
    """A fresh runtime dir, short enough for the unix socket paths beneath it (108 bytes). Whatever
    is still recorded under it afterwards is torn down (`netbind down --all`), passed or failed, and
    then the dir must be gone."""
    require_node_runtime()
    path = Path("/run") / f"nb-test-{secrets.token_hex(3)}"
    try:
        yield path
    finally:
        sandbox.down_all(path)
    assert not path.exists(), f"{path} left behind"


@dataclass
class Footprint:
    """What a test created, to prove afterwards that none of it is left."""
    netns: set[str] = field(default_factory=set)
    node_links: set[str] = field(default_factory=set)
    pids: set[tuple[int, int]] = field(default_factory=set)
    paths: set[Path] = field(default_factory=set)

    def note_pod(self, pod: sandbox.Pod, node: sandbox.Node) -> None:
        self.netns |= {pod.netns, node.netns}
        self.paths |= {pod.names.directory, node.names.runtime}
        for entry in pod.journal.find("process"):
            self.pids.add((entry.attrs["pid"], entry.attrs["starttime"]))
        for ns in (pod.netns, node.netns):
            for pid in iproute.netns_pids(ns):  # qemu, started by libvirtd, is recorded nowhere
                start = procs.starttime_of(pid)
                if start is not None:
                    self.pids.add((pid, start))

    def assert_gone(self) -> None:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        assert not self.netns & {line.split()[0] for line in listed.splitlines() if line}
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
        assert not [n for n in self.node_links if f" {n}@" in links or f" {n}:" in links]
        assert not [pid for pid, start in self.pids if procs.alive(pid, start)]
        mounts = Path("/proc/self/mountinfo").read_text()
        for marker in [*self.netns, *(str(p) for p in self.paths)]:
            assert marker not in mounts
        assert not [p for p in self.paths if p.exists()]
        # another runtime on this machine (a concurrent test run) may own or use them: then they stay
        assert not [p for p in HOST_MOUNT_POINTS if p.exists() and not mount_point_used_elsewhere(p, self.paths)]


def wait_for_reports(read_console, predicate, timeout: float = 30.0) -> list[guest.Report]:
    """Poll the serial console until predicate(reports) holds; fail with the console if not."""
    deadline = time.monotonic() + timeout
    while True:
        console = read_console()
        reports = guest.parse_reports(console)
        if predicate(reports):
            return reports
        if time.monotonic() > deadline:
            pytest.fail(f"guest did not report in {timeout:.0f} s; console:\n{console}")
        time.sleep(0.05)


def dhcp_server(pod: sandbox.Pod, node: sandbox.Node, iface: str, hosts: dict[str, str],
                pool: str) -> procs.ProcessRecord:
    """dnsmasq in the node namespace as the DHCP peer (recorded in the pod's journal)."""
    argv = ["dnsmasq", "--no-daemon", "--port=0", f"--interface={iface}", "--bind-interfaces",
            f"--dhcp-range={pool},2m", "--no-resolv", "--no-hosts", "--log-dhcp",
            f"--dhcp-leasefile={pod.names.directory / 'dnsmasq.leases'}",
            *(f"--dhcp-host={mac},{ip}" for mac, ip in hosts.items())]
    spec = procs.ProcessSpec("dnsmasq", tuple(argv), pod.names.logs_dir / "dnsmasq.log",
                             pod.names.directory / "pids" / "dnsmasq.pid", netns=node.netns)
    return pod.start(spec)


@pytest.fixture(scope="session")
def native_stack() -> stack.NativeStack:
    found = stack.host_native()
    if found is not None:
        return found
    try:
        return stack.ensure_stack()   # cached by `make test` (make stack); else provisioned here
    except stack.StackError as exc:
        require("the native passt stack", False, f"{exc} (make stack provisions it)")
