"""bench/ scripts run with bench/ first on sys.path: a file there named like a standard module hides
it from every benchmark (bench/concurrent.py once broke asyncio, and so every gRPC benchmark)."""
from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_no_benchmark_file_shadows_a_standard_module():
    shadowing = sorted(p.name for p in BENCH.glob("*.py") if p.stem in sys.stdlib_module_names)
    assert shadowing == []
