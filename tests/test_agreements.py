"""Sharing agreements (issue 22): the providing agency's word behind every field a task reads.

A field no agreement in force covers is DENIED and never read from its ledger; an agreement that ends denies on
the next request, with no restart; a provider's revocation applies at once; a new or widened agreement needs
an admin of the providing agency AND one of the using side."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from oneScreen import agreements as agreements_mod, catalog as catalog_mod, policy as policy_mod
from oneScreen.admin import AdminForbidden
from oneScreen.changes import FourEyes
from oneScreen.policy import Caller, Status
from test_admin import admin_api  # noqa: F401 - the fixture
from test_config_store import pg_config_url, store_api  # noqa: F401 - fixtures
from conftest import sample, token_with
from test_screen import SCREEN, citizens, fields_of

ROOT = Path(__file__).resolve().parent.parent
KST = dt.timezone(dt.timedelta(hours=9))
JONGNO = Caller("kim.jumin", "김주민", "서울특별시 종로구청 민원여권과", "11110",
                frozenset({"resident_registration_officer"}))
MOIS_ADMIN = Caller("an.hyeopyak", "안협약", "행정안전부 공동이용과", "national", frozenset({"agreement_admin"}))
MOLIT_ADMIN = Caller("bae.hyeopyak", "배협약", "국토교통부 건축정책과", "national", frozenset({"agreement_admin"}))
MOLIT_OTHER = Caller("cho.hyeopyak", "조협약", "국토교통부 토지정책과", "national", frozenset({"agreement_admin"}))


def agreement_file(config: Path, aid: str) -> Path:
    return config / "policies" / "agreements" / f"{aid}.yaml"


def without(text: str, field_id: str) -> str:
    assert f"  - {field_id}\n" in text
    return text.replace(f"  - {field_id}\n", "", 1)


def at(day: dt.date):
    """A clock that reads noon (KST) of `day`."""
    return lambda: dt.datetime(day.year, day.month, day.day, 12, tzinfo=KST).astimezone(dt.timezone.utc)


# ------------------------------------------------------------------ the pure decision


def test_decide_denies_a_field_no_agreement_covers_and_keeps_the_providers_mask(catalog_copy):
    path = agreement_file(catalog_copy, "mois-move-in-report")
    text = without(path.read_text(encoding="utf-8"), "citizen.sex")
    # the provider requires the RRN masked, whatever the task's full-value basis says
    path.write_text(text.replace("  - citizen.rrn\n", "  - {field: citizen.rrn, mask: rrn}\n"), encoding="utf-8")
    cat = catalog_mod.load(catalog_copy / "field_catalog.yaml")
    task = policy_mod.load(catalog_copy / "policies", cat).tasks["move_in_report"]
    day = dt.date(2026, 6, 1)
    d = policy_mod.decide(JONGNO, task, "citizen.sex", day=day)
    assert (d.status, d.reason, d.reason_en) == (Status.DENIED, "제공기관 협약 없음",
                                                 "no agreement of the providing agency covers citizen.sex for this task")
    assert not d.allowed
    d = policy_mod.decide(JONGNO, task, "citizen.rrn", day=day)
    assert (d.status, d.mask) == (Status.MASKED, "rrn")
    assert policy_mod.decide(JONGNO, task, "citizen.name", day=day).status is Status.OK
    # before the agreement's first day, nothing is covered
    assert policy_mod.decide(JONGNO, task, "citizen.name", day=dt.date(2025, 12, 31)).status is Status.DENIED


def test_a_path_across_agencies_needs_every_agency_s_agreement(catalog_copy):
    agreement_file(catalog_copy, "molit-move-in-report").unlink()
    cat = catalog_mod.load(catalog_copy / "field_catalog.yaml")
    task = policy_mod.load(catalog_copy / "policies", cat).tasks["move_in_report"]
    day = dt.date(2026, 6, 1)
    assert policy_mod.decide(JONGNO, task, "citizen.residence>building.main_purpose", day=day).status is Status.DENIED
    assert policy_mod.decide(JONGNO, task, "citizen.household>household.members", day=day).status is Status.OK


def test_without_an_agreements_directory_nothing_is_enforced(catalog_copy):
    import shutil
    shutil.rmtree(catalog_copy / "policies" / "agreements")
    cat = catalog_mod.load(catalog_copy / "field_catalog.yaml")
    pol = policy_mod.load(catalog_copy / "policies", cat)
    assert pol.agreements is None
    assert policy_mod.decide(JONGNO, pol.tasks["move_in_report"], "citizen.sex").status is Status.OK


# ------------------------------------------------------------------ the real service


async def test_a_field_outside_every_agreement_is_denied_and_never_fetched(admin_api, catalog_copy, data_dir):
    path = agreement_file(catalog_copy, "mois-move-in-report")
    path.write_text(without(path.read_text(encoding="utf-8"), "citizen.mobile_phone"), encoding="utf-8")
    api = await admin_api()
    statements: list[str] = []
    from sqlalchemy import event
    conn = api.app.state.runtime.snapshot.gateway.connectors["mois.resident"]
    event.listen(conn.engine.sync_engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: statements.append(statement))
    rrn = citizens(data_dir, 1)[0]
    status, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "2026-전입-001"})
    assert status == 200, body
    got = fields_of(body["data"]["screen"])
    phone = got["citizen.mobile_phone"]
    assert (phone["status"], phone["value"], phone["reason"]) == ("DENIED", None, "제공기관 협약 없음")
    assert got["citizen.name"]["status"] == "OK"
    sent = "\n".join(statements)
    assert "resident" in sent and "mbl_telno" not in sent  # the ledger was read, but never for the phone


async def test_an_expired_agreement_denies_the_next_request_without_a_restart(admin_api, catalog_copy, data_dir):
    path = agreement_file(catalog_copy, "mois-move-in-report")
    path.write_text(path.read_text(encoding="utf-8").replace("valid_until: 2036-12-31", "valid_until: 2030-06-30"),
                    encoding="utf-8")
    api = await admin_api()
    rt = api.app.state.runtime
    rrn = citizens(data_dir, 1)[0]
    rt.consents.clock = at(dt.date(2030, 6, 30))  # its last day
    _, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "2026-전입-001"})
    assert fields_of(body["data"]["screen"])["citizen.name"]["status"] == "OK"
    snapshot = rt.snapshot
    rt.consents.clock = at(dt.date(2030, 7, 1))  # the next day: the same snapshot, no reload
    _, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "2026-전입-001"})
    assert rt.snapshot is snapshot
    name = fields_of(body["data"]["screen"])["citizen.name"]
    assert (name["status"], name["value"], name["reasonEn"]) == ("DENIED", None, "agreement expired on 2030-06-30")


async def test_a_providers_revocation_applies_at_once(admin_api, catalog_copy, data_dir):
    api = await admin_api()
    rt = api.app.state.runtime
    rrn = citizens(data_dir, 1)[0]
    _, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "2026-전입-001"})
    assert fields_of(body["data"]["screen"])["citizen.residence>building.main_purpose"]["status"] == "OK"
    text = agreement_file(catalog_copy, "molit-move-in-report").read_text(encoding="utf-8")
    today = policy_mod.today().isoformat()
    p = await rt.admin.save_agreement(MOLIT_ADMIN, "molit-move-in-report",
                                      text.replace("duties:", f"revoked: {today}\nduties:"))
    assert (p.status, p.widening) == ("applied", ())  # narrowing: nobody else's signature needed
    _, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "2026-전입-001"})
    got = fields_of(body["data"]["screen"])
    purpose = got["citizen.residence>building.main_purpose"]
    assert (purpose["status"], purpose["value"]) == ("DENIED", None)
    assert purpose["reasonEn"] == f"agreement expired on {today}"
    assert got["citizen.name"]["status"] == "OK"  # MOIS's agreement stands


async def test_a_widening_agreement_needs_admins_of_both_agencies(admin_api, catalog_copy, data_dir):
    api = await admin_api()
    rt = api.app.state.runtime
    path = agreement_file(catalog_copy, "molit-move-in-report")
    text = path.read_text(encoding="utf-8")
    # MOLIT also shares the building's name for the move-in report, and the task reads it
    widened = text.replace("  - building.main_purpose\n", "  - building.main_purpose\n  - building.name\n")
    outsider = Caller("park.geonchuk", "박건축", "서울특별시 마포구청 건축과", "11440", frozenset({"agreement_admin"}))
    with pytest.raises(AdminForbidden):
        await rt.admin.save_agreement(outsider, "molit-move-in-report", widened)
    p = await rt.admin.save_agreement(MOLIT_ADMIN, "molit-move-in-report", widened)
    assert p.status == "pending" and p.widening == ("agreement molit-move-in-report: shares building.name too",)
    with pytest.raises(FourEyes, match="using side"):
        await rt.admin.approve(MOLIT_OTHER, p.id)  # a second admin of the same agency is not the other side
    assert (await rt.admin.store.get(p.id)).status == "pending"
    assert "building.name" not in rt.snapshot.policies.agreements.by_id["molit-move-in-report"].fields
    p = await rt.admin.approve(MOIS_ADMIN, p.id)
    assert (p.status, p.approver) == ("applied", "an.hyeopyak")
    assert "building.name" in rt.snapshot.policies.agreements.by_id["molit-move-in-report"].fields


def test_the_shipped_demo_agreements_cover_every_task_field_and_one_ends_within_30_days():
    """Every field of every shipped task, and every field read to find (search) or place (jurisdiction) its subjects."""
    cat = catalog_mod.load(ROOT / "field_catalog.yaml")
    pol = policy_mod.load(ROOT / "policies", cat)
    assert pol.agreements is not None
    officer = {t.code: Caller("u", "u", "x", "national", t.roles) for t in pol.tasks.values()}
    for t in pol.tasks.values():
        for tf in t.fields.values():
            assert tf.coverage is not None and all(c for _f, c in tf.coverage.per_field), (t.code, tf.id)
            assert policy_mod.decide(officer[t.code], t, tf.id, policy_mod.Subject(True, True),
                                     dt.date(2026, 12, 4)).allowed, (t.code, tf.id)
        # and what the service reads to find and place the task's subjects: a search's matching, the region
        st = cat.subject_types[t.subject]
        read = [*(st.search.by[0] if st.search and st.search.by else ()), *(st.search.contains if st.search else ())]
        read += [st.region_field] if t.jurisdiction == "own_region" else []
        for fid in read:
            agreements_mod.require_read(pol.agreements, (cat.fields[fid],), t.code, officer[t.code],
                                        dt.date(2026, 12, 4), "a search")
    ending = [a.id for a in pol.agreements.by_id.values() if a.valid_until == dt.date(2026, 12, 31)]
    assert ending == ["molit-building-use-change"]



# ------------------------------------------------------------------ the provider page


async def test_the_provider_page_counts_match_the_audit_trail(api, data_dir):
    import csv
    import io
    import json
    import sqlite3
    rrns = citizens(data_dir, 3)
    for i, rrn in enumerate(rrns):
        status, _ = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": f"2026-전입-00{i}"})
        assert status == 200
    status, _ = await api.gql("jung.jutaek", SCREEN, {"t": "housing_special_supply", "s": rrns[0], "c": "H-1"})
    assert status == 200
    headers = {"Authorization": f"Bearer {api.token('bae.hyeopyak')}"}
    r = await api.client.get("/admin/provider", headers=headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["agency"] == "MOLIT" and page["enforced"] is True and page["uncovered"] == []

    # the same counts, taken from the audit trail directly: MOLIT's fields read (OK, MASKED, PARTIAL) per
    # organisation, role, task and field, once per record
    cat = api.app.state.runtime.snapshot.catalog
    expected: dict[tuple, int] = {}
    with sqlite3.connect(data_dir / "audit.sqlite") as db:
        for org, role, task, fields in db.execute(
                "SELECT organisation, role, task, fields FROM onescreen_audit WHERE kind IN ('disclosure', 'search')"):
            seen = set()
            for f in json.loads(fields):
                for fid in f["id"].split(">"):
                    if f["status"] in ("OK", "MASKED", "PARTIAL") and cat.fields[fid].ledger.agency.id == "MOLIT" \
                            and fid not in seen:
                        seen.add(fid)
                        expected[(org, role, task, fid)] = expected.get((org, role, task, fid), 0) + 1
    got = {(u["organisation"], u["role"], u["task"], u["field"]): u["reads"] for u in page["usage"]}
    assert got == expected
    assert got[("서울특별시 종로구청 민원여권과", "resident_registration_officer", "move_in_report",
                "building.main_purpose")] == 3
    text = r.text
    assert not any(rrn in text for rrn in rrns) and "2026-전입" not in text  # no subject, no case

    r = await api.client.get("/admin/provider?format=csv", headers=headers)
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {(x["organisation"], x["role"], x["task"], x["field"]): int(x["reads"]) for x in rows} == expected
    assert {x["under_agreement"] for x in rows} == {"yes"}

    # another agency's admin may not read MOLIT's page; a caseworker may read none
    r = await api.client.get("/admin/provider?agency=MOLIT",
                             headers={"Authorization": f"Bearer {api.token('an.hyeopyak')}"})
    assert r.status_code == 403
    r = await api.client.get("/admin/provider", headers={"Authorization": f"Bearer {api.token('kim.jumin')}"})
    assert r.status_code == 403


async def test_the_provider_page_warns_of_agreements_ending_within_30_days(api):
    rt = api.app.state.runtime
    rt.consents.clock = at(dt.date(2026, 12, 4))
    r = await api.client.get("/admin/provider", headers={"Authorization": f"Bearer {api.token('an.hyeopyak')}"})
    assert r.status_code == 200 and r.json()["expiring"] == []  # MOIS's agreements run to 2036
    molit = {"Authorization": f"Bearer {api.token('bae.hyeopyak')}"}
    r = await api.client.get("/admin/provider", headers=molit)
    # MOLIT's agreement for building use changes ends 2026-12-31 (its renewal is signed): 27 days left
    assert [(a["id"], a["daysLeft"]) for a in r.json()["expiring"]] == [("molit-building-use-change", 27)]
    rt.consents.clock = at(dt.date(2026, 11, 30))
    r = await api.client.get("/admin/provider", headers=molit)
    assert r.json()["expiring"] == []  # 31 days ahead: not yet


# ------------------------------------------------------------------ the standard form


def test_the_template_is_korean_first_and_validates_and_errors_name_file_and_line(catalog_copy, tmp_path):
    from test_catalog import run_cli
    env = {"ONESCREEN_DATA_DIR": str(tmp_path / "data"), "ONESCREEN_CATALOG": str(catalog_copy / "field_catalog.yaml"),
           "ONESCREEN_POLICIES": str(catalog_copy / "policies")}
    out = run_cli("agreement", "template", env_extra=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("# 정보 공동이용 협약 (사전합의 참조문)")
    form = tmp_path / "form.yaml"
    form.write_text(out.stdout, encoding="utf-8")
    ok = run_cli("agreement", "validate", str(form), env_extra=env)
    assert ok.returncode == 0 and "OK (example-agreement" in ok.stdout, ok.stderr
    lines = out.stdout.splitlines()
    bad = tmp_path / "bad.yaml"
    bad.write_text(out.stdout.replace("  - citizen.name\n", "  - citizen.nmae\n")
                   .replace("tasks: [move_in_report]", "tasks: [move_out_report]"), encoding="utf-8")
    result = run_cli("agreement", "validate", str(bad), env_extra=env)
    assert result.returncode == 1
    field_line = next(i for i, x in enumerate(lines, 1) if x.startswith("  - citizen.name"))
    task_line = next(i for i, x in enumerate(lines, 1) if x.startswith("tasks:"))
    assert f"{bad}:{field_line}: unknown field 'citizen.nmae' (the catalog has no such field)" in result.stderr
    assert f"{bad}:{task_line}: unknown task 'move_out_report' (policies/tasks)" in result.stderr


async def test_a_revocation_through_the_api_shows_in_the_task_editors_preview(admin_api, catalog_copy):
    api = await admin_api()
    task_text = (catalog_copy / "policies" / "tasks" / "move_in_report.yaml").read_text(encoding="utf-8")
    preview = """query($y: String!) { previewTask(code: "move_in_report", yaml: $y) {
        newlyDisclosed denied { field reason reasonEn } } }"""
    _, body = await api.gql("oh.samu", preview, {"y": task_text})
    assert body["data"]["previewTask"]["denied"] == []
    text = agreement_file(catalog_copy, "molit-move-in-report").read_text(encoding="utf-8")
    today = policy_mod.today().isoformat()
    _, body = await api.gql("bae.hyeopyak", """mutation($id: ID!, $y: String) { proposeAgreement(id: $id, yaml: $y) {
        status widening } }""", {"id": "molit-move-in-report", "y": text.replace("duties:", f"revoked: {today}\nduties:")})
    assert body["data"]["proposeAgreement"] == {"status": "applied", "widening": []}, body
    _, body = await api.gql("oh.samu", preview, {"y": task_text})
    denied = body["data"]["previewTask"]["denied"]
    assert [d["field"] for d in denied] == ["citizen.residence>building.road_address",
                                            "citizen.residence>building.main_purpose",
                                            "citizen.residence>building.household_count"]
    assert {d["reasonEn"] for d in denied} == {f"agreement expired on {today}"}
    # the catalog the editor loads says which agreement covers what, and that this one is no longer in force
    _, body = await api.gql("oh.samu", "{ catalog { agreementsEnforced agreements { id inForce tasks fields } } }")
    agreements = {a["id"]: a for a in body["data"]["catalog"]["agreements"]}
    assert body["data"]["catalog"]["agreementsEnforced"] is True
    assert agreements["molit-move-in-report"]["inForce"] is False
    assert agreements["mois-move-in-report"]["inForce"] is True and "citizen.name" in agreements["mois-move-in-report"]["fields"]


async def test_a_providers_required_mask_is_applied_and_explained_whatever_the_task_says(admin_api, catalog_copy,
                                                                                         data_dir):
    path = agreement_file(catalog_copy, "mois-move-in-report")
    # the task shows the full RRN under its legal basis; MOIS requires it masked; and no agreement covers the sex
    path.write_text(without(path.read_text(encoding="utf-8"), "citizen.sex").replace(
        "  - citizen.rrn\n", "  - {field: citizen.rrn, mask: rrn}\n"), encoding="utf-8")
    api = await admin_api()
    rrn = citizens(data_dir, 1)[0]
    query = """query($s: ID!) { screen(task: "move_in_report", subject: $s, caseRef: "2026-전입-009") {
      sections { fields { id status value explanation { kind rule basisEn labelEn } } } } }"""
    _, body = await api.gql("kim.jumin", query, {"s": rrn})
    got = fields_of(body["data"]["screen"])
    shown = got["citizen.rrn"]
    assert shown["status"] == "MASKED" and rrn not in str(body) and shown["value"].startswith(rrn[:8])
    assert shown["explanation"]["rule"] == "provider mask rrn"
    assert "providing agency's agreement requires" in shown["explanation"]["basisEn"]
    sex = got["citizen.sex"]
    assert (sex["status"], sex["explanation"]["kind"], sex["explanation"]["rule"]) == (
        "DENIED", "DENY", "no sharing agreement in force")
    assert sex["explanation"]["labelEn"].startswith("sharing agreement rule")


async def test_with_the_configuration_store_a_revocation_is_a_new_version_applied_at_once(
        pg_config_url, store_api, catalog_copy, data_dir):
    from oneScreen import configstore
    from test_config_store import seed, store_call
    seed(pg_config_url, configstore.read_files(catalog_copy / "field_catalog.yaml", catalog_copy / "policies"))
    api = await store_api(pg_config_url)
    rt = api.app.state.runtime
    assert "policies/agreements/molit-move-in-report.yaml" in rt.snapshot.source.files  # versioned with the rest
    text = rt.snapshot.source.files["policies/agreements/molit-move-in-report.yaml"]
    p = await rt.admin.save_agreement(MOLIT_ADMIN, "molit-move-in-report",
                                      text.replace("duties:", f"revoked: {policy_mod.today().isoformat()}\nduties:"))
    assert p.status == "applied"
    assert rt.snapshot.source.version == 2 == store_call(pg_config_url, lambda s: s.active_id())
    rrn = citizens(data_dir, 1)[0]
    _, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "2026-전입-001"})
    assert fields_of(body["data"]["screen"])["citizen.residence>building.main_purpose"]["status"] == "DENIED"
    # and nothing was written to the files: they only seeded the store
    assert "revoked:" not in agreement_file(catalog_copy, "molit-move-in-report").read_text(encoding="utf-8")


# ------------------------------------------------------------------ the reads that disclose nothing


SEARCH_SUBJECTS = """query($type: String!, $q: String!, $t: ID!) { subjects(type: $type, query: $q, task: $t) {
  id fields { id status } } }"""


def statements_of(api) -> list[str]:
    """Every SQL statement the app sends to the demo's SQL ledgers from now on."""
    from sqlalchemy import event
    sent: list[str] = []
    engines = {id(c.engine.sync_engine): c.engine.sync_engine
               for c in api.app.state.runtime.snapshot.gateway.connectors.values() if hasattr(c, "engine")}
    for engine in engines.values():
        event.listen(engine, "before_cursor_execute", lambda _c, _cur, statement, *_: sent.append(statement))
    return sent


