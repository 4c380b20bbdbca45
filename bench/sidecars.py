#!/usr/bin/env python3
"""Hook sidecars as containers against host processes, same run (root, podman, images built).

Cold start: the passt sidecar of the rendered examples/passt launcher pod started the way `up`
starts it (``netbind.node.sidecars.start``: a container of localhost/netbind-passt-sidecar, or the
image map's host process) in a fresh pod sandbox, timed until virt-launcher's collection has its
``Info`` answered (``HookManager.collect``). Up: `netbind up -f examples/passt/ --wait` to the
guest's READY with NETBIND_SIDECARS=container and =process (bench/up.py's ``run_up``). Rounds
alternate; medians. Usage: .venv/bin/python bench/sidecars.py [--starts 15] [--ups 3] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

from _bench import ROOT  # noqa: E402  (also: the tiny guest unless NETBIND_GUEST says otherwise)

HERE = Path(__file__).resolve().parent


def cold_start(kind: str, runtime: Path) -> float:
    from netbind.api.loading import load_manifests
    from netbind.controller import render_launcher_pod
    from netbind.launcher.hooks import HookManager
    from netbind.node import sandbox, sidecars
    from netbind.node.images import ImageMap
    from netbind.review import configuration

    manifests = load_manifests([ROOT / "examples" / "passt"])
    pod_manifest = render_launcher_pod(manifests.vmi, configuration(manifests), nads=manifests.nads)
    containers = [c for c in pod_manifest["spec"]["containers"] if c["name"].startswith("hook-sidecar-")]
    (choice,) = sidecars.choose_all(containers, ImageMap.load(), kind)
    pod = sandbox.create_pod(manifests.vmi.metadata.name, manifests.vmi.namespace, runtime)
    try:
        t0 = time.perf_counter()
        sidecars.start(pod, [choice], pod_manifest, "virt-launcher-bench", "default")
        manager = HookManager(pod.names.hooks_dir, poll_period=0.002)
        try:
            manager.collect(1, timeout=60)
        finally:
            manager.close()
        return time.perf_counter() - t0
    finally:
        pod.down()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=15)
    parser.add_argument("--ups", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from netbind import _podman, images
    from netbind.node import sandbox

    if os.geteuid() != 0 or _podman.unavailable():
        raise SystemExit(f"bench/sidecars.py needs root and podman: {_podman.unavailable() or 'not root'}")
    built = {b.name: b for b in images.ensure(["passt"], say=lambda text: print(text, file=sys.stderr))}
    runtime = Path("/run") / f"nb-bench-sc-{secrets.token_hex(2)}"
    starts: dict[str, list[float]] = {"container": [], "process": []}
    try:
        cold_start("container", runtime), cold_start("process", runtime)      # warm-up
        for _ in range(args.starts):
            for kind in starts:
                starts[kind].append(cold_start(kind, runtime))
    finally:
        sandbox.down_all(runtime)
        sandbox.down_node(runtime)
    sys.path.insert(0, str(HERE))
    from up import run_up

    ups: dict[str, list[dict]] = {"container": [], "process": []}
    up_runtime = Path("/run") / f"nb-bench-scu-{secrets.token_hex(2)}"
    run_up(up_runtime, "container")                                          # warm-up
    for _ in range(args.ups):
        for kind in ups:
            ups[kind].append(run_up(up_runtime, kind))
    med = {kind: statistics.median(v) for kind, v in starts.items()}
    up_med = {kind: statistics.median(u["wall"] for u in v) for kind, v in ups.items()}
    phase = {kind: statistics.median(u["phases"]["sidecars+libvirtd"] + u["phases"]["hooks"] for u in v)
             for kind, v in ups.items()}
    result = {"image": built["passt"].tag, "image_mb": round(built["passt"].size / 1e6, 1),
              "cold_start_ms": {k: round(v * 1000, 1) for k, v in med.items()},
              "cold_start_ratio": round(med["container"] / med["process"], 2),
              "up_to_ready_s": {k: round(v, 3) for k, v in up_med.items()},
              "up_sidecar_phases_ms": {k: round(v * 1000, 1) for k, v in phase.items()},
              "samples": {"starts_ms": {k: [round(x * 1000, 1) for x in v] for k, v in starts.items()},
                          "ups_s": {k: [round(u["wall"], 3) for u in v] for k, v in ups.items()}}}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"sidecar cold start to Info answered (median of {args.starts}): container {med['container'] * 1000:.1f} ms,"
          f" host process {med['process'] * 1000:.1f} ms ({result['cold_start_ratio']:.2f}x)")
    print(f"up -> guest READY (median of {args.ups}): containers {up_med['container']:.3f} s,"
          f" processes {up_med['process']:.3f} s ({up_med['container'] - up_med['process']:+.3f} s)")
    print(f"  sidecars+libvirtd + hooks phases: container {phase['container'] * 1000:.1f} ms,"
          f" process {phase['process'] * 1000:.1f} ms")
    print(f"image {result['image']}: {result['image_mb']} MB")
    print(f"samples {result['samples']}")


if __name__ == "__main__":
    main()
