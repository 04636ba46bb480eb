"""Catalog admins map ledger columns, task configurers edit field sets: validated, four-eyes, live, audited."""
from __future__ import annotations

import os
import sqlite3

import httpx
import pytest
import sqlalchemy as sa

from conftest import Api, need_service, sample
from sqlservers import PG_URL, drop_database, load_demo_into, pg_available, unique_db_name
from test_screen import SCREEN, citizens, fields_of

COLUMNS = """query($l: ID!) { ledgerColumns(ledger: $l) { name type fields } }"""
MAP = """mutation($i: FieldMappingInput!) { proposeFieldMapping(input: $i) { id status widening diff summary } }"""
TASK = """mutation($c: ID!, $y: String!) { proposeTask(code: $c, yaml: $y) { id status widening diff proposer } }"""
APPROVE = """mutation($id: ID!) { approveChange(id: $id) { id status approver } }"""
EMAIL = {"id": "citizen.email", "ledger": "mois.resident", "column": "email", "type": "string", "label": "전자우편",
         "labelEn": "E-mail", "sensitivity": "personal"}


@pytest.fixture
def pg_resident(data_dir):
    """The demo resident register in a real PostgreSQL database of its own, with a column the catalog lacks."""
    need_service(pg_available(), f"PostgreSQL is not reachable at {PG_URL}")
    name = unique_db_name("onescreen_admin")
    url = load_demo_into(PG_URL, data_dir / "demo", name)
    yield url, name
    drop_database(PG_URL, name)


async def add_email_column(url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine
    engine = create_async_engine(url if "+asyncpg" in url else url.replace("postgresql://", "postgresql+asyncpg://"))
    async with engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE resident ADD COLUMN email TEXT"))
        await conn.execute(sa.text("UPDATE resident SET email = lower(hshld_id) || '@example.kr'"))
    await engine.dispose()


@pytest.fixture
async def admin_api(make_app, data_dir, catalog_copy):
    apps = []

    async def make(**env):
        app = make_app(ONESCREEN_CATALOG=str(catalog_copy / "field_catalog.yaml"),
                       ONESCREEN_POLICIES=str(catalog_copy / "policies"), **env)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        apps.append((app, client))
        return Api(client, data_dir, app)

    yield make
    for app, client in apps:
        await client.aclose()
        await app.state.runtime.close()


def task_with(catalog_copy, code: str, extra_field: str) -> str:
    text = (catalog_copy / "policies" / "tasks" / f"{code}.yaml").read_text(encoding="utf-8")
    return text.replace("      - citizen.birth_date\n", f"      - citizen.birth_date\n      - {extra_field}\n", 1)


async def test_a_new_postgresql_column_is_mapped_added_to_a_task_approved_and_served_live(
        admin_api, pg_resident, catalog_copy, data_dir):
    url, _ = pg_resident
    await add_email_column(url)
    api = await admin_api(ONESCREEN_DSN_MOIS_RESIDENT=url)
    _, body = await api.gql("han.catalog", COLUMNS, {"l": "mois.resident"})
    cols = {c["name"]: c["fields"] for c in body["data"]["ledgerColumns"]}
    assert cols["email"] == [] and cols["name"] == ["citizen.name"]  # unmapped, beside mapped ones

    _, body = await api.gql("han.catalog", MAP, {"i": EMAIL})
    mapped = body["data"]["proposeFieldMapping"]
    assert mapped["status"] == "applied" and mapped["widening"] == []  # no task uses it yet: nothing widens
    assert "+  - {id: citizen.email, ledger: mois.resident, column: email" in mapped["diff"]

    _, body = await api.gql("oh.samu", TASK, {"c": "move_in_report", "y": task_with(catalog_copy, "move_in_report", "citizen.email")})
    proposal = body["data"]["proposeTask"]
    assert proposal["status"] == "pending" and proposal["widening"] == ["task move_in_report: gains field citizen.email"]
    _, body = await api.gql("oh.samu", APPROVE, {"id": proposal["id"]})
    assert body["errors"][0]["extensions"]["code"] == "CHANGE_REFUSED" and "four eyes" in body["errors"][0]["message"]
    rrn = citizens(data_dir, 1)[0]
    _, screen = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "A-1"})
    assert "citizen.email" not in fields_of(screen["data"]["screen"])  # not before approval

    _, body = await api.gql("kang.samu", APPROVE, {"id": proposal["id"]})
    assert body["data"]["approveChange"] == {"id": proposal["id"], "status": "applied", "approver": "kang.samu"}
    _, screen = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "A-2"})
    got = fields_of(screen["data"]["screen"])["citizen.email"]
    assert (got["status"], got["reason"]) == ("DENIED", "제공기관 협약 없음")  # MOIS has not agreed to share it yet
    from oneScreen.policy import Caller
    mois = [Caller(u, u, "행정안전부 공동이용과", "national", frozenset({"agreement_admin"})) for u in ("an.hyeopyak", "x.2")]
    agreement = catalog_copy / "policies" / "agreements" / "mois-move-in-report.yaml"
    text = agreement.read_text(encoding="utf-8").replace("  - citizen.name\n", "  - citizen.name\n  - citizen.email\n")
    p = await api.app.state.runtime.admin.save_agreement(mois[0], "mois-move-in-report", text)
    assert p.status == "pending"
    await api.app.state.runtime.admin.approve(mois[1], p.id)
    _, screen = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "A-2"})
    household = sample(data_dir, "mois_resident:SELECT hshld_id FROM resident WHERE rrn = ?", rrn)[0][0]
    got = fields_of(screen["data"]["screen"])["citizen.email"]
    assert got["status"] == "OK" and got["value"] == household.lower() + "@example.kr"

    audit = sqlite3.connect(data_dir / "audit.sqlite")
    rows = audit.execute("SELECT client, detail FROM onescreen_audit WHERE kind = 'config_change'").fetchall()
    audit.close()
    import json
    details = [(client, json.loads(d)) for client, d in rows]
    assert any(d["action"] == "applied" and d["approver"] == "kang.samu" and "citizen.email" in d["diff"]
               for _, d in details)
    # made over HTTP, each record of the change names where the request came from (the test client's address),
    # as a disclosure's record does
    assert {(d["action"], client) for client, d in details if str(d["change"]) == str(proposal["id"])} == {
        ("proposed", "127.0.0.1"), ("approved", "127.0.0.1"), ("applied", "127.0.0.1")}


