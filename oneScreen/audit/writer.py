"""The group-commit writer: one task per process writes every queued record, many per transaction, and
each caller waits for its own commit, at most until its deadline.

Owns invariant 7's write path. Exactly once: each record carries (request_id, request_index), unique in
the trail, and a retry after an unknown outcome (the connection broke before the commit was acknowledged)
finds what committed and appends only the rest. Bounded: a caller's wait ends at its deadline whatever
the network does. Honest: a record that may have committed for a request that was then refused is named
by a later "undelivered" record (the trail may over-record, never under-record, and says which is which).

`Writer._append` is the one append path: under the writers' lock, read the head (and, after an unknown
outcome, what of the batch committed), chain the rest from it, insert, commit. On PostgreSQL, while this
writer's last known head is current, the same happens in one statement (`try_append`).
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

from .chain import GENESIS, encode, link, parts, utc
from .events import AuditEvent, AuditUnavailable, StoredRecord

log = logging.getLogger("onescreen.audit")

CONTENDED_FOR = 1.0  # seconds a writer uses the locked append after seeing another writer's records
SETTLE_EVERY = 1.0  # seconds between tries to write the pending "undelivered" record while no request comes
MAX_UNSETTLED = 100_000  # request ids remembered for an "undelivered" record (memory bound)
MARKER_IDS = 500  # request ids named per "undelivered" record
ATTEMPTS = 3  # tries of one batch within its deadline when the connection breaks


class Backend(Protocol):
    optimistic: bool  # whether try_append (one statement, no lock held across round trips) exists
    broken: tuple[type[BaseException], ...]  # errors that mean the connection is gone

    async def connect(self) -> None: ...
    def discard(self) -> None: ...
    def lost(self) -> bool: ...  # the connection was closed under it
    async def close(self) -> None: ...
    def outcome_unknown(self, exc: BaseException) -> bool: ...  # a commit was sent and no answer came
    async def try_append(self, head: tuple[int, str], last: tuple[int, str], rows: list[dict]) -> bool: ...
    def locked(self) -> Any: ...  # async context manager: a transaction holding the writers' lock
    async def head(self) -> tuple[int, str] | None: ...
    async def committed(self, request_ids: list[str]) -> list[Any]: ...
    async def insert(self, rows: list[dict[str, Any]]) -> None: ...


@dataclass(eq=False)
class Pending:
    events: list[AuditEvent]  # stamped: at and request_index set
    future: asyncio.Future
    deadline: float  # event loop time


class AuditConflict(Exception):
    """A record with this (request_id, request_index) exists but is not this event: never overwritten."""


_STOP = object()


class Writer:
    def __init__(self, backend: Backend, *, timeout: float, max_batch: int,
                 on_commit: Callable[[int], None] | None = None) -> None:
        self.backend, self.timeout, self.max_batch = backend, timeout, max_batch
        self.on_commit = on_commit
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self._head: tuple[int, str] | None = None  # (seq, hash) of the last record this writer committed
        self._contended_until = 0.0  # loop time until which other writers count as busy
        self._unsettled: dict[str, None] = {}  # request ids refused while their records may have committed
        self.batches_committed = 0  # transactions that wrote records (for benchmarks and metrics)
        self.records_committed = 0
        self.found_committed = 0  # records a retry found already committed by the try before it
        self.last_commit: float | None = None  # time.time() of the last commit

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop(), name="onescreen-audit-writer")

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def stop(self) -> None:
        """Write what is queued (each caller within its deadline), settle what is pending, stop."""
        if self.task is not None:
            self.queue.put_nowait(_STOP)
            try:
                await self.task
            finally:
                self.task = None
        await self.backend.close()

    # ------------------------------------------------------------ the caller's side
    async def submit(self, events: list[AuditEvent], deadline: float | None = None) -> list[StoredRecord]:
        """The events' records, once committed; AuditUnavailable(reason="deadline") at `deadline` (event loop
        time; by default the writer's timeout from now)."""
        loop = asyncio.get_running_loop()
        now = datetime.now(timezone.utc)
        stamped = [e.stamped(utc(e.at) if e.at is not None else now,
                             e.request_index if e.request_index is not None else i) for i, e in enumerate(events)]
        p = Pending(stamped, loop.create_future(), loop.time() + self.timeout if deadline is None else deadline)
        self.queue.put_nowait(p)
        timer = loop.call_at(p.deadline, _expire, p.future)
        try:
            return await p.future  # a caller cancelled meanwhile cancels the future: the writer sees it done
        finally:
            timer.cancel()

    # ------------------------------------------------------------ the writer task
    async def _loop(self) -> None:
        """Take everything queued (up to max_batch records), write it in one transaction."""
        stop = False
        while not stop:
            try:
                if self._unsettled:
                    item = await asyncio.wait_for(self.queue.get(), SETTLE_EVERY)
                else:
                    item = await self.queue.get()
            except TimeoutError:
                await self._write([])  # no request came: write the "undelivered" record on its own
                continue
            if item is _STOP:
                break
            batch, n = [item], len(item.events)
            while n < self.max_batch:
                try:
                    item = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
                n += len(item.events)
            await self._write(batch)
        if self._unsettled:
            await self._write([])

    async def _write(self, batch: list[Pending]) -> None:
        loop = asyncio.get_running_loop()
        live = [p for p in batch if not p.future.done()]  # a caller gone before anything was sent: not written
        if not live and not self._unsettled:
            return
        events = [e for p in live for e in p.events]
        deadline = max((p.deadline for p in live), default=loop.time() + self.timeout)
        try:
            records = await self._append(events, deadline)
        except BaseException as exc:
            reason = _reason(exc, self.backend)
            if live:
                log.error("audit records cannot be written", extra={"operation": "audit.append",
                                                                    "outcome": "failed", "reason": type(exc).__name__})
            else:  # tried again every SETTLE_EVERY seconds while the store is away: not an error each time
                log.info("the undelivered record cannot be written yet", extra={"operation": "audit.settle",
                                                                                "outcome": "failed",
                                                                                "reason": type(exc).__name__})
            for p in live:
                if not p.future.done():
                    p.future.set_exception(AuditUnavailable(reason=reason))
            if not isinstance(exc, Exception):
                raise
            return
        if events:
            self.batches_committed += 1
            self.records_committed += len(events)
        self.last_commit = time.time()
        i = 0
        for p in live:  # only now, after the commit, does any caller learn its record
            if p.future.done():  # refused meanwhile (deadline, cancelled): its records are over-records
                self._unsettle(e.request_id for e in p.events)
            else:
                p.future.set_result(records[i:i + len(p.events)])
            i += len(p.events)
        if self.on_commit is not None and events:
            self.on_commit(len(events))

    def _unsettle(self, request_ids: Any) -> None:
        for rid in request_ids:
            if len(self._unsettled) >= MAX_UNSETTLED:
                log.error("too many refused requests whose records may have committed; later ones go unnamed",
                          extra={"operation": "audit.append", "outcome": "failed"})
                return
            self._unsettled[rid] = None

    # ------------------------------------------------------------ the one append path
    async def _append(self, events: list[AuditEvent], deadline: float) -> list[StoredRecord]:
        """Commit `events` (and the pending "undelivered" record) by `deadline`; their records, in order.

        A try whose outcome is unknown (a commit was sent, no answer came) leaves the next try to find what
        committed; if no try succeeds, the events' request ids wait for the "undelivered" record."""
        loop = asyncio.get_running_loop()
        in_doubt = False
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with asyncio.timeout_at(deadline):
                    await self.backend.connect()
                    if (self.backend.optimistic and self._head is not None and events and not in_doubt
                            and not self._unsettled and loop.time() >= self._contended_until):
                        records, rows = chain(self._head, events)
                        last = (records[-1].seq, records[-1].hash)
                        if await self.backend.try_append(self._head, last, rows):
                            self._head = last
                            return records
                        self._contended_until = loop.time() + CONTENDED_FOR  # another writer moved the head
                    return await self._locked(events, in_doubt)
            except BaseException as exc:
                self._head = None
                unknown = self.backend.outcome_unknown(exc)
                broken = _reason(exc, self.backend) != "refused"
                if unknown or broken:
                    self.backend.discard()
                in_doubt = in_doubt or unknown
                if not (isinstance(exc, Exception) and broken and not isinstance(exc, TimeoutError)
                        and attempt < ATTEMPTS and loop.time() < deadline):
                    if in_doubt:
                        self._unsettle(e.request_id for e in events)
                    raise
        raise AssertionError("unreachable")

    async def _locked(self, events: list[AuditEvent], in_doubt: bool) -> list[StoredRecord]:
        """Under the writers' lock: the head, what of `events` a try before committed (when `in_doubt`), the
        rest chained from the head, and the "undelivered" record for the refused requests still pending."""
        loop = asyncio.get_running_loop()
        unsettled = list(self._unsettled)
        async with self.backend.locked() as tx:
            head = await tx.head()
            if self._head is not None and head != self._head:
                self._contended_until = loop.time() + CONTENDED_FOR
            look = sorted({e.request_id for e in events} if in_doubt else set()) + unsettled
            found = {(r[0], r[1]): r for r in await tx.committed(look)} if look else {}
            seq, prev = head or (0, GENESIS)
            records, rows = [], []
            for e in events:
                r = found.get((e.request_id, e.request_index))
                if r is None:
                    seq, prev = _seal(seq + 1, e, prev, records, rows)
                    continue
                at = utc(r[3])
                rec = StoredRecord(r[2], at, e.stamped(at, e.request_index), r[4], r[5],
                                   bytes.fromhex(r[6]) if r[6] is not None else None)
                if link(rec.prev_hash, encode(rec.seq, at, rec.event, nonce=rec.nonce)) != rec.hash:
                    raise AuditConflict("a different record holds this request id and index")
                records.append(rec)
                self.found_committed += 1
            for marker in _markers(unsettled, found):
                seq, prev = _seal(seq + 1, marker, prev, [], rows)
            if rows:
                await tx.insert(rows)
        for rid in unsettled:
            self._unsettled.pop(rid, None)
        self._head = (seq, prev) if rows else head
        return records


