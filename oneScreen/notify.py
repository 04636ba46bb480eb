"""Receipts pushed by e-mail, opt-in: a citizen's subscription, the outbox filled in the audit record's own
transaction, and the delivery worker (`onescreen notify run`, or in the service with ONESCREEN_NOTIFY_IN_PROCESS).

Owns the push's share of invariant 7: an outbox row is written by a trigger on the audit trail, so it commits in
the SAME transaction as its disclosure record, whichever append path wrote it (the writer's one append path is
unchanged); a deferred task's row waits for its day, or for the `release` record that opens it (the same trigger).
Delivery is at least once with an idempotency key: a batch's Message-ID is fixed in the outbox BEFORE it is
sent, so a worker that stops between the send and its "sent" mark sends the same mail, with the same Message-ID,
again (the mailbox drops the copy); retries back off, a mail that keeps failing goes to the dead state.
A mail names fields and their fate (shown, masked, denied, ...), never a value (receipts.py makes it).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .errors import BadRequest, OneScreenError

if TYPE_CHECKING:
    from .audit import AuditStore
    from .disclose import Door
    from .metrics import Metrics

log = logging.getLogger("onescreen.notify")

AUDIT_TABLE = "onescreen_audit"  # the trail the trigger watches (the service's table name)
INIT = "onescreen audit init"
MODES = ("IMMEDIATE", "DAILY")
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
PENDING, SENT, DEAD = "pending", "sent", "dead"

_meta = sa.MetaData()
subscriptions = sa.Table(
    "onescreen_receipt_subscription", _meta,
    sa.Column("subject", sa.Text, primary_key=True),  # the citizen's pseudonym, as in the trail
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("mode", sa.Text, nullable=False),  # IMMEDIATE or DAILY
    sa.Column("at", sa.Text, nullable=False),
)
outbox = sa.Table(
    "onescreen_receipt_outbox", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("seq", sa.BigInteger, nullable=False),  # the disclosure record
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("day", sa.Text, nullable=False),  # the record's UTC day (a daily digest collects a day's receipts)
    sa.Column("not_before", sa.Text),  # sealed until this day (deferred disclosure); NULL: due now
    sa.Column("state", sa.Text, nullable=False, server_default=PENDING),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_try", sa.Text),  # UTC ISO time of the next try after a failure
    sa.Column("message_id", sa.Text),  # the idempotency key, fixed before the first send
    sa.Column("last_error", sa.Text),  # the failure's kind (an exception class or SMTP code), never content
    sa.Column("sent_at", sa.Text),
    sa.UniqueConstraint("seq", "subject", name="onescreen_receipt_outbox_seq_key"),
)
sa.Index("onescreen_receipt_outbox_state_idx", outbox.c.state, outbox.c.id)

_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER IF NOT EXISTS {AUDIT_TABLE}_receipt_outbox AFTER INSERT ON {AUDIT_TABLE}
    FOR EACH ROW WHEN NEW.kind = 'disclosure' BEGIN
    INSERT INTO {outbox.name} (seq, subject, email, mode, day, not_before, state, attempts)
    SELECT NEW.seq, s.subject, s.email, s.mode, substr(NEW.at, 1, 10), json_extract(NEW.detail, '$.deferred_until'),
           '{PENDING}', 0 FROM {subscriptions.name} s WHERE s.subject = NEW.subject; END""",
    f"""CREATE TRIGGER IF NOT EXISTS {AUDIT_TABLE}_receipt_release AFTER INSERT ON {AUDIT_TABLE}
    FOR EACH ROW WHEN NEW.kind = 'release' BEGIN
    UPDATE {outbox.name} SET not_before = NULL WHERE seq = json_extract(NEW.detail, '$.released_seq'); END""",
]
_PG_FUNCTION = f"""CREATE OR REPLACE FUNCTION {AUDIT_TABLE}_receipt_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.kind = 'disclosure' THEN
    INSERT INTO {outbox.name} (seq, subject, email, mode, day, not_before, state, attempts)
    SELECT NEW.seq, s.subject, s.email, s.mode, to_char(NEW.at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
           NEW.detail::json ->> 'deferred_until', '{PENDING}', 0
    FROM {subscriptions.name} s WHERE s.subject = NEW.subject;
  ELSIF NEW.kind = 'release' THEN
    UPDATE {outbox.name} SET not_before = NULL WHERE seq = (NEW.detail::json ->> 'released_seq')::bigint;
  END IF;
  RETURN NULL;
END $$"""
_PG_TRIGGER = (f"CREATE TRIGGER {AUDIT_TABLE}_receipt_outbox AFTER INSERT ON {AUDIT_TABLE} "
               f"FOR EACH ROW EXECUTE FUNCTION {AUDIT_TABLE}_receipt_outbox()")


