"""The audit store's tables, their schema version, and the owner's `init` and `migrate`.

Owns the start-up half of invariant 7: the service runs no DDL against a shared store (only the demo's
SQLite file creates itself); it checks the recorded schema version and refuses a store that is missing
or of another version, naming the command the owner role must run.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeDecorator

from .chain import iso, utc
from .events import AuditSchemaError

# 1: the trail before versions (no request_index, no checkpoints, no version table); 2: no nonce (records
# with the officer's id and address in clear in their hash input); 3: the nonce (chain.py's format 2); 4: the
# officer's name as a column of its own, committed like the id (chain.py's format 3), no longer in `detail`
SCHEMA_VERSION = 4
COLUMNS = ("seq", "at", "kind", "request_id", "request_index", "user_id", "organisation", "role", "task",
           "legal_basis", "case_ref", "subject_type", "subject", "fields", "ledgers", "client", "detail",
           "prev_hash", "hash", "nonce", "user_name")  # the last two: where `migrate` adds them to an older table
INIT = "onescreen audit init"
MIGRATE = "onescreen audit migrate"


@dataclass(frozen=True)
class Names:
    records: str  # e.g. onescreen_audit

    @property
    def checkpoints(self) -> str:
        return f"{self.records}_checkpoint"

    @property
    def schema(self) -> str:
        return f"{self.records}_schema"


class UtcTimestamp(TypeDecorator):
    """timestamptz on PostgreSQL; ISO 8601 text on SQLite. Always read back as an aware UTC datetime."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(sa.Text() if dialect.name == "sqlite" else sa.DateTime(timezone=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return iso(value) if dialect.name == "sqlite" else utc(value)

    def process_result_value(self, value, dialect):
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                return value  # left as text: verify() reports the record as unreadable
        return utc(value) if isinstance(value, datetime) else value


@dataclass(frozen=True)
class Tables:
    names: Names
    records: sa.Table
    checkpoints: sa.Table
    schema: sa.Table

    @property
    def metadata(self) -> sa.MetaData:
        return self.records.metadata


