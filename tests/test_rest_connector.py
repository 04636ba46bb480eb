"""The REST connector against the agency API test server, both real, on loopback.

The server serves the demo building register (bldg_title of molit_building.sqlite, plus a few rows
this module adds: a parcel with three buildings and a building on a 산 parcel); the expected side of
every test is read from that SQLite file directly. Invariant 9: the service key never appears in an
error or a log line; invariant 5 relies on every failure being a ConnectorError with a safe reason.
"""
from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sqlite3
import sys
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any, AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from connectors.base import ConnectorConfigError, ConnectorError, SourceSpec, create
from oneScreen.demo.agency_api import PREFIX, AgencyServer, start_in_thread

SERVICE_KEY = "Zm9vYmFy+c2Vydmlj/ZS9rZXk0Q1w2E3r4T5y6U7i8O9p0a1s2d3f4g5h6j7k8l9==="  # portal keys are base64
LEDGER = "molit.building_hub"
URL_ENV, KEY_ENV = "ONESCREEN_URL_MOLIT_BLDG_HUB", "ONESCREEN_KEY_MOLIT_BLDG_HUB"
PARAMS = {"sigunguCd": "key[0:5]", "bjdongCd": "key[5:10]",
          "platGbCd": {"of": "key[10:11]", "map": {"1": "0", "2": "1"}}, "bun": "key[11:15]", "ji": "key[15:19]"}
NO_BUILDING = "1111010100199990000"  # a well-formed PNU without a building


def config(**overrides: Any) -> dict[str, Any]:
    cfg = {"kind": "rest", "base_url_env": URL_ENV, "service_key_env": KEY_ENV,
           "operation": f"{PREFIX}/getBrTitleInfo", "format": "xml", "params": PARAMS,
           "items_path": "response.body.items.item", "result_code_path": "response.header.resultCode",
           "result_codes": {"ok": ["00"], "no_data": ["03"], "quota": ["22"], "auth": ["20", "30", "31", "32"]},
           "total_count_path": "response.body.totalCount", "page_size": 100, "max_pages": 10,
           "max_connections": 10, "request_timeout": 5, "sample_key": "1111010100100010000"}
    cfg.update(overrides)
    return {k: v for k, v in cfg.items() if v is not None}


