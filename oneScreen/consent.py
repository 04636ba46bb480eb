"""Consent records: the subject agreed that a task may see consent-gated fields, or an exception applies.

The Electronic Government Act lets a task see such fields once the subject
consented (method: written, electronic, oral) or an exception applies
(EMERGENCY, DUTY_IMPOSITION, INVESTIGATION), which defers the notice to the
subject instead. Subjects are stored as keyed pseudonyms, never raw keys.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .errors import BadRequest, OneScreenError

METHODS = ("written", "electronic", "oral")
EXCEPTIONS = ("EMERGENCY", "DUTY_IMPOSITION", "INVESTIGATION")

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
    sa.Index("ix_onescreen_consent_task_subject", "task", "subject"),
)


class ConsentUnavailable(OneScreenError):
    code = "CONSENT_STORE_UNAVAILABLE"


@dataclass(frozen=True)
class Consent:
    task: str
    case_ref: str
    method: str
    exception: str | None
    notice_deferred: bool
    recorded_by: str
    at: datetime


def validate(method: str, exception: str | None) -> None:
    if exception is not None and exception not in EXCEPTIONS:
        raise BadRequest(f"exception must be one of {', '.join(EXCEPTIONS)}")
    if exception is None and method not in METHODS:
        raise BadRequest(f"method must be one of {', '.join(METHODS)} (or give an exception code)")


class ConsentStore:
    def __init__(self, url: str) -> None:
        self.engine: AsyncEngine = create_async_engine(url)

    async def open(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(_meta.create_all)

    async def record(self, *, task: str, subject: str, case_ref: str, method: str, exception: str | None,
                     recorded_by: str, organisation: str) -> Consent:
        validate(method, exception)
        at = datetime.now(timezone.utc)
        row = dict(task=task, subject=subject, case_ref=case_ref, method=method if exception is None else "exception",
                   exception=exception, notice_deferred=exception is not None, recorded_by=recorded_by,
                   organisation=organisation, at=at.isoformat())
        try:
            async with self.engine.begin() as conn:
                await conn.execute(consents.insert().values(**row))
        except sa.exc.SQLAlchemyError:
            raise ConsentUnavailable("the consent could not be stored; try again") from None
        return Consent(task, case_ref, row["method"], exception, exception is not None, recorded_by, at)

    async def has(self, task: str, subject: str) -> bool:
        try:
            async with self.engine.connect() as conn:
                found = await conn.scalar(sa.select(consents.c.id).where(
                    consents.c.task == task, consents.c.subject == subject).limit(1))
        except sa.exc.SQLAlchemyError:
            raise ConsentUnavailable("the consent records cannot be read; consent-gated fields stay closed") from None
        return found is not None

    async def close(self) -> None:
        await self.engine.dispose()
