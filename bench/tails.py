"""11. Tails bounded by the ledger timeout: a PostgreSQL ledger whose traffic is held.

A ledger that stops answering (a blackholed network: connections stay open, nothing comes back) must cost a
screen its timeout and no more: connect, pool checkout, query and fetch included. Once, a held PostgreSQL
ledger with a 3 s timeout gave screens of 3.96-5.03 s (the cancelled connection then waited on the dead socket
while it cleaned up).

The six peer ledgers are tables in a fresh PostgreSQL database (bench/ledgers.py's records); `onescreen serve`
(production mode, durable audit) reads five of them directly and the sixth, `vehicle`, through a loopback
proxy in this process (tests/tcpproxy.py) with its own timeout (3 s; 1 s at smoke size) and a circuit breaker
that does not open (1,000 failures), so that every screen meets the held ledger, not only the first five. After a warm-up (the
pool holds open connections), the proxy holds every byte either way, and screens are asked for in waves of a
few at a time (what is measured is the wait for the ledger, not a queue of screens), every screen another
subject: the first waves meet pooled connections (pre-ping, query), the later ones open new ones (connect)
while the held ones are being given up. Counted: screens slower than the timeout + 250 ms (target: none), and
that each says the held ledger gave no answer while the other five ledgers' fields were served.
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from .common import ROOT, Identity, Result, Run, Target, fmt, pg_available, pg_drop_db, pg_exec, pg_fresh_db, say
from .configs import peer_config, sql_connector
from .ledgers import LEDGERS, N_ATTRS, SELECTED, record
from .servers import start_onescreen

NAME = "tails"
TITLE = "Tails bounded by the ledger timeout: screens while a PostgreSQL ledger's traffic is held"
HELD = "vehicle"
MARGIN = 0.25  # what a screen may take beyond the held ledger's timeout
SUBJECTS = 400


def _load_ledgers(url: str) -> None:
    """The six peer ledgers as PostgreSQL tables (key, a1..a10) holding the records of K1..K{SUBJECTS}."""
    cols = ", ".join(f"a{i} TEXT" for i in range(1, N_ATTRS + 1))
    statements = []
    for n in LEDGERS:
        values = ", ".join("(" + ", ".join("'" + v.replace("'", "''") + "'" for v in
                                           (rec["key"], *(rec[f"a{i}"] for i in range(1, N_ATTRS + 1)))) + ")"
                           for rec in (record(n, f"K{k}") for k in range(1, SUBJECTS + 1)))
        statements += [f'CREATE TABLE "{n}" (key TEXT PRIMARY KEY, {cols})', f'INSERT INTO "{n}" VALUES {values}']
    pg_exec(url, *statements)


def run_bench(run: Run) -> Result:
    res = Result(NAME, TITLE)
    if not pg_available():
        res.not_measured["held ledger"] = "PostgreSQL is not running on 127.0.0.1:5432 (the held ledger is one)"
        return res
    import sys
    sys.path.insert(0, str(ROOT / "tests"))  # the proxy the tests fault connections with, one copy of it
    try:
        from tcpproxy import TcpProxy
    finally:
        sys.path.remove(str(ROOT / "tests"))

    timeout = run.dur(3.0, 1.0)
    n_waves, per_wave = (12, 4) if not run.smoke else (3, 2)
    db = f"onescreen_bench_tails_{os.getpid()}"
    url = pg_fresh_db(db).replace("postgresql+asyncpg://", "postgresql://")
    try:
        _load_ledgers(url)
        return asyncio.run(_measure(run, res, TcpProxy, url, run.audit_url(), timeout, n_waves, per_wave))
    finally:
        pg_drop_db(db)


async def _measure(run: Run, res: Result, proxy_cls: Any, url: str, audit_url: str, timeout: float,
                   n_waves: int, per_wave: int) -> Result:
    import aiohttp

    host_port = url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    async with proxy_cls(host, int(port)) as proxy:
        held_url = url.replace(f"@{host_port}/", f"@127.0.0.1:{proxy.port}/")
        cfg = peer_config(run.tmp / "tails", lambda n: sql_connector("BENCH_HELD_DSN" if n == HELD
                                                                     else "BENCH_PG_DSN")(n),
                          ledger_extra={HELD: {"timeout": timeout, "breaker_failures": 1_000}})
        identity = Identity(run.tmp)
        server = await asyncio.to_thread(
            start_onescreen, run, "tails", cfg, identity, ledger_url="http://127.0.0.1:9",
            audit_url=audit_url, env_extra={"BENCH_PG_DSN": url, "BENCH_HELD_DSN": held_url})
        try:
            headers = {**server.headers, "Content-Type": "application/json", "Accept": "application/json"}
            held_fields = [f"{HELD}A{i}" for i in range(1, len(SELECTED) + 1)]
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout + 30)) as session:
                async def screen(k: int) -> tuple[float, str | None]:
                    started = time.monotonic()
                    async with session.post(server.url, data=cfg.variables_body(f"K{k}"), headers=headers) as r:
                        body = await r.json(content_type=None)
                        status = r.status
                    took = time.monotonic() - started
                    data = ((body or {}).get("data") or {}).get("person") or {}
                    if status != 200:
                        return took, f"HTTP {status}"
                    if any(data.get(f) is not None for f in held_fields):
                        return took, f"the held ledger's fields were served for K{k}"
                    if any(data.get(f"{n}A1") is None for n in LEDGERS if n != HELD):
                        return took, f"another ledger's field is missing for K{k}"
                    if not any(HELD in str(e) or "UNAVAILABLE" in str(e) for e in body.get("errors") or []):
                        return took, f"no error names the held ledger for K{k}: {str(body.get('errors'))[:200]}"
                    return took, None

                for k in range(1, 9):  # warm-up: the held ledger's pool holds open connections
                    took, wrong = await screen(k)
                    if wrong and "HTTP" in wrong:
                        raise RuntimeError(f"warm-up screen failed: {wrong}")
                proxy.hold()
                took_all: list[float] = []
                wrongs: list[str] = []
                k = 10
                for _ in range(n_waves):
                    got = await asyncio.gather(*(screen(k + i) for i in range(per_wave)))
                    k += per_wave
                    for took, wrong in got:
                        took_all.append(took)
                        if wrong:
                            wrongs.append(wrong)
                proxy.release()
        finally:
            proxy.release()
            await asyncio.to_thread(server.proc.stop)
    took_all.sort()
    late = [t for t in took_all if t > timeout + MARGIN]
    say(f"  held ledger: {HELD} (PostgreSQL behind a holding proxy), its timeout {timeout:g} s; {n_waves} waves of "
        f"{per_wave} screens, every screen another subject")
    say(f"  screens: {len(took_all)}; fastest {took_all[0]:.3f} s, median {took_all[len(took_all) // 2]:.3f} s, "
        f"slowest {took_all[-1]:.3f} s; over {timeout + MARGIN:g} s: {len(late)}")
    if wrongs:
        say(f"  screens that did not say the held ledger gave no answer: {len(wrongs)}, first: {wrongs[0]}")
    res.targets.append(Target(f"screens over the held ledger's timeout + {MARGIN * 1000:.0f} ms "
                              f"({timeout + MARGIN:g} s), of {len(took_all)}", float(len(late)), 0, "<=", "",
                              f"slowest {took_all[-1]:.3f} s"))
    res.targets.append(Target("screens that did not serve the other ledgers and name the held one as unanswered",
                              float(len(wrongs)), 0, "<=", "", wrongs[0] if wrongs else ""))
    say(f"  slowest screen / timeout: {fmt(took_all[-1] / timeout, 'x')}")
    return res
