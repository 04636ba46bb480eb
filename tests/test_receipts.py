"""A citizen's receipts (issue 19): every disclosure about them, each field's fate and the rule behind it, never a
value (invariant 6); filtered by period, organisation and task; a proof of each that verifies without the service
(invariant 7); a deferred task's receipt sealed until an auditor releases it (an audited act)."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from test_history import look
from test_screen import SCREEN

ROOT = Path(__file__).resolve().parent.parent

RECEIPTS = """query($since: DateTime, $until: DateTime, $org: String, $task: ID) {
  myReceipts(since: $since, until: $until, organisation: $org, task: $task) {
    entries { seq hash at organisation agencies { name nameEn } task taskName legalBasis caseRef consent
              deferredBasis line lineEn linked lookedUp fields { id label labelEn status rule ruleEn basis basisEn } }
    nextCursor } }"""
HISTORY = "query($s: ID) { accessHistory(subject: $s) { entries { seq task caseRef sealedUntil } } }"
RELEASE = "mutation($seq: Int!, $r: String!) { releaseReceipt(seq: $seq, reason: $r) { seq task } }"
PROOF = "query($seq: Int!) { receiptProof(seq: $seq) }"

DEFERRED_TASK = """code: fraud_investigation
name: 부정수급 확인조사
name_en: Benefit fraud investigation
legal_basis: 국민기초생활 보장법 제23조(확인조사)
legal_basis_en: National Basic Living Security Act, Article 23 (verification)
subject: citizen
roles: [resident_registration_officer]
deferred_disclosure:
  legal_basis: 국민기초생활 보장법 제23조제2항(조사 중 통지 유예)
  period_days: 90
receipt_case_ref: hidden
sections:
  - title: 대상자
    title_en: Subject
    fields: [citizen.name, citizen.address]
