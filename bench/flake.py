#!/usr/bin/env python3
"""The migration flake's rate: one tiny-guest VM (examples/passt) migrated back and forth
--migrations times with `migrate --wait`, optionally with the host's CPUs kept busy (--load N: N
busy processes, half of them streaming memory), as the fresh root's and CI's `make test` run. A
failed migration is recorded with the guest kernel's last words (what `migrate --wait` reports
when the guest died after the hand-over); a VM that rebooted or is gone is brought up again.
The guest also runs a memory oracle beside its init (--memcheck MIB, 16 by default, 0: none; a
static C program appended to its initramfs, built here with gcc): it stamps every page of a buffer
with a pass number, pass after pass, and prints "MEM: BAD" for a page that does not hold the
previous pass's stamp; the count after each hand-over is reported. Its 5 ms sleep between passes
keeps a kernel stack and the timer queue hot, which is what makes QEMU 7.2's lost writes under TCG
kill the guest kernel (README, Known gaps); --force-live migrates live where the runtime pauses.
Usage (root): flock /tmp/nb-bench.lock .venv/bin/python bench/flake.py [--migrations 20] [--load 2]
[--passt native|substitute] [--memcheck MIB] [--force-live] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from netbind.api.loading import load_manifests
from netbind.node import _cpio, _guest_init, guest, migrate, runtime, sandbox

from _bench import ROOT  # noqa: E402  (also: the tiny guest unless NETBIND_GUEST says otherwise)

NAME = "vm-net-binding-passt"
# a busy process: a CPU loop, or one that streams 64 MiB through memory
_BUSY = {"cpu": "while True: pass",
         "memory": "b = bytearray(64 << 20)\nwhile True: b[:] = bytes(len(b))"}


def start_load(count: int) -> list[subprocess.Popen]:
    kinds = ["cpu" if i % 2 == 0 else "memory" for i in range(count)]
    return [subprocess.Popen([sys.executable, "-c", _BUSY[kind]]) for kind in kinds]


MEMCHECK_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <unistd.h>
#define PAGE 4096
int main(int argc, char **argv) {
    size_t pages = (size_t)atoi(argv[1]) * 256, i;
    unsigned sleep_us = (unsigned)atoi(argv[2]);
    volatile uint64_t *buf = malloc(pages * PAGE);
    uint64_t pass = 1, bad = 0;
    setvbuf(stdout, NULL, _IONBF, 0);
    for (i = 0; i < pages; i++) buf[i * (PAGE / 8)] = (1ull << 32) | i;
    printf("MEM: start pages=%zu\n", pages);
    for (;;) {
        for (i = 0; i < pages; i++) {
            volatile uint64_t *w = &buf[i * (PAGE / 8)];
            if (*w != ((pass << 32) | i) && bad++ < 20)
                printf("MEM: BAD pass=%llu page=%zu got=%llx\n", (unsigned long long)pass, i, (unsigned long long)*w);
            *w = ((pass + 1) << 32) | i;
        }
        pass++;
        usleep(sleep_us);
    }
}
"""


def memcheck_segment(workdir: Path, mib: int, sleep_us: int) -> bytes:
    """An initramfs segment (the kernel unpacks it over the base) with the oracle and an /init
    that starts it in the background right after the guest's BOOT report."""
    source, binary = workdir / "memcheck.c", workdir / "memcheck"
    source.write_text(MEMCHECK_C)
    subprocess.run(["gcc", "-O2", "-static", "-o", str(binary), str(source)], check=True)
    init = _guest_init.init_script().replace(
        'say "BOOT uptime', f'/bin/nb-memcheck {mib} {sleep_us} &\nsay "BOOT uptime', 1)
    return _cpio.gzipped([_cpio.file("init", init.encode(), 0o755),
                          _cpio.file("bin/nb-memcheck", binary.read_bytes(), 0o755)])


