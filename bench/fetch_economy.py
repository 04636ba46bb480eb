"""3. Fetch economy: ledger calls per screen and per 100-subject batch, and bytes read from the ledgers
per screen against the bytes of the granted fields and of whole ledger rows (invariants 2 and 3).

In-process (the app through httpx's ASGI transport; no timing here, so no wrk and no pinning):
- the peer screen (30 of 60 fields, 6 SQL ledgers: SQLite tables of ledgers.py's records), one subject
  per request, then 100 subjects in one request (aliased typed queries sharing one fragment);
- two demo tasks over the demo SQLite ledgers (move_in_report: links over three ledgers; basic_livelihood:
  own_region jurisdiction, which reads the subject's region before deciding);
- the peer screen over the REST emulator, for reference: an agency API answers whole items.
Calls come from /metrics (onescreen_ledger_fetches_total); SQL statements are captured with SQLAlchemy's
before_cursor_execute and run again with sqlite3 to size what they read (UTF-8 bytes of the values), and
with `SELECT *` for the whole-row comparison.
"""
from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from typing import Any

from .common import LEDGERS, Identity, Result, Run, Target, base_env, say, table
from .configs import peer_config, rest_connector, sql_connector, sqlite_ledgers
from .servers import SERVICE_KEY, start_emulator

NAME = "fetch"
TITLE = "Fetch economy: ledger calls per screen / per 100-subject batch, bytes read vs granted and whole rows"
SCREENS = 20


def _size(v: Any) -> int:
    return 0 if v is None else len(str(v).encode("utf-8"))


class Capture:
    """Every SQL statement the app's connectors send, with the SQLite file it went to."""

    def __init__(self, app: Any) -> None:
        from sqlalchemy import event
        self.statements: list[tuple[str, str, tuple]] = []
        seen = set()
        for conn in app.state.runtime.snapshot.gateway.connectors.values():
            engine = getattr(conn, "engine", None)
            if engine is None or id(engine.sync_engine) in seen:
                continue
            seen.add(id(engine.sync_engine))
            db = str(engine.url.database).removeprefix("file:")

            def before(_c, _cur, statement, parameters, _ctx, _many, db=db):
                self.statements.append((db, statement, tuple(parameters or ())))

            event.listen(engine.sync_engine, "before_cursor_execute", before)

    def bytes_read(self, granted: dict[str, set[str]]) -> dict[str, int]:
        """Bytes the statements read: in all, of granted columns, of the key column (first in the SQL
        connector's select list) when not granted, of other columns (links, region); and of whole rows."""
        out = dict(read=0, granted=0, key=0, other=0, whole=0)
        for db, stmt, params in self.statements:
            table_name = re.search(r'FROM\s+"?(\w+)"?', stmt).group(1)
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                cur = conn.execute(stmt, params)
                names = [d[0] for d in cur.description]
                for row in cur:
                    for i, (n, v) in enumerate(zip(names, row)):
                        size = _size(v)
                        out["read"] += size
                        kind = "granted" if n in granted.get(table_name, ()) else "key" if i == 0 else "other"
                        out[kind] += size
                star = re.sub(r"^\s*SELECT\s.*?\sFROM\s", "SELECT * FROM ", stmt, count=1, flags=re.S | re.I)
                out["whole"] += sum(_size(v) for row in conn.execute(star, params) for v in row)
        return out


def _granted_columns(task) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for tf in task.fields.values():
        f = tf.target
        table_name = f.ledger.connector.get("table")
        if table_name:
            out.setdefault(table_name, set()).update(f.source_columns)
    return out


async def _fetches(client) -> float:
    from .common import metric_sum as ms
    text = (await client.get("/metrics")).text
    samples = {}
    for line in text.splitlines():
        if line.startswith("onescreen_ledger_fetches_total"):
            k, _, v = line.rpartition(" ")
            samples[k] = float(v)
    return ms(samples, "onescreen_ledger_fetches_total")


