"""Benchmark: wall time of one ADD of the passt binding CNI plugin (exec to exit), median of 50.

Measured in the same run as two floors: the interpreter alone (``python -I -S -c pass``, same
interpreter as the plugin's launcher) and Debian's compiled ``tuning`` plugin setting a sysctl in
a namespace (similar work). Each ADD is followed by an untimed DEL. Run as root:

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


def timed(argv, stdin: bytes, env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, env=env, capture_output=True)
    elapsed = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {proc.stdout.decode()} {proc.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50)
    parser.add_argument("--plugin", help="plugin executable (default: the venv console script; "
                                         "pass an installed launcher from deploy/cni/install.sh)")
    opts = parser.parse_args()
    plugin = opts.plugin or shutil.which("netbind-cni-passt-binding",
                                         path=os.path.dirname(sys.executable))
    tuning = "/usr/lib/cni/tuning"
    if os.geteuid() != 0 or not plugin or not os.path.exists(tuning):
        raise SystemExit("needs root, the netbind-cni-passt-binding script and /usr/lib/cni/tuning")
    with open(plugin) as fh:  # the interpreter the console script runs
        interpreter = fh.readline()[2:].strip().split()[0]
    print(f"plugin {plugin} (interpreter {interpreter})", file=sys.stderr)
    ns = f"nb-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    data = tempfile.mkdtemp(prefix="nb-bench-")
    try:
        netns = f"/run/netns/{ns}"
        env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "bench", "CNI_NETNS": netns,
               "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni", "PATH": os.environ.get("PATH", "")}
        passt_conf = json.dumps({"cniVersion": "1.0.0", "name": "netbindingpasst",
                                 "type": "kubevirt-passt-binding", "dataDir": data,
                                 "args": {"cni": {"logicNetworkName": "default"}}}).encode()
        tuning_conf = json.dumps({"cniVersion": "1.0.0", "name": "bench", "type": "tuning",
                                  "sysctl": {"net.ipv4.ip_unprivileged_port_start": "0"},
                                  "prevResult": {"cniVersion": "1.0.0"}}).encode()
        floor, go, ours = [], [], []
        for _ in range(opts.n):  # interleaved, so machine noise hits all three alike
            floor.append(timed([interpreter, "-I", "-S", "-c", "pass"], b"", env))
            go.append(timed([tuning], tuning_conf, env))
            ours.append(timed([plugin], passt_conf, env))
            subprocess.run([plugin], input=passt_conf, env=dict(env, CNI_COMMAND="DEL"), check=True,
                           capture_output=True)
        med = {k: statistics.median(v) for k, v in
               (("interpreter", floor), ("tuning", go), ("passt", ours))}
        report = {
            "runs": opts.n,
            "median_ms": {k: round(v, 2) for k, v in med.items()},
            "p90_ms_passt": round(sorted(ours)[int(0.9 * len(ours)) - 1], 2),
            "passt_over_interpreter": round(med["passt"] / med["interpreter"], 2),
            "passt_over_tuning": round(med["passt"] / med["tuning"], 2),
            "target": "passt median < 25 ms and <= 2.5x interpreter",
            "target_met": med["passt"] < 25 and med["passt"] <= 2.5 * med["interpreter"],
        }
        print(json.dumps(report, indent=2))
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
