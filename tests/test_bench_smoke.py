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

from conftest import need_service
from sqlservers import pg_available

pytestmark = pytest.mark.bench  # `pytest -m bench`: .ci/run's own step; the plain `pytest -q` leaves them out

BENCHMARKS = ("fanout", "peers", "fetch", "config", "memory", "heap", "audit", "hostile", "tasks", "openloop", "cores",
              "tails")


def test_bench_smoke_runs_every_benchmark_from_the_repository_alone(tmp_path):
    """As on a clone with nothing beside it: peer-bench (the external peers A and C) is absent. Every benchmark
    runs; peer B and the ledger emulator are bench/'s own; A and C are reported NOT MEASURED with the reason."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONESCREEN_")}
    env["PEER_BENCH_DIR"] = str(tmp_path / "no-peer-bench")
    out = subprocess.run([sys.executable, "-m", "bench", "--smoke"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=720)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    lines = out.stdout.splitlines()
    for name in BENCHMARKS:
        assert any(line.startswith(f"BENCH {name}: done") for line in lines), (name, out.stdout[-4000:])
    summary = lines[lines.index("== summary (smoke: figures from tiny loads, not judged)"):]
    for peer in ("A hive-gateway", "C strawberry"):
        assert any(f"peer {peer}: NOT MEASURED (an external peer: peer-bench is not at {tmp_path}" in line
                   for line in summary), (peer, "\n".join(summary))
    assert any(line.startswith("  B starlette+aiohttp") for line in lines), out.stdout[-4000:]  # B was served
    for target in ("memory  RSS at the end of a", "openloop oneScreen p99 at 50% of B's capacity",
                   "cores   oneScreen screens/s, 2 workers / 1 worker"):  # each new bench measured something
        row = next((line for line in summary if line.startswith(f"  {target}")), None)
        assert row is not None and "NOT MEASURED" not in row and " - " not in row, (target, "\n".join(summary))
    tails = [line for line in summary if line.startswith("  tails   ")]
    assert tails, "\n".join(summary)
    if all("NOT MEASURED" in line for line in tails):  # the held ledger is a PostgreSQL one
        need_service(pg_available(), "PostgreSQL is not running on 127.0.0.1:5432: bench tails measured nothing")
    else:  # the count itself is tests/test_ledger_timeouts.py's (a smoke run judges nothing)
        assert "screens over the held ledger's timeout + 250 ms" in tails[0] and " - " not in tails[0], tails


def test_the_open_loop_generator_does_not_wait_for_answers(tmp_path):
    """bench/arrivals.py (behind `bench openloop`) sends at its rate whatever the server answers: against a server
    that takes 0.5 s per request, 1 s at 40/s sends all 40 and has many in flight at once (a closed loop of one
    connection would have sent 2, one at a time); each request asks for another subject."""
    import asyncio
    import json
    import threading

    from aiohttp import web

    from conftest import free_port

    seen: list[str] = []
    state = {"in_flight": 0, "peak": 0}

    async def slow(request):
        seen.append(request.query["key"])
        state["in_flight"] += 1
        state["peak"] = max(state["peak"], state["in_flight"])
        await asyncio.sleep(0.5)
        state["in_flight"] -= 1
        return web.json_response({"ok": True})

    port = free_port()
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    def serve():
        asyncio.set_event_loop(loop)
        app = web.Application()
        app.router.add_get("/screen", slow)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    ready.wait(10)
    try:
        out = subprocess.run([sys.executable, "-m", "bench.arrivals", f"http://127.0.0.1:{port}/screen?key=K1",
                              "--rate", "40", "--seconds", "1"], cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(next(l for l in out.stdout.splitlines() if l.startswith("ARRIVALS ")).split(" ", 1)[1])
    assert got["sent"] == 40 and got["ok"] == 40 and got["errors"] == 0, got
    assert state["peak"] > 5, state  # open loop: requests went out while earlier ones were still unanswered
    assert len(set(seen)) == 40 and "K1" not in seen, seen[:5]  # another subject each time


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