async def _measure(app, token: str, bodies: list[bytes], granted, plan_ledgers: int, label: str,
                   capture: bool = True) -> dict:
    import httpx
    cap = Capture(app) if capture else None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench.test") as client:
        f0 = await _fetches(client)
        for body in bodies:
            r = await client.post("/graphql", content=body, headers={"Authorization": f"Bearer {token}",
                                                                     "Content-Type": "application/json"})
            doc = r.json()
            if r.status_code != 200 or doc.get("errors") and not doc.get("data"):
                raise RuntimeError(f"{label}: HTTP {r.status_code} {json.dumps(doc, ensure_ascii=False)[:300]}")
        f1 = await _fetches(client)
    n = len(bodies)
    calls = (f1 - f0) / n
    row = {"label": label, "requests": n, "calls": calls, "ledgers": plan_ledgers, "stmts": None, "read": None,
           "granted": None, "key": None, "other": None, "whole": None}
    if cap is not None:
        row["stmts"] = len(cap.statements) / n
        row.update({k: v / n for k, v in cap.bytes_read(granted).items()})
    return row


def _cells(r: dict) -> list[str]:
    num = lambda v, f="{:,.0f}": "-" if v is None else f.format(v)  # noqa: E731
    ratio = r["read"] / r["granted"] if r["read"] is not None and r["granted"] else None
    return [r["label"], str(r["requests"]), f"{r['calls']:.2f}", str(r["ledgers"]), num(r["stmts"], "{:.2f}"),
            num(r["read"]), num(r["granted"]), num(r["key"]), num(r["other"]), num(r["whole"]),
            num(ratio, "{:.3f}")]


def _ratio(r: dict) -> float | None:
    return r["read"] / r["granted"] if r["read"] is not None and r["granted"] else None


def run_bench(run: Run) -> Result:
    audit_url = run.audit_url()  # before the loop: making the store runs its own (production: PostgreSQL only)
    return asyncio.run(_run(run, audit_url))


async def _run(run: Run, audit_url: str) -> Result:
    from oneScreen.app import create_app
    from oneScreen.settings import load as load_settings

    res = Result(NAME, TITLE)
    identity = Identity(run.tmp)
    rows: list[dict] = []

    # --- the peer screen over SQL ledgers
    db = sqlite_ledgers(run.tmp / "fetch-ledgers.sqlite", 200)
    cfg = peer_config(run.tmp / "fetch-sql", sql_connector("BENCH_SQLITE_DSN"), cache_ttl=0, batch=100)
    env = base_env(**identity.env(), ONESCREEN_CATALOG=str(cfg.catalog), ONESCREEN_POLICIES=str(cfg.policies),
                   ONESCREEN_DATA_DIR=str(run.tmp / "data-fetch"),
                   ONESCREEN_AUDIT_URL=audit_url,
                   BENCH_SQLITE_DSN=f"sqlite+aiosqlite:///{db}")
    app = create_app(load_settings(env), env)
    task = app.state.runtime.snapshot.policies.tasks[cfg.task]
    granted = _granted_columns(task)
    token = identity.token([cfg.role])
    try:
        screens = [cfg.body(f"K{i}") for i in range(1, SCREENS + 1)]
        one = await _measure(app, token, screens, granted, len(LEDGERS), "peer screen, 1 subject (SQL)")
        batch = await _measure(app, token, [cfg.batch_body([f"K{i}" for i in range(101, 201)])],
                               granted, len(LEDGERS), "peer screen, 100 subjects in 1 request (SQL)")
    finally:
        await app.state.runtime.close()
    rows += [one, batch]

    # --- demo tasks (links, jurisdiction) over the demo SQLite ledgers
    demo_rows = await _demo(run)
    rows += demo_rows

    # --- REST reference: what an agency API sends for the same screen
    rest_row = await _rest(run, identity, audit_url)
    if rest_row:
        rows.append(rest_row)

    table(["screen", "requests", "calls/req", "ledgers touched", "SQL stmts/req", "bytes read/req",
           "granted", "key col", "link/other", "whole rows", "read/granted"], [_cells(r) for r in rows])
    say("  (bytes per request: UTF-8 size of every value the statements return; key col: the ledger key the SQL "
        "connector selects to group rows; link/other: link and region columns; whole rows: SELECT * for the "
        "same keys)")
    say(f"  command: {run.command(NAME)}")
    for r in [one, batch] + demo_rows:
        res.targets.append(Target(f"ledger calls - distinct ledgers touched ({r['label']})",
                                  r["calls"] - r["ledgers"], 0, "<=", "",
                                  f"{r['calls']:.2f} calls, {r['ledgers']} ledgers"))
    for r in [one, batch] + demo_rows:
        res.targets.append(Target(f"bytes read / granted bytes ({r['label']})", _ratio(r), 1.1, "<=", "x",
                                  f"whole rows {r['whole'] / r['granted']:.2f}x"))
    if rest_row:
        res.notes.append(f"REST ledgers (reference, not judged): {rest_row['read']:,.0f} bytes of HTTP bodies "
                         f"per screen for {rest_row['granted']:,.0f} granted; the agency API answers whole items "
                         f"({rest_row['whole']:,.0f} bytes of values) in the portal envelope")
    return res


