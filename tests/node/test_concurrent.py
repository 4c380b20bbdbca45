"""Four VMs with different bindings (passt, macvtap, managedTap, the bridge plugin) brought up at
once through the real CLI in one runtime, each leasing; then migrated one after another (the passt
VM moves; the others get their refusal, KubeVirt's or the local runtime's, and keep running);
then `down --all` leaves nothing (netbind.testing.leaks). bench/concurrent_vms.py is the same drill."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from netbind.testing.leaks import LeakChecker

from .test_up import EXAMPLES, require_node_binaries

VMS = {"passt": "vm-net-binding-passt", "macvtap": "vm-net-binding-macvtap",
       "managedtap": "vm-net-binding-managedtap", "bridge-plugin": "vm-net-binding-bridge"}
NOT_MIGRATABLE = "Cannot migrate VMI, Reason: InterfaceNotLiveMigratable"
SHARED_LOWER_DEVICE = "both local nodes share that one device"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "netbind.cli", *args]


def test_four_vms_with_different_bindings_at_once_lease_migrate_in_turn_and_leave_nothing(guest_image, runtime):
    require_node_binaries()
    env = {**os.environ, "NETBIND_RUNTIME_DIR": str(runtime)}
    checker = LeakChecker(runtime)
    try:
        ups = {ex: subprocess.Popen(_cli("up", "-f", str(EXAMPLES / ex), "--wait", "-o", "json"), env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for ex in VMS}
        results = {ex: proc.communicate(timeout=600) + (proc.returncode,) for ex, proc in ups.items()}
        checker.note()
        for ex, (out, err, rc) in results.items():
            assert rc == 0, f"{ex}: up exited {rc}: {err[-3000:]}\nstdout: {out[-2000:]}"
            interfaces = json.loads(out)["vmi"]["status"]["interfaces"]
            assert interfaces and all(i.get("ipAddress") for i in interfaces), f"{ex}: no lease: {interfaces}"
        answers = {}
        for ex, name in VMS.items():
            moved = subprocess.run(_cli("migrate", name, "--wait"), env=env, capture_output=True, text=True,
                                   timeout=300)
            answers[ex] = (moved.returncode, moved.stderr)
            checker.note()
        assert answers["passt"][0] == 0, answers["passt"][1][-2000:]
        assert answers["macvtap"][0] != 0 and SHARED_LOWER_DEVICE in answers["macvtap"][1]
        for ex in ("managedtap", "bridge-plugin"):
            assert answers[ex][0] != 0 and NOT_MIGRATABLE in answers[ex][1], answers[ex][1][-2000:]
        listed = json.loads(subprocess.run(_cli("status", "-o", "json"), env=env, capture_output=True,
                                           text=True, check=True).stdout)
        assert len(listed) == 4, listed   # the refused VMs keep running where they were
    finally:
        checker.note()
        down = subprocess.run(_cli("down", "--all"), env=env, capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    assert checker.leaks() == []
