"""Search tells the truth without leaking (issue 18): an unknown RRN and a resident of another district are the
same miss (no match, no screen, no audit record, the same lookup budget spent); an RRN is accepted with or
without its hyphen; a cut-off list says how many matched in all; matches come in a stable, sorted order."""
from __future__ import annotations

import sqlite3

import httpx
import pytest

from conftest import Api, sample
from test_lookups import guesses

SEARCH = """query($type: String!, $q: String!, $t: ID!) { subjectSearch(type: $type, query: $q, task: $t) {
  matches { id fields { id value status } } truncated limit total totalExact } }"""


@pytest.fixture
async def api_with(make_app, data_dir):
    made = []

    async def make(**env) -> Api:
        app = make_app(**env)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        made.append((app, client))
        return Api(client, data_dir, app)

    yield make
    for app, client in made:
        await client.aclose()
        await app.state.runtime.close()


def audit_kinds(data_dir) -> list[str]:
    with sqlite3.connect(data_dir / "audit.sqlite") as audit:
        return [r[0] for r in audit.execute("SELECT kind FROM onescreen_audit ORDER BY rowid")]


def resident(data_dir, where: str) -> sqlite3.Row:
    return sample(data_dir, f"mois_resident:SELECT rrn, name, birth_date FROM resident WHERE {where} "
                            "ORDER BY rrn LIMIT 1")[0]


async def test_an_unknown_rrn_and_a_resident_of_another_district_are_the_same_miss(api_with, data_dir):
    """lee.bokji (강남구, 11680) searches for basic_livelihood: a 마포구 resident and an RRN nobody has give the same
    empty answer, no audit record, and each spends one lookup that found nothing; a 강남구 resident is found."""
    api = await api_with(ONESCREEN_LOOKUP_MISSES_PER_USER="10")
    outside = resident(data_dir, "legal_dong_cd LIKE '11440%'")["rrn"]
    unknown = guesses(data_dir, outside, 1)[0]
    inside = resident(data_dir, "legal_dong_cd LIKE '11680%'")["rrn"]
    answers = []
    for q in (outside, unknown):
        status, body = await api.gql("lee.bokji", SEARCH, {"type": "citizen", "q": q, "t": "basic_livelihood"})
        assert status == 200 and "errors" not in body, body
        answers.append(body["data"]["subjectSearch"])
    assert answers[0] == answers[1] == {"matches": [], "truncated": False, "limit": 20, "total": 0,
                                        "totalExact": True}
    assert audit_kinds(data_dir) == []  # no disclosure, no search record: nothing was shown
    assert api.app.state.runtime.lookups.misses("user", "lee.bokji") == 2  # both spent the budget alike
    status, body = await api.gql("lee.bokji", SEARCH, {"type": "citizen", "q": inside, "t": "basic_livelihood"})
    found = body["data"]["subjectSearch"]
    assert found["total"] == 1 and len(found["matches"]) == 1
    assert all(f["status"] != "DENIED" for f in found["matches"][0]["fields"])
    assert audit_kinds(data_dir) == ["search"]
    assert api.app.state.runtime.lookups.misses("user", "lee.bokji") == 2  # a find spends nothing


async def test_an_unknown_rrn_leaves_no_search_record_for_a_task_without_jurisdiction(api, data_dir):
    """move_in_report has no jurisdiction rule: an RRN nobody has is no match, and no record of a search that
    showed nothing is written (the old code wrote one)."""
    unknown = guesses(data_dir, resident(data_dir, "1=1")["rrn"], 1)[0]
    _, body = await api.gql("kim.jumin", SEARCH, {"type": "citizen", "q": unknown, "t": "move_in_report"})
    assert body["data"]["subjectSearch"]["matches"] == [] and body["data"]["subjectSearch"]["total"] == 0
    assert audit_kinds(data_dir) == []


async def test_name_search_finds_only_residents_of_the_callers_district(api, data_dir):
    """By name and birth date, a 마포구 resident is no match for 강남구's caseworker (the old code listed them with
    every field "관할 구역 밖", and audited it); a 강남구 resident is."""
    outside = resident(data_dir, "legal_dong_cd LIKE '11440%'")
    _, body = await api.gql("lee.bokji", SEARCH, {"type": "citizen", "q": f"{outside['name']} {outside['birth_date']}",
                                                  "t": "basic_livelihood"})
    assert body["data"]["subjectSearch"]["matches"] == [] and body["data"]["subjectSearch"]["total"] == 0
    assert audit_kinds(data_dir) == []
    inside = resident(data_dir, "legal_dong_cd LIKE '11680%'")
    _, body = await api.gql("lee.bokji", SEARCH, {"type": "citizen", "q": f"{inside['name']} {inside['birth_date']}",
                                                  "t": "basic_livelihood"})
    found = body["data"]["subjectSearch"]
    assert found["total"] == len(found["matches"]) >= 1
    assert all(f["status"] != "DENIED" for m in found["matches"] for f in m["fields"])


async def test_an_rrn_is_found_with_or_without_its_hyphen(api, data_dir):
    row = resident(data_dir, "legal_dong_cd LIKE '11110%'")
    names = []
    for typed in (row["rrn"], row["rrn"].replace("-", ""), row["rrn"].replace("-", " "), f" {row['rrn']} "):
        status, body = await api.gql("kim.jumin", SEARCH, {"type": "citizen", "q": typed, "t": "move_in_report"})
        assert status == 200 and "errors" not in body, (typed, body)
        [match] = body["data"]["subjectSearch"]["matches"]
        names.append({f["id"]: f["value"] for f in match["fields"]}["citizen.name"])
    assert names == [row["name"]] * 4


async def test_a_malformed_rrn_says_what_is_wrong(api, data_dir):
    """12 digits is no RRN: the answer says it is not a valid resident registration number (not "search by name")."""
    _, body = await api.gql("kim.jumin", SEARCH, {"type": "citizen", "q": "900101-123456", "t": "move_in_report"})
    err = body["errors"][0]
    assert err["extensions"]["code"] == "BAD_REQUEST" and "Resident registration number" in err["message"]
    assert "12 digits" in err["message"] and "900101" not in err["message"]


async def test_a_cut_list_says_how_many_matched_and_is_sorted(api, data_dir):
    """합정동 matches more than 20 buildings: the answer gives their total (exact, as it is under the scan limit),
    and the 20 shown are the first 20 in road-address order, the same on every search."""
    everyone = sample(data_dir, "molit_building:SELECT COUNT(*) FROM bldg_title WHERE platPlc LIKE '%합정동%' "
                                "OR newPlatPlc LIKE '%합정동%'")[0][0]
    assert 20 < everyone <= 200
    runs = []
    for _ in range(2):
        _, body = await api.gql("park.geonchuk", SEARCH, {"type": "building", "q": "합정동", "t": "building_use_change"})
        found = body["data"]["subjectSearch"]
        assert found["total"] == everyone and found["totalExact"] is True and found["truncated"] is True
        runs.append([{f["id"]: f["value"] for f in m["fields"]}["building.road_address"] for m in found["matches"]])
    expected = [r[0] for r in sample(
        data_dir, "molit_building:SELECT newPlatPlc FROM bldg_title WHERE platPlc LIKE '%합정동%' "
                  "OR newPlatPlc LIKE '%합정동%' ORDER BY newPlatPlc, mgmBldrgstPk LIMIT 20")]
    assert runs[0] == runs[1] == expected
