"""The audit store at one URL: its life cycle (check the schema, start the writer and the sealer, stop them),
appends, the readiness probe, and reads (a subject's history; every record, for verify and export).

Owns invariant 7 at the service's edge: `append_many` returns only once the records are durably committed
and raises `AuditUnavailable` otherwise (at the latest at the audit deadline), so the caller can fail
closed. The service never runs DDL against PostgreSQL: `init` and `migrate` are the owner role's.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Sequence

import sqlalchemy as sa
from connectors.base import async_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..errors import BadRequest
from . import schema, sqlite
from .checkpoints import Checkpoint, KeyRing, Sealer, Signer, Witness, stored
from .events import AuditEvent, AuditSchemaError, AuditUnavailable, FieldDecision, StoredRecord, check
from .writer import Writer

log = logging.getLogger("onescreen.audit")

MAX_PAGE = 100
CHUNK = 1000  # rows per read while verifying or exporting (bounded memory)
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")


@dataclass(frozen=True)
class HistoryFilter:
    """What an access-history listing is narrowed to: an officer (user id), a task code, a case reference, and a
    period [since, until) of aware datetimes. None: any."""

    user: str | None = None
    task: str | None = None
    case_ref: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    organisation: str | None = None  # the officer's organisation (a citizen's receipts: "which agency")


@dataclass(frozen=True)
class Checkpointing:
    """How the store seals checkpoints: with which key, into which witness directory, how often."""

    signer: Signer
    witness_dir: Path | None
    every_records: int = 1000
    every_seconds: float = 60.0


class AuditStore:
    """An audit store at one SQLAlchemy URL: ``sqlite+aiosqlite:///path`` (a file) or ``postgresql+asyncpg://...``.

    Use from one event loop: ``await open()`` at start, ``await close()`` at the end. `timeout` is the audit
    deadline: the longest an append (or the readiness probe, or a history read) waits, in seconds.
    `create`: open() creates (or migrates) a missing store itself; only for a SQLite file (the demo).
    """

    def __init__(self, url: str, *, max_batch: int = 256, table: str = "onescreen_audit", timeout: float = 5.0,
                 create: bool = False, checkpointing: Checkpointing | None = None) -> None:
        if not _TABLE_NAME.fullmatch(table):
            raise ValueError("audit table name must be lower-case letters, digits and _ (at most 40)")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        u = async_url(url)
        self.backend = u.get_backend_name()
        self.names = schema.Names(table)
        self.tables = schema.tables(self.names)
        self.table_name, self.table = table, self.tables.records
        self.timeout = timeout
        self._writer_key = _lock_key(f"onescreen.audit:{table}")
        if self.backend == "sqlite":
            if not u.database or u.database == ":memory:" or u.query.get("mode") == "memory":
                raise ValueError("the SQLite audit store must be a file: an in-memory trail is not durable")
            self.path: Path | None = Path(u.database)
            self.engine: AsyncEngine = create_async_engine(u, connect_args={"timeout": timeout})
            sqlite.install(self.engine, self.path, timeout)
            backend: Any = sqlite.SqliteWriter(self.engine, self.tables, self.path)
        elif self.backend == "postgresql":
            if create:
                raise ValueError("the service never creates a PostgreSQL audit store: run `onescreen audit init`")
            self.path = None
            ms = int(timeout * 1000)
            # lock_timeout bounds a wait for the writers' lock server-side too; a transaction left idle by a
            # writer that gave up (its COMMIT lost in the network) releases the lock within 2 x timeout
            connect_args = {"timeout": timeout, "command_timeout": timeout,
                            "server_settings": {"lock_timeout": f"{ms}ms", "application_name": "onescreen-audit",
                                                "idle_in_transaction_session_timeout": f"{2 * ms}ms"}}
            self.engine = create_async_engine(u, pool_pre_ping=True, pool_timeout=timeout, connect_args=connect_args)
            from .postgres import PgWriter
            backend = PgWriter(self.engine, self.names, self._writer_key, connect_args)
        else:
            raise ValueError("the audit store must be SQLite (a file) or PostgreSQL")
        self.create = create
        self.checkpointing = checkpointing
        self.writer = Writer(backend, timeout=timeout, max_batch=max_batch, on_commit=self._committed)
        self.sealer: Sealer | None = None
        self.rows_read = 0  # records read by walks (verify, export): a bound asserted by count
        self._open_lock: asyncio.Lock | None = None
        self._opened = False
        self._closing = False

    # ------------------------------------------------------------ counters (benchmarks, metrics)
    @property
    def batches_committed(self) -> int:
        return self.writer.batches_committed

    @property
    def records_committed(self) -> int:
        return self.writer.records_committed

    @property
    def last_commit(self) -> float | None:
        """time.time() of this process's last successful audit commit, None before the first."""
        return self.writer.last_commit

    def _committed(self, n: int) -> None:
        if self.sealer is not None:
            self.sealer.committed(n)

    # ------------------------------------------------------------ owner operations
    async def init(self, *, grant_to: str | None = None, companions: Sequence[tuple[sa.MetaData, str]] = ()) -> str:
        """`onescreen audit init`: create the store and record its schema version (run by the owner role)."""
        return await self._ddl(lambda conn: schema.init(conn, self.tables, grant_to=grant_to, companions=companions))

    async def migrate(self, *, companions: Sequence[tuple[sa.MetaData, str]] = ()) -> str:
        """`onescreen audit migrate`: bring an older store to this schema version (run by the owner role)."""
        return await self._ddl(lambda conn: schema.migrate(conn, self.tables, companions=companions))

    async def _ddl(self, make) -> str:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            async with self.engine.begin() as conn:
                return await make(conn)
        except AuditSchemaError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            raise AuditUnavailable(f"the audit store could not be set up: {_sql_error(exc)}",
                                   reason="refused") from None

    # ------------------------------------------------------------ life cycle
    async def open(self) -> None:
        """Check the store's schema version (or create it, with `create`); start the writer and the sealer.

        Idempotent; bounded by the audit deadline. AuditSchemaError when the store is missing or of another
        schema version (the service must not start), AuditUnavailable when it cannot be reached."""
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._opened:
                return
            if self._closing:
                raise AuditUnavailable(reason="closed")
            try:
                async with asyncio.timeout(self.timeout):
                    await self._check_or_create()
            except AuditUnavailable:
                raise
            except Exception as exc:
                log.error("audit store cannot be opened", extra={"operation": "audit.open", "outcome": "failed",
                                                                 "reason": type(exc).__name__})
                raise AuditUnavailable(reason="deadline" if isinstance(exc, TimeoutError) else "connection") from None
            self.writer.start()
            if self.checkpointing is not None:
                c = self.checkpointing
                witness = Witness(c.witness_dir, self.table_name) if c.witness_dir else None
                self.sealer = Sealer(self.engine, self.tables, c.signer, witness, every_records=c.every_records,
                                     every_seconds=c.every_seconds,
                                     lock_key=_lock_key(f"onescreen.audit.checkpoint:{self.table_name}"))
                self.sealer.start()
            self._opened = True

    async def _check_or_create(self) -> None:
        if self.path is not None and not self.path.is_file():
            if not self.create:
                raise AuditSchemaError("no audit trail at this address (the SQLite file is missing): "
                                       f"run `{schema.INIT}`")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.create:
            async with self.engine.execution_options(onescreen_begin="IMMEDIATE").begin() as conn:
                version = await schema.state(conn, self.tables)
                if version is None:
                    await schema.init(conn, self.tables)
                elif version < schema.SCHEMA_VERSION:
                    await schema.migrate(conn, self.tables)
        async with self.engine.connect() as conn:
            await schema.check(conn, self.tables)

    async def close(self) -> None:
        """Write what is queued, seal a last checkpoint, release connections. Later appends raise AuditUnavailable."""
        self._closing = True
        try:
            if self._opened:
                await self.writer.stop()
                if self.sealer is not None:
                    await self.sealer.stop()
        finally:
            self._opened = False
            await self.engine.dispose()

    # ------------------------------------------------------------ writing
    async def append(self, event: AuditEvent) -> StoredRecord:
        """Append one record; returns once it is durably committed, or raises AuditUnavailable."""
        return (await self.append_many([event]))[0]

    async def append_many(self, events: Iterable[AuditEvent]) -> list[StoredRecord]:
        """Append one request's records in one transaction (all or none), contiguous in the chain, each
        once: (request_id, place in `events`) is unique in the trail."""
        events = list(events)
        for e in events:
            check(e)
        if not events:
            return []
        deadline = asyncio.get_running_loop().time() + self.timeout  # one deadline for all of it
        if not self._opened:
            await self.open()
        if self._closing or not self.writer.running:
            raise AuditUnavailable(reason="closed")
        return await self.writer.submit(events, deadline)

    async def check_writable(self) -> None:
        """For /readyz: raise AuditUnavailable unless a write would succeed now (within the audit deadline).

        Inserts a probe row (negative seq, never part of the chain) and rolls it back.
        """
        if not self._opened:
            await self.open()
        if self._closing or not self.writer.running:
            raise AuditUnavailable(reason="closed")
        probe = {c: "" for c in schema.COLUMNS}
        probe.update(seq=-secrets.randbelow(2**62) - 1, at=datetime.now(timezone.utc), kind="search",
                     request_id=f"readyz-{secrets.token_hex(8)}", request_index=0, prev_hash="0" * 64, hash="0" * 64)
        try:
            async with asyncio.timeout(self.timeout):
                if self.path is not None:
                    sqlite.check_file(self.path)
                async with self.engine.connect() as conn:
                    tx = await conn.begin()
                    try:
                        await conn.execute(self.table.insert(), [probe])
                    finally:
                        await tx.rollback()
        except Exception as exc:
            log.warning("audit store is not writable", extra={"operation": "audit.check", "outcome": "failed",
                                                              "reason": type(exc).__name__})
            raise AuditUnavailable(reason="deadline" if isinstance(exc, TimeoutError) else "connection") from None

    # ------------------------------------------------------------ reading
    async def read(self, make, *, bounded: bool = True, message: str = AuditUnavailable.READ):
        """`make(conn)` on a reading connection; any failure is AuditUnavailable (or BadRequest, as raised)."""
        if not self._opened:
            await self.open()
        try:
            async with asyncio.timeout(self.timeout if bounded else None):
                if self.path is not None:
                    sqlite.check_file(self.path)
                async with self.engine.connect() as conn:
                    return await make(conn)
        except (AuditUnavailable, BadRequest):
            raise
        except Exception as exc:
            log.error("audit store cannot be read", extra={"operation": "audit.read", "outcome": "failed",
                                                           "reason": type(exc).__name__})
            raise AuditUnavailable(message, reason="connection") from None

    async def history(self, subject: str, first: int = 20, after: str | None = None, *,
                      filters: HistoryFilter | None = None) -> tuple[list[StoredRecord], str | None]:
        """One subject's disclosure records, newest first: (page, cursor of the next page or None), narrowed by
        `filters` (the same filters must come with every page of one listing)."""
        if first < 1:
            raise BadRequest("first must be at least 1")
        first = min(first, MAX_PAGE)
        before = _decode_cursor(after) if after else None
        t = self.table
        q = sa.select(t).where(t.c.subject == subject, t.c.kind == "disclosure")
        if filters is not None:
            if filters.user is not None:
                q = q.where(t.c.user_id == filters.user)
            if filters.task is not None:
                q = q.where(t.c.task == filters.task)
            if filters.case_ref is not None:
                q = q.where(t.c.case_ref == filters.case_ref)
            if filters.since is not None:
                q = q.where(t.c.at >= filters.since)
            if filters.until is not None:
                q = q.where(t.c.at < filters.until)
            if filters.organisation is not None:
                q = q.where(t.c.organisation == filters.organisation)
        if before is not None:
            q = q.where(t.c.seq < before)
        q = q.order_by(t.c.seq.desc()).limit(first + 1)

        async def run(conn):
            return [record(r) for r in (await conn.execute(q)).all()]

        rows = await self.read(run)
        page = rows[:first]
        return page, (_encode_cursor(page[-1].seq) if len(rows) > first else None)

    async def record_at(self, seq: int) -> StoredRecord | None:
        """Record `seq`, or None when there is none."""
        t = self.table

        async def run(conn):
            row = (await conn.execute(sa.select(t).where(t.c.seq == seq))).first()
            return None if row is None else record(row)

        return await self.read(run)

    async def released(self, subject: str) -> set[int]:
        """The seqs of this subject's records whose sealed receipts an auditor released ("release" records)."""
        t = self.table

        async def run(conn):
            rows = (await conn.execute(sa.select(t.c.detail).where(t.c.subject == subject, t.c.kind == "release"))).all()
            out = set()
            for (detail,) in rows:
                seq = json.loads(detail).get("released_seq")
                if type(seq) is int:
                    out.add(seq)
            return out

        return await self.read(run)

    async def walk(self, conn: AsyncConnection, after_seq: int = 0) -> AsyncIterator[Any]:
        """Every row after `after_seq` in seq order, CHUNK at a time."""
        t, last = self.table, after_seq
        while True:
            rows = (await conn.execute(sa.select(t).where(t.c.seq > last).order_by(t.c.seq).limit(CHUNK))).all()
            self.rows_read += len(rows)
            for r in rows:
                yield r
            if len(rows) < CHUNK:
                return
            last = rows[-1].seq

    async def checkpoints(self, after_number: int = 0, limit: int | None = None) -> list[Checkpoint]:
        """The checkpoints in the store, oldest first."""
        return await self.read(lambda conn: stored(conn, self.tables, after_number, limit), bounded=False)

    async def verify(self, *, keys: KeyRing | None = None, witness: Witness | None = None,
                     from_number: int | None = None) -> Any:
        """verify.verify(this store): by default with its own signing key's public key and witness."""
        from .verify import verify
        if witness is None and self.checkpointing is not None and self.checkpointing.witness_dir is not None:
            witness = Witness(self.checkpointing.witness_dir, self.table_name)
        return await verify(self, keys=keys or self.key_ring(), witness=witness, from_number=from_number)

    async def export(self, out: Any) -> int:
        """verify.export(this store): every record as JSON lines, oldest first."""
        from .verify import export
        return await export(self, out)

    def key_ring(self, extra: KeyRing | None = None) -> KeyRing:
        """The keys this store's checkpoints are checked with: `extra` and the signing key's public key."""
        keys = list(extra.keys.values()) if extra else []
        if self.checkpointing is not None:
            keys.append(self.checkpointing.signer.public_key)
        return KeyRing(keys)