# ---------------------------------------------------------------- the demo register, served
@pytest.fixture(scope="module")
def agency_dir(demo_master: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of molit_building.sqlite with a parcel of three buildings and a building on a 산 parcel."""
    d = tmp_path_factory.mktemp("agency")
    shutil.copy(demo_master / "demo" / "molit_building.sqlite", d / "molit_building.sqlite")
    with sqlite3.connect(d / "molit_building.sqlite") as conn:
        conn.row_factory = sqlite3.Row
        apt = dict(conn.execute("SELECT * FROM bldg_title WHERE mainPurpsCdNm = '아파트' ORDER BY rowid").fetchone())
        for n in (2, 3):
            conn.execute(_insert(conn), {**apt, "mgmBldrgstPk": f"{apt['mgmBldrgstPk']}-{n}",
                                         "bldNm": apt["bldNm"].replace("101동", f"10{n}동")})
        rural = dict(conn.execute("SELECT * FROM bldg_title WHERE sigunguCd = '43760' ORDER BY rowid").fetchone())
        mountain = rural["pnu"][:10] + "2" + rural["pnu"][11:]  # same 번/지, but on a 산 parcel
        conn.execute(_insert(conn), {**rural, "mgmBldrgstPk": rural["mgmBldrgstPk"] + "-san", "pnu": mountain,
                                     "bldNm": "산중 창고", "platPlc": rural["platPlc"].replace(" ", " 산", 3)})
    return d


def _insert(conn: sqlite3.Connection) -> str:
    cols = [r[1] for r in conn.execute("PRAGMA table_info(bldg_title)")]
    return f"INSERT INTO bldg_title ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"


def register_rows(agency_dir: Path, sql: str = "SELECT * FROM bldg_title ORDER BY rowid") -> list[dict[str, str]]:
    """Rows of the building register, read directly, each value as the API gives it (a string)."""
    conn = sqlite3.connect(f"file:{agency_dir / 'molit_building.sqlite'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [{k: "" if r[k] is None else str(r[k]) for k in r.keys()} for r in conn.execute(sql)]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def register(agency_dir: Path) -> dict[str, list[dict[str, str]]]:
    by_pnu: dict[str, list[dict[str, str]]] = {}
    for r in register_rows(agency_dir):
        by_pnu.setdefault(r["pnu"], []).append(r)
    return by_pnu


@pytest.fixture(scope="module")
def columns(agency_dir: Path) -> list[str]:
    return list(register_rows(agency_dir)[0])


@pytest.fixture(scope="module")
def multi_parcel(register: dict[str, list[dict[str, str]]]) -> str:
    return next(p for p, rows in register.items() if len(rows) == 3)


@pytest.fixture(scope="module")
def parcel(register: dict[str, list[dict[str, str]]]) -> str:
    """A parcel with one building."""
    return next(p for p, rows in register.items() if len(rows) == 1)


@pytest.fixture(scope="module")
def mountain_parcel(register: dict[str, list[dict[str, str]]]) -> str:
    return next(p for p in register if p[10] == "2")


@pytest.fixture
async def server(agency_dir: Path) -> AsyncIterator[AgencyServer]:
    async with AgencyServer(agency_dir, SERVICE_KEY) as srv:
        yield srv


@pytest.fixture
async def connector():
    """Builds connectors (closing them all at the end): connector(base_url, **config overrides)."""
    made = []

    def make(base_url: str, env: dict[str, str] | None = None, **overrides: Any):
        c = create(SourceSpec(LEDGER, "pnu", config(**overrides),
                              env if env is not None else {URL_ENV: base_url, KEY_ENV: SERVICE_KEY}))
        made.append(c)
        return c

    yield make
    for c in made:
        await c.close()


def secrets_in(exc: BaseException, *secrets: str) -> list[str]:
    """Which of `secrets` show up anywhere in the exception: its text, its chain, its formatted traceback."""
    texts = ["".join(traceback.format_exception(exc))]
    e: BaseException | None = exc
    while e is not None:
        texts += [str(e), repr(e), *map(str, e.args)]
        e = e.__cause__ or e.__context__
    return [s for s in secrets if any(s in t for t in texts)]


# ---------------------------------------------------------------- reading
@pytest.mark.parametrize("fmt", ["xml", "json"])
async def test_rows_for_a_parcel_match_the_building_register(fmt, server, connector, register, columns,
                                                             multi_parcel, mountain_parcel):
    keys = [p for p in list(register)[::150]] + [multi_parcel, mountain_parcel, mountain_parcel[:10] + "1" +
                                                   mountain_parcel[11:], NO_BUILDING]
    c = connector(server.url, format=fmt)
    got = await c.fetch(keys, columns)
    expected = {k: register[k] for k in keys if k in register}
    assert got == expected
    assert got[mountain_parcel][0]["bldNm"] == "산중 창고"  # platGbCd tells 산 from 대지 with the same 번/지
    assert server.requests == len(set(keys))  # one GET per key, one page each


async def test_a_single_json_item_comes_as_an_object_and_no_data_as_an_empty_string(server, mountain_parcel):
    """The portal's XML->JSON quirks that the connector has to understand are really served."""
    async def get(pnu: str) -> dict:
        p = {"serviceKey": SERVICE_KEY, "sigunguCd": pnu[:5], "bjdongCd": pnu[5:10], "platGbCd": "1",
             "bun": pnu[11:15], "ji": pnu[15:19], "_type": "json"}
        async with aiohttp.ClientSession() as s, s.get(f"{server.url}{PREFIX}/getBrTitleInfo", params=p) as r:
            return await r.json()

    one = await get(mountain_parcel)
    assert isinstance(one["response"]["body"]["items"]["item"], dict)
    none = await get(mountain_parcel[:11] + "9999" + mountain_parcel[15:])
    assert none["response"]["header"] == {"resultCode": "03", "resultMsg": "NODATA_ERROR"}
    assert none["response"]["body"]["items"] == ""


async def test_server_answers_in_the_portal_envelope(server, multi_parcel):
    url = f"{server.url}{PREFIX}/getBrTitleInfo"
    p = {"serviceKey": SERVICE_KEY, "sigunguCd": multi_parcel[:5], "bjdongCd": multi_parcel[5:10], "platGbCd": "0",
         "bun": multi_parcel[11:15], "ji": multi_parcel[15:19], "numOfRows": "2", "pageNo": "2"}
    async with aiohttp.ClientSession() as s:
        async with s.get(url, params={**p, "_type": "json"}) as r:
            doc = await r.json()
        async with s.get(url, params=p) as r:
            xml = await r.text()
        async with s.get(url, params={"serviceKey": SERVICE_KEY, "sigunguCd": "11110", "_type": "json"}) as r:
            missing = await r.json()
        async with s.get(url, params={**p, "serviceKey": "not-the-key", "_type": "json"}) as r:
            bad_key = await r.json()
    assert doc["response"]["header"] == {"resultCode": "00", "resultMsg": "NORMAL SERVICE."}
    assert {k: v for k, v in doc["response"]["body"].items() if k != "items"} == \
        {"numOfRows": 2, "pageNo": 2, "totalCount": 3}
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><response><header>'
                          "<resultCode>00</resultCode><resultMsg>NORMAL SERVICE.</resultMsg></header><body><items>"
                          "<item><mgmBldrgstPk>")
    assert xml.endswith("</item></items><numOfRows>2</numOfRows><pageNo>2</pageNo>"
                        "<totalCount>3</totalCount></body></response>")
    assert missing["response"]["header"]["resultCode"] == "10"
    assert bad_key["response"]["header"] == {"resultCode": "30", "resultMsg": "SERVICE_KEY_IS_NOT_REGISTERED_ERROR"}