"""


def with_deferred_task(tmp_path: Path) -> Path:
    """The shipped policies plus one task whose receipts are deferred."""
    d = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", d)
    (d / "tasks" / "fraud_investigation.yaml").write_text(DEFERRED_TASK, encoding="utf-8")
    return d


async def receipts(api, **variables) -> list[dict]:
    _, body = await api.gql("demo.citizen", RECEIPTS, variables)
    assert "errors" not in body, body
    return body["data"]["myReceipts"]["entries"]


def values_of(screen: dict) -> set[str]:
    out = set()
    for s in screen["sections"]:
        for f in s["fields"]:
            for v in (f["value"], f["display"]):
                if v not in (None, "", [], {}):
                    text = json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v
                    if len(text) >= 3:
                        out.add(text)
    return out


async def test_a_citizen_sees_each_field_fate_of_an_access_and_never_a_value(api, data_dir):
    """Invariant 6 on the subject's side: the receipt names every field and how it was decided, and holds none
    of the values the caseworker saw (masked ones included)."""
    from oneScreen.identity import _demo_subject
    me = _demo_subject(data_dir)
    _, screen = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": me, "c": "2026-전입-0501"})
    assert "errors" not in screen, screen
    screen = screen["data"]["screen"]
    [r] = await receipts(api)
    shown = {f["id"]: f["status"] for s in screen["sections"] for f in s["fields"]}
    fate = {"OK": "SHOWN", "MASKED": "MASKED", "DENIED": "DENIED", "CONSENT_REQUIRED": "CONSENT_REQUIRED",
            "NOT_FOUND": "NOT_SHOWN", "UNAVAILABLE": "NOT_SHOWN", "PARTIAL": "SHOWN"}
    assert {f["id"]: f["status"] for f in r["fields"]} == {k: fate[v] for k, v in shown.items()}
    assert "MASKED" in {f["status"] for f in r["fields"]}, "the demo task masks a field"
    masked = next(f for f in r["fields"] if f["status"] == "MASKED")
    assert masked["rule"].startswith("가림 규칙") and masked["ruleEn"].startswith("masking rule")
    assert (r["task"], r["taskName"], r["caseRef"]) == ("move_in_report", "전입신고", "2026-전입-0501")
    assert r["organisation"] and r["agencies"] and "전입신고" in r["line"] and "move-in" in r["lineEn"].lower()
    text = json.dumps(r, ensure_ascii=False)
    leaked = [v for v in values_of(screen) if v in text]
    assert leaked == []


async def test_receipts_are_filtered_by_period_organisation_and_task(api, data_dir):
    from oneScreen.identity import _demo_subject
    me = _demo_subject(data_dir)
    await look(api, "kim.jumin", "move_in_report", me, "2026-전입-0601")
    await look(api, "jung.jutaek", "housing_special_supply", me, "2026-주택-0602")
    everything = await receipts(api)
    assert [r["caseRef"] for r in everything] == ["2026-주택-0602", "2026-전입-0601"]
    orgs = {r["task"]: r["organisation"] for r in everything}
    assert orgs["move_in_report"] != orgs["housing_special_supply"]
    assert [r["caseRef"] for r in await receipts(api, org=orgs["move_in_report"])] == ["2026-전입-0601"]
    assert [r["caseRef"] for r in await receipts(api, task="housing_special_supply")] == ["2026-주택-0602"]
    now = datetime.now(timezone.utc)
    assert len(await receipts(api, since=(now - timedelta(hours=1)).isoformat())) == 2
    assert await receipts(api, until=(now - timedelta(hours=1)).isoformat()) == []
    _, body = await api.gql("kim.jumin", RECEIPTS, {})  # a caseworker has no receipts of their own
    assert body["errors"][0]["extensions"]["code"] == "TASK_FORBIDDEN"


async def test_a_receipt_proof_verifies_with_the_public_key_and_only_for_its_subject(api, data_dir, app):
    from oneScreen.identity import _demo_subject
    from oneScreen.verify_receipt import load_keys, verify
    me = _demo_subject(data_dir)
    await look(api, "kim.jumin", "move_in_report", me, "2026-전입-0701")
    await look(api, "kim.jumin", "move_in_report", "510922-2547567" if me != "510922-2547567" else "000110-4466961",
               "2026-전입-0702")
    [r] = await receipts(api)
    _, body = await api.gql("demo.citizen", PROOF, {"seq": r["seq"]})
    assert body["errors"][0]["message"].startswith(f"audit record {r['seq']} is not sealed")  # not yet sealed
    await app.state.runtime.audit.sealer.seal()
    _, body = await api.gql("demo.citizen", PROOF, {"seq": r["seq"]})
    assert "errors" not in body, body
    proof = json.loads(body["data"]["receiptProof"])
    _, key = await api.gql("demo.citizen", "{ auditPublicKey }")
    assert verify(proof, load_keys(key["data"]["auditPublicKey"].encode())).startswith(f"valid: audit record {r['seq']}")
    assert proof["hash"] == r["hash"]
    text = json.dumps(proof, ensure_ascii=False)
    assert "kim.jumin" not in text and "김주민" not in text  # who looked: neither their id nor their name
    _, other = await api.gql("demo.citizen", PROOF, {"seq": r["seq"] + 1})  # the other citizen's record
    assert other["errors"][0]["message"] == f"receipt {r['seq'] + 1} is not one of your receipts"


async def test_a_deferred_tasks_receipt_is_sealed_until_an_auditor_releases_it(make_app, data_dir, tmp_path):
    """The access is in the signed trail at once (the auditor sees it, with the day it opens); the citizen sees
    neither its receipt nor its access-history entry until an auditor releases it, which is itself audited."""
    import httpx

    from conftest import Api
    from oneScreen.identity import _demo_subject
    app = make_app(ONESCREEN_POLICIES=str(with_deferred_task(tmp_path)))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            api = Api(c, data_dir, app)
            me = _demo_subject(data_dir)
            await look(api, "kim.jumin", "fraud_investigation", me, "2026-조사-0001")
            await look(api, "kim.jumin", "move_in_report", me, "2026-전입-0801")
            assert [r["task"] for r in await receipts(api)] == ["move_in_report"]
            _, own = await api.gql("demo.citizen", HISTORY, {})
            assert [e["task"] for e in own["data"]["accessHistory"]["entries"]] == ["move_in_report"]
            _, audited = await api.gql("yoon.gamsa", HISTORY, {"s": me})
            entries = audited["data"]["accessHistory"]["entries"]
            sealed = next(e for e in entries if e["task"] == "fraud_investigation")
            assert sealed["sealedUntil"] == (datetime.now(timezone.utc).date() + timedelta(days=90)).isoformat()
            _, refused = await api.gql("demo.citizen", RELEASE, {"seq": sealed["seq"], "r": "let me see"})
            assert refused["errors"][0]["extensions"]["code"] == "ADMIN_FORBIDDEN"
            _, released = await api.gql("yoon.gamsa", RELEASE, {"seq": sealed["seq"], "r": "조사 종결"})
            assert "errors" not in released, released
            [_, deferred] = await receipts(api)  # newest first: the deferred access came first
            assert deferred["task"] == "fraud_investigation" and deferred["caseRef"] is None  # receipt_case_ref: hidden
            assert deferred["deferredBasis"] == "국민기초생활 보장법 제23조제2항(조사 중 통지 유예)"
            _, again = await api.gql("yoon.gamsa", RELEASE, {"seq": sealed["seq"], "r": "조사 종결"})
            assert "is not sealed" in again["errors"][0]["message"]
        store = app.state.runtime.audit
        rows = []
        async for row in _records(store):
            rows.append(row)
        [release] = [r for r in rows if r.kind == "release"]
        assert json.loads(release.detail)["released_seq"] == sealed["seq"] and release.user_id == "yoon.gamsa"
    finally:
        await app.state.runtime.close()


async def _records(store):
    async def run(conn):
        return [r async for r in store.walk(conn)]
    for r in await store.read(run):
        yield r


@pytest.mark.parametrize("bad", [{"until": "2027-01-01", "period_days": 5}, {}])
def test_a_deferred_disclosure_needs_exactly_one_end(tmp_path, bad):
    from oneScreen import catalog, policy
    d = with_deferred_task(tmp_path)
    spec = {"legal_basis": "x", **bad}
    text = DEFERRED_TASK.replace("  legal_basis: 국민기초생활 보장법 제23조제2항(조사 중 통지 유예)\n  period_days: 90\n",
                                 "".join(f"  {k}: {v}\n" for k, v in spec.items()))
    (d / "tasks" / "fraud_investigation.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(Exception) as err:
        policy.load(d, catalog.load(ROOT / "field_catalog.yaml"))
    assert "deferred_disclosure needs exactly one of until" in str(err.value)


def test_withholding_receipts_from_the_subject_needs_a_second_admin(tmp_path):
    """Deferring a task's receipts, deferring them longer, or hiding the case reference tells the subject less:
    change control counts it as widening (four eyes), like showing a caseworker more."""
    from oneScreen import catalog, policy
    from oneScreen.changes import widening
    cat = catalog.load(ROOT / "field_catalog.yaml")
    d = with_deferred_task(tmp_path)
    task = d / "tasks" / "fraud_investigation.yaml"
    base = policy.load(d, cat)
    task.write_text(DEFERRED_TASK.replace("period_days: 90", "period_days: 180"), encoding="utf-8")
    longer = policy.load(d, cat)
    task.write_text(DEFERRED_TASK.replace("period_days: 90", "period_days: 30").replace(
        "receipt_case_ref: hidden\n", ""), encoding="utf-8")
    shorter = policy.load(d, cat)
    assert widening(cat, base, cat, longer) == [
        "task fraud_investigation: its receipts are withheld from the subject longer (deferred_disclosure)"]
    assert widening(cat, base, cat, shorter) == []
    assert widening(cat, shorter, cat, base) == [
        "task fraud_investigation: its receipts are withheld from the subject longer (deferred_disclosure)",
        "task fraud_investigation: its receipts no longer show the case reference"]


# ---------------------------------------------------------------- linked persons (catalog `person:`)
HOUSEHOLD = "citizen.household>household.members"


def household_of(data_dir, rrn: str) -> list[str]:
    """The other members of `rrn`'s household in the demo resident register."""
    from conftest import sample
    return [r["rrn"] for r in sample(data_dir, "mois_resident:SELECT rrn FROM resident WHERE hshld_id = "
                                               "(SELECT hshld_id FROM resident WHERE rrn = ?) AND rrn != ? ORDER BY rrn",
                                     rrn, rrn)]


