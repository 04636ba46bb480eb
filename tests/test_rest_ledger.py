"""A REST ledger in a real screen: the agency API on loopback, faults injected, the rest of the screen served."""
from __future__ import annotations

import json
import logging
import re
from datetime import datetime

import httpx
import pytest

from conftest import Api, sample
from oneScreen.demo.agency_api import AgencyServer
from test_screen import SCREEN, fields_of

KEY = "test-service-key-123"


def building_on_parcel(data_dir):
    return sample(data_dir, "molit_building:SELECT mgmBldrgstPk, pnu FROM bldg_title ORDER BY mgmBldrgstPk LIMIT 1")[0]


@pytest.fixture
async def agency(data_dir):
    async with AgencyServer(data_dir / "demo", KEY) as srv:
        yield srv


@pytest.fixture
async def api_rest(make_app, data_dir, agency):
    app = make_app(ONESCREEN_URL_MOLIT_BLDG_HUB=agency.url, ONESCREEN_KEY_MOLIT_BLDG_HUB=KEY)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield Api(c, data_dir, app)
    await app.state.runtime.close()


async def test_the_demo_screen_reads_a_rest_ledger_through_the_in_process_agency_api(api, data_dir):
    b = building_on_parcel(data_dir)
    _, body = await api.gql("park.geonchuk", SCREEN, {"t": "building_use_change", "s": b["mgmBldrgstPk"], "c": "R-1"})
    got = fields_of(body["data"]["screen"])["building.parcel>parcel.buildings"]
    names = [r[0] for r in sample(data_dir, "molit_building:SELECT bldNm FROM bldg_title WHERE pnu = ?", b["pnu"])]
    # a building without a name is no value (null), not "" (the API sends an empty element)
    assert got["status"] == "OK" and sorted(x["name"] or "" for x in got["value"]) == sorted(names)
    assert all(x["name"] is None or x["name"].strip() == x["name"] != "" for x in got["value"])
    assert got["source"]["ledger"] == "molit.building_hub"


@pytest.mark.parametrize("mode,reason", [
    ("http500", "HTTP 500"), ("quota", "quota"), ("auth", "service key"), ("html200", "HTML"),
    ("malformed_xml", "malformed XML"),
])
async def test_an_agency_fault_costs_only_the_rest_ledgers_fields(api_rest, agency, data_dir, mode, reason):
    b = building_on_parcel(data_dir)
    agency.set_faults(mode=mode)
    _, body = await api_rest.gql("park.geonchuk", SCREEN, {"t": "building_use_change", "s": b["mgmBldrgstPk"], "c": "F-1"})
    got = fields_of(body["data"]["screen"])
    hub = got.pop("building.parcel>parcel.buildings")
    assert hub["status"] == "UNAVAILABLE" and reason in hub["reasonEn"] and KEY not in str(body)
    # the Korean reason says it in Korean, not the connector's English under a Korean heading
    assert hub["reason"].startswith("국토교통부 건축HUB") and "조회 실패: " in hub["reason"]
    assert hub["reasonEn"].split("unavailable: ", 1)[1] not in hub["reason"]
    _, body = await api_rest.gql("park.geonchuk", """query($s: ID!) { screen(task: "building_use_change", subject: $s,
        caseRef: "F-2", fields: ["building.parcel>parcel.buildings"]) { unavailableLedgers { ledger reason }
        sections { fields { id status } } } }""", {"s": b["mgmBldrgstPk"]})
    screen = body["data"]["screen"]
    assert [l["ledger"] for l in screen["unavailableLedgers"]] == ["molit.building_hub"]
    assert [f["id"] for s in screen["sections"] for f in s["fields"]] == ["building.parcel>parcel.buildings"]
    assert got["building.road_address"]["status"] == "OK" and "UNAVAILABLE" not in {f["status"] for f in got.values()}


