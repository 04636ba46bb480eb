"""`onescreen audit verify` and `export`: walk the trail, check every link, every signed checkpoint (against
its witness copy) and every request recorded once; write the trail as JSON lines an auditor can check.

Owns the checking half of invariant 7 (tamper-evident): the first record or checkpoint that does not hold
is named. `verify(..., from_number=N)` starts at a trusted checkpoint and reads only the records after it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import IO, Any

import sqlalchemy as sa

from .chain import GENESIS, encode, link, merkle_root, private
from .checkpoints import Checkpoint, KeyRing, Witness, stored
from .events import AuditUnavailable
from .store import AuditStore, record

MAX_DUPLICATES = 100  # duplicate request ids named at most


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    count: int  # records read
    first_bad_seq: int | None
    reason: str | None
    head_hash: str | None = None  # hash of the last record when ok
    checkpoints: int = 0  # signed checkpoints checked against the records they seal
    duplicates: tuple[str, ...] = ()  # "request R (index I): 2 records, seq A..B"
    undelivered: int = 0  # records marked by an "undelivered" record: recorded, refused, never shown


class _Broken(Exception):
    def __init__(self, seq: int | None, reason: str) -> None:
        super().__init__(reason)
        self.seq, self.reason = seq, reason


async def verify(store: AuditStore, *, keys: KeyRing | None = None, witness: Witness | None = None,
                 from_number: int | None = None) -> VerifyResult:
    """Walk the chain in seq order (from seq 1, or after checkpoint `from_number`) and report the first
    record or checkpoint that does not hold, then any request recorded more than once."""

    async def run(conn: Any) -> VerifyResult:
        count, undelivered, checked = 0, 0, 0
        try:
            cps = _Checkpoints(conn, store, keys, witness)
            start, prev = 0, GENESIS
            if from_number is not None:
                trusted = await cps.start_at(from_number)
                start, prev = trusted.seq, trusted.head
            await cps.check_witness_has_no_more()
            expect, hashes, nxt = start + 1, [], await cps.next()
            async for r in store.walk(conn, start):
                count += 1
                seq = r.seq
                if seq != expect:
                    raise _Broken(expect, f"records missing between {expect - 1} and {seq}" if expect > 1
                                  else f"records missing before {seq}")
                if r.prev_hash != prev:
                    other = f"record {seq - 1}" if seq > 1 else "the genesis value"
                    raise _Broken(seq, f"record {seq}: prev_hash does not match {other}")
                try:
                    rec = record(r)
                    good = link(prev, encode(seq, rec.at, rec.event, nonce=rec.nonce)) == r.hash
                except (ValueError, TypeError, KeyError, AttributeError):
                    raise _Broken(seq, f"record {seq}: content cannot be read") from None
                if not good:
                    raise _Broken(seq, f"record {seq}: hash does not match its content")
                if rec.event.kind == "undelivered":
                    undelivered += len(rec.event.detail.get("seqs", ()))
                hashes.append(r.hash)
                if nxt is not None and seq == nxt.seq:
                    if len(hashes) != nxt.count or r.hash != nxt.head or merkle_root(hashes) != nxt.root:
                        raise _Broken(nxt.first_seq, f"records {nxt.first_seq}-{nxt.seq} do not match signed "
                                                     f"checkpoint {nxt.number}: they were changed after it was "
                                                     f"sealed (and the chain rehashed)")
                    checked += 1
                    hashes, nxt = [], await cps.next()
                expect, prev = seq + 1, r.hash
            if nxt is not None:
                raise _Broken(expect, f"checkpoint {nxt.number} seals records up to {nxt.seq} but the trail ends "
                                      f"at {expect - 1}: records were removed from its end")
        except _Broken as b:
            return VerifyResult(False, count, b.seq, b.reason, checkpoints=checked, undelivered=undelivered)
        duplicates = await _duplicates(conn, store, start)
        if duplicates:
            return VerifyResult(False, count, None, f"{len(duplicates)} request(s) recorded more than once: "
                                + "; ".join(duplicates[:5]), checkpoints=checked, duplicates=tuple(duplicates),
                                undelivered=undelivered)
        return VerifyResult(True, count, None, None, prev if count or start else None, checked, (), undelivered)

    return await store.read(run, bounded=False)


class _Checkpoints:
    """The store's checkpoints in order, each checked (number, signature, link to the one before, witness
    copy) as the walk reaches it."""

    def __init__(self, conn: Any, store: AuditStore, keys: KeyRing | None, witness: Witness | None) -> None:
        self.conn, self.store, self.keys, self.witness = conn, store, keys, witness
        self.previous: Checkpoint | None = None
        self._buffer: list[Checkpoint] = []
        self._after = 0

    async def start_at(self, number: int) -> Checkpoint:
        found = await stored(self.conn, self.store.tables, number - 1, 1)
        if not found or found[0].number != number:
            raise _Broken(None, f"there is no checkpoint {number} to start from")
        self._check(found[0], trusted=True)
        self.previous, self._after = found[0], number
        return found[0]

    async def check_witness_has_no_more(self) -> None:
        """A checkpoint in the witness but not in the store: the store lost (or someone removed) it."""
        if self.witness is None:
            return
        last = (await self.conn.execute(sa.select(sa.func.max(self.store.tables.checkpoints.c.number)))).scalar()
        extra = [n for n in self.witness.numbers() if n > (last or 0)]
        if extra:
            raise _Broken(None, f"checkpoint {extra[0]} is in the witness directory but not in the store")

    async def next(self) -> Checkpoint | None:
        if not self._buffer:
            try:
                self._buffer = await stored(self.conn, self.store.tables, self._after, 1000)
            except (ValueError, KeyError, TypeError):
                raise _Broken(None, f"a checkpoint after {self._after} cannot be read") from None
            if not self._buffer:
                return None
        cp = self._buffer.pop(0)
        self._check(cp, trusted=False)
        self.previous, self._after = cp, cp.number
        return cp

    def _check(self, cp: Checkpoint, *, trusted: bool) -> None:
        before = self.previous
        if not trusted:
            if cp.number != (before.number + 1 if before else 1):
                raise _Broken(None, f"checkpoints {(before.number if before else 0) + 1}-{cp.number - 1} are "
                                    f"missing from the store")
            if cp.previous != (before.digest() if before else GENESIS):
                raise _Broken(None, f"checkpoint {cp.number} does not follow checkpoint {cp.number - 1}")
            if cp.count != cp.seq - (before.seq if before else 0):
                raise _Broken(None, f"checkpoint {cp.number}: its count does not match the records it seals")
        if not self.keys or not self.keys.keys:
            raise _Broken(None, f"checkpoint {cp.number} cannot be checked: no trusted public key "
                                f"(set ONESCREEN_AUDIT_VERIFY_KEYS)")
        problem = self.keys.check(cp)
        if problem:
            raise _Broken(None, problem)
        if self.witness is not None:
            try:
                copy = self.witness.read(cp.number)
            except ValueError as exc:
                raise _Broken(None, str(exc)) from None
            if copy is None:
                raise _Broken(None, f"checkpoint {cp.number} has no copy in the witness directory")
            if copy != cp:
                raise _Broken(None, f"checkpoint {cp.number} differs from its witness copy")


async def _duplicates(conn: Any, store: AuditStore, after_seq: int) -> list[str]:
    """Requests with more than one record for one event (records before schema 2, without request_index, count
    as one event per task and subject)."""
    t = store.table
    key = (t.c.request_id, t.c.request_index, t.c.kind, t.c.task, t.c.subject)
    q = sa.select(*key, sa.func.count(), sa.func.min(t.c.seq), sa.func.max(t.c.seq)).group_by(*key) \
        .having(sa.func.count() > 1).order_by(sa.func.min(t.c.seq)).limit(MAX_DUPLICATES)
    if after_seq:
        q = q.where(t.c.request_id.in_(sa.select(t.c.request_id).where(t.c.seq > after_seq)))
    rows = (await conn.execute(q)).all()
    return [f"request {r[0]} (index {r[1]}): {r[5]} records, seq {r[6]}..{r[7]}" for r in rows]


async def export(store: AuditStore, out: IO[str]) -> int:
    """Write every record as one JSON object a line, oldest first: its hash input plus prev_hash and hash, and
    for a record of format 2 its nonce (hex) and its private members' values (`private`), from which an
    auditor recomputes the commitments (chain.py)."""

    async def run(conn: Any) -> int:
        n = 0
        async for r in store.walk(conn):
            try:
                rec = record(r)
                line = {**json.loads(encode(rec.seq, rec.at, rec.event, nonce=rec.nonce)), "prev_hash": rec.prev_hash,
                        "hash": rec.hash}
                if rec.nonce is not None:
                    line.update(nonce=rec.nonce.hex(), private=private(rec.event))
            except (ValueError, TypeError, KeyError, AttributeError):  # exported as stored; verify names it
                line = {c: (str(v) if c == "at" else v) for c, v in r._mapping.items()}
            out.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
        return n

    return await store.read(run, bounded=False)


def summary(result: VerifyResult) -> tuple[int, str]:
    """The CLI's exit code and message."""
    if result.ok:
        extra = f"; {result.checkpoints} signed checkpoints hold" if result.checkpoints else ""
        if result.undelivered:
            extra += f"; {result.undelivered} records belong to refused requests (marked undelivered)"
        return 0, f"audit trail intact: {result.count} records, head hash {result.head_hash or GENESIS}{extra}"
    where = f" (first bad record {result.first_bad_seq})" if result.first_bad_seq is not None else ""
    return 1, f"audit trail BROKEN: {result.reason}{where}"


def unavailable(exc: AuditUnavailable) -> tuple[int, str]:
    return 1, f"audit trail not checked: {read_failure(exc)} ({exc.reason})"


def read_failure(exc: AuditUnavailable) -> str:
    """What a command that only reads the trail (verify, export, prove, checkpoints) says when the store fails:
    the writer's default ("cannot be written; nothing was disclosed") says nothing true of a read."""
    return "the audit store cannot be reached" if exc.message == AuditUnavailable.WRITE else exc.message
