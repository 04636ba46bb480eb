"""5b. Heap over screens (`bench heap`): RSS across 100,000 screens with the ledger caches full, in-process.

The HTTP soak over time is `bench memory` (bench/memory.py); this one finds WHAT grows (--profile: tracemalloc).

In-process, without HTTP (100,000 screens through the server would take longer than the whole suite may):
the plain-Python path of a request, Door.disclose() (disclose.py), i.e. policy decisions, the batcher, screen.resolve()
through the gateway (cache, single-flight, breaker, SQL connectors on SQLite) and masking, for the
30-field peer screen. Each ledger's cache holds at most 2,000 subjects and the screens pick subjects at
random among 2,200, so from about 10,000 screens on every cache is full and evicting (about 1 read in 11
misses and goes to SQLite). 32 screens run at a time. RSS is sampled every 5,000 screens; the growth is
judged from the first sample with full caches after 20,000 screens to the last. With --profile,
tracemalloc runs from that sample on and the allocation sites that grew are printed.
"""
from __future__ import annotations

import asyncio
import gc
import random
import threading
import time
import tracemalloc

from .common import Identity, Result, Run, Target, base_env, rss_mb, say, table
from .configs import ROLE, peer_config, sql_connector, sqlite_ledgers

NAME = "heap"
TITLE = "Heap over screens: RSS across 100,000 screens with the cache full (in-process)"
SCREENS, SUBJECTS, CACHE, CONC, EVERY = 100_000, 2_200, 2_000, 32, 5_000


def run_bench(run: Run) -> Result:
    run.audit_url()  # created now: its set-up runs an event loop of its own, which cannot start inside _run's
    try:
        import uvloop
        return uvloop.run(_run(run))
    except ImportError:
        return asyncio.run(_run(run))


