"""The migration's wait for the guest's new lease, on console text (no VM): a guest that died and
rebooted after the hand-over is named at once with its kernel's last words, not after the timeout."""
from __future__ import annotations

import pytest

from netbind.node import guest, migrate
from netbind.node.runtime import UpError

BEFORE = """NB: BOOT uptime=1.93 kernel=6.1.0-57-amd64
NB: LEASE iface=eth0 ip=10.244.0.10 mask=24 router=10.244.0.1 dns= mac=52:54:00:12:ce:f0 lease=4294967295 mtu=65520 serverid=10.244.0.1 event=bound uptime=2.37
NB: READY uptime=2.44 ifaces=eth0
"""
# the shape CI recorded once (stop 20): init killed after the hand-over, panic, reboot
DIED = """[    6.850001] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b
[    6.851000] CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0-57-amd64 #1  Debian 6.1.158-1
[    6.857161]  </TASK>
[    6.857683] Kernel Offset: disabled
NB: BOOT uptime=1.93 kernel=6.1.0-57-amd64
NB: LEASE iface=eth0 ip=10.244.1.10 mask=24 router=10.244.1.1 dns= mac=52:54:00:12:ce:f0 lease=4294967295 mtu=65520 serverid=10.244.1.1 event=bound uptime=2.37
"""
REFRESHED = """NB: LINK iface=eth0 state=down changes=3 uptime=7.10
NB: LINK iface=eth0 state=up changes=4 uptime=7.21
NB: LEASE iface=eth0 ip=10.244.1.10 mask=24 router=10.244.1.1 dns= mac=52:54:00:12:ce:f0 lease=4294967295 mtu=65520 serverid=10.244.1.1 event=bound uptime=7.90
"""


def test_a_lease_after_the_link_refresh_is_the_new_lease(tmp_path):
    console = tmp_path / "console.log"
    console.write_text(BEFORE + REFRESHED)
    lease = migrate._wait_for_new_lease(console, 1, migrate._boots(guest.parse_reports(BEFORE)))
    assert lease == {"iface": "eth0", "ip": "10.244.1.10", "router": "10.244.1.1", "link_up_to_lease_ms": 690}


# the cloud guest (systemd-networkd) reports its carrier at boot too
CLOUD_BEFORE = """NB: BOOT uptime=12.27 kernel=6.1.0-50-cloud-amd64 guest=cloud
NB: LINK iface=eth0 state=up uptime=20.78
NB: LEASE iface=eth0 ip=10.244.0.10 mask=24 router=10.244.0.1 dns= mac=52:54:00:69:e9:23 lease=4294967295 mtu=65520 serverid=10.244.0.1 event=bound uptime=21.19
NB: READY uptime=37.34 ifaces=eth0 guest=cloud
"""


def test_the_boot_time_carrier_and_lease_the_console_brought_along_are_not_the_new_lease(tmp_path):
    console = tmp_path / "console.log"
    console.write_text(CLOUD_BEFORE)
    before = guest.parse_reports(CLOUD_BEFORE)
    with pytest.raises(UpError, match="no new lease"):
        migrate._wait_for_new_lease(console, 0.2, migrate._boots(before), len(before))
    console.write_text(CLOUD_BEFORE + REFRESHED)
    lease = migrate._wait_for_new_lease(console, 1, migrate._boots(before), len(before))
    assert lease["ip"] == "10.244.1.10" and lease["link_up_to_lease_ms"] == 690


def test_a_guest_that_rebooted_after_the_hand_over_is_named_with_its_kernel_panic(tmp_path):
    console = tmp_path / "console.log"
    console.write_text(BEFORE + DIED)
    with pytest.raises(UpError) as caught:
        migrate._wait_for_new_lease(console, 30, migrate._boots(guest.parse_reports(BEFORE)))
    assert "the guest rebooted after the migration" in caught.value.message
    assert caught.value.details.splitlines()[1].endswith("Attempted to kill init! exitcode=0x0000000b")
    assert "NB: BOOT" not in caught.value.details


def test_no_lease_within_the_timeout_shows_the_console_tail(tmp_path):
    console = tmp_path / "console.log"
    console.write_text(BEFORE)
    with pytest.raises(UpError, match="no new lease within 0.2 s"):
        migrate._wait_for_new_lease(console, 0.2, migrate._boots(guest.parse_reports(BEFORE)))


@pytest.mark.parametrize("argv", [["migrate", "nb-no-such-vm", "--wait", "-o", "quiet"],
                                  ["up", "-f", "{manifests}", "-o", "quiet"]])
def test_quiet_output_still_says_why_a_command_failed_in_one_line(tmp_path, argv):
    """-o quiet prints nothing on success; a failure used to exit 1 with no word at all."""
    import os
    import subprocess
    import sys

    (tmp_path / "vm.yaml").write_text("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: nb-q}\n"
                                      "spec:\n  template:\n    spec:\n      domain:\n        devices:\n"
                                      "          interfaces: [{name: default, binding: {name: nb-unregistered}}]\n"
                                      "      networks: [{name: default, pod: {}}]\n")
    argv = [a.replace("{manifests}", str(tmp_path)) for a in argv]
    done = subprocess.run([sys.executable, "-m", "netbind.cli", *argv], capture_output=True, text=True,
                          env={**os.environ, "NETBIND_RUNTIME_DIR": str(tmp_path / "runtime")}, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("error: admission: ", "error: render: ")), done.stderr
    assert "nb-no-such-vm" in lines[0] or "nb-unregistered" in lines[0]
