"""Benchmark of the hook path: passt sidecar cold start, OnDefineDomain latency, sidecar RSS.

    .venv/bin/python bench/hooks.py [--calls 2000] [--starts 10] [--json]

* cold start: exec of ``python -m netbind.plugins.passt.sidecar`` to the first successful Info
  (median over --starts runs);
* latency: OnDefineDomain through our HookManager (client included, one channel as a launcher
  reuses within a define) with a realistic ~8 KB domain, p50/p99 over --calls calls;
* peak RSS of the sidecar process (VmHWM) after the calls.
Targets (issue 3): ready < 250 ms, p50 < 600 us, RSS < 45 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netbind.launcher.hooks import HookManager, RPCError, query_info

ORACLE = Path(__file__).resolve().parents[1].parent / "shared" / "oracle" / "passt-sidecar"
SIDECAR = [sys.executable, "-m", "netbind.plugins.passt.sidecar"]


def realistic_domain() -> tuple[bytes, bytes]:
    """A phase-2 domain as virt-launcher hands it over, padded with disks to ~8 KB."""
    vector = json.loads((ORACLE / "02-ports-tcp-udp-default.json").read_text())
    xml = vector["input_domain_xml"]
    disks = "".join(
        f'\t\t<disk device="disk" type="file" model="virtio-non-transitional">\n'
        f'\t\t\t<source file="/var/run/kubevirt-private/vmi-disks/disk{i}/disk.img"></source>\n'
        f'\t\t\t<target bus="virtio" dev="vd{chr(97 + i)}"></target>\n'
        f'\t\t\t<driver cache="none" error_policy="stop" io="native" name="qemu" type="raw" discard="unmap"></driver>\n'
        f'\t\t\t<alias name="ua-disk{i}"></alias>\n\t\t</disk>\n' for i in range(20))
    xml = xml.replace("\t</devices>", disks + "\t</devices>")
    return xml.encode(), vector["input_vmi_json"].encode()


def start(socket_path: Path) -> tuple[subprocess.Popen, float]:
    env = {k: v for k, v in os.environ.items() if k != "NETWORK_BINDING_PLUGIN_NAME"}
    env["NETBIND_HOOKS_AUDIT"] = os.environ.get("NETBIND_HOOKS_AUDIT", "diff")
    t0 = time.perf_counter()
    proc = subprocess.Popen([*SIDECAR, "--socket", str(socket_path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        if socket_path.exists():
            try:
                query_info(socket_path, timeout=1.0)
                return proc, time.perf_counter() - t0
            except RPCError:
                pass
        if proc.poll() is not None:
            raise RuntimeError("sidecar exited during start")
        time.sleep(0.001)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    domain, vmi = realistic_domain()
    workdir = Path(tempfile.mkdtemp(prefix="nb-bench-", dir="/tmp"))
    try:
        starts = []
        for i in range(args.starts):
            proc, seconds = start(workdir / f"s{i}" / "passt.sock")
            starts.append(seconds)
            stop(proc)
        proc, _ = start(workdir / "main" / "passt.sock")
        try:
            latencies = []
            with HookManager(workdir / "main") as manager:
                manager.collect(1, timeout=5)
                for _ in range(50):  # warm-up
                    manager.on_define_domain(domain, vmi)
                for _ in range(args.calls):
                    t0 = time.perf_counter()
                    manager.on_define_domain(domain, vmi)
                    latencies.append(time.perf_counter() - t0)
            rss = peak_rss_mb(proc.pid)
        finally:
            stop(proc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    latencies.sort()
    result = {
        "domain_bytes": len(domain),
        "cold_start_ms_median": round(statistics.median(starts) * 1000, 1),
        "cold_start_ms_max": round(max(starts) * 1000, 1),
        "on_define_domain_us_p50": round(latencies[len(latencies) // 2] * 1e6, 1),
        "on_define_domain_us_p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1e6, 1),
        "sidecar_peak_rss_mb": round(rss, 1),
        "calls": args.calls,
        "audit": os.environ.get("NETBIND_HOOKS_AUDIT", "diff"),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"domain size                 {result['domain_bytes']} bytes")
        print(f"cold start (exec->Info)     median {result['cold_start_ms_median']} ms, max {result['cold_start_ms_max']} ms  (target < 250 ms)")
        print(f"OnDefineDomain incl. client p50 {result['on_define_domain_us_p50']} us, p99 {result['on_define_domain_us_p99']} us  (target p50 < 600 us)")
        print(f"sidecar peak RSS            {result['sidecar_peak_rss_mb']} MB  (target < 45 MB)")
        print(f"audit mode                  {result['audit']}")


if __name__ == "__main__":
    main()
