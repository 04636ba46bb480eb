"""Where a saturated worker's waiting lands: why "audit share of request time" at c=32 measures queueing.

    python -m bench.loop_queueing [--seconds S] [--dsn DSN]

A model of one oneScreen worker, on CPU 1 like the benchmarks' servers: N concurrent requests on one
uvloop, each burning 0.6 ms of CPU, waiting 20 ms (the ledgers), burning 0.8 ms, then waiting for its
"audit write", then burning 0.3 ms. The audit write is, in turn:
- `sleep`: asyncio.sleep(1 ms), no I/O and no CPU at all (the cheapest wait there can be);
- `loop`: a group-committing writer on the same loop, one INSERT per batch into PostgreSQL (autocommit,
  synchronous_commit as the server has it);
- `thread`: the same writer on its own thread and event loop (the "writer off the request loop" idea).
Printed: requests/s, mean time from starting the audit wait until the request runs again, mean request
time, and their ratio (what `bench audit` reports as the audit share).

At c=1 the ratio is what the wait costs. At c=32 the worker's CPU is saturated and every request spends
most of its time queued for the loop; that queueing shows up in whichever await a request resumes
from, so even the 1 ms sleep measures ~17 ms there (30% of the request), and a writer thread does not
change it (it needs the GIL, and the request still resumes on the busy loop).
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time

import uvloop

from .common import ROOT, say

MODES = ("sleep", "loop", "thread")


def _burn(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


class _Writer:
    """Group commit: everything queued goes into one INSERT; each submitter is told after the commit."""

    def __init__(self, dsn: str, table: str) -> None:
        self.dsn, self.table = dsn, table
        self.queue: asyncio.Queue | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def run(self, ready) -> None:
        import asyncpg
        self.loop, self.queue = asyncio.get_running_loop(), asyncio.Queue()
        conn = await asyncpg.connect(self.dsn)
        ready()
        sql = f"INSERT INTO {self.table} (v) SELECT * FROM unnest($1::text[])"
        while True:
            items = [await self.queue.get()]
            while not self.queue.empty():
                items.append(self.queue.get_nowait())
            await conn.execute(sql, [v for v, _ in items])
            for _, done in items:
                done()


async def _model(mode: str, conc: int, seconds: float, dsn: str, table: str) -> tuple[float, float, float]:
    main = asyncio.get_running_loop()
    if mode == "sleep":
        async def audit() -> None:
            await asyncio.sleep(0.001)
    else:
        writer = _Writer(dsn, table)
        if mode == "loop":
            up = asyncio.Event()
            task = asyncio.ensure_future(writer.run(up.set))  # noqa: F841 - runs until the loop ends
            await up.wait()

            async def audit() -> None:
                f = main.create_future()
                writer.queue.put_nowait(("x", lambda: f.set_result(None)))
                await f
        else:
            up_t = threading.Event()
            threading.Thread(target=lambda: uvloop.run(writer.run(up_t.set)), daemon=True).start()
            up_t.wait(10)

            async def audit() -> None:
                f = main.create_future()
                writer.loop.call_soon_threadsafe(writer.queue.put_nowait,
                                                 ("x", lambda: main.call_soon_threadsafe(f.set_result, None)))
                await f
    stats: list[tuple[float, float]] = []
    stop = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            _burn(0.6)
            await asyncio.sleep(0.020)
            _burn(0.8)
            t1 = time.perf_counter()
            await audit()
            t2 = time.perf_counter()
            _burn(0.3)
            stats.append((t2 - t1, time.perf_counter() - t0))

    await asyncio.gather(*(client() for _ in range(conc)))
    wait = statistics.mean(s[0] for s in stats) * 1000
    req = statistics.mean(s[1] for s in stats) * 1000
    return len(stats) / seconds, wait, req


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.loop_queueing", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = p.parse_args(argv)
    try:
        import os
        os.sched_setaffinity(0, {1})
    except (AttributeError, OSError):
        say("  note: could not pin to CPU 1; figures are noisier")
    table = f"onescreen_queueing_{int(time.time())}"
    modes = list(MODES)
    try:
        import asyncpg

        async def ddl(sql: str) -> None:
            c = await asyncpg.connect(args.dsn, timeout=5)
            try:
                await c.execute(sql)
            finally:
                await c.close()
        uvloop.run(ddl(f"CREATE TABLE {table} (v text)"))
    except Exception as exc:  # noqa: BLE001 - no PostgreSQL: the sleep model still says the main thing
        say(f"  note: PostgreSQL not usable at {args.dsn} ({type(exc).__name__}): only the sleep model runs")
        modes, ddl = ["sleep"], None
    say(f"  {'audit write':<12} {'conc':>4} {'req/s':>7} {'audit wait ms':>14} {'request ms':>11} {'share':>6}")
    try:
        for conc in (1, 32):
            for mode in modes:
                rps, wait, req = uvloop.run(_model(mode, conc, args.seconds, args.dsn, table))
                say(f"  {mode:<12} {conc:>4} {rps:>7.0f} {wait:>14.2f} {req:>11.2f} {100 * wait / req:>5.1f}%")
    finally:
        if ddl is not None:
            uvloop.run(ddl(f"DROP TABLE IF EXISTS {table}"))
    say(f"  command: cd {ROOT} && {sys.executable} -m bench.loop_queueing "
        f"--seconds {args.seconds:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
