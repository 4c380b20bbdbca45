"""Four VMs with different bindings (passt, macvtap, managedTap, the bridge plugin) brought up at
once through the real CLI, then migrated one after another, then torn down, with the host leak
check of ``netbind.testing.leaks``. One command: ``sudo .venv/bin/python bench/concurrent_vms.py``.
Prints, per VM, `up`'s exit status and wall time and `migrate`'s outcome (a refusal with KubeVirt's
or the runtime's message counts as an answer, not a failure), then the leaks. Exit 1 on a failed
`up`, a failed migration of a migratable VM, or a leak."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from netbind.testing.leaks import LeakChecker

from _bench import ROOT  # noqa: E402  (also: the tiny guest unless NETBIND_GUEST says otherwise)

EXAMPLES = {"passt": "vm-net-binding-passt", "macvtap": "vm-net-binding-macvtap",
            "managedtap": "vm-net-binding-managedtap", "bridge-plugin": "vm-net-binding-bridge"}
REFUSED = ("Cannot migrate VMI", "the local runtime cannot")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "netbind.cli", *args]


def main() -> int:
    runtime = Path(f"/run/nb-conc-{secrets.token_hex(3)}")
    env = {**os.environ, "NETBIND_RUNTIME_DIR": str(runtime)}
    checker = LeakChecker(runtime)
    failures = 0
    try:
        t0 = time.monotonic()
        ups = {ex: subprocess.Popen(_cli("up", "-f", str(ROOT / "examples" / ex), "--wait", "-o", "quiet",
                                         "--guest-arg", "nb.echo=8080"),
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for ex in EXAMPLES}
        print(f"{'VM':<28} {'up rc':>5} {'up s':>6}  migrate")
        done = {}
        for ex, proc in ups.items():
            out, _ = proc.communicate(timeout=600)
            done[ex] = (proc.returncode, time.monotonic() - t0, out)
        checker.note()
        for ex, (rc, wall, out) in done.items():
            outcome = "-"
            if rc == 0:
                m0 = time.monotonic()
                moved = subprocess.run(_cli("migrate", EXAMPLES[ex], "--wait", "--timeout", "60"), env=env,
                                       capture_output=True, text=True, timeout=300)
                text = (moved.stdout + moved.stderr).strip().splitlines()
                if moved.returncode == 0:
                    outcome = f"moved in {time.monotonic() - m0:.1f} s"
                elif any(r in (moved.stderr or "") for r in REFUSED):
                    outcome = "refused: " + next((l for l in text if any(r in l for r in REFUSED)), text[-1])[:110]
                else:
                    failures += 1
                    outcome = "FAILED: " + (text[-1] if text else f"exit {moved.returncode}")
                checker.note()
            else:
                failures += 1
                outcome = "(up failed) " + " | ".join(out.strip().splitlines()[-3:])[:300]
            print(f"{EXAMPLES[ex]:<28} {rc:>5} {wall:>6.1f}  {outcome}", flush=True)
    finally:
        checker.note()
        down = subprocess.run(_cli("down", "--all"), env=env, capture_output=True, text=True)
        leaks = checker.leaks()
    print(f"down --all: exit {down.returncode}; leaks: {len(leaks)}")
    for leak in leaks:
        print("  leak:", leak)
    return 1 if failures or leaks or down.returncode else 0


if __name__ == "__main__":
    sys.exit(main())
