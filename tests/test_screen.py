"""The one screen through the real HTTP API over the real demo ledgers (invariants 1-3)."""
from __future__ import annotations

import pytest

from conftest import sample

SCREEN = """query($t: ID!, $s: ID!, $c: String!) { screen(task: $t, subject: $s, caseRef: $c) {
  subject caseRef requestId task { code legalBasis }
  sections { title titleEn fields { id label status value display reason reasonEn
    source { agency ledger cached asOf } } } } }"""


GANGNAM = "legal_dong_cd LIKE '11680%'"  # lee.bokji's district (basic_livelihood is own_region)


def citizens(data_dir, n: int, where: str = "1=1") -> list[str]:
    return [r["rrn"] for r in sample(data_dir, f"mois_resident:SELECT rrn FROM resident WHERE {where} ORDER BY rrn LIMIT ?", n)]


def fields_of(screen: dict) -> dict[str, dict]:
    return {f["id"]: f for s in screen["sections"] for f in s["fields"]}


async def test_screen_recombines_the_task_fields_from_several_ledgers_in_section_order(api, data_dir):
    rrn = citizens(data_dir, 1)[0]
    status, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "2026-전입-001"})
    assert status == 200, body
    screen = body["data"]["screen"]
    assert [s["title"] for s in screen["sections"]] == ["신고인", "현 주소", "세대 구성", "거주 건축물"]
    assert screen["caseRef"] == "2026-전입-001" and screen["requestId"] == body["extensions"]["requestId"]
    got = fields_of(screen)
    row = sample(data_dir, "mois_resident:SELECT * FROM resident WHERE rrn = ?", rrn)[0]
    assert got["citizen.name"]["value"] == row["name"]
    assert got["citizen.address"]["value"] == row["road_addr"]
    assert got["citizen.name"]["source"]["agency"] == "MOIS"
    building = sample(data_dir, "molit_building:SELECT * FROM bldg_title WHERE mgmBldrgstPk = ?", row["mgm_bldrgst_pk"])[0]
    assert got["citizen.residence>building.main_purpose"]["value"] == building["mainPurpsCdNm"]
    members = sample(data_dir, "mois_resident:SELECT name FROM resident WHERE hshld_id = ?", row["hshld_id"])
    assert sorted(m["name"] for m in got["citizen.household>household.members"]["value"]) == sorted(m["name"] for m in members)
    assert got["citizen.rrn"]["value"] == rrn  # the task is granted the full RRN, with its legal basis
    statuses = {k: f["status"] for k, f in got.items()}
    assert statuses.pop("citizen.mobile_phone") == ("MASKED" if row["mbl_telno"] else "NOT_FOUND")
    assert set(statuses.values()) == {"OK"}


async def test_a_multi_ledger_screen_costs_exactly_one_fetch_per_ledger(api, data_dir):
    """Invariant 3: one fetch per ledger per stage, whatever the number of fields."""
    rrn = citizens(data_dir, 1)[0]
    before = await api.fetches()
    status, body = await api.gql("jung.jutaek", SCREEN, {"t": "housing_special_supply", "s": rrn, "c": "C-1"})
    assert status == 200 and "errors" not in body, body
    after = await api.fetches()
    used = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    touched = {f["source"]["ledger"] for f in fields_of(body["data"]["screen"]).values() if f["source"]}
    assert len(touched) >= 5
    assert {k for k, v in used.items() if v} == touched
    assert all(used[k] == 1 for k in touched), used


