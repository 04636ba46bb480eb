"""9. Open-loop latency: p50/p99/p99.9 at fixed arrival rates (25, 50, 75 and 90% of peer B's capacity), oneScreen
and B in the same run.

A closed-loop figure (wrk at c=32) measures a saturated worker's queue: each connection waits for its answer, so
the rate falls as the server slows. A caseworker's request arrives whether or not the last one was answered.
bench/arrivals.py sends requests at a constant rate without waiting for answers, measures each from the moment
it was due (no coordinated omission) and runs pinned to CPU 0 (with the ledger emulator; servers on CPU 1).

1. B's capacity: screens/s at c=128 with distinct subjects (wrk, as `bench peers` measures it; without wrk, the
   generator's own closed loop, said so).
   The median of three 5-second runs.
2. For each fraction of that capacity, B then oneScreen (production mode, no cache, the typed query with
   variables, policy, masking, the durable audit record), each request another subject: p50, p99, p99.9, the rate
   achieved (answered with 200 per second) and errors. Both over the same six 20 ms ledgers.
3. Target: oneScreen's p99 at 50% of B's capacity <= 1.5x the slowest ledger; not judged when the generator
   itself ran more than LAG_LIMIT_MS late there (CPU 0 was the bottleneck), and such rows are named. Each server's "2x" point: the
   arrival rate (as a fraction of B's capacity) at which its p99 crosses 2x the slowest ledger, interpolated
   between the measured rates ("beyond 90%" when it never does here).
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys

from .common import LOAD_CPU, ROOT, Identity, Result, Run, Target, fmt, redact, say, table, wrk
from .configs import peer_config, rest_connector
from .ledgers import LEDGERS, latency_ms
from .servers import Server, start_emulator, start_onescreen, start_python_peer

NAME = "openloop"
TITLE = "Open-loop latency: p50/p99/p99.9 at 25/50/75/90% of B's capacity, oneScreen and B in the same run"
FRACTIONS = (0.25, 0.50, 0.75, 0.90)
EXTRA = {"items_path": None, "result_code_path": None, "total_count_path": None}  # the emulator's bare object
# The generator's own lag (p99 of how late it sent) beyond which a row measures CPU 0, where the generator and the
# emulator run, not the server: on a fast host the emulator's six reads per screen fill CPU 0 before B's 75%.
LAG_LIMIT_MS = 20.0


def arrivals(run: Run, server: Server, rate: float, seconds: float, *, closed: int = 0,
             first: int = 1_000_001) -> tuple[dict, str]:
    """One bench/arrivals.py run against `server` on CPU 0; its JSON result and the command (token redacted)."""
    cmd = run.pin(LOAD_CPU) + [sys.executable, "-m", "bench.arrivals", server.url, "--rate", f"{rate:.1f}",
                               "--seconds", f"{seconds:g}", "--first", str(first)]
    if closed:
        cmd += ["--closed", str(closed)]
    if server.body:
        cmd += ["--body", str(server.body)]
    for k, v in server.headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120)
    line = next((l for l in out.stdout.splitlines() if l.startswith("ARRIVALS ")), None)
    if line is None:
        raise RuntimeError(f"bench.arrivals printed no result: {out.stdout[-500:]} {out.stderr[-800:]}")
    return json.loads(line.split(" ", 1)[1]), redact(" ".join(shlex.quote(c) for c in cmd))


def crossing(points: list[tuple[float, float]], level: float) -> str:
    """The fraction at which p99 first exceeds `level` (linear between measured points), as text."""
    prev = None
    for frac, p99 in points:
        if p99 > level:
            if prev is None:
                return f"at or below {frac:.0%}"
            f0, v0 = prev
            return f"~{f0 + (frac - f0) * (level - v0) / (p99 - v0):.0%}"
        prev = (frac, p99)
    return f"beyond {points[-1][0]:.0%}" if points else "-"


def run_bench(run: Run) -> Result:
    res = Result(NAME, TITLE)
    slowest = max(latency_ms(n) for n in LEDGERS)
    seconds = run.dur(15, 2)
    fractions = FRACTIONS if not run.smoke else (0.25, 0.50)
    emu, ledger_url = start_emulator(run, 20.0)
    identity = Identity(run.tmp)
    b = start_python_peer(run, "B", ledger_url)
    cfg = peer_config(run.tmp / "openloop", rest_connector("BENCH_LEDGER_URL", "BENCH_LEDGER_KEY", prefix="/ledger",
                                                           **EXTRA), cache_ttl=0)
    one = start_onescreen(run, "openloop", cfg, identity, ledger_url=ledger_url, audit_url=run.audit_url())
    one.body = run.tmp / "openloop-variables.json"
    one.body.write_bytes(cfg.variables_body("K1"))

    # 1. B's capacity (closed loop, c=128, distinct subjects)
    if run.has_wrk:  # the median of three runs: on a shared machine one run can land in a slow moment
        wrk(run, b.url, 32, run.dur(3, 1), distinct=True)  # warm-up
        caps = sorted((wrk(run, b.url, 128, run.dur(5, 1), server_pid=b.proc.pid, distinct=True)
                       for _ in range(3 if not run.smoke else 1)), key=lambda l: l.rps)
        load = caps[len(caps) // 2]
        capacity, how = load.rps, (f"median of {len(caps)} wrk runs at c=128, distinct subjects "
                                   f"({', '.join(f'{l.rps:.0f}' for l in caps)}): {load.command}")
    else:
        got, cmd = arrivals(run, b, 0, run.dur(10, 1), closed=128)
        capacity, how = got["ok_rate"], f"no wrk: bench.arrivals' closed loop at c=128 (Python, on CPU 0): {cmd}"
    say(f"  B's capacity: {capacity:.0f} screens/s ({how})")
    say(f"  slowest ledger: {slowest:.0f} ms; each rate runs {seconds:g} s per server, B then oneScreen")
    rows = []
    points: dict[str, list[tuple[float, float]]] = {"B": [], "oneScreen": []}
    at_half: dict[str, dict] = {}
    commands = []
    first = 1_000_001
    for frac in fractions:
        rate = capacity * frac
        for label, server in (("B", b), ("oneScreen", one)):
            got, cmd = arrivals(run, server, rate, seconds, first=first)
            first += int(rate * seconds) + 1
            if frac == 0.5:
                at_half[label] = got
                commands.append(f"{label}: {cmd}")
            points[label].append((frac, got["p99_ms"]))
            rows.append([label, f"{frac:.0%}", f"{rate:.0f}", f"{got['ok_rate']:.0f}", f"{got['p50_ms']:.1f}",
                         f"{got['p99_ms']:.1f}", f"{got['p999_ms']:.1f}", f"{got['p99_ms'] / slowest:.2f}",
                         got["errors"], f"{got['lag_p99_ms']:.1f}"])
            say(f"  {label:<9} {frac:4.0%} of B = {rate:6.0f}/s: achieved {got['ok_rate']:6.0f}/s  p50 "
                f"{got['p50_ms']:7.1f}  p99 {got['p99_ms']:7.1f}  p99.9 {got['p999_ms']:7.1f} ms  errors "
                f"{got['errors']}  {got['statuses']}")
    table(["server", "load", "rate/s", "achieved/s", "p50 ms", "p99 ms", "p99.9 ms", "p99 / slowest", "errors",
           "gen. lag p99 ms"], rows)
    say("  (latency from the moment each request was due; 'gen. lag': how late the generator itself sent, shared "
        "CPU 0 with the emulator; achieved: answered with 200 per second over the run)")
    behind = [f"{r[0]} {r[1]} ({r[9]} ms)" for r in rows if float(r[9]) > LAG_LIMIT_MS]
    if behind:
        say(f"  the generator ran more than {LAG_LIMIT_MS:g} ms late (p99) in: {', '.join(behind)}: those rows measure "
            "CPU 0 (the generator and the emulator), not the server")
        res.notes.append(f"rows measuring the load, not the server (generator lag p99 > {LAG_LIMIT_MS:g} ms): "
                         f"{', '.join(behind)}")
    for label in points:
        say(f"  {label}: p99 crosses 2x the slowest ledger ({2 * slowest:.0f} ms) {crossing(points[label], 2 * slowest)}"
            f" of B's capacity")
        res.notes.append(f"{label}: p99 crosses 2x the slowest ledger {crossing(points[label], 2 * slowest)} of B's "
                         f"capacity ({capacity:.0f} screens/s)")
    for c in commands:
        say(f"  command: {c}")
    b.proc.stop()
    one.proc.stop()
    emu.stop()
    o, bb = at_half.get("oneScreen"), at_half.get("B")
    late = [(label, got["lag_p99_ms"]) for label, got in at_half.items() if got["lag_p99_ms"] > LAG_LIMIT_MS]
    if late and not run.smoke:  # the judged rate was the generator's, not the server's: not a figure of either
        say(f"  the 50% rows are not judged: the generator ran late ({', '.join(f'{l} {ms:.0f} ms' for l, ms in late)})")
        o = bb = None
    res.targets.append(Target("oneScreen p99 at 50% of B's capacity / slowest ledger",
                              o["p99_ms"] / slowest if o else None, 1.5, "<=", "x",
                              f"p99 {o['p99_ms']:.1f} ms, p99.9 {o['p999_ms']:.1f} ms, achieved {o['ok_rate']:.0f}/s "
                              f"of {capacity * 0.5:.0f}/s" if o else "the generator ran late" if late else "not run"))
    res.targets.append(Target("B p99 at 50% of its capacity / slowest ledger (reference)",
                              bb["p99_ms"] / slowest if bb else None, 1.5, "<=", "x",
                              f"p99 {bb['p99_ms']:.1f} ms, p99.9 {bb['p999_ms']:.1f} ms" if bb
                              else "the generator ran late" if late else "not run"))
    say(f"  B's capacity {fmt(capacity)} screens/s")
    return res
