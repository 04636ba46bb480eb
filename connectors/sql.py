"""SQL connector (SQLAlchemy async): SQLite, PostgreSQL and MariaDB/MySQL from one config.

Read-only by construction (SQLite opened with mode=ro, PostgreSQL/MySQL
sessions set read-only), parameterised queries only (SQLAlchemy Core with
bound, expanding IN parameters), bounded IN batches, a pool per ledger.

Config: kind: sql, dsn_env (variable holding the SQLAlchemy URL), table,
optional schema, optional demo_file (SQLite file used when dsn_env is unset
and a demo directory is given), optional batch_size (default 500).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .base import ConnectorConfigError, ConnectorError, Row, SourceSpec, async_url, unwaited



def resolve_dsn(spec: SourceSpec) -> str:
    cfg = spec.config
    env_name = cfg.get("dsn_env")
    dsn = spec.env.get(env_name) if env_name else None
    if not dsn:
        if spec.demo_dir and cfg.get("demo_file"):
            path = Path(spec.demo_dir) / cfg["demo_file"]
            return f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true"
        raise ConnectorConfigError(f"ledger {spec.ledger}: environment variable {env_name} (its DSN) is not set")
    try:
        url = async_url(dsn)
    except sa.exc.ArgumentError:
        raise ConnectorConfigError(f"ledger {spec.ledger}: environment variable {env_name} is not a database URL "
                                   "(e.g. postgresql://user:password@host:5432/db); the value is not shown: it may "
                                   "hold a password") from None
    if url.get_backend_name() == "sqlite" and url.database and "mode" not in url.query:
        url = url.set(database=f"file:{url.database}", query={**url.query, "mode": "ro", "uri": "true"})
    return url.render_as_string(hide_password=False)


class SqlConnector:
    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        cfg = spec.config
        if not cfg.get("table"):
            raise ConnectorConfigError(f"ledger {spec.ledger}: sql connector needs 'table'")
        self.table_name: str = cfg["table"]
        self.schema: str | None = cfg.get("schema")
        self.batch_size = int(cfg.get("batch_size", 500))
        self._dsn = resolve_dsn(spec)
        url = make_url(self._dsn)
        backend = url.get_backend_name()
        # An unknown dialect or a missing driver is an error now, at load, as create_async_engine would raise it;
        # the engine itself is made on first use (450 engines were ~0.2 s of a national catalog's start-up).
        url.get_dialect().import_dbapi()
        self._engine_kwargs: dict[str, Any] = {}
        if backend != "sqlite":
            self._engine_kwargs.update(pool_size=spec.max_connections, max_overflow=0, pool_pre_ping=True,
                                       pool_recycle=1800, connect_args=_driver_timeouts(backend, spec.budget))
        self._engine: AsyncEngine | None = None
        self.backend = backend

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = create_async_engine(self._dsn, **self._engine_kwargs)
            event.listen(self._engine.sync_engine, "connect", self._on_connect)
        return self._engine

    def _on_connect(self, dbapi_conn: Any, _record: Any) -> None:
        # Read-only sessions: the ledger is never written through oneScreen.
        cur = dbapi_conn.cursor()
        try:
            if self.backend == "postgresql":
                cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            elif self.backend in ("mysql", "mariadb"):
                cur.execute("SET SESSION TRANSACTION READ ONLY")
            elif self.backend == "sqlite":
                cur.execute("PRAGMA query_only = ON")
        finally:
            cur.close()
        # asyncpg's adapter runs the SET inside an implicit transaction, and PostgreSQL undoes
        # a SET when that transaction rolls back (pool reset): commit, or the session is read-write.
        dbapi_conn.commit()

    def _table(self, columns: Sequence[str]) -> sa.TableClause:
        return sa.table(self.table_name, *(sa.column(c) for c in columns), schema=self.schema)

    # Each read runs unwaited: cancelled at its budget, it ends then, and gives its connection up in the background.
    async def fetch(self, keys: Sequence[str], columns: Sequence[str]) -> dict[str, list[Row]]:
        return await unwaited(self._fetch(keys, columns))

    async def search(self, equals: Mapping[str, Any], contains: Mapping[str, str],
                     columns: Sequence[str], limit: int, order: Sequence[str] = ()) -> list[Row]:
        return await unwaited(self._search(equals, contains, columns, limit, order))

    async def columns(self) -> dict[str, str]:
        return await unwaited(self._columns())

    async def _fetch(self, keys: Sequence[str], columns: Sequence[str]) -> dict[str, list[Row]]:
        key_col = self.spec.key_column
        cols = list(dict.fromkeys([key_col, *columns]))
        t = self._table(cols)
        out: dict[str, list[Row]] = {}
        keys = list(dict.fromkeys(keys))  # a key asked twice is read, and answered, once
        asked = set(keys)
        try:
            async with self.engine.connect() as conn:
                for i in range(0, len(keys), self.batch_size):
                    batch = keys[i:i + self.batch_size]
                    stmt = sa.select(*(t.c[c] for c in cols)).where(t.c[key_col].in_(batch))
                    result = await conn.execute(stmt)
                    for row in result.mappings():
                        key = str(row[key_col])
                        if key in asked:  # case-insensitive collations (MariaDB) match keys nobody asked for
                            out.setdefault(key, []).append({c: row[c] for c in columns})
        except sa.exc.SQLAlchemyError as exc:
            raise _safe_error(exc) from None
        except OSError as exc:
            raise ConnectorError(f"connection failed ({exc.__class__.__name__})", retryable=True,
                                 reason_ko=f"데이터베이스에 연결하지 못했습니다 ({exc.__class__.__name__})") from None
        return out

    async def _search(self, equals: Mapping[str, Any], contains: Mapping[str, str],
                      columns: Sequence[str], limit: int, order: Sequence[str] = ()) -> list[Row]:
        key_col = self.spec.key_column
        cols = list(dict.fromkeys([key_col, *columns]))
        t = self._table(list(dict.fromkeys([*cols, *equals, *contains, *order])))
        conds = [t.c[c] == v for c, v in equals.items()]
        if contains:
            conds.append(sa.or_(*(t.c[c].icontains(v, autoescape=True) for c, v in contains.items())))
        stmt = sa.select(*(t.c[c] for c in cols)).where(*conds).order_by(
            *(t.c[c] for c in dict.fromkeys(order) if c != key_col), t.c[key_col]).limit(limit)
        try:
            async with self.engine.connect() as conn:
                result = await conn.execute(stmt)
                return [dict(r) for r in result.mappings()]
        except sa.exc.SQLAlchemyError as exc:
            raise _safe_error(exc) from None
        except OSError as exc:
            raise ConnectorError(f"connection failed ({exc.__class__.__name__})", retryable=True,
                                 reason_ko=f"데이터베이스에 연결하지 못했습니다 ({exc.__class__.__name__})") from None

    async def _columns(self) -> dict[str, str]:
        def inspect(sync_conn: Any) -> dict[str, str]:
            insp = sa.inspect(sync_conn)
            return {c["name"]: str(c["type"]) for c in insp.get_columns(self.table_name, schema=self.schema)}

        try:
            async with self.engine.connect() as conn:
                return await conn.run_sync(inspect)
        except sa.exc.NoSuchTableError:
            raise ConnectorError(f"table {self.table_name!r} does not exist") from None
        except sa.exc.SQLAlchemyError as exc:
            raise _safe_error(exc) from None
        except OSError as exc:
            raise ConnectorError(f"connection failed ({exc.__class__.__name__})", retryable=True,
                                 reason_ko=f"데이터베이스에 연결하지 못했습니다 ({exc.__class__.__name__})") from None

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()


def _driver_timeouts(backend: str, budget: float | None) -> dict[str, float]:
    """The driver's own bounds, at the gateway's budget: the gateway answers the screen at the budget whatever
    the driver does (`unwaited`), and these make a read it gave up on end soon after, so a dead server does
    not keep the ledger's connection slots (asyncpg: connect and each statement; aiomysql: connect)."""
    if budget is None:
        return {}
    if backend == "postgresql":
        return {"timeout": budget, "command_timeout": budget}
    if backend in ("mysql", "mariadb"):
        return {"connect_timeout": budget}
    return {}


def _retryable(exc: sa.exc.SQLAlchemyError) -> bool:
    """Connection trouble may pass on a retry; an error in the statement (missing table or column) won't.

    Connection trouble is either a connection SQLAlchemy recognised as lost (`connection_invalidated`:
    asyncpg's plain "connection was closed in the middle of operation", MySQL 2013, ...) or a failure
    before any statement ran (could not connect). The exception class does not tell: SQLite and
    PyMySQL raise OperationalError for "no such column" / "Unknown column" too.
    """
    return bool(getattr(exc, "connection_invalidated", False)) or getattr(exc, "statement", None) is None


def _safe_error(exc: sa.exc.SQLAlchemyError) -> ConnectorError:
    """The ConnectorError for a database error: its class, never the statement or its parameters."""
    orig = getattr(exc, "orig", None)
    name = orig.__class__.__name__ if orig is not None else exc.__class__.__name__
    return ConnectorError(f"database error ({name})", retryable=_retryable(exc),
                          reason_ko=f"데이터베이스 오류 ({name})")

