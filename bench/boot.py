#!/usr/bin/env python3
"""Node runtime boot benchmark (root): private libvirtd start, and the tiny guest's cold start.

Per round: a fresh pod sandbox (netns, veth to the node, in-pod bridge + tap, dnsmasq in the node
namespace), a fresh private libvirtd, then define + start of the guest (TCG) until its DHCP LEASE
line appears on the serial console; then teardown. Prints medians (and all samples) as a table
and, with --json, as JSON. Usage: .venv/bin/python bench/boot.py [--rounds 5] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from netbind.node import guest, libvirt as lv, procs, sandbox

MAC = "52:54:00:be:00:01"


def one_round(image: guest.GuestImage, runtime: Path, index: int) -> dict[str, float]:
    t0 = time.perf_counter()
    node = sandbox.ensure_node(runtime)
    pod = sandbox.create_pod(f"bench-{index}", runtime=runtime)
    try:
        peer = sandbox.node_veth_name(pod.names, "eth0")
        pod.apply(sandbox.veth_to_node(pod.names, node.names, "eth0", peer)
                  + (sandbox.Address("10.239.0.1/24", peer, node.netns),)
                  + sandbox.bridged_tap(pod.netns, "eth0", "k6t-eth0", "tap0"))
        argv = ("dnsmasq", "--no-daemon", "--port=0", f"--interface={peer}", "--bind-interfaces",
                "--dhcp-range=10.239.0.50,10.239.0.60", "--no-ping", "--no-resolv", "--no-hosts",
                f"--dhcp-leasefile={pod.names.directory / 'leases'}")
        pod.start(procs.ProcessSpec("dnsmasq", argv, pod.names.logs_dir / "dnsmasq.log",
                                    pod.names.directory / "pids" / "dnsmasq.pid", netns=node.netns))
        t1 = time.perf_counter()
        libvirtd = lv.PrivateLibvirtd.start(pod)
        t2 = time.perf_counter()
        libvirtd.conn.getVersion()
        t3 = time.perf_counter()
        xml = lv.minimal_domain_xml("nb-bench", [("tap0", MAC)])
        xml = lv.with_serial_log(lv.with_direct_kernel_boot(lv.to_tcg(xml), image.kernel, image.initrd,
                                                            image.cmdline()), pod.names.directory / "console.log")
        t4 = time.perf_counter()
        libvirtd.define(xml)
        libvirtd.start_domain("nb-bench")
        t5 = time.perf_counter()
        console = pod.names.directory / "console.log"
        lease = None
        while time.perf_counter() - t4 < 60:
            text = console.read_text() if console.exists() else ""
            lease = next((r for r in guest.parse_reports(text) if r.word == "LEASE"), None)
            if lease:
                break
            time.sleep(0.01)
        t6 = time.perf_counter()
        if lease is None:
            raise SystemExit(f"no lease in 60 s; console:\n{console.read_text()}")
        boot = next(r for r in guest.parse_reports(console.read_text()) if r.word == "BOOT")
        libvirtd.close()
    finally:
        t7 = time.perf_counter()
        sandbox.down(pod.netns, runtime)
        t8 = time.perf_counter()
    return {"sandbox_s": t1 - t0, "libvirtd_socket_s": t2 - t1, "libvirtd_first_call_s": t3 - t2,
            "define_start_s": t5 - t4, "define_start_to_lease_s": t6 - t4,
            "guest_uptime_at_init_s": float(boot.fields["uptime"]), "teardown_s": t8 - t7}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    t = time.perf_counter()
    image = guest.ensure_guest()
    ensure_s = time.perf_counter() - t
    runtime = Path(tempfile.mkdtemp(prefix="nb-bench-", dir="/run"))
    samples = []
    try:
        for i in range(args.rounds):
            samples.append(one_round(image, runtime, i))
    finally:
        sandbox.down_all(runtime)
    result = {"rounds": args.rounds, "guest_ensure_s": ensure_s, "guest_built": image.built,
              "median": {k: statistics.median(s[k] for s in samples) for k in samples[0]},
              "samples": samples}
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    print(f"guest image: {'built' if image.built else 'cached'} in {ensure_s:.2f} s ({image.directory})")
    print(f"{'phase':28} {'median':>8}   samples")
    for key, median in result["median"].items():
        print(f"{key:28} {median:8.3f}   " + " ".join(f"{s[key]:.3f}" for s in samples))


if __name__ == "__main__":
    main()