async def _demo(run: Run) -> list[dict]:
    from oneScreen.app import create_app
    from oneScreen.identity import demo_users, mint_demo_token
    from oneScreen.settings import load as load_settings

    data = run.tmp / "data-demo"
    env = base_env(ONESCREEN_MODE="demo", ONESCREEN_DATA_DIR=str(data))
    app = create_app(load_settings(env), env)
    rows = []
    try:
        snap = app.state.runtime.snapshot
        users = {u.user: u for u in demo_users()}
        demo_db = data / "demo" / "mois_resident.sqlite"
        for task_code, user in (("move_in_report", "kim.jumin"), ("basic_livelihood", "lee.bokji")):
            task = snap.policies.tasks[task_code]
            region = users[user].region
            region = region[:2] if region.endswith("000") else region  # a 시도 office covers its 시도
            with sqlite3.connect(f"file:{demo_db}?mode=ro", uri=True) as conn:
                keys = [r[0] for r in conn.execute(
                    "SELECT rrn FROM resident WHERE legal_dong_cd LIKE ? AND hshld_id IS NOT NULL "
                    "ORDER BY rrn LIMIT ?", (region + "%", 10 if not run.smoke else 3))]
            touched = {f.ledger.id for tf in task.fields.values() if not tf.consent for f in tf.path}
            q = ('query($s: ID!) { screen(task: "%s", subject: $s, caseRef: "BENCH-0001") '
                 '{ sections { fields { id status } } } }' % task_code)
            bodies = [json.dumps({"query": q, "variables": {"s": k}}).encode() for k in keys]
            token = mint_demo_token(data, user)
            label = f"demo {task_code} ({'own_region' if task.jurisdiction == 'own_region' else 'national'})"
            rows.append(await _measure(app, token, bodies, _granted_columns(task), len(touched), label))
    finally:
        await app.state.runtime.close()
    return rows


async def _rest(run: Run, identity: Identity, audit_url: str) -> dict | None:
    from oneScreen.app import create_app
    from oneScreen.settings import load as load_settings
    from .common import http
    from . import ledgers

    emu, url = start_emulator(run, 0)
    try:
        cfg = peer_config(run.tmp / "fetch-rest", rest_connector("BENCH_LEDGER_URL", "BENCH_LEDGER_KEY"), cache_ttl=0)
        env = base_env(**identity.env(), ONESCREEN_CATALOG=str(cfg.catalog), ONESCREEN_POLICIES=str(cfg.policies),
                       ONESCREEN_DATA_DIR=str(run.tmp / "data-fetch-rest"),
                       ONESCREEN_AUDIT_URL=audit_url,
                       BENCH_LEDGER_URL=url, BENCH_LEDGER_KEY=SERVICE_KEY)
        app = create_app(load_settings(env), env)
        try:
            http(url + "/_stats/reset", data=b"")
            n = 10 if not run.smoke else 2
            row = await _measure(app, identity.token([cfg.role]), [cfg.body(f"K{i}") for i in range(1, n + 1)], {},
                                 len(LEDGERS), "peer screen, 1 subject (REST, reference)", capture=False)
            stats = json.loads(http(url + "/_stats")[1])
            row["granted"] = sum(_size(ledgers.record(l, f"K{i}")[f"a{a}"]) for i in range(1, n + 1) for l in LEDGERS
                                 for a in range(1, 6)) / n
            row["whole"] = sum(_size(v) for i in range(1, n + 1) for l in LEDGERS
                               for v in ledgers.record(l, f"K{i}").values()) / n
            row["read"] = stats["portal_bytes"] / n
            return row
        finally:
            await app.state.runtime.close()
    finally:
        emu.stop()