async def test_a_field_outside_the_task_is_neither_returned_nor_fetched(api, data_dir, sql_log):
    """Invariants 1 and 2: denied fields come back null with FIELD_DENIED and are never read from their ledger."""
    rrn = citizens(data_dir, 1)[0]
    query = """query($s: ID!) { citizen(rrn: $s, task: "vehicle_transfer", caseRef: "V-1") {
      name mobilePhone monthlyPremium vehicles { plateNo } } }"""
    status, body = await api.gql("choi.chaeryang", query, {"s": rrn})
    assert status == 200
    data = body["data"]["citizen"]
    assert data["mobilePhone"] is None and data["monthlyPremium"] is None
    codes = {tuple(e["path"]): e["extensions"]["code"] for e in body["errors"]}
    assert codes == {("citizen", "mobilePhone"): "FIELD_DENIED", ("citizen", "monthlyPremium"): "FIELD_DENIED"}
    phone = sample(data_dir, "mois_resident:SELECT mbl_telno FROM resident WHERE rrn = ?", rrn)[0][0]
    assert phone is None or phone not in str(body)
    sent = "\n".join(sql_log)
    assert "mbl_telno" not in sent and "eligibility" not in sent and "mthly_prm" not in sent
    assert "resident" in sent and "vehicle" in sent  # the allowed fields were read


@pytest.mark.parametrize("query", [
    # alias
    """query($s: ID!) { citizen(rrn: $s, task: "vehicle_transfer", caseRef: "V-1") { n: name p: mobilePhone } }""",
    # named fragment
    """query($s: ID!) { citizen(rrn: $s, task: "vehicle_transfer", caseRef: "V-1") { ...F } }
       fragment F on Citizen { name mobilePhone }""",
    # inline fragment
    """query($s: ID!) { citizen(rrn: $s, task: "vehicle_transfer", caseRef: "V-1") { ... on Citizen { name mobilePhone } } }""",
    # directive that keeps the field
    """query($s: ID!, $y: Boolean = true) { citizen(rrn: $s, task: "vehicle_transfer", caseRef: "V-1") { name mobilePhone @include(if: $y) } }""",
])
async def test_denied_fields_stay_denied_through_aliases_fragments_and_directives(api, data_dir, sql_log, query):
    """Invariant 1: deny by default, whatever shape the query takes."""
    rrn = citizens(data_dir, 1, "mbl_telno IS NOT NULL")[0]
    phone = sample(data_dir, "mois_resident:SELECT mbl_telno FROM resident WHERE rrn = ?", rrn)[0][0]
    status, body = await api.gql("choi.chaeryang", query, {"s": rrn})
    assert status == 200
    assert phone not in str(body)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FIELD_DENIED"]
    assert "mbl_telno" not in "\n".join(sql_log)


async def test_fifty_aliased_subjects_cost_one_fetch_per_ledger(api, data_dir):
    """Invariant 3: subjects of one request (a batch task's) are batched by key across root fields."""
    rrns = citizens(data_dir, 50, GANGNAM)
    parts = [f'c{i}: citizen(rrn: "{r}", task: "basic_livelihood_review", caseRef: "B-{i}") '
             f'{{ name vehicles {{ plateNo }} '
             f'residence {{ mainPurpose parcel {{ officialLandPrice }} }} }}' for i, r in enumerate(rrns)]
    before = await api.fetches()
    status, body = await api.gql("lee.bokji", "{ " + " ".join(parts) + " }")
    assert status == 200 and "errors" not in body, body.get("errors")
    after = await api.fetches()
    used = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}
    # one read per ledger per stage; the review is handled by the subject's own district, so its
    # jurisdiction check (the subjects' legal-dong codes) is a stage of its own before the task's fields are read
    assert used == {"mois.resident": 2, "molit.vehicle": 1, "molit.building_title": 1, "molit.land": 1}
    names = {r["rrn"]: r["name"] for r in sample(
        data_dir, f"mois_resident:SELECT rrn, name FROM resident WHERE rrn IN ({','.join('?' * 50)})", *rrns)}
    assert [body["data"][f"c{i}"]["name"] for i in range(50)] == [names[r] for r in rrns]