@pytest.mark.parametrize("change,message", [
    ({**EMAIL, "column": "no_such_column"}, "has no such column"),
    ({**EMAIL, "id": "citizen.name_number", "column": "name", "type": "integer"}, "do not convert to integer"),
    ({**EMAIL, "id": "citizen.bad", "column": "name", "type": "string", "sensitivity": "top-secret"}, "sensitivity"),
    ({**EMAIL, "id": "citizen.x", "ledger": "mois.nowhere"}, "unknown ledger"),
])
async def test_an_invalid_mapping_is_refused_and_the_running_configuration_is_unchanged(admin_api, catalog_copy, change, message):
    api = await admin_api()
    before = (catalog_copy / "field_catalog.yaml").read_bytes()
    snapshot = api.app.state.runtime.snapshot
    _, body = await api.gql("han.catalog", MAP, {"i": change})
    assert body["errors"][0]["extensions"]["code"] == "CHANGE_INVALID" and message in body["errors"][0]["message"]
    assert (catalog_copy / "field_catalog.yaml").read_bytes() == before
    assert api.app.state.runtime.snapshot is snapshot


async def test_a_duplicate_field_in_a_task_draft_is_refused_with_file_and_line(admin_api, catalog_copy):
    api = await admin_api()
    draft = (catalog_copy / "policies" / "tasks" / "vehicle_transfer.yaml").read_text(encoding="utf-8") + \
        "      - citizen.name\n"
    _, body = await api.gql("oh.samu", TASK, {"c": "vehicle_transfer", "y": draft})
    msg = body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "CHANGE_INVALID"
    assert f"{catalog_copy / 'policies' / 'tasks' / 'vehicle_transfer.yaml'}:" in msg and "appears twice" in msg


async def test_retiring_a_field_in_use_is_refused_naming_the_tasks(admin_api):
    api = await admin_api()
    _, body = await api.gql("han.catalog", "mutation { retireField(id: \"citizen.name\") { id } }")
    message = body["errors"][0]["message"]
    assert "basic_livelihood" in message and "vehicle_transfer" in message and "move_in_report" in message
    _, body = await api.gql("han.catalog", "mutation { retireField(id: \"citizen.sex\") { id } }")
    assert "move_in_report" in body["errors"][0]["message"]
    _, body = await api.gql("han.catalog", "mutation { retireField(id: \"citizen.vehicle_plate_numbers\") { status } }")
    assert body["data"]["retireField"]["status"] == "applied"  # used by no task: narrowing, applied at once