async def test_a_failing_agency_is_retried_then_its_circuit_opens(api_rest, agency, data_dir):
    b = building_on_parcel(data_dir)
    agency.set_faults(mode="http500")
    variables = {"t": "building_use_change", "s": b["mgmBldrgstPk"], "c": "C-1"}
    await api_rest.gql("park.geonchuk", SCREEN, variables)
    assert agency.requests == 3  # first try and two retries
    await api_rest.gql("park.geonchuk", SCREEN, variables)
    assert agency.requests == 5  # the fifth failed attempt opens the circuit
    _, body = await api_rest.gql("park.geonchuk", SCREEN, variables)
    assert agency.requests == 5  # open: not called
    assert "circuit open" in fields_of(body["data"]["screen"])["building.parcel>parcel.buildings"]["reasonEn"]
    ready = await api_rest.client.get("/readyz")
    assert ready.json()["ledgers"]["molit.building_hub"] == "open"


# ---------------------------------------------------------------- values as portals send them

BUILDINGS = """query($s: ID!, $c: String!) { screen(task: "building_use_change", subject: $s, caseRef: $c,
  fields: ["building.parcel>parcel.buildings", "building.road_address"]) {
  unavailableLedgers { ledger reason reasonEn }
  sections { fields { id status value reason reasonEn badValues { row column reason reasonEn }
    source { ledger readAt asOf lastUpdated cached } } } } }"""
TYPED = """query($s: ID!, $c: String!) { building(id: $s, task: "building_use_change", caseRef: $c) {
  roadAddress parcel { buildings { name registerId totalFloorArea } } } }"""
REGISTER_ID = ("      - {name: name, column: bldNm, label: 건물명, label_en: Name}\n",
               "      - {name: name, column: bldNm, label: 건물명, label_en: Name}\n"
               "      - {name: register_id, column: mgmBldrgstPk, type: integer, label: 관리번호, label_en: Register no}\n")


@pytest.fixture
async def portal(make_app, data_dir, agency, catalog_copy):
    """An app whose REST ledger is the agency API, over a copy of the configuration with `edits` made to the
    catalog (old text -> new text)."""
    opened = []

    async def make(*edits: tuple[str, str]) -> Api:
        path = catalog_copy / "field_catalog.yaml"
        text = path.read_text(encoding="utf-8")
        for old, new in edits:
            assert old in text, old
            text = text.replace(old, new, 1)
        path.write_text(text, encoding="utf-8")
        app = make_app(ONESCREEN_URL_MOLIT_BLDG_HUB=agency.url, ONESCREEN_KEY_MOLIT_BLDG_HUB=KEY,
                       ONESCREEN_CATALOG=str(path), ONESCREEN_POLICIES=str(catalog_copy / "policies"))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        opened.append((app, client))
        return Api(client, data_dir, app)

    yield make
    for app, client in opened:
        await client.aclose()
        await app.state.runtime.close()


async def buildings(api: Api, building: str, case_ref: str) -> tuple[dict, dict]:
    status, body = await api.gql("park.geonchuk", BUILDINGS, {"s": building, "c": case_ref})
    assert status == 200 and "errors" not in body, body
    screen = body["data"]["screen"]
    return screen, fields_of(screen)


@pytest.mark.parametrize("fmt", ["xml", "json"])
async def test_portal_blanks_are_no_value_and_padded_text_is_trimmed(portal, agency, data_dir, fmt):
    """A caseworker sees " " as nothing, not as a name; " 단독주택" as 단독주택; and a blank date as no date,
    not as a failed ledger: the field stays OK and no ledger is named unavailable."""
    api = await portal(("      format: xml\n", f"      format: {fmt}\n"))
    b = building_on_parcel(data_dir)
    agency.set_items(b["pnu"], [
        {"bldNm": " 한빛빌딩 ", "mainPurpsCdNm": " ", "totArea": " 1234.5 ", "useAprDay": " "},
        {"bldNm": " ", "mainPurpsCdNm": "  단독주택", "totArea": "", "useAprDay": "20240115 "},
        {"bldNm": "\u3000별관\u3000", "mainPurpsCdNm": "창고시설", "totArea": 56.25, "useAprDay": "\t"}])
    screen, got = await buildings(api, b["mgmBldrgstPk"], "P-1")
    hub = got["building.parcel>parcel.buildings"]
    assert hub["status"] == "OK" and hub["badValues"] == [] and screen["unavailableLedgers"] == []
    assert hub["value"] == [
        {"name": "한빛빌딩", "main_purpose": None, "total_floor_area": 1234.5, "use_approval_date": None},
        {"name": None, "main_purpose": "단독주택", "total_floor_area": None, "use_approval_date": "2024-01-15"},
        {"name": "별관", "main_purpose": "창고시설", "total_floor_area": 56.25, "use_approval_date": None}]
    assert got["building.road_address"]["status"] == "OK"