async def test_a_household_member_shown_on_another_persons_screen_gets_a_receipt_of_their_own(api, data_dir, app):
    """The demo citizen's spouse is looked up for a move-in report, whose screen lists the household's members:
    the demo citizen's row among them. The citizen gets a receipt for that access naming the one field that
    showed their row; it and its proof hold nothing of the spouse's (not their RRN, pseudonym, other fields or
    case reference). The RRN column that says whom a row is about is read, never shown."""
    from oneScreen.audit import pseudonymise
    from oneScreen.identity import _demo_subject
    from oneScreen.verify_receipt import load_keys, verify
    me = _demo_subject(data_dir)
    [spouse] = household_of(data_dir, me)
    _, screen = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": spouse, "c": "2026-전입-0901"})
    assert "errors" not in screen, screen
    members = next(f for s in screen["data"]["screen"]["sections"] for f in s["fields"] if f["id"] == HOUSEHOLD)
    assert members["status"] == "OK" and len(members["value"]) == 2
    assert all(set(row) == {"name", "relation", "birth_date", "move_in_date"} for row in members["value"]), members
    assert me not in json.dumps(screen, ensure_ascii=False)  # the person column never leaves the door

    [r] = await receipts(api)
    assert r["linked"] is True and r["lookedUp"] == "citizen" and r["task"] == "move_in_report" and r["caseRef"] is None
    assert [(f["id"], f["status"]) for f in r["fields"]] == [(HOUSEHOLD, "SHOWN")]
    assert "다른 분의 정보를 조회할 때" in r["line"] and "another person" in r["lineEn"]
    assert spouse not in json.dumps(r, ensure_ascii=False)

    await app.state.runtime.audit.sealer.seal()
    _, body = await api.gql("demo.citizen", PROOF, {"seq": r["seq"]})
    assert "errors" not in body, body
    proof = json.loads(body["data"]["receiptProof"])
    _, key = await api.gql("demo.citizen", "{ auditPublicKey }")
    assert verify(proof, load_keys(key["data"]["auditPublicKey"].encode())).startswith("valid")
    text = json.dumps(proof, ensure_ascii=False)
    theirs = pseudonymise(app.state.runtime.pseudonym_key, "citizen", spouse)
    assert spouse not in text and theirs not in text and "2026-전입-0901" not in text
    assert [f["id"] for f in proof["record"]["fields"]] == [HOUSEHOLD]  # none of the spouse's other fields

    # the auditor finds the spouse's own record as before, with every field of the screen, and the citizen's
    _, audited = await api.gql("yoon.gamsa", HISTORY, {"s": spouse})
    assert [e["caseRef"] for e in audited["data"]["accessHistory"]["entries"]] == ["2026-전입-0901"]
    _, audited = await api.gql("yoon.gamsa", HISTORY, {"s": me})
    assert [e["seq"] for e in audited["data"]["accessHistory"]["entries"]] == [r["seq"]]


