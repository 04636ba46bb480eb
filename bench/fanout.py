"""1. Fan-out: p50 / p99 of a 30-field screen over 6 REST ledgers (20 ms each), at concurrency 1 and 32,
as a ratio to the slowest ledger's latency (invariant 4: the critical path is the slowest ledger).

oneScreen (`onescreen serve`, production mode: RS256 token, policy, 3 masked fields, durable audit in
PostgreSQL, no cache) on CPU 1; the ledger emulator and wrk on CPU 0. Peer B (Starlette + aiohttp, no
GraphQL) is measured the same way for reference: the closest a Python server gets on this machine.
Every request asks for another subject (bench/distinct.lua; oneScreen's typed query takes it as a variable),
so no server can answer one screen from another's ledger reads.
"""
from __future__ import annotations

import statistics
import time

from . import profile as prof
from .common import Identity, Result, Run, Target, fmt, metric_sum, metrics, say, table, wrk
from .configs import expected_typed, peer_config, rest_connector
from .servers import post_json, start_emulator, start_onescreen, start_python_peer

NAME = "fanout"
TITLE = "Fan-out: 30-field screen over 6 ledgers of 20 ms, p50/p99 at c=1 and c=32"
LATENCY_MS = 20.0


def run_bench(run: Run) -> Result:
    res = Result(NAME, TITLE)
    identity = Identity(run.tmp)
    emu, ledger_url = start_emulator(run, LATENCY_MS)
    cfg = peer_config(run.tmp / "fanout", rest_connector("BENCH_LEDGER_URL", "BENCH_LEDGER_KEY"), cache_ttl=0)
    server = start_onescreen(run, "fanout", cfg, identity, ledger_url=ledger_url, audit_url=run.audit_url())
    server.body.write_bytes(cfg.variables_body("K1"))  # the subject as a variable: distinct.lua changes it
    status, got = post_json(server, server.body.read_bytes())
    if status != 200 or not isinstance(got, dict) or got.get("data") != expected_typed("K1"):
        raise RuntimeError(f"oneScreen's typed query with variables returned a wrong screen: {str(got)[:300]}")
    rows, commands = [], []
    if not run.has_wrk:
        say("  note: wrk is not installed (apt-get install -y wrk): sequential Python requests instead, c=1 only")
        times = []
        for _ in range(5 if run.smoke else 50):
            t0 = time.perf_counter()
            post_json(server, server.body.read_bytes())
            times.append((time.perf_counter() - t0) * 1000)
        p50 = statistics.median(times)
        rows.append(["oneScreen (python client)", 1, len(times), "-", f"{p50:.1f}", "-", f"{p50 / LATENCY_MS:.2f}x", "-"])
        res.targets += [Target("p50 at c=1 / slowest ledger", p50 / LATENCY_MS, 1.2, "<=", "x",
                               "python client, no wrk"),
                        Target("p99 at c=32 / slowest ledger", None, 1.5, "<=", "x", "needs wrk")]
        table(["server", "conc", "requests", "rps", "p50 ms", "p99 ms", "p50/ledger", "p99/ledger"], rows)
        return res

    d = run.dur(10, 1)
    if not run.smoke:
        direct = wrk(run, f"{ledger_url}/portal/resident?key=K1", 1, 3)
        say(f"  one ledger alone (GET /portal/resident, c=1): p50 {direct.p50_ms:.2f} ms, p99 {direct.p99_ms:.2f} ms "
            f"(injected {LATENCY_MS:g} ms)")
    results = {}
    parts = []
    if not run.smoke:
        wrk(run, server.url, 32, 3, body_file=server.body, headers=server.headers, distinct=True)  # warm-up
    for c in (1, 32):
        m0 = metrics(server.base)
        load = wrk(run, server.url, c, d, body_file=server.body, headers=server.headers, server_pid=server.proc.pid,
                   distinct=True)
        m1 = metrics(server.base)
        results[("oneScreen", c)] = load
        commands.append(load.command)
        parts.append([c] + _decompose(m0, m1))
    if run.profile:
        raw = run.tmp / "profile-fanout-c32.txt"
        spy = prof.record(server.proc.pid, 8, raw)
        wrk(run, server.url, 32, 8, body_file=server.body, headers=server.headers, distinct=True)
        if spy:
            spy.wait()
        prof.report(raw, "oneScreen typed screen, c=32 (fan-out)", say=say)
    server.proc.stop()
    if run.smoke:
        say("  note: smoke run: no peer B reference rows")
    else:
        b = start_python_peer(run, "B", ledger_url)
        if not run.smoke:
            wrk(run, b.url, 32, 3, distinct=True)
        for c in (1, 32):
            results[("B starlette+aiohttp (reference)", c)] = wrk(run, b.url, c, d, server_pid=b.proc.pid,
                                                                  distinct=True)
        b.proc.stop()
    for (label, c), l in results.items():
        rows.append([label, c, l.requests, fmt(l.rps), f"{l.p50_ms:.1f}", f"{l.p99_ms:.1f}",
                     f"{l.p50_ms / LATENCY_MS:.2f}x", f"{l.p99_ms / LATENCY_MS:.2f}x", l.errors, f"{l.server_cpu:.0f}"])
    table(["server", "conc", "requests", "rps", "p50 ms", "p99 ms", "p50/ledger", "p99/ledger", "errors",
           "server cpu%"], rows)
    say("  where a oneScreen request's time goes (means from the server's own histograms in /metrics):")
    table(["conc", "request ms", "one ledger read ms", "audit write ms", "rest (CPU, queueing) ms"], parts)
    for c in commands:
        say(f"  command: {c}")
    one, many = results[("oneScreen", 1)], results[("oneScreen", 32)]
    res.targets += [Target("p50 at c=1 / slowest ledger (20 ms)", one.p50_ms / LATENCY_MS, 1.2, "<=", "x",
                           f"p50 {one.p50_ms:.1f} ms"),
                    Target("p99 at c=32 / slowest ledger (20 ms)", many.p99_ms / LATENCY_MS, 1.5, "<=", "x",
                           f"p99 {many.p99_ms:.1f} ms")]
    if one.errors or many.errors:
        res.notes.append(f"wrk counted errors: c=1 {one.errors}, c=32 {many.errors}")
    return res


def _decompose(m0: dict, m1: dict) -> list[str]:
    def mean(name: str) -> float | None:
        n = metric_sum(m1, name + "_count") - metric_sum(m0, name + "_count")
        return 1000 * (metric_sum(m1, name + "_sum") - metric_sum(m0, name + "_sum")) / n if n else None
    req = mean("onescreen_graphql_request_seconds")
    ledger = mean("onescreen_ledger_fetch_seconds")
    audit = mean("onescreen_audit_write_seconds")
    rest = req - (ledger or 0) - (audit or 0) if req is not None else None
    return [fmt(req), fmt(ledger), fmt(audit), fmt(rest)]
