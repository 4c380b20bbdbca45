"""A macvtap VM's libvirtd sees its pod's own macvtap device at /dev/tap<ifindex> (root).

ifindexes are per network namespace but the host's /dev has one node per name, so with a macvtap of
the same ifindex elsewhere, /dev/tap<N> is the other one: the pod's QEMU opened it, and its traffic
left through the other lower device (another runtime's dnsmasq answered) or the open failed ("Unable
to create multiple fds for tap device"). Here decoy macvtaps in a namespace of the test's own take
the likely ifindexes first."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from .conftest import require_node_runtime
from .test_up import EXAMPLES, require_node_binaries

DECOY_INDEXES = range(2, 40)


def _cli(env, *args):
    return subprocess.run([sys.executable, "-m", "netbind.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def _dev(path: str) -> str:
    st = os.stat(path)
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


def test_a_macvtap_vm_uses_its_own_pods_device_when_its_ifindex_is_taken_elsewhere(guest_image):
    require_node_runtime()
    require_node_binaries()
    decoy = f"nb-decoy-{secrets.token_hex(3)}"
    runtime = Path(f"/run/nb-mvd-{secrets.token_hex(3)}")
    env = {**os.environ, "NETBIND_RUNTIME_DIR": str(runtime)}
    subprocess.run(["ip", "netns", "add", decoy], check=True)
    try:
        ip = ["ip", "-n", decoy, "link"]
        subprocess.run([*ip, "add", "nbdlow", "index", "1000", "type", "veth", "peer", "nbdpeer", "index", "1001"],
                       check=True)
        for index in DECOY_INDEXES:
            subprocess.run([*ip, "add", "link", "nbdlow", "name", f"nbdt{index}", "index", str(index),
                            "type", "macvtap"], check=True)
        up = _cli(env, "up", "-f", str(EXAMPLES / "macvtap"), "--wait", "-o", "json")
        try:
            assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
            vmi = json.loads(up.stdout)["vmi"]
            macvtap = next(i for i in vmi["status"]["interfaces"] if i["name"] == "macvtapnet")
            pod = next((runtime / "pods").iterdir())
            listed = subprocess.run(["ip", "netns", "exec", pod.name, "sh", "-c",
                                     "for f in /sys/class/net/*/macvtap/tap*/dev; do echo $f $(cat $f); done"],
                                    capture_output=True, text=True, check=True).stdout.split()
            node, own = f"/dev/{Path(listed[0]).parent.name}", listed[1]
            assert int(node.removeprefix("/dev/tap")) in DECOY_INDEXES, "the decoys did not take this ifindex"
            assert _dev(node) != own, "the host's node should be the decoy's (the collision this test needs)"
            libvirtd = int((pod / "pids" / "libvirtd.pid").read_text())
            seen = subprocess.run(["nsenter", "-t", str(libvirtd), "-m", "stat", "-c", "%t:%T", node],
                                  capture_output=True, text=True, check=True).stdout.strip()
            mounts = Path(f"/proc/{libvirtd}/mountinfo").read_text()
            assert ":".join(str(int(x, 16)) for x in seen.split(":")) == own, \
                f"libvirtd's mounts on /dev: {[m for m in mounts.splitlines() if ' /dev/' in m]}"
            assert macvtap.get("ipAddress"), f"no lease through the pod's own macvtap: {macvtap}"
        finally:
            down = _cli(env, "down", "--all")
            assert down.returncode == 0, down.stderr
    finally:
        subprocess.run(["ip", "netns", "del", decoy], check=False)
    assert not runtime.exists()