def with_memcheck(segment: bytes) -> None:
    """Every seeded initramfs ``up`` writes gets the oracle's segment too."""
    original = guest.GuestImage.initrd_with_seed

    def seeded(self, seed, destination):
        written = original(self, seed, destination)
        with open(written, "ab") as out:
            out.write(segment)
        return written

    guest.GuestImage.initrd_with_seed = seeded


def bad_pages(runtime_dir: Path) -> int:
    consoles = [Path(s["console"]) for p in sandbox.find_pods(NAME, runtime_dir)
                if (s := runtime.load_state(p)) is not None]
    return max((c.read_text(errors="replace").count("MEM: BAD") for c in consoles if c.exists()), default=0)


def up(runtime_dir: Path) -> None:
    runtime.up(load_manifests([ROOT / "examples" / "passt"]),
               runtime.UpOptions(runtime=runtime_dir, wait=True, wait_timeout=120))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--migrations", type=int, default=20)
    parser.add_argument("--load", type=int, default=0, help="busy processes beside the migrations")
    parser.add_argument("--passt", choices=("native", "substitute"), help="the passt path (default: auto)")
    parser.add_argument("--memcheck", type=int, metavar="MIB", default=16,
                        help="run the memory oracle over MIB MiB in the guest (0: none)")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds to let the guest run after each")
    parser.add_argument("--memcheck-sleep-us", type=int, default=5000)
    parser.add_argument("--force-live", action="store_true",
                        help="migrate live even where the runtime pauses (QEMU < 9.0 under TCG): the flake as it was")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.passt:
        os.environ["NETBIND_PASST"] = args.passt
    guest.ensure_guest()
    if args.force_live:
        from netbind.node import libvirt as lv
        lv.PrivateLibvirtd.paused_migration_reason = lambda self, name: None
    if args.memcheck:
        import tempfile
        with tempfile.TemporaryDirectory(prefix="nb-flake-") as tmp:
            with_memcheck(memcheck_segment(Path(tmp), args.memcheck, args.memcheck_sleep_us))
    runtime_dir = Path("/run") / f"nb-flake-{secrets.token_hex(2)}"
    results: list[dict] = []
    load = start_load(args.load)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # tear down on kill too
    t_start = time.monotonic()
    try:
        up(runtime_dir)
        for n in range(args.migrations):
            t0 = time.perf_counter()
            try:
                migrate.migrate(NAME, migrate.MigrateOptions(runtime=runtime_dir, wait=True, wait_timeout=60))
                time.sleep(args.settle)
                bad = bad_pages(runtime_dir) if args.memcheck else 0
                results.append({"n": n, "ok": True, "s": round(time.perf_counter() - t0, 2), "bad_pages": bad})
                print(f"{n:4d} ok   {results[-1]['s']:.2f} s" + (f"  memcheck BAD lines so far {bad}" if args.memcheck else ""),
                      flush=True)
            except migrate.MigrationError as exc:
                cause = exc.__cause__
                details = exc.details or getattr(cause, "details", "")
                text = f"{exc.message}\n{details}".strip()
                results.append({"n": n, "ok": False, "s": round(time.perf_counter() - t0, 2), "error": text})
                print(f"{n:4d} FAIL {text}", flush=True)
                # start again from a clean VM: the rebooted guest's console is another story
                sandbox.down_all(runtime_dir)
                up(runtime_dir)
    finally:
        for proc in load:
            proc.kill()
            proc.wait()
        sandbox.down_all(runtime_dir)
    failed = [r for r in results if not r["ok"]]
    print(f"\n{len(failed)}/{len(results)} migrations failed (load {args.load}, passt {args.passt or 'auto'},"
          f" memcheck {args.memcheck} MiB, {'forced live' if args.force_live else 'as the runtime chooses'},"
          f" {time.monotonic() - t_start:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"load": args.load, "passt": args.passt, "memcheck": args.memcheck,
                                         "force_live": args.force_live, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