@pytest.mark.parametrize("fmt", ["xml", "json"])
async def test_paging_collects_every_building_of_a_parcel(fmt, server, connector, register, multi_parcel):
    c = connector(server.url, format=fmt, page_size=1)
    got = await c.fetch([multi_parcel], ["mgmBldrgstPk", "bldNm"])
    assert got == {multi_parcel: [{"mgmBldrgstPk": r["mgmBldrgstPk"], "bldNm": r["bldNm"]}
                                  for r in register[multi_parcel]]}
    assert server.requests == 3


async def test_paging_stops_at_max_pages_with_a_warning(server, connector, register, multi_parcel, caplog):
    caplog.set_level(logging.WARNING, logger="connectors.rest")
    c = connector(server.url, page_size=1, max_pages=2)
    got = await c.fetch([multi_parcel], ["mgmBldrgstPk"])
    assert [r["mgmBldrgstPk"] for r in got[multi_parcel]] == [r["mgmBldrgstPk"] for r in register[multi_parcel][:2]]
    assert server.requests == 2
    assert "max_pages" in caplog.text and multi_parcel not in caplog.text


@pytest.mark.parametrize("fmt", ["xml", "json"])
async def test_parcel_without_buildings_has_no_rows(fmt, server, connector):
    c = connector(server.url, format=fmt)
    assert await c.fetch([NO_BUILDING], ["bldNm"]) == {}
    assert server.requests == 1


async def test_keys_that_do_not_fit_the_parameters_cost_no_request(server, connector):
    c = connector(server.url)
    assert await c.fetch(["11110", "1111010100300010000"], ["bldNm"]) == {}  # too short; digit 11 not 1/2
    assert server.requests == 0


async def test_missing_item_fields_are_none_and_only_requested_columns_come_back(server, connector, register, parcel):
    got = await connector(server.url).fetch([parcel], ["bldNm", "noSuchItem"])
    assert got == {parcel: [{"bldNm": register[parcel][0]["bldNm"], "noSuchItem": None}]}


