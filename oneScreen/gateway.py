"""Runs the fetches of a stage through the connectors.

Owns invariant 4 (the fetches of a stage run concurrently, so a stage costs
its slowest ledger) and invariant 5 (a ledger that fails or times out
yields a LedgerFailure for its own keys only). Also the per-ledger TTL cache
(bounded, in memory, keyed so an entry answers only the same subject with
the same or fewer columns) and single-flight (concurrent identical reads
share one call). Policy is applied before planning, never to cache entries.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, NamedTuple, Sequence

from cachetools import TTLCache

from connectors.base import Connector, ConnectorError, Row, Truncated

from .catalog import Ledger
from .ledgercache import LedgerCache, share_bytes
from .metrics import Metrics
from .planner import Fetch
from .resilience import CLOSED, STATE_VALUE, CircuitBreaker, backoff
from . import tracing
from .tracing import NO_SPAN

log = logging.getLogger("onescreen.gateway")


class KeyRows(NamedTuple):  # one per ledger and key of every read: a named tuple is cheap to make
    """What a ledger holds for one key (no rows: the ledger does not know the subject)."""

    rows: tuple[Row, ...]
    as_of: datetime
    cached: bool
    total: int | None = None  # rows the ledger holds for the key when fewer were read (a page limit), else None


@dataclass(frozen=True, slots=True)
class LedgerFailure:
    ledger: Ledger
    reason: str  # an operator's reason in English: no values, no secrets
    reason_ko: str = field(default="", compare=False)  # the same in Korean, for the caseworker's screen

    def __post_init__(self) -> None:
        if not self.reason_ko:
            object.__setattr__(self, "reason_ko", _korean(self.reason, None))


KeyResult = KeyRows | LedgerFailure


@dataclass(slots=True)
class _Entry:
    columns: frozenset[str]
    rows: tuple[Row, ...]
    as_of: datetime
    total: int | None = None


@dataclass(slots=True)
class _InFlight:
    columns: frozenset[str]
    future: asyncio.Future


class _Read(NamedTuple):
    """A read this stage makes: these keys of this ledger, registered as in flight."""

    ledger: Ledger
    keys: list[str]
    columns: tuple[str, ...]
    flight: _InFlight
    cache: TTLCache | None


class Gateway:
    def __init__(self, ledgers: Mapping[str, Ledger], connectors: Mapping[str, Connector], metrics: Metrics,
                 clock: Callable[[], float] = time.monotonic, cache_mb: float = 64.0) -> None:
        self.ledgers = dict(ledgers)
        self.connectors = dict(connectors)
        self.metrics = metrics
        cached = [lid for lid, l in ledgers.items() if l.cache_ttl > 0 and l.cache_size > 0]
        share = share_bytes(cache_mb, len(cached))  # each cache: cache_size entries AND an equal share of the bytes
        self.caches: dict[str, TTLCache] = {
            lid: LedgerCache(ledgers[lid].cache_size, share, ledgers[lid].cache_ttl) for lid in cached}
        self._inflight: dict[tuple[str, str], _InFlight] = {}
        self.breakers = {lid: CircuitBreaker(l.breaker_failures, l.breaker_reset, clock, lid)
                         for lid, l in ledgers.items()}
        self.limits = {lid: asyncio.Semaphore(l.max_concurrency) for lid, l in ledgers.items()}
        # each ledger's per-read figures (plain numbers: metrics.LedgerCounts) and its circuit gauge, bound once
        self.counts = {lid: metrics.ledger(lid) for lid in ledgers}
        self.circuit = {lid: metrics.circuit_state.labels(lid) for lid in ledgers}
        for gauge in self.circuit.values():
            gauge.set(0)

    def adopt(self, old: "Gateway") -> None:
        """Keep the warm state (caches, breakers, limits) of ledgers a reload did not change."""
        for lid, ledger in self.ledgers.items():
            if old.ledgers.get(lid) == ledger:
                if lid in old.caches and lid in self.caches and old.caches[lid].maxsize == self.caches[lid].maxsize:
                    self.caches[lid] = old.caches[lid]  # (a new byte share starts cold: its bound holds at once)
                self.breakers[lid] = old.breakers[lid]
                self.limits[lid] = old.limits[lid]

    def circuits(self) -> dict[str, str]:
        return {lid: b.state for lid, b in self.breakers.items()}

    async def run(self, fetches: Sequence[Fetch]) -> dict[tuple[str, str], KeyResult]:
        """All fetches of one stage, concurrently; results by (ledger id, key).

        Each key is answered by the cache, else by a read in flight that covers it (single-flight), else by a
        read of its own; the reads left over run concurrently, each as `_call` directly (the layers of coroutine
        between a task and its connector are paid again on every resumption of the read)."""
        out: dict[tuple[str, str], KeyResult] = {}
        reads: list[_Read] = []
        joins: list[tuple[str, str, tuple[str, ...], asyncio.Future]] = []
        for fetch in fetches:
            ledger = fetch.ledger
            lid = ledger.id
            wanted = frozenset(fetch.columns)
            keys: Sequence[str] = fetch.keys
            cache = self.caches.get(lid)
            if cache is not None:
                keys = []
                for key in fetch.keys:
                    entry = cache.get(key)
                    if entry is not None and wanted <= entry.columns:
                        # rows as read for exactly these columns are what a read would give; an entry read for
                        # more columns is cut down to the ones asked for
                        rows = entry.rows if wanted == entry.columns else _project(entry.rows, fetch.columns)
                        out[(lid, key)] = KeyRows(rows, entry.as_of, True, entry.total)
                    else:
                        keys.append(key)
                hits = len(fetch.keys) - len(keys)
                if hits:
                    self.counts[lid].hits += hits
                if keys:
                    self.counts[lid].misses += len(keys)
            missing = []
            for key in keys:
                flight = self._inflight.get((lid, key))
                if flight is not None and wanted <= flight.columns:
                    joins.append((lid, key, fetch.columns, flight.future))
                else:
                    missing.append(key)
            if missing:
                future = asyncio.get_running_loop().create_future()
                flight = _InFlight(wanted, future)
                for key in missing:
                    self._inflight[(lid, key)] = flight
                reads.append(_Read(ledger, missing, fetch.columns, flight, cache))
        if reads:
            loop = asyncio.get_running_loop()
            clock = _StageClock(loop)
            start = loop.time()
            try:
                if len(reads) == 1:
                    r = reads[0]
                    clock.start([(start + r.ledger.timeout, asyncio.current_task())])
                    try:
                        results: list[Any] = [await self._call(r.ledger, r.keys, r.columns, start, clock)]
                    except ConnectorError as exc:
                        results = [exc]
                else:
                    tasks = [loop.create_task(self._call(r.ledger, r.keys, r.columns, start, clock)) for r in reads]
                    clock.start([(start + r.ledger.timeout, t) for r, t in zip(reads, tasks)])
                    results = await asyncio.gather(*tasks, return_exceptions=True)
            except BaseException:  # cancelled: release the reads' waiters, then go on cancelling
                for r in reads:
                    self._land(r, LedgerFailure(r.ledger, "the read was cancelled", "조회가 취소되었습니다"))
                raise
            finally:
                clock.stop()
            bug = None
            as_of = datetime.now(timezone.utc)  # every read of the stage has landed: one time for all of them
            for r, result in zip(reads, results):
                if isinstance(result, ConnectorError):
                    self.counts[r.ledger.id].errors += 1
                    log.warning("ledger read failed", extra={"ledger": r.ledger.id, "reason": result.reason})
                    failure = LedgerFailure(r.ledger, result.reason, _korean(result.reason, result.reason_ko))
                    self._land(r, failure)
                    for key in r.keys:
                        out[(r.ledger.id, key)] = failure
                elif isinstance(result, BaseException):  # not the connector's: a bug, after every read has landed
                    self._land(r, LedgerFailure(r.ledger, "the read was cancelled", "조회가 취소되었습니다"))
                    bug = bug or result
                else:
                    self._land(r, (result, as_of))
                    for key in r.keys:
                        found = result.get(key, ())
                        rows, total = tuple(found), _total(found)
                        if r.cache is not None:
                            r.cache[key] = _Entry(r.flight.columns, rows, as_of, total)
                        out[(r.ledger.id, key)] = KeyRows(rows, as_of, False, total)
            if bug is not None:
                raise bug
        for lid, key, columns, future in joins:
            result = await future
            if isinstance(result, LedgerFailure):
                out[(lid, key)] = result
            else:
                rows_by_key, as_of = result
                found = rows_by_key.get(key, ())
                out[(lid, key)] = KeyRows(_project(found, columns), as_of, False, _total(found))
        return out

    def _land(self, read: "_Read", result: Any) -> None:
        """A read is over: its waiters hear `result`, and its keys stop being in flight (unless already replaced)."""
        if not read.flight.future.done():
            read.flight.future.set_result(result)
        lid = read.ledger.id
        for key in read.keys:
            if self._inflight.get((lid, key)) is read.flight:
                del self._inflight[(lid, key)]

    async def _call(self, ledger: Ledger, keys: list[str], columns: tuple[str, ...], start: float,
                    clock: "_StageClock") -> dict[str, list[Row]]:
        """One logical read: within the ledger's timeout budget (from `start`, the stage's loop.time(); the
        stage's one timer, `clock`, cancels the read at its deadline and the read turns that into a timeout),
        through its breaker and concurrency limit, retrying retryable failures with jittered backoff. Raises
        ConnectorError with an operator's reason."""
        breaker = self.breakers[ledger.id]
        connector = self.connectors[ledger.id]
        counts, circuit, limit = self.counts[ledger.id], self.circuit[ledger.id], self.limits[ledger.id]
        loop = asyncio.get_running_loop()
        deadline = start + ledger.timeout
        tracer = tracing.tracer()
        attempt = 0
        while True:
            if not breaker.allow():
                circuit.set(STATE_VALUE[breaker.state])
                reason, reason_ko = breaker.open_reason()
                raise ConnectorError(reason, reason_ko=reason_ko)
            attempt += 1
            started = time.perf_counter()
            counts.fetches += 1
            failed: BaseException | None = None
            try:
                # tracing off (the usual case): no span and no attributes built
                with NO_SPAN if tracer is None else tracer.start_as_current_span("ledger.fetch", attributes={
                        "ledger": ledger.id, "keys": len(keys), "columns": len(columns), "attempt": attempt}):
                    await limit.acquire()  # and release(): `async with` made two coroutines more per read
                    try:
                        result = await connector.fetch(keys, columns)
                    finally:
                        limit.release()
            except asyncio.CancelledError:
                if not clock.expired():  # not this read's deadline: someone else cancels
                    raise
                failed = asyncio.TimeoutError()
            except Exception as exc:  # ConnectorError, or a connector bug: all cost this ledger only
                failed = exc
            finally:
                counts.observe(time.perf_counter() - started)
            if failed is None:
                if breaker.state != CLOSED:  # the gauge changes only when the circuit does
                    circuit.set(0)
                breaker.success()
                return result
            retryable = isinstance(failed, asyncio.TimeoutError) or getattr(failed, "retryable", False)
            reason, reason_ko = _reason(failed, ledger), _reason_ko(failed, ledger)
            breaker.failure(reason, reason_ko)
            circuit.set(STATE_VALUE[breaker.state])
            pause = backoff(attempt)
            gave_up = not retryable or attempt > ledger.retries or loop.time() + pause >= deadline
            if not gave_up:
                counts.retries += 1
                try:
                    await asyncio.sleep(pause)  # ends before the deadline; a late loop may still fire it first
                except asyncio.CancelledError:
                    if not clock.expired():
                        raise
                    gave_up = True
                    reason, reason_ko = _reason(asyncio.TimeoutError(), ledger), _reason_ko(asyncio.TimeoutError(), ledger)
            if gave_up:
                if attempt > 1:
                    reason, reason_ko = f"{reason} (after {attempt} attempts)", f"{reason_ko} ({attempt}회 시도 후)"
                raise ConnectorError(reason, reason_ko=reason_ko) from None

    async def search(self, ledger: Ledger, equals: Mapping[str, Any], contains: Mapping[str, str],
                     columns: Sequence[str], limit: int, order: Sequence[str] = ()) -> list[Row]:
        self.counts[ledger.id].fetches += 1
        try:
            return await asyncio.wait_for(
                self.connectors[ledger.id].search(equals, contains, columns, limit, order), ledger.timeout)
        except Exception as exc:
            self.counts[ledger.id].errors += 1
            raise ConnectorError(_reason(exc, ledger), reason_ko=_reason_ko(exc, ledger)) from None

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.connectors.values()), return_exceptions=True)