async def test_links_resolve_across_three_subject_types(api, data_dir):
    """citizen -> residence building -> parcel, each value checked against its ledger."""
    rrn = citizens(data_dir, 1, GANGNAM)[0]
    query = """query($s: ID!) { citizen(rrn: $s, task: "basic_livelihood", caseRef: "L-1") {
      name residence { mainPurpose totalFloorArea parcel { officialLandPrice } } } }"""
    status, body = await api.gql("lee.bokji", query, {"s": rrn})
    assert status == 200 and "errors" not in body, body
    pk = sample(data_dir, "mois_resident:SELECT mgm_bldrgst_pk FROM resident WHERE rrn = ?", rrn)[0][0]
    b = sample(data_dir, "molit_building:SELECT * FROM bldg_title WHERE mgmBldrgstPk = ?", pk)[0]
    land = sample(data_dir, "molit_land:SELECT * FROM land WHERE pnu = ?", b["pnu"])[0]
    res = body["data"]["citizen"]["residence"]
    assert res["mainPurpose"] == b["mainPurpsCdNm"]
    assert res["totalFloorArea"] == pytest.approx(b["totArea"])
    assert res["parcel"]["officialLandPrice"] == land["pblntfPclnd"]


async def test_building_screen_follows_the_link_to_its_parcel(api, data_dir):
    pk = sample(data_dir, "molit_building:SELECT mgmBldrgstPk FROM bldg_title ORDER BY mgmBldrgstPk LIMIT 1")[0][0]
    status, body = await api.gql("park.geonchuk", SCREEN, {"t": "building_use_change", "s": pk, "c": "건축-7"})
    assert status == 200 and "errors" not in body, body
    got = fields_of(body["data"]["screen"])
    b = sample(data_dir, "molit_building:SELECT * FROM bldg_title WHERE mgmBldrgstPk = ?", pk)[0]
    land = sample(data_dir, "molit_land:SELECT * FROM land WHERE pnu = ?", b["pnu"])[0]
    assert got["building.parcel>parcel.land_category"]["value"] == land["lndcgrCodeNm"]
    assert got["building.use_approval_date"]["value"] == f"{b['useAprDay'][:4]}-{b['useAprDay'][4:6]}-{b['useAprDay'][6:]}"
    assert {o["name"] for o in got["building.owners"]["value"]} == {
        r[0] for r in sample(data_dir, "molit_building:SELECT owner_name FROM bldg_owner WHERE mgmBldrgstPk = ?", pk)}


async def test_a_task_the_caller_may_not_perform_is_forbidden_with_no_data(api, data_dir, sql_log):
    rrn = citizens(data_dir, 1)[0]
    status, body = await api.gql("choi.chaeryang", SCREEN, {"t": "basic_livelihood", "s": rrn, "c": "X-1"})
    assert status == 200
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "TASK_FORBIDDEN"
    status, body = await api.gql("choi.chaeryang", """query($s: ID!) { citizen(rrn: $s, task: "basic_livelihood",
        caseRef: "X-1") { name } }""", {"s": rrn})
    assert body["data"] == {"citizen": None} and body["errors"][0]["extensions"]["code"] == "TASK_FORBIDDEN"
    assert sql_log == []


async def test_tasks_lists_only_what_the_caller_may_perform(api):
    status, body = await api.gql("multi.counter", "{ tasks { code name legalBasis subjectType sections { fields { id ledger } } } }")
    assert status == 200
    assert sorted(t["code"] for t in body["data"]["tasks"]) == ["basic_livelihood", "basic_livelihood_review",
                                                               "move_in_report", "vehicle_transfer"]
    status, body = await api.gql("yoon.gamsa", "{ tasks { code } }")
    assert body["data"]["tasks"] == []


