"""SQLite specifics of the audit store (the demo's embedded default): durable commits, one writer at a time,
and a file that must stay the file it was.

Owns invariant 7 for the file store: WAL with synchronous=FULL (a commit returns after fsync); writers
serialise on ``BEGIN IMMEDIATE``; a missing or replaced file fails closed instead of being created anew.
"""
from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, AsyncIterator

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .schema import Tables


def check_file(path: Path) -> None:
    """The file must still be there; connecting would silently create a new, empty one."""
    if not path.is_file():
        raise FileNotFoundError("the audit store file is missing or is not a file")


def install(engine: AsyncEngine, path: Path, timeout: float) -> None:
    """Connection events: pragmas on connect, no pooled connection to a replaced file, BEGIN as asked."""

    def file_id() -> tuple[int, int]:
        st = path.stat()
        return st.st_dev, st.st_ino

    @sa_event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_conn, record):
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")  # persistent; DELETE journal stays durable too
        cur.execute("PRAGMA synchronous = FULL")  # a commit returns after fsync
        cur.close()
        record.info["file_id"] = file_id()

    @sa_event.listens_for(engine.sync_engine, "checkout")
    def on_checkout(_dbapi_conn, record, _proxy):
        # a pooled connection to a file that was since replaced would write to an unlinked inode:
        # drop it, and let a new connection meet whatever is at the path now
        try:
            same = record.info.get("file_id") == file_id()
        except OSError:
            same = False
        if not same:
            raise sa.exc.DisconnectionError("the audit store file was replaced")

    @sa_event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn):
        mode = conn.get_execution_options().get("onescreen_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


class SqliteWriter:
    """The writer's transactions on the file: ``BEGIN IMMEDIATE`` is the writers' lock."""

    optimistic = False  # every append takes the lock: there is no cheaper one-statement path
    broken: tuple[type[BaseException], ...] = ()

    def __init__(self, engine: AsyncEngine, t: Tables, path: Path) -> None:
        self._writes = engine.execution_options(onescreen_begin="IMMEDIATE")
        self.t, self.path = t, path
        self.conn: AsyncConnection | None = None
        self.committing = False

    async def connect(self) -> None:
        check_file(self.path)

    def discard(self) -> None:
        self.conn = None

    async def close(self) -> None:
        self.conn = None

    def lost(self) -> bool:
        return False

    def outcome_unknown(self, exc: BaseException) -> bool:
        return self.committing and isinstance(exc, (TimeoutError, asyncio.CancelledError))  # cut off in COMMIT

    async def try_append(self, *_: Any) -> bool:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator["SqliteWriter"]:
        check_file(self.path)
        self.committing = False
        async with self._writes.begin() as conn:
            self.conn = conn
            try:
                yield self
                self.committing = True
            finally:
                self.conn = None
        self.committing = False

    async def head(self) -> tuple[int, str] | None:
        r = self.t.records
        row = (await self.conn.execute(sa.select(r.c.seq, r.c.hash).order_by(r.c.seq.desc()).limit(1))).first()
        return (row[0], row[1]) if row else None

    async def committed(self, request_ids: list[str]) -> list[Any]:
        r = self.t.records
        q = sa.select(r.c.request_id, r.c.request_index, r.c.seq, r.c.at, r.c.prev_hash, r.c.hash, r.c.nonce)
        return list((await self.conn.execute(q.where(r.c.request_id.in_(request_ids)))).all())

    async def insert(self, rows: list[dict[str, Any]]) -> None:
        await self.conn.execute(self.t.records.insert(), rows)
