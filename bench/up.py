#!/usr/bin/env python3
"""`netbind up` to the guest's lease, by phase, against the floor measured in the same run (root).

Up: `netbind up -f examples/passt/ --wait -o json` as a user runs it (a fresh process: Python start,
imports, validation, CNI, sidecar, private libvirtd, hooks, passt, define, start), timed from the
spawn to its exit, which happens when the guest reports READY (every NIC leased). Phases come
from its JSON output. Floor (host notes R3): the same guest (same kernel, initramfs and memory)
booted by bare QEMU + passt in a fresh namespace, timed from starting passt to READY on the serial
console. One warm-up round of each first (libvirt's capability cache, page cache), then --rounds
alternating rounds; medians. The sidecar runs as a host process (bench/sidecars.py compares it with
a container). Usage: .venv/bin/python bench/up.py [--rounds 5] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from netbind.node import guest

from _bench import NETBIND, ROOT  # noqa: E402  (also: the tiny guest unless NETBIND_GUEST says otherwise)

MEMORY = "977M"  # the example VM's 1024M request, as libvirt gets it


def run_up(runtime: Path, sidecars: str = "process") -> dict:
    env = {**os.environ, "NETBIND_RUNTIME_DIR": str(runtime), "NETBIND_SIDECARS": sidecars}
    t0 = time.perf_counter()
    proc = subprocess.run([str(NETBIND), "up", "-f", str(ROOT / "examples" / "passt"), "--wait", "-o", "json"],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    try:
        if proc.returncode != 0:
            raise SystemExit(f"netbind up failed: {proc.stdout}\n{proc.stderr}")
        out = json.loads(proc.stdout)
        phases = {p["phase"]: p["seconds"] for p in out["phases"]}
        return {"wall": wall, "phases": phases, "in_process": sum(phases.values())}
    finally:
        subprocess.run([str(NETBIND), "down", "--all"], capture_output=True, env=env)


def run_floor(image: guest.GuestImage, work: Path) -> float:
    tag = secrets.token_hex(2)
    pod, node = f"nb-bfp-{tag}", f"nb-bfn-{tag}"
    sock = work / f"passt-{tag}.sock"
    sh = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    passt = qemu = None
    try:
        for ns in (pod, node):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", "eth0", "netns", pod, "type", "veth", "peer", "name", "v0", "netns", node)
        sh("ip", "-n", node, "addr", "add", "10.244.0.1/24", "dev", "v0")
        sh("ip", "-n", node, "link", "set", "v0", "up")
        sh("ip", "-n", pod, "addr", "add", "10.244.0.10/24", "dev", "eth0")
        sh("ip", "-n", pod, "link", "set", "eth0", "up")
        sh("ip", "-n", pod, "route", "add", "default", "via", "10.244.0.1")
        t0 = time.perf_counter()
        passt = subprocess.Popen(["ip", "netns", "exec", pod, "passt", "-f", "-1", "--runas", "0:0", "-D", "none",
                                  "-q", "-s", str(sock), "-t", "8080", "-u", "none"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not sock.exists():
            time.sleep(0.002)
        qemu = subprocess.Popen(
            ["ip", "netns", "exec", pod, "qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "qemu64",
             "-m", MEMORY, "-smp", "1", "-display", "none", "-no-reboot", "-nodefaults", "-serial", "stdio",
             "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", image.cmdline(),
             "-device", "virtio-net-pci-non-transitional,netdev=s,mac=52:54:00:12:34:56",
             "-netdev", f"stream,id=s,server=off,addr.type=unix,addr.path={sock}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in qemu.stdout:
            if "NB: READY" in line:
                return time.perf_counter() - t0
        raise SystemExit("floor: the guest never reported READY")
    finally:
        for p in (qemu, passt):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        for ns in (pod, node):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        sock.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("passt"):
        raise SystemExit("bench/up.py needs root and passt (apt-get install passt)")
    image = guest.ensure_guest()
    work = Path(tempfile.mkdtemp(prefix="nb-bench-up-", dir="/run"))
    runtime = Path("/run") / f"nb-bench-{secrets.token_hex(2)}"
    try:
        run_up(runtime), run_floor(image, work)          # warm-up (not counted)
        ups, floors = [], []
        for _ in range(args.rounds):
            ups.append(run_up(runtime))
            floors.append(run_floor(image, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    up_med = statistics.median(u["wall"] for u in ups)
    floor_med = statistics.median(floors)
    phase_names = list(ups[0]["phases"])
    phases = {name: statistics.median(u["phases"].get(name, 0.0) for u in ups) for name in phase_names}
    result = {"rounds": args.rounds, "up_to_ready_s": round(up_med, 3), "floor_s": round(floor_med, 3),
              "overhead_s": round(up_med - floor_med, 3),
              "process_start_and_imports_s": round(statistics.median(u["wall"] - u["in_process"] for u in ups), 3),
              "phases_s": {k: round(v, 4) for k, v in phases.items()},
              "samples": {"up": [round(u["wall"], 3) for u in ups], "floor": [round(f, 3) for f in floors]}}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"netbind up -> guest READY (median of {args.rounds}): {up_med:.3f} s")
    print(f"floor: bare QEMU + passt in a netns -> READY:      {floor_med:.3f} s")
    print(f"overhead: {up_med - floor_med:+.3f} s (target < 1 s)")
    print(f"  {'process start + imports':<22} {result['process_start_and_imports_s'] * 1000:8.1f} ms")
    for name, seconds in phases.items():
        print(f"  {name:<22} {seconds * 1000:8.1f} ms")
    print(f"samples up {result['samples']['up']} floor {result['samples']['floor']}")


if __name__ == "__main__":
    main()
