"""PostgreSQL specifics of the audit store: its functions and triggers, the grants of the service role, and
the writer's own connection.

Owns the least-privilege half of invariant 7 on PostgreSQL: the owner role creates everything once
(`onescreen audit init`); the service role gets INSERT and SELECT on the trail, EXECUTE on the two
append functions, and nothing that could change or remove a record.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Sequence

import asyncpg
import orjson
import sqlalchemy as sa

from .chain import GENESIS
from .schema import COLUMNS, Names

# errors after which the connection is no good (lost, server restarting or shut down, or asyncpg's protocol state
# confused by a termination it was not waiting for: "another operation is in progress")
BROKEN = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError,
          asyncpg.InternalClientError)


def functions_sql(n: Names) -> list[str]:
    """The trigger function and the two append functions (CREATE OR REPLACE: init and migrate run them)."""
    t, cols = n.records, ", ".join(COLUMNS)
    return [
        f"CREATE OR REPLACE FUNCTION {t}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION 'the audit trail is append-only (% refused)', TG_OP "
        f"USING ERRCODE = 'insufficient_privilege'; END $$",
        # The writers' lock and the chain head in one call. A VOLATILE function takes a fresh snapshot per
        # statement, so the head is read after the lock is granted: a plain "SELECT lock, head" would read
        # the head as of before the wait, and miss what the previous lock holder committed.
        f"CREATE OR REPLACE FUNCTION {t}_lock_head(k bigint) RETURNS TABLE(head_seq bigint, head_hash text) "
        f"LANGUAGE plpgsql VOLATILE AS $$ BEGIN PERFORM pg_advisory_xact_lock(k); "
        f"RETURN QUERY SELECT a.seq, a.hash::text FROM {t} a ORDER BY a.seq DESC LIMIT 1; END $$",
        # The whole append in one statement (its own transaction: one round trip, then the commit): under the
        # writers' lock, insert the rows only if the head is still the one they were chained from; return the
        # head either way. The caller knows its rows went in when the head returned is its own last record.
        # The rows come as one JSON array (the server unpacks it): as 19 arrays, asyncpg's element-by-element
        # encoding was ~3% of a screen's CPU in the worker.
        f"CREATE OR REPLACE FUNCTION {t}_append_rows(k bigint, expect_seq bigint, expect_hash text, "
        f"last_seq bigint, last_hash text, rows json) "
        f"RETURNS TABLE(head_seq bigint, head_hash text) LANGUAGE plpgsql VOLATILE AS $$ "
        f"DECLARE s bigint; h text; BEGIN PERFORM pg_advisory_xact_lock(k); "
        f"SELECT a.seq, a.hash::text INTO s, h FROM {t} a ORDER BY a.seq DESC LIMIT 1; "
        f"IF NOT FOUND THEN s := 0; h := '{GENESIS}'; END IF; "
        f"IF s = expect_seq AND h = expect_hash THEN "
        f"INSERT INTO {t} ({cols}) SELECT {cols} FROM json_populate_recordset(NULL::{t}, rows); "
        f"s := last_seq; h := last_hash; END IF; "
        f"RETURN QUERY SELECT s, h; END $$",
        f"REVOKE ALL ON FUNCTION {t}_lock_head(bigint) FROM PUBLIC",
        f"REVOKE ALL ON FUNCTION {t}_append_rows(bigint, bigint, text, bigint, text, json) FROM PUBLIC",
    ]


async def create_triggers(conn: Any, n: Names) -> None:
    """UPDATE, DELETE and TRUNCATE refused on the trail and its checkpoints, even for the owner."""
    for table in (n.records, n.checkpoints):
        have = set((await conn.execute(sa.text(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass)"), {"t": table})).scalars())
        if f"{table}_no_change" not in have:
            await conn.execute(sa.text(f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
                                       f"FOR EACH ROW EXECUTE FUNCTION {n.records}_append_only()"))
        if f"{table}_no_truncate" not in have:
            await conn.execute(sa.text(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                                       f"FOR EACH STATEMENT EXECUTE FUNCTION {n.records}_append_only()"))


def grants_sql(n: Names, role: str, companions: Sequence[tuple[str, str, str | None]] = ()) -> list[str]:
    """What the service role needs, and nothing more. `companions`: (table, privileges, its id sequence or None)
    for the other stores at the same URL (consent records, change proposals)."""
    q = _ident(role)
    out = [f"GRANT SELECT, INSERT ON {n.records}, {n.checkpoints} TO {q}",
           f"GRANT SELECT ON {n.schema} TO {q}",
           f"GRANT EXECUTE ON FUNCTION {n.records}_lock_head(bigint) TO {q}",
           f"GRANT EXECUTE ON FUNCTION {n.records}_append_rows(bigint, bigint, text, bigint, text, json) TO {q}"]
    for table, privileges, sequence in companions:
        out.append(f"GRANT {privileges} ON {table} TO {q}")
        if sequence:
            out.append(f"GRANT USAGE ON SEQUENCE {sequence} TO {q}")
    return out


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum() or not name.isascii() or name[0].isdigit():
        raise ValueError("the role to grant to must be a plain name (letters, digits, _)")
    return f'"{name}"'


class PgWriter:
    """The writer's own asyncpg connection (no pool checkout, pre-ping or reset per batch) and its statements.

    Made with asyncpg directly, from the engine's URL and connect arguments: asyncpg closes a connection
    whose connect is cancelled, so the writer's deadline may cut a connect short."""

    optimistic = True
    broken = BROKEN

    def __init__(self, engine: Any, n: Names, lock_key: int, connect_args: dict[str, Any]) -> None:
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        self._connect = (cargs, {**cparams, **connect_args})
        self.n, self.lock_key = n, lock_key
        self.conn: Any = None
        self._append: Any = None
        self.committing = False  # a commit (or the one-statement append) was sent and is not yet answered
        self._insert_sql = (f"INSERT INTO {n.records} ({', '.join(COLUMNS)}) "
                            f"VALUES ({', '.join(f'${i}' for i in range(1, len(COLUMNS) + 1))})")

    async def connect(self) -> None:
        self.committing = False
        if self.conn is None:
            cargs, cparams = self._connect
            conn = await asyncpg.connect(*cargs, **cparams)
            try:
                # named, so that the statement is recognisable on the wire and in pg_prepared_statements
                self._append = await conn.prepare(
                    f"SELECT * FROM {self.n.records}_append_rows($1, $2, $3, $4, $5, $6)",
                    name=f"{self.n.records}_append")
            except BaseException:
                conn.terminate()
                raise
            self.conn = conn

    def discard(self) -> None:
        """Drop the connection at once (its state is unknown); the next batch opens a new one."""
        conn, self.conn, self._append = self.conn, None, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        conn, self.conn, self._append = self.conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=1)

    def lost(self) -> bool:
        return self.conn is not None and self.conn.is_closed()

    def outcome_unknown(self, exc: BaseException) -> bool:
        """Whether what was sent may have committed although `exc` was raised (no answer came back)."""
        return self.committing and (isinstance(exc, (*BROKEN, TimeoutError, asyncio.CancelledError))
                                    or self.conn is None or self.conn.is_closed())

    async def try_append(self, head: tuple[int, str], last: tuple[int, str], rows: list[dict[str, Any]]) -> bool:
        """The rows, chained from `head`, appended in one statement if `head` is still the head."""
        self.committing = True
        got = await self._append.fetchrow(self.lock_key, head[0], head[1], last[0], last[1],
                                          orjson.dumps(rows).decode())
        self.committing = False
        return (got[0], got[1]) == last

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator["PgWriter"]:
        """A transaction holding the writers' lock; committed when the block ends without error."""
        self.committing = False
        async with self.conn.transaction():
            yield self
            self.committing = True
        self.committing = False

    async def head(self) -> tuple[int, str] | None:
        row = await self.conn.fetchrow(f"SELECT * FROM {self.n.records}_lock_head($1)", self.lock_key)
        return (row[0], row[1]) if row else None

    async def committed(self, request_ids: list[str]) -> list[Any]:
        return await self.conn.fetch(
            f"SELECT request_id, request_index, seq, at, prev_hash, hash, nonce FROM {self.n.records} "
            f"WHERE request_id = ANY($1::text[])", request_ids)

    async def insert(self, rows: list[dict[str, Any]]) -> None:
        await self.conn.executemany(self._insert_sql, [tuple(r[c] for c in COLUMNS) for r in rows])
