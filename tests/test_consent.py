"""Consent is bound to its case (issue 18): a consent (or legal exception) opens the consent-gated fields of
one task, one subject AND one case reference, on the days the task's `consent_valid_days` allows. Carrying it
to another case is `reuseConsent`, an explicit act that is audited with `reused_from`.

Invariant 1 (deny by default) for consent-gated fields, invariant 7 (every consent act audited), invariant 11
(consent lives in the shared store: SQLite here, PostgreSQL in production, existing tables brought up to date).
"""
from __future__ import annotations

import asyncio
import json
import shlex
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from oneScreen import catalog as catalog_mod, policy
from oneScreen.audit import AuditSchemaError
from oneScreen.consent import ConsentSchemaError, ConsentStore
from oneScreen.errors import ConfigErrors

from test_screen import GANGNAM, citizens, fields_of

TASK = "basic_livelihood"  # consent_valid_days: 90; its health-insurance fields are consent-gated
GATED = ("citizen.insured_type", "citizen.monthly_premium", "citizen.workplace_name", "citizen.insurance_dependants")
SCREEN = """query($t: ID!, $s: ID!, $c: String!) { screen(task: $t, subject: $s, caseRef: $c) {
  caseRef consent { id caseRef method recordedBy validUntil reusedFrom }
  reusableConsents { id caseRef method recordedBy at validUntil }
  sections { fields { id status value consentBased
    consent { method recordedBy recordedAt caseRef reusedFrom } } } } }"""
RECORD = """mutation($t: ID!, $s: ID!, $c: String!) { recordConsent(task: $t, subject: $s, caseRef: $c,
  method: "written") { id caseRef validUntil reusedFrom } }"""
REUSE = """mutation($t: ID!, $s: ID!, $f: String!, $to: String!) { reuseConsent(task: $t, subject: $s, fromCase: $f,
  toCase: $to) { id caseRef method recordedBy validUntil reusedFrom } }"""


async def screen(api, rrn: str, case: str, task: str = TASK, user: str = "lee.bokji") -> dict:
    status, body = await api.gql(user, SCREEN, {"t": task, "s": rrn, "c": case})
    assert status == 200 and "errors" not in body, body
    return body["data"]["screen"]


def gated(s: dict) -> dict[str, str]:
    got = fields_of(s)
    return {f: got[f]["status"] for f in GATED if f in got}


def consent_events(data_dir) -> list[tuple[str, str, dict]]:
    with sqlite3.connect(data_dir / "audit.sqlite") as conn:
        rows = conn.execute("SELECT case_ref, fields, detail FROM onescreen_audit WHERE kind = 'consent' ORDER BY seq")
        return [(case, fields, json.loads(detail)) for case, fields, detail in rows]


async def test_a_consent_recorded_for_one_case_opens_nothing_of_another_case_of_the_same_subject(api, data_dir):
    """The issue's report: consent recorded under 2026-복지-0002 unlocked the same fields under 0011, 0020, 0030."""
    rrn = citizens(data_dir, 1, GANGNAM)[0]
    _, body = await api.gql("lee.bokji", RECORD, {"t": TASK, "s": rrn, "c": "2026-복지-0002"})
    recorded = body["data"]["recordConsent"]
    assert recorded["caseRef"] == "2026-복지-0002" and recorded["reusedFrom"] is None
    for other in ("2026-복지-0011", "2026-복지-0020", "2026-복지-0030"):
        s = await screen(api, rrn, other)
        assert set(gated(s).values()) == {"CONSENT_REQUIRED"}, other
        assert s["consent"] is None
        assert all(f["consentBased"] is False and f["consent"] is None for f in fields_of(s).values())
    own = await screen(api, rrn, "2026-복지-0002")
    assert "CONSENT_REQUIRED" not in gated(own).values()
    assert own["consent"]["caseRef"] == "2026-복지-0002" and own["consent"]["recordedBy"] == "lee.bokji"
    assert own["reusableConsents"] == []  # the case has its own consent: nothing to reuse


async def test_each_value_shown_on_consent_says_so_with_method_recorder_time_and_case(api, data_dir):
    rrn = citizens(data_dir, 1, GANGNAM + " AND rrn IN (SELECT rrn FROM resident)")[0]
    await api.gql("lee.bokji", RECORD, {"t": TASK, "s": rrn, "c": "2026-복지-0100"})
    s = await screen(api, rrn, "2026-복지-0100")
    got = fields_of(s)
    for fid, f in got.items():
        if fid in GATED and f["status"] in ("OK", "MASKED", "NOT_FOUND", "PARTIAL", "UNAVAILABLE"):
            assert f["consentBased"] is True, fid
            mark = f["consent"]
            assert (mark["method"], mark["recordedBy"], mark["caseRef"]) == ("written", "lee.bokji", "2026-복지-0100")
            assert datetime.fromisoformat(mark["recordedAt"]) <= datetime.now(timezone.utc)
        elif fid not in GATED:
            assert f["consentBased"] is False and f["consent"] is None, fid  # on the task's own legal basis


