"""The audit trail: an append-only, hash-chained, checkpoint-signed record of every disclosure.

Owns invariant 7: every disclosure is recorded durably, exactly once, before its response; if it cannot
be, the request fails (`AuditUnavailable`) and nothing is disclosed. The modules, one idea each:

- events.py       what a record holds (ids and decisions, never a value); the errors
- chain.py        the ONE encoding of a record's hash input; the RFC 6962 Merkle tree (roots, audit paths)
- schema.py       the tables, the schema version, the owner's `init` and `migrate`
- writer.py       group commit, the deadline, the one append path, exactly once, "undelivered" records
- sqlite.py       the demo's file store: fsync, BEGIN IMMEDIATE, a replaced file
- postgres.py     functions, triggers, the service role's grants, the writer's connection
- checkpoints.py  signed checkpoints: keys, the witness directory, the sealer
- store.py        AuditStore: life cycle, appends, readiness probe, reads
- verify.py       verify (chain, checkpoints, duplicates) and export
- setup.py        AuditStore, keys and witness from the settings (service and CLI)
"""
from __future__ import annotations

from typing import IO

from .chain import GENESIS, audit_path, merkle_root, verify_path
from .checkpoints import Checkpoint, KeyRing, Signer, Witness
from .events import KINDS, AuditEvent, AuditSchemaError, AuditUnavailable, FieldDecision, StoredRecord, pseudonymise
from .schema import SCHEMA_VERSION
from .store import AuditStore, Checkpointing
from .verify import VerifyResult, export, summary, unavailable, verify

__all__ = ["GENESIS", "KINDS", "SCHEMA_VERSION", "AuditEvent", "AuditSchemaError", "AuditStore", "AuditUnavailable",
           "Checkpoint", "Checkpointing", "FieldDecision", "KeyRing", "Signer", "StoredRecord", "VerifyResult",
           "Witness", "audit_path", "export", "export_url", "merkle_root", "pseudonymise", "verify", "verify_path",
           "verify_url"]


async def verify_url(url: str, *, table: str = "onescreen_audit", keys: KeyRing | None = None,
                     witness: Witness | None = None, from_number: int | None = None) -> tuple[int, str]:
    """`onescreen audit verify`: (exit code, message). 0 when the trail holds, 1 otherwise."""
    try:
        store = AuditStore(url, table=table)
    except ValueError as exc:
        return 1, f"audit trail not checked: {exc}"
    try:
        await store.open()
        result = await verify(store, keys=keys, witness=witness, from_number=from_number)
    except AuditUnavailable as exc:
        return unavailable(exc)
    finally:
        await store.close()
    return summary(result)


async def export_url(url: str, out: IO[str], *, table: str = "onescreen_audit") -> int:
    """`onescreen audit export`: every record as JSON lines, oldest first; returns the count."""
    store = AuditStore(url, table=table)
    try:
        await store.open()
        return await export(store, out)
    finally:
        await store.close()