class NotifySchemaError(OneScreenError):
    code = "AUDIT_UNAVAILABLE"


def _has_trigger(sync: Any) -> bool:
    if sync.dialect.name == "sqlite":
        return sync.exec_driver_sql(f"SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND "
                                    f"name = '{AUDIT_TABLE}_receipt_outbox'").first() is not None
    return sync.exec_driver_sql(f"SELECT 1 FROM pg_trigger WHERE tgname = '{AUDIT_TABLE}_receipt_outbox'"
                                ).first() is not None


def install(sync: Any) -> None:
    """The outbox triggers on the trail (audit/schema.py runs it after creating the companion tables; the demo's
    SQLite store runs it on open). Nothing is done where they exist; the trail must exist."""
    if not sa.inspect(sync).has_table(AUDIT_TABLE) or _has_trigger(sync):
        return
    if sync.dialect.name == "sqlite":
        for sql in _SQLITE_TRIGGERS:
            sync.exec_driver_sql(sql)
    else:
        sync.exec_driver_sql(_PG_FUNCTION)
        sync.exec_driver_sql(_PG_TRIGGER)


_meta.info["upgrade"] = install


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Subscription:
    email: str
    mode: str


@dataclass(frozen=True)
class Mail:
    """One mail to send: its idempotency key (Message-ID), address, and the outbox rows (id, seq) it carries."""

    message_id: str
    email: str
    mode: str
    rows: tuple[tuple[int, int], ...]
    attempts: int