async def test_the_subject_in_their_own_household_gets_one_receipt_and_a_deferred_tasks_linked_receipt_waits(
        make_app, data_dir, tmp_path):
    """The subject's own row in their household gives no second record; a task whose receipts are deferred seals
    the linked persons' receipts as well (an investigation must not alert the household either)."""
    import httpx

    from conftest import Api
    from oneScreen.identity import _demo_subject
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    task = policies / "tasks" / "move_in_report.yaml"
    task.write_text(task.read_text(encoding="utf-8").replace(
        "case_ref_example:", "deferred_disclosure:\n  legal_basis: 주민등록법 제20조(사실조사)\n  period_days: 30\n"
        "case_ref_example:", 1), encoding="utf-8")
    app = make_app(ONESCREEN_POLICIES=str(policies))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            api = Api(c, data_dir, app)
            me = _demo_subject(data_dir)
            [spouse] = household_of(data_dir, me)
            await look(api, "kim.jumin", "move_in_report", me, "2026-전입-0902")
            _, audited = await api.gql("yoon.gamsa", HISTORY, {"s": me})
            assert [e["caseRef"] for e in audited["data"]["accessHistory"]["entries"]] == ["2026-전입-0902"]
            await look(api, "kim.jumin", "move_in_report", spouse, "2026-전입-0903")
            assert await receipts(api) == []  # both sealed: the citizen's own and the linked one
            _, audited = await api.gql("yoon.gamsa", HISTORY, {"s": me})
            entries = audited["data"]["accessHistory"]["entries"]
            assert [e["caseRef"] for e in entries] == ["", "2026-전입-0902"]
            assert entries[0]["sealedUntil"] == (datetime.now(timezone.utc).date() + timedelta(days=30)).isoformat()
            _, released = await api.gql("yoon.gamsa", RELEASE, {"seq": entries[0]["seq"], "r": "조사 종결"})
            assert "errors" not in released, released
            [linked] = await receipts(api)
            assert linked["linked"] is True and linked["deferredBasis"] == "주민등록법 제20조(사실조사)"
    finally:
        await app.state.runtime.close()


