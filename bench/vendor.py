#!/usr/bin/env python3
"""From `netbind new` to a booted VM, per shape (root, podman; caches warm: bases, pip, guest).

Each round, for each shape, in a fresh temporary directory with a fresh plugin name, through the
real commands a vendor types: `netbind new NAME --shape S`; `pip install -e .` (shapes with code);
the project's `pytest`; `netbind image build --project .` (shapes with an image: the image is new,
its name is); `netbind up -f example/ --wait` until the guest's lease (the sidecar as a container of
that image). Not timed: `netbind down --all`, `pip uninstall`, removing the image. Medians over
rounds. Goal (issue 12): under 10 minutes per shape, under 3 for zero-code.
Usage: sudo .venv/bin/python bench/vendor.py [--rounds 3] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = ("zero-code", "sidecar", "cni-sidecar")
STEPS = ("new", "install", "tests", "image", "up")


def _netbind(*args: str) -> list[str]:
    return [sys.executable, "-m", "netbind.cli", *args]


def _timed(argv: list[str], cwd: Path, env: dict, what: str) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=1800)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{what} failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    return seconds


def one(shape: str, scratch: Path) -> dict[str, float]:
    from netbind import _podman

    name = f"nb{secrets.token_hex(3)}-{shape.split('-')[0]}"
    runtime = Path("/run") / f"nb-bench-{secrets.token_hex(3)}"
    env = dict(os.environ, NETBIND_RUNTIME_DIR=str(runtime),
               NETBIND_SIDECARS="process" if shape == "zero-code" else "container")
    project = scratch / name
    times = {step: 0.0 for step in STEPS}
    code = shape != "zero-code"
    try:
        times["new"] = _timed(_netbind("new", name, "--shape", shape), scratch, env, "netbind new")
        if code:
            times["install"] = _timed([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "-e",
                                       str(project)], project, env, "pip install -e")
        times["tests"] = _timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], project, env,
                                "the project's pytest")
        if code:
            times["image"] = _timed(_netbind("image", "build", "--project", "."), project, env, "image build")
        times["up"] = _timed(_netbind("up", "-f", "example/", "--wait"), project, env, f"netbind up ({shape})")
    finally:
        subprocess.run(_netbind("down", "--all"), cwd=scratch, env=env, capture_output=True)
        if code:
            subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", name], capture_output=True)
            _podman.run("rmi", "--force", f"localhost/{name}-sidecar:latest", check=False)
        shutil.rmtree(runtime, ignore_errors=True)
    times["total"] = sum(times[s] for s in STEPS)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/vendor.py needs root (netbind up)", file=sys.stderr)
        return 2
    results: dict[str, list[dict[str, float]]] = {shape: [] for shape in opts.shapes}
    with tempfile.TemporaryDirectory(prefix="nb-vendor-") as tmp:
        for _ in range(opts.rounds):
            for shape in opts.shapes:
                results[shape].append(one(shape, Path(tmp)))
    summary = {shape: {key: round(statistics.median(r[key] for r in runs), 2) for key in (*STEPS, "total")}
               | {"total_range": [round(min(r["total"] for r in runs), 2), round(max(r["total"] for r in runs), 2)]}
               for shape, runs in results.items()}
    if opts.json:
        print(json.dumps({"rounds": opts.rounds, "medians": summary, "runs": results}, indent=2))
        return 0
    print(f"netbind new -> booted VM, medians of {opts.rounds} (seconds)")
    print(f"{'shape':12} " + " ".join(f"{s:>8}" for s in (*STEPS, "total")) + "  total range")
    for shape, row in summary.items():
        low, high = row["total_range"]
        print(f"{shape:12} " + " ".join(f"{row[s]:8.2f}" for s in (*STEPS, "total")) + f"  {low:.2f}-{high:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
