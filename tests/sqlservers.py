"""The demo ledgers on real PostgreSQL and MariaDB servers, for tests of the SQL connector.

`load_demo_into` copies every table of the demo SQLite files into a fresh database
(same table and column names, case kept, primary keys and key indexes kept);
`pg_demo_url` / `mariadb_demo_url` do that once per test session, skip (or fail under
ONESCREEN_REQUIRE_SERVICES=1) when the server is missing, and drop the database at the end.
Servers: ONESCREEN_TEST_PG_URL / ONESCREEN_TEST_MARIADB_URL, default the project machines'.
"""
from __future__ import annotations

import asyncio
import os
import re
import socket
import sqlite3
import threading
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any, Coroutine, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.base import async_url

from conftest import need_service

PG_URL = os.environ.get("ONESCREEN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("ONESCREEN_TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306/test?charset=utf8mb4")
KEY_LENGTH = 64  # VARCHAR length of primary-key and indexed text columns (MariaDB cannot index TEXT)
CHUNK = 2000  # rows per executemany


# ---------------------------------------------------------------- availability
def _driver_installed(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def _port_open(url: str, default_port: int) -> bool:
    u = make_url(url)
    try:
        with socket.create_connection((u.host or "127.0.0.1", u.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def _can_connect(url: str) -> bool:
    async def probe() -> None:
        engine = create_async_engine(_async(make_url(url)), connect_args=_connect_timeout(make_url(url)))
        try:
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        _run(probe())
    except Exception:
        return False
    return True


def pg_available() -> bool:
    """PostgreSQL answers at PG_URL and asyncpg is installed."""
    return _driver_installed("asyncpg") and _port_open(PG_URL, 5432) and _can_connect(PG_URL)


def mariadb_available() -> bool:
    """MariaDB (or MySQL) answers at MARIADB_URL and aiomysql is installed."""
    return _driver_installed("aiomysql") and _port_open(MARIADB_URL, 3306) and _can_connect(MARIADB_URL)


_SESSION_DATABASES: list[str] = []


def session_pg_database(prefix: str) -> str:
    """A new empty PostgreSQL database (plain postgresql:// URL) that lives until the test session ends
    (conftest drops it); skips, or fails under ONESCREEN_REQUIRE_SERVICES=1, without PostgreSQL."""
    need_service(_pg_up(), f"PostgreSQL is not reachable at {PG_URL}")
    name = unique_db_name(prefix)
    _run(_create_database(make_url(PG_URL), name))
    _SESSION_DATABASES.append(name)
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def drop_session_databases() -> None:
    while _SESSION_DATABASES:
        drop_database(PG_URL, _SESSION_DATABASES.pop())


_PG_UP: list[bool] = []


def _pg_up() -> bool:
    if not _PG_UP:
        _PG_UP.append(pg_available())
    return _PG_UP[0]


# ---------------------------------------------------------------- loading
def unique_db_name(prefix: str = "onescreen_demo") -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def load_demo_into(url: str, demo_dir: str | Path, db_name: str) -> str:
    """Create database `db_name` on the server of `url` and copy every demo table into it.

    `url` may name a sync or an async driver and any existing database (used for
    CREATE DATABASE only). Returns the URL of the new database, in the same form as `url`.
    """
    server = make_url(url)
    _check_db_name(db_name)
    files = sorted(Path(demo_dir).glob("*.sqlite"))
    if not files:
        raise FileNotFoundError(f"no demo ledgers (*.sqlite) in {demo_dir}")
    target = server.set(database=db_name)
    _run(_create_database(server, db_name))
    try:
        _run(_copy_tables(target, files))
    except BaseException:
        drop_database(url, db_name)
        raise
    return target.render_as_string(hide_password=False)


def drop_database(url: str, db_name: str) -> None:
    """Drop `db_name` on the server of `url` (connections to it are closed first on PostgreSQL)."""
    _check_db_name(db_name)
    _run(_drop_database(make_url(url), db_name))


def _check_db_name(db_name: str) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", db_name):
        raise ValueError(f"database name must be lower-case letters, digits and _: {db_name!r}")


def _async(url: URL) -> URL:
    return async_url(url)


def _connect_timeout(url: URL) -> dict[str, Any]:
    return {"timeout": 5} if url.get_backend_name() == "postgresql" else {"connect_timeout": 5}


def _admin_engine(server: URL):
    url = _async(server)
    return create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool,
                               connect_args=_connect_timeout(url))


async def _create_database(server: URL, db_name: str) -> None:
    engine = _admin_engine(server)
    try:
        async with engine.connect() as conn:
            if server.get_backend_name() == "postgresql":
                await conn.execute(sa.text(f"CREATE DATABASE \"{db_name}\" ENCODING 'UTF8' TEMPLATE template0"))
            else:
                await conn.execute(sa.text(f"CREATE DATABASE `{db_name}` CHARACTER SET utf8mb4"))
    finally:
        await engine.dispose()


async def _drop_database(server: URL, db_name: str) -> None:
    engine = _admin_engine(server)
    try:
        async with engine.connect() as conn:
            if server.get_backend_name() == "postgresql":
                await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
            else:
                await conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{db_name}`"))
    finally:
        await engine.dispose()


def _target_table(src: sa.Table, meta: sa.MetaData, lengths: dict[str, int]) -> sa.Table:
    """`src` (reflected from SQLite) with portable types; key and indexed text columns become VARCHAR."""
    indexed = {c.name for ix in src.indexes for c in ix.columns} | {c.name for c in src.primary_key.columns}
    cols = []
    for c in src.columns:
        if isinstance(c.type, sa.Integer):
            typ: Any = sa.BigInteger()
        elif isinstance(c.type, (sa.Float, sa.Numeric)):
            typ = sa.Double()  # MariaDB FLOAT is single precision: 4742.98 would come back altered
        elif c.name in indexed:
            typ = sa.String(max(KEY_LENGTH, lengths.get(c.name, 0)))
        else:
            typ = sa.Text()
        cols.append(sa.Column(c.name, typ, primary_key=c.primary_key))
    table = sa.Table(src.name, meta, *cols)
    for ix in src.indexes:
        sa.Index(ix.name, *(table.c[c.name] for c in ix.columns), unique=bool(ix.unique))
    return table


def _read_sqlite(path: Path) -> list[tuple[sa.Table, list[dict[str, Any]]]]:
    """Every table of one SQLite file, reflected with SQLAlchemy, with its rows and the target definition."""
    engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true", poolclass=sa.pool.NullPool)
    try:
        src_meta = sa.MetaData()
        src_meta.reflect(engine)
        meta = sa.MetaData()
        out = []
        with engine.connect() as conn:
            for src in src_meta.sorted_tables:
                text_cols = [c.name for c in src.columns if not isinstance(c.type, (sa.Integer, sa.Float, sa.Numeric))]
                lengths = {}
                if text_cols:
                    row = conn.execute(sa.select(*(sa.func.max(sa.func.length(src.c[n])) for n in text_cols))).one()
                    lengths = {n: v or 0 for n, v in zip(text_cols, row)}
                table = _target_table(src, meta, lengths)
                rows = [dict(r) for r in conn.execute(sa.select(src)).mappings()]
                out.append((table, rows))
        return out
    finally:
        engine.dispose()


async def _copy_tables(target: URL, files: list[Path]) -> None:
    url = _async(target)
    engine = create_async_engine(url, poolclass=sa.pool.NullPool, connect_args=_connect_timeout(url))
    try:
        for path in files:
            tables = _read_sqlite(path)
            async with engine.begin() as conn:
                await conn.run_sync(tables[0][0].metadata.create_all)
                for table, rows in tables:
                    for i in range(0, len(rows), CHUNK):
                        await conn.execute(table.insert(), rows[i:i + CHUNK])
    finally:
        await engine.dispose()


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run `coro` to completion on its own loop in its own thread (callable from sync and async code)."""
    result: dict[str, Any] = {}

    def main() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller
            result["error"] = exc

    t = threading.Thread(target=main, name="sqlservers")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


# ---------------------------------------------------------------- fixtures
def _demo_database(url: str, demo_master: Path) -> Iterator[str]:
    db_name = unique_db_name()
    demo_url = load_demo_into(url, demo_master / "demo", db_name)
    try:
        yield demo_url
    finally:
        drop_database(url, db_name)


@pytest.fixture(scope="session")
def pg_demo_url(demo_master: Path) -> Iterator[str]:
    """A PostgreSQL database holding the demo ledgers (plain postgresql:// URL, as an operator would set it)."""
    need_service(pg_available(), f"PostgreSQL not reachable at {make_url(PG_URL).render_as_string()} "
                                 "(or asyncpg missing); set ONESCREEN_TEST_PG_URL")
    yield from _demo_database(PG_URL, demo_master)


@pytest.fixture(scope="session")
def mariadb_demo_url(demo_master: Path) -> Iterator[str]:
    """A MariaDB database holding the demo ledgers (plain mysql:// URL, as an operator would set it)."""
    need_service(mariadb_available(), f"MariaDB not reachable at {make_url(MARIADB_URL).render_as_string()} "
                                      "(or aiomysql missing); set ONESCREEN_TEST_MARIADB_URL")
    yield from _demo_database(MARIADB_URL, demo_master)


def sqlite_rows(path: Path, sql: str, *params: Any) -> list[tuple]:
    """Rows read straight from a demo SQLite file (the reference side of a test)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
        return con.execute(sql, params).fetchall()
