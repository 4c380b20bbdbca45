"""Benchmark: DISCOVER->OFFER and SOLICIT->ADVERTISE latency, netbind.dhcp against dnsmasq.

One client namespace and one server namespace joined by a veth; the same client (frames built by
scapy, sent and received on an AF_PACKET socket so the client's own overhead stays small) asks
each server in turn, in the same run: 1,000 timed exchanges per protocol after 50 warm-up ones.
Both servers log nothing per packet (dnsmasq --quiet-dhcp*, ours at WARNING). The servers take
turns in 10 rounds, and client and server share one CPU (``--cpu``), because on a busy 2-vCPU
machine a cross-CPU wake-up alone swings a round trip between ~12 and ~60 µs. Run as root:

    .venv/bin/python bench/dhcp.py [-n 1000] [--cpu 1]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MAC = "52:54:00:6e:62:01"
HERE = os.path.abspath(__file__)

_OUR_SERVER = """
import asyncio, logging, sys
from netbind.dhcp import Server
logging.basicConfig(level=logging.WARNING)
async def main():
    server = Server({"interface": sys.argv[1], "client_mac": sys.argv[2],
                     "v4": {"address": "10.0.2.2/24", "server_address": "10.0.2.1", "router": "10.0.2.1",
                            "dns": ["10.96.0.10"], "search": ["cluster.local"], "lease_time": 3600},
                     "v6": {"address": "fd00:10::2/64", "dns": ["fd00:10::53"], "rapid_commit": False}})
    await server.start()
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


# -- the client (runs inside the client namespace) --------------------------------------------

def client(kind: str, iface: str, count: int) -> list[float]:
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.dhcp6 import DHCP6_Solicit, DHCP6OptClientId, DHCP6OptElapsedTime, DHCP6OptIA_NA, DUID_LL
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.utils6 import in6_mactoifaceid

    frames, keys = [], []
    for i in range(count):
        if kind == "v4":
            xid = 0x10000000 + i
            frames.append(bytes(
                Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") /
                UDP(sport=68, dport=67) / BOOTP(chaddr=bytes.fromhex(MAC.replace(":", "")), xid=xid) /
                DHCP(options=[("message-type", "discover"), ("param_req_list", [1, 3, 6, 15, 119]), "end"])))
            keys.append((14 + 20 + 8 + 4, xid.to_bytes(4, "big"), 68))
        else:
            trid = 0x100000 + i
            frames.append(bytes(
                Ether(src=MAC, dst="33:33:00:01:00:02") /
                IPv6(src="fe80::" + in6_mactoifaceid(MAC), dst="ff02::1:2") / UDP(sport=546, dport=547) /
                DHCP6_Solicit(trid=trid) / DHCP6OptClientId(duid=DUID_LL(lladdr=MAC)) /
                DHCP6OptElapsedTime() / DHCP6OptIA_NA(iaid=7)))
            keys.append((14 + 40 + 8 + 1, trid.to_bytes(3, "big"), 546))
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((iface, 0))
    sock.settimeout(2.0)
    latencies = []
    for frame, (offset, key, port) in zip(frames, keys):
        udp = 14 + (20 if port == 68 else 40)
        start = time.perf_counter_ns()
        sock.send(frame)
        while True:
            try:
                data, addr = sock.recvfrom(2048)
            except socket.timeout:
                raise SystemExit(f"no answer to {kind} exchange {len(latencies)}")
            if addr[2] != socket.PACKET_OUTGOING and len(data) > offset + len(key) and \
                    data[udp + 2:udp + 4] == port.to_bytes(2, "big") and data[offset:offset + len(key)] == key:
                break
        latencies.append((time.perf_counter_ns() - start) / 1000)
    sock.close()
    return latencies


# -- the driver -------------------------------------------------------------------------------

