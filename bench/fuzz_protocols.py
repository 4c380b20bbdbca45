"""Fuzz the protocol boundaries at scale and print, per boundary: cases run, tracebacks (or
unexpected exceptions), hangs, broken rules, peak RSS. Run as root:

    .venv/bin/python bench/fuzz_protocols.py [--cni-random 200] [--hook-random 3000] [--dhcp 20000]

CNI: each binding plugin as a process (netbind.testing.fuzz: the hostile corpus, then random calls).
Hooks: the passt and bridge sidecars in process (corpus + mutated domain XML / VMI JSON), then the
passt sidecar as a process over gRPC. DHCP: the server's v4/v6 answer path with random and mutated
packets (the tests/dhcp codecs).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


def row(boundary, cases, tracebacks, hangs, broken, rss_kb, seconds):
    print(f"{boundary:<44} {cases:>7} {tracebacks:>10} {hangs:>6} {broken:>7} {rss_kb / 1024:>9.1f} {seconds:>7.1f}",
          flush=True)


def fuzz_cni(n_random: int) -> None:
    from netbind.plugins.cni_bundle import PLUGINS
    from netbind.testing.fuzz import CNIWorld, check_cni, cni_cases, cni_corpus

    with tempfile.TemporaryDirectory(prefix="nb-fz-") as tmp:
        world = CNIWorld(Path(tmp))
        try:
            for plugin in sorted(PLUGINS):
                started, verdicts = time.monotonic(), []
                verdicts += [check_cni(world, plugin, case) for case in cni_corpus(world, plugin)]

                @settings(max_examples=n_random, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
                @given(cni_cases(world, plugin))
                def one(case):
                    verdicts.append(check_cni(world, plugin, case))

                one()
                for v in verdicts:
                    if v.problems:
                        print(f"  {plugin} {v.case.name!r}: {v.problems[0][:300]}", file=sys.stderr)
                row(f"CNI {plugin}", len(verdicts), sum(v.traceback for v in verdicts),
                    sum(v.run.hung for v in verdicts), sum(bool(v.problems) for v in verdicts),
                    max(v.run.max_rss_kb for v in verdicts), time.monotonic() - started)
        finally:
            world.close()


def fuzz_hooks(n_random: int) -> None:
    from netbind.hooks._app import HookError, InvalidInput
    from netbind.launcher.hooks import HookClientError
    from netbind.plugins.bridge.sidecar import app as bridge_app
    from netbind.plugins.passt.sidecar import app as passt_app
    from netbind.testing.fuzz import CANARY, URLTrap, hostile_domains, hostile_vmis, mutated_bytes, peak_rss_kb
    from netbind.testing.hooks import SidecarRunner

    vector = json.loads((REPO.parent / "shared/oracle/passt-sidecar/01-basic-no-ports.json").read_text())
    domain, vmi = vector["input_domain_xml"].encode(), vector["input_vmi_json"].encode()
    trap = URLTrap()
    canary = Path(tempfile.mkdtemp(prefix="nb-fz-")) / "secret"
    canary.write_text(CANARY)
    domains, vmis = hostile_domains(domain, canary, trap.url), hostile_vmis(vmi)
    for name, app in (("passt", passt_app), ("bridge", bridge_app)):
        started, counts = time.monotonic(), {"cases": 0, "unexpected": 0, "leaks": 0}

        def call(d, v):
            counts["cases"] += 1
            try:
                out = app.define_domain(d, v)
                counts["leaks"] += CANARY.encode() in out
            except (HookError, InvalidInput):
                pass
            except Exception as exc:  # noqa: BLE001 - counted: the SDK must own every refusal
                counts["unexpected"] += 1
                print(f"  {name}: {type(exc).__name__}: {exc}"[:300], file=sys.stderr)

        for d in domains.values():
            call(d, vmi)
        for v in vmis.values():
            call(domain, v)

        @settings(max_examples=n_random, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(mutated_bytes(domain), mutated_bytes(vmi))
        def one(d, v):
            call(d, vmi)
            call(domain, v)

        one()
        row(f"hooks {name} sidecar in process", counts["cases"], counts["unexpected"], 0,
            counts["leaks"] + trap.connections, peak_rss_kb(), time.monotonic() - started)

    started, runner = time.monotonic(), SidecarRunner()
    try:
        sidecar = runner([sys.executable, "-m", "netbind.plugins.passt.sidecar"])
        pid, cases, broken, hangs = sidecar.handle.process.pid, 0, 0, 0
        inputs = [(d, vmi) for d in domains.values()] + [(domain, v) for v in vmis.values()]
        rng = random.Random(13)
        for _ in range(max(n_random // 10, 1)):
            d = bytearray(domain)
            for _ in range(rng.randint(1, 6)):
                d[rng.randrange(len(d))] = rng.randrange(256)
            inputs.append((bytes(d), vmi))
        for d, v in inputs:
            cases += 1
            try:
                out = sidecar.define_domain(d, v)
                broken += CANARY.encode() in out
            except HookClientError as exc:
                hangs += "DeadlineExceeded" in str(exc)
        rss = peak_rss_kb(pid)
        alive = sidecar.handle.returncode is None
        sidecar.handle.stop()
        tracebacks = sidecar.handle.stderr().count("Traceback")
        row("hooks passt sidecar process (gRPC)", cases, tracebacks, hangs, broken + (not alive) + trap.connections,
            rss, time.monotonic() - started)
    finally:
        runner.close()
        trap.close()


def fuzz_dhcp(n: int) -> None:
    from netbind.testing.fuzz import peak_rss_kb
    from dhcp import test_fuzz as f

    started, cases, unexpected = time.monotonic(), 0, 0
    rng = random.Random(13)
    seeds4 = [f.request(k) for k in (1, 3, 4, 7, 8)]
    for i in range(n):
        packet = (bytes(rng.randrange(256) for _ in range(rng.randrange(700))) if i % 3 == 0 else
                  f.mutate(rng.choice(seeds4), [(rng.randrange(2000), rng.randrange(256)) for _ in range(rng.randint(1, 8))],
                           rng.choice([None, rng.randrange(400)])))
        cases += 2
        try:
            f.check_v4(packet)
            f.check_v6(packet, None)
        except Exception as exc:  # noqa: BLE001
            unexpected += 1
            print(f"  dhcp: {type(exc).__name__}: {exc}"[:300], file=sys.stderr)
    row("DHCP v4/v6 answer path (random, mutated)", cases, unexpected, 0, unexpected, peak_rss_kb(),
        time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cni-random", type=int, default=200, help="random calls per CNI plugin")
    parser.add_argument("--hook-random", type=int, default=3000, help="mutated domain/VMI pairs per sidecar")
    parser.add_argument("--dhcp", type=int, default=20000, help="random/mutated DHCP packets")
    parser.add_argument("--only", choices=("cni", "hooks", "dhcp"), action="append")
    args = parser.parse_args()
    print(f"{'boundary':<44} {'cases':>7} {'tracebacks':>10} {'hangs':>6} {'broken':>7} {'peak MiB':>9} {'s':>7}")
    only = set(args.only or ("cni", "hooks", "dhcp"))
    if "dhcp" in only:
        fuzz_dhcp(args.dhcp)
    if "hooks" in only:
        fuzz_hooks(args.hook_random)
    if "cni" in only:
        fuzz_cni(args.cni_random)


if __name__ == "__main__":
    main()
