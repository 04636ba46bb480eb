"""The audit trail (invariant 7): durable before the response, fail closed, append-only, tamper-evident.

Real SQLite files in tmp_path; real PostgreSQL (a fresh database per test session,
a fresh table per test) through `need_service`; real OS processes for the
several-writers case.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
import os
import sqlite3
import sys
import threading
import uuid
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from conftest import need_service
from oneScreen import audit
from oneScreen.audit import writer
from oneScreen.audit import (GENESIS, AuditEvent, AuditStore, AuditUnavailable, FieldDecision, export_url,
                             pseudonymise, verify_url)
from oneScreen.errors import BadRequest
from oneScreen.logs import JsonFormatter

ROOT = Path(__file__).resolve().parent.parent
KEY = b"audit-test-pseudonym-key-0123456"
RRN = "900101-1234567"
PG_URL = os.environ.get("ONESCREEN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def event(i: int = 0, *, rrn: str = RRN, kind: str = "disclosure", **kw: Any) -> AuditEvent:
    values: dict[str, Any] = dict(
        kind=kind, request_id=f"req-{i}", user="lee.bokji", organisation="강남구청", role="welfare_officer",
        task="basic_livelihood", legal_basis="국민기초생활 보장법 제21조", case_ref=f"2026-복지-{i:04d}",
        subject_type="citizen", subject=pseudonymise(KEY, "citizen", rrn),
        fields=(FieldDecision("citizen.name", "OK"), FieldDecision("citizen.rrn", "MASKED")),
        ledgers=("mois_resident", "nhis_eligibility"), client="10.0.0.7", detail={"n": i})
    values.update(kw)
    return AuditEvent(**values)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "audit.sqlite"


@pytest.fixture
async def store(db_path: Path):
    db_path.parent.mkdir()
    s = AuditStore(sqlite_url(db_path), create=True)
    await s.open()
    yield s
    await s.close()


def raw(path: Path) -> sqlite3.Connection:
    """A separate connection to the SQLite file, as someone with access to the file would have."""
    return sqlite3.connect(path, isolation_level=None)


def count_commits(s: AuditStore) -> list[int]:
    commits: list[int] = []
    sa.event.listen(s.engine.sync_engine, "commit", lambda _conn: commits.append(1))
    return commits


def recompute(line: dict[str, Any]) -> str:
    """The hash of an exported record, computed as an outside auditor would (chain.py's recipe), for records
    of either format: a record of format 2 first has each private member's commitment checked against its
    value (`private`) and the record's `nonce`; a mismatch is returned instead of a hash."""
    payload = {k: v for k, v in line.items() if k not in ("prev_hash", "hash", "nonce", "private")}

    def canonical(obj: Any) -> str:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    if payload.get("format") in (2, 3):
        nonce, commitments = bytes.fromhex(line["nonce"]), payload["commitments"]
        if set(line["private"]) != set(commitments):
            return "private members and commitments differ"
        for member, value in line["private"].items():
            salt = hmac.new(nonce, member.encode("utf-8"), hashlib.sha256).digest()
            if hashlib.sha256(salt + canonical(value).encode("utf-8")).hexdigest() != commitments[member]:
                return f"the commitment of {member} does not match"
    else:
        assert "nonce" not in line and "private" not in line
    return hashlib.sha256((line["prev_hash"] + canonical(payload)).encode("utf-8")).hexdigest()


def json_logs(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(JsonFormatter().format(r) for r in caplog.records)


# ---------------------------------------------------------------- SQLite
async def test_an_appended_record_is_readable_and_verifies(store: AuditStore):
    """Invariant 7: what append returns is what was stored, chained from the genesis value."""
    e = event(1)
    rec = await store.append(e)
    assert (rec.seq, rec.prev_hash) == (1, GENESIS) and rec.at.tzinfo is not None
    page, cursor = await store.history(e.subject)
    assert cursor is None and page == [rec]
    assert page[0].event.fields == e.fields and page[0].event.detail == {"n": 1}
    assert await store.verify() == audit.VerifyResult(True, 1, None, None, rec.hash)


async def test_concurrent_appends_are_group_committed_and_the_chain_verifies(store: AuditStore):
    """Invariant 7: 500 concurrent appends, far fewer transactions, 500 contiguous verifiable records."""
    commits = count_commits(store)
    records = await asyncio.gather(*(store.append(event(i)) for i in range(500)))
    assert sorted(r.seq for r in records) == list(range(1, 501))
    assert [r.event.request_id for r in records] == [f"req-{i}" for i in range(500)]  # each caller its own record
    assert 1 <= len(commits) <= 10, f"{len(commits)} transactions for 500 appends"
    result = await store.verify()
    assert result.ok and result.count == 500, result


async def test_append_many_is_one_contiguous_transaction(store: AuditStore):
    commits = count_commits(store)
    records = await store.append_many([event(i) for i in range(5)])
    assert [r.seq for r in records] == [1, 2, 3, 4, 5] and len(commits) == 1
    assert all(b.prev_hash == a.hash for a, b in zip(records, records[1:]))


async def test_sqlite_store_commits_with_fsync(store: AuditStore):
    """Invariant 7: durable means WAL (or a rollback journal) with synchronous=FULL on every connection."""
    async with store.engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 2  # FULL
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() in ("wal", "delete")


async def test_an_acknowledged_record_survives_the_process_dying_at_once(db_path: Path):
    """Invariant 7: append returns only after the commit: a process killed right after it loses nothing."""
    db_path.parent.mkdir()
    script = ("import asyncio, os, sys\n"
              "from oneScreen.audit import AuditStore, AuditEvent\n"
              "async def main():\n"
              "    s = AuditStore(sys.argv[1], create=True); await s.open()\n"
              "    r = await s.append(AuditEvent('disclosure', 'req-dying', 'u', 'o', 'r', 't', 'l', 'c', 'citizen',\n"
              "                                  'ab' * 32, (), (), '127.0.0.1'))\n"
              "    print(r.seq, flush=True); os._exit(0)\n"
              "asyncio.run(main())\n")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, sqlite_url(db_path),
                                                stdout=asyncio.subprocess.PIPE, env=_child_env())
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert out.split() == [b"1"]
    with closing(raw(db_path)) as conn:
        assert conn.execute("SELECT seq, request_id FROM onescreen_audit").fetchall() == [(1, "req-dying")]
    code, message = await verify_url(sqlite_url(db_path))
    assert code == 0 and "1 records" in message


def _tamper_changed(conn: sqlite3.Connection, n: int) -> None:
    conn.execute("UPDATE onescreen_audit SET task = 'housing_benefit' WHERE seq = 7")


def _tamper_deleted(conn: sqlite3.Connection, n: int) -> None:
    conn.execute("DELETE FROM onescreen_audit WHERE seq = 7")


def _tamper_swapped(conn: sqlite3.Connection, n: int) -> None:
    conn.execute("BEGIN")
    conn.execute("UPDATE onescreen_audit SET seq = -1 WHERE seq = 7")
    conn.execute("UPDATE onescreen_audit SET seq = 7 WHERE seq = 8")
    conn.execute("UPDATE onescreen_audit SET seq = 8 WHERE seq = -1")
    conn.execute("COMMIT")


def _tamper_prev_hash(conn: sqlite3.Connection, n: int) -> None:
    conn.execute("UPDATE onescreen_audit SET prev_hash = ? WHERE seq = 7", ("f" * 64,))


def _tamper_unreadable(conn: sqlite3.Connection, n: int) -> None:
    conn.execute("UPDATE onescreen_audit SET fields = '[not json' WHERE seq = 7")


def _tamper_appended_forgery(conn: sqlite3.Connection, n: int) -> None:
    """A naive forger adds a record at the end, with the last hash as prev_hash but a made-up hash."""
    cols = [r[1] for r in conn.execute("PRAGMA table_info(onescreen_audit)")]
    row = dict(zip(cols, conn.execute("SELECT * FROM onescreen_audit WHERE seq = ?", (n,)).fetchone()))
    row.update(seq=n + 1, prev_hash=row["hash"], hash="0" * 63 + "1", request_id="forged")
    conn.execute(f"INSERT INTO onescreen_audit ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                 [row[c] for c in cols])


def _tamper_inserted_forgery(conn: sqlite3.Connection, n: int) -> None:
    """A careful forger makes room at 7 and inserts a record whose own hash is right (computed by this very code)."""
    cols = [r[1] for r in conn.execute("PRAGMA table_info(onescreen_audit)")]
    conn.execute("BEGIN")
    conn.execute("UPDATE onescreen_audit SET seq = -seq WHERE seq >= 7")
    conn.execute("UPDATE onescreen_audit SET seq = 1 - seq WHERE seq < 0")
    prev = conn.execute("SELECT hash, at FROM onescreen_audit WHERE seq = 6").fetchone()
    at = datetime.fromisoformat(prev[1])
    forged = event(99, rrn="000101-3000000", request_id="forged").stamped(at, 0)
    rows: list[dict[str, Any]] = []
    writer._seal(7, forged, prev[0], [], rows)
    row = rows[0]
    row["at"] = prev[1]
    conn.execute(f"INSERT INTO onescreen_audit ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                 [row[c] for c in cols])
    conn.execute("COMMIT")


@pytest.mark.parametrize("tamper, first_bad, reason", [
    (_tamper_changed, 7, "record 7: hash does not match its content"),
    (_tamper_deleted, 7, "records missing between 6 and 8"),
    (_tamper_swapped, 7, "record 7: prev_hash does not match record 6"),
    (_tamper_prev_hash, 7, "record 7: prev_hash does not match record 6"),
    (_tamper_unreadable, 7, "record 7: content cannot be read"),
    (_tamper_appended_forgery, 13, "record 13: hash does not match its content"),
    (_tamper_inserted_forgery, 8, "record 8: prev_hash does not match record 7"),
], ids=["changed", "deleted", "swapped", "prev_hash", "unreadable", "appended", "inserted"])
async def test_tampering_is_detected_and_the_first_bad_record_named(store, db_path, monkeypatch,
                                                                    tamper, first_bad, reason):
    """Invariant 7 (tamper-evident): a change made behind the store's back is named by verify and the CLI."""
    monkeypatch.setattr(audit.store, "CHUNK", 5)  # the walk crosses several reads
    await store.append_many([event(i) for i in range(12)])
    assert (await store.verify()).ok
    with closing(raw(db_path)) as conn:
        tamper(conn, 12)
    result = await store.verify()
    assert (result.ok, result.first_bad_seq, result.reason) == (False, first_bad, reason)
    code, message = await verify_url(sqlite_url(db_path))
    assert code == 1 and reason in message


async def test_a_second_record_with_the_same_seq_is_refused(store, db_path):
    """Invariant 7: seq is the primary key, so two writers that raced could never fork the chain silently."""
    await store.append(event(1))
    with closing(raw(db_path)) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO onescreen_audit SELECT * FROM onescreen_audit WHERE seq = 1")


async def test_a_second_copy_of_a_request_is_refused_and_verify_names_one_that_got_in(store, db_path):
    """Invariant 7 (exactly once): (request_id, request_index) is unique, so a request's record cannot be
    written twice; a copy that got in anyway (the key dropped behind the store's back, or a trail from
    before it) makes verify fail and name the request (the old verify said "intact")."""
    await store.append_many([event(i) for i in range(5)])
    with closing(raw(db_path)) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO onescreen_audit SELECT seq + 100, at, kind, request_id, request_index, user_id, "
                     "organisation, role, task, legal_basis, case_ref, subject_type, subject, fields, ledgers, "
                     "client, detail, prev_hash, hash, nonce, user_name FROM onescreen_audit WHERE seq = 3")
    with closing(raw(db_path)) as conn:
        conn.execute("DROP INDEX onescreen_audit_request_key")
    again = await store.append(event(2, request_index=2))  # the same event again, chained properly: a duplicate
    assert again.seq == 6
    result = await store.verify()
    assert (result.ok, result.duplicates) == (False, ("request req-2 (index 2): 2 records, seq 3..6",))
    code, message = await verify_url(sqlite_url(db_path))
    assert code == 1 and "1 request(s) recorded more than once: request req-2 (index 2)" in message


async def test_history_is_newest_first_paginates_without_gaps_and_holds_only_that_subject(store: AuditStore):
    events = []
    for i in range(130):
        events.append(event(i))
        if i % 3 == 0:
            events.append(event(1000 + i, rrn="850505-2000000"))  # another citizen
        if i % 10 == 0:
            events.append(event(2000 + i, kind="consent"))  # same citizen, not a disclosure
    records = await store.append_many(events)
    mine = [r.seq for r in records if r.event.kind == "disclosure" and r.event.subject == event().subject]
    assert len(mine) == 130

    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = await store.history(event().subject, first=50, after=cursor)
        pages += 1
        seen += [r.seq for r in page]
        assert all(r.event.subject == event().subject and r.event.kind == "disclosure" for r in page)
        if cursor is None:
            break
    assert seen == sorted(mine, reverse=True) and pages == 3

    capped, more = await store.history(event().subject, first=10_000)
    assert len(capped) == 100 and more is not None
    assert (await store.history(pseudonymise(KEY, "citizen", "nobody")))[0] == []
    with pytest.raises(BadRequest):
        await store.history(event().subject, after="not-a-cursor")


def test_pseudonyms_are_keyed():
    a = pseudonymise(KEY, "citizen", RRN)
    assert a == pseudonymise(KEY, "citizen", RRN) and len(a) == 64
    assert a != pseudonymise(b"another-key-of-32-bytes-00000000", "citizen", RRN)
    assert a != pseudonymise(KEY, "building", RRN)
    assert a != hashlib.sha256(f"citizen:{RRN}".encode()).hexdigest()  # not a plain, guessable hash
    with pytest.raises(ValueError):
        pseudonymise(b"short", "citizen", RRN)


async def test_the_raw_subject_never_reaches_the_database_file(store: AuditStore, db_path: Path):
    """Invariant 7 with 6: the trail holds the pseudonym only; a raw key as subject is refused."""
    rec = await store.append(event(1))
    with pytest.raises(ValueError):
        await store.append(event(2, subject=RRN))
    await store.close()
    blob = b"".join(p.read_bytes() for p in db_path.parent.iterdir() if p.is_file())
    assert rec.event.subject.encode() in blob  # the grep does see what is there
    for needle in (RRN, RRN.replace("-", "")):
        assert needle.encode() not in blob


async def test_an_event_the_store_must_not_hold_is_refused_alone(store: AuditStore):
    """A raw key, a NUL byte or an unserialisable detail is refused at once; the callers batched with it are not."""
    bad = [event(90, subject=RRN.replace("-", "")), event(91, task="a\x00b"), event(92, detail={"x": object()}),
           event(93, kind="read"), event(94, subject="", kind="consent")]
    results = await asyncio.gather(*(store.append(e) for e in [event(1), *bad, event(2)]), return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["StoredRecord"] + ["ValueError"] * 5 + ["StoredRecord"]
    assert RRN.replace("-", "") not in " ".join(str(r) for r in results)
    assert (await store.verify()).count == 2


async def test_a_store_whose_file_became_a_directory_fails_closed(store, db_path, caplog):
    """Invariant 7 (fail closed): append and check_writable raise AuditUnavailable; the log holds no content."""
    await store.append(event(1))
    await store.check_writable()
    for p in list(db_path.parent.iterdir()):
        p.unlink()
    db_path.mkdir()
    with caplog.at_level(logging.INFO, logger="onescreen.audit"):
        with pytest.raises(AuditUnavailable) as info:
            await store.append(event(2))
        with pytest.raises(AuditUnavailable):
            await store.check_writable()
    assert info.value.code == "AUDIT_UNAVAILABLE"
    assert info.value.message == "the audit trail cannot be written; nothing was disclosed"
    logs = json_logs(caplog)
    assert "audit.append" in logs
    for secret in ("req-2", event(2).subject, "2026-복지-0002", str(db_path)):
        assert secret not in logs and secret not in str(info.value)


async def test_a_replaced_file_is_written_at_its_path_never_through_a_stale_connection(store, db_path, tmp_path):
    """Invariant 7: a pooled connection to a file since replaced (say, a restored copy) would commit into
    the unlinked old inode; the store drops such connections, so the record lands in the file at the path."""
    await store.append(event(1))
    old = tmp_path / "old-inode.sqlite"
    os.link(db_path, old)
    elsewhere = tmp_path / "other" / "audit.sqlite"
    elsewhere.parent.mkdir()
    other = AuditStore(sqlite_url(elsewhere), create=True)
    await other.open()
    await other.close()
    with closing(raw(db_path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # as a careful restore would: no pending WAL
    os.replace(elsewhere, db_path)
    rec = await store.append(event(2))
    assert rec.seq == 1  # the chain of the file now at the path
    await store.close()
    with closing(raw(old)) as conn:
        assert conn.execute("SELECT request_id FROM onescreen_audit").fetchall() == [("req-1",)]
    with closing(raw(db_path)) as conn:
        assert conn.execute("SELECT request_id FROM onescreen_audit").fetchall() == [("req-2",)]


async def test_a_dropped_table_fails_closed(store, db_path):
    await store.append(event(1))
    with closing(raw(db_path)) as conn:
        conn.execute("DROP TABLE onescreen_audit")
    results = await asyncio.gather(*(store.append(event(i)) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, AuditUnavailable) for r in results)
    with pytest.raises(AuditUnavailable):
        await store.check_writable()


async def test_a_held_write_lock_fails_closed_within_the_timeout_and_the_store_recovers(db_path: Path):
    db_path.parent.mkdir()
    s = AuditStore(sqlite_url(db_path), timeout=0.3, create=True)
    await s.open()
    try:
        await s.append(event(1))
        with closing(raw(db_path)) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(AuditUnavailable):
                await asyncio.wait_for(s.append(event(2)), 10)
            with pytest.raises(AuditUnavailable):
                await s.check_writable()
            other.execute("ROLLBACK")
        assert (await s.append(event(3))).seq == 2
        assert (await s.verify()).ok
    finally:
        await s.close()


async def test_appends_after_close_fail_and_queued_ones_are_written_first(db_path: Path):
    db_path.parent.mkdir()
    s = AuditStore(sqlite_url(db_path), create=True)
    await s.open()
    pending = [asyncio.ensure_future(s.append(event(i))) for i in range(20)]
    await asyncio.sleep(0)
    await s.close()
    assert sorted(r.seq for r in await asyncio.gather(*pending)) == list(range(1, 21))
    with pytest.raises(AuditUnavailable):
        await s.append(event(99))


async def test_export_writes_json_lines_oldest_first_that_an_auditor_can_check(store, db_path):
    records = await store.append_many([event(i) for i in range(3)])
    await store.append(event(3, kind="config_change", subject="", subject_type="", detail={"changed": ["a.yaml"]}))
    out = io.StringIO()
    assert await export_url(sqlite_url(db_path), out) == 4
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["seq"] for x in lines] == [1, 2, 3, 4]
    assert [x["hash"] for x in lines[:3]] == [r.hash for r in records]
    assert lines[0]["prev_hash"] == GENESIS and all(b["prev_hash"] == a["hash"] for a, b in zip(lines, lines[1:]))
    assert all(recompute(x) == x["hash"] for x in lines)
    assert lines[3]["detail"] == {"changed": ["a.yaml"]} and lines[0]["fields"][1] == {"id": "citizen.rrn",
                                                                                        "status": "MASKED"}


async def test_verifying_a_missing_store_fails_and_creates_nothing(tmp_path: Path):
    missing = tmp_path / "nowhere.sqlite"
    code, message = await verify_url(sqlite_url(missing))
    assert code == 1 and "no audit trail" in message and not missing.exists()


# ---------------------------------------------------------------- PostgreSQL
def _run(coro) -> Any:
    """Run a coroutine on its own loop in its own thread (for session fixtures outside the tests' loops)."""
    box: dict[str, Any] = {}

    def main() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=main)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


async def _pg_execute(dsn: str, *sql: str) -> None:
    import asyncpg
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        for s in sql:
            await conn.execute(s)
    finally:
        await conn.close()


def _pg_reachable() -> bool:
    try:
        import asyncpg  # noqa: F401
        _run(_pg_execute(PG_URL, "SELECT 1"))
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (plain postgresql:// DSN), dropped at the end."""
    need_service(_pg_reachable(), f"PostgreSQL not reachable at {sa.engine.make_url(PG_URL).render_as_string()} "
                                  "(or asyncpg missing); set ONESCREEN_TEST_PG_URL")
    name = f"onescreen_audit_test_{uuid.uuid4().hex[:10]}"
    _run(_pg_execute(PG_URL, f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        _run(_pg_execute(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_table() -> str:
    return f"audit_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def pg_store(pg_database: str, pg_table: str):
    s = AuditStore(pg_database, table=pg_table)
    await s.init()  # as the owner: here the superuser that made the database
    await s.open()
    yield s
    await s.close()


async def test_pg_concurrent_appends_are_group_committed_and_verify(pg_store: AuditStore):
    records = await asyncio.gather(*(pg_store.append(event(i)) for i in range(500)))
    assert sorted(r.seq for r in records) == list(range(1, 501))
    async with pg_store.engine.connect() as conn:  # each row's xmin is the transaction that wrote it
        transactions = (await conn.execute(sa.text(
            f"SELECT count(DISTINCT xmin::text) FROM {pg_store.table_name}"))).scalar_one()
    assert 1 <= transactions <= 10
    assert (await pg_store.verify()).count == 500
    page, _ = await pg_store.history(event().subject, first=3)
    assert [r.seq for r in page] == [500, 499, 498] and page[0] == max(records, key=lambda r: r.seq)


async def test_pg_the_app_role_cannot_update_delete_or_truncate(pg_store, pg_database, pg_table):
    """Invariant 7 (append-only): the trigger refuses changes, even from the table's owner."""
    import asyncpg
    await pg_store.append_many([event(i) for i in range(3)])
    for sql in (f"UPDATE {pg_table} SET task = 'x' WHERE seq = 2", f"DELETE FROM {pg_table} WHERE seq = 2",
                f"TRUNCATE {pg_table}"):
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await _pg_execute(pg_database, sql)
    assert (await pg_store.verify()).count == 3


async def test_pg_a_change_by_a_superuser_who_drops_the_trigger_is_detected(pg_store, pg_database, pg_table):
    """Invariant 7 (tamper-evident): the chain names the changed record; `audit init` puts the trigger back."""
    await pg_store.append_many([event(i) for i in range(10)])
    await _pg_execute(pg_database, f"DROP TRIGGER {pg_table}_no_change ON {pg_table}",
                      f"UPDATE {pg_table} SET legal_basis = '없음' WHERE seq = 4")
    result = await pg_store.verify()
    assert (result.ok, result.first_bad_seq, result.reason) == (False, 4, "record 4: hash does not match its content")
    again = AuditStore(pg_database, table=pg_table)
    assert "put back" in await again.init()
    await again.close()
    with pytest.raises(Exception, match="append-only"):
        await _pg_execute(pg_database, f"DELETE FROM {pg_table} WHERE seq = 4")


@pytest.mark.parametrize("dsn", ["postgresql://postgres@127.0.0.1:1/test", "missing-database"])
async def test_pg_an_unreachable_store_fails_closed(pg_database: str, dsn: str):
    if dsn == "missing-database":
        dsn = sa.engine.make_url(pg_database).set(database="onescreen_no_such_db").render_as_string(False)
    s = AuditStore(dsn, timeout=2)
    try:
        with pytest.raises(AuditUnavailable):
            await s.open()
        with pytest.raises(AuditUnavailable):
            await s.append(event(1))
        with pytest.raises(AuditUnavailable):
            await s.check_writable()
    finally:
        await s.close()


async def test_pg_a_dropped_table_fails_closed(pg_store, pg_database, pg_table):
    await pg_store.append(event(1))
    await pg_store.check_writable()
    await _pg_execute(pg_database, f"DROP TABLE {pg_table}")
    with pytest.raises(AuditUnavailable):
        await pg_store.append(event(2))
    with pytest.raises(AuditUnavailable):
        await pg_store.check_writable()


async def test_pg_a_writer_connection_killed_between_appends_is_replaced_and_nothing_is_lost(pg_store, pg_database):
    """PostgreSQL restarted or the connection cut between two screens: the next append still succeeds, once."""
    await pg_store.append_many([event(i) for i in range(3)])
    await _pg_execute(pg_database, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE application_name = 'onescreen-audit' AND pid <> pg_backend_pid()")
    record = await pg_store.append(event(3))
    assert record.seq == 4
    result = await pg_store.verify()
    assert (result.ok, result.count) == (True, 4)


async def test_pg_writers_taking_turns_continue_each_others_chain(pg_store, pg_database, pg_table):
    """Each writer chains from the head it last wrote; when another writer moved it meanwhile, its append must
    still land right after the real head, never fork the chain or fail."""
    other = AuditStore(pg_database, table=pg_table)
    await other.open()
    try:
        for i in range(6):
            await (pg_store if i % 2 == 0 else other).append_many([event(10 * i + j) for j in range(2)])
    finally:
        await other.close()
    out = io.StringIO()
    await pg_store.export(out)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["seq"] for x in lines] == list(range(1, 13))
    assert [x["request_id"] for x in lines] == [f"req-{10 * i + j}" for i in range(6) for j in range(2)]
    assert (await pg_store.verify()).ok


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


WRITER = """
import asyncio, os, sys, time
from oneScreen.audit import AuditStore, AuditEvent, FieldDecision
url, table, tag, go = sys.argv[1:5]

async def main():
    while not os.path.exists(go):
        await asyncio.sleep(0.002)
    store = AuditStore(url, table=table)
    await store.open()  # both processes open the store at the same moment
    open(f"{go}.{tag}", "w").close()
    while not all(os.path.exists(f"{go}.{t}") for t in "ab"):  # then both start writing together
        await asyncio.sleep(0.001)
    for chunk in range(100):
        await asyncio.gather(*(store.append(AuditEvent(
            "disclosure", f"{tag}-{chunk * 3 + i}", "u", "o", "r", "t", "l", "c", "citizen", "cd" * 32,
            (FieldDecision("citizen.name", "OK"),), ("mois_resident",), "127.0.0.1")) for i in range(3)))
    await store.close()
    print(store.batches_committed)

asyncio.run(main())
"""


async def test_pg_two_processes_appending_at_once_leave_one_contiguous_verifiable_chain(pg_database, pg_table,
                                                                                         tmp_path):
    """Invariant 7 across workers: 2 x 300 records from two OS processes, one chain of 600."""
    go = tmp_path / "go"
    owner = AuditStore(pg_database, table=pg_table)
    await owner.init()
    await owner.close()
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", WRITER, pg_database, pg_table, tag, str(go),
                                                  stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                  env=_child_env())
             for tag in ("a", "b")]
    await asyncio.sleep(0.3)
    go.touch()
    outs = [await asyncio.wait_for(p.communicate(), 60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1].decode()[-2000:] for o in outs]
    s = AuditStore(pg_database, table=pg_table)
    try:
        result = await s.verify()
        assert (result.ok, result.count) == (True, 600), result
        out = io.StringIO()
        await s.export(out)
    finally:
        await s.close()
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["seq"] for x in lines] == list(range(1, 601))
    tags = [x["request_id"].split("-")[0] for x in lines]
    assert sorted(x["request_id"] for x in lines) == sorted(f"{t}-{i}" for t in "ab" for i in range(300))
    switches = sum(1 for a, b in zip(tags, tags[1:]) if a != b)
    assert switches >= 2, "the two writers did not overlap; the test proved nothing"


def test_the_one_hash_encoding_is_byte_for_byte_the_documented_canonical_form():
    """`chain.encode` (orjson, used to write and to verify) must give the bytes of the documented json.dumps
    canonical form that outside checkers use (`recompute`), and the writer's row must hold the same JSON,
    for any text an event may hold."""
    from hypothesis import given, settings, strategies as st

    text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
    detail = st.dictionaries(text, st.one_of(text, st.integers(-2**70, 2**70), st.booleans(), st.none(),
                                             st.lists(text, max_size=3)), max_size=3)

    @settings(max_examples=300, deadline=None)
    @given(texts=st.lists(text, min_size=9, max_size=9), fields=st.lists(st.tuples(text, text), max_size=5),
           ledgers=st.lists(text, max_size=3), detail=detail, seq=st.integers(1, 2**62),
           micros=st.integers(0, 2**40), index=st.one_of(st.none(), st.integers(0, 2**31)))
    def check(texts, fields, ledgers, detail, seq, micros, index):
        at = datetime.fromtimestamp(micros / 1e6, timezone.utc)
        e = AuditEvent("config_change", *texts[:8], "", fields=tuple(fields), ledgers=tuple(ledgers),
                       client=texts[8], detail=detail).stamped(at, index)
        prev = hashlib.sha256(texts[0].encode()).hexdigest()
        rows: list[dict[str, Any]] = []
        _, digest = writer._seal(seq, e, prev, [], rows)
        payload = {"seq": seq, "at": at.isoformat(timespec="microseconds"), "kind": e.kind,
                   "request_id": e.request_id, "organisation": e.organisation, "role": e.role,
                   "task": e.task, "legal_basis": e.legal_basis, "case_ref": e.case_ref,
                   "subject_type": e.subject_type, "subject": e.subject,
                   "fields": [{"id": f.id, "status": f.status} for f in e.fields], "ledgers": list(e.ledgers),
                   "detail": detail}
        if index is not None:
            payload["request_index"] = index
        row = rows[0]
        nonce = bytes.fromhex(row["nonce"])
        commitments = {m: hashlib.sha256(hmac.new(nonce, m.encode(), hashlib.sha256).digest() + json.dumps(
            v, ensure_ascii=False).encode("utf-8")).hexdigest() for m, v in (("user", e.user), ("client", e.client))}
        assert digest == recompute({**payload, "format": 2, "commitments": commitments, "prev_hash": prev,
                                    "hash": None, "nonce": row["nonce"], "private": {"user": e.user,
                                                                                     "client": e.client}})
        # the format before (records written before schema version 3): the private members in clear
        old = {**payload, "user": e.user, "client": e.client, "prev_hash": prev, "hash": None}
        assert audit.chain.link(prev, audit.chain.encode(seq, at, e)) == recompute(old)
        assert (json.loads(row["fields"]), json.loads(row["ledgers"]), json.loads(row["detail"])) == (
            payload["fields"], payload["ledgers"], detail)

    check()


def test_an_event_is_stamped_as_dataclasses_replace_would_and_pairs_become_decisions():
    """The writer stamps each event with its commit time without converting it again (`stamped`); the result
    must be exactly `replace(event, at=...)`, and the caller's event stays as it was."""
    import dataclasses

    e = AuditEvent("disclosure", "r1", "u", "o", "role", "t", "law", "C-1", "citizen", "a" * 64,
                   [("citizen.name", "OK"), FieldDecision("citizen.rrn", "MASKED")], ["mois_resident"], "127.0.0.1")
    assert e.fields == (FieldDecision("citizen.name", "OK"), FieldDecision("citizen.rrn", "MASKED"))
    assert e.ledgers == ("mois_resident",) and type(e.fields) is tuple
    at = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    stamped = e.stamped(at, 3)
    assert stamped == dataclasses.replace(e, at=at, request_index=3) and stamped.at == at and e.at is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        stamped.at = None


async def test_pg_a_partitioned_trail_made_as_the_guide_says_is_initialised_and_holds(pg_database, pg_table):
    """Invariant 7 at national volume: the guide's partitioned table, then `audit init`: appends across
    partitions chain on, a second copy of a request is refused (the key holds `at`), and verify holds."""
    import re

    doc = (ROOT / "docs" / "OPERATIONS.md").read_text(encoding="utf-8").split("### Partitioning", 1)[1]
    sql = re.search(r"```sql\n(.*?)```", doc, re.S).group(1)
    sql = re.sub(r"\bonescreen_audit(?=\b|_pkey|_seq_idx|_subject_seq_idx|_2026_12)", pg_table, sql)
    statements = [s.strip() for s in "\n".join(l.split("--", 1)[0] for l in sql.splitlines()).split(";") if s.strip()]
    await _pg_execute(pg_database, *statements, f"CREATE TABLE {pg_table}_2027_01 PARTITION OF {pg_table} "
                                                f"FOR VALUES FROM ('2027-01-01') TO ('2027-02-01')")
    s = AuditStore(pg_database, table=pg_table)
    try:
        assert (await s.init()).startswith("created")
        await s.open()
        dec, jan = datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc), datetime(2027, 1, 1, 0, 1, tzinfo=timezone.utc)
        records = await s.append_many([event(1, at=dec), event(2, at=jan), event(3, at=dec)])
        assert [r.seq for r in records] == [1, 2, 3]
        cols = ", ".join(audit.schema.COLUMNS)
        with pytest.raises(Exception, match=r"Key \(request_id, request_index, at\)"):  # another seq, same request
            await _pg_execute(pg_database, f"INSERT INTO {pg_table} ({cols}) SELECT seq + 100, "
                                           f"{cols.split(', ', 1)[1]} FROM {pg_table} WHERE seq = 2")
        result = await s.verify()
        assert (result.ok, result.count) == (True, 3), result
    finally:
        await s.close()


async def test_records_of_schema_version_2_verify_as_before_after_migrate_and_export_covers_both(db_path):
    """Records written before the nonce (the officer in clear in their hash input) keep their hashes byte for
    byte across `audit migrate`; new records are of format 2; verify holds over both and an outside auditor
    (`recompute`) checks every exported hash, the new records' commitments included."""
    db_path.parent.mkdir()
    s = AuditStore(sqlite_url(db_path))
    await s.init()
    await s.close()
    old = [event(i).stamped(datetime(2026, 11, 1, 9, i, tzinfo=timezone.utc), 0) for i in range(3)]
    _, rows = writer.chain((0, GENESIS), old)
    prev = GENESIS
    with closing(raw(db_path)) as conn:  # the store as schema version 2 left it
        conn.execute("ALTER TABLE onescreen_audit DROP COLUMN nonce")
        conn.execute("ALTER TABLE onescreen_audit DROP COLUMN user_name")
        conn.execute("UPDATE onescreen_audit_schema SET version = 2")
        for e, r in zip(old, rows):
            del r["nonce"], r["user_name"]
            r.update(at=r["at"].isoformat(timespec="microseconds"), prev_hash=prev,
                     hash=audit.chain.link(prev, audit.chain.encode(r["seq"], e.at, e)))
            prev = r["hash"]
            conn.execute(f"INSERT INTO onescreen_audit ({', '.join(r)}) VALUES ({', '.join('?' * len(r))})",
                         list(r.values()))
    s = AuditStore(sqlite_url(db_path))
    with pytest.raises(audit.AuditSchemaError, match="schema version 2, this service needs 4"):
        await s.open()
    assert await s.migrate() == "migrated from schema version 2 to 4"
    await s.close()
    s = AuditStore(sqlite_url(db_path))
    try:
        new = await s.append_many([event(10 + i) for i in range(2)])
        assert new[0].prev_hash == prev and all(r.nonce is not None and len(r.nonce) == 32 for r in new)
        result = await s.verify()
        out = io.StringIO()
        await s.export(out)
    finally:
        await s.close()
    assert (result.ok, result.count) == (True, 5), result
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["hash"] for x in lines[:3]] == [r["hash"] for r in rows]  # byte for byte as written
    assert all(x["user"] == "lee.bokji" and "format" not in x and "nonce" not in x for x in lines[:3])
    assert all(x["format"] == 2 and "user" not in x and x["private"] == {"user": "lee.bokji", "client": "10.0.0.7"}
               for x in lines[3:])
    assert all(recompute(x) == x["hash"] for x in lines)
    lines[4]["private"]["user"] = "kim.other"  # the auditor sees an exported officer that is not the committed one
    assert recompute(lines[4]) == "the commitment of user does not match"


async def test_records_of_format_2_verify_after_migrate_to_4_and_new_ones_commit_the_officers_name(db_path):
    """Schema version 4: the officer's name leaves `detail` (where a citizen's proof showed it in clear) for a
    column of its own, committed like the user id (record format 3). Records of format 2 (a store of version 3)
    keep their hashes across `audit migrate`; verify holds over both; an outside auditor recomputes every hash;
    a name changed in the store breaks verify (the proof: test_receipt_proof.py)."""
    db_path.parent.mkdir()
    s = AuditStore(sqlite_url(db_path))
    await s.init()
    try:
        old = await s.append_many([event(i, detail={"user_name": "이복지"}) for i in range(2)])  # as version 3 wrote
    finally:
        await s.close()
    with closing(raw(db_path)) as conn, conn:  # the store as schema version 3 left it
        conn.execute("ALTER TABLE onescreen_audit DROP COLUMN user_name")
        conn.execute("UPDATE onescreen_audit_schema SET version = 3")
    s = AuditStore(sqlite_url(db_path))
    with pytest.raises(audit.AuditSchemaError, match="schema version 3, this service needs 4"):
        await s.open()
    assert await s.migrate() == "migrated from schema version 3 to 4"
    await s.close()
    s = AuditStore(sqlite_url(db_path))
    try:
        await s.append_many([event(10 + i, user_name="이복지") for i in range(2)])
        result = await s.verify()
        out = io.StringIO()
        await s.export(out)
    finally:
        await s.close()
    assert (result.ok, result.count) == (True, 4), result
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["hash"] for x in lines[:2]] == [r.hash for r in old]  # byte for byte as written
    assert [x["format"] for x in lines] == [2, 2, 3, 3] and lines[0]["detail"] == {"user_name": "이복지"}
    assert lines[2]["private"] == {"user": "lee.bokji", "client": "10.0.0.7", "user_name": "이복지"}
    assert "user_name" not in lines[2]["detail"] and sorted(lines[2]["commitments"]) == ["client", "user", "user_name"]
    assert all(recompute(x) == x["hash"] for x in lines)
    with closing(raw(db_path)) as conn, conn:
        conn.execute("UPDATE onescreen_audit SET user_name = '김다른' WHERE seq = 4")
    s = AuditStore(sqlite_url(db_path))
    try:
        bad = await s.verify()
    finally:
        await s.close()
    assert (bad.ok, bad.first_bad_seq) == (False, 4), bad
