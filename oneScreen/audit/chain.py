"""The hash chain and the Merkle tree: how a record's hash and a checkpoint's root are computed.

Owns the tamper-evident half of invariant 7. `encode` is the ONE encoding of a record's hash input,
used to write and to verify; ``hash = sha256(prev_hash + encode(record))``. Pure functions only.

The hash input of record ``seq`` is the canonical JSON of its `export` line without ``prev_hash`` and
``hash``: ``json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` as UTF-8,
with ``at`` in UTC ISO 8601 with microseconds; the first record's ``prev_hash`` is 64 zeros. So an
export can be checked without this code (tests/test_audit.py's `recompute` does it as an outside auditor
would). Three record formats live in one trail, told apart by their keys:

- before schema version 2: no ``request_index`` key;
- schema version 2: ``request_index``, and the PRIVATE members (``user``, ``client``) in clear;
- format 2 (schema version 3): ``"format": 2``, no ``user`` or ``client`` key,
  and ``"commitments": {member: hex}`` holding for each private member ``sha256(salt_m || canonical(value))``
  with ``salt_m = HMAC-SHA256(nonce, member name as UTF-8)``; ``nonce`` is 32 random bytes per record, in
  the row's ``nonce`` column (hex) and in the export, never in a citizen's proof. A proof (proof.py) can so
  show a record's public members and hide the officer's id and address behind their commitments, and still
  let its holder recompute the record hash. An export line adds ``nonce`` and ``private`` (the private
  members' values) to the hash input: the auditor recomputes each commitment from them, then the hash from
  the hash input alone. (A disclosure's ``detail`` still held the officer's name, ``user_name``, in clear.)
- format 3 (schema version 4, every record that names an officer's name): as format 2 with ``"format": 3``
  and a third private member, ``user_name`` (the row's ``user_name`` column; not in ``detail``), so a
  citizen's proof shows neither who looked nor their name. Records that name no officer's name (a
  configuration change, a release: ``user_name`` NULL) stay of format 2.

Merkle tree (RFC 6962 / RFC 9162 section 2.1): leaf = sha256(0x00 || record hash), node =
sha256(0x01 || left || right); a tree of n > 1 leaves splits at the largest power of two below n.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timezone
from typing import Any, NamedTuple, Sequence

import orjson

from .events import AuditEvent

GENESIS = "0" * 64
COMMITTED = 2  # the "format" of records whose private members are committed, not in clear
NAMED = 3  # the "format" of those that also commit the officer's name
PRIVATE = ("client", "user", "user_name")  # the members a citizen's proof hides: the officer's address, id, name


def canonical(obj: Any) -> str:
    """The canonical JSON text the chain documents (free-form parts: `detail`, checkpoint bodies)."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def utc(at: datetime) -> datetime:
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


def iso(at: datetime) -> str:
    return utc(at).isoformat(timespec="microseconds")


class Parts(NamedTuple):
    """The JSON of an event's structured attributes, as stored in their columns and embedded in its hash input."""

    fields: bytes  # [{"id": ..., "status": ...}, ...]
    ledgers: bytes  # [...]
    detail: bytes  # {...}, canonical


def parts(e: AuditEvent) -> Parts:
    # FieldDecision dataclasses serialise as {"id", "status"} in that (sorted) order; every attribute but
    # `detail` is text (checked by events.check), for which orjson's output is byte for byte `canonical`'s
    # (pinned by a property test); `detail` is free-form, so it keeps `canonical`.
    return Parts(orjson.dumps(e.fields), orjson.dumps(e.ledgers),
                 canonical(dict(e.detail)).encode("utf-8") if e.detail else b"{}")


def salt(nonce: bytes, member: str) -> bytes:
    """The salt of one private member of a record: HMAC-SHA256(nonce, member name)."""
    return hmac.digest(nonce, member.encode("utf-8"), "sha256")


def commitment(member_salt: bytes, value: Any) -> str:
    """sha256(salt || canonical JSON of the value), hex: what the hash input holds instead of a private value."""
    return hashlib.sha256(member_salt + orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def private(e: AuditEvent) -> dict[str, Any]:
    """The values of an event's private members, by name (`user_name` only in a record of format 3)."""
    if e.user_name is None:
        return {"client": e.client, "user": e.user}
    return {"client": e.client, "user": e.user, "user_name": e.user_name}


def encode(seq: int, at: datetime, e: AuditEvent, p: Parts | None = None, nonce: bytes | None = None) -> bytes:
    """The hash input of record `seq` (after its prev_hash): the canonical JSON of its payload.

    `p` is `parts(e)` when the caller has it already (the writer stores the same JSON in the row). With a
    `nonce` (format 2) the private members are committed; without (records written before), in clear."""
    p = p or parts(e)
    payload = {"seq": seq, "at": iso(at), "kind": e.kind, "request_id": e.request_id,
               "organisation": e.organisation, "role": e.role, "task": e.task, "legal_basis": e.legal_basis,
               "case_ref": e.case_ref, "subject_type": e.subject_type, "subject": e.subject,
               "fields": orjson.Fragment(p.fields), "ledgers": orjson.Fragment(p.ledgers),
               "detail": orjson.Fragment(p.detail)}
    if nonce is None:
        payload["user"], payload["client"] = e.user, e.client
    else:
        payload["format"] = COMMITTED if e.user_name is None else NAMED
        payload["commitments"] = {m: commitment(salt(nonce, m), v) for m, v in private(e).items()}
    if e.request_index is not None:
        payload["request_index"] = e.request_index
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def link(prev_hash: str, encoded: bytes) -> str:
    """A record's hash: sha256 of its predecessor's hash (hex text) followed by its hash input."""
    return hashlib.sha256(prev_hash.encode("utf-8") + encoded).hexdigest()


# ---------------------------------------------------------------- Merkle tree (RFC 6962)
def _leaf(record_hash: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(record_hash)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(record_hashes: Sequence[str]) -> str:
    """The RFC 6962 tree hash over the given record hashes (in seq order), hex.

    Level by level, an unpaired last node moves up unchanged: the same tree as RFC 6962's split at the
    largest power of two below n."""
    if not record_hashes:
        return hashlib.sha256(b"").hexdigest()
    level = [_leaf(h) for h in record_hashes]
    while len(level) > 1:
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0].hex()


def audit_path(record_hashes: Sequence[str], index: int) -> list[str]:
    """The audit path (RFC 9162 2.1.3) of leaf `index`: the sibling hashes, from the leaf up, hex."""
    if not 0 <= index < len(record_hashes):
        raise IndexError("the record is not under this checkpoint")
    path, level = [], [_leaf(h) for h in record_hashes]
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling].hex())
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level, index = paired, index // 2
    return path


def verify_path(record_hash: str, index: int, size: int, path: Sequence[str], root: str) -> bool:
    """Whether `path` proves that `record_hash` is leaf `index` of the tree of `size` leaves with `root`
    (RFC 9162 2.1.3.2)."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, _leaf(record_hash)
    for p in path:
        sibling = bytes.fromhex(p)
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(sibling, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r.hex() == root