async def test_no_token_or_a_forged_token_gets_401_and_no_data(api, data_dir):
    rrn = citizens(data_dir, 1)[0]
    q = {"query": SCREEN, "variables": {"t": "move_in_report", "s": rrn, "c": "A-1"}}
    r = await api.client.post("/graphql", json=q)
    assert r.status_code == 401 and r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    token = api.token("kim.jumin")
    head, payload, sig = token.split(".")
    forged = f"{head}.{payload}.{sig[:-4]}AAAA"
    r = await api.client.post("/graphql", json=q, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    import jwt
    none_token = jwt.encode({"sub": "kim.jumin", "roles": ["welfare_officer"]}, key=None, algorithm="none")
    r = await api.client.post("/graphql", json=q, headers={"Authorization": f"Bearer {none_token}"})
    assert r.status_code == 401


async def test_bad_subject_and_case_reference_are_refused_without_echoing_them(api):
    status, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": "<script>1", "c": "A-1"})
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "<script>" not in str(body)
    status, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": "900101-1234567", "c": ""})
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST" and "caseRef" in body["errors"][0]["message"]


async def test_an_unknown_subject_shows_not_found_per_field(api):
    status, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": "000101-3000000", "c": "N-1"})
    assert status == 200 and "errors" not in body
    assert {f["status"] for f in fields_of(body["data"]["screen"]).values()} == {"NOT_FOUND"}


async def test_each_screen_s_audit_record_holds_its_own_field_decisions_made_once_per_field_and_status(api, data_dir):
    """Door.events gives each (field, status) one FieldDecision per configuration snapshot, shared by the records
    of every request (a screen's 30 decisions were made afresh each time); each record still holds the statuses
    its own screen showed."""
    from oneScreen.audit import pseudonymise

    snapshot = api.app.state.runtime.snapshot
    shown = {}
    for rrn, case in ((citizens(data_dir, 1)[0], "2026-전입-101"), ("000101-3000000", "2026-전입-102")):
        status, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": case})
        assert status == 200 and "errors" not in body
        shown[rrn] = {fid: f["status"] for fid, f in fields_of(body["data"]["screen"]).items()}
    assert set(shown["000101-3000000"].values()) == {"NOT_FOUND"} and "OK" in shown[citizens(data_dir, 1)[0]].values()
    for rrn, statuses in shown.items():
        (record,), _ = await snapshot.audit.history(pseudonymise(snapshot.pseudonym_key, "citizen", rrn))
        assert {d.id: d.status for d in record.event.fields} == statuses
        assert all(snapshot.field_decisions[(d.id, d.status)] == d for d in record.event.fields)
    assert len(snapshot.field_decisions) == len({(f, s) for statuses in shown.values() for f, s in statuses.items()})


async def test_a_repeated_screen_is_served_from_the_cache_and_says_so(api, data_dir):
    rrn = citizens(data_dir, 1)[0]
    _, first = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "R-1"})
    before = await api.fetches()
    _, second = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "R-2"})
    assert await api.fetches() == before
    f1, f2 = fields_of(first["data"]["screen"]), fields_of(second["data"]["screen"])
    assert all(not f["source"]["cached"] for f in f1.values())
    assert all(f["source"]["cached"] for f in f2.values())
    assert {k: v["value"] for k, v in f1.items()} == {k: v["value"] for k, v in f2.items()}


