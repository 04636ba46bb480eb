"""Receipts pushed by e-mail (issue 19): the outbox row commits with its audit record (a trigger, one transaction);
the worker delivers at least once with a fixed Message-ID, so a worker stopped in the middle of a batch leaves each
receipt exactly once in the mailbox; retries back off, a mail that keeps failing goes dead; a daily digest; a
deferred task's receipt is pushed only once released. A real SMTP server (aiosmtpd) on loopback."""
from __future__ import annotations

import asyncio
import email
import json
import sqlite3
import threading
from contextlib import closing
from datetime import timedelta
from email import policy as email_policy
from typing import Any, AsyncIterator

import httpx
import pytest
from aiosmtpd.controller import Controller

from conftest import Api, free_port
from test_audit_roles import pg_empty  # noqa: F401 (fixture)
from test_history import look
from test_receipts import RELEASE, values_of, with_deferred_task
from test_screen import SCREEN

SUBSCRIBE = """mutation($e: String!, $m: String!) { subscribeReceipts(email: $e, mode: $m) { email mode } }"""
ADDRESS = "citizen@example.test"


class Mailbox:
    """An SMTP server's mailbox: every delivery in order, and the messages kept once per Message-ID (as a mail
    store that deduplicates does). `hold_at`: the n-th delivery is stored, then its answer waits for `gate`."""

    def __init__(self) -> None:
        self.deliveries: list[str] = []
        self.messages: dict[str, Any] = {}
        self.reply: str | None = None  # answer every DATA with this instead of 250
        self.hold_at: int | None = None
        self.arrived, self.gate = threading.Event(), threading.Event()

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.reply is not None:
            return self.reply
        msg = email.message_from_bytes(envelope.content, policy=email_policy.default)
        mid = msg["Message-ID"]
        self.deliveries.append(mid)
        self.messages.setdefault(mid, msg)
        if self.hold_at is not None and len(self.deliveries) == self.hold_at:
            self.arrived.set()
            await asyncio.to_thread(self.gate.wait, 60)
        return "250 OK"


@pytest.fixture
def smtp():
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        box.gate.set()
        controller.stop()


@pytest.fixture
async def pushed(make_app, data_dir, smtp, tmp_path) -> AsyncIterator[tuple[Api, Any, Mailbox]]:
    box, port = smtp
    app = make_app(ONESCREEN_NOTIFY_SMTP_HOST="127.0.0.1", ONESCREEN_NOTIFY_SMTP_PORT=str(port),
                   ONESCREEN_NOTIFY_MAX_ATTEMPTS="2", ONESCREEN_POLICIES=str(with_deferred_task(tmp_path)))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            yield Api(c, data_dir, app), app.state.runtime, box
    finally:
        await app.state.runtime.close()


async def subscribe(api: Api, mode: str = "IMMEDIATE") -> None:
    _, body = await api.gql("demo.citizen", SUBSCRIBE, {"e": ADDRESS, "m": mode})
    assert body.get("data") == {"subscribeReceipts": {"email": ADDRESS, "mode": mode}}, body


def me(data_dir) -> str:
    from oneScreen.identity import _demo_subject
    return _demo_subject(data_dir)


def outbox_rows(data_dir) -> list[tuple]:
    with closing(sqlite3.connect(data_dir / "audit.sqlite")) as conn:
        return conn.execute("SELECT seq, state, attempts, message_id FROM onescreen_receipt_outbox ORDER BY id").fetchall()