class Outbox:
    """The subscriptions and the outbox in the audit database (the audit store's URL)."""

    def __init__(self, url: str, *, clock: Callable[[], datetime] | None = None, domain: str = "onescreen.invalid"
                 ) -> None:
        self.engine: AsyncEngine = create_async_engine(url)
        self.clock = clock or _now
        self.domain = domain
        self.ready = False  # open() found or made the tables and the trigger

    async def open(self) -> None:
        """Create the tables and triggers where missing (the demo's SQLite file); a PostgreSQL store gets them
        from its owner (`onescreen audit init`): NotifySchemaError when they are missing and cannot be made."""
        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(_meta.create_all)
                await conn.run_sync(install)
            self.ready = True
        except sa.exc.ProgrammingError:
            raise NotifySchemaError(f"the receipt outbox ({outbox.name}) or its trigger on the audit trail is "
                                    f"missing and this database role may not create it: the owner role must run "
                                    f"`{INIT}`") from None

    async def close(self) -> None:
        await self.engine.dispose()

    # ------------------------------------------------------------ subscriptions
    async def subscribe(self, subject: str, email: str, mode: str) -> Subscription:
        async with self.engine.begin() as conn:
            await conn.execute(subscriptions.delete().where(subscriptions.c.subject == subject))
            await conn.execute(subscriptions.insert().values(subject=subject, email=email, mode=mode,
                                                             at=self.clock().isoformat()))
        return Subscription(email, mode)

    async def unsubscribe(self, subject: str) -> bool:
        async with self.engine.begin() as conn:
            done = await conn.execute(subscriptions.delete().where(subscriptions.c.subject == subject))
            # what is queued and not sent yet goes no more
            await conn.execute(outbox.update().where(outbox.c.subject == subject, outbox.c.state == PENDING,
                                                     outbox.c.message_id.is_(None)).values(state="cancelled"))
        return bool(done.rowcount)

    async def subscription(self, subject: str) -> Subscription | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(subscriptions.c.email, subscriptions.c.mode)
                                      .where(subscriptions.c.subject == subject))).first()
        return None if row is None else Subscription(row.email, row.mode)

    # ------------------------------------------------------------ the worker's side
    async def claim(self, limit: int = 100) -> None:
        """Fix the Message-ID (idempotency key) of what is due and has none: a mail per row (IMMEDIATE), or one
        digest per address of every due row of the days before today (DAILY)."""
        now = self.clock()
        today = now.date().isoformat()
        o = outbox.c
        due = sa.and_(o.state == PENDING, o.message_id.is_(None),
                      sa.or_(o.not_before.is_(None), o.not_before <= today))
        async with self.engine.begin() as conn:
            rows = (await conn.execute(sa.select(o.id, o.seq, o.subject, o.mode, o.day).where(due)
                                       .order_by(o.id).limit(limit))).all()
            digests: dict[str, list[int]] = {}
            for r in rows:
                if r.mode == "DAILY":
                    if r.day < today:  # a digest per address of the days gone by
                        digests.setdefault(r.subject, []).append(r.id)
                    continue
                await conn.execute(outbox.update().where(o.id == r.id, o.message_id.is_(None))
                                   .values(message_id=f"<receipt.{r.seq}.{r.id}@{self.domain}>"))
            for subject, ids in digests.items():
                tag = hashlib.sha256(subject.encode()).hexdigest()[:12]
                await conn.execute(outbox.update().where(o.id.in_(ids), o.message_id.is_(None))
                                   .values(message_id=f"<digest.{today}.{min(ids)}.{tag}@{self.domain}>"))

    async def mails(self, limit: int = 100) -> list[Mail]:
        """The mails with a fixed Message-ID still to send (their next try has come), oldest first."""
        now = self.clock().isoformat()
        o = outbox.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                sa.select(o.id, o.seq, o.email, o.mode, o.message_id, o.attempts)
                .where(o.state == PENDING, o.message_id.is_not(None),
                       sa.or_(o.next_try.is_(None), o.next_try <= now)).order_by(o.id).limit(limit))).all()
        out: dict[str, Mail] = {}
        for r in rows:
            m = out.get(r.message_id)
            out[r.message_id] = Mail(r.message_id, r.email, r.mode, (m.rows if m else ()) + ((r.id, r.seq),),
                                     max(r.attempts, m.attempts if m else 0))
        return list(out.values())

    async def sent(self, mail: Mail) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(outbox.update().where(outbox.c.message_id == mail.message_id, outbox.c.state == PENDING)
                               .values(state=SENT, sent_at=self.clock().isoformat(), last_error=None))

    async def failed(self, mail: Mail, reason: str, *, retry_in: float | None) -> None:
        """A failed try: `retry_in` seconds to the next one, or None: dead (given up; kept for an operator)."""
        values: dict[str, Any] = {"attempts": mail.attempts + 1, "last_error": reason[:100]}
        if retry_in is None:
            values["state"] = DEAD
        else:
            values["next_try"] = (self.clock() + timedelta(seconds=retry_in)).isoformat()
        async with self.engine.begin() as conn:
            await conn.execute(outbox.update().where(outbox.c.message_id == mail.message_id,
                                                     outbox.c.state == PENDING).values(**values))

    async def states(self) -> dict[str, int]:
        """How many outbox rows are in each state (for `onescreen notify run` and tests)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(outbox.c.state, sa.func.count()).group_by(outbox.c.state))).all()
        return {r[0]: r[1] for r in rows}


# ---------------------------------------------------------------- rendering and delivery
@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None  # from the environment only
    starttls: bool = False
    timeout: float = 10.0


class Deliverer:
    """Sends what the outbox holds: claim Message-IDs, send each mail, mark it; a failure backs off
    (`backoff` seconds, doubling per attempt) and after `max_attempts` (or a permanent 5xx answer) goes dead."""

    def __init__(self, box: Outbox, store: "AuditStore", smtp: Smtp, render: Callable[[Any], Any], *,
                 max_attempts: int = 8, backoff: float = 30.0, metrics: "Metrics | None" = None) -> None:
        self.box, self.store, self.smtp, self.render = box, store, smtp, render
        self.max_attempts, self.backoff, self.metrics = max_attempts, backoff, metrics
        self.counts = {"sent": 0, "retry": 0, "dead": 0}

    def _count(self, outcome: str) -> None:
        self.counts[outcome] += 1
        if self.metrics is not None:
            self.metrics.bound(self.metrics.receipt_mails, outcome).inc()

    async def run_once(self, limit: int = 100) -> int:
        """One batch; returns the mails sent."""
        await self.box.claim(limit)
        sent = 0
        for mail in await self.box.mails(limit):
            try:
                message = await self._message(mail)
                await self._send(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure of one mail is that mail's, never the batch's
                code = getattr(exc, "code", None)
                permanent = isinstance(code, int) and 500 <= code < 600
                reason = f"{type(exc).__name__}{f' {code}' if code else ''}"
                dead = permanent or mail.attempts + 1 >= self.max_attempts
                await self.box.failed(mail, reason, retry_in=None if dead else self.backoff * 2 ** mail.attempts)
                self._count("dead" if dead else "retry")
                log.warning("receipt mail not sent", extra={"operation": "notify.send", "outcome":
                                                            "dead" if dead else "retry", "reason": reason})
                continue
            await self.box.sent(mail)
            self._count("sent")
            sent += 1
        return sent

    async def run(self, interval: float = 5.0, stop: asyncio.Event | None = None) -> None:
        """Batches until `stop` is set (or cancelled), waiting `interval` seconds when there is nothing to do."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                busy = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the store away: try again after the interval
                log.error("receipt outbox cannot be read", extra={"operation": "notify.run", "outcome": "failed",
                                                                  "reason": type(exc).__name__})
                busy = 0
            if not busy:
                try:
                    await asyncio.wait_for(stop.wait(), interval)
                except TimeoutError:
                    pass

    async def _message(self, mail: Mail) -> EmailMessage:
        receipts = []
        for _, seq in mail.rows:
            r = await self.store.record_at(seq)
            if r is not None:
                receipts.append(self.render(r))
        msg = EmailMessage()
        msg["Message-ID"] = mail.message_id  # the idempotency key: the same mail always has the same id
        msg["From"] = self.smtp.sender
        msg["To"] = mail.email
        msg["Date"] = format_datetime(self.box.clock())
        if mail.mode == "DAILY":
            msg["Subject"] = f"[oneScreen] 내 정보 이용내역 {len(receipts)}건 / {len(receipts)} uses of your data"
        else:
            msg["Subject"] = "[oneScreen] 내 정보가 조회되었습니다 / Your data was looked up"
        msg.set_content(body(receipts))
        return msg

    async def _send(self, message: EmailMessage) -> None:
        import aiosmtplib
        await aiosmtplib.send(message, hostname=self.smtp.host, port=self.smtp.port, timeout=self.smtp.timeout,
                              start_tls=self.smtp.starttls, username=self.smtp.username,
                              password=self.smtp.password)


