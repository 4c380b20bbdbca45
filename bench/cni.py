"""Benchmark: wall time of one ADD of the passt binding CNI plugin (exec to exit), median of 50.

The plugin measured is the one a node runs: the installer image (``deploy/cni``) installs its
self-contained bundle into a scratch node directory, and the ``kubevirt-passt-binding`` link there
is executed. Measured in the same run, interleaved: the frozen floor (the same bundle started under
a name it does not serve: bootloader, interpreter and the dispatcher, no plugin code), the
interpreter floor (``python3 -I -S -c pass``), the same plugin run from the virtualenv, and Debian's
compiled ``tuning`` plugin setting a sysctl in a namespace (similar work). Each ADD is followed by
an untimed DEL. Run as root:

    .venv/bin/python bench/cni.py [-n 50]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TUNING = "/usr/lib/cni/tuning"


def timed(argv, stdin: bytes, env: dict, ok=(0,)) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, env=env, capture_output=True)
    elapsed = (time.perf_counter() - start) * 1000
    if proc.returncode not in ok:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {proc.stdout.decode()} {proc.stderr.decode()}")
    return elapsed


def install_bundle(node: Path) -> Path:
    """The installer image, run as the DaemonSet runs it, against ``node``; returns its bin dir."""
    from netbind import _podman, images

    (installer,) = images.ensure(["cni"], say=lambda text: print(text, file=sys.stderr))
    (node / "opt/cni").mkdir(parents=True)
    _podman.run("run", "--rm", "--privileged", "--network=none", "-v", f"{node}/opt/cni:/host/opt/cni",
                "--entrypoint", "/usr/local/bin/netbind-cni-install", installer.tag, timeout=120)
    return node / "opt/cni/bin"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50)
    opts = parser.parse_args()
    venv_plugin = shutil.which("netbind-cni-passt-binding", path=os.path.dirname(sys.executable))
    if os.geteuid() != 0 or not venv_plugin or not os.path.exists(TUNING):
        raise SystemExit(f"needs root, podman, the netbind-cni-passt-binding script and {TUNING}")
    scratch = Path(tempfile.mkdtemp(prefix="nb-bench-cni-"))
    ns = f"nb-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        bin_dir = install_bundle(scratch / "node")
        frozen = str(bin_dir / "netbind-cni-passt-binding")
        bundle = str(bin_dir / os.readlink(frozen))
        print(f"installed bundle {bundle}", file=sys.stderr)
        data = scratch / "data"
        env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "bench", "CNI_NETNS": f"/run/netns/{ns}",
               "CNI_IFNAME": "eth0", "CNI_PATH": str(bin_dir), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        passt_conf = json.dumps({"cniVersion": "1.0.0", "name": "netbindingpasst",
                                 "type": "kubevirt-passt-binding", "dataDir": str(data),
                                 "args": {"cni": {"logicNetworkName": "default"}}}).encode()
        tuning_conf = json.dumps({"cniVersion": "1.0.0", "name": "bench", "type": "tuning",
                                  "sysctl": {"net.ipv4.ip_unprivileged_port_start": "0"},
                                  "prevResult": {"cniVersion": "1.0.0"}}).encode()
        runs: dict[str, list[float]] = {k: [] for k in ("frozen", "frozen_floor", "venv", "interpreter", "tuning")}
        for _ in range(opts.n):  # interleaved, so machine noise hits all alike
            runs["frozen_floor"].append(timed([bundle], b"", env, ok=(2,)))
            runs["interpreter"].append(timed(["/usr/bin/python3", "-I", "-S", "-c", "pass"], b"", env))
            runs["tuning"].append(timed([TUNING], tuning_conf, env))
            for key, plugin in (("frozen", frozen), ("venv", venv_plugin)):
                runs[key].append(timed([plugin], passt_conf, env))
                subprocess.run([plugin], input=passt_conf, env=dict(env, CNI_COMMAND="DEL"), check=True,
                               capture_output=True)
        med = {k: statistics.median(v) for k, v in runs.items()}
        report = {
            "runs": opts.n,
            "median_ms": {k: round(v, 2) for k, v in med.items()},
            "p90_ms_frozen": round(sorted(runs["frozen"])[int(0.9 * opts.n) - 1], 2),
            "frozen_over_frozen_floor": round(med["frozen"] / med["frozen_floor"], 2),
            "frozen_over_interpreter": round(med["frozen"] / med["interpreter"], 2),
            "frozen_over_tuning": round(med["frozen"] / med["tuning"], 2),
            "kubevirt_go_plugin_ms": 6,
            "target": "installed passt ADD median < 25 ms and <= 2.5x the interpreter floor",
            "target_met": med["frozen"] < 25 and med["frozen"] <= 2.5 * med["interpreter"],
        }
        print(json.dumps(report, indent=2))
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