def chain(head: tuple[int, str], events: list[AuditEvent]) -> tuple[list[StoredRecord], list[dict[str, Any]]]:
    """The records and rows of `events`, continuing the chain from `head` (seq, hash)."""
    seq, prev = head
    records: list[StoredRecord] = []
    rows: list[dict[str, Any]] = []
    for e in events:
        seq, prev = _seal(seq + 1, e, prev, records, rows)
    return records, rows


def _seal(seq: int, e: AuditEvent, prev: str, records: list[StoredRecord], rows: list[dict[str, Any]]
          ) -> tuple[int, str]:
    p = parts(e)
    nonce = secrets.token_bytes(32)
    digest = link(prev, encode(seq, e.at, e, p, nonce))
    rows.append({"seq": seq, "at": e.at, "kind": e.kind, "request_id": e.request_id,
                 "request_index": e.request_index, "user_id": e.user, "organisation": e.organisation,
                 "role": e.role, "task": e.task, "legal_basis": e.legal_basis, "case_ref": e.case_ref,
                 "subject_type": e.subject_type, "subject": e.subject, "fields": p.fields.decode("utf-8"),
                 "ledgers": p.ledgers.decode("utf-8"), "client": e.client, "detail": p.detail.decode("utf-8"),
                 "nonce": nonce.hex(), "user_name": e.user_name, "prev_hash": prev, "hash": digest})
    records.append(StoredRecord(seq, e.at, e, prev, digest, nonce))
    return seq, digest