async def test_the_jurisdiction_check_reads_the_region_only_under_an_agreement(admin_api, catalog_copy, data_dir):
    """Invariant 1 (deny by default) for a read that discloses nothing (issue 22's gap): under a task limited to
    the caseworker's district, the subject's region field is read only if an agreement in force on the day covers
    THAT field for the task and the caller, as a field shown must be. Without one, nothing is read and the request
    is refused naming the field (the old code read the region whatever the agreements said). A nationwide
    caseworker reads no region: unaffected."""
    rrn = sample(data_dir, "mois_resident:SELECT rrn FROM resident WHERE legal_dong_cd LIKE '11110%' "
                           "ORDER BY rrn LIMIT 1")[0][0]
    officer = token_with(data_dir, "jongno.bokji", ["welfare_officer"], org="서울특별시 종로구청", region="11110")
    covered = await admin_api()
    _, body = await covered.gql(None, SCREEN, {"t": "basic_livelihood", "s": rrn, "c": "J-1"}, token=officer)
    assert fields_of(body["data"]["screen"])["citizen.name"]["status"] == "OK", body

    path = agreement_file(catalog_copy, "mois-basic-livelihood")
    path.write_text(without(path.read_text(encoding="utf-8"), "citizen.legal_dong_code"), encoding="utf-8")
    api = await admin_api()
    sent = statements_of(api)
    _, body = await api.gql(None, SCREEN, {"t": "basic_livelihood", "s": rrn, "c": "J-1"}, token=officer)
    [err] = body["errors"]
    assert err["extensions"]["code"] == "FIELD_DENIED", body
    assert err["message"] == ("field citizen.legal_dong_code is not read for the jurisdiction check: no agreement of "
                              "the providing agency covers citizen.legal_dong_code for this task"), err
    assert body["data"] is None or body["data"]["screen"] is None
    assert sent == []  # not the region, nor anything else
    nationwide = token_with(data_dir, "bok.jibu", ["welfare_officer"], org="보건복지부", region="national")
    _, body = await api.gql(None, SCREEN, {"t": "basic_livelihood", "s": rrn, "c": "J-1"}, token=nationwide)
    assert fields_of(body["data"]["screen"])["citizen.name"]["status"] == "OK", body
    assert not any("legal_dong_cd" in s for s in sent)


