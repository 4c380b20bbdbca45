#!/usr/bin/env python3
"""Live migration of examples/passt/ between the two local nodes, back and forth (root).

Per migration: the transfer's wall time (libvirt's peer-to-peer migrate call: Begin/Prepare with the
target QEMU starting under TCG, the transfer, Finish/Confirm; what `virsh migrate` measures in the
migration notes), the whole `netbind migrate` (target pod, sidecars, hooks, transfer, link-refresh,
Shutdown, source teardown), libvirt's own figures for the completed job on the target (downtime,
elapsed), and the guest's carrier-up to its new DHCP lease (guest uptime stamps of its LINK and
LEASE reports). One warm-up migration, then --rounds measured ones; medians.
Usage: .venv/bin/python bench/migrate.py [--rounds 5] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import time
from pathlib import Path

from netbind.api.loading import load_manifests
from netbind.node import guest, migrate, runtime, sandbox

from _bench import ROOT  # noqa: E402  (also: the tiny guest unless NETBIND_GUEST says otherwise)

NAME = "vm-net-binding-passt"


def one(runtime_dir: Path) -> dict:
    t0 = time.perf_counter()
    result = migrate.migrate(NAME, migrate.MigrateOptions(runtime=runtime_dir, wait=True, wait_timeout=30))
    total = time.perf_counter() - t0
    phases = {p["phase"]: p["seconds"] for p in result.phases}
    return {"total_s": total, "transfer_s": phases["transfer"], "downtime_ms": result.job.get("downtime"),
            "elapsed_ms": result.job.get("time_elapsed"), "refresh_ms": result.link_refresh[0]["ms"],
            "link_up_to_lease_ms": result.lease["link_up_to_lease_ms"], "mib": result.job.get("data_processed", 0) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("passt"):
        raise SystemExit("bench/migrate.py needs root and passt (apt-get install passt)")
    guest.ensure_guest()
    runtime_dir = Path("/run") / f"nb-bench-mig-{secrets.token_hex(2)}"
    samples = []
    try:
        runtime.up(load_manifests([ROOT / "examples" / "passt"]),
                   runtime.UpOptions(runtime=runtime_dir, wait=True, wait_timeout=60))
        one(runtime_dir)                                   # warm-up (not counted)
        for _ in range(args.rounds):
            samples.append(one(runtime_dir))
    finally:
        sandbox.down_all(runtime_dir)
    keys = ["transfer_s", "total_s", "downtime_ms", "elapsed_ms", "refresh_ms", "link_up_to_lease_ms", "mib"]
    med = {k: round(statistics.median(s[k] for s in samples), 3) for k in keys}
    result = {"rounds": args.rounds, "medians": med,
              "samples": {k: [round(s[k], 3) for s in samples] for k in keys}}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"live migration of examples/passt/ between two local nodes (median of {args.rounds}):")
    print(f"  migrate call (libvirt p2p, unix socket)   {med['transfer_s']:.2f} s   (notes: 2.26-2.47 s)")
    print(f"  whole `netbind migrate` (with --wait)     {med['total_s']:.2f} s")
    print(f"  libvirt downtime / job elapsed            {med['downtime_ms']:.0f} ms / {med['elapsed_ms']:.0f} ms"
          "   (notes: 15-45 ms / 610-648 ms)")
    print(f"  link-refresh (down, 100 ms, up)           {med['refresh_ms']:.0f} ms")
    print(f"  guest carrier up -> new lease             {med['link_up_to_lease_ms']:.0f} ms   (notes: 137-215 ms)")
    print(f"  data sent                                 {med['mib']:.1f} MiB")
    print(f"samples {json.dumps(result['samples'])}")


if __name__ == "__main__":
    main()