def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def measure(client_ns: str, iface: str, kind: str, count: int, cpu: str, warmup: int = 20) -> list[float]:
    out = subprocess.run(["taskset", "-c", cpu, "ip", "netns", "exec", client_ns, sys.executable, HERE, "--client", kind,
                          iface, str(count + warmup)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)[warmup:]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--cpu", default=str(max(0, (os.cpu_count() or 1) - 1)), help="CPU for client and servers")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--client", nargs=3, metavar=("KIND", "IFACE", "COUNT"), help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.client:
        print(json.dumps(client(opts.client[0], opts.client[1], int(opts.client[2]))))
        return 0
    dnsmasq = shutil.which("dnsmasq")
    if os.geteuid() != 0 or not dnsmasq:
        print("bench/dhcp.py needs root and dnsmasq (apt-get install dnsmasq-base)", file=sys.stderr)
        return 1
    tag = os.urandom(3).hex()
    sns, cns, sif, cif = f"nb-bs{tag}", f"nb-bc{tag}", f"nb-bs{tag}", f"nb-bc{tag}"
    tmp = tempfile.mkdtemp(prefix="nb-bench-dhcp-")
    procs: list[subprocess.Popen] = []
    results: dict[str, dict[str, list[float]]] = {}
    try:
        sh("ip", "netns", "add", sns)
        sh("ip", "netns", "add", cns)
        sh("ip", "link", "add", sif, "netns", sns, "type", "veth", "peer", "name", cif, "netns", cns)
        for ns, ifc in ((sns, sif), (cns, cif)):
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{ifc}.accept_dad=0")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", cns, "link", "set", cif, "address", MAC)
        sh("ip", "-n", sns, "addr", "add", "10.0.2.1/24", "dev", sif)
        sh("ip", "-n", sns, "addr", "add", "fd00:10::1/64", "dev", sif, "nodad")
        sh("ip", "-n", sns, "link", "set", sif, "up")
        sh("ip", "-n", cns, "link", "set", cif, "up")
        time.sleep(0.5)
        servers = {
            "dnsmasq": ["taskset", "-c", opts.cpu, "ip", "netns", "exec", sns, dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null",
                        "--port=0", f"--interface={sif}", "--bind-interfaces", "--no-ping",
                        "--quiet-dhcp", "--quiet-dhcp6", "--log-facility=/dev/null", "--user=root",
                        f"--dhcp-leasefile={tmp}/leases", f"--pid-file={tmp}/dnsmasq.pid",
                        "--dhcp-range=10.0.2.2,10.0.2.2,255.255.255.0,1h",
                        "--dhcp-range=fd00:10::2,fd00:10::2,64,1h",
                        "--dhcp-option=option:router,10.0.2.1", "--dhcp-option=option:dns-server,10.96.0.10",
                        "--dhcp-option=option:domain-search,cluster.local",
                        "--dhcp-option=option6:dns-server,[fd00:10::53]"],
            "netbind": ["taskset", "-c", opts.cpu, "ip", "netns", "exec", sns, sys.executable, "-c", _OUR_SERVER, sif, MAC],
        }
        for name in ("dnsmasq", "netbind") * opts.rounds:   # interleaved rounds
            proc = subprocess.Popen(servers[name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(proc)
            if name == "netbind":
                proc.stdout.readline()
            else:
                time.sleep(0.3)
            if proc.poll() is not None:
                raise SystemExit(f"{name} did not start: {proc.stderr.read()}")
            got = results.setdefault(name, {"v4": [], "v6": []})
            for kind in ("v4", "v6"):
                got[kind] += measure(cns, cif, kind, opts.n // opts.rounds, opts.cpu)
            proc.terminate()
            proc.wait(10)
            procs.remove(proc)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        subprocess.run(["ip", "netns", "del", cns], capture_output=True)
        subprocess.run(["ip", "netns", "del", sns], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'exchange':24} {'server':8} {'p50 µs':>8} {'p99 µs':>8} {'n':>5}")
    for kind, label in (("v4", "DISCOVER->OFFER"), ("v6", "SOLICIT->ADVERTISE")):
        for name in ("netbind", "dnsmasq"):
            lat = results[name][kind]
            print(f"{label:24} {name:8} {statistics.median(lat):8.1f} {pct(lat, 0.99):8.1f} {len(lat):5d}")
        ratio = statistics.median(results["netbind"][kind]) / statistics.median(results["dnsmasq"][kind])
        print(f"{label:24} p50 netbind/dnsmasq = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