def body(receipts: list[Any]) -> str:
    """The mail's text: each receipt's plain line and its fields' fate, Korean then English; never a value."""
    from .receipts import FATE_WORDS
    out = ["내 정보 이용내역 (oneScreen)", ""]
    for r in receipts:
        out.append(r.line)
        out += [f"  - {f.label}: {FATE_WORDS[f.status][0]}" for f in r.fields]
        out.append(f"  (감사 기록 #{r.seq}, 증명: 내 정보 이용내역 화면에서 내려받기)")
        out.append("")
    out += ["Uses of your data (oneScreen)", ""]
    for r in receipts:
        out.append(r.line_en)
        out += [f"  - {f.label_en}: {FATE_WORDS[f.status][1]}" for f in r.fields]
        out.append(f"  (audit record #{r.seq}; its proof: download it on the page 'Uses of my data')")
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- the citizen's entrances (GraphQL)
def _pseudonym(door: "Door") -> str:
    from .receipts import _citizen_pseudonym
    return _citizen_pseudonym(door)


def _box(door: "Door") -> Outbox:
    box = getattr(door.snapshot, "outbox", None)
    if box is None or not box.ready:
        raise BadRequest("receipts are not pushed by this service")
    return box


async def my_subscription(door: "Door") -> Subscription | None:
    return await _box(door).subscription(_pseudonym(door))


async def subscribe(door: "Door", email: str, mode: str) -> Subscription:
    subject = _pseudonym(door)
    if mode not in MODES:
        raise BadRequest("mode must be IMMEDIATE (a mail per access) or DAILY (one digest a day)")
    if not isinstance(email, str) or len(email) > 254 or not EMAIL.fullmatch(email):
        raise BadRequest("email must be an e-mail address (name@domain)")
    return await _box(door).subscribe(subject, email, mode)


async def unsubscribe(door: "Door") -> bool:
    return await _box(door).unsubscribe(_pseudonym(door))