async def test_a_member_of_another_household_gets_nothing_and_a_linked_proof_cannot_be_pinned_on_another(
        api, data_dir, app):
    """C (the demo citizen) belongs to none of the households looked up: a look-up of a person of another household
    gives C no receipt, while that household's other member gets their linked record (the positive control, so the
    empty list is not an empty trail). The citizen's own linked proof cannot be turned into another person's
    (its subject swapped for that member's pseudonym) nor widened (another field of the screen added): the
    standalone verifier refuses both."""
    from conftest import sample
    from oneScreen.audit import pseudonymise
    from oneScreen.identity import _demo_subject
    from oneScreen.verify_receipt import Invalid, load_keys, verify
    me = _demo_subject(data_dir)
    [other, member] = [r["rrn"] for r in sample(
        data_dir, "mois_resident:SELECT rrn FROM resident WHERE hshld_id = (SELECT hshld_id FROM resident WHERE "
                  "hshld_id != (SELECT hshld_id FROM resident WHERE rrn = ?) GROUP BY hshld_id "
                  "HAVING count(*) = 2 ORDER BY hshld_id LIMIT 1) ORDER BY rrn", me)]
    await look(api, "kim.jumin", "move_in_report", other, "2026-전입-0911")
    assert await receipts(api) == []  # C: not in that household, no receipt
    _, audited = await api.gql("yoon.gamsa", HISTORY, {"s": member})
    assert [e["caseRef"] for e in audited["data"]["accessHistory"]["entries"]] == [""]  # the member's linked record

    [spouse] = household_of(data_dir, me)
    await look(api, "kim.jumin", "move_in_report", spouse, "2026-전입-0912")
    [r] = await receipts(api)
    assert r["linked"] is True
    await app.state.runtime.audit.sealer.seal()
    _, body = await api.gql("demo.citizen", PROOF, {"seq": r["seq"]})
    assert "errors" not in body, body
    _, key = await api.gql("demo.citizen", "{ auditPublicKey }")
    keys = load_keys(key["data"]["auditPublicKey"].encode())
    proof = json.loads(body["data"]["receiptProof"])
    assert verify(proof, keys).startswith(f"valid: audit record {r['seq']} ")
    assert proof["record"]["subject"] == pseudonymise(app.state.runtime.pseudonym_key, "citizen", me)

    swapped = json.loads(body["data"]["receiptProof"])
    swapped["record"]["subject"] = pseudonymise(app.state.runtime.pseudonym_key, "citizen", member)
    widened = json.loads(body["data"]["receiptProof"])
    widened["record"]["fields"].append(dict(widened["record"]["fields"][0], field="citizen.name"))
    for forged in (swapped, widened):
        with pytest.raises(Invalid, match=f"record {r['seq']} was changed after it was written"):
            verify(forged, keys)


def own_a_building(data_dir: Path, rrn: str) -> str:
    """Make `rrn` an owner of a building of 마포구 (park.geonchuk's region) in this data directory's copy of the
    building register (the first owner row of the first such building); return the building's key."""
    import sqlite3
    with sqlite3.connect(data_dir / "demo" / "molit_building.sqlite") as conn:
        building, owner = conn.execute(
            "SELECT o.mgmBldrgstPk, o.rowid FROM bldg_owner o JOIN bldg_title t USING (mgmBldrgstPk) "
            "WHERE t.sigunguCd = '11440' ORDER BY o.mgmBldrgstPk, o.rowid LIMIT 1").fetchone()
        conn.execute("UPDATE bldg_owner SET owner_rrn = ? WHERE rowid = ?", (rrn, owner))
    conn.close()
    return building


async def test_an_owner_shown_on_a_buildings_screen_is_told_a_building_was_looked_up_not_another_person(
        api, data_dir):
    """The owners of a building are rows of `building.owners` (person: owner_rrn): the demo citizen made one of
    them in this test's copy of the register, a building-use-change screen of that building gives them a linked
    receipt that says a building was looked up (the task's subject type), not "another person", and names
    nothing of the building (its key) nor the case."""
    from oneScreen.identity import _demo_subject
    building = own_a_building(data_dir, _demo_subject(data_dir))
    await look(api, "park.geonchuk", "building_use_change", building, "2026-건축-0901")
    [r] = await receipts(api)
    assert r["linked"] is True and r["lookedUp"] == "building" and r["caseRef"] is None
    assert [(f["id"], f["status"]) for f in r["fields"]] == [("building.owners", "SHOWN")]
    assert "건축물 정보를 조회할 때, 회원님이 그 건축물의 소유자현황 항목에" in r["line"], r["line"]
    assert "looked up a building" in r["lineEn"] and "among its Owners" in r["lineEn"], r["lineEn"]
    assert "다른 분" not in r["line"] and "another person" not in r["lineEn"]
    assert building not in json.dumps(r, ensure_ascii=False) and "2026-건축-0901" not in json.dumps(r)
    assert await receipts(api, task="move_in_report") == []  # the filters hold for linked receipts too
    assert [x["seq"] for x in await receipts(api, task="building_use_change")] == [r["seq"]]
