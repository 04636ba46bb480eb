"""Policy as data: masking, consent, jurisdiction through the service (invariants 1, 2 and 6). The decision
tables (caller, task, subject facts, field -> decision) are data: policies/tests/*.yaml, run by
test_policy_cases.py and `onescreen policy test`."""
from __future__ import annotations

import pytest

from oneScreen import catalog as catalog_mod, masking, policy
from oneScreen.policy import Caller, Status, Subject, decide
from oneScreen.settings import ROOT

from conftest import sample
from test_screen import GANGNAM, SCREEN, citizens, fields_of

CAT = catalog_mod.load(ROOT / "field_catalog.yaml")
POL = policy.load(ROOT / "policies", CAT)


def caller(roles, region="11680", user="u"):
    return Caller(user, user, "org", region, frozenset(roles))


def test_a_nationwide_caller_needs_no_region_lookup():
    national = caller(["welfare_officer"], region="national")
    assert decide(national, POL.tasks["basic_livelihood"], "citizen.name", Subject()).status is Status.OK
    no_region = caller(["welfare_officer"], region="")
    assert decide(no_region, POL.tasks["basic_livelihood"], "citizen.name", Subject()).status is Status.DENIED


@pytest.mark.parametrize("strategy,raw,masked", [
    ("rrn", "900101-1234567", "900101-1******"), ("name", "홍길동", "홍*동"), ("name", "남궁민수", "남**수"),
    ("phone", "010-1234-5678", "010-****-5678"), ("date_year", "1990-01-01", "1990"),
    ("address", "서울특별시 종로구 자하문로 45, 302호 (청운동)", "서울특별시 종로구 청운동"),
    ("address", "경기도 수원시 영통구 영통동 1004-3번지", "경기도 수원시 영통구 영통동"),
    ("rrn", "garbage", "******-*******"),
])
def test_masking_strategies(strategy, raw, masked):
    assert masking.apply(strategy, raw) == masked


async def test_masked_values_never_leave_raw(api, data_dir, sql_log):
    """Invariant 6: vehicle_transfer sees the RRN masked; the raw RRN is nowhere in the response."""
    rrn = citizens(data_dir, 1)[0]
    _, body = await api.gql("choi.chaeryang", SCREEN, {"t": "vehicle_transfer", "s": rrn, "c": "M-1"})
    got = fields_of(body["data"]["screen"])
    assert got["citizen.rrn"]["status"] == "MASKED" and got["citizen.rrn"]["value"] == rrn[:8] + "******"
    body["data"]["screen"].pop("subject")  # the caller's own input, echoed
    assert rrn[7:] not in str(body)
    typed = """query($s: ID!) { citizen(rrn: $s, task: "vehicle_transfer", caseRef: "M-2") { rrn name } }"""
    _, body = await api.gql("choi.chaeryang", typed, {"s": rrn})
    assert body["data"]["citizen"]["rrn"] == rrn[:8] + "******"


async def test_record_columns_are_masked_inside_lists(api, data_dir):
    rrn = citizens(data_dir, 1, "rrn IN (SELECT rrn FROM resident WHERE hshld_rel = '본인')")[0]
    _, body = await api.gql("jung.jutaek", SCREEN, {"t": "housing_special_supply", "s": rrn, "c": "H-1"})
    got = fields_of(body["data"]["screen"])
    family = got["citizen.family"]
    row = sample(data_dir, "mois_resident:SELECT road_addr FROM resident WHERE rrn = ?", rrn)[0]
    assert got["citizen.address"]["status"] == "MASKED" and got["citizen.address"]["value"] == masking.address(row[0])
    if family["status"] != "NOT_FOUND":
        assert family["status"] == "MASKED"
        raw = {r[0] for r in sample(data_dir, "court_family:SELECT rel_name FROM family_relation WHERE rrn = ?", rrn)}
        shown = {m["name"] for m in family["value"]}
        assert shown == {masking.name(n) for n in raw} and not (raw & shown)


