"""Access history people can read: field paths in the catalog's labels, officers' and tasks' names, reads that rest
on consent marked, filters (officer, period, task, case), buildings and parcels for auditors, and a citizen's own
history from their sign-in (and a message of their own when they ask for someone else's)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from conftest import sample
from test_screen import GANGNAM, SCREEN, citizens

HISTORY = """query($s: ID, $t: String, $first: Int, $after: String, $user: String, $task: ID, $case: String,
                   $since: DateTime, $until: DateTime) {
  accessHistory(subject: $s, subjectType: $t, first: $first, after: $after, user: $user, task: $task,
                caseRef: $case, since: $since, until: $until) {
    entries { at user userName task taskName taskNameEn caseRef consentBased fields { id status label labelEn } }
    nextCursor } }"""
CONSENT = """mutation($s: ID!, $c: String!) { recordConsent(task: "basic_livelihood", subject: $s, caseRef: $c,
  method: "written") { method } }"""


async def history(api, who: str, **variables) -> dict:
    _, body = await api.gql(who, HISTORY, variables)
    assert "errors" not in body, body
    return body["data"]["accessHistory"]


async def look(api, user: str, task: str, subject: str, case_ref: str) -> None:
    _, body = await api.gql(user, SCREEN, {"t": task, "s": subject, "c": case_ref})
    assert "errors" not in body, body


async def test_history_shows_labels_names_and_reads_that_rest_on_consent(api, data_dir):
    rrn = citizens(data_dir, 1, GANGNAM)[0]
    await look(api, "lee.bokji", "basic_livelihood", rrn, "2026-복지-0101")
    _, body = await api.gql("lee.bokji", CONSENT, {"s": rrn, "c": "2026-복지-0102"})
    assert "errors" not in body, body
    await look(api, "lee.bokji", "basic_livelihood", rrn, "2026-복지-0102")
    entries = (await history(api, "yoon.gamsa", s=rrn))["entries"]
    assert [(e["caseRef"], e["consentBased"]) for e in entries] == [("2026-복지-0102", True), ("2026-복지-0101", False)]
    e = entries[0]
    assert (e["user"], e["userName"], e["task"], e["taskName"], e["taskNameEn"]) == (
        "lee.bokji", "이복지", "basic_livelihood", "기초생활보장 급여 신청", "Basic livelihood benefit application")
    fields = {f["id"]: f for f in e["fields"]}
    price = fields["citizen.residence>building.parcel>parcel.official_land_price"]
    assert price["label"] == "거주 건축물 › 대지(필지) › 개별공시지가(원/㎡)", price
    assert price["labelEn"] == "Residence building › Parcel › Official land price (KRW/m²)"
    assert fields["citizen.name"]["label"] == "성명"


async def test_history_is_filtered_by_officer_task_case_and_period(api, data_dir):
    rrn = sample(data_dir, "molit_vehicle:SELECT owner_rrn FROM vehicle ORDER BY owner_rrn LIMIT 1")[0][0]
    await look(api, "choi.chaeryang", "vehicle_transfer", rrn, "2026-차량-0201")
    await look(api, "choi.chaeryang", "vehicle_transfer", rrn, "2026-차량-0202")
    await look(api, "jung.jutaek", "housing_special_supply", rrn, "2026-주택-0203")

    def cases(h):
        return [e["caseRef"] for e in h["entries"]]

    assert cases(await history(api, "yoon.gamsa", s=rrn)) == ["2026-주택-0203", "2026-차량-0202", "2026-차량-0201"]
    assert cases(await history(api, "yoon.gamsa", s=rrn, user="choi.chaeryang")) == ["2026-차량-0202", "2026-차량-0201"]
    assert cases(await history(api, "yoon.gamsa", s=rrn, task="housing_special_supply")) == ["2026-주택-0203"]
    assert cases(await history(api, "yoon.gamsa", s=rrn, case="2026-차량-0201")) == ["2026-차량-0201"]
    page1 = await history(api, "yoon.gamsa", s=rrn, user="choi.chaeryang", first=1)
    page2 = await history(api, "yoon.gamsa", s=rrn, user="choi.chaeryang", first=1, after=page1["nextCursor"])
    assert cases(page1) + cases(page2) == ["2026-차량-0202", "2026-차량-0201"] and page2["nextCursor"] is None
    now = datetime.now(timezone.utc)
    assert len((await history(api, "yoon.gamsa", s=rrn, since=(now - timedelta(hours=1)).isoformat()))["entries"]) == 3
    assert (await history(api, "yoon.gamsa", s=rrn, until=(now - timedelta(hours=1)).isoformat()))["entries"] == []
    _, naive = await api.gql("yoon.gamsa", HISTORY, {"s": rrn, "since": "2026-12-01T00:00:00"})
    assert "time zone" in naive["errors"][0]["message"]


async def test_auditors_look_up_buildings_and_parcels_too(api, data_dir):
    pk = sample(data_dir, "molit_building:SELECT mgmBldrgstPk FROM bldg_title ORDER BY mgmBldrgstPk LIMIT 1")[0][0]
    await look(api, "park.geonchuk", "building_use_change", pk, "2026-건축-0301")
    h = await history(api, "yoon.gamsa", s=pk, t="building")
    [e] = h["entries"]
    assert (e["userName"], e["taskName"], e["caseRef"]) == ("박건축", "건축물 용도변경 허가", "2026-건축-0301")
    assert {"id": "building.parcel>parcel.pnu", "status": "OK", "label": "대지(필지) › 필지고유번호",
            "labelEn": "Parcel › Parcel number"} in e["fields"]
    pnu = sample(data_dir, "molit_land:SELECT pnu FROM land ORDER BY pnu LIMIT 1")[0][0]
    assert (await history(api, "yoon.gamsa", s=pnu, t="parcel"))["entries"] == []
    _, body = await api.gql("yoon.gamsa", HISTORY, {"s": pk, "t": "spaceship"})
    assert body["errors"][0]["message"].startswith("subjectType must be one of: ")
    _, body = await api.gql("demo.citizen", HISTORY, {"s": pk, "t": "building"})  # a citizen: their own only
    assert body["errors"][0]["extensions"]["code"] == "TASK_FORBIDDEN"


async def test_a_citizen_reads_their_own_history_without_typing_their_number(api, data_dir):
    from oneScreen.identity import _demo_subject
    me = _demo_subject(data_dir)
    await look(api, "kim.jumin", "move_in_report", me, "2026-전입-0401")
    own = await history(api, "demo.citizen")
    assert [(e["userName"], e["taskName"], e["caseRef"]) for e in own["entries"]] == [
        ("김주민", "전입신고", "2026-전입-0401")]
    other = next(r for r in citizens(data_dir, 3) if r != me)
    _, body = await api.gql("demo.citizen", HISTORY, {"s": other})
    assert body["errors"][0]["extensions"]["code"] == "TASK_FORBIDDEN"
    assert body["errors"][0]["message"] == ("you may read only your own access history (the one of the resident "
                                            "registration number you signed in with)")
    _, body = await api.gql("yoon.gamsa", HISTORY, {})  # an auditor has no subject of their own
    assert "subject: give the" in body["errors"][0]["message"]
