"""The audit trail: an append-only, hash-chained record of every disclosure.

Owns invariant 7. `AuditStore.append` returns only once the record is durably
committed, and raises `AuditUnavailable` otherwise, so the caller can fail closed
(send nothing). Records are never updated or deleted; each carries
``hash = sha256(prev_hash + canonical_json(payload))``, so `verify()` finds a
changed, deleted, inserted or reordered record.

- Group commit: concurrent appends of one process are written by one writer task,
  many records per transaction; each caller still waits for its own commit.
- Several processes may share one store: each transaction first serialises the
  writers (PostgreSQL ``pg_advisory_xact_lock``, SQLite ``BEGIN IMMEDIATE``) and
  continues the chain from the last committed record; ``seq`` is the primary key,
  so a race could never fork the chain silently. On PostgreSQL a batch is one
  statement that inserts only if the head is still the one it was chained from
  (else it is chained again under the lock), so a commit costs one round trip.
- On PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE on the table.
- A record holds only what `AuditEvent` holds: field ids and decisions, never a
  value. ``subject`` must be a pseudonym (`pseudonymise`), never the raw key: the
  store refuses anything but 64 hex digits there.

The payload of record ``seq`` is the JSON object of its `export` line without
``prev_hash`` and ``hash``; canonical JSON is ``json.dumps(payload, sort_keys=True,
separators=(",", ":"), ensure_ascii=False)`` encoded as UTF-8, and ``at`` is UTC
ISO 8601 with microseconds. The first record's ``prev_hash`` is 64 zeros. So an
export can be checked without this code. The chain proves the order and content
of what it holds; to notice a truncated tail or a wholly rewritten file, keep the
head hash that `verify()` reports somewhere else (a log shipper, a ticket). A
SQLite store must not be moved or replaced while a service writes to it (SQLite's
own rule); a missing file fails closed rather than being created anew.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Iterable, Mapping

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator

from .errors import BadRequest, OneScreenError

log = logging.getLogger("onescreen.audit")

KINDS = ("disclosure", "consent", "config_change", "search", "security")
GENESIS = "0" * 64
CONTENDED_FOR = 1.0  # seconds a writer uses the locked append after seeing another writer's records
MAX_PAGE = 100
CHUNK = 1000  # rows per read while verifying or exporting (bounded memory)
_PSEUDONYM = re.compile(r"[0-9a-f]{64}")
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")
# errors after which the writer's connection is replaced (connection lost, server restarting or shut down)
_PG_BROKEN = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError)
_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}


class AuditUnavailable(OneScreenError):
    """The audit trail cannot be written (or read): the request must fail, and nothing is disclosed.

    ``reason`` is the class of the underlying error, for logs and metrics; the
    message never holds SQL, a DSN or anything of the event.
    """

    code = "AUDIT_UNAVAILABLE"
    WRITE = "the audit trail cannot be written; nothing was disclosed"
    READ = "the audit trail cannot be read"

    def __init__(self, message: str = WRITE, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class FieldDecision:
    id: str  # catalog id, e.g. "citizen.rrn"
    status: str  # e.g. "OK", "MASKED", "DENIED", "UNAVAILABLE"


@dataclass(frozen=True)
class AuditEvent:
    """What was disclosed to whom, for which task: ids and decisions, never field values."""

    kind: str  # one of KINDS
    request_id: str
    user: str
    organisation: str
    role: str  # the caller's role that grants the task
    task: str
    legal_basis: str
    case_ref: str
    subject_type: str
    subject: str  # a pseudonym from pseudonymise() (64 hex digits), never the raw key; "" when none
    fields: tuple[FieldDecision, ...]
    ledgers: tuple[str, ...]
    client: str  # client address
    detail: Mapping[str, Any] = field(default_factory=dict)  # e.g. config diff, consent method; never values
    at: datetime | None = None  # set by the store (UTC) when None

    def __post_init__(self) -> None:
        if type(self.fields) is not tuple or any(type(f) is not FieldDecision for f in self.fields):
            fields = tuple(f if isinstance(f, FieldDecision) else FieldDecision(*f) for f in self.fields)
            object.__setattr__(self, "fields", fields)
        if type(self.ledgers) is not tuple:
            object.__setattr__(self, "ledgers", tuple(self.ledgers))

    def stamped(self, at: datetime) -> "AuditEvent":
        """This event with `at` set: `dataclasses.replace(self, at=at)` without converting its parts again."""
        event = object.__new__(AuditEvent)
        event.__dict__.update(self.__dict__, at=at)
        return event


@dataclass(frozen=True)
class StoredRecord:
    seq: int
    at: datetime
    event: AuditEvent  # with event.at == at
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    count: int  # records read
    first_bad_seq: int | None
    reason: str | None
    head_hash: str | None = None  # hash of the last record when ok: keep it elsewhere to detect a cut tail


def pseudonymise(key: bytes, subject_type: str, subject: str) -> str:
    """The pseudonym the audit trail stores for a subject: HMAC-SHA256 (hex) of "type:key".

    `key` is a secret from the environment (32 random bytes); without it a pseudonym
    cannot be linked back to a resident registration number by enumeration.
    """
    if len(key) < 16:
        raise ValueError("the pseudonymisation key must be at least 16 bytes (use 32 random bytes)")
    return hmac.new(key, f"{subject_type}:{subject}".encode("utf-8"), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- canonical form and hash
def _canonical(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


def _iso(at: datetime) -> str:
    return _utc(at).isoformat(timespec="microseconds")


def _payload(seq: int, at: datetime, e: AuditEvent) -> dict[str, Any]:
    return {"seq": seq, "at": _iso(at), "kind": e.kind, "request_id": e.request_id, "user": e.user,
            "organisation": e.organisation, "role": e.role, "task": e.task, "legal_basis": e.legal_basis,
            "case_ref": e.case_ref, "subject_type": e.subject_type, "subject": e.subject,
            "fields": [{"id": f.id, "status": f.status} for f in e.fields], "ledgers": list(e.ledgers),
            "client": e.client, "detail": dict(e.detail)}


def _digest(prev_hash: str, payload: Mapping[str, Any]) -> str:
    return hashlib.sha256((prev_hash + _canonical(payload)).encode("utf-8")).hexdigest()


_TEXT_ATTRS = ("kind", "request_id", "user", "organisation", "role", "task", "legal_basis", "case_ref",
               "subject_type", "subject", "client")


def _check(e: AuditEvent) -> None:
    """Refuse an event the store could not write or must not hold, before it joins a batch.

    Messages name the attribute, never its content.
    """
    if not isinstance(e, AuditEvent):
        raise TypeError("append takes AuditEvent objects")
    if e.kind not in KINDS:
        raise ValueError(f"audit event kind must be one of {', '.join(KINDS)}")
    values = [getattr(e, a) for a in _TEXT_ATTRS]
    for f in e.fields:
        values += (f.id, f.status)
    values += e.ledgers
    try:  # all at once (the common case: all good), then one by one to name the bad attribute
        joined = "".join(values)
        good = "\x00" not in joined and _utf8(joined)
    except TypeError:
        good = False
    if not good:
        texts = [(a, getattr(e, a)) for a in _TEXT_ATTRS]
        texts += [("fields", x) for f in e.fields for x in (f.id, f.status)]
        texts += [("ledgers", x) for x in e.ledgers]
        for name, value in texts:
            if not isinstance(value, str) or "\x00" in value or not _utf8(value):
                raise ValueError(f"audit event {name} must be UTF-8 text without NUL characters")
    if e.subject and not _PSEUDONYM.fullmatch(e.subject):
        raise ValueError("audit event subject must be a pseudonym (pseudonymise()), never a raw key")
    if e.kind in ("disclosure", "consent") and not e.subject:
        raise ValueError(f"a {e.kind} audit event needs a subject pseudonym")
    if e.at is not None and not isinstance(e.at, datetime):
        raise ValueError("audit event at must be a datetime or None")
    if not isinstance(e.detail, Mapping):
        raise ValueError("audit event detail must be a mapping")
    try:
        if e.detail:
            _canonical(dict(e.detail)).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError):
        raise ValueError("audit event detail is not JSON-serialisable UTF-8") from None


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


# ---------------------------------------------------------------- table
class _UtcTimestamp(TypeDecorator):
    """timestamptz on PostgreSQL; ISO 8601 text on SQLite. Always read back as an aware UTC datetime."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(sa.Text() if dialect.name == "sqlite" else sa.DateTime(timezone=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return _iso(value) if dialect.name == "sqlite" else _utc(value)

    def process_result_value(self, value, dialect):
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                return value  # left as text: verify() reports the record as unreadable
        return _utc(value) if isinstance(value, datetime) else value


