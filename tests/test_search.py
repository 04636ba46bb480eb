"""Finding a subject for a task: a citizen by RRN or name + birth date, a building by address."""
from __future__ import annotations

from conftest import sample

SUBJECTS = """query($type: String!, $q: String!, $t: ID!) { subjects(type: $type, query: $q, task: $t) {
  id subjectType fields { id value status } } }"""


async def test_a_citizen_is_found_by_name_and_birth_date(api, data_dir):
    row = sample(data_dir, "mois_resident:SELECT rrn, name, birth_date FROM resident ORDER BY rrn LIMIT 1 OFFSET 7")[0]
    for typed in (row["birth_date"], row["birth_date"].replace("-", "")):
        status, body = await api.gql("kim.jumin", SUBJECTS, {"type": "citizen", "q": f"{row['name']} {typed}",
                                                              "t": "move_in_report"})
        assert status == 200 and "errors" not in body, body
        matches = body["data"]["subjects"]
        assert len(matches) == 1 and row["rrn"] not in str(matches)  # an opaque handle, not the RRN
        shown = {f["id"]: f["value"] for f in matches[0]["fields"]}
        assert shown["citizen.name"] == row["name"]
        assert await name_behind(api, matches[0]["id"]) == row["name"]


async def test_a_citizen_is_found_by_rrn_and_an_unknown_rrn_finds_nobody(api, data_dir):
    rrn = sample(data_dir, "mois_resident:SELECT rrn FROM resident LIMIT 1")[0][0]
    _, body = await api.gql("kim.jumin", SUBJECTS, {"type": "citizen", "q": rrn, "t": "move_in_report"})
    [match] = body["data"]["subjects"]
    assert await name_behind(api, match["id"]) == sample(data_dir, "mois_resident:SELECT name FROM resident WHERE rrn=?", rrn)[0][0]
    _, body = await api.gql("kim.jumin", SUBJECTS, {"type": "citizen", "q": "000101-3000000", "t": "move_in_report"})
    assert body["data"]["subjects"] == []


async def test_match_fields_follow_the_task_policy(api, data_dir):
    """vehicle_transfer does not grant citizen.birth_date: a match never shows it, even as a search hint."""
    row = sample(data_dir, "mois_resident:SELECT rrn, name, birth_date FROM resident ORDER BY rrn LIMIT 1")[0]
    _, body = await api.gql("choi.chaeryang", SUBJECTS, {"type": "citizen", "q": f"{row['name']} {row['birth_date']}",
                                                          "t": "vehicle_transfer"})
    [match] = body["data"]["subjects"]
    ids = {f["id"] for f in match["fields"]}
    assert "citizen.birth_date" not in ids and "citizen.name" in ids


async def test_a_building_is_found_by_part_of_its_address(api, data_dir):
    row = sample(data_dir, "molit_building:SELECT mgmBldrgstPk, newPlatPlc FROM bldg_title ORDER BY mgmBldrgstPk LIMIT 1")[0]
    part = row["newPlatPlc"].split(" (")[0]
    _, body = await api.gql("park.geonchuk", SUBJECTS, {"type": "building", "q": part, "t": "building_use_change"})
    shown = [{f["id"]: f["value"] for f in m["fields"]}["building.road_address"] for m in body["data"]["subjects"]]
    assert row["newPlatPlc"] in shown
    _, body = await api.gql("park.geonchuk", SUBJECTS, {"type": "building", "q": "%", "t": "building_use_change"})
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST" or body["data"]["subjects"] == []


async def test_search_needs_a_task_the_caller_may_perform(api, data_dir):
    _, body = await api.gql("choi.chaeryang", SUBJECTS, {"type": "citizen", "q": "홍길동 1990-01-01",
                                                          "t": "basic_livelihood"})
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "TASK_FORBIDDEN"


async def name_behind(api, handle: str) -> str:
    q = """query($s: ID!) { screen(task: "move_in_report", subject: $s, caseRef: "S-1") { sections { fields { id value } } } }"""
    _, body = await api.gql("kim.jumin", q, {"s": handle})
    return {f["id"]: f["value"] for s in body["data"]["screen"]["sections"] for f in s["fields"]}["citizen.name"]


async def test_a_forged_or_foreign_handle_is_refused(api, data_dir):
    row = sample(data_dir, "mois_resident:SELECT rrn, name, birth_date FROM resident ORDER BY rrn LIMIT 1")[0]
    _, body = await api.gql("kim.jumin", SUBJECTS, {"type": "citizen", "q": row["rrn"], "t": "move_in_report"})
    handle = body["data"]["subjects"][0]["id"]
    q = """query($s: ID!) { screen(task: "move_in_report", subject: $s, caseRef: "S-1") { subject } }"""
    _, bad = await api.gql("kim.jumin", q, {"s": handle[:-6] + "AAAAAA"})
    assert bad["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    qb = """query($s: ID!) { screen(task: "building_use_change", subject: $s, caseRef: "S-1") { subject } }"""
    _, bad = await api.gql("park.geonchuk", qb, {"s": handle})
    assert bad["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


SEARCH = """query($type: String!, $q: String!, $t: ID!) { subjectSearch(type: $type, query: $q, task: $t) {
  matches { id fields { id value } } truncated limit } }"""


async def test_a_search_says_when_more_subjects_match_than_it_shows(api, data_dir):
    """합정동 matches 105 buildings: the first 20 are shown and the answer says the list was cut (so the screen can
    say so instead of "20 found"); the 21st row, read only to know that, is neither shown nor audited."""
    everyone = sample(data_dir, "molit_building:SELECT COUNT(*) FROM bldg_title WHERE platPlc LIKE '%합정동%' "
                                "OR newPlatPlc LIKE '%합정동%'")[0][0]
    assert everyone > 20
    _, body = await api.gql("park.geonchuk", SEARCH, {"type": "building", "q": "합정동", "t": "building_use_change"})
    found = body["data"]["subjectSearch"]
    assert len(found["matches"]) == found["limit"] == 20 and found["truncated"] is True
    import sqlite3
    with sqlite3.connect(data_dir / "audit.sqlite") as audit:
        searched = audit.execute("SELECT COUNT(*) FROM onescreen_audit WHERE kind = 'search'").fetchone()[0]
    assert searched == 20  # one record per subject shown, none for the one that only told "there are more"

    row = sample(data_dir, "molit_building:SELECT newPlatPlc FROM bldg_title WHERE newPlatPlc LIKE '%합정동%' "
                           "ORDER BY mgmBldrgstPk LIMIT 1")[0][0]
    _, body = await api.gql("park.geonchuk", SEARCH, {"type": "building", "q": row.split(" (")[0],
                                                       "t": "building_use_change"})
    narrow = body["data"]["subjectSearch"]
    assert 1 <= len(narrow["matches"]) < 20 and narrow["truncated"] is False
    _, body = await api.gql("park.geonchuk", SUBJECTS, {"type": "building", "q": "합정동", "t": "building_use_change"})
    assert [m["id"][:2] for m in body["data"]["subjects"]] == ["h:"] * 20  # the list alone, as before
