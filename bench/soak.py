"""Soak: 50 `netbind up --wait`/`down --all` cycles of the passt example, then one VM migrated 30
times back and forth, through the real CLI (netbind.testing.soak). One command:
``sudo .venv/bin/python bench/soak.py [--cycles 50] [--migrations 30] [--json FILE]``.

Prints per command the median and p90 wall time, and for every recorded metric the median of the
first third of the run against the last third (host: namespaces, processes, open files, available
memory; the VM: its processes, their open descriptors and resident memory), then the failed steps
(a failed migration is the flake this measures: `migrate --wait` says why) and the leaks found
after each `down`. Exit 1 on a leak or a failed `up`/`down`."""
from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import statistics
import sys
from pathlib import Path

from netbind.node import sandbox
from netbind.testing.soak import Soak, growth

from _bench import ROOT  # noqa: E402  (also: the tiny guest unless NETBIND_GUEST says otherwise)



def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def _report(title: str, steps, command: str) -> None:
    chosen = [s for s in steps if s.command == command]
    ok = [s.seconds for s in chosen if s.exit == 0]
    print(f"\n{title}: {len(ok)}/{len(chosen)} succeeded"
          + (f"; median {statistics.median(ok):.2f} s, p90 {_p90(ok):.2f} s" if ok else ""))
    for key, (first, last) in growth(steps, command).items():
        if key != "seconds":
            print(f"  {key:<22} first third {first:>12,.0f}   last third {last:>12,.0f}   change {last - first:+,.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--migrations", type=int, default=30)
    parser.add_argument("--json", type=Path, help="write every step here")
    args = parser.parse_args()
    runtime = Path(f"/run/nb-soak-{secrets.token_hex(3)}")

    def progress(step) -> None:
        mark = "ok" if step.ok else f"FAILED (exit {step.exit}) {step.tail}"
        print(f"  {step.command:<8} {step.index:>3} {step.seconds:6.2f} s  vm fds {sum(step.vm_fds.values()):>4}"
              f"  host netns {step.host['netns']:>3}  {mark}", flush=True)
        for leak in step.leaks:
            print(f"      leak: {leak}", flush=True)

    soak = Soak(runtime, ROOT / "examples" / "passt", "vm-net-binding-passt", progress=progress)
    try:
        print(f"{args.cycles} up/down cycles", flush=True)
        cycles = soak.cycles(args.cycles)
        print(f"{args.migrations} migrations", flush=True)
        moves = soak.migrations(args.migrations)
    finally:
        sandbox.down_all(runtime)
    _report("up (cycles)", cycles, "up")
    _report("down (cycles)", cycles, "down")
    _report("migrate", moves, "migrate")
    steps = cycles + moves
    failed = [s for s in steps if s.exit != 0]
    leaks = [leak for s in steps for leak in s.leaks]
    migrations = [s for s in moves if s.command == "migrate"]
    bad_moves = [s for s in migrations if s.exit != 0]
    print(f"\nmigrations failed: {len(bad_moves)}/{len(migrations)}; failed steps: {len(failed)}; leaks: {len(leaks)}")
    for step in failed:
        print(f"  {step.command} {step.index}: exit {step.exit}: {step.tail}")
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(s) for s in steps], indent=1))
    return 1 if leaks or any(s.command != "migrate" for s in failed) else 0


if __name__ == "__main__":
    sys.exit(main())