def _table(name: str) -> sa.Table:
    meta = sa.MetaData()
    t = sa.Table(
        name, meta,
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", _UtcTimestamp(), nullable=False),
        *(sa.Column(c, sa.Text, nullable=False) for c in (
            "kind", "request_id", "user_id", "organisation", "role", "task", "legal_basis", "case_ref",
            "subject_type", "subject", "fields", "ledgers", "client", "detail")),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=f"{name}_pkey"),
    )
    # history(): one subject's records, newest first, by seq (the cursor), so the index is on (subject, seq)
    sa.Index(f"{name}_subject_seq_idx", t.c.subject, t.c.seq)
    return t


_COLUMNS = ("seq", "at", "kind", "request_id", "user_id", "organisation", "role", "task", "legal_basis", "case_ref",
            "subject_type", "subject", "fields", "ledgers", "client", "detail", "prev_hash", "hash")


def _row(seq: int, at: datetime, e: AuditEvent, prev_hash: str, digest: str) -> dict[str, Any]:
    p = _payload(seq, at, e)
    return {"seq": seq, "at": at, "kind": e.kind, "request_id": e.request_id, "user_id": e.user,
            "organisation": e.organisation, "role": e.role, "task": e.task, "legal_basis": e.legal_basis,
            "case_ref": e.case_ref, "subject_type": e.subject_type, "subject": e.subject,
            "fields": _canonical(p["fields"]), "ledgers": _canonical(p["ledgers"]), "client": e.client,
            "detail": _canonical(p["detail"]), "prev_hash": prev_hash, "hash": digest}