def _markers(unsettled: list[str], found: dict[tuple[str, int], Any]) -> list[AuditEvent]:
    """The "undelivered" records: requests refused (nothing was shown) whose records may have committed, and
    the seqs of those that did: recorded, never delivered."""
    out = []
    now = datetime.now(timezone.utc)
    for i in range(0, len(unsettled), MARKER_IDS):
        ids = unsettled[i:i + MARKER_IDS]
        wanted = set(ids)
        seqs = sorted(r[2] for (rid, _), r in found.items() if rid in wanted)
        out.append(AuditEvent(kind="undelivered", request_id=f"undelivered-{secrets.token_hex(8)}", user="onescreen",
                              organisation="", role="", task="", legal_basis="", case_ref="", subject_type="",
                              subject="", fields=(), ledgers=(), client="",
                              detail={"request_ids": ids, "seqs": seqs}, at=now, request_index=0))
    return out


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(AuditUnavailable(reason="deadline"))


def _reason(exc: BaseException, backend: Backend) -> str:
    """The bounded reason (AuditUnavailable.REASONS) of a failed append."""
    if isinstance(exc, (TimeoutError, asyncio.CancelledError)):
        return "deadline"
    if isinstance(exc, (OSError, *backend.broken)) or backend.lost():
        return "connection"
    return "refused"
