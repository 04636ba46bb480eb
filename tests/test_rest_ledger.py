"""A REST ledger in a real screen: the agency API on loopback, faults injected, the rest of the screen served."""
from __future__ import annotations

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
    names = sorted(r[0] for r in sample(data_dir, "molit_building:SELECT bldNm FROM bldg_title WHERE pnu = ?", b["pnu"]))
    assert got["status"] == "OK" and sorted(x["name"] for x in got["value"]) == names
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
    assert hub["status"] == "UNAVAILABLE" and reason in hub["reason"] and KEY not in str(body)
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
    assert "circuit open" in fields_of(body["data"]["screen"])["building.parcel>parcel.buildings"]["reason"]
    ready = await api_rest.client.get("/readyz")
    assert ready.json()["ledgers"]["molit.building_hub"] == "open"