async def _run(run: Run) -> Result:
    from oneScreen.disclose import Door
    from oneScreen.runtime import Runtime
    from oneScreen.policy import Caller
    from oneScreen.settings import load as load_settings

    res = Result(NAME, TITLE)
    screens, subjects, cache, every = (SCREENS, SUBJECTS, CACHE, EVERY) if not run.smoke else (2_000, 240, 200, 250)
    identity = Identity(run.tmp)
    db = sqlite_ledgers(run.tmp / "memory-ledgers.sqlite", subjects)
    cfg = peer_config(run.tmp / "memory", sql_connector("BENCH_SQLITE_DSN"), cache_ttl=3600, cache_size=cache)
    env = base_env(**identity.env(), ONESCREEN_CATALOG=str(cfg.catalog), ONESCREEN_POLICIES=str(cfg.policies),
                   ONESCREEN_DATA_DIR=str(run.tmp / "data-memory"),
                   ONESCREEN_AUDIT_URL=run.audit_url(),
                   BENCH_SQLITE_DSN=f"sqlite+aiosqlite:///{db}")
    runtime = Runtime(load_settings(env), env)
    snap = runtime.snapshot
    task = snap.policies.tasks[cfg.task]
    paths = [tf.path for tf in task.fields.values()]
    caller = Caller("bench.user", "Bench User", "BENCH", "national", frozenset({ROLE}))
    rng = random.Random(20260101)
    caches = snap.gateway.caches
    samples: list[tuple[int, float, int, float, int]] = []
    statuses: dict[str, int] = {}

    async def one(i: int) -> None:
        door = Door(caller, snap, f"bench-{i}")
        results = await door.disclose(task, "person", f"K{rng.randint(1, subjects)}", paths, "BENCH-0001")
        if i % 997 == 0:
            for r in results.values():
                statuses[r.status.value] = statuses.get(r.status.value, 0) + 1

    if run.profile:  # from the start: blocks allocated before tracing and freed later would look like growth
        screens = min(screens, 30_000)
        say(f"  --profile: tracemalloc on from the start (about 10x slower): {screens:,} screens only")
        tracemalloc.start(12)
    gc.collect()
    rss_start = rss_mb()
    start_at = max(screens // 5, every)
    traced = None
    objects_at_base: tuple[int, int] | None = None
    t0 = time.perf_counter()
    try:
        done, next_sample = 0, every
        while done < screens:
            n = min(CONC, screens - done)
            await asyncio.gather(*(one(done + k) for k in range(n)))
            done += n
            if done >= next_sample or done == screens:
                next_sample += every
                cached = sum(len(c) for c in caches.values())
                samples.append((done, rss_mb(), cached, time.perf_counter() - t0, threading.active_count()))
                if objects_at_base is None and done >= start_at:
                    objects_at_base = (done, len(gc.get_objects()))
                if run.profile and traced is None and done >= start_at and cached >= cache * len(caches):
                    traced = tracemalloc.take_snapshot()
        objects_at_end = len(gc.get_objects())
        pools = [getattr(getattr(c, "engine", None), "pool", None) for c in snap.gateway.connectors.values()]
        pool_status = "; ".join(p.status() for p in pools if p)
    finally:
        await runtime.close()
    elapsed = time.perf_counter() - t0
    full = cache * len(caches)
    if traced is not None:
        gc.collect()
        grown = tracemalloc.take_snapshot().compare_to(traced, "traceback")
        tracemalloc.stop()
        say("  tracemalloc: allocation sites that grew after the caches were full (top 8, size / count):")
        for st in grown[:8]:
            frames = [f for f in st.traceback.format(limit=12) if f.strip().startswith("File")]
            where = " <- ".join(f.strip().replace("File ", "").split(", in ")[0].rsplit("/", 2)[-1]
                                for f in reversed(frames[-4:]))
            say(f"    {st.size_diff / 1024:+9.1f} KiB {st.count_diff:+7d} blocks  {where}")
    rows = [[f"{n:,}", f"{rss:.1f}", f"{rss - rss_start:+.1f}", f"{c:,} / {full:,}", th, f"{t:.1f}"]
            for n, rss, c, t, th in samples]
    table(["screens", "RSS MB", "vs start", "cached subjects (all ledgers)", "threads", "elapsed s"], rows)
    if objects_at_base:
        say(f"  Python objects tracked by the gc: {objects_at_base[1]:,} at {objects_at_base[0]:,} screens, "
            f"{objects_at_end:,} at the end")
    say("  SQL connection pools at the end (one engine per ledger; each aiosqlite connection is a thread with its "
        f"own SQLite page cache): {pool_status}")
    h = sum(c.hits for c in runtime.metrics.ledgers.values())
    m = sum(c.misses for c in runtime.metrics.ledgers.values())
    say(f"  {screens:,} screens in {elapsed:.1f} s ({screens / elapsed:,.0f} screens/s, {CONC} at a time); "
        f"cache hit ratio {h / max(h + m, 1):.2f}; field statuses sampled: {statuses}")
    say(f"  command: {run.command(NAME)}")
    base = next(((n, rss) for n, rss, c, _, _ in samples if n >= start_at and c >= full), None)
    if base is None or samples[-1][0] <= base[0]:
        res.targets.append(Target("RSS growth after the caches are full", None, 5.0, "<=", "%",
                                  "caches never filled"))
        return res
    end_rss = samples[-1][1]
    growth = end_rss - base[1]
    tail = [(n, rss) for n, rss, _, _, _ in samples if n >= base[0]]
    slope = _slope(tail) * 100_000
    res.targets.append(Target(f"RSS growth from {base[0]:,} to {samples[-1][0]:,} screens (caches full)",
                              100 * growth / base[1], 5.0, "<=", "%",
                              f"{base[1]:.1f} -> {end_rss:.1f} MB, {growth:+.1f} MB; trend {slope:+.1f} MB per 100k"))
    return res


def _slope(points: list[tuple[int, float]]) -> float:
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    den = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den if den else 0.0
