"""The proof that one record is in the trail: its hash input, its hash, its RFC 6962 audit path to the Merkle
root of the signed checkpoint that seals it, and that checkpoint with its signature.

The hash input of a record of format 2 or 3 (chain.py) holds its private members (the officer's user id and
address, and in format 3 their name) only as commitments; a proof reveals the private members it is asked to (`reveal`: the value and
that member's salt), never the record's nonce, so the others stay hidden and the hash still recomputes.
A citizen's proof reveals none of the officer's. (Records written before format 2 hold them in clear.)

Owns the citizen's half of invariant 7: whoever holds a proof and the checkpoint public key can check,
without the service (oneScreen/verify_receipt.py), that the record is the one sealed and signed; a record
changed in the store, or a checkpoint not signed by the key, does not verify.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Iterable

import sqlalchemy as sa

from ..errors import BadRequest
from .chain import PRIVATE, audit_path, encode, private, salt
from .checkpoints import Checkpoint
from .store import AuditStore, record

FORMAT = "onescreen-receipt-proof/2"  # /1: before `revealed` (the verifier still reads it)


class NotSealed(BadRequest):
    """The record is newer than the last signed checkpoint: its proof exists once the next one is sealed."""


async def prove(store: AuditStore, seq: int, reveal: Iterable[str] = ()) -> dict[str, Any]:
    """The proof of record `seq` as a JSON-ready mapping, revealing the private members named in `reveal`.
    BadRequest when there is no such record, NotSealed when no checkpoint seals it yet."""
    reveal = sorted(set(reveal))
    unknown = [m for m in reveal if m not in PRIVATE]
    if unknown:
        raise BadRequest(f"a proof reveals private members only ({', '.join(PRIVATE)}), not {', '.join(unknown)}")
    t, c = store.table, store.tables.checkpoints

    async def run(conn: Any) -> dict[str, Any]:
        row = (await conn.execute(sa.select(t).where(t.c.seq == seq))).first()
        if row is None:
            raise BadRequest(f"there is no audit record {seq}")
        cp_row = (await conn.execute(sa.select(c).where(c.c.seq >= seq).order_by(c.c.number).limit(1))).mappings().first()
        if cp_row is None:
            raise NotSealed(f"audit record {seq} is not sealed in a signed checkpoint yet; its proof is ready after "
                            "the next checkpoint (every ONESCREEN_AUDIT_CHECKPOINT_RECORDS records or "
                            "ONESCREEN_AUDIT_CHECKPOINT_SECONDS seconds)")
        cp = Checkpoint.from_mapping(cp_row)
        hashes = list((await conn.execute(sa.select(t.c.hash).where(t.c.seq >= cp.first_seq, t.c.seq <= cp.seq)
                                          .order_by(t.c.seq))).scalars())
        return {"row": row, "checkpoint": cp, "hashes": hashes}

    got = await store.read(run, bounded=False)
    row, cp, hashes = got["row"], got["checkpoint"], got["hashes"]
    revealed: dict[str, Any] = {}
    try:
        rec = record(row)
        payload = json.loads(encode(rec.seq, rec.at, rec.event, nonce=rec.nonce))
        if rec.nonce is not None:
            values = private(rec.event)
            missing = [m for m in reveal if m not in values]
            if missing:  # a record of format 2 commits no officer's name (it is in its detail)
                raise BadRequest(f"audit record {seq} commits no {', '.join(missing)}")
            revealed = {m: {"value": values[m], "salt": salt(rec.nonce, m).hex()} for m in reveal}
    except (ValueError, TypeError, KeyError):  # given as stored, without what is private: the verifier names it
        payload = {k: (str(v) if k == "at" else v) for k, v in row._mapping.items()
                   if k not in ("prev_hash", "hash", "nonce", "user_id", "client")}
    index = seq - cp.first_seq
    return {"format": FORMAT, "seq": seq, "record": payload, "revealed": revealed, "prev_hash": row.prev_hash,
            "hash": row.hash, "leaf_index": index, "tree_size": cp.count, "audit_path": audit_path(hashes, index),
            "checkpoint": asdict(cp)}