async def test_a_consent_past_its_validity_opens_nothing(api, data_dir):
    """basic_livelihood: consent_valid_days 90, counting the day it is recorded (KST)."""
    stale, last_day = citizens(data_dir, 2, GANGNAM)
    consents = api.app.state.runtime.consents
    now = datetime.now(timezone.utc)
    try:
        consents.clock = lambda: now - timedelta(days=90)  # its 90th day was yesterday
        await api.gql("lee.bokji", RECORD, {"t": TASK, "s": stale, "c": "2026-복지-0200"})
        consents.clock = lambda: now - timedelta(days=89)  # today is its 90th and last day
        await api.gql("lee.bokji", RECORD, {"t": TASK, "s": last_day, "c": "2026-복지-0201"})
    finally:
        consents.clock = lambda: datetime.now(timezone.utc)
    s = await screen(api, stale, "2026-복지-0200")
    assert set(gated(s).values()) == {"CONSENT_REQUIRED"} and s["consent"] is None
    s = await screen(api, last_day, "2026-복지-0201")
    assert "CONSENT_REQUIRED" not in gated(s).values()
    assert s["consent"]["validUntil"] == (now + timedelta(hours=9)).date().isoformat()


async def test_reusing_a_consent_for_another_case_is_explicit_audited_and_then_opens_that_case(api, data_dir):
    rrn, other = citizens(data_dir, 2, GANGNAM)
    _, body = await api.gql("lee.bokji", RECORD, {"t": TASK, "s": rrn, "c": "2026-복지-0002"})
    original = body["data"]["recordConsent"]
    s = await screen(api, rrn, "2026-복지-0011")
    assert set(gated(s).values()) == {"CONSENT_REQUIRED"}
    # offered, not applied: the screen of the other case lists it for reuse
    [offer] = s["reusableConsents"]
    assert (offer["id"], offer["caseRef"], offer["method"]) == (original["id"], "2026-복지-0002", "written")

    _, body = await api.gql("lee.bokji", REUSE, {"t": TASK, "s": rrn, "f": "2026-복지-0002", "to": "2026-복지-0011"})
    reused = body["data"]["reuseConsent"]
    assert reused["caseRef"] == "2026-복지-0011" and reused["reusedFrom"] == original["id"]
    assert reused["validUntil"] == original["validUntil"]  # a reuse never extends the consent
    s = await screen(api, rrn, "2026-복지-0011")
    assert "CONSENT_REQUIRED" not in gated(s).values()
    assert s["consent"]["reusedFrom"] == original["id"] and s["reusableConsents"] == []
    marks = [f["consent"] for f in fields_of(s).values() if f["consentBased"]]
    assert all(m["caseRef"] == "2026-복지-0011" and m["reusedFrom"] == original["id"] for m in marks)
    # the other cases stay closed: only the case named was opened
    assert set(gated(await screen(api, rrn, "2026-복지-0020")).values()) == {"CONSENT_REQUIRED"}

    with sqlite3.connect(data_dir / "audit.sqlite") as conn:  # each disclosure names the consent it rests on
        rests_on = [json.loads(d).get("consent_id") for c, d in conn.execute(
            "SELECT case_ref, detail FROM onescreen_audit WHERE kind = 'disclosure' AND case_ref = '2026-복지-0011'")]
    assert rests_on[-1] == int(reused["id"]) and rests_on[0] is None

    events = consent_events(data_dir)
    assert [(case, d.get("act")) for case, _, d in events] == [("2026-복지-0002", None), ("2026-복지-0011", "reuse")]
    case, fields, detail = events[1]
    assert detail["reused_from"] == int(original["id"]) and detail["from_case"] == "2026-복지-0002"
    assert {f["status"] for f in json.loads(fields)} == {"CONSENT_REUSED"}
    assert other not in json.dumps(events, ensure_ascii=False) and rrn not in json.dumps(events, ensure_ascii=False)