async def test_one_bad_value_costs_only_its_own_cell_with_a_reason_that_never_holds_it(portal, agency, data_dir,
                                                                                        caplog):
    """A date that is no date, a number that is no number: each is a bad value of its own cell, with its
    reason; the other cells of its row, the other rows, the field and the ledger are as read."""
    api = await portal()
    b = building_on_parcel(data_dir)
    agency.set_items(b["pnu"], [
        {"bldNm": "가동", "mainPurpsCdNm": "업무시설", "totArea": "812.5", "useAprDay": "20241399"},
        {"bldNm": "나동", "mainPurpsCdNm": "창고시설", "totArea": "확인불가", "useAprDay": "20200101"}])
    status, body = await api.gql("park.geonchuk", BUILDINGS, {"s": b["mgmBldrgstPk"], "c": "P-2"})
    assert status == 200 and "errors" not in body, body
    screen = body["data"]["screen"]
    hub = fields_of(screen)["building.parcel>parcel.buildings"]
    assert hub["status"] == "OK" and screen["unavailableLedgers"] == []
    assert hub["value"] == [
        {"name": "가동", "main_purpose": "업무시설", "total_floor_area": 812.5, "use_approval_date": None},
        {"name": "나동", "main_purpose": "창고시설", "total_floor_area": None, "use_approval_date": "2020-01-01"}]
    assert hub["badValues"] == [
        {"row": 0, "column": "use_approval_date", "reason": "날짜가 아닙니다 (카탈로그의 형식: %Y%m%d)",
         "reasonEn": "not a date (the catalog's format: %Y%m%d)"},
        {"row": 1, "column": "total_floor_area", "reason": "숫자가 아닙니다", "reasonEn": "not a number"}]
    for value in ("20241399", "확인불가"):  # privacy: the bad value is in no reason, and in no log line
        assert value not in json.dumps(body, ensure_ascii=False) and value not in caplog.text


