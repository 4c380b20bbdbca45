#!/usr/bin/env python3
"""Crash at every phase (root): `netbind up`, `migrate` and `down` of examples/passt/ killed with
SIGKILL at every journal write (after it, and with --before also just before it), at random moments
of the slow phases, and `up --wait` stopped with SIGTERM and Ctrl-C (SIGINT to its process group);
after each: `netbind down --all` (or `down NAME`), a leak check against a snapshot of the host
(netbind.testing.leaks), and the same VM must come up again (each kill run of `up` is a new `up`
after the previous cleanup and must reach its kill point; --restart-each adds a whole `up --wait`
after every point). Prints kill points tried and leaks found per command; exit 1 if any.
Usage: .venv/bin/python bench/crash.py [--commands up,migrate,down] [--before] [--random 8]
       [--signals 4] [--restart-each] [--passt auto|native|substitute] [--only N,M] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path

from netbind.node import guest, sandbox
from netbind.testing.crash import Drill, summary

from _bench import ROOT  # noqa: E402  (also: the tiny guest unless NETBIND_GUEST says otherwise)

NAME = "vm-net-binding-passt"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", default="up,migrate,down")
    parser.add_argument("--before", action="store_true", help="also kill just before each write")
    parser.add_argument("--random", type=int, default=8, help="random SIGKILLs per command (up, migrate)")
    parser.add_argument("--signals", type=int, default=4, help="SIGTERM and SIGINT each, of up --wait")
    parser.add_argument("--restart-each", action="store_true", help="a whole up --wait after every point")
    parser.add_argument("--passt", default=None, choices=["auto", "native", "substitute"])
    parser.add_argument("--sidecars", default=os.environ.get("NETBIND_SIDECARS", "process"),
                        choices=["auto", "container", "process"])
    parser.add_argument("--only", default="", help="write indices to try (default: all)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("passt"):
        raise SystemExit("bench/crash.py needs root and passt (apt-get install passt)")
    guest.ensure_guest()
    rng = random.Random(args.seed)
    runtime_dir = Path("/run") / f"nb-crash-{secrets.token_hex(3)}"
    env = dict(os.environ, NETBIND_SIDECARS=args.sidecars)
    drill = Drill(runtime_dir, ROOT / "examples" / "passt", NAME,
                  up_args=["--passt", args.passt] if args.passt else [], env=env)
    only = {int(i) for i in args.only.split(",") if i}
    points, counted = [], {}
    t0 = time.monotonic()

    def record(point) -> None:
        points.append(point)
        print(("ok   " if point.ok else "FAIL ") + point.describe(), flush=True)
        if args.restart_each:
            again = drill.restart()
            if not again.ok:
                points.append(again)
                print("FAIL " + again.describe(), flush=True)

    try:
        for command in args.commands.split(","):
            steps, baseline = drill.count(command)
            counted[command] = len(steps)
            points.append(baseline)
            print(f"== {command}: {len(steps)} journal writes" + ("" if baseline.ok else "\nFAIL "
                                                                   + baseline.describe()), flush=True)
            for index in range(1, len(steps) + 1):
                if only and index not in only:
                    continue
                record(drill.kill_at(command, index, steps=steps))
                if args.before:
                    record(drill.kill_at(command, index, before=True, steps=steps))
            if command in ("up", "migrate") and args.random:
                seconds = drill.duration(command)
                for _ in range(args.random):
                    record(drill.signal_at(command, signal.SIGKILL, rng.uniform(0.05, seconds)))
            if command == "up":
                seconds = drill.duration("up")
                for sig in (signal.SIGTERM, signal.SIGINT):
                    for _ in range(args.signals):
                        record(drill.signal_at("up", sig, rng.uniform(0.05, seconds)))
        final = drill.restart()
        points.append(final)
        print(("ok   " if final.ok else "FAIL ") + final.describe(), flush=True)
    finally:
        sandbox.down_all(runtime_dir)
        drill.close()
    table = summary(points)
    elapsed = time.monotonic() - t0
    if args.json:
        print(json.dumps({"writes": counted, "summary": table, "seconds": round(elapsed),
                          "failures": [p.describe() for p in points if not p.ok]}, indent=1))
    else:
        print(f"\n{'command':<9} {'writes':>6} {'points':>6} {'leaky':>6} {'leaks':>6} {'problems':>8}")
        for command, row in table.items():
            print(f"{command:<9} {counted.get(command, '-'):>6} {row['points']:>6} {row['leaky points']:>6}"
                  f" {row['leaks']:>6} {row['problems']:>8}")
        print(f"({elapsed:.0f} s)")
    return 0 if all(p.ok for p in points) else 1


if __name__ == "__main__":
    sys.exit(main())
