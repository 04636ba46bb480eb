"""The audit store, its checkpoint key and its witness, as the settings describe them (service and CLI).

Owns invariant 9 for the checkpoint key: it comes from the environment (ONESCREEN_AUDIT_SIGNING_KEY) or
a key file, never from the database or a file in the repository; production refuses to start without it
and without a witness directory.
"""
from __future__ import annotations

from typing import Mapping

from sqlalchemy.engine import make_url

from ..settings import Settings
from .checkpoints import KeyRing, Signer, Witness, load_signer
from .store import AuditStore, Checkpointing


def signer(settings: Settings, env: Mapping[str, str]) -> Signer | None:
    return load_signer(secret_hex=env.get("ONESCREEN_AUDIT_SIGNING_KEY"), key_file=settings.audit_signing_key_file,
                       demo_dir=settings.data_dir if settings.demo else None)


def checkpointing(settings: Settings, env: Mapping[str, str]) -> Checkpointing:
    key = signer(settings, env)
    if key is None:
        raise ValueError("production mode needs ONESCREEN_AUDIT_SIGNING_KEY (64 hex digits, an Ed25519 seed) or "
                         "ONESCREEN_AUDIT_SIGNING_KEY_FILE to sign the audit trail's checkpoints")
    if settings.audit_witness_dir is None:
        raise ValueError("production mode needs ONESCREEN_AUDIT_WITNESS_DIR: an append-only directory, outside "
                         "the database's reach, that keeps a copy of every audit checkpoint")
    return Checkpointing(key, settings.audit_witness_dir, settings.audit_checkpoint_records,
                         settings.audit_checkpoint_seconds)


def service_store(settings: Settings, env: Mapping[str, str]) -> AuditStore:
    """The service's store: creates itself only as the demo's SQLite file; seals signed checkpoints."""
    sqlite = make_url(settings.audit_url).get_backend_name() == "sqlite"
    return AuditStore(settings.audit_url, timeout=settings.audit_timeout, create=settings.demo and sqlite,
                      checkpointing=checkpointing(settings, env))


def admin_store(settings: Settings) -> AuditStore:
    """The CLI's store (init, migrate, verify, export, checkpoints): never creates, never seals."""
    return AuditStore(settings.audit_url, timeout=settings.audit_timeout)


def key_ring(settings: Settings, env: Mapping[str, str]) -> KeyRing:
    """The public keys checkpoints are checked with: ONESCREEN_AUDIT_VERIFY_KEYS and the signing key's own."""
    own = signer(settings, env)
    also = [own.public_key] if own else []
    if settings.audit_verify_keys is not None:
        return KeyRing.from_pem_file(settings.audit_verify_keys, also)
    return KeyRing(also)


def witness(settings: Settings, table: str = "onescreen_audit") -> Witness | None:
    return Witness(settings.audit_witness_dir, table) if settings.audit_witness_dir else None