@pytest.mark.parametrize("limit, expected", [(3, 3), (10, 8)])
async def test_keys_of_one_fetch_are_read_concurrently_within_the_connection_limit(limit, expected, server,
                                                                                   connector, register):
    server.set_faults(latency_ms=150)
    keys = list(register)[:8]
    got = await connector(server.url, max_connections=limit).fetch(keys, ["pnu"])
    assert sorted(got) == sorted(keys)
    assert server.max_concurrent == expected


# ---------------------------------------------------------------- failures
FAULTS = {  # mode -> (connector format, reason, retryable)
    "quota": ("xml", "agency API quota exceeded (resultCode 22)", False),
    "auth": ("json", "agency API rejected the service key (resultCode 30)", False),
    "http500": ("xml", "HTTP 500 from agency API", True),
    "html200": ("xml", "agency API answered with HTML, not XML", False),
    "malformed_xml": ("xml", "malformed XML from agency API", False),
    "malformed_json": ("json", "malformed JSON from agency API", False),
    "drop": ("xml", "connection dropped mid-response", True),
    "reset": ("json", "agency API closed the connection without answering", True),
}


@pytest.mark.parametrize("mode", list(FAULTS))
async def test_agency_fault_becomes_a_connector_error_with_a_safe_reason(mode, server, connector, parcel):
    fmt, reason, retryable = FAULTS[mode]
    c = connector(server.url, format=fmt)
    server.set_faults(mode)
    with pytest.raises(ConnectorError) as info:
        await c.fetch([parcel, NO_BUILDING], ["bldNm"])
    assert (info.value.reason, info.value.retryable) == (reason, retryable)
    assert secrets_in(info.value, SERVICE_KEY, quote(SERVICE_KEY, safe=""), parcel, NO_BUILDING) == []
    server.set_faults()
    assert (await c.fetch([parcel], ["bldNm"]))[parcel]  # the same connector reads again once the agency is back


async def test_every_fault_mode_gives_its_own_reason(server, connector, parcel):
    reasons = {}
    for mode, (fmt, _, _) in FAULTS.items():
        server.set_faults(mode)
        with pytest.raises(ConnectorError) as info:
            await connector(server.url, format=fmt).fetch([parcel], ["bldNm"])
        reasons[mode] = info.value.reason
    assert len(set(reasons.values())) == len(FAULTS), reasons


async def test_a_hanging_agency_api_fails_within_the_request_timeout(server, connector, register):
    server.set_faults("hang")
    c = connector(server.url, request_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ConnectorError) as info:
        await c.fetch(list(register)[:3], ["bldNm"])
    assert time.monotonic() - started < 0.5 + 1.5
    assert (info.value.reason, info.value.retryable) == ("agency API did not answer within 0.5s", True)


async def test_an_unreachable_agency_api_is_a_retryable_connector_error(connector, parcel):
    with socket_closed_port() as port:
        c = connector(f"http://127.0.0.1:{port}")
        with pytest.raises(ConnectorError) as info:
            await c.fetch([parcel], ["bldNm"])
    assert (info.value.reason, info.value.retryable) == ("cannot connect to agency API (connection refused)", True)


class socket_closed_port:
    """A loopback port with nothing listening."""

    def __enter__(self) -> int:
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        return self.port

    def __exit__(self, *exc: object) -> None:
        pass


async def test_a_fault_limited_to_n_requests_then_clears(server, connector, parcel):
    c = connector(server.url)
    server.set_faults("http500", times=1)
    with pytest.raises(ConnectorError):
        await c.fetch([parcel], ["bldNm"])
    assert (await c.fetch([parcel], ["bldNm"]))[parcel]