async def test_consent_gated_fields_are_not_fetched_until_consent_is_recorded(api, data_dir, sql_log):
    rrn = citizens(data_dir, 1, GANGNAM)[0]
    _, body = await api.gql("lee.bokji", SCREEN, {"t": "basic_livelihood", "s": rrn, "c": "W-1"})
    got = fields_of(body["data"]["screen"])
    assert got["citizen.monthly_premium"]["status"] == "CONSENT_REQUIRED"
    assert got["citizen.insurance_dependants"]["status"] == "CONSENT_REQUIRED"
    assert "eligibility" not in "\n".join(sql_log) and "dependant" not in "\n".join(sql_log)

    mutation = """mutation($s: ID!, $m: String!, $e: String) { recordConsent(task: "basic_livelihood", subject: $s,
        caseRef: "W-1", method: $m, exception: $e) { task method exception noticeDeferred recordedBy } }"""
    _, bad = await api.gql("lee.bokji", mutation, {"s": rrn, "m": "telepathy"})
    assert bad["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    _, ok = await api.gql("lee.bokji", mutation, {"s": rrn, "m": "written"})
    assert ok["data"]["recordConsent"] == {"task": "basic_livelihood", "method": "written", "exception": None,
                                           "noticeDeferred": False, "recordedBy": "lee.bokji"}
    _, body = await api.gql("lee.bokji", SCREEN, {"t": "basic_livelihood", "s": rrn, "c": "W-1"})
    got = fields_of(body["data"]["screen"])
    premium = sample(data_dir, "nhis_eligibility:SELECT mthly_prm FROM eligibility WHERE rrn = ?", rrn)
    assert got["citizen.monthly_premium"]["status"] == ("OK" if premium else "NOT_FOUND")
    if premium:
        assert got["citizen.monthly_premium"]["value"] == premium[0][0]


async def test_an_exception_code_stands_for_consent_and_defers_the_notice(api, data_dir):
    rrn = citizens(data_dir, 2, GANGNAM)[1]
    _, ok = await api.gql("lee.bokji", """mutation($s: ID!) { recordConsent(task: "basic_livelihood", subject: $s,
        caseRef: "W-2", method: "exception", exception: "EMERGENCY") { noticeDeferred exception } }""", {"s": rrn})
    assert ok["data"]["recordConsent"] == {"noticeDeferred": True, "exception": "EMERGENCY"}
    _, body = await api.gql("lee.bokji", SCREEN, {"t": "basic_livelihood", "s": rrn, "c": "W-2"})
    assert fields_of(body["data"]["screen"])["citizen.insured_type"]["status"] in ("OK", "NOT_FOUND")


async def test_a_district_caseworker_sees_nothing_of_a_subject_outside_the_district(api, data_dir, sql_log):
    rrn = citizens(data_dir, 1, "legal_dong_cd NOT LIKE '11680%'")[0]
    _, body = await api.gql("lee.bokji", SCREEN, {"t": "basic_livelihood", "s": rrn, "c": "J-1"})
    got = fields_of(body["data"]["screen"])
    assert {f["status"] for f in got.values()} == {"DENIED"}
    assert all("jurisdiction" in (f["reason"] or "") or "관할" in f["reason"] for f in got.values())
    sent = "\n".join(sql_log)
    assert len(sql_log) == 1 and "legal_dong_cd" in sent and "name" not in sent.split("--")[0]


async def test_cached_values_never_answer_a_task_that_denies_or_masks_them(api, data_dir):
    """Policy applies after the cache: a value read for one task and cached is still denied or masked for another."""
    rrn = citizens(data_dir, 1, "mbl_telno IS NOT NULL")[0]
    phone = sample(data_dir, "mois_resident:SELECT mbl_telno FROM resident WHERE rrn = ?", rrn)[0][0]
    q = """query($s: ID!) { citizen(rrn: $s, task: "move_in_report", caseRef: "K-1") { rrn mobilePhone name } }"""
    _, body = await api.gql("multi.counter", q, {"s": rrn})  # full RRN and the phone (masked) are read and cached
    assert body["data"]["citizen"]["rrn"] == rrn
    q2 = """query($s: ID!) { a: citizen(rrn: $s, task: "vehicle_transfer", caseRef: "K-2") { rrn mobilePhone name } }"""
    _, body = await api.gql("multi.counter", q2, {"s": rrn})
    assert body["data"]["a"]["rrn"] == rrn[:8] + "******" and body["data"]["a"]["mobilePhone"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FIELD_DENIED"]
    assert phone not in str(body) and rrn not in str(body)


async def test_unconsented_fields_of_one_subject_stay_closed_when_another_consented(api, data_dir):
    """In one request of a batch task (many subjects per request), each subject's consent is its own."""
    a, b = citizens(data_dir, 2, GANGNAM)
    await api.gql("lee.bokji", """mutation($s: ID!) { recordConsent(task: "basic_livelihood_review", subject: $s,
        caseRef: "K-3", method: "written") { method } }""", {"s": a})
    q = """query($a: ID!, $b: ID!) {
      x: citizen(rrn: $a, task: "basic_livelihood_review", caseRef: "K-3") { insuredType }
      y: citizen(rrn: $b, task: "basic_livelihood_review", caseRef: "K-4") { insuredType } }"""
    _, body = await api.gql("lee.bokji", q, {"a": a, "b": b})
    assert body["data"]["y"]["insuredType"] is None
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [(["y", "insuredType"], "CONSENT_REQUIRED")]


async def test_a_repeated_typed_query_is_decided_for_each_caller_subject_and_configuration(make_app, data_dir, tmp_path):
    """Typed queries remember their decisions per (task, selection, roles, jurisdiction, facts). The same query
    text, asked again and again, must still answer each caller, each subject's consent and region, and each
    reloaded task set as if decided afresh."""
    import shutil

    import httpx

    from conftest import Api
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    app = make_app(ONESCREEN_POLICIES=str(policies))
    a, b = citizens(data_dir, 2, GANGNAM)
    outside = citizens(data_dir, 1, "legal_dong_cd NOT LIKE '11680%'")[0]
    q = """query($s: ID!) { citizen(rrn: $s, task: "basic_livelihood", caseRef: "M-1") { name insuredType } }"""

    async def codes(api: Api, user: str, rrn: str) -> dict:
        _, body = await api.gql(user, q, {"s": rrn})
        out = {e["path"][-1]: e["extensions"]["code"] for e in body.get("errors", ())}
        if body["data"]["citizen"] is None:
            return {"citizen": out["citizen"]}
        return {"name": out.get("name", "OK"), "insuredType": out.get("insuredType", "OK")}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://onescreen.test") as c:
        api = Api(c, data_dir, app)
        try:
            await api.gql("lee.bokji", """mutation($s: ID!) { recordConsent(task: "basic_livelihood", subject: $s,
                caseRef: "M-1", method: "written") { method } }""", {"s": a})
            for _ in range(2):  # the second round is answered from the remembered decisions
                assert await codes(api, "lee.bokji", a) == {"name": "OK", "insuredType": "OK"}
                assert await codes(api, "lee.bokji", b) == {"name": "OK", "insuredType": "CONSENT_REQUIRED"}
                assert await codes(api, "lee.bokji", outside) == {"name": "FIELD_DENIED", "insuredType": "FIELD_DENIED"}
                # the same role, another district
                assert await codes(api, "multi.counter", a) == {"name": "FIELD_DENIED", "insuredType": "FIELD_DENIED"}
                # not this caller's task at all
                assert await codes(api, "kim.jumin", a) == {"citizen": "TASK_FORBIDDEN"}
            task = policies / "tasks" / "basic_livelihood.yaml"
            task.write_text(task.read_text(encoding="utf-8").replace("      - citizen.name\n", "", 1), encoding="utf-8")
            app.state.runtime.reload()
            assert await codes(api, "lee.bokji", a) == {"name": "FIELD_DENIED", "insuredType": "OK"}
        finally:
            await app.state.runtime.close()


@pytest.fixture
def explain(monkeypatch, capsys, data_dir):
    """`onescreen policy explain ARGS` over the demo data in `data_dir` (in a thread of its own: the command runs
    its own event loop): exit code, stdout lines, stderr."""
    import asyncio
    import os

    from oneScreen import cli
    for k in [k for k in os.environ if k.startswith("ONESCREEN_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("ONESCREEN_DATA_DIR", str(data_dir))

    async def run(*args: str) -> tuple[int, list[str], str]:
        code = await asyncio.to_thread(cli.main, ["policy", "explain", *args])
        out = capsys.readouterr()
        return code, out.out.splitlines(), out.err
    return run


async def test_policy_explain_says_what_it_assumes_of_a_subject_it_was_not_given(explain):
    code, lines, _ = await explain("--user", "lee.bokji", "--task", "basic_livelihood", "--field", "citizen.rrn")
    assert code == 0 and lines[0].startswith("DENIED ")
    assert lines[1].startswith("assumed: the subject is OUTSIDE lee.bokji's region (11680)"), lines
    assert "--subject KEY" in lines[1] and "rule: jurisdiction: own_region" in lines

    code, lines, _ = await explain("--user", "lee.bokji", "--task", "basic_livelihood", "--field",
                             "citizen.monthly_premium", "--in-region", "yes")
    assert lines[0].startswith("CONSENT_REQUIRED ") and not any("region" in line for line in lines[1:2])
    assert lines[1].startswith("assumed: NO consent is recorded for task basic_livelihood"), lines

    code, lines, _ = await explain("--user", "kim.jumin", "--task", "move_in_report", "--field", "citizen.rrn")
    assert lines[0].startswith("OK ") and not any(line.startswith("assumed:") for line in lines)  # none needed


async def test_policy_explain_decides_for_a_given_subject_from_its_own_facts(api, data_dir, explain):
    inside = citizens(data_dir, 1, GANGNAM)[0]
    outside = citizens(data_dir, 1, "legal_dong_cd LIKE '11110%'")[0]
    field = ("--user", "lee.bokji", "--task", "basic_livelihood", "--field")
    code, lines, _ = await explain(*field, "citizen.rrn", "--subject", inside)
    assert code == 0 and lines[0].startswith("OK ") and lines[1] == (
        "subject: in lee.bokji's region (11680), as read from mois.resident")
    code, lines, _ = await explain(*field, "citizen.rrn", "--subject", outside)
    assert lines[0].startswith("DENIED ") and lines[1].startswith("subject: NOT in lee.bokji's region (11680)")
    assert not any(inside in line or outside in line for line in lines)  # the key is never printed back

    code, _, err = await explain(*field, "citizen.monthly_premium", "--subject", inside)
    assert code == 2 and "give --case-ref" in err  # a consent is bound to its case: which one must be said
    code, lines, _ = await explain(*field, "citizen.monthly_premium", "--subject", inside, "--case-ref", "W-9")
    assert lines[0].startswith("CONSENT_REQUIRED ")
    assert lines[2].startswith("subject: consent for task basic_livelihood and case W-9 is NOT in force")
    _, ok = await api.gql("lee.bokji", """mutation($s: ID!) { recordConsent(task: "basic_livelihood", subject: $s,
        caseRef: "W-9", method: "written") { method } }""", {"s": inside})
    assert ok["data"]["recordConsent"] == {"method": "written"}
    code, lines, _ = await explain(*field, "citizen.monthly_premium", "--subject", inside, "--case-ref", "W-9")
    assert lines[0].startswith("OK ") and "subject: consent for task basic_livelihood and case W-9 is in force" in lines
    code, lines, _ = await explain(*field, "citizen.monthly_premium", "--subject", inside, "--case-ref", "W-10")
    assert lines[0].startswith("CONSENT_REQUIRED ")  # another case of the same subject: its consent opens nothing

    code, lines, err = await explain(*field, "citizen.rrn", "--subject", "not-an-rrn")
    assert code == 2 and "--subject is not a valid Resident registration number" in err and "not-an-rrn" not in err
    code, _, err = await explain(*field, "citizen.rrn", "--subject", inside, "--in-region", "yes")
    assert code == 2 and "not both" in err


CONSENT = """mutation($t: ID!, $s: ID!) { recordConsent(task: $t, subject: $s, caseRef: "C-9", method: "written") {
  method recordedBy } }"""


async def test_consent_is_recorded_only_within_the_callers_jurisdiction(api, data_dir, sql_log):
    """Recording consent follows the rules of reading: a 강남구 officer cannot record consent for a 수원
    resident (OUTSIDE_JURISDICTION, nothing stored, so 수원's own officers still see CONSENT_REQUIRED), nor can
    a sign-in without a region; in the district it works. Only the subject's region is read to decide."""
    from conftest import token_with
    suwon = citizens(data_dir, 1, "legal_dong_cd LIKE '41117%'")[0]
    suwon_officer = token_with(data_dir, "yeongtong.bokji", ["welfare_officer"], org="수원시 영통구청", region="41117")
    for who, token in (("lee.bokji", None),
                       (None, token_with(data_dir, "no.region", ["welfare_officer"]))):
        status, body = await api.gql(who, CONSENT, {"t": "basic_livelihood", "s": suwon}, token=token)
        assert status == 200 and body["data"] is None, body
        [error] = body["errors"]
        assert error["extensions"]["code"] == "OUTSIDE_JURISDICTION" and suwon not in error["message"]
    assert all("legal_dong_cd" in s.split("--")[0] and "mthly_prm" not in s for s in sql_log)
    consents = api.app.state.runtime.consents
    pseudonym = api.app.state.runtime.snapshot.pseudonym_key
    from oneScreen.audit import pseudonymise
    assert not await consents.has("basic_livelihood", pseudonymise(pseudonym, "citizen", suwon), "C-9")
    _, body = await api.gql(None, SCREEN, {"t": "basic_livelihood", "s": suwon, "c": "C-9"}, token=suwon_officer)
    assert fields_of(body["data"]["screen"])["citizen.monthly_premium"]["status"] == "CONSENT_REQUIRED"
    # the district's own officer records it, and the field opens
    status, body = await api.gql(None, CONSENT, {"t": "basic_livelihood", "s": suwon}, token=suwon_officer)
    assert status == 200 and body["data"]["recordConsent"]["recordedBy"] == "yeongtong.bokji", body
    _, body = await api.gql(None, SCREEN, {"t": "basic_livelihood", "s": suwon, "c": "C-9"}, token=suwon_officer)
    assert fields_of(body["data"]["screen"])["citizen.monthly_premium"]["status"] in ("OK", "NOT_FOUND")
    # and lee.bokji, in his own district, records consent as before
    gangnam = citizens(data_dir, 1, GANGNAM)[0]
    status, body = await api.gql("lee.bokji", CONSENT, {"t": "basic_livelihood", "s": gangnam})
    assert status == 200 and body["data"]["recordConsent"]["method"] == "written"


async def test_a_date_masked_to_its_year_reads_the_same_on_the_screen_and_the_typed_api(make_app, data_dir, catalog_copy):
    """Invariant 6, and one answer for one decision: `mask: date_year` on a date field passes validation, and
    both APIs show the year alone (the typed API answered "Internal error": its Date type took only full dates)."""
    import httpx

    from conftest import Api

    task = catalog_copy / "policies" / "tasks" / "move_in_report.yaml"
    task.write_text(task.read_text(encoding="utf-8").replace(
        "      - citizen.birth_date\n", "      - field: citizen.birth_date\n        mask: date_year\n"), encoding="utf-8")
    app = make_app(ONESCREEN_CATALOG=str(catalog_copy / "field_catalog.yaml"),
                   ONESCREEN_POLICIES=str(catalog_copy / "policies"))
    rrn, birth = sample(data_dir, "mois_resident:SELECT rrn, birth_date FROM resident ORDER BY rrn LIMIT 1")[0]
    year = str(birth)[:4]
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            api = Api(client, data_dir, app)
            status, body = await api.gql("kim.jumin", f'{{ citizen(rrn: "{rrn}", task: "move_in_report", '
                                                      'caseRef: "2026-전입-0001") { birthDate name } }')
            assert status == 200 and "errors" not in body, body
            assert body["data"]["citizen"]["birthDate"] == year
            status, body = await api.gql("kim.jumin", SCREEN_BIRTH, {"s": rrn})
            assert status == 200 and "errors" not in body, body
            field = next(f for s in body["data"]["screen"]["sections"] for f in s["fields"] if f["id"] == "citizen.birth_date")
            assert (field["status"], field["value"]) == ("MASKED", year)
    finally:
        await app.state.runtime.close()


SCREEN_BIRTH = """query($s: ID!) { screen(task: "move_in_report", subject: $s, caseRef: "2026-전입-0001",
  fields: ["citizen.birth_date"]) { sections { fields { id status value } } } }"""


def test_a_mask_that_would_change_a_fields_type_is_refused_at_load(catalog_copy):
    """Every mask gives a string: one on a number would break its type under the typed API's clients. Refused with
    the file and line, as every configuration error (invariant 8)."""
    from oneScreen import catalog as catalog_mod, policy as policy_mod
    from oneScreen.errors import ConfigErrors

    cat = catalog_mod.load(catalog_copy / "field_catalog.yaml")
    number = next(f for f in cat.fields.values() if f.type == "integer" and f.subject == "citizen" and not f.is_link)
    task = catalog_copy / "policies" / "tasks" / "move_in_report.yaml"
    task.write_text(task.read_text(encoding="utf-8").replace(
        "      - citizen.sex\n", f"      - citizen.sex\n      - field: {number.id}\n        mask: name\n"), encoding="utf-8")
    with pytest.raises(ConfigErrors) as refused:
        policy_mod.load(catalog_copy / "policies", cat)
    assert "move_in_report.yaml:" in str(refused.value)
    assert "mask name does not apply to a field of type integer" in str(refused.value)


def test_a_column_mask_on_a_field_that_is_no_record_is_refused_at_load(catalog_copy):
    """A mapping masks a record's columns. On a scalar field it named the field's own column and passed
    validation, then masking the value failed (a string has no columns): refused with file and line."""
    from oneScreen import catalog as catalog_mod, policy as policy_mod
    from oneScreen.errors import ConfigErrors

    task = catalog_copy / "policies" / "tasks" / "move_in_report.yaml"
    task.write_text(task.read_text(encoding="utf-8").replace(
        "      - citizen.birth_date\n", "      - field: citizen.birth_date\n        mask: {birth_date: date_year}\n"),
        encoding="utf-8")
    with pytest.raises(ConfigErrors) as refused:
        policy_mod.load(catalog_copy / "policies", catalog_mod.load(catalog_copy / "field_catalog.yaml"))
    [error] = refused.value.errors
    assert error.file == str(task) and error.line == 17, error.message
    assert error.reason == "a date field masks with one strategy: mask: STRATEGY (a mapping masks a record's columns)"


@pytest.mark.parametrize("folder, name, key, what", [("tasks", "move_in_report.yaml", "code", "task code"),
                                                     ("agreements", None, "id", "agreement id")])
def test_a_task_code_or_agreement_id_two_files_define_is_refused_naming_both(tmp_path, folder, name, key, what):
    import shutil

    from oneScreen.errors import ConfigErrors
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    first = policies / folder / name if name else sorted((policies / folder).glob("*.yaml"))[0]
    (policies / folder / "zz_copy.yaml").write_text(first.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigErrors) as refused:
        policy.load(policies, CAT)
    text = str(refused.value)
    assert f"zz_copy.yaml:1: {what} " in text and f"is already defined in {first}" in text