async def test_a_worker_restarted_in_the_middle_of_a_batch_leaves_each_receipt_once_in_the_mailbox(pushed, data_dir):
    api, runtime, box = pushed
    await subscribe(api)
    for i in range(5):
        await look(api, "kim.jumin", "move_in_report", me(data_dir), f"2026-전입-09{i:02d}")
    assert [r[1] for r in outbox_rows(data_dir)] == ["pending"] * 5  # written with the records, nothing else ran
    box.hold_at = 3  # the third mail reaches the mailbox; the worker stops before it hears "250"
    first = asyncio.ensure_future(runtime.notify_deliverer().run_once())
    assert await asyncio.to_thread(box.arrived.wait, 60)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    box.gate.set()
    assert [r[1] for r in outbox_rows(data_dir)] == ["sent", "sent", "pending", "pending", "pending"]
    again = runtime.notify_deliverer()  # the restarted worker
    assert await again.run_once() == 3
    assert [r[1] for r in outbox_rows(data_dir)] == ["sent"] * 5
    ids = [r[3] for r in outbox_rows(data_dir)]
    assert len(box.deliveries) == 6 and box.deliveries.count(ids[2]) == 2  # the one in doubt was sent again ...
    assert sorted(box.messages) == sorted(ids) and len(set(ids)) == 5  # ... and the mailbox holds each once
    mail = box.messages[ids[0]]
    text = mail.get_content()
    assert mail["To"] == ADDRESS and "전입신고" in text and "성명" in text and "Move-in report" in text
    _, screen = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": me(data_dir), "c": "2026-전입-0999"})
    leaked = [v for v in values_of(screen["data"]["screen"]) if v in text]
    assert leaked == []  # the mail names fields and their fate, never a value
    assert 'onescreen_receipt_mails_total{outcome="sent"} 5.0' in runtime.metrics.render().decode()


