"""Fuzz every input file boundary at scale (issue 13) and print, per boundary: cases run, tracebacks,
hangs (a case over 20 s), unclear errors (exit 2 without one line naming the file) and peak RSS.

The cases are those of tests/foundation/test_input_fuzz.py (its hostile corpus and its hypothesis
strategies), run in-process (the CLI through click's CliRunner, the image map and --pod-network
loaders), and the corpus once more through real ``netbind validate`` subprocesses.
Run: .venv/bin/python bench/fuzz.py [EXAMPLES]   (default 2000 generated cases per boundary)
"""
from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "foundation"))
import test_input_fuzz as cases  # noqa: E402

from netbind.cli import cli  # noqa: E402
from netbind.node.images import ImageMap, ImageMapError  # noqa: E402
from netbind.node.multus import PodNetworkError, load_pod_network  # noqa: E402

HANG_SECONDS = 20
COMMANDS = [["validate"], ["explain"], ["render", "pod"], ["render", "domain"],
            ["validate", "--kubevirt-version", "1.4"]]


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


class Tally:
    def __init__(self, name: str):
        self.name, self.counts, self.kinds = name, Counter(), Counter()

    def run(self, case) -> None:
        self.counts["cases"] += 1
        signal.alarm(HANG_SECONDS)
        try:
            outcome = case()
        except _Hang:
            outcome = "hang"
        except Exception as exc:  # a traceback: what the boundary must never produce
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            self.kinds[f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"] += 1
            outcome = "traceback"
        finally:
            signal.alarm(0)
        self.counts[outcome] += 1

    def line(self) -> str:
        c = self.counts
        return (f"{self.name:<34} cases {c['cases']:>6}  tracebacks {c['traceback']}  hangs {c['hang']}  "
                f"unclear {c['unclear']}  (exit 0/1 {c['ok']}, exit 2 {c['error']})")


def _cli_case(path: Path, command: list[str]):
    def case() -> str:
        result = CliRunner().invoke(cli, [*command, "-f", str(path)])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        if result.exit_code in (0, 1):
            return "ok"
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        return "error" if result.exit_code == 2 and len(errors) == 1 and path.name in errors[0] else "unclear"
    return case


def _loader_case(load, error_type, path: Path, prefix: str):
    def case() -> str:
        try:
            load(path)
        except error_type as exc:
            return "error" if str(exc).startswith(prefix) and "\n" not in str(exc) else "unclear"
        return "ok"
    return case


def _generated(strategy, examples: int, each) -> None:
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(value):
        each(value)
    run()


def main() -> None:
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    signal.signal(signal.SIGALRM, _alarm)
    work = Path(tempfile.mkdtemp(prefix="netbind-fuzz-"))
    corpus = []
    for name, (content, _) in sorted(cases.HOSTILE.items()):
        path = work / (f"{name}.json" if name.startswith("deep-json") else f"{name}.yaml")
        path.write_bytes(content)
        corpus.append(path)
    tallies = {k: Tally(k) for k in ("manifests: corpus (CLI)", "manifests: generated (CLI)",
                                     "manifests: corpus (subprocess)", "image map: corpus",
                                     "image map: generated", "--pod-network: corpus",
                                     "--pod-network: generated")}
    started = time.monotonic()
    for path in corpus:
        for command in COMMANDS:
            tallies["manifests: corpus (CLI)"].run(_cli_case(path, command))
        as_json = work / f"{path.stem}.as.json"
        as_json.write_bytes(path.read_bytes())
        for target in (path, as_json):
            tallies["image map: corpus"].run(_loader_case(ImageMap.load, ImageMapError, target,
                                                          f"image map {target}"))
            tallies["--pod-network: corpus"].run(_loader_case(load_pod_network, PodNetworkError, target,
                                                              f"--pod-network {target}"))
    counter = iter(range(10**9))

    def manifest(value) -> None:
        docs, command = value
        path = work / f"m{next(counter)}.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        tallies["manifests: generated (CLI)"].run(_cli_case(path, command))
        path.unlink()

    def loader(name, load, error_type, prefix):
        def each(data) -> None:
            path = work / f"{name}{next(counter)}.json"
            path.write_text(json.dumps(data))
            tallies[f"{prefix}: generated"].run(_loader_case(load, error_type, path, f"{prefix} {path}"))
            path.unlink()
        return each

    _generated(st.tuples(cases.mutated_manifests(), st.sampled_from(COMMANDS)), examples, manifest)
    _generated(cases.JSON_VALUES | st.fixed_dictionaries({}, optional={
        "sidecars": cases.JSON_VALUES, "containerDisks": cases.JSON_VALUES, "cni": cases.JSON_VALUES}),
        examples, loader("images", ImageMap.load, ImageMapError, "image map"))
    _generated(cases.JSON_VALUES | st.fixed_dictionaries({"name": cases.JSON_VALUES}, optional={
        "cniVersion": cases.JSON_VALUES, "type": cases.JSON_VALUES,
        "plugins": cases.JSON_VALUES | st.lists(st.fixed_dictionaries({"type": cases.JSON_VALUES}))}),
        examples, loader("pod-network", load_pod_network, PodNetworkError, "--pod-network"))
    in_process_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    netbind = str(Path(sys.executable).parent / "netbind")
    for path in corpus:
        def case(path=path) -> str:
            try:
                proc = subprocess.run([netbind, "validate", "-f", str(path)], capture_output=True, text=True,
                                      timeout=HANG_SECONDS)
            except subprocess.TimeoutExpired:
                return "hang"
            if "Traceback" in proc.stderr:
                raise RuntimeError(proc.stderr.strip().splitlines()[-1])
            lines = proc.stderr.strip().splitlines()
            return "error" if proc.returncode == 2 and len(lines) == 1 and path.name in lines[0] else \
                "ok" if proc.returncode in (0, 1) else "unclear"
        tallies["manifests: corpus (subprocess)"].run(case)
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    for tally in tallies.values():
        print(tally.line())
        for kind, count in tally.kinds.most_common(5):
            print(f"    {count} x {kind}")
    print(f"peak RSS: in-process {in_process_rss:.0f} MB (all boundaries, CliRunner), "
          f"largest netbind subprocess {child_rss:.0f} MB; {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
