"""Least privilege that starts (invariant 7): the owner creates the audit store once, the service runs as a
role that can append and read and nothing else, and refuses a store that is missing or of another version.

The roles recipe is read from docs/OPERATIONS.md and run exactly as written (names made unique per run).
"""
from __future__ import annotations

import asyncio
import json
import re
import shlex
import sqlite3
import uuid
from contextlib import closing
from datetime import datetime, timezone
from typing import Any, Iterator

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from conftest import ROOT, need_service, serve
from oneScreen.audit import AuditEvent, FieldDecision, pseudonymise, writer
from oneScreen.audit.chain import encode, link
from oneScreen.identity import mint_demo_token
from sqlservers import PG_URL, _create_database, _run, drop_database, pg_available, unique_db_name
from test_catalog import run_cli
from test_screen import citizens

QUERY = 'query($s: ID!, $c: String!) { screen(task: "housing_special_supply", subject: $s, caseRef: $c) { requestId } }'
DOC = ROOT / "docs" / "OPERATIONS.md"


def recipe() -> tuple[str, str]:
    """The SQL block and the shell block after the <!-- audit-roles-recipe --> marker of the guide."""
    text = DOC.read_text(encoding="utf-8").split("<!-- audit-roles-recipe -->", 1)[1]
    blocks = re.findall(r"```(sql|sh)\n(.*?)```", text, re.S)
    return blocks[0][1], blocks[1][1]


def statements(sql: str) -> list[str]:
    without_comments = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [s.strip() for s in without_comments.split(";") if s.strip()]