async def test_reuse_is_refused_for_another_subject_another_task_or_a_consent_no_longer_valid(api, data_dir):
    rrn, other, stale = citizens(data_dir, 3, GANGNAM)
    await api.gql("lee.bokji", RECORD, {"t": TASK, "s": rrn, "c": "2026-복지-0002"})
    consents = api.app.state.runtime.consents
    now = datetime.now(timezone.utc)
    consents.clock = lambda: now - timedelta(days=120)
    try:
        await api.gql("lee.bokji", RECORD, {"t": TASK, "s": stale, "c": "2026-복지-0003"})
    finally:
        consents.clock = lambda: datetime.now(timezone.utc)

    async def refused(task: str, subject: str, from_case: str, to_case: str = "2026-복지-0011") -> str:
        _, body = await api.gql("lee.bokji", REUSE, {"t": task, "s": subject, "f": from_case, "to": to_case})
        assert body["data"] is None, body
        [error] = body["errors"]
        assert subject not in error["message"] and to_case not in error["message"]
        return error["extensions"]["code"]

    assert await refused(TASK, other, "2026-복지-0002") == "BAD_REQUEST"  # another subject's case
    assert await refused("basic_livelihood_review", rrn, "2026-복지-0002") == "BAD_REQUEST"  # another task
    assert await refused(TASK, stale, "2026-복지-0003") == "BAD_REQUEST"  # expired
    assert await refused(TASK, rrn, "2026-복지-0002", "2026-복지-0002") == "BAD_REQUEST"  # its own case
    assert await refused("move_in_report", rrn, "2026-복지-0002") == "TASK_FORBIDDEN"  # not lee.bokji's task
    outside = citizens(data_dir, 1, "legal_dong_cd LIKE '41117%'")[0]
    assert await refused(TASK, outside, "2026-복지-0002") == "OUTSIDE_JURISDICTION"
    for subject, task in ((other, TASK), (rrn, "basic_livelihood_review"), (stale, TASK)):
        assert set(gated(await screen(api, subject, "2026-복지-0011", task)).values()) == {"CONSENT_REQUIRED"}
    assert [d.get("act") for _, _, d in consent_events(data_dir)] == [None, None]  # nothing reused, nothing audited
    s = await screen(api, stale, "2026-복지-0011")
    assert s["reusableConsents"] == []  # an expired consent is not offered either


async def test_an_unreadable_consent_store_keeps_the_gated_fields_closed_and_serves_the_rest(api, data_dir):
    rrn = citizens(data_dir, 1, GANGNAM)[0]
    await api.gql("lee.bokji", RECORD, {"t": TASK, "s": rrn, "c": "2026-복지-0300"})
    with sqlite3.connect(data_dir / "audit.sqlite") as conn:
        conn.execute("ALTER TABLE onescreen_consent RENAME TO onescreen_consent_away")
    s = await screen(api, rrn, "2026-복지-0300")
    assert set(gated(s).values()) == {"CONSENT_REQUIRED"}  # fail closed
    assert s["consent"] is None and s["reusableConsents"] == []
    assert fields_of(s)["citizen.name"]["status"] == "OK"


# ---------------------------------------------------------------- the task key and existing stores

def _with_validity(catalog_copy, task: str, line: str):
    path = catalog_copy / "policies" / "tasks" / f"{task}.yaml"
    text = path.read_text(encoding="utf-8").replace("consent_valid_days: 90\n", "")
    path.write_text(text.replace("subject: citizen\n", f"subject: citizen\n{line}\n", 1), encoding="utf-8")
    return path, text.splitlines().index("subject: citizen") + 2


@pytest.mark.parametrize("task,line,reason", [
    ("basic_livelihood", "consent_valid_days: 0", "greater than or equal to 1"),
    ("basic_livelihood", "consent_valid_days: ninety", "integer"),
    ("move_in_report", "consent_valid_days: 30", "no field of the task has consent: true"),
])
def test_a_bad_consent_validity_is_refused_with_file_and_line(catalog_copy, task, line, reason):
    path, lineno = _with_validity(catalog_copy, task, line)
    cat = catalog_mod.load(catalog_copy / "field_catalog.yaml")
    with pytest.raises(ConfigErrors) as err:
        policy.load(catalog_copy / "policies", cat)
    [e] = err.value.errors
    assert (e.file, e.line) == (str(path), lineno) and reason in e.message, e.message


def test_a_consent_kept_valid_longer_is_a_widening_change(catalog_copy):
    """Four eyes (changes.widening): a consent that opens its case's fields for more days discloses more."""
    from oneScreen.changes import widening
    cat = catalog_mod.load(catalog_copy / "field_catalog.yaml")
    before = policy.load(catalog_copy / "policies", cat)
    task = catalog_copy / "policies" / "tasks" / "basic_livelihood.yaml"
    text = task.read_text(encoding="utf-8")
    for changed, widens in (("consent_valid_days: 30\n", False), ("consent_valid_days: 365\n", True), ("", True)):
        task.write_text(text.replace("consent_valid_days: 90\n", changed), encoding="utf-8")
        reasons = widening(cat, before, cat, policy.load(catalog_copy / "policies", cat))
        assert any("consent stays valid longer" in r for r in reasons) is widens, (changed, reasons)


