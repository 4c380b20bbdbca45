#!/usr/bin/env python3
"""`netbind up` to the guest's READY, by phase, against the floor measured in the same run (root).

Up: `netbind up -f examples/passt/ --wait -o json` as a user runs it (a fresh process: Python start,
imports, validation, CNI, sidecar, private libvirtd, hooks, passt, define, start), timed from the
spawn to its exit, which happens when the guest reports READY (every NIC leased). Phases come
from its JSON output. Floor (host notes R3): the same guest (same kernel, initramfs and memory)
booted by bare QEMU + passt in a fresh namespace, timed from starting passt to READY on the serial
console. One warm-up round of each first (libvirt's capability cache, page cache), then --rounds
alternating rounds; medians. The sidecar runs as a host process (bench/sidecars.py compares it with
a container).

--cloud: the same for the cloud guest (booted from its disk, tens of seconds under TCG; 3 rounds by
default). Up adds `--guest cloud`. Floor: the cached cloud-guest disk through a fresh qcow2 overlay
per round (the base is never written) and the NoCloud ISO that netbind's launcher makes from the
example's cloudInitNoCloud (same files), booted by bare QEMU with the domain's machine, memory, CPU,
virtio disks and NIC, + passt in a fresh namespace, timed from starting passt to READY. On the
native passt path (what `up` took, from its JSON) that is the stack's QEMU and passt over
vhost-user with shared memory, as libvirt runs them; on the R6a path the host's QEMU on a stream
socket. The guest's own READY uptime is reported for both sides.
Usage: .venv/bin/python bench/up.py [--cloud] [--rounds N] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from netbind.node import guest

from _bench import NETBIND, ROOT  # noqa: E402  (also: the tiny guest unless NETBIND_GUEST says otherwise)

MEMORY = "977M"  # the example VM's 1024M request, as libvirt gets it
CLOUD_MEMORY = "1000448k"  # the same in KiB, as libvirt passes it to QEMU (-m size=...)
EXAMPLE = ROOT / "examples" / "passt"
MAC = "52:54:00:12:34:56"


def _ready_uptime(console: str) -> float | None:
    """The guest's own uptime at its READY report (the cloud guest prints it)."""
    ready = next((r for r in guest.parse_reports(console) if r.word == "READY"), None)
    try:
        return float(ready.fields["uptime"]) if ready else None
    except (KeyError, ValueError):
        return None


def run_up(runtime: Path, checker=None, extra: tuple[str, ...] = (), sidecars: str = "process") -> dict:
    env = {**os.environ, "NETBIND_RUNTIME_DIR": str(runtime), "NETBIND_SIDECARS": sidecars}
    t0 = time.perf_counter()
    proc = subprocess.run([str(NETBIND), "up", "-f", str(EXAMPLE), "--wait", "-o", "json", *extra],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    try:
        if proc.returncode != 0:
            raise SystemExit(f"netbind up failed: {proc.stdout}\n{proc.stderr}")
        out = json.loads(proc.stdout)
        phases = {p["phase"]: p["seconds"] for p in out["phases"]}
        uptime = None
        try:
            state = json.loads((runtime / "pods" / out["pod"] / "runtime.json").read_text())
            uptime = _ready_uptime(Path(state["console"]).read_text(errors="replace"))
        except (OSError, ValueError, KeyError):
            pass
        return {"wall": wall, "phases": phases, "in_process": sum(phases.values()), "ready_uptime": uptime,
                "passt_path": out.get("host", {}).get("passtPath", {}).get("path")}
    finally:
        if checker is not None:
            checker.note()
        subprocess.run([str(NETBIND), "down", "--all"], capture_output=True, env=env)


def _netns_pair(tag: str) -> tuple[str, str]:
    """A pod namespace with eth0 10.244.0.10/24 (default via the node end), as the pod network's CNI
    leaves it."""
    pod, node = f"nb-bfp-{tag}", f"nb-bfn-{tag}"
    sh = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    for ns in (pod, node):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "link", "add", "eth0", "netns", pod, "type", "veth", "peer", "name", "v0", "netns", node)
    sh("ip", "-n", node, "addr", "add", "10.244.0.1/24", "dev", "v0")
    sh("ip", "-n", node, "link", "set", "v0", "up")
    sh("ip", "-n", pod, "addr", "add", "10.244.0.10/24", "dev", "eth0")
    sh("ip", "-n", pod, "link", "set", "eth0", "up")
    sh("ip", "-n", pod, "route", "add", "default", "via", "10.244.0.1")
    return pod, node