def record(r: Any) -> StoredRecord:
    """A row read back; raises ValueError/TypeError/KeyError when its content cannot be decoded."""
    if not isinstance(r.at, datetime):
        raise ValueError("unreadable time")
    fields = tuple(FieldDecision(str(f["id"]), str(f["status"])) for f in json.loads(r.fields))
    ledgers = tuple(json.loads(r.ledgers))
    detail = json.loads(r.detail)
    if not isinstance(detail, dict):
        raise ValueError("detail is not an object")
    if r.request_index is not None and type(r.request_index) is not int:
        raise ValueError("request_index is not an integer")
    nonce = bytes.fromhex(r.nonce) if r.nonce is not None else None
    if nonce is not None and len(nonce) != 32:
        raise ValueError("the nonce is not 32 bytes")
    user_name = getattr(r, "user_name", None)
    if user_name is not None and nonce is None:  # only a committed record (format 3) keeps the name in its column
        raise ValueError("an officer's name without a nonce")
    e = AuditEvent(kind=r.kind, request_id=r.request_id, user=r.user_id, organisation=r.organisation, role=r.role,
                   task=r.task, legal_basis=r.legal_basis, case_ref=r.case_ref, subject_type=r.subject_type,
                   subject=r.subject, fields=fields, ledgers=ledgers, client=r.client, detail=detail, at=r.at,
                   request_index=r.request_index, user_name=user_name)
    return StoredRecord(seq=r.seq, at=r.at, event=e, prev_hash=r.prev_hash, hash=r.hash, nonce=nonce)


def _lock_key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def _sql_error(exc: BaseException) -> str:
    """The database's own message (e.g. "permission denied for schema public"), without SQL or parameters."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).splitlines()[0]
    return text.split("[SQL:")[0].strip()[:300] or type(exc).__name__


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