@pytest.mark.parametrize("compiled", [True, False])
async def test_a_22_digit_identifier_typed_as_a_number_is_a_bad_value_not_a_500_nor_a_rounded_number(
        portal, agency, data_dir, compiled):
    """The building register's 22-digit key, mapped as `type: integer` (and a 22-digit `number`): the screen
    answers 200 with that cell a bad value whose reason says to map it as a string; nothing is rounded; the
    typed API reports a BAD_VALUE at that very cell, never "Int cannot represent" with the value in it."""
    api = await portal(("      format: xml\n", "      format: json\n"), REGISTER_ID)
    api.app.state.runtime.snapshot.schema.compiled = compiled
    b = building_on_parcel(data_dir)
    big = 1162010200566074812345
    agency.set_items(b["pnu"], [  # JSON: bare numbers, as the portal sends them
        {"mgmBldrgstPk": big, "bldNm": "가동", "totArea": big},
        {"mgmBldrgstPk": 1234, "bldNm": "나동", "totArea": 99.5}])
    r = await api.post("park.geonchuk", BUILDINGS, {"s": b["mgmBldrgstPk"], "c": "P-3"})
    assert r.status_code == 200, r.text
    assert str(big) not in r.text and "1.1620102005660748e" not in r.text
    hub = fields_of(r.json()["data"]["screen"])["building.parcel>parcel.buildings"]
    assert hub["status"] == "OK"
    assert [(x["register_id"], x["total_floor_area"], x["name"]) for x in hub["value"]] == \
        [(None, None, "가동"), (1234, 99.5, "나동")]
    assert [(v["row"], v["column"]) for v in hub["badValues"]] == [(0, "register_id"), (0, "total_floor_area")]
    assert all("string" in v["reasonEn"] and "string" in v["reason"] for v in hub["badValues"])
    status, body = await api.gql("park.geonchuk", TYPED, {"s": b["mgmBldrgstPk"], "c": "P-4"})
    assert status == 200 and str(big) not in json.dumps(body)
    assert [(e["extensions"]["code"], e["path"]) for e in body["errors"]] == [
        ("BAD_VALUE", ["building", "parcel", "buildings", 0, "registerId"]),
        ("BAD_VALUE", ["building", "parcel", "buildings", 0, "totalFloorArea"])]
    assert body["data"]["building"]["parcel"]["buildings"] == [
        {"name": "가동", "registerId": None, "totalFloorArea": None},
        {"name": "나동", "registerId": 1234, "totalFloorArea": 99.5}]


async def test_a_ledger_with_more_rows_than_max_pages_reads_is_partial_never_ok(portal, agency, data_dir):
    """119 buildings, one page of 100 read: the field is PARTIAL with "100 of 119" in its reason (also when
    answered from the cache); the typed API gives the field whole or not at all (LEDGER_PARTIAL)."""
    api = await portal(("      page_size: 100\n", "      page_size: 100\n      max_pages: 1\n"))
    b = building_on_parcel(data_dir)
    agency.set_items(b["pnu"], [{"bldNm": f"{i}동", "mainPurpsCdNm": "공동주택", "totArea": "100",
                                 "useAprDay": "20200101"} for i in range(1, 120)])
    for case_ref in ("P-5", "P-6"):  # read, then from the cache
        screen, got = await buildings(api, b["mgmBldrgstPk"], case_ref)
        hub = got["building.parcel>parcel.buildings"]
        assert hub["status"] == "PARTIAL" and len(hub["value"]) == 100
        assert hub["reasonEn"].startswith("100 of 119 rows read") and "119건" in hub["reason"]
        assert screen["unavailableLedgers"] == [] and got["building.road_address"]["status"] == "OK"
    assert hub["source"]["cached"] is True and agency.requests == 1
    status, body = await api.gql("park.geonchuk", TYPED.replace(" registerId", ""),
                                 {"s": b["mgmBldrgstPk"], "c": "P-7"})
    assert [(e["extensions"]["code"], e["path"]) for e in body["errors"]] == \
        [("LEDGER_PARTIAL", ["building", "parcel", "buildings"])]
    assert "100 of 119" in body["errors"][0]["message"] and body["data"]["building"]["roadAddress"]


