"""5. Memory that levels off: a served oneScreen's RSS over a soak at c=32 over more distinct subjects than its
caches hold (`python -m bench memory --minutes N`; default 2 minutes, 10 for the figure in BENCHMARKS.md).

`onescreen serve` (production mode, one worker on CPU 1, the typed query with variables, policy, masking, the
durable audit record) reads the six 20 ms ledgers of the emulator with caching on (cache_ttl 3600 s,
cache_size 1,000,000 entries: the byte bound is the one that binds) and ONESCREEN_CACHE_MB=32. wrk (c=32,
bench/distinct.lua: every request another subject, K1001, K1002, ...) loads it for the whole soak, so the
caches fill and then evict; RSS is read from /proc every few seconds.

The bound stated: the RSS the same server reaches under the same load with caching off (ONESCREEN_CACHE_MB
so small that no record fits: the process's working set at c=32), measured first over a quarter of the soak,
plus ONESCREEN_CACHE_MB. Targets: RSS at the end within 10% of that bound, and growth over the soak's second
half under 5% of it (levelled off). The number of /metrics samples is printed at the start and the end (a
label set that grows with subjects or users would show there). What grows inside the process, in-process with
tracemalloc: `python -m bench heap --profile`.
"""
from __future__ import annotations

import threading
import time

from .common import Identity, Load, Result, Run, Target, metric_sum, metrics, rss_mb, say, table, wrk
from .configs import peer_config, rest_connector
from .openloop import EXTRA, arrivals
from .servers import Server, start_emulator, start_onescreen

NAME = "memory"
TITLE = "Memory that levels off: served RSS over a soak at c=32, more distinct subjects than the caches hold"
CACHE_MB = 32
CONC = 32


def _soak(run: Run, server: Server, seconds: float, every: float, label: str,
          first: int) -> tuple[list[tuple[float, float, int]], str, float]:
    """Load `server` for `seconds` (wrk c=32 distinct subjects, or bench.arrivals' closed loop without wrk) while
    sampling its RSS; [(elapsed s, RSS MB, /metrics samples)], the load's command, screens/s."""
    out: dict[str, object] = {}

    def load() -> None:
        try:
            if run.has_wrk:
                got: Load = wrk(run, server.url, CONC, seconds, body_file=server.body, headers=server.headers,
                                distinct=True)
                out["command"], out["rps"] = got.command, got.rps
            else:
                got2, cmd = arrivals(run, server, 0, seconds, closed=CONC, first=first)
                out["command"], out["rps"] = cmd, got2["ok_rate"]
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            out["error"] = exc

    t = threading.Thread(target=load, name=f"soak-{label}")
    t0 = time.monotonic()
    t.start()
    samples = [(0.0, rss_mb(server.proc.pid), len(metrics(server.base)))]
    while t.is_alive():
        t.join(timeout=every)
        if t.is_alive() or not samples or time.monotonic() - t0 - samples[-1][0] > every / 2:
            samples.append((time.monotonic() - t0, rss_mb(server.proc.pid), len(metrics(server.base))))
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return samples, str(out["command"]), float(out["rps"])  # type: ignore[arg-type]


def run_bench(run: Run) -> Result:
    res = Result(NAME, TITLE)
    minutes = run.minutes or (2.0 if not run.smoke else 20 / 60)
    seconds = minutes * 60
    ref_seconds = max(seconds / 4, 8 if run.smoke else 30)
    every = max(2.0, seconds / 24)
    cache_mb = CACHE_MB if not run.smoke else 4
    if not run.has_wrk:
        say("  note: wrk is not installed: the load is bench.arrivals' closed loop at c=32 (Python, on CPU 0)")
    emu, ledger_url = start_emulator(run, 20.0)
    identity = Identity(run.tmp)
    cfg = peer_config(run.tmp / "memory", rest_connector("BENCH_LEDGER_URL", "BENCH_LEDGER_KEY", prefix="/ledger",
                                                         **EXTRA), cache_ttl=3600, cache_size=1_000_000)
    runs: dict[str, tuple[list[tuple[float, float, int]], str, float, Server]] = {}
    first = 1_000_001
    for label, mb, secs in (("no cache (reference)", "0.001", ref_seconds), ("soak", str(cache_mb), seconds)):
        s = start_onescreen(run, f"memory-{label.split()[0]}", cfg, identity, ledger_url=ledger_url,
                            audit_url=run.audit_url(), env_extra={"ONESCREEN_CACHE_MB": mb})
        s.body = run.tmp / f"memory-variables-{label.split()[0]}.json"
        s.body.write_bytes(cfg.variables_body("K1"))
        say(f"  {label}: ONESCREEN_CACHE_MB={mb}, {secs:.0f} s at c={CONC}, RSS every {every:.0f} s ...")
        samples, cmd, rps = _soak(run, s, secs, every, label, first)
        first += 10_000_000
        m = metrics(s.base)
        hits, misses = metric_sum(m, "onescreen_cache_hits_total"), metric_sum(m, "onescreen_cache_misses_total")
        say(f"  {label}: {rps:.0f} screens/s, cache hit ratio {hits / max(hits + misses, 1):.3f} "
            f"({misses:,.0f} subject reads missed: more distinct subjects than the caches hold)")
        runs[label] = (samples, cmd, rps, s)
        s.proc.stop()
    emu.stop()
    ref, soak = runs["no cache (reference)"][0], runs["soak"][0]
    rows = [[f"{t:.0f}", f"{r:.1f}", f"{r - soak[0][1]:+.1f}", n] for t, r, n in soak]
    table(["soak s", "RSS MB", "vs start", "/metrics samples"], rows)
    base = max(r for _, r, _ in ref[len(ref) // 2:])  # the working set at c=32 without cache (its second half)
    bound = base + cache_mb
    end = soak[-1][1]
    half = [r for t, r, _ in soak if t >= soak[-1][0] / 2]
    growth = soak[-1][1] - half[0]
    say(f"  reference without cache: RSS {ref[0][1]:.1f} MB idle -> {base:.1f} MB under load (max of its second "
        f"half); stated bound = {base:.1f} + ONESCREEN_CACHE_MB {cache_mb} = {bound:.1f} MB")
    say(f"  soak: RSS {soak[0][1]:.1f} MB idle -> {end:.1f} MB after {soak[-1][0]:.0f} s; second half "
        f"{half[0]:.1f} -> {end:.1f} MB ({growth:+.1f} MB); /metrics samples {soak[0][2]} -> {soak[-1][2]}")
    say(f"  command: {runs['soak'][1]}")
    res.targets.append(Target(f"RSS at the end of a {seconds / 60:.3g}-minute soak / stated bound", end / bound,
                              1.10, "<=", "x",
                              f"{end:.1f} MB vs {bound:.1f} MB ({base:.1f} MB without cache + {cache_mb} MB)"))
    res.targets.append(Target("RSS growth over the soak's second half / stated bound", 100 * growth / bound, 5.0,
                              "<=", "%", f"{half[0]:.1f} -> {end:.1f} MB"))
    if minutes < 10 and not run.smoke:
        res.notes.append(f"a {minutes:g}-minute soak; the figure in BENCHMARKS.md is `--minutes 10`")
    return res
