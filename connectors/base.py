"""The connector protocol: how oneScreen reads one ledger.

A connector knows nothing of oneScreen. It is built from its ledger's
connector config and answers batched, column-limited reads by subject key.
"""
from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

Row = Mapping[str, Any]


class ConnectorError(Exception):
    """A read failed. `reason` is safe to show an operator: no values, no SQL, no secrets; `reason_ko` says
    the same in Korean for the caseworker's screen (None: the service shows `reason` under a Korean heading)."""

    def __init__(self, reason: str, *, retryable: bool = False, reason_ko: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reason_ko = reason_ko
        self.retryable = retryable


class Truncated(list):
    """The rows of one key when the connector stopped before the source's last row (a page limit): `total`
    rows exist, `len(self)` were read. `fetch` answers a key with one of these instead of a plain list."""

    def __init__(self, rows: Iterable[Row], total: int) -> None:
        super().__init__(rows)
        self.total = total


class ConnectorConfigError(Exception):
    """The connector config cannot work (missing table, DSN variable unset, ...)."""


@dataclass(frozen=True)
class SourceSpec:
    """What a connector is asked to read: one ledger, keyed by one column."""

    ledger: str
    key_column: str
    config: Mapping[str, Any]
    env: Mapping[str, str]  # where DSNs and service keys are looked up
    demo_dir: str | None = None  # demo mode: where the synthetic demo ledger files are
    max_connections: int = 10
    # Seconds within which the caller abandons every fetch (oneScreen's gateway: the ledger's timeout), or None.
    # A connector may leave out its own per-request timer when that timer could never fire first.
    budget: float | None = None


class Connector(Protocol):
    async def fetch(self, keys: Sequence[str], columns: Sequence[str]) -> dict[str, list[Row]]:
        """Rows per key for `keys`, each row holding exactly `columns` (keys absent: no rows); a key whose
        rows were not all read is answered with `Truncated` (how many rows exist)."""

    async def search(self, equals: Mapping[str, Any], contains: Mapping[str, str],
                     columns: Sequence[str], limit: int, order: Sequence[str] = ()) -> list[Row]:
        """Rows matching every `equals` column and every `contains` substring, at most `limit`, sorted by the
        `order` columns and then the key (a stable order: the same rows, in the same order, every time)."""

    async def columns(self) -> dict[str, str]:
        """The source's columns and their types (for `catalog validate --check-sources`)."""

    async def close(self) -> None: ...


Factory = Callable[[SourceSpec], Connector]
# The connector kinds: kind -> "module:class", imported on first use (a deployment without MariaDB never
# imports its driver). Other kinds can be added with `register`.
BUILTIN = {"sql": "connectors.sql:SqlConnector", "rest": "connectors.rest:RestConnector"}
_REGISTRY: dict[str, Factory] = {}


def register(kind: str, factory: Factory) -> None:
    _REGISTRY[kind] = factory


def create(spec: SourceSpec) -> Connector:
    kind = spec.config.get("kind")
    factory = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if factory is None and kind in BUILTIN:
        module, _, name = BUILTIN[kind].partition(":")
        factory = _REGISTRY[kind] = getattr(importlib.import_module(module), name)
    if factory is None:
        raise ConnectorConfigError(f"ledger {spec.ledger}: unknown connector kind {kind!r} "
                                   f"(known: {', '.join(sorted(BUILTIN.keys() | _REGISTRY.keys()))})")
    return factory(spec)


# The asyncio driver of each database a URL may name without one: the ledgers' SQL connector, the audit trail,
# the consent and change stores all open their URLs through async_url().
ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg",
                 "mysql": "mysql+aiomysql", "mariadb": "mysql+aiomysql"}


def async_url(url: Any) -> Any:
    """A SQLAlchemy URL (a string or a URL) with its asyncio driver filled in when it names none."""
    from sqlalchemy.engine import make_url  # here: the connectors' protocol module stays free of SQLAlchemy
    u = make_url(url)
    if "+" not in u.drivername and u.drivername in ASYNC_DRIVERS:
        u = u.set(drivername=ASYNC_DRIVERS[u.drivername])
    return u


_abandoned: set[asyncio.Future[Any]] = set()  # reads given up on, still cleaning up: kept alive until they end


async def unwaited(read: Any) -> Any:
    """Await the coroutine `read`; when the caller is cancelled (the gateway's time-out), cancel `read` and
    return at once, leaving its clean-up to the background. A cancelled SQLAlchemy/asyncpg read gives its
    connection up on the dead socket first, which on a blackholed network took seconds beyond the ledger's
    timeout (screens of 3.96-5.03 s under 3 s): with this, a read ends at its budget, whatever the driver does."""
    task = asyncio.ensure_future(read)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        _abandoned.add(task)
        task.add_done_callback(_ended)
        raise


def _ended(task: asyncio.Future[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a failure while giving up says nothing the caller has not heard
