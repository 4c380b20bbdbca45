"""TCP checks from the node namespace ("the outside world"): a one-line server the guest probes,
and a client that talks to the guest through the pod's forwarded ports. Traffic stays inside the
namespaces the runtime created."""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8)
print("listening", flush=True)
while True:
    c, peer = s.accept()
    c.settimeout(5)
    try:
        line = c.makefile("rb").readline().decode(errors="replace").strip()
        c.sendall(("nb-node-reply " + line.replace(" ", "_") + "\n").encode())
        print(f"from {peer[0]}: {line}", flush=True)
    except OSError as exc:
        print(f"from {peer[0]}: error {exc}", flush=True)
    finally:
        c.close()
"""

_CLIENT = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.sendall((sys.argv[3] + "\n").encode())
print(c.makefile("rb").readline().decode(errors="replace").strip())
"""


@dataclass
class NodeServer:
    """A TCP server in the node netns; each connection: read a line, answer, log who sent it."""
    proc: subprocess.Popen
    log: Path

    def seen(self) -> list[str]:
        return [l for l in self.log.read_text().splitlines() if l.startswith("from ")] if self.log.exists() else []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(netns: str, address: str, port: int, log: Path) -> NodeServer:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-I", "-c", _SERVER, address, str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while "listening" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"TCP server in {netns} did not start: {log.read_text()}")
        time.sleep(0.01)
    return NodeServer(proc, log)


def exchange(netns: str, address: str, port: int, line: str, attempts: int = 20) -> str:
    """Send one line from the node netns and return the reply line ("" if none came)."""
    last = ""
    for _ in range(attempts):
        proc = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-I", "-c", _CLIENT, address, str(port), line],
                              capture_output=True, text=True, timeout=15)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
        last = proc.stderr.strip().splitlines()[-1:] or [""]
        time.sleep(0.25)
    raise RuntimeError(f"no TCP reply from {address}:{port} in {netns}: {last[0] if last else ''}")