def _boot_to_ready(passt_argv: list[str], qemu_argv: list[str], sock: Path, env: dict | None = None
                   ) -> tuple[float, float | None]:
    """Start passt, then QEMU once passt's socket is there; seconds from passt's start to READY on
    the serial console (QEMU's stdout), and the guest's own uptime then. Both are killed after."""
    passt = qemu = None
    try:
        t0 = time.perf_counter()
        passt = subprocess.Popen(passt_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not sock.exists():
            if passt.poll() is not None:
                raise SystemExit(f"floor: passt exited ({passt.returncode}): {' '.join(passt_argv)}")
            time.sleep(0.002)
        qemu = subprocess.Popen(qemu_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                errors="replace", env=env)
        for line in qemu.stdout:
            if "NB: READY" in line:
                return time.perf_counter() - t0, _ready_uptime(line)
        qemu.wait()
        raise SystemExit(f"floor: the guest never reported READY (QEMU exit {qemu.returncode}:"
                         f" {qemu.stderr.read()[-500:]})")
    finally:
        for p in (qemu, passt):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        if qemu is not None:
            qemu.stdout.close()
            qemu.stderr.close()


def run_floor(image: guest.GuestImage, work: Path) -> tuple[float, float | None]:
    tag = secrets.token_hex(2)
    sock = work / f"passt-{tag}.sock"
    pod = node = None
    try:
        pod, node = _netns_pair(tag)
        return _boot_to_ready(
            ["ip", "netns", "exec", pod, "passt", "-f", "-1", "--runas", "0:0", "-D", "none",
             "-q", "-s", str(sock), "-t", "8080", "-u", "none"],
            ["ip", "netns", "exec", pod, "qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "qemu64",
             "-m", MEMORY, "-smp", "1", "-display", "none", "-no-reboot", "-nodefaults", "-serial", "stdio",
             "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", image.cmdline(),
             "-device", f"virtio-net-pci-non-transitional,netdev=s,mac={MAC}",
             "-netdev", f"stream,id=s,server=off,addr.type=unix,addr.path={sock}"],
            sock)
    finally:
        for ns in (pod, node):
            if ns:
                subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        sock.unlink(missing_ok=True)


# ---- the cloud guest --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloudFloor:
    """What the bare-QEMU boot of the cloud guest needs, fixed for the whole run."""
    base: Path            # the cached cloud-guest disk (read only, through an overlay)
    iso: Path             # the NoCloud ISO as netbind's launcher writes it
    native: bool          # up took the native passt path: the stack's QEMU + passt over vhost-user
    stack: object = None  # netbind.node.stack.NativeStack when native


def prepare_cloud_floor(work: Path, passt_path: str | None) -> CloudFloor:
    from netbind.api import load_manifests
    from netbind.launcher import disks
    from netbind.node import cloud_guest
    from netbind.node.runtime import UpOptions

    manifests = load_manifests([EXAMPLE])
    vmi = UpOptions().profile.decoded(manifests.vmi)
    image = disks.cloud_init_image(vmi, manifests.secret_data(vmi.namespace))
    if image is None or image.label != disks.NOCLOUD_LABEL:
        raise SystemExit(f"{EXAMPLE}: the VM has no cloudInitNoCloud volume to boot the cloud guest with")
    iso = work / "noCloud.iso"
    disks.write_iso(image, iso)
    base = cloud_guest.ensure_cloud_guest().disk
    if passt_path != "native":
        return CloudFloor(base, iso, native=False)
    from netbind.node.stack import cached_stack, host_native

    stack = host_native() or cached_stack()
    if stack is None:
        raise SystemExit("up took the native passt path but no native stack is found")
    return CloudFloor(base, iso, native=True, stack=stack)


def cloud_qemu_argv(floor: CloudFloor, overlay: Path, iso: Path, sock: Path) -> list[str]:
    """QEMU as libvirt starts it for `up`'s domain, where it matters for the boot: machine (q35,
    no ACPI: the domain has no <acpi/>), memory, CPU model, one vCPU, virtio-non-transitional disks
    (the overlay first, bootindex 1), NIC, rng, balloon, virtio-serial and SCSI controllers, the
    serial console (here on stdout)."""
    machine = "q35,accel=tcg,usb=off,acpi=off"
    argv = ["qemu-system-x86_64", "-cpu", "qemu64", "-m", CLOUD_MEMORY, "-smp", "1", "-display", "none",
            "-no-user-config", "-nodefaults", "-no-reboot", "-rtc", "base=utc", "-boot", "strict=on",
            "-serial", "stdio",
            "-device", "virtio-scsi-pci-non-transitional", "-device", "virtio-serial-pci-non-transitional",
            "-blockdev", f"driver=file,filename={overlay},node-name=root-file,discard=unmap",
            "-blockdev", "driver=qcow2,file=root-file,node-name=root,discard=unmap",
            "-device", "virtio-blk-pci-non-transitional,drive=root,bootindex=1",
            "-blockdev", f"driver=file,filename={iso},node-name=cidata,discard=unmap",
            "-device", "virtio-blk-pci-non-transitional,drive=cidata",
            "-device", "virtio-balloon-pci-non-transitional,free-page-reporting=off",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-pci-non-transitional,rng=rng0"]
    if floor.native:
        # vhost-user needs the guest's RAM shared with passt, as libvirt's <memoryBacking> gives it
        machine += ",memory-backend=pc.ram"
        argv += ["-object", f"memory-backend-memfd,id=pc.ram,share=on,size={CLOUD_MEMORY}",
                 "-chardev", f"socket,id=nic,path={sock}", "-netdev", "vhost-user,chardev=nic,id=n"]
    else:
        argv += ["-netdev", f"stream,id=n,server=off,addr.type=unix,addr.path={sock}"]
    argv += ["-device", f"virtio-net-pci-non-transitional,netdev=n,mac={MAC}", "-machine", machine]
    return argv


def run_cloud_floor(floor: CloudFloor, work: Path) -> tuple[float, float | None]:
    from netbind.node import procs

    tag = secrets.token_hex(2)
    sock = work / f"passt-{tag}.sock"
    overlay, iso = work / f"overlay-{tag}.qcow2", work / f"noCloud-{tag}.iso"
    pod = node = None
    try:
        # a fresh overlay and ISO copy per round (outside the timing, as `up` makes them before start)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(floor.base), "-F", "qcow2",
                        str(overlay)], check=True, capture_output=True)
        shutil.copyfile(floor.iso, iso)
        pod, node = _netns_pair(tag)
        qemu = cloud_qemu_argv(floor, overlay, iso, sock)
        passt = [floor.stack.passt if floor.native else "passt", "-f", "-1", "--runas", "0:0", "-q",
                 "-s", str(sock), "-i", "eth0", "-t", "8080"]
        env = None
        if floor.native:
            passt.insert(1, "--vhost-user")
            # the stack's QEMU, seabios and firmware where libvirtd's namespace has them
            qemu = procs.command_line(procs.ProcessSpec(
                f"qemu-{tag}", tuple(qemu), work / f"qemu-{tag}.log", work / f"qemu-{tag}.pid", netns=pod,
                binds=tuple(procs.Bind(Path(source), target) for source, target in floor.stack.binds)))
            if floor.stack.lib_dir:
                env = {**os.environ, "LD_LIBRARY_PATH": str(floor.stack.lib_dir)}
        else:
            qemu = ["ip", "netns", "exec", pod, *qemu]
        return _boot_to_ready(["ip", "netns", "exec", pod, *passt], qemu, sock, env=env)
    finally:
        for ns in (pod, node):
            if ns:
                subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        for path in (sock, overlay, iso):
            path.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cloud", action="store_true", help="the cloud guest, booted from its disk")
    parser.add_argument("--rounds", type=int, help="alternating rounds after the warm-up (5; 3 with --cloud)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.cloud else 5)
    if os.geteuid() != 0 or not shutil.which("passt"):
        raise SystemExit("bench/up.py needs root and passt (apt-get install passt)")
    from netbind.testing.leaks import LeakChecker

    work = Path(tempfile.mkdtemp(prefix="nb-bench-up-", dir="/run"))
    runtime = Path("/run") / f"nb-bench-{secrets.token_hex(2)}"
    checker = LeakChecker(runtime)
    extra = ("--guest", "cloud") if args.cloud else ()
    try:
        warm = run_up(runtime, checker, extra)               # warm-up (not counted)
        if args.cloud:
            cloud = prepare_cloud_floor(work, warm["passt_path"])
            floor_round = lambda: run_cloud_floor(cloud, work)  # noqa: E731
        else:
            image = guest.ensure_guest()
            floor_round = lambda: run_floor(image, work)  # noqa: E731
        floor_round()
        ups, floors = [], []
        for _ in range(rounds):
            ups.append(run_up(runtime, checker, extra))
            floors.append(floor_round())
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)  # what `down --all` leaves: the node's state
    leaks = checker.leaks() + [f"floor file left: {p}" for p in [work] if p.exists()]
    up_med = statistics.median(u["wall"] for u in ups)
    floor_med = statistics.median(f for f, _ in floors)
    phase_names = list(ups[0]["phases"])
    phases = {name: statistics.median(u["phases"].get(name, 0.0) for u in ups) for name in phase_names}
    up_uptimes = [u["ready_uptime"] for u in ups if u["ready_uptime"] is not None]
    floor_uptimes = [up for _, up in floors if up is not None]
    # Before the guest's clock starts (wall minus its READY uptime): netbind's work, QEMU's start,
    # firmware and boot loader. The cloud guest's own boot varies by seconds on a busy host; this
    # difference leaves that variance out.
    before_up = [u["wall"] - u["ready_uptime"] for u in ups if u["ready_uptime"] is not None]
    before_floor = [f - up for f, up in floors if up is not None]
    before = ({"up": round(statistics.median(before_up), 3), "floor": round(statistics.median(before_floor), 3),
               "overhead": round(statistics.median(before_up) - statistics.median(before_floor), 3)}
              if before_up and before_floor else None)
    result = {"guest": "cloud" if args.cloud else "tiny", "passt_path": ups[0]["passt_path"], "rounds": rounds,
              "up_to_ready_s": round(up_med, 3), "floor_s": round(floor_med, 3),
              "overhead_s": round(up_med - floor_med, 3),
              "process_start_and_imports_s": round(statistics.median(u["wall"] - u["in_process"] for u in ups), 3),
              "phases_s": {k: round(v, 4) for k, v in phases.items()},
              "guest_ready_uptime_s": {"up": statistics.median(up_uptimes) if up_uptimes else None,
                                       "floor": statistics.median(floor_uptimes) if floor_uptimes else None},
              "before_guest_clock_s": before,
              "samples": {"up": [round(u["wall"], 3) for u in ups], "floor": [round(f, 3) for f, _ in floors],
                          "up_ready_uptime": [u["ready_uptime"] for u in ups],
                          "floor_ready_uptime": [up for _, up in floors]},
              "leaks": leaks}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['guest']} guest, passt path {result['passt_path']}")
        print(f"netbind up -> guest READY (median of {rounds}): {up_med:.3f} s")
        print(f"floor: bare QEMU + passt in a netns -> READY:      {floor_med:.3f} s")
        print(f"overhead: {up_med - floor_med:+.3f} s (target < 1 s)")
        if up_uptimes or floor_uptimes:
            print(f"guest's uptime at READY: up {result['guest_ready_uptime_s']['up']} s,"
                  f" floor {result['guest_ready_uptime_s']['floor']} s")
        if before:
            print(f"before the guest's clock starts: up {before['up']:.3f} s, floor {before['floor']:.3f} s:"
                  f" overhead {before['overhead']:+.3f} s (the guest's own boot time left out)")
        print(f"  {'process start + imports':<22} {result['process_start_and_imports_s'] * 1000:8.1f} ms")
        for name, seconds in phases.items():
            print(f"  {name:<22} {seconds * 1000:8.1f} ms")
        print(f"samples up {result['samples']['up']} floor {result['samples']['floor']}")
        print(f"leaks: {len(leaks)}")
        for leak in leaks:
            print("  leak:", leak)
    if leaks:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