async def test_a_search_matches_by_fields_only_under_an_agreement(admin_api, catalog_copy, data_dir):
    """Invariant 1 for a search's key matching (issue 22's gap): a citizen is found by name and birth date for a
    task only if an agreement in force covers both fields for the task and the caller; otherwise the search is
    refused naming the field, and the ledger is not searched (the old code matched on them regardless, and only
    the fields shown were checked). A search by the subject's key reads no field to match: unaffected."""
    row = sample(data_dir, "mois_resident:SELECT rrn, name, birth_date FROM resident ORDER BY rrn LIMIT 1")[0]
    path = agreement_file(catalog_copy, "mois-move-in-report")
    path.write_text(without(path.read_text(encoding="utf-8"), "citizen.birth_date"), encoding="utf-8")
    api = await admin_api()
    sent = statements_of(api)
    _, body = await api.gql("kim.jumin", SEARCH_SUBJECTS, {"type": "citizen", "q": f"{row['name']} {row['birth_date']}",
                                                            "t": "move_in_report"})
    [err] = body["errors"]
    assert err["extensions"]["code"] == "FIELD_DENIED", body
    assert err["message"] == ("field citizen.birth_date is not read for a search: no agreement of the providing "
                              "agency covers citizen.birth_date for this task"), err
    assert sent == []
    _, body = await api.gql("kim.jumin", SEARCH_SUBJECTS, {"type": "citizen", "q": row["rrn"], "t": "move_in_report"})
    [match] = body["data"]["subjects"]
    shown = {f["id"]: f["status"] for f in match["fields"]}
    assert shown["citizen.name"] == "OK" and shown["citizen.birth_date"] == "DENIED"