def _sealed(seq: int, at: datetime, e: AuditEvent, prev_hash: str) -> tuple[dict[str, Any], str]:
    """`_row` with its `_digest`, as the writer makes them: each part's canonical JSON made once, by orjson.

    Every attribute but `detail` is text (checked by `_check`), for which orjson's sorted output is byte for
    byte `_canonical`'s (pinned by a property test); `detail` is free-form, so it keeps `_canonical` and is
    embedded as a fragment. Produces exactly `_row(...)` and `_digest(prev_hash, _payload(...))`."""
    fields = orjson.dumps(e.fields)  # FieldDecision dataclasses: [{"id": ..., "status": ...}, ...] in that order
    ledgers = orjson.dumps(e.ledgers)
    detail = _canonical(dict(e.detail)) if e.detail else "{}"
    payload = {"seq": seq, "at": _iso(at), "kind": e.kind, "request_id": e.request_id, "user": e.user,
               "organisation": e.organisation, "role": e.role, "task": e.task, "legal_basis": e.legal_basis,
               "case_ref": e.case_ref, "subject_type": e.subject_type, "subject": e.subject,
               "fields": orjson.Fragment(fields), "ledgers": orjson.Fragment(ledgers), "client": e.client,
               "detail": orjson.Fragment(detail.encode("utf-8"))}
    digest = hashlib.sha256(prev_hash.encode("utf-8") + orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return {"seq": seq, "at": at, "kind": e.kind, "request_id": e.request_id, "user_id": e.user,
            "organisation": e.organisation, "role": e.role, "task": e.task, "legal_basis": e.legal_basis,
            "case_ref": e.case_ref, "subject_type": e.subject_type, "subject": e.subject,
            "fields": fields.decode("utf-8"), "ledgers": ledgers.decode("utf-8"), "client": e.client,
            "detail": detail, "prev_hash": prev_hash, "hash": digest}, digest


def _record(r: Any) -> StoredRecord:
    """A row read back; raises ValueError/TypeError/KeyError when its content cannot be decoded."""
    if not isinstance(r.at, datetime):
        raise ValueError("unreadable time")
    fields = tuple(FieldDecision(str(f["id"]), str(f["status"])) for f in json.loads(r.fields))
    ledgers = tuple(json.loads(r.ledgers))
    detail = json.loads(r.detail)
    if not isinstance(detail, dict):
        raise ValueError("detail is not an object")
    e = AuditEvent(kind=r.kind, request_id=r.request_id, user=r.user_id, organisation=r.organisation, role=r.role,
                   task=r.task, legal_basis=r.legal_basis, case_ref=r.case_ref, subject_type=r.subject_type,
                   subject=r.subject, fields=fields, ledgers=ledgers, client=r.client, detail=detail, at=r.at)
    return StoredRecord(seq=r.seq, at=r.at, event=e, prev_hash=r.prev_hash, hash=r.hash)


# ---------------------------------------------------------------- the store
@dataclass
class _Pending:
    events: list[AuditEvent]
    future: asyncio.Future


_STOP = object()


class AuditStore:
    """An audit store at one SQLAlchemy URL: ``sqlite+aiosqlite:///path`` (a file) or ``postgresql+asyncpg://...``.

    Use from one event loop: ``await open()`` at start, ``await close()`` at the end.
    `timeout` bounds waiting for the writers' lock and each statement, in seconds.
    """

    def __init__(self, url: str, *, max_batch: int = 256, table: str = "onescreen_audit", timeout: float = 5.0) -> None:
        if not _TABLE_NAME.fullmatch(table):
            raise ValueError("audit table name must be lower-case letters, digits and _ (at most 40)")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        u = make_url(url)
        if "+" not in u.drivername and u.drivername in _DRIVERS:
            u = u.set(drivername=_DRIVERS[u.drivername])
        self.backend = u.get_backend_name()
        if self.backend == "sqlite":
            if not u.database or u.database == ":memory:" or u.query.get("mode") == "memory":
                raise ValueError("the SQLite audit store must be a file: an in-memory trail is not durable")
            self.path: Path | None = Path(u.database)
            self.engine: AsyncEngine = create_async_engine(u, connect_args={"timeout": timeout})
            self._sqlite_events(timeout)
            self._writes = self.engine.execution_options(onescreen_begin="IMMEDIATE")
        elif self.backend == "postgresql":
            self.path = None
            self.engine = create_async_engine(
                u, pool_pre_ping=True, pool_timeout=timeout,
                connect_args={"timeout": timeout, "command_timeout": timeout,
                              "server_settings": {"lock_timeout": f"{int(timeout * 1000)}ms",
                                                  "application_name": "onescreen-audit"}})
            self._writes = self.engine
        else:
            raise ValueError("the audit store must be SQLite (a file) or PostgreSQL")
        self.table_name = table
        self.table = _table(table)
        self._insert_sql = (f"INSERT INTO {table} ({', '.join(_COLUMNS)}) "
                            f"VALUES ({', '.join(f'${i}' for i in range(1, len(_COLUMNS) + 1))})")
        self._append_sql = f"SELECT * FROM {table}_append_rows($1, $2, $3, $4, $5, $6)"
        self._head: tuple[int, str] | None = None  # (seq, hash) of the last record this writer committed
        self._contended_until = 0.0  # monotonic time until which other writers count as busy
        self._writer_conn: AsyncConnection | None = None
        self._writer_raw: Any = None
        self.max_batch = max_batch
        self.batches_committed = 0  # transactions that wrote records (for benchmarks and metrics)
        self.records_committed = 0
        self._lock_key = int.from_bytes(hashlib.sha256(f"onescreen.audit:{table}".encode()).digest()[:8],
                                        "big", signed=True)
        self._queue: asyncio.Queue | None = None
        self._writer: asyncio.Task | None = None
        self._open_lock: asyncio.Lock | None = None
        self._opened = False
        self._closing = False

    def _file_id(self) -> tuple[int, int]:
        st = self.path.stat()
        return st.st_dev, st.st_ino

    def _sqlite_events(self, timeout: float) -> None:
        @sa_event.listens_for(self.engine.sync_engine, "connect")
        def on_connect(dbapi_conn, record):
            dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            cur.execute("PRAGMA journal_mode = WAL")  # persistent; DELETE journal stays durable too
            cur.execute("PRAGMA synchronous = FULL")  # a commit returns after fsync
            cur.close()
            record.info["file_id"] = self._file_id()

        @sa_event.listens_for(self.engine.sync_engine, "checkout")
        def on_checkout(_dbapi_conn, record, _proxy):
            # a pooled connection to a file that was since replaced would write to an unlinked inode:
            # drop it, and let a new connection meet whatever is at the path now
            try:
                same = record.info.get("file_id") == self._file_id()
            except OSError:
                same = False
            if not same:
                raise sa.exc.DisconnectionError("the audit store file was replaced")

        @sa_event.listens_for(self.engine.sync_engine, "begin")
        def on_begin(conn):
            mode = conn.get_execution_options().get("onescreen_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

    # ------------------------------------------------------------ life cycle
    async def open(self, *, create: bool = True) -> None:
        """Create the table, its index (and on PostgreSQL the append-only trigger) if missing; start the writer.

        Idempotent, and safe when several processes start at once. With ``create=False``
        (the CLI's verify and export) a missing store raises AuditUnavailable instead.
        """
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._opened:
                return
            if self._closing:
                raise AuditUnavailable(reason="closed")
            if not create and self.path is not None and not self.path.is_file():
                raise AuditUnavailable("no audit trail at this address", reason="missing")
            try:
                async with self._writes.begin() as conn:
                    if self.backend == "postgresql":
                        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": self._lock_key})
                    exists = await conn.run_sync(lambda c: sa.inspect(c).has_table(self.table_name))
                    if not exists and not create:
                        raise AuditUnavailable("no audit trail at this address", reason="missing")
                    if create:
                        await conn.run_sync(self.table.metadata.create_all)
                        if self.backend == "postgresql":
                            await self._pg_functions(conn)
            except AuditUnavailable:
                raise
            except Exception as exc:
                log.error("audit store cannot be opened", extra={"operation": "audit.open", "outcome": "failed",
                                                                 "reason": type(exc).__name__})
                raise AuditUnavailable(reason=type(exc).__name__) from None
            self._queue = asyncio.Queue()
            self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="onescreen-audit-writer")
            self._opened = True

    async def _pg_functions(self, conn: AsyncConnection) -> None:
        t = self.table_name
        await conn.execute(sa.text(
            f"CREATE OR REPLACE FUNCTION {t}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION 'the audit trail is append-only (% refused)', TG_OP "
            f"USING ERRCODE = 'insufficient_privilege'; END $$"))
        # The writers' lock and the chain head in one call. A VOLATILE function takes a fresh snapshot per
        # statement, so the head is read after the lock is granted: a plain "SELECT lock, head" would read
        # the head as of before the wait, and miss what the previous lock holder committed.
        await conn.execute(sa.text(
            f"CREATE OR REPLACE FUNCTION {t}_lock_head(k bigint) RETURNS TABLE(head_seq bigint, head_hash text) "
            f"LANGUAGE plpgsql VOLATILE AS $$ BEGIN PERFORM pg_advisory_xact_lock(k); "
            f"RETURN QUERY SELECT a.seq, a.hash::text FROM {t} a ORDER BY a.seq DESC LIMIT 1; END $$"))
        # The whole append in one statement (its own transaction, so one round trip and the commit): under the
        # writers' lock, insert the rows only if the head is still the one they were chained from; return the
        # head either way. The caller knows its rows went in when the head returned is its own last record.
        # The rows come as one JSON array (the server unpacks it): as 18 arrays, asyncpg's element-by-element
        # encoding was ~3% of a screen's CPU in the worker. (Stores made before keep an unused `{t}_append`.)
        cols = ", ".join(_COLUMNS)
        await conn.execute(sa.text(
            f"CREATE OR REPLACE FUNCTION {t}_append_rows(k bigint, expect_seq bigint, expect_hash text, "
            f"last_seq bigint, last_hash text, rows json) "
            f"RETURNS TABLE(head_seq bigint, head_hash text) LANGUAGE plpgsql VOLATILE AS $$ "
            f"DECLARE s bigint; h text; BEGIN PERFORM pg_advisory_xact_lock(k); "
            f"SELECT a.seq, a.hash::text INTO s, h FROM {t} a ORDER BY a.seq DESC LIMIT 1; "
            f"IF NOT FOUND THEN s := 0; h := '{GENESIS}'; END IF; "
            f"IF s = expect_seq AND h = expect_hash THEN "
            f"INSERT INTO {t} ({cols}) SELECT {cols} FROM json_populate_recordset(NULL::{t}, rows); "
            f"s := last_seq; h := last_hash; END IF; "
            f"RETURN QUERY SELECT s, h; END $$"))
        have = set((await conn.execute(sa.text(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass)"), {"t": t})).scalars())
        if f"{t}_no_change" not in have:
            await conn.execute(sa.text(f"CREATE TRIGGER {t}_no_change BEFORE UPDATE OR DELETE ON {t} "
                                       f"FOR EACH ROW EXECUTE FUNCTION {t}_append_only()"))
        if f"{t}_no_truncate" not in have:
            await conn.execute(sa.text(f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                                       f"FOR EACH STATEMENT EXECUTE FUNCTION {t}_append_only()"))

    async def close(self) -> None:
        """Write what is queued, stop the writer, release connections. Later appends raise AuditUnavailable."""
        self._closing = True
        if self._writer is not None and self._queue is not None:
            self._queue.put_nowait(_STOP)
            try:
                await self._writer
            finally:
                self._writer = None
        self._opened = False
        if self._writer_conn is not None:
            conn, self._writer_conn, self._writer_raw = self._writer_conn, None, None
            await conn.close()
        await self.engine.dispose()

    # ------------------------------------------------------------ writing
    async def append(self, event: AuditEvent) -> StoredRecord:
        """Append one record; returns once it is durably committed, or raises AuditUnavailable."""
        return (await self.append_many([event]))[0]

    async def append_many(self, events: Iterable[AuditEvent]) -> list[StoredRecord]:
        """Append several records in one transaction (all or none), contiguous in the chain."""
        events = list(events)
        for e in events:
            _check(e)
        if not events:
            return []
        if not self._opened:
            await self.open()
        if self._closing or self._writer is None or self._writer.done():
            raise AuditUnavailable(reason="closed")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(events, future))
        return await future

    async def _write_loop(self) -> None:
        """The single writer: take everything queued (up to max_batch records), write it in one transaction."""
        assert self._queue is not None
        stop = False
        while not stop:
            item = await self._queue.get()
            if item is _STOP:
                break
            batch, n = [item], len(item.events)
            while n < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
                n += len(item.events)
            await self._write_batch(batch)

    async def _write_batch(self, batch: list[_Pending]) -> None:
        try:
            records = await self._insert([e for p in batch for e in p.events])
        except BaseException as exc:
            log.error("audit records cannot be written", extra={"operation": "audit.append", "outcome": "failed",
                                                                "reason": type(exc).__name__})
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(AuditUnavailable(reason=type(exc).__name__))
            if not isinstance(exc, Exception):
                raise
            return
        self.batches_committed += 1
        self.records_committed += len(records)
        i = 0
        for p in batch:  # only now, after the commit, does any caller learn its record
            if not p.future.done():
                p.future.set_result(records[i:i + len(p.events)])
            i += len(p.events)

    def _check_file(self) -> None:
        """SQLite: the file must still be there; connecting would silently create a new, empty one."""
        if self.path is not None and not self.path.is_file():
            raise FileNotFoundError("the audit store file is missing or is not a file")

    async def _insert(self, events: list[AuditEvent]) -> list[StoredRecord]:
        if self.backend == "postgresql":
            return await self._insert_pg(events)
        t = self.table
        self._check_file()
        async with self._writes.begin() as conn:  # SQLite: BEGIN IMMEDIATE
            last = (await conn.execute(sa.select(t.c.seq, t.c.hash).order_by(t.c.seq.desc()).limit(1))).first()
            records, rows = self._chain(last, events)
            await conn.execute(t.insert(), rows)
        return records

    async def _insert_pg(self, events: list[AuditEvent]) -> list[StoredRecord]:
        """PostgreSQL: the records chained from the head this writer last saw and appended by `<table>_append` in
        one statement (one round trip, then the commit's fsync). If another process moved the head meanwhile,
        nothing was written and the append is done again the locked way (`_insert_pg_locked`), which cannot
        miss. The writer keeps its own connection, so no pool checkout, pre-ping or reset per batch
        (`bench/audit_rate.py`: 2.2 -> 0.5 ms per record at c=1).

        A connection found broken is replaced and the append tried once more. That is safe even if the first
        try committed before the connection broke: the head then is this batch's own last record, and the
        second try recognises it instead of writing the records again."""
        for attempt in (1, 2):
            pg = await self._writer_pg()
            try:
                if time.monotonic() < self._contended_until:  # other writers are busy: the locked path
                    records = await self._insert_pg_locked(pg, events)
                else:
                    seq, prev = self._head or (0, GENESIS)
                    records, rows = self._chain((seq, prev), events)
                    head = await pg.fetchrow(self._append_sql, self._lock_key, seq, prev, records[-1].seq,
                                             records[-1].hash, orjson.dumps(rows).decode())
                    if (head[0], head[1]) != (records[-1].seq, records[-1].hash):
                        if self._head is not None:
                            self._contended_until = time.monotonic() + CONTENDED_FOR
                        records = await self._insert_pg_locked(pg, events)
                self._head = (records[-1].seq, records[-1].hash)
                return records
            except Exception as exc:
                self._head = None
                broken = pg.is_closed() or isinstance(exc, _PG_BROKEN)
                if broken:
                    await self._drop_writer_pg()
                if not broken or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _insert_pg_locked(self, pg: Any, events: list[AuditEvent]) -> list[StoredRecord]:
        """BEGIN; the writers' lock and the chain head in one call (see _pg_functions); the rows; COMMIT.

        Also notes whether another writer had moved the head since this one's last batch: while others keep
        writing, the one-statement append would miss (and hold the lock for nothing) nearly every time, so
        batches come here directly until no other writer has been seen for CONTENDED_FOR seconds."""
        async with pg.transaction():
            last = await pg.fetchrow(f"SELECT * FROM {self.table_name}_lock_head($1)", self._lock_key)
            if self._head is not None and (tuple(last) if last else (0, GENESIS)) != self._head:
                self._contended_until = time.monotonic() + CONTENDED_FOR
            records, rows = self._chain(last, events)
            await pg.executemany(self._insert_sql, [tuple(r[c] for c in _COLUMNS) for r in rows])
        return records

    async def _writer_pg(self) -> Any:
        """The writer's own asyncpg connection, taken from the engine (its URL and connect arguments) and kept."""
        if self._writer_conn is None:
            conn = await self.engine.connect()
            try:
                self._writer_raw = (await conn.get_raw_connection()).driver_connection
            except BaseException:
                await conn.close()
                raise
            self._writer_conn = conn
        return self._writer_raw

    async def _drop_writer_pg(self) -> None:
        conn, self._writer_conn, self._writer_raw = self._writer_conn, None, None
        if conn is not None:
            try:
                await conn.invalidate()
                await conn.close()
            except Exception:  # noqa: BLE001 - it is being thrown away because it is broken
                pass

    @staticmethod
    def _chain(last: Any, events: list[AuditEvent]) -> tuple[list[StoredRecord], list[dict[str, Any]]]:
        """The records and rows of `events`, continuing the chain from its head `last` (seq, hash) or genesis."""
        seq, prev = (last[0], last[1]) if last else (0, GENESIS)
        now = datetime.now(timezone.utc)
        rows, records = [], []
        for e in events:
            seq += 1
            at = _utc(e.at) if e.at is not None else now
            e = e.stamped(at)
            row, digest = _sealed(seq, at, e, prev)
            rows.append(row)
            records.append(StoredRecord(seq, at, e, prev, digest))
            prev = digest
        return records, rows

    async def check_writable(self) -> None:
        """For /readyz: raise AuditUnavailable unless a write would succeed now.

        Inserts a probe row (negative seq, never part of the chain) and rolls it back.
        """
        if not self._opened:
            await self.open()
        if self._closing or self._writer is None or self._writer.done():
            raise AuditUnavailable(reason="closed")
        probe = _row(-secrets.randbelow(2**62) - 1, datetime.now(timezone.utc),
                     AuditEvent("search", "readyz", "", "", "", "", "", "", "", "", (), (), ""), GENESIS, GENESIS)
        try:
            self._check_file()
            async with self._writes.connect() as conn:
                tx = await conn.begin()
                try:
                    await conn.execute(self.table.insert(), [probe])
                finally:
                    await tx.rollback()
        except Exception as exc:
            log.warning("audit store is not writable", extra={"operation": "audit.check", "outcome": "failed",
                                                              "reason": type(exc).__name__})
            raise AuditUnavailable(reason=type(exc).__name__) from None

    # ------------------------------------------------------------ reading
    async def _read(self, make, message: str = AuditUnavailable.READ):
        if not self._opened:
            await self.open()
        try:
            self._check_file()
            async with self.engine.connect() as conn:
                return await make(conn)
        except (AuditUnavailable, BadRequest):
            raise
        except Exception as exc:
            log.error("audit store cannot be read", extra={"operation": "audit.read", "outcome": "failed",
                                                           "reason": type(exc).__name__})
            raise AuditUnavailable(message, reason=type(exc).__name__) from None

    async def history(self, subject: str, first: int = 20, after: str | None = None
                      ) -> tuple[list[StoredRecord], str | None]:
        """One subject's disclosure records, newest first: (page, cursor of the next page or None)."""
        if first < 1:
            raise BadRequest("first must be at least 1")
        first = min(first, MAX_PAGE)
        before = _decode_cursor(after) if after else None
        t = self.table
        q = sa.select(t).where(t.c.subject == subject, t.c.kind == "disclosure")
        if before is not None:
            q = q.where(t.c.seq < before)
        q = q.order_by(t.c.seq.desc()).limit(first + 1)

        async def run(conn):
            return [_record(r) for r in (await conn.execute(q)).all()]

        rows = await self._read(run)
        page = rows[:first]
        return page, (_encode_cursor(page[-1].seq) if len(rows) > first else None)

    async def _walk(self, conn: AsyncConnection):
        """Every row in seq order, CHUNK at a time."""
        t, last = self.table, None
        while True:
            q = sa.select(t).order_by(t.c.seq).limit(CHUNK)
            if last is not None:
                q = q.where(t.c.seq > last)
            rows = (await conn.execute(q)).all()
            for r in rows:
                yield r
            if len(rows) < CHUNK:
                return
            last = rows[-1].seq

    async def verify(self) -> VerifyResult:
        """Walk the whole chain in seq order and report the first record that does not hold."""

        async def run(conn):
            count, expect, prev = 0, 1, GENESIS
            async for r in self._walk(conn):
                count += 1
                seq = r.seq
                if seq != expect:
                    what = f"records missing between {expect - 1} and {seq}" if expect > 1 else \
                        f"records missing before {seq}"
                    return VerifyResult(False, count, expect, what)
                if r.prev_hash != prev:
                    other = f"record {seq - 1}" if seq > 1 else "the genesis value"
                    return VerifyResult(False, count, seq, f"record {seq}: prev_hash does not match {other}")
                try:
                    rec = _record(r)
                    good = _digest(prev, _payload(seq, rec.at, rec.event)) == r.hash
                except (ValueError, TypeError, KeyError, AttributeError):
                    return VerifyResult(False, count, seq, f"record {seq}: content cannot be read")
                if not good:
                    return VerifyResult(False, count, seq, f"record {seq}: hash does not match its content")
                expect, prev = seq + 1, r.hash
            return VerifyResult(True, count, None, None, prev if count else None)

        return await self._read(run)

    async def export(self, out: IO[str]) -> int:
        """Write every record as one JSON object a line, oldest first; returns how many."""

        async def run(conn):
            n = 0
            async for r in self._walk(conn):
                try:
                    rec = _record(r)
                    line = {**_payload(rec.seq, rec.at, rec.event), "prev_hash": rec.prev_hash, "hash": rec.hash}
                except (ValueError, TypeError, KeyError, AttributeError):  # exported as stored; verify names it
                    line = {c: (str(v) if c == "at" else v) for c, v in r._mapping.items()}
                out.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
                n += 1
            return n

        return await self._read(run)


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"audit:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, seq = text.partition(":")
        if tag != "audit" or not seq.isdigit():
            raise ValueError
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("the history cursor is not valid; start again without `after`") from None


# ---------------------------------------------------------------- CLI helpers
async def verify_url(url: str) -> tuple[int, str]:
    """`onescreen audit verify`: (exit code, message). 0 when the chain holds, 1 otherwise."""
    try:
        store = AuditStore(url)
    except ValueError as exc:
        return 1, f"audit trail not checked: {exc}"
    try:
        await store.open(create=False)
        result = await store.verify()
    except AuditUnavailable as exc:
        return 1, f"audit trail not checked: {exc.message} ({exc.reason})"
    finally:
        await store.close()
    if result.ok:
        return 0, f"audit trail intact: {result.count} records, head hash {result.head_hash or GENESIS}"
    return 1, f"audit trail BROKEN: {result.reason} (first bad record {result.first_bad_seq})"


async def export_url(url: str, out: IO[str]) -> int:
    """`onescreen audit export`: every record as JSON lines, oldest first; returns the count."""
    store = AuditStore(url)
    try:
        await store.open(create=False)
        return await store.export(out)
    finally:
        await store.close()