async def test_no_outbox_row_without_its_audit_record_and_none_for_subjects_who_did_not_subscribe(pushed, data_dir):
    """One transaction: with the outbox table gone the trigger fails, so the disclosure's audit record fails too
    and the request is refused (fail closed), never a record without its receipt."""
    api, runtime, box = pushed
    other = next(r for r in ("510922-2547567", "000110-4466961") if r != me(data_dir))
    await look(api, "kim.jumin", "move_in_report", other, "2026-전입-1001")  # before anyone subscribed
    await subscribe(api)
    await look(api, "kim.jumin", "move_in_report", other, "2026-전입-1002")  # not subscribed
    assert outbox_rows(data_dir) == []
    await look(api, "kim.jumin", "move_in_report", me(data_dir), "2026-전입-1003")
    assert len(outbox_rows(data_dir)) == 1
    with closing(sqlite3.connect(data_dir / "audit.sqlite")) as conn, conn:
        conn.execute("DROP TABLE onescreen_receipt_outbox")
        before = conn.execute("SELECT count(*) FROM onescreen_audit").fetchone()[0]
    r = await api.post("kim.jumin", """query($s: ID!) { screen(task: "move_in_report", subject: $s,
        caseRef: "2026-전입-1004") { subject } }""", {"s": me(data_dir)})
    assert r.status_code == 503 and r.json()["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
    with closing(sqlite3.connect(data_dir / "audit.sqlite")) as conn:
        assert conn.execute("SELECT count(*) FROM onescreen_audit").fetchone()[0] == before


async def test_failures_retry_with_backoff_then_go_dead_and_a_permanent_refusal_at_once(pushed, data_dir):
    api, runtime, box = pushed
    await subscribe(api)
    await look(api, "kim.jumin", "move_in_report", me(data_dir), "2026-전입-1101")
    box.reply = "451 4.3.0 try again later"
    worker = runtime.notify_deliverer()
    assert await worker.run_once() == 0
    [(_, state, attempts, _)] = outbox_rows(data_dir)
    assert (state, attempts, worker.counts["retry"]) == ("pending", 1, 1)
    assert await worker.run_once() == 0 and worker.counts["retry"] == 1  # its next try has not come yet
    now = runtime.outbox.clock()
    runtime.outbox.clock = lambda: now + timedelta(hours=1)  # past the backoff
    assert await worker.run_once() == 0
    assert [r[1:3] for r in outbox_rows(data_dir)] == [("dead", 2)] and worker.counts["dead"] == 1  # max 2 tries
    box.reply = "550 5.1.1 no such mailbox"
    await look(api, "kim.jumin", "move_in_report", me(data_dir), "2026-전입-1102")
    assert await worker.run_once() == 0
    assert [r[1:3] for r in outbox_rows(data_dir)] == [("dead", 2), ("dead", 1)]  # permanent: no retry
    assert box.deliveries == []
    assert 'onescreen_receipt_mails_total{outcome="dead"} 2.0' in runtime.metrics.render().decode()


async def test_a_daily_digest_collects_a_days_receipts_in_one_mail(pushed, data_dir):
    api, runtime, box = pushed
    await subscribe(api, "DAILY")
    await look(api, "kim.jumin", "move_in_report", me(data_dir), "2026-전입-1201")
    await look(api, "jung.jutaek", "housing_special_supply", me(data_dir), "2026-주택-1202")
    worker = runtime.notify_deliverer()
    assert await worker.run_once() == 0  # today is not over
    now = runtime.outbox.clock()
    runtime.outbox.clock = lambda: now + timedelta(days=1)
    assert await worker.run_once() == 1
    [mail] = box.messages.values()
    text = mail.get_content()
    assert "전입신고" in text and "특별공급" in text and mail["Subject"].startswith("[oneScreen] 내 정보 이용내역 2건")


async def test_a_deferred_tasks_receipt_is_pushed_only_once_released(pushed, data_dir):
    api, runtime, box = pushed
    await subscribe(api)
    await look(api, "kim.jumin", "fraud_investigation", me(data_dir), "2026-조사-1301")
    worker = runtime.notify_deliverer()
    assert await worker.run_once() == 0 and box.deliveries == []
    _, audited = await api.gql("yoon.gamsa", "query($s: ID) { accessHistory(subject: $s) { entries { seq } } }",
                               {"s": me(data_dir)})
    [entry] = audited["data"]["accessHistory"]["entries"]
    _, released = await api.gql("yoon.gamsa", RELEASE, {"seq": entry["seq"], "r": "조사 종결"})
    assert "errors" not in released, released
    assert await worker.run_once() == 1
    [mail] = box.messages.values()
    assert "부정수급 확인조사" in mail.get_content()


async def test_the_outbox_trigger_works_on_postgresql(pg_empty, data_dir, tmp_path):
    """`onescreen audit init` creates the outbox and its trigger; a disclosure appended through the writer's
    one-statement append fills it in the same transaction; a release opens a sealed row."""
    from oneScreen.audit import AuditStore, pseudonymise
    from oneScreen.notify import Outbox
    from test_audit import event
    from test_catalog import run_cli
    env = {"ONESCREEN_DATA_DIR": str(data_dir), "ONESCREEN_AUDIT_URL": pg_empty, "ONESCREEN_AUDIT_TIMEOUT": "30"}
    done = await asyncio.to_thread(run_cli, "audit", "init", env_extra=env)
    assert done.returncode == 0, done.stderr
    box = Outbox(pg_empty.replace("postgresql://", "postgresql+asyncpg://", 1))
    store = AuditStore(pg_empty)
    try:
        await box.open()
        subject = event(0).subject
        await box.subscribe(subject, ADDRESS, "IMMEDIATE")
        await store.append(event(1))
        await store.append(event(2, detail={"deferred_until": "2099-01-01"}))
        await store.append(event(3, subject=pseudonymise(b"another-key-0123456789abcdef", "citizen", "1")))
        import asyncpg
        conn = await asyncpg.connect(pg_empty)
        try:
            rows = [tuple(r) for r in await conn.fetch(
                "SELECT seq, email, not_before FROM onescreen_receipt_outbox ORDER BY seq")]
        finally:
            await conn.close()
        assert rows == [(1, ADDRESS, None), (2, ADDRESS, "2099-01-01")]
        await store.append(event(4, kind="release", fields=(), detail={"released_seq": 2}))
        conn = await asyncpg.connect(pg_empty)
        try:
            assert await conn.fetchval("SELECT not_before FROM onescreen_receipt_outbox WHERE seq = 2") is None
        finally:
            await conn.close()
        assert json.dumps(await box.states()) == '{"pending": 2}'
    finally:
        await store.close()
        await box.close()


async def test_onescreen_notify_run_once_delivers_beside_the_service(pushed, data_dir, smtp):
    """The worker as its own process (`onescreen notify run --once`), over the same audit database."""
    from test_catalog import run_cli
    api, runtime, box = pushed
    _, port = smtp
    await subscribe(api)
    await look(api, "kim.jumin", "move_in_report", me(data_dir), "2026-전입-1401")
    env = {"ONESCREEN_DATA_DIR": str(data_dir), "ONESCREEN_NOTIFY_SMTP_HOST": "127.0.0.1",
           "ONESCREEN_NOTIFY_SMTP_PORT": str(port)}
    done = await asyncio.to_thread(run_cli, "notify", "run", "--once", env_extra=env)
    assert done.returncode == 0, done.stderr
    assert "receipt mails: 1 sent, 0 to retry, 0 dead" in done.stdout
    assert len(box.messages) == 1 and [r[1] for r in outbox_rows(data_dir)] == ["sent"]
    nothing = await asyncio.to_thread(run_cli, "notify", "run", "--once", env_extra={"ONESCREEN_DATA_DIR": str(data_dir)})
    assert nothing.returncode == 1 and "ONESCREEN_NOTIFY_SMTP_HOST" in nothing.stderr


async def test_receipts_subscriptions_and_release_work_on_a_postgresql_audit_store(pg_empty, make_app, data_dir,
                                                                                  tmp_path, smtp):
    """The whole citizen's side on PostgreSQL (the production store, made by `onescreen audit init`): receipts,
    the outbox filled by the trigger, a deferred receipt released, the mail delivered."""
    from test_catalog import run_cli
    env = {"ONESCREEN_DATA_DIR": str(data_dir), "ONESCREEN_AUDIT_URL": pg_empty, "ONESCREEN_AUDIT_TIMEOUT": "30"}
    done = await asyncio.to_thread(run_cli, "audit", "init", env_extra=env)
    assert done.returncode == 0, done.stderr
    box, port = smtp
    app = make_app(ONESCREEN_AUDIT_URL=pg_empty, ONESCREEN_NOTIFY_SMTP_HOST="127.0.0.1",
                   ONESCREEN_NOTIFY_SMTP_PORT=str(port), ONESCREEN_POLICIES=str(with_deferred_task(tmp_path)))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            api, runtime = Api(c, data_dir, app), app.state.runtime
            await subscribe(api)
            await look(api, "kim.jumin", "fraud_investigation", me(data_dir), "2026-조사-1501")
            await look(api, "kim.jumin", "move_in_report", me(data_dir), "2026-전입-1502")
            _, body = await api.gql("demo.citizen", "{ myReceipts { entries { task caseRef } } }")
            assert body["data"]["myReceipts"]["entries"] == [{"task": "move_in_report", "caseRef": "2026-전입-1502"}]
            worker = runtime.notify_deliverer()
            assert await worker.run_once() == 1
            _, audited = await api.gql("yoon.gamsa", "query($s: ID) { accessHistory(subject: $s) { entries { seq task } } }",
                                       {"s": me(data_dir)})
            sealed = next(e["seq"] for e in audited["data"]["accessHistory"]["entries"]
                          if e["task"] == "fraud_investigation")
            _, released = await api.gql("yoon.gamsa", RELEASE, {"seq": sealed, "r": "조사 종결"})
            assert "errors" not in released, released
            _, body = await api.gql("demo.citizen", "{ myReceipts { entries { task caseRef } } }")
            assert [e["task"] for e in body["data"]["myReceipts"]["entries"]] == ["move_in_report",
                                                                                  "fraud_investigation"]
            assert await worker.run_once() == 1
            assert len(box.messages) == 2 and await runtime.outbox.states() == {"sent": 2}
    finally:
        await app.state.runtime.close()


async def test_a_household_member_shown_on_another_persons_screen_gets_one_mail_that_names_nothing_of_theirs(
        pushed, data_dir):
    """The citizen subscribed; their spouse is looked up, and the screen lists the household with the citizen's
    row: one mail reaches the citizen, saying it was another person's lookup, with the field that showed them and
    nothing of the spouse's (no RRN, no case reference, no value of the screen)."""
    from test_receipts import household_of
    api, runtime, box = pushed
    await subscribe(api)
    [spouse] = household_of(data_dir, me(data_dir))
    _, screen = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": spouse, "c": "2026-전입-1101"})
    assert "errors" not in screen, screen
    assert [r[1] for r in outbox_rows(data_dir)] == ["pending"]
    assert await runtime.notify_deliverer().run_once() == 1
    [mail] = box.messages.values()
    text = mail.get_content()
    assert mail["To"] == ADDRESS and "다른 분의 정보를 조회할 때" in text and "세대원" in text
    assert spouse not in text and "2026-전입-1101" not in text
    assert [v for v in values_of(screen["data"]["screen"]) if v in text] == []