async def execute(dsn: str, *sql: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        for s in sql:
            await conn.execute(s)
    finally:
        await conn.close()


@pytest.fixture
def roles() -> Iterator[dict[str, str]]:
    """The recipe's example names, made unique for this run; the roles and the database dropped after."""
    need_service(pg_available(), f"PostgreSQL is not reachable at {PG_URL}")
    tag = uuid.uuid4().hex[:8]
    names = {"onescreen_owner": f"onescreen_owner_{tag}", "onescreen_app_1": f"onescreen_app_1_{tag}",
             "onescreen_app": f"onescreen_app_{tag}", "database": f"onescreen_{tag}"}
    try:
        yield names
    finally:
        drop_database(PG_URL, names["database"])
        _run(execute(PG_URL, *(f'DROP ROLE IF EXISTS "{names[r]}"' for r in
                               ("onescreen_app_1", "onescreen_app", "onescreen_owner"))))


def made_unique(text: str, names: dict[str, str]) -> str:
    for example in ("onescreen_owner", "onescreen_app_1", "onescreen_app"):
        text = re.sub(rf"\b{example}\b", names[example], text)
    server = make_url(PG_URL)
    text = re.sub(r"DATABASE onescreen\b", f"DATABASE {names['database']}", text)
    return re.sub(r"@audit-db:5432/onescreen\b", f"@{server.host}:{server.port or 5432}/{names['database']}", text)


def url_as(role: str, names: dict[str, str]) -> str:
    return make_url(PG_URL).set(username=role, password=None, database=names["database"]) \
        .render_as_string(hide_password=False)


async def test_the_roles_recipe_leaves_the_service_role_able_to_append_and_read_and_nothing_else(
        roles, make_app, data_dir):
    """Invariant 7 (append-only, least privilege): the guide's recipe, run as written: the owner's `audit
    init` makes the store; the service, as the login member of the service role, serves screens, passes its
    readiness probe and seals a checkpoint; as that role every statement that could change or remove a record
    (or the functions and triggers that guard them) is refused. The recipe before this change left the
    service unable to start ("must be owner of function onescreen_audit_lock_head")."""
    sql, sh = (made_unique(block, roles) for block in recipe())
    await execute(PG_URL, *statements(sql))
    [command] = [line for line in sh.splitlines() if line.strip() and not line.startswith("#")]
    words = shlex.split(command)
    env = dict(w.split("=", 1) for w in words[:words.index("onescreen")])
    init = await asyncio.to_thread(run_cli, *words[words.index("onescreen") + 1:],
                                   env_extra={**env, "ONESCREEN_DATA_DIR": str(data_dir)})
    assert init.returncode == 0 and "created" in init.stdout, init.stderr

    service = url_as(roles["onescreen_app_1"], roles)
    app = make_app(ONESCREEN_AUDIT_URL=service, ONESCREEN_RATE_USER_PER_MIN="0")
    headers = {"Authorization": f"Bearer {mint_demo_token(data_dir, 'jung.jutaek')}"}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            for i, rrn in enumerate(citizens(data_dir, 5)):
                r = await c.post("/graphql", headers=headers,
                                 json={"query": QUERY, "variables": {"s": rrn, "c": f"R-{i}"}})
                assert r.status_code == 200 and "errors" not in r.json(), r.text
            ready = await c.get("/readyz")
            assert ready.status_code == 200, ready.text
    finally:
        await app.state.runtime.close()  # a clean stop seals a checkpoint, as the service role
    t = "onescreen_audit"
    counted = await asyncpg.connect(service, timeout=10)
    try:
        # five screens: five subjects' records, and one per other household member each showed (request_index > 0)
        assert await counted.fetchval(f"SELECT count(*) FROM {t} WHERE request_index = 0") == 5
        total = await counted.fetchval(f"SELECT count(*) FROM {t}")
        assert await counted.fetchval(f"SELECT max(seq) FROM {t}_checkpoint") == total
    finally:
        await counted.close()

    forbidden = [
        f"UPDATE {t} SET task = 'x'", f"DELETE FROM {t}", f"TRUNCATE {t}",
        f"UPDATE {t}_checkpoint SET root = 'x'", f"DELETE FROM {t}_checkpoint", f"TRUNCATE {t}_checkpoint",
        f"INSERT INTO {t}_schema VALUES (3, 'x')", f"UPDATE {t}_schema SET version = 3",
        f"ALTER TABLE {t} ADD COLUMN x int", f"ALTER TABLE {t} DISABLE TRIGGER {t}_no_change",
        f"ALTER TABLE {t}_checkpoint DISABLE TRIGGER ALL", f"DROP TRIGGER {t}_no_change ON {t}",
        f"DROP TABLE {t}",
        f"CREATE OR REPLACE FUNCTION {t}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
        f"CREATE OR REPLACE FUNCTION {t}_lock_head(k bigint) RETURNS TABLE(head_seq bigint, head_hash text) "
        f"LANGUAGE sql AS $$ SELECT 0::bigint, ''::text $$",
        f"CREATE FUNCTION {t}_other() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$",
    ]
    conn = await asyncpg.connect(service, timeout=10)
    try:
        refused = []
        for statement in forbidden:
            try:
                await conn.execute(statement)
            except asyncpg.InsufficientPrivilegeError:
                refused.append(statement)
        assert refused == forbidden, f"allowed to the service role: {sorted(set(forbidden) - set(refused))}"
        assert await conn.fetchval(f"SELECT count(*) FROM {t}") == total
    finally:
        await conn.close()


@pytest.fixture
def pg_empty() -> Iterator[str]:
    need_service(pg_available(), f"PostgreSQL is not reachable at {PG_URL}")
    name = unique_db_name("onescreen_audit_start")
    _run(_create_database(make_url(PG_URL), name))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(PG_URL, name)


LEGACY_TABLE = """CREATE TABLE onescreen_audit (
  seq bigint NOT NULL, at {at} NOT NULL, kind text NOT NULL, request_id text NOT NULL, user_id text NOT NULL,
  organisation text NOT NULL, role text NOT NULL, task text NOT NULL, legal_basis text NOT NULL,
  case_ref text NOT NULL, subject_type text NOT NULL, subject text NOT NULL, fields text NOT NULL,
  ledgers text NOT NULL, client text NOT NULL, detail text NOT NULL, prev_hash varchar(64) NOT NULL,
  hash varchar(64) NOT NULL, CONSTRAINT onescreen_audit_pkey PRIMARY KEY (seq))"""


def legacy_rows(n: int) -> list[dict[str, Any]]:
    """Records as the trail before schema versions wrote them: no request_index (its hash input lacks it)."""
    at = datetime(2026, 10, 1, 9, 0, tzinfo=timezone.utc)
    events = [AuditEvent("disclosure", f"old-{i}", "kim.jumin", "종로구청", "resident_registration_officer",
                         "move_in_report", "주민등록법 제16조", f"O-{i}", "citizen",
                         pseudonymise(b"legacy-pseudonym-key-0123456789", "citizen", str(i)),
                         (FieldDecision("citizen.name", "OK"),), ("mois.resident",), "10.0.0.1").stamped(at, None)
              for i in range(n)]
    _, rows = writer.chain((0, "0" * 64), events)
    prev = "0" * 64
    for e, r in zip(events, rows):  # chained as then: the private members in clear, no nonce
        del r["request_index"], r["nonce"], r["user_name"]
        r["prev_hash"], r["hash"] = prev, link(prev, encode(r["seq"], e.at, e))
        prev = r["hash"]
    return rows


async def test_the_service_refuses_to_start_against_a_missing_or_older_store_until_init_or_migrate(
        pg_empty, data_dir, tmp_path):
    """Invariant 7: no DDL by the service; `onescreen serve` stops with the command the owner must run, and
    starts once it has run; a trail from before schema versions verifies after `audit migrate`."""
    # the CLI's audit commands get a generous deadline: on a loaded machine 5 s made `audit export` print nothing
    env = {"ONESCREEN_DATA_DIR": str(data_dir), "ONESCREEN_AUDIT_URL": pg_empty, "ONESCREEN_AUDIT_TIMEOUT": "30"}
    missing = await asyncio.to_thread(run_cli, "serve", "--port", "1", env_extra=env)
    assert missing.returncode == 1
    assert "cannot start: no audit store at this address" in missing.stderr and "onescreen audit init" in missing.stderr

    await execute(pg_empty, LEGACY_TABLE.format(at="timestamptz"))
    conn = await asyncpg.connect(pg_empty)
    try:
        for r in legacy_rows(3):
            await conn.execute(f"INSERT INTO onescreen_audit ({', '.join(r)}) VALUES "
                               f"({', '.join(f'${i + 1}' for i in range(len(r)))})", *r.values())
    finally:
        await conn.close()
    older = await asyncio.to_thread(run_cli, "serve", "--port", "1", env_extra=env)
    assert older.returncode == 1 and "schema version 1, this service needs 4" in older.stderr
    assert "onescreen audit migrate" in older.stderr
    assert (await asyncio.to_thread(run_cli, "audit", "init", env_extra=env)).returncode == 1  # init won't

    migrated = await asyncio.to_thread(run_cli, "audit", "migrate", env_extra=env)
    assert migrated.returncode == 0 and "migrated from schema version 1 to 4" in migrated.stdout, migrated.stderr
    with serve(data_dir, tmp_path / "server.log", ready="/readyz", ONESCREEN_AUDIT_URL=pg_empty) as base:
        token = mint_demo_token(data_dir, "jung.jutaek")
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
            variables = {"s": citizens(data_dir, 1)[0], "c": "M-1"}
            r = await c.post("/graphql", json={"query": QUERY, "variables": variables})
            assert r.status_code == 200 and "errors" not in r.json(), r.text
    verified = await asyncio.to_thread(run_cli, "audit", "verify", env_extra=env)
    export = await asyncio.to_thread(run_cli, "audit", "export", env_extra=env)
    assert export.returncode == 0, export.stderr
    exported = [json.loads(line) for line in export.stdout.splitlines()]
    # the three old records, then the screen's: its subject's and one per other household member it showed
    assert ["request_index" in line for line in exported] == [False] * 3 + [True] * (len(exported) - 3)
    assert [line["request_index"] for line in exported[3:]] == list(range(len(exported) - 3))
    assert verified.returncode == 0 and f"audit trail intact: {len(exported)} records" in verified.stdout, \
        verified.stderr


def test_the_demo_store_creates_itself_and_migrates_an_older_file(data_dir, tmp_path):
    """The README's `onescreen serve` needs no set-up: the demo's SQLite file is created on first start, and
    one from before schema versions is migrated; its old records still verify."""
    path = data_dir / "audit.sqlite"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(LEGACY_TABLE.format(at="text"))
        for r in legacy_rows(2):
            r["at"] = r["at"].isoformat(timespec="microseconds")
            conn.execute(f"INSERT INTO onescreen_audit ({', '.join(r)}) VALUES ({', '.join('?' * len(r))})",
                         list(r.values()))
    with serve(data_dir, tmp_path / "server.log", ready="/readyz"):
        pass
    env = {"ONESCREEN_DATA_DIR": str(data_dir)}
    verified = run_cli("audit", "verify", env_extra=env)
    assert verified.returncode == 0 and "audit trail intact: 2 records" in verified.stdout, verified.stderr
    assert "1 signed checkpoints hold" in verified.stdout  # the clean stop sealed the two old records

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with serve(fresh, tmp_path / "fresh.log", ready="/readyz"):
        pass
    assert (fresh / "audit.sqlite").is_file() and (fresh / "audit-checkpoint.key").is_file()
    empty = run_cli("audit", "verify", env_extra={"ONESCREEN_DATA_DIR": str(fresh)})
    assert empty.returncode == 0 and "audit trail intact: 0 records" in empty.stdout, empty.stderr