async def test_faults_can_be_set_over_http_from_another_process(server, connector, parcel):
    script = ("import json, sys, urllib.request as u\n"
              "r = u.Request(sys.argv[1] + '/_control/faults', data=json.dumps({'mode': 'quota', 'times': 2})"
              ".encode(), method='POST', headers={'Content-Type': 'application/json'})\n"
              "print(u.urlopen(r).read().decode())\n")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, server.url,
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and json.loads(out) == {"mode": "quota", "latency_ms": 0, "times": 2}
    c = connector(server.url)
    for _ in range(2):
        with pytest.raises(ConnectorError, match="quota"):
            await c.fetch([parcel], ["bldNm"])
    assert (await c.fetch([parcel], ["bldNm"]))[parcel]
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.url}/_control/stats") as r:
            assert (await r.json())["requests"] == 3
        async with s.post(f"{server.url}/_control/reset") as r:
            assert r.status == 200
        async with s.post(f"{server.url}/_control/faults", json={"mode": "explode"}) as r:
            assert r.status == 400
    assert server.requests == 0


# ---------------------------------------------------------------- hostile XML
BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE response [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
]>
<response><header><resultCode>00</resultCode></header><body><items><item><bldNm>&f;</bldNm></item></items>
<totalCount>1</totalCount></body></response>"""


def hostile_documents(secret_file: Path, dtd_url: str) -> dict[str, bytes]:
    head = b'<?xml version="1.0"?>\n'
    tail = (b"<response><header><resultCode>00</resultCode></header><body><items><item><bldNm>&x;</bldNm>"
            b"</item></items><totalCount>1</totalCount></body></response>")
    return {
        "bomb": BOMB,
        "external_entity": head + b'<!DOCTYPE response [<!ENTITY x SYSTEM "' + secret_file.as_uri().encode()
        + b'">]>' + tail,
        "external_dtd": head + b'<!DOCTYPE response SYSTEM "' + dtd_url.encode() + b'">' + tail,
        "parameter_entity": head + b'<!DOCTYPE response [<!ENTITY % p SYSTEM "' + dtd_url.encode()
        + b'"> %p;]>' + tail,
    }


async def test_xml_bombs_and_external_entities_are_refused_never_expanded(tmp_path, connector):
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("TOP-SECRET-FILE-CONTENT")
    dtd_hits: list[str] = []

    async def dtd(request: web.Request) -> web.Response:
        dtd_hits.append(request.path)
        return web.Response(text='<!ENTITY x "FROM-REMOTE-DTD">', content_type="application/xml-dtd")

    app = web.Application()
    app.router.add_get("/evil.dtd", dtd)
    docs: dict[str, bytes] = {}
    for name in ("bomb", "external_entity", "external_dtd", "parameter_entity"):
        async def serve(request: web.Request, name: str = name) -> web.Response:
            return web.Response(body=docs[name], content_type="application/xml")
        app.router.add_get(f"/api/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    docs.update(hostile_documents(secret_file, f"{base}/evil.dtd"))
    try:
        for name in docs:
            c = connector(base, operation=f"/api/{name}")
            with pytest.raises(ConnectorError) as info:
                await c.fetch(["1111010100100010000"], ["bldNm"])
            assert info.value.reason == "agency API sent XML with a DTD or entities (refused)", name
            assert secrets_in(info.value, "TOP-SECRET", "FROM-REMOTE-DTD", "aaaaaaaaaa") == []
    finally:
        await runner.cleanup()
    assert dtd_hits == []


async def test_dotted_columns_read_nested_objects_and_columns_lists_their_paths(connector):
    doc = {"response": {"header": {"resultCode": "00"}, "body": {"totalCount": 1, "items": {"item": [
        {"bld": {"name": "본관", "floors": 3}, "use": "업무시설"}]}}}}

    async def serve(request: web.Request) -> web.Response:
        return web.json_response(doc)

    app = web.Application()
    app.router.add_get("/api", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        c = connector(f"http://127.0.0.1:{runner.addresses[0][1]}", operation="/api", format="json")
        got = await c.fetch(["1111010100100010000"], ["bld.name", "bld.floors", "use", "bld.missing"])
        assert got == {"1111010100100010000": [{"bld.name": "본관", "bld.floors": 3, "use": "업무시설",
                                                 "bld.missing": None}]}
        assert await c.columns() == {"bld.name": "string", "bld.floors": "integer", "use": "string"}
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------- columns, search, config
async def test_columns_lists_the_item_paths_of_a_sample_response(server, connector, columns, parcel):
    c = connector(server.url, sample_key=parcel)
    assert await c.columns() == {col: "string" for col in columns}
    with pytest.raises(ConnectorError, match="sample_key"):
        await connector(server.url, sample_key=None).columns()
    with pytest.raises(ConnectorError, match="no data"):
        await connector(server.url, sample_key=NO_BUILDING).columns()


async def test_search_is_refused(server, connector):
    with pytest.raises(ConnectorError, match="cannot be searched"):
        await connector(server.url).search({"bldNm": "x"}, {}, ["bldNm"], 10)


@pytest.mark.parametrize("overrides, entry", [
    ({"operation": None}, "connector.operation"),
    ({"operation": "getBrTitleInfo"}, "connector.operation"),
    ({"format": "csv"}, "connector.format"),
    ({"params": {}}, "connector.params"),
    ({"params": {**PARAMS, "sigunguCd": "key[5:x]"}}, "connector.params.sigunguCd"),
    ({"params": {**PARAMS, "bun": "key[15:11]"}}, "connector.params.bun"),
    ({"params": {**PARAMS, "platGbCd": {"of": "key[10:11]", "map": "1->0"}}}, "connector.params.platGbCd"),
    ({"params": {**PARAMS, "ji": {"from": "key[15:19]"}}}, "connector.params.ji"),
    ({"params": {**PARAMS, "serviceKey": "key"}}, "connector.params.serviceKey"),
    ({"items_path": "response..item"}, "connector.items_path"),
    ({"result_codes": {"ok": ["00"], "fatal": ["99"]}}, "connector.result_codes.fatal"),
    ({"result_codes": {"ok": []}}, "connector.result_codes.ok"),
    ({"page_size": 0}, "connector.page_size"),
    ({"max_pages": "ten"}, "connector.max_pages"),
    ({"max_connections": 0}, "connector.max_connections"),
    ({"request_timeout": -1}, "connector.request_timeout"),
    ({"pagesize": 5}, "pagesize"),
    ({"service_key_env": None}, "service_key_env"),
])
def test_bad_config_is_refused_naming_the_entry(overrides, entry):
    with pytest.raises(ConnectorConfigError) as info:
        create(SourceSpec(LEDGER, "pnu", config(**overrides), {URL_ENV: "http://127.0.0.1:9", KEY_ENV: SERVICE_KEY}))
    assert LEDGER in str(info.value) and entry in str(info.value)
    assert SERVICE_KEY not in str(info.value)


@pytest.mark.parametrize("env, named", [
    ({KEY_ENV: SERVICE_KEY}, URL_ENV),
    ({URL_ENV: "http://127.0.0.1:9"}, KEY_ENV),
    ({URL_ENV: "ftp://agency.example/?serviceKey=" + SERVICE_KEY, KEY_ENV: SERVICE_KEY}, URL_ENV),
])
def test_unset_or_bad_environment_variables_are_named_never_their_values(env, named):
    with pytest.raises(ConnectorConfigError) as info:
        create(SourceSpec(LEDGER, "pnu", config(), env))
    assert named in str(info.value) and LEDGER in str(info.value)
    assert SERVICE_KEY not in str(info.value) and "agency.example" not in str(info.value)


async def test_a_percent_encoded_service_key_is_sent_decoded_once(server, connector, parcel):
    """The portal hands out the key twice, plain and percent-encoded; either works."""
    c = connector(server.url, env={URL_ENV: server.url, KEY_ENV: quote(SERVICE_KEY, safe="")})
    assert (await c.fetch([parcel], ["bldNm"]))[parcel]


async def test_the_service_key_never_reaches_errors_or_logs(server, connector, caplog, parcel):
    """Invariant 9: secrets never appear in logs (nor in errors, which end up in logs)."""
    caplog.set_level(logging.DEBUG)
    secrets = (SERVICE_KEY, quote(SERVICE_KEY, safe=""), quote(SERVICE_KEY), parcel)
    await connector(server.url).fetch([parcel], ["bldNm"])
    failures: list[BaseException] = []
    for mode in [*FAULTS, "hang"]:
        server.set_faults(mode)
        try:
            await connector(server.url, request_timeout=0.3).fetch([parcel], ["bldNm"])
        except ConnectorError as exc:
            failures.append(exc)
    server.set_faults()
    with socket_closed_port() as port:
        try:
            await connector(f"http://127.0.0.1:{port}").fetch([parcel], ["bldNm"])
        except ConnectorError as exc:
            failures.append(exc)
    try:
        create(SourceSpec(LEDGER, "pnu", config(page_size=-1), {URL_ENV: server.url, KEY_ENV: SERVICE_KEY}))
    except ConnectorConfigError as exc:
        failures.append(exc)
    assert len(failures) == len(FAULTS) + 3
    for exc in failures:
        assert secrets_in(exc, *secrets) == [], exc
    for logged in (caplog.text, *(str(r.__dict__) for r in caplog.records)):
        assert not [s for s in secrets if s in logged]
    assert any("agency API GET" in r.getMessage() for r in caplog.records)  # the server's access log is there


# ---------------------------------------------------------------- running the server
async def test_start_in_thread_serves_until_stopped(agency_dir, connector, register, parcel):
    url, stop = start_in_thread(agency_dir, SERVICE_KEY)
    try:
        c = connector(url)
        assert (await c.fetch([parcel], ["bldNm"]))[parcel][0]["bldNm"] == register[parcel][0]["bldNm"]
    finally:
        await asyncio.to_thread(stop)
    with pytest.raises(ConnectorError, match="cannot connect"):
        await c.fetch([parcel], ["bldNm"])


async def test_command_line_server_answers(agency_dir, connector, parcel):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "oneScreen.demo.agency_api", "--demo-dir", str(agency_dir), "--port", "0",
        "--service-key", SERVICE_KEY, stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parent.parent)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        url = line.split(" on ", 1)[1].split(PREFIX, 1)[0]
        assert (await connector(url).fetch([parcel], ["pnu"])) == {parcel: [{"pnu": parcel}]}
    finally:
        proc.terminate()
        await proc.wait()


async def test_a_plain_json_api_whose_document_is_the_item_is_read_with_items_path_null():
    """Not every agency wraps items in the portal envelope: `items_path: null` takes the document itself."""
    from aiohttp import web

    from connectors.base import SourceSpec, create

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"key": request.query["key"], "a1": "v1", "a2": "v2"})

    app = web.Application()
    app.router.add_get("/ledger/resident", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        conn = create(SourceSpec("bench.resident", "key", {
            "kind": "rest", "base_url_env": "URL", "service_key_env": "KEY", "operation": "/ledger/resident",
            "format": "json", "params": {"key": "key"}, "items_path": None, "result_code_path": None,
            "total_count_path": None}, {"URL": f"http://127.0.0.1:{port}", "KEY": "k"}))
        rows = await conn.fetch(["K1", "K2"], ["a1", "a2"])
        assert rows == {"K1": [{"a1": "v1", "a2": "v2"}], "K2": [{"a1": "v1", "a2": "v2"}]}
        await conn.close()
    finally:
        await runner.cleanup()


@pytest.fixture
async def plain_api() -> AsyncIterator[Any]:
    """A bare JSON API on loopback that records each request's raw query string; `hang` makes it never answer."""
    state = SimpleNamespace(queries=[], hang=False, url="")

    async def handler(request: web.Request) -> web.Response:
        state.queries.append(request.rel_url.raw_query_string)
        if state.hang:
            await asyncio.sleep(3600)
        return web.json_response({"key": request.query["key"], "a1": "v1"})

    app = web.Application()
    app.router.add_get("/ledger/resident", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield state
    await runner.cleanup()


def plain_connector(api: Any, budget: float | None = None, **extra: Any):
    return create(SourceSpec("bench.resident", "key", {
        "kind": "rest", "base_url_env": "URL", "service_key_env": "KEY", "operation": "/ledger/resident",
        "format": "json", "params": {"key": "key", "const": {"const": "a b&c=d"}}, "items_path": None,
        "result_code_path": None, "total_count_path": None, **extra}, {"URL": api.url, "KEY": SERVICE_KEY},
        budget=budget))


async def test_the_request_url_is_encoded_byte_for_byte_as_yarl_encodes_a_parameter_dict(plain_api):
    """The connector writes the query string itself (once per read, the fixed part once): what reaches the agency
    is exactly what yarl made from the parameters before, tricky subject keys and base64 service keys included."""
    from yarl import URL
    keys = ["K1", "a b+c/d?e=f&g;h#i%j", "가나다", "!$'()*,~:@", "x\u00e9\U0001f600"]
    conn = plain_connector(plain_api, page_size=7)
    try:
        rows = await conn.fetch(keys, ["key"])
    finally:
        await conn.close()
    assert rows == {k: [{"key": k}] for k in keys}  # the agency decoded every key to itself
    expected = {URL("http://x/").extend_query({"key": k, "const": "a b&c=d", "serviceKey": SERVICE_KEY,
                                               "numOfRows": "7", "_type": "json", "pageNo": "1"}).raw_query_string
                for k in keys}
    assert set(plain_api.queries) == expected


@pytest.mark.parametrize("budget, request_timeout", [(None, 0.4), (30.0, 0.4)])
async def test_a_request_timeout_shorter_than_the_callers_budget_still_fires(plain_api, budget, request_timeout):
    plain_api.hang = True
    conn = plain_connector(plain_api, budget=budget, request_timeout=request_timeout)
    try:
        with pytest.raises(ConnectorError) as info:
            await asyncio.wait_for(conn.fetch(["K1"], ["a1"]), 5)
    finally:
        await conn.close()
    assert info.value.reason == "agency API did not answer within 0.4s"


async def test_within_the_gateways_budget_one_timer_bounds_a_read_and_a_hung_agency_costs_its_ledger_only(
        plain_api):
    """request_timeout >= the ledger's timeout: the connector leaves its own timer out (it could never fire
    first) and the gateway's budget abandons the hung read, as a failure of that ledger alone."""
    import dataclasses

    from oneScreen import catalog as catalog_mod
    from oneScreen.gateway import Gateway, LedgerFailure
    from oneScreen.metrics import Metrics
    from oneScreen.planner import Fetch
    from oneScreen.settings import ROOT

    ledger = dataclasses.replace(catalog_mod.load(ROOT / "field_catalog.yaml").ledgers["mois.resident"],
                                 timeout=0.5, retries=0, cache_ttl=0)
    plain_api.hang = True
    conn = plain_connector(plain_api, budget=ledger.timeout, request_timeout=5)
    assert conn._fetch_timeout.total is None  # no per-request timer on the gateway's path
    gw = Gateway({ledger.id: ledger}, {ledger.id: conn}, Metrics())
    started = time.monotonic()
    try:
        result = await gw.run([Fetch(ledger, ("K1",), ("a1",))])
    finally:
        await conn.close()
    assert time.monotonic() - started < 0.5 + 1.5
    failure = result[(ledger.id, "K1")]
    assert isinstance(failure, LedgerFailure) and failure.reason == "no answer within 0.5 s"


async def test_columns_outside_the_gateway_keeps_the_per_request_timer(plain_api):
    plain_api.hang = True
    conn = plain_connector(plain_api, budget=0.2, request_timeout=0.4, sample_key="K1")
    try:
        with pytest.raises(ConnectorError) as info:
            await asyncio.wait_for(conn.columns(), 5)
    finally:
        await conn.close()
    assert info.value.reason == "agency API did not answer within 0.4s"