async def test_a_planned_one_stage_read_gives_exactly_what_the_staged_walk_gives(api, data_dir):
    """screen.resolve's shortcut for paths without links (planned once per typed query) must answer every path
    as the general stage-by-stage walk does: values, NOT_FOUND, a failed ledger, a value of the wrong type."""
    import random
    import sqlite3

    from oneScreen.resilience import CircuitBreaker
    from oneScreen.screen import SubjectRequest, one_stage, resolve
    snapshot = api.app.state.runtime.snapshot
    gateway = snapshot.gateway
    fields = [f for f in snapshot.catalog.fields_by_subject["citizen"] if not f.is_link]
    assert one_stage([(f,) for f in fields]) is not None
    assert one_stage([(snapshot.catalog.fields["citizen.residence"], fields[0])]) is None  # a link: staged walk
    rrn = citizens(data_dir, 1)[0]
    with sqlite3.connect(data_dir / "demo" / "nhis_eligibility.sqlite") as db:  # an integer that is not one
        db.execute("UPDATE eligibility SET dependant_cnt = 'many' WHERE rrn = ?", (rrn,))
    with sqlite3.connect(data_dir / "demo" / "court_family.sqlite") as db:  # a ledger that fails
        db.execute("DROP TABLE family_relation")
    rng = random.Random(7)
    statuses = set()

    def fresh():  # both reads from the ledgers, and the failing one not yet behind an open circuit
        for cache in gateway.caches.values():
            cache.clear()
        for lid, ledger in gateway.ledgers.items():
            gateway.breakers[lid] = CircuitBreaker(ledger.breaker_failures, ledger.breaker_reset)
    for key in (rrn, *citizens(data_dir, 3), "991231-2999999"):
        for _ in range(4):
            paths = tuple((f,) for f in rng.sample(fields, rng.randint(1, len(fields))))
            fresh()
            before = await api.fetches()
            [planned] = await resolve([SubjectRequest("citizen", key, paths, one_stage(paths))], gateway)
            after = await api.fetches()
            # invariant 3: one read per ledger the paths touch (no retries here: the failing ledger fails at once)
            assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} == \
                {lid: 1.0 for lid in {p[0].ledger.id for p in paths}}
            fresh()
            [walked] = await resolve([SubjectRequest("citizen", key, paths)], gateway)

            def same(results):  # the read times differ by the moments of the two reads
                return [(pid, r._replace(source=r.source and r.source._replace(read_at=r.source.read_at is not None)))
                        for pid, r in results.items()]
            assert same(planned) == same(walked)
            statuses |= {r.status.value for r in planned.values()}
    assert statuses >= {"OK", "NOT_FOUND", "UNAVAILABLE"}


@pytest.mark.parametrize("compiled", [True, False])
async def test_two_root_fields_with_one_response_key_are_merged_not_half_decided(api, data_dir, compiled):
    """Invariant 1 (deny by default) without denying what is allowed: GraphQL merges two root fields with the
    same response key; every allowed field of both selections comes back, none FIELD_DENIED "not decided"."""
    api.app.state.runtime.snapshot.schema.compiled = compiled
    rrn = citizens(data_dir, 1)[0]
    root = f'citizen(rrn: "{rrn}", task: "vehicle_transfer", caseRef: "T-merge-1")'
    status, body = await api.gql("choi.chaeryang", f"{{ {root} {{ name }} {root} {{ address }} }}")
    assert status == 200 and "errors" not in body, body
    row = sample(data_dir, "mois_resident:SELECT name, road_addr FROM resident WHERE rrn = ?", rrn)[0]
    assert body["data"]["citizen"] == {"name": row["name"], "address": row["road_addr"]}