async def test_an_open_circuit_names_its_last_real_failure_and_every_transition_is_logged(api_rest, agency,
                                                                                          data_dir, caplog):
    """Behind an open circuit the reason keeps the cause (HTTP 500, when); the log has the circuit opening,
    half-opening and closing, each with its cause."""
    caplog.set_level(logging.INFO, logger="onescreen.resilience")
    b = building_on_parcel(data_dir)
    variables = {"t": "building_use_change", "s": b["mgmBldrgstPk"], "c": "C-2"}
    agency.set_faults(mode="http500")
    for _ in range(3):
        _, body = await api_rest.gql("park.geonchuk", SCREEN, variables)
    hub = fields_of(body["data"]["screen"])["building.parcel>parcel.buildings"]
    assert agency.requests == 5 and hub["status"] == "UNAVAILABLE"
    assert re.search(r"unavailable: circuit open after 5 failures, last: HTTP 500 from agency API at "
                     r"\d\d:\d\d:\d\d KST; next try in \d+ s$", hub["reasonEn"]), hub["reasonEn"]
    assert re.search(r"조회 실패: 연속 5회 실패로 연결 차단 중, 마지막 실패: 기관 API가 HTTP 500 오류로 응답했습니다 "
                     r"\(\d\d:\d\d:\d\d KST\); \d+초 뒤 다시 시도합니다$", hub["reason"]), hub["reason"]
    breaker = api_rest.app.state.runtime.snapshot.gateway.breakers["molit.building_hub"]
    breaker.opened_at -= breaker.reset_after  # the reset time has passed (the breaker's clock, moved)
    agency.set_faults(mode="none")
    _, body = await api_rest.gql("park.geonchuk", SCREEN, variables)
    assert fields_of(body["data"]["screen"])["building.parcel>parcel.buildings"]["status"] == "OK"
    lines = [(r.getMessage(), r.status, r.reason) for r in caplog.records if r.name == "onescreen.resilience"]
    assert [(m, s) for m, s, _ in lines] == [("circuit opened", "open"),
                                             ("circuit half-open: one probe may go through", "half_open"),
                                             ("circuit closed: the ledger answered again", "closed")]
    assert all("5 consecutive failures, last: HTTP 500 from agency API at " in reason for _, _, reason in lines)


async def test_the_source_shows_the_records_last_modified_date_beside_the_time_of_the_read(portal, agency,
                                                                                          data_dir):
    """`lastUpdated` is the record's date from the ledger's last-modified column (the latest of the rows);
    `readAt` the time of the read; `asOf`, deprecated, still answers as readAt."""
    api = await portal(("    timeout: 5\n",
                        "    timeout: 5\n    last_modified_column: crtnDay\n    last_modified_format: \"%Y%m%d\"\n"))
    b = building_on_parcel(data_dir)
    agency.set_items(b["pnu"], [{"bldNm": "가동", "crtnDay": "20231115"}, {"bldNm": "나동", "crtnDay": " 20240301 "},
                                {"bldNm": "다동", "crtnDay": " "}])
    _, got = await buildings(api, b["mgmBldrgstPk"], "P-8")
    hub = got["building.parcel>parcel.buildings"]
    assert hub["status"] == "OK" and [x["name"] for x in hub["value"]] == ["가동", "나동", "다동"]
    assert all("crtnDay" not in x for x in hub["value"])  # read for the source, never shown as a value
    source = hub["source"]
    assert source["lastUpdated"] == "2024-03-01" and source["asOf"] == source["readAt"]
    assert datetime.fromisoformat(source["readAt"]).tzinfo is not None
    assert got["building.road_address"]["source"]["lastUpdated"] is None  # its ledger names no such column


async def test_introspection_proposes_string_for_identifiers_and_integers_beyond_53_bits(portal, agency):
    """`catalog introspect` (and the admin page) proposes type string for a key-like column and for a JSON
    integer no number holds exactly, so the 22-digit key is never mapped as an integer again."""
    api = await portal(("      format: xml\n", "      format: json\n"))
    agency.set_items("1111011500101210000", [{"mgmBldrgstPk": 1162010200566074812345, "sigunguCd": "11110",
                                              "hhldCnt": 12, "totArea": 1234.5, "bldNm": "가동",
                                              "dongArea": 1162010200566074812345}])
    status, body = await api.gql("han.catalog", '{ ledgerColumns(ledger: "molit.building_hub") '
                                                '{ name type proposedType } }')
    assert status == 200 and "errors" not in body, body
    proposed = {c["name"]: (c["type"], c["proposedType"]) for c in body["data"]["ledgerColumns"]}
    assert proposed == {"mgmBldrgstPk": ("integer (beyond 53 bits)", "string"), "sigunguCd": ("string", "string"),
                        "hhldCnt": ("integer", "integer"), "totArea": ("number", "number"),
                        "bldNm": ("string", "string"), "dongArea": ("integer (beyond 53 bits)", "string")}