def tables(n: Names) -> Tables:
    meta = sa.MetaData()
    records = sa.Table(
        n.records, meta,
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", UtcTimestamp(), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("request_index", sa.Integer),  # NULL only in records written before schema version 2
        *(sa.Column(c, sa.Text, nullable=False) for c in COLUMNS[5:-4]),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("nonce", sa.Text),  # hex; NULL only in records written before schema version 3
        sa.Column("user_name", sa.Text),  # NULL in records that name no officer's name, and all before version 4
        sa.PrimaryKeyConstraint("seq", name=f"{n.records}_pkey"),
    )
    # history(): one subject's records, newest first, by seq (the cursor), so the index is on (subject, seq)
    sa.Index(f"{n.records}_subject_seq_idx", records.c.subject, records.c.seq)
    # one request's events are recorded once: a retry after an unknown outcome cannot write them again
    sa.Index(f"{n.records}_request_key", records.c.request_id, records.c.request_index, unique=True)
    checkpoints = sa.Table(
        n.checkpoints, meta,
        sa.Column("number", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False, unique=True),  # the last record it seals
        sa.Column("head", sa.Text, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        *(sa.Column(c, sa.Text, nullable=False) for c in ("root", "at", "previous", "key_id", "signature")),
    )
    schema = sa.Table(n.schema, meta, sa.Column("version", sa.Integer, nullable=False),
                      sa.Column("at", sa.Text, nullable=False))
    return Tables(n, records, checkpoints, schema)


# ---------------------------------------------------------------- what is at the address
async def state(conn: AsyncConnection, t: Tables) -> int | None:
    """The schema version of the store: None when there is none, 1 for a trail from before versions."""
    def look(sync: Any) -> tuple[bool, bool, set[str]]:
        inspector = sa.inspect(sync)
        has_records = inspector.has_table(t.names.records)
        columns = {c["name"] for c in inspector.get_columns(t.names.records)} if has_records else set()
        return has_records, inspector.has_table(t.names.schema), columns

    has_records, has_schema, columns = await conn.run_sync(look)
    if has_schema:
        version = (await conn.execute(sa.select(sa.func.max(t.schema.c.version)))).scalar()
        return int(version) if version is not None else None
    if has_records:
        return 1 if "request_index" not in columns else None  # a v2 table made by hand (e.g. partitioned)
    return None


async def check(conn: AsyncConnection, t: Tables) -> None:
    """Raise AuditSchemaError unless the store at `conn` is of this service's schema version."""
    version = await state(conn, t)
    if version == SCHEMA_VERSION:
        return
    if version is None:
        raise AuditSchemaError(f"no audit store at this address (table {t.names.records} and its schema "
                               f"version): the owner role must run `{INIT}` once")
    if version > SCHEMA_VERSION:
        raise AuditSchemaError(f"the audit store is schema version {version}, newer than this service's "
                               f"{SCHEMA_VERSION}: upgrade the service")
    raise AuditSchemaError(f"the audit store is schema version {version}, this service needs {SCHEMA_VERSION}: "
                           f"the owner role must run `{MIGRATE}`")


# ---------------------------------------------------------------- init and migrate (the owner role)
async def init(conn: AsyncConnection, t: Tables, *, grant_to: str | None = None,
               companions: Sequence[tuple[sa.MetaData, str]] = ()) -> str:
    """Create the store (tables, indexes, functions, triggers) and record its schema version; grant the
    service role `grant_to` what it needs. `companions`: other stores at the same URL (their metadata and
    the privileges the service needs on each of their tables). Run again, it puts back what is missing (a
    dropped trigger, say) and changes nothing else. Returns what was done."""
    version = await state(conn, t)
    if version not in (None, SCHEMA_VERSION):
        raise AuditSchemaError(f"the audit store exists with schema version {version}: run `{MIGRATE}` instead")
    await _create(conn, t, companions)
    if version is None:
        await conn.execute(t.schema.insert().values(version=SCHEMA_VERSION, at=iso(datetime.now().astimezone())))
    done = "created" if version is None else "already initialised (anything missing put back)"
    if grant_to:
        await _grant(conn, t, grant_to, companions)
        done += f"; granted to {grant_to}"
    return done


async def migrate(conn: AsyncConnection, t: Tables, *, companions: Sequence[tuple[sa.MetaData, str]] = ()) -> str:
    """Bring a store of an older schema version to this one; returns what was done."""
    version = await state(conn, t)
    if version is None:
        raise AuditSchemaError(f"no audit store at this address: run `{INIT}`")
    if version == SCHEMA_VERSION:
        return f"already at schema version {SCHEMA_VERSION}"
    if version > SCHEMA_VERSION:
        raise AuditSchemaError(f"the audit store is schema version {version}, newer than this service")
    # 1 -> 2: request_index (NULL in the old records, which the chain's encoding leaves out), its unique key,
    # checkpoints, the version table; 2 -> 3: the nonce (NULL in the old records: their hash input holds the
    # private members in clear); 3 -> 4: the officer's name (NULL in the old records, which keep it in `detail`);
    # then the functions of the new append (they name every column)
    if version < 2:
        await conn.execute(sa.text(f"ALTER TABLE {t.names.records} ADD COLUMN request_index INTEGER"))
    if version < 3:
        await conn.execute(sa.text(f"ALTER TABLE {t.names.records} ADD COLUMN nonce TEXT"))
    await conn.execute(sa.text(f"ALTER TABLE {t.names.records} ADD COLUMN user_name TEXT"))
    await _create(conn, t, companions)
    await conn.execute(t.schema.insert().values(version=SCHEMA_VERSION, at=iso(datetime.now().astimezone())))
    return f"migrated from schema version {version} to {SCHEMA_VERSION}"


async def _create(conn: AsyncConnection, t: Tables, companions: Sequence[tuple[sa.MetaData, str]]) -> None:
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": t.names.records})
    records_exist = await conn.run_sync(lambda c: sa.inspect(c).has_table(t.names.records))
    if records_exist:
        # a table made before (schema 1, or by hand, e.g. partitioned): its keys, and the other tables
        key = ["request_id", "request_index"]
        if postgres and await _partitioned(conn, t.names.records):
            key.append("at")  # a partitioned table's unique keys must hold its partition key
        await conn.execute(sa.text(f"CREATE UNIQUE INDEX IF NOT EXISTS {t.names.records}_request_key "
                                   f"ON {t.names.records} ({', '.join(key)})"))
        await conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {t.names.records}_subject_seq_idx "
                                   f"ON {t.names.records} (subject, seq)"))
    await conn.run_sync(t.metadata.create_all)
    for meta, _ in companions:
        await conn.run_sync(meta.create_all)
        if "upgrade" in meta.info:  # a companion's table made by an older version gets its new columns
            await conn.run_sync(meta.info["upgrade"])
    if postgres:
        from . import postgres as pg
        for sql in pg.functions_sql(t.names):
            await conn.execute(sa.text(sql))
        await pg.create_triggers(conn, t.names)


async def _partitioned(conn: AsyncConnection, table: str) -> bool:
    return bool((await conn.execute(sa.text("SELECT relkind = 'p' FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                                    {"t": table})).scalar())


async def _grant(conn: AsyncConnection, t: Tables, role: str, companions: Sequence[tuple[sa.MetaData, str]]) -> None:
    if conn.dialect.name != "postgresql":
        return  # SQLite has no roles: file permissions are its access control
    from . import postgres as pg
    others = []
    for meta, privileges in companions:
        for table in meta.sorted_tables:
            serial = [c.name for c in table.primary_key.columns if c.autoincrement is True
                      or (c.autoincrement == "auto" and isinstance(c.type, sa.Integer))]
            others.append((table.name, privileges, f"{table.name}_{serial[0]}_seq" if serial else None))
    for sql in pg.grants_sql(t.names, role, others):
        await conn.execute(sa.text(sql))