class _StageClock:
    """The one timer of a stage's reads (one per read cost a Timeout object, a timer handle and its heap
    entries on every read). Per-read bookkeeping done once per stage (this clock, metrics.LedgerCounts, the
    slot taken with acquire/release), counted together: 5.576 M -> 5.278 M instructions per screen (-5.3%;
    `python -m bench.icount main --screens 600 --rounds 2`, 2026-12-04; the clock alone about -3.6%). At each
    read's deadline (the stage's start + its ledger's timeout) the read's task
    is cancelled and marked, and the read (Gateway._call) turns that cancellation into a timeout of its own
    ledger; a cancellation that is not the clock's goes on as one."""

    __slots__ = ("loop", "reads", "handle", "fired")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reads: list[tuple[float, asyncio.Task]] = []
        self.handle: asyncio.TimerHandle | None = None
        self.fired: dict[asyncio.Task, int] = {}  # task -> its cancelling() count before the clock cancelled it

    def start(self, reads: list[tuple[float, asyncio.Task]]) -> None:
        self.reads = sorted(reads, key=lambda r: r[0], reverse=True)  # the next deadline last
        self.handle = self.loop.call_at(self.reads[-1][0], self._fire)

    def _fire(self) -> None:
        now = self.loop.time()
        reads = self.reads
        while reads and reads[-1][0] <= now:
            task = reads.pop()[1]
            if not task.done():
                self.fired[task] = task.cancelling()
                task.cancel()
        self.handle = self.loop.call_at(reads[-1][0], self._fire) if reads else None

    def expired(self) -> bool:
        """In a read that caught CancelledError: whether it was this clock's (then taken back, as
        asyncio.timeout does, unless the task was also cancelled from elsewhere)."""
        task = asyncio.current_task()
        before = self.fired.pop(task, None)  # type: ignore[arg-type]
        return before is not None and task.uncancel() <= before  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


def _project(rows: Sequence[Row], columns: Sequence[str]) -> tuple[Row, ...]:
    return tuple({c: r[c] for c in columns} for r in rows)


def _total(rows: Any) -> int | None:
    """How many rows exist for a key the connector read only in part (connectors.base.Truncated), else None."""
    return rows.total if isinstance(rows, Truncated) else None


def _reason(exc: BaseException, ledger: Ledger) -> str:
    if isinstance(exc, ConnectorError):
        return exc.reason
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {ledger.timeout:g} s"
    return f"connector error ({exc.__class__.__name__})"


def _reason_ko(exc: BaseException, ledger: Ledger) -> str:
    if isinstance(exc, ConnectorError):
        return _korean(exc.reason, exc.reason_ko)
    if isinstance(exc, asyncio.TimeoutError):
        return f"{ledger.timeout:g}초 안에 응답이 없습니다"
    return f"연계 모듈 오류 ({exc.__class__.__name__})"


def _korean(reason: str, reason_ko: str | None) -> str:
    """A connector's reason in Korean: its own, else a Korean heading over its English text (a connector that
    says nothing in Korean: the operator's reason is still shown whole)."""
    return reason_ko or f"연계 시스템 오류 (원문: {reason})"