async def test_narrowing_applies_at_once_and_any_version_can_be_restored(admin_api, catalog_copy, data_dir):
    api = await admin_api()
    path = catalog_copy / "policies" / "tasks" / "move_in_report.yaml"
    original = path.read_text(encoding="utf-8")
    narrower = original.replace("      - citizen.sex\n", "")
    _, body = await api.gql("oh.samu", TASK, {"c": "move_in_report", "y": narrower})
    change = body["data"]["proposeTask"]
    assert change["status"] == "applied" and change["widening"] == []
    assert "-      - citizen.sex" in change["diff"]
    rrn = citizens(data_dir, 1)[0]
    _, screen = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "N-1"})
    assert "citizen.sex" not in fields_of(screen["data"]["screen"])
    _, body = await api.gql("oh.samu", "mutation($c: ID!) { restoreVersion(change: $c) { id status widening } }",
                            {"c": change["id"]})
    restore = body["data"]["restoreVersion"]
    assert restore["status"] == "pending" and "gains field citizen.sex" in restore["widening"][0]  # widening again
    _, body = await api.gql("kang.samu", APPROVE, {"id": restore["id"]})
    assert body["data"]["approveChange"]["status"] == "applied"
    assert path.read_text(encoding="utf-8") == original  # comments and layout as they were
    _, body = await api.gql("han.catalog", "{ changes { id status summary proposer approver } }")
    assert [c["status"] for c in body["data"]["changes"]][:2] == ["applied", "applied"]


async def test_a_crash_between_write_and_rename_leaves_the_old_files_intact(admin_api, catalog_copy, monkeypatch):
    api = await admin_api()
    path = catalog_copy / "policies" / "tasks" / "move_in_report.yaml"
    before = path.read_bytes()

    def crash(*_args, **_kw):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    narrower = before.decode().replace("      - citizen.sex\n", "")
    with pytest.raises(OSError):
        await api.app.state.runtime.admin.save_task(
            __import__("oneScreen.policy", fromlist=["Caller"]).Caller("oh.samu", "오사무", "행안부", "national",
                                                                       frozenset({"task_configurer"})),
            "move_in_report", narrower)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []  # no temp file left


async def test_a_caseworker_cannot_reach_any_admin_operation(admin_api, catalog_copy):
    api = await admin_api()
    ops = [(COLUMNS, {"l": "mois.resident"}), (MAP, {"i": EMAIL}), ("{ changes { id } }", {}),
           (TASK, {"c": "move_in_report", "y": "code: x"}), (APPROVE, {"id": "1"}),
           ("mutation { retireField(id: \"citizen.sex\") { id } }", {}),
           ("mutation { restoreVersion(change: \"1\") { id } }", {}),
           ("""{ previewTask(code: "x", yaml: "code: x") { ledgers } }""", {})]
    before = (catalog_copy / "field_catalog.yaml").read_bytes()
    for query, variables in ops:
        _, body = await api.gql("kim.jumin", query, variables)
        assert body["errors"][0]["extensions"]["code"] == "ADMIN_FORBIDDEN", (query, body)
    assert (catalog_copy / "field_catalog.yaml").read_bytes() == before


async def test_a_task_draft_preview_names_its_ledgers_and_what_it_newly_discloses(admin_api, catalog_copy):
    api = await admin_api()
    text = (catalog_copy / "policies" / "tasks" / "vehicle_transfer.yaml").read_text(encoding="utf-8")
    draft = text.replace("      - citizen.vehicles\n", "      - citizen.vehicles\n      - citizen.monthly_premium\n")
    _, body = await api.gql("oh.samu", """query($y: String!) { previewTask(code: "vehicle_transfer", yaml: $y) {
        ledgers newlyDisclosed } }""", {"y": draft})
    preview = body["data"]["previewTask"]
    assert preview["ledgers"] == ["mois.resident", "molit.vehicle", "nhis.eligibility"]
    assert preview["newlyDisclosed"] == ["task vehicle_transfer: gains field citizen.monthly_premium"]


