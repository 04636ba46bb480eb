"""The benchmark suite still runs: `python -m bench --smoke` exits 0 and reports every benchmark.

Asserts no timing (benchmarks print figures, tests never assert a time); it only keeps
bench/ from rotting as the service changes. Parts that need wrk, Node or PostgreSQL say so and skip.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from oneScreen.settings import ROOT

pytestmark = pytest.mark.bench  # `pytest -m bench`: .ci/run's own step; the plain `pytest -q` leaves them out

BENCHMARKS = ("fanout", "peers", "fetch", "config", "memory", "audit", "hostile", "tasks")


def test_bench_smoke_runs_every_benchmark_from_the_repository_alone(tmp_path):
    """As on a clone with nothing beside it: peer-bench (the external peers A and C) is absent. Every benchmark
    runs; peer B and the ledger emulator are bench/'s own; A and C are reported NOT MEASURED with the reason."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONESCREEN_")}
    env["PEER_BENCH_DIR"] = str(tmp_path / "no-peer-bench")
    out = subprocess.run([sys.executable, "-m", "bench", "--smoke"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=420)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    lines = out.stdout.splitlines()
    for name in BENCHMARKS:
        assert any(line.startswith(f"BENCH {name}: done") for line in lines), (name, out.stdout[-4000:])
    summary = lines[lines.index("== summary (smoke: figures from tiny loads, not judged)"):]
    for peer in ("A hive-gateway", "C strawberry"):
        assert any(f"peer {peer}: NOT MEASURED (an external peer: peer-bench is not at {tmp_path}" in line
                   for line in summary), (peer, "\n".join(summary))
    assert any(line.startswith("  B starlette+aiohttp") for line in lines), out.stdout[-4000:]  # B was served


def test_the_loop_queueing_model_runs():
    """bench/loop_queueing.py, the measurement behind BENCHMARKS.md's argument on the c=32 audit share."""
    out = subprocess.run([sys.executable, "-m", "bench.loop_queueing", "--seconds", "0.3"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    rows = [line.split() for line in out.stdout.splitlines() if line.split()[:1] in (["sleep"], ["loop"], ["thread"])]
    assert {(r[0], r[1]) for r in rows} >= {("sleep", "1"), ("sleep", "32")}, out.stdout


def test_the_instruction_count_ab_runs():
    """bench/icount.py, the deterministic A/B behind BENCHMARKS.md's instruction counts: a few screens each way."""
    import re
    import shutil

    from conftest import need_service

    need_service(shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None,
                 "valgrind is not installed (apt-get install valgrind)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONESCREEN_")}
    out = subprocess.run([sys.executable, "-m", "bench.icount", "HEAD", "--screens", "8", "--conc", "4"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    counts = dict(re.findall(r"^ +(HEAD|working tree) +([\d.]+) M instructions per screen$", out.stdout, re.M))
    assert set(counts) == {"HEAD", "working tree"} and all(float(c) > 0.1 for c in counts.values()), out.stdout