async def test_padded_and_blank_values_of_a_sql_ledger_are_trimmed_and_no_value(api, data_dir):
    """Ledgers pad (CHAR columns, portal loads) and send blanks: the name is shown trimmed, a blank date is no
    value (the field stays OK), a padded link still leads to the building, and one member's bad birth date is
    a bad value of that one cell of the household table, with a reason that does not repeat it."""
    import sqlite3

    rrn = citizens(data_dir, 1, "hshld_id IN (SELECT hshld_id FROM resident GROUP BY hshld_id HAVING COUNT(*) > 1)")[0]
    row = sample(data_dir, "mois_resident:SELECT * FROM resident WHERE rrn = ?", rrn)[0]
    others = sample(data_dir, "mois_resident:SELECT rrn FROM resident WHERE hshld_id = ? AND rrn != ? ORDER BY rrn",
                    row["hshld_id"], rrn)
    with sqlite3.connect(data_dir / "demo" / "mois_resident.sqlite") as db:
        db.execute("UPDATE resident SET name = ?, mvin_de = ' ', mgm_bldrgst_pk = ? WHERE rrn = ?",
                   (f"  {row['name']}\u3000", f" {row['mgm_bldrgst_pk']} ", rrn))
        db.execute("UPDATE resident SET birth_date = '1990-02-31' WHERE rrn = ?", (others[0]["rrn"],))
    status, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "2026-전입-009"})
    assert status == 200 and "errors" not in body, body
    got = fields_of(body["data"]["screen"])
    assert got["citizen.name"]["value"] == row["name"]
    assert (got["citizen.move_in_date"]["status"], got["citizen.move_in_date"]["value"]) == ("OK", None)
    building = sample(data_dir, "molit_building:SELECT mainPurpsCdNm FROM bldg_title WHERE mgmBldrgstPk = ?",
                      row["mgm_bldrgst_pk"])[0]
    assert got["citizen.residence>building.main_purpose"]["value"] == building["mainPurpsCdNm"]
    members = got["citizen.household>household.members"]
    assert members["status"] == "OK" and len(members["value"]) == 1 + len(others) > 1
    _, body = await api.gql("kim.jumin", """query($s: ID!) { screen(task: "move_in_report", subject: $s,
        caseRef: "2026-전입-010", fields: ["citizen.household>household.members"]) { sections { fields {
        value badValues { row column reason reasonEn } } } } }""", {"s": rrn})
    f = body["data"]["screen"]["sections"][0]["fields"][0]
    [bad] = f["badValues"]
    assert bad["column"] == "birth_date" and f["value"][bad["row"]]["birth_date"] is None
    assert sum(m["birth_date"] is None for m in f["value"]) == 1 and "1990-02-31" not in str(body)


@pytest.mark.parametrize("ctype,raw,value", [
    ("string", "  서울특별시 종로구 ", "서울특별시 종로구"), ("string", " \t\u3000", None), ("string", 1234, "1234"),
    ("integer", " 42 ", 42), ("integer", "007", 7), ("integer", "12.0", 12), ("integer", " ", None),
    ("integer", 2 ** 53 - 1, 2 ** 53 - 1), ("number", "1234.50", 1234.5), ("number", " ", None),
    ("number", "0.1", 0.1), ("boolean", " Y ", True), ("date", " 2024-01-15 ", "2024-01-15"), ("date", "", None),
])
def test_a_value_is_converted_to_its_catalog_type_trimmed_with_blank_as_no_value(ctype, raw, value):
    from oneScreen.catalog import Column
    from oneScreen.screen import convert

    assert convert(Column("c", "c", "", "", ctype, None), raw) == value


@pytest.mark.parametrize("ctype,raw,says", [
    ("integer", "1162010200566074812345", "string"), ("integer", 1162010200566074812345, "string"),
    ("integer", 2 ** 53, "string"), ("integer", "1_000", "not an integer"), ("integer", "١٢", "not an integer"),
    ("integer", 1.5, "not an integer"), ("integer", float("nan"), "not an integer"),
    ("number", "1162010200566074812345", "rounded"), ("number", 1162010200566074812345, "rounded"),
    ("number", "0.30000000000000001", "rounded"), ("number", "NaN", "not a number"),
    ("number", float("inf"), "not a finite number"), ("number", "1,234", "not a number"), ("number", 10 ** 400, "rounded"),
    ("string", "\ud800", "not valid text"), ("string", {"a": 1}, "not text"), ("boolean", "maybe", "yes/no"),
    ("date", "2024-02-30", "not a date"),
])
def test_a_value_that_cannot_be_shown_exactly_is_refused_with_a_reason_that_does_not_repeat_it(ctype, raw, says):
    """Never a rounded number, never an integer a JSON client rounds or orjson refuses (a 500), never text no
    encoder can send: NotConvertible, whose Korean and English reasons leave the value out."""
    from oneScreen.catalog import Column
    from oneScreen.screen import NotConvertible, convert

    with pytest.raises(NotConvertible) as caught:
        convert(Column("c", "c", "", "", ctype, None), raw)
    assert says in caught.value.reason_en and str(raw) not in caught.value.reason_en + caught.value.reason