def test_the_committed_json_schemas_are_generated_from_the_loader_models():
    """Editors validate field_catalog.yaml and policies/ as admins type, with schemas/ (regenerate on change:
    `python -c 'from oneScreen import catalog'...` or `onescreen catalog schema` / `onescreen policy schema`)."""
    import json
    from oneScreen import catalog, policy
    from oneScreen.settings import ROOT
    expected = {"field_catalog.schema.json": catalog.json_schema(),
                **{f"{k}.schema.json": v for k, v in policy.json_schemas().items()}}
    for name, schema in expected.items():
        assert json.loads((ROOT / "schemas" / name).read_text(encoding="utf-8")) == schema, name


def test_admins_who_keep_the_configuration_in_git_use_the_cli(catalog_copy, data_dir, tmp_path):
    from test_catalog import run_cli
    env = {"ONESCREEN_DATA_DIR": str(data_dir), "ONESCREEN_CATALOG": str(catalog_copy / "field_catalog.yaml"),
           "ONESCREEN_POLICIES": str(catalog_copy / "policies")}
    listing = run_cli("catalog", "introspect", "--ledger", "mois.resident", "--user", "han.catalog", env_extra=env)
    assert listing.returncode == 0 and "citizen.name" in listing.stdout
    draft = tmp_path / "vehicle_transfer.yaml"
    original = (catalog_copy / "policies" / "tasks" / "vehicle_transfer.yaml").read_text(encoding="utf-8")
    draft.write_text(original.replace("      - citizen.vehicles\n", "      - citizen.vehicles\n      - citizen.sex\n"),
                     encoding="utf-8")
    proposed = run_cli("task", "propose", str(draft), "--user", "oh.samu", env_extra=env)
    assert proposed.returncode == 0 and "pending" in proposed.stdout and "gains field citizen.sex" in proposed.stdout
    change_id = proposed.stdout.split()[1].rstrip(":")
    self_approved = run_cli("changes", "approve", change_id, "--user", "oh.samu", env_extra=env)
    assert self_approved.returncode == 1 and "four eyes" in self_approved.stderr
    approved = run_cli("changes", "approve", change_id, "--user", "kang.samu", env_extra=env)
    assert approved.returncode == 0 and "applied" in approved.stdout
    assert "citizen.sex" in (catalog_copy / "policies" / "tasks" / "vehicle_transfer.yaml").read_text(encoding="utf-8")
    caseworker = run_cli("changes", "list", "--user", "kim.jumin", env_extra=env)
    assert caseworker.returncode == 1 and "may not" in caseworker.stderr


async def test_a_running_service_picks_up_changes_made_elsewhere(admin_api, catalog_copy, data_dir):
    """Another worker, or the CLI, applied a change: the service reloads it (validated) without a restart."""
    import asyncio
    api = await admin_api()
    runtime = api.app.state.runtime
    watcher = asyncio.ensure_future(runtime.watch_config(interval=0.05))
    try:
        path = catalog_copy / "policies" / "tasks" / "move_in_report.yaml"
        path.write_text(path.read_text(encoding="utf-8").replace("      - citizen.sex\n", ""), encoding="utf-8")
        for _ in range(100):
            await asyncio.sleep(0.05)
            if "citizen.sex" not in runtime.snapshot.policies.tasks["move_in_report"].fields:
                break
        assert "citizen.sex" not in runtime.snapshot.policies.tasks["move_in_report"].fields
        path.write_text("code: [broken", encoding="utf-8")
        await asyncio.sleep(0.3)
        assert runtime.config_error and "move_in_report" in runtime.snapshot.policies.tasks
    finally:
        watcher.cancel()


def test_server_messages_put_counts_and_words_in_agreement(catalog_copy):
    """"new task t discloses 1 field", not "1 fields" (the CLI prints these reasons as they are)."""
    from oneScreen import catalog as catalog_mod, policy as policy_mod
    from oneScreen.changes import widening
    from oneScreen.errors import counted
    assert [counted(n, "field") for n in (0, 1, 2)] == ["0 fields", "1 field", "2 fields"]
    cat = catalog_mod.load(catalog_copy / "field_catalog.yaml")
    old = policy_mod.load(catalog_copy / "policies", cat)
    (catalog_copy / "policies" / "tasks" / "one_field.yaml").write_text(
        "code: one_field\nname: 한 항목\nname_en: One field\nlegal_basis: 법\nlegal_basis_en: Act\nsubject: citizen\n"
        "roles: [welfare_officer]\nsections:\n  - title: 가\n    title_en: A\n    fields:\n      - citizen.name\n",
        encoding="utf-8")
    new = policy_mod.load(catalog_copy / "policies", cat)
    assert widening(cat, old, cat, new) == ["new task one_field discloses 1 field"]


