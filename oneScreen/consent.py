"""Consent records: the subject agreed that a task may see consent-gated fields, or an exception applies.

The Electronic Government Act lets a task see such fields once the subject
consented (method: written, electronic, oral) or an exception applies
(EMERGENCY, DUTY_IMPOSITION, INVESTIGATION), which defers the notice to the
subject instead. Subjects are stored as keyed pseudonyms, never raw keys.

Owns the binding of a consent to its case: a record opens the consent-gated fields of one task, one subject
AND one case reference, on the days of its validity (`consent_valid_days` of the task; the caseworkers' day,
KST). Another case of the same subject sees nothing of it until someone reuses it for that case, an explicit
act that makes a record of its own (`reused_from`, the validity of the original) and is audited.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .audit.events import AuditSchemaError
from .errors import BadRequest, OneScreenError

METHODS = ("written", "electronic", "oral")
EXCEPTIONS = ("EMERGENCY", "DUTY_IMPOSITION", "INVESTIGATION")
KST = timezone(timedelta(hours=9), "KST")  # the caseworkers' day decides validity (Korea has no DST)
INIT = "onescreen audit init"

_meta = sa.MetaData()
consents = sa.Table(
    "onescreen_consent", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("task", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(64), nullable=False),
    sa.Column("case_ref", sa.String(64), nullable=False),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("exception", sa.String(32)),
    sa.Column("notice_deferred", sa.Boolean, nullable=False),
    sa.Column("recorded_by", sa.String(128), nullable=False),
    sa.Column("organisation", sa.String(256), nullable=False),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("valid_until", sa.String(10)),  # last day (KST, YYYY-MM-DD) it opens fields; NULL: no end
    sa.Column("reused_from", sa.Integer),  # the consent this record reuses for another case; NULL: recorded anew
    sa.Index("ix_onescreen_consent_task_subject", "task", "subject"),
)
# columns added after the table's first version: (name, SQL type), put in by `add_missing_columns`
ADDED = (("valid_until", "VARCHAR(10)"), ("reused_from", "INTEGER"))


class ConsentUnavailable(OneScreenError):
    code = "CONSENT_STORE_UNAVAILABLE"


class ConsentSchemaError(AuditSchemaError):
    """The consent table (at the audit store's address) is of an older shape and this database role may not
    bring it up to date: like an audit store of another schema version, the service must not start."""


@dataclass(frozen=True)
class Consent:
    task: str
    case_ref: str
    method: str
    exception: str | None
    notice_deferred: bool
    recorded_by: str
    at: datetime
    id: int | None = None
    valid_until: date | None = None
    reused_from: int | None = None
    organisation: str = ""


def validate(method: str, exception: str | None) -> None:
    if exception is not None and exception not in EXCEPTIONS:
        raise BadRequest(f"exception must be one of {', '.join(EXCEPTIONS)}")
    if exception is None and method not in METHODS:
        raise BadRequest(f"method must be one of {', '.join(METHODS)} (or give an exception code)")


def today(now: datetime) -> date:
    """The caseworkers' day of an instant: validity is counted in days of Korea."""
    return now.astimezone(KST).date()


def add_missing_columns(conn: sa.Connection) -> list[str]:
    """ALTER a consent table made by an older version to this one's columns; the columns added. Run at the
    store's open and by `onescreen audit init` (the owner role), on SQLite and PostgreSQL alike."""
    have = {c["name"] for c in sa.inspect(conn).get_columns(consents.name)}
    added = []
    for name, sql_type in ADDED:
        if name not in have:
            conn.execute(sa.text(f"ALTER TABLE {consents.name} ADD COLUMN {name} {sql_type}"))
            added.append(name)
    return added


_meta.info["upgrade"] = add_missing_columns  # audit/schema.py runs it after creating the companion tables


def _consent(row: sa.RowMapping) -> Consent:
    return Consent(row["task"], row["case_ref"], row["method"], row["exception"], bool(row["notice_deferred"]),
                   row["recorded_by"], datetime.fromisoformat(row["at"]), row["id"],
                   date.fromisoformat(row["valid_until"]) if row["valid_until"] else None, row["reused_from"],
                   row["organisation"])


class ConsentStore:
    def __init__(self, url: str, clock: Callable[[], datetime] | None = None) -> None:
        self.engine: AsyncEngine = create_async_engine(url)
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    async def open(self) -> None:
        """Create the table if missing (the demo's SQLite), and add the columns an older version's table lacks.
        ConsentSchemaError when they are missing and this role may not add them: the owner must run INIT."""
        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(_meta.create_all)
                await conn.run_sync(add_missing_columns)
        except sa.exc.ProgrammingError:  # PostgreSQL: permission denied, must be owner of the table
            raise ConsentSchemaError(
                f"the consent records ({consents.name}) lack the columns {', '.join(n for n, _ in ADDED)} that "
                f"bind a consent to its case and validity, and this database role may not add them: the owner "
                f"role must run `{INIT}`") from None

    async def record(self, *, task: str, subject: str, case_ref: str, method: str, exception: str | None,
                     recorded_by: str, organisation: str, valid_days: int | None = None,
                     reused: Consent | None = None) -> Consent:
        """Store a consent for (task, subject, case_ref). `valid_days`: it opens fields for that many days,
        counting the day it is recorded (KST); None: no end. `reused`: the consent this one reuses (its method
        and exception, and its validity: a reuse never extends it)."""
        validate(method, exception)
        at = self.clock()
        if reused is not None:
            until = reused.valid_until
        else:
            until = None if valid_days is None else today(at) + timedelta(days=valid_days - 1)
        row = dict(task=task, subject=subject, case_ref=case_ref, method=method if exception is None else "exception",
                   exception=exception, notice_deferred=exception is not None, recorded_by=recorded_by,
                   organisation=organisation, at=at.isoformat(),
                   valid_until=None if until is None else until.isoformat(),
                   reused_from=None if reused is None else reused.id)
        try:
            async with self.engine.begin() as conn:
                result = await conn.execute(consents.insert().values(**row))
                cid = result.inserted_primary_key[0]
        except sa.exc.SQLAlchemyError:
            raise ConsentUnavailable("the consent could not be stored; try again") from None
        return Consent(task, case_ref, row["method"], exception, exception is not None, recorded_by, at, cid, until,
                       row["reused_from"], organisation)

    def _valid(self) -> sa.ColumnElement[bool]:
        day = today(self.clock()).isoformat()
        return sa.or_(consents.c.valid_until.is_(None), consents.c.valid_until >= day)

    async def _select(self, where: list, what: str) -> list[Consent]:
        try:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(sa.select(consents).where(*where, self._valid())
                                           .order_by(consents.c.id.desc()).limit(20))).mappings().all()
        except sa.exc.SQLAlchemyError:
            raise ConsentUnavailable(f"the consent records cannot be read; {what}") from None
        return [_consent(r) for r in rows]

    async def find(self, task: str, subject: str, case_ref: str) -> Consent | None:
        """The consent in force for the task, the subject AND the case today (the latest one recorded), or None."""
        found = await self._select([consents.c.task == task, consents.c.subject == subject,
                                    consents.c.case_ref == case_ref], "consent-gated fields stay closed")
        return found[0] if found else None

    async def has(self, task: str, subject: str, case_ref: str) -> bool:
        return await self.find(task, subject, case_ref) is not None

    async def reusable(self, task: str, subject: str, case_ref: str) -> list[Consent]:
        """Consents of the same task and subject for OTHER cases, valid today: what may be reused for `case_ref`
        (the latest per case, newest first)."""
        found = await self._select([consents.c.task == task, consents.c.subject == subject,
                                    consents.c.case_ref != case_ref], "no consent can be offered for reuse")
        latest: dict[str, Consent] = {}
        for c in found:
            latest.setdefault(c.case_ref, c)
        return list(latest.values())

    async def close(self) -> None:
        await self.engine.dispose()
