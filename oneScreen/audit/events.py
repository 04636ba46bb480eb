"""What one audit record holds: who was shown which fields of which subject, for which task, and why.

Owns the privacy half of invariant 7: a record holds ids and decisions, never a field value, and its
subject is a keyed pseudonym (`pseudonymise`), never the raw key; `check` refuses anything else before
an event joins a batch.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from ..errors import OneScreenError

# "undelivered": written by the store itself, naming records whose requests were refused (see writer.py);
# "release": an auditor released the sealed receipt of a deferred task's disclosure early (receipts.py)
KINDS = ("disclosure", "consent", "config_change", "search", "security", "undelivered", "release")
_PSEUDONYM = re.compile(r"[0-9a-f]{64}")


class AuditUnavailable(OneScreenError):
    """The audit trail cannot be written (or read): the request must fail, and nothing is disclosed.

    ``reason`` is one of REASONS, for logs and metrics (a bounded label set); the message never holds
    SQL, a DSN or anything of the event.
    """

    code = "AUDIT_UNAVAILABLE"
    WRITE = "the audit trail cannot be written; nothing was disclosed"
    READ = "the audit trail cannot be read"
    # deadline: not committed within the audit timeout; connection: the store cannot be reached or the
    # connection broke; refused: the store answered with an error; closed: the store is shutting down;
    # schema: no store, or one of another schema version, at the address
    REASONS = ("deadline", "connection", "refused", "closed", "schema")

    def __init__(self, message: str = WRITE, *, reason: str = "refused") -> None:
        super().__init__(message)
        self.reason = reason if reason in self.REASONS else "refused"


class AuditSchemaError(AuditUnavailable):
    """No audit store at the address, or one of another schema version: the service must not start.

    The message says which command (`onescreen audit init` or `migrate`) the owner role must run."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="schema")


@dataclass(frozen=True)
class FieldDecision:
    id: str  # catalog id, e.g. "citizen.rrn"
    status: str  # e.g. "OK", "MASKED", "DENIED", "UNAVAILABLE"


@dataclass(frozen=True)
class AuditEvent:
    """What was disclosed to whom, for which task: ids and decisions, never field values."""

    kind: str  # one of KINDS
    request_id: str
    user: str
    organisation: str
    role: str  # the caller's role that grants the task
    task: str
    legal_basis: str
    case_ref: str
    subject_type: str
    subject: str  # a pseudonym from pseudonymise() (64 hex digits), never the raw key; "" when none
    fields: tuple[FieldDecision, ...]
    ledgers: tuple[str, ...]
    client: str  # client address
    detail: Mapping[str, Any] = field(default_factory=dict)  # e.g. config diff, consent method; never values
    at: datetime | None = None  # set by the store (UTC) when None
    # the event's place among its request's events (0, 1, ...): set by the store from its place in
    # `append_many`; (request_id, request_index) is unique in the trail. None only in records written
    # before schema version 2.
    request_index: int | None = None
    # the officer's name as their sign-in gave it ("" when it gave none): a private member of the record (format 3,
    # chain.py), hidden in a citizen's proof like the user id; None in events that name no officer's name (and
    # in records before schema version 4, which kept it in `detail`, in clear)
    user_name: str | None = None

    def __post_init__(self) -> None:
        if type(self.fields) is not tuple or any(type(f) is not FieldDecision for f in self.fields):
            fields = tuple(f if isinstance(f, FieldDecision) else FieldDecision(*f) for f in self.fields)
            object.__setattr__(self, "fields", fields)
        if type(self.ledgers) is not tuple:
            object.__setattr__(self, "ledgers", tuple(self.ledgers))

    def stamped(self, at: datetime, request_index: int | None) -> "AuditEvent":
        """This event with `at` and `request_index` set: `dataclasses.replace` without converting its parts again."""
        event = object.__new__(AuditEvent)
        event.__dict__.update(self.__dict__, at=at, request_index=request_index)
        return event


@dataclass(frozen=True)
class StoredRecord:
    seq: int
    at: datetime
    event: AuditEvent  # with event.at == at
    prev_hash: str
    hash: str
    nonce: bytes | None = None  # the record's 32 random bytes (chain.py, format 2); None in records written before


def pseudonymise(key: bytes, subject_type: str, subject: str) -> str:
    """The pseudonym the audit trail stores for a subject: HMAC-SHA256 (hex) of "type:key".

    `key` is a secret from the environment (32 random bytes); without it a pseudonym
    cannot be linked back to a resident registration number by enumeration.
    """
    if len(key) < 16:
        raise ValueError("the pseudonymisation key must be at least 16 bytes (use 32 random bytes)")
    return hmac.new(key, f"{subject_type}:{subject}".encode("utf-8"), hashlib.sha256).hexdigest()


_TEXT_ATTRS = ("kind", "request_id", "user", "organisation", "role", "task", "legal_basis", "case_ref",
               "subject_type", "subject", "client")


def check(e: AuditEvent) -> None:
    """Refuse an event the store could not write or must not hold, before it joins a batch.

    Messages name the attribute, never its content.
    """
    if not isinstance(e, AuditEvent):
        raise TypeError("append takes AuditEvent objects")
    if e.kind not in KINDS:
        raise ValueError(f"audit event kind must be one of {', '.join(KINDS)}")
    values = [getattr(e, a) for a in _TEXT_ATTRS]
    for f in e.fields:
        values += (f.id, f.status)
    values += e.ledgers
    try:  # all at once (the common case: all good), then one by one to name the bad attribute
        joined = "".join(values)
        good = "\x00" not in joined and _utf8(joined)
    except TypeError:
        good = False
    if not good:
        texts = [(a, getattr(e, a)) for a in _TEXT_ATTRS]
        texts += [("fields", x) for f in e.fields for x in (f.id, f.status)]
        texts += [("ledgers", x) for x in e.ledgers]
        for name, value in texts:
            if not isinstance(value, str) or "\x00" in value or not _utf8(value):
                raise ValueError(f"audit event {name} must be UTF-8 text without NUL characters")
    if not e.request_id:
        raise ValueError("audit event request_id must not be empty (it makes an append idempotent)")
    if e.subject and not _PSEUDONYM.fullmatch(e.subject):
        raise ValueError("audit event subject must be a pseudonym (pseudonymise()), never a raw key")
    if e.kind in ("disclosure", "consent") and not e.subject:
        raise ValueError(f"a {e.kind} audit event needs a subject pseudonym")
    if e.at is not None and not isinstance(e.at, datetime):
        raise ValueError("audit event at must be a datetime or None")
    if not isinstance(e.detail, Mapping):
        raise ValueError("audit event detail must be a mapping")
    try:
        if e.detail:
            json.dumps(dict(e.detail), ensure_ascii=False, sort_keys=True, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError):
        raise ValueError("audit event detail is not JSON-serialisable UTF-8") from None


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True