OLD = sa.MetaData()  # the consent table as the versions before issue 18 made it
sa.Table("onescreen_consent", OLD,
         sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
         sa.Column("task", sa.String(64), nullable=False), sa.Column("subject", sa.String(64), nullable=False),
         sa.Column("case_ref", sa.String(64), nullable=False), sa.Column("method", sa.String(32), nullable=False),
         sa.Column("exception", sa.String(32)), sa.Column("notice_deferred", sa.Boolean, nullable=False),
         sa.Column("recorded_by", sa.String(128), nullable=False),
         sa.Column("organisation", sa.String(256), nullable=False), sa.Column("at", sa.String(40), nullable=False),
         sa.Index("ix_onescreen_consent_task_subject", "task", "subject"))
OLD_ROW = dict(task=TASK, subject="a" * 64, case_ref="2026-복지-0002", method="written", exception=None,
               notice_deferred=False, recorded_by="lee.bokji", organisation="강남구청", at="2026-01-05T01:00:00+00:00")


async def _old_store(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(OLD.create_all)
            await conn.execute(OLD.tables["onescreen_consent"].insert().values(**OLD_ROW))
    finally:
        await engine.dispose()


async def _still_bound(store: ConsentStore) -> None:
    """The old record keeps opening its own case (no end: it was recorded before validity existed), no other."""
    found = await store.find(TASK, "a" * 64, "2026-복지-0002")
    assert found is not None and found.valid_until is None and found.reused_from is None
    assert await store.find(TASK, "a" * 64, "2026-복지-0011") is None
    new = await store.record(task=TASK, subject="a" * 64, case_ref="2026-복지-0011", method="oral", exception=None,
                             recorded_by="lee.bokji", organisation="강남구청", valid_days=10, reused=None)
    assert (await store.find(TASK, "a" * 64, "2026-복지-0011")) == new and new.valid_until is not None


async def test_an_existing_sqlite_consent_store_gets_the_new_columns_at_open(tmp_path):
    path = tmp_path / "audit.sqlite"
    await _old_store(f"sqlite+aiosqlite:///{path}")
    store = ConsentStore(f"sqlite+aiosqlite:///{path}")
    try:
        await store.open()
        await _still_bound(store)
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert {"valid_until", "reused_from"} <= {r[1] for r in conn.execute("PRAGMA table_info(onescreen_consent)")}


async def test_an_existing_postgres_consent_store_is_brought_up_by_audit_init_when_the_service_may_not_alter(
        roles, data_dir):
    """As the service role (SELECT, INSERT only) the store refuses to open an old table, naming the command;
    the owner's `onescreen audit init` (the guide's recipe) adds the columns; then the service opens it."""
    from test_audit_roles import execute, made_unique, recipe, statements, url_as
    from test_catalog import run_cli
    from sqlservers import PG_URL

    sql, sh = (made_unique(block, roles) for block in recipe())
    await execute(PG_URL, *statements(sql))
    owner = url_as(roles["onescreen_owner"], roles)
    await _old_store(owner.replace("postgresql://", "postgresql+asyncpg://", 1))
    app_role = roles["onescreen_app"]
    await execute(owner, f'GRANT SELECT, INSERT ON onescreen_consent TO "{app_role}"',
                  f'GRANT USAGE ON SEQUENCE onescreen_consent_id_seq TO "{app_role}"')
    service = url_as(roles["onescreen_app_1"], roles).replace("postgresql://", "postgresql+asyncpg://", 1)
    store = ConsentStore(service)
    try:
        with pytest.raises(ConsentSchemaError) as err:
            await store.open()
        assert "onescreen audit init" in err.value.message and "valid_until" in err.value.message
        assert isinstance(err.value, AuditSchemaError)  # the start stops with it, as for an older audit store
    finally:
        await store.close()

    [command] = [line for line in sh.splitlines() if line.strip() and not line.startswith("#")]
    words = shlex.split(command)
    env = dict(w.split("=", 1) for w in words[:words.index("onescreen")])
    init = await asyncio.to_thread(run_cli, *words[words.index("onescreen") + 1:],
                                   env_extra={**env, "ONESCREEN_DATA_DIR": str(data_dir)})
    assert init.returncode == 0, init.stderr
    store = ConsentStore(service)
    try:
        await store.open()
        await _still_bound(store)
    finally:
        await store.close()


from test_audit_roles import roles  # noqa: E402,F401  (the fixture: the recipe's roles, unique per run)