DEFERRAL = "deferred_disclosure:\n  legal_basis: 국민기초생활 보장법 제23조제2항\n  period_days: 90\nreceipt_case_ref: hidden\n"


@pytest.mark.parametrize("bad, line, message", [
    ("period_days: 90", "period_days: 0",
     "deferred_disclosure.period_days: Input should be greater than or equal to 1"),
    ("period_days: 90", "period_days: 99999", "deferred_disclosure.period_days: Input should be less than or equal"),
    ("period_days: 90", "period_days: soon", "deferred_disclosure.period_days: Input should be a valid integer"),
    ("period_days: 90", "until: 2027-02-30", "until: '2027-02-30' is not a valid timestamp: day is out of range"),
    ("  legal_basis: 국민기초생활 보장법 제23조제2항\n", "", "deferred_disclosure.legal_basis: Field required"),
    ("국민기초생활 보장법 제23조제2항", "' '", "deferred_disclosure.legal_basis: Value error, the legal basis that lets"),
    ("receipt_case_ref: hidden", "receipt_case_ref: partial", "receipt_case_ref: Input should be 'shown' or 'hidden'"),
])
async def test_a_bad_deferral_or_receipt_case_ref_is_refused_naming_the_field(admin_api, catalog_copy, bad, line,
                                                                              message):
    """Invariant 8 for the task editor's deferral controls: a bad period (out of range, not a number, no such
    day), a missing or blank legal basis, or a receipt_case_ref other than shown/hidden is refused with the
    file, the line and the field; nothing is stored. (A blank basis was taken, and a day that does not exist
    was an internal error with no file or line.)"""
    api = await admin_api()
    path = catalog_copy / "policies" / "tasks" / "move_in_report.yaml"
    text = path.read_text(encoding="utf-8")
    draft = text.replace("sections:\n", DEFERRAL.replace(bad, line, 1) + "sections:\n", 1)
    _, body = await api.gql("oh.samu", TASK, {"c": "move_in_report", "y": draft})
    assert body["errors"][0]["extensions"]["code"] == "CHANGE_INVALID", body
    msg = body["errors"][0]["message"]
    assert f"{path}:" in msg and message in msg, msg
    _, changes = await api.gql("oh.samu", "{ changes { id } }")
    assert changes["data"]["changes"] == []
    assert path.read_text(encoding="utf-8") == text


async def test_a_deferral_proposed_from_the_editor_waits_for_a_second_admin_and_then_holds(admin_api, catalog_copy):
    """Deferring a task's receipts and hiding its case reference tell the subject less: a pending change (four
    eyes); once approved, the running task defers and hides, and the editor's definition shows both."""
    api = await admin_api()
    path = catalog_copy / "policies" / "tasks" / "move_in_report.yaml"
    draft = path.read_text(encoding="utf-8").replace("sections:\n", DEFERRAL + "sections:\n", 1)
    _, body = await api.gql("oh.samu", TASK, {"c": "move_in_report", "y": draft})
    p = body["data"]["proposeTask"]
    assert p["status"] == "pending" and any("deferred_disclosure" in w for w in p["widening"]), p
    _, body = await api.gql("kang.samu", APPROVE, {"id": p["id"]})
    assert body["data"]["approveChange"]["status"] == "applied", body
    task = api.app.state.runtime.snapshot.policies.tasks["move_in_report"]
    assert task.deferred.period_days == 90 and task.receipt_case_ref == "hidden"
    _, body = await api.gql("oh.samu", """{ catalog { tasks { code receiptCaseRef
                                            deferredDisclosure { legalBasis until periodDays } } } }""")
    [d] = [t for t in body["data"]["catalog"]["tasks"] if t["code"] == "move_in_report"]
    assert d == {"code": "move_in_report", "receiptCaseRef": "hidden", "deferredDisclosure": {
        "legalBasis": "국민기초생활 보장법 제23조제2항", "until": None, "periodDays": 90}}
