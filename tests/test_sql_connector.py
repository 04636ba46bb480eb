"""The SQL connector's contract, on the same demo ledgers in SQLite, PostgreSQL and MariaDB.

Every connector is built the way the service builds it (connectors.base.create with the
ledger's `connector:` mapping from field_catalog.yaml); SQLite reads the demo files, the
servers a session copy of them (tests/sqlservers.py). The SQLite results are the reference,
and they are checked against the demo files read directly.
"""
from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy import event
from sqlalchemy.engine import make_url

from connectors.base import ConnectorError, SourceSpec, create
from connectors.sql import SqlConnector
from oneScreen.settings import ROOT
from sqlservers import mariadb_demo_url, pg_demo_url, sqlite_rows  # noqa: F401  (fixtures)
from tcpproxy import TcpProxy

LEDGERS = {lg["id"]: lg for lg in yaml.safe_load((ROOT / "field_catalog.yaml").read_text(encoding="utf-8"))["ledgers"]}
BACKENDS = ("sqlite", "postgresql", "mariadb")
SERVERS = ("postgresql", "mariadb")
URL_FIXTURE = {"postgresql": "pg_demo_url", "mariadb": "mariadb_demo_url"}
UNKNOWN_KEYS = ["000000-0000000", "x' OR '1'='1"]
CALL_BUDGET = 5.0  # seconds a failing call may take before it counts as a hang


@dataclass(frozen=True)
class Backend:
    name: str
    url: str | None  # None: the demo SQLite files


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    name = request.param
    return Backend(name, request.getfixturevalue(URL_FIXTURE[name]) if name in URL_FIXTURE else None)


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> Backend:
    return Backend(request.param, request.getfixturevalue(URL_FIXTURE[request.param]))


SQLITE = Backend("sqlite", None)
Connect = Callable[..., SqlConnector]


@pytest.fixture
async def connect(demo_master: Path) -> AsyncIterator[Connect]:
    """connect(backend, ledger_id, url=None, **config overrides) -> a connector, closed after the test."""
    made: list[SqlConnector] = []

    def make(backend: Backend, ledger_id: str, *, url: str | None = None, **overrides: Any) -> SqlConnector:
        ledger = LEDGERS[ledger_id]
        cfg = {**ledger["connector"], **overrides}
        url = url or backend.url
        spec = SourceSpec(ledger=ledger_id, key_column=ledger["key_column"], config=cfg,
                          env={cfg["dsn_env"]: url} if url else {},
                          demo_dir=None if url else str(demo_master / "demo"))
        conn = create(spec)
        assert isinstance(conn, SqlConnector)
        made.append(conn)
        return conn

    yield make
    for conn in made:
        await conn.close()


# ---------------------------------------------------------------- reference data
def demo_file(demo_master: Path, ledger_id: str) -> Path:
    return demo_master / "demo" / LEDGERS[ledger_id]["connector"]["demo_file"]


def keys_where(demo_master: Path, ledger_id: str, sql: str, *params: Any) -> list[str]:
    return [r[0] for r in sqlite_rows(demo_file(demo_master, ledger_id), sql, *params)]


def sample_keys(demo_master: Path, ledger_id: str) -> list[str]:
    """A few keys of the ledger: for many-row ledgers, keys with 1, several and the most rows."""
    lg = LEDGERS[ledger_id]
    key, table = lg["key_column"], lg["connector"]["table"]
    if lg.get("rows") != "many":
        return keys_where(demo_master, ledger_id, f'SELECT "{key}" FROM {table} ORDER BY 1 LIMIT 5 OFFSET 1000')
    top = sqlite_rows(demo_file(demo_master, ledger_id), f'SELECT count(*) FROM {table} GROUP BY "{key}" '
                      "ORDER BY 1 DESC LIMIT 1")[0][0]
    return [k for n in sorted({1, 2, top}) for k in keys_where(
        demo_master, ledger_id, f'SELECT "{key}" FROM {table} GROUP BY "{key}" HAVING count(*) = ? ORDER BY 1 LIMIT 2', n)]


def typed(rows: Sequence[Any]) -> list[tuple]:
    """Rows as sorted tuples of (column, type, value): 1 vs 1.0 or '1' differ; row order does not count."""
    return sorted(tuple((c, type(v).__name__, v) for c, v in dict(r).items()) for r in rows)


def by_key(result: dict[str, list]) -> dict[str, list[tuple]]:
    return {k: typed(rows) for k, rows in result.items()}


def expected_fetch(demo_master: Path, ledger_id: str, keys: Sequence[str], columns: Sequence[str]) -> dict:
    """What the demo file holds for `keys`, read with sqlite3 directly."""
    lg = LEDGERS[ledger_id]
    key_col = lg["key_column"]
    sql = (f'SELECT "{key_col}", {", ".join(f"{chr(34)}{c}{chr(34)}" for c in columns)} '
           f'FROM {lg["connector"]["table"]} WHERE "{key_col}" IN ({", ".join("?" * len(keys))})')
    out: dict[str, list] = {}
    for row in sqlite_rows(demo_file(demo_master, ledger_id), sql, *keys):
        out.setdefault(row[0], []).append(dict(zip(columns, row[1:])))
    return by_key(out)


FETCH_CASES = {  # ledger: the columns asked
    "mois.resident": ["name", "birth_date", "road_addr"],
    "molit.building_title": ["newPlatPlc", "platArea", "totArea", "grndFlrCnt", "mainPurpsCdNm"],
    "molit.vehicle": ["vhrNo", "cnm", "prye", "dsplvl"],
    "court.family": ["rel_type", "rel_rrn", "rel_name"],
}


# ---------------------------------------------------------------- fetch
@pytest.mark.parametrize("ledger_id", FETCH_CASES)
async def test_fetch_returns_exactly_the_requested_columns_per_key_on_every_backend(
        backend: Backend, connect: Connect, demo_master: Path, ledger_id: str) -> None:
    """One-row (resident, building) and many-row (vehicle, family) ledgers: same rows, same columns,
    same value types as the SQLite reference; unknown keys are absent (invariant 2: only the asked columns)."""
    columns = FETCH_CASES[ledger_id]
    keys = sample_keys(demo_master, ledger_id)
    assert len(keys) >= 5
    expected = expected_fetch(demo_master, ledger_id, keys, columns)
    assert set(expected) == set(keys)
    if LEDGERS[ledger_id].get("rows") == "many":
        assert max(len(rows) for rows in expected.values()) >= 3  # the case really has many rows per key

    asked = [UNKNOWN_KEYS[0], *keys, UNKNOWN_KEYS[1]]
    reference = await connect(SQLITE, ledger_id).fetch(asked, columns)
    assert by_key(reference) == expected
    got = await connect(backend, ledger_id).fetch(asked, columns)
    assert by_key(got) == by_key(reference)
    assert all(set(row) == set(columns) for rows in got.values() for row in rows)  # not even the key column
    assert not set(UNKNOWN_KEYS) & set(got)


async def test_a_batch_larger_than_batch_size_is_sent_in_bound_batches(
        backend: Backend, connect: Connect, demo_master: Path) -> None:
    """20 keys with batch_size 7: ceil(20/7) statements, every key answered, key values only in the
    bound parameters, never in the SQL text (invariant 3: one read per ledger, batched by key)."""
    keys = keys_where(demo_master, "mois.resident", "SELECT rrn FROM resident ORDER BY rrn LIMIT 20 OFFSET 200")
    conn = connect(backend, "mois.resident", batch_size=7)
    sent: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        sent.append((statement, parameters))

    event.listen(conn.engine.sync_engine, "before_cursor_execute", before)
    got = await conn.fetch(keys, ["name"])
    event.remove(conn.engine.sync_engine, "before_cursor_execute", before)

    assert set(got) == set(keys)
    assert by_key(got) == expected_fetch(demo_master, "mois.resident", keys, ["name"])
    assert len(sent) == math.ceil(20 / 7) == 3
    bound: list[Any] = []
    for statement, parameters in sent:
        assert not any(k in statement for k in keys), "a key value was inlined into the SQL text"
        bound += list(parameters.values()) if isinstance(parameters, dict) else list(parameters)
    assert sorted(v for v in bound if v in keys) == sorted(keys)  # each key bound exactly once


async def test_the_connector_cannot_write_to_its_ledger(backend: Backend, connect: Connect, demo_master: Path) -> None:
    """Read-only by construction: INSERT, UPDATE and DELETE through the connector's own engine are
    refused by the database (SQLite mode=ro, PostgreSQL/MariaDB read-only sessions), also on a pooled
    connection that was already used and returned, and the ledger is unchanged."""
    conn = connect(backend, "mois.resident")
    rrn = keys_where(demo_master, "mois.resident", "SELECT rrn FROM resident ORDER BY rrn LIMIT 1")[0]
    before = await conn.fetch([rrn], ["name", "road_addr"])  # the pooled connection has been used and reset
    count = sa.text("SELECT count(*) FROM resident")
    async with conn.engine.connect() as c:
        rows_before = (await c.execute(count)).scalar_one()
    writes = [f"DELETE FROM resident WHERE rrn = '{rrn}'",
              "UPDATE resident SET name = 'changed'",
              "INSERT INTO resident (rrn, name) VALUES ('999999-9999999', 'intruder')"]
    for write in writes:
        with pytest.raises(sa.exc.DBAPIError) as refused:
            async with conn.engine.connect() as c:  # never committed: a write that slipped through is undone
                await c.execute(sa.text(write))
        assert re.search(r"read.?only|query_only", str(refused.value.orig), re.I), (write, refused.value.orig)
    async with conn.engine.connect() as c:
        assert (await c.execute(count)).scalar_one() == rows_before == 5200
    assert await conn.fetch([rrn, "999999-9999999"], ["name", "road_addr"]) == before


# ---------------------------------------------------------------- search
async def test_search_by_name_and_birth_date_finds_the_same_keys_on_every_backend(
        backend: Backend, connect: Connect, demo_master: Path) -> None:
    """Equality search: one exact (name, birth_date) match; a frequent name alone gives the same keys
    in the same order everywhere, and a limit cuts the same prefix."""
    path = demo_file(demo_master, "mois.resident")
    name = sqlite_rows(path, "SELECT name FROM resident GROUP BY name ORDER BY count(*) DESC, name LIMIT 1")[0][0]
    namesakes = sqlite_rows(path, "SELECT rrn, birth_date FROM resident WHERE name = ? ORDER BY rrn", name)
    assert len(namesakes) >= 5
    rrn, birth = namesakes[2]
    columns = ["name", "birth_date"]
    ref, conn = connect(SQLITE, "mois.resident"), connect(backend, "mois.resident")

    exact = await conn.search({"name": name, "birth_date": birth}, {}, columns, 10)
    assert exact == [{"rrn": rrn, "name": name, "birth_date": birth}]
    everyone = await conn.search({"name": name}, {}, columns, 100)
    assert everyone == await ref.search({"name": name}, {}, columns, 100)
    assert [r["rrn"] for r in everyone] == [r[0] for r in namesakes]
    assert [r["rrn"] for r in await conn.search({"name": name}, {}, columns, 3)] == [r[0] for r in namesakes[:3]]
    assert await conn.search({"name": name, "birth_date": "1800-01-01"}, {}, columns, 10) == []


ADDRESS = {"newPlatPlc", "platPlc"}  # building.road_address, building.lot_address: the catalog's `contains`


def expected_contains(demo_master: Path, text: str) -> list[str]:
    """Buildings whose road or lot address holds `text` literally (sqlite instr: no wildcards), by key."""
    return keys_where(demo_master, "molit.building_title", 'SELECT "mgmBldrgstPk" FROM bldg_title '
                      'WHERE instr("newPlatPlc", ?) > 0 OR instr("platPlc", ?) > 0 ORDER BY 1', text, text)


async def test_substring_search_finds_the_same_buildings_on_every_backend(
        backend: Backend, connect: Connect, demo_master: Path) -> None:
    """Substring search over the road or the lot address: same keys in the same order as the demo file,
    and a limit cuts the same prefix on every backend."""
    conn = connect(backend, "molit.building_title")
    text = "테헤란로"
    expected = expected_contains(demo_master, text)
    assert len(expected) > 10
    rows = await conn.search({}, {c: text for c in ADDRESS}, ["newPlatPlc"], 1000)
    assert [r["mgmBldrgstPk"] for r in rows] == expected
    assert all(text in r["newPlatPlc"] for r in rows)
    assert [r["mgmBldrgstPk"] for r in await conn.search({}, {c: text for c in ADDRESS}, [], 7)] == expected[:7]


@pytest.mark.parametrize("text", ["%", "_", "테헤란로%", "%테헤란로", "테헤란_", "_테헤란로", "/", "\\", "'", "[테]"])
async def test_percent_and_underscore_in_a_substring_search_are_literal(
        backend: Backend, connect: Connect, demo_master: Path, text: str) -> None:
    """LIKE wildcards (and the escape characters) typed by a caseworker match themselves only:
    '%' must not list every building, '테헤란_' must not find 테헤란로."""
    conn = connect(backend, "molit.building_title")
    rows = await conn.search({}, {c: text for c in ADDRESS}, [], 50)
    assert [r["mgmBldrgstPk"] for r in rows] == expected_contains(demo_master, text) == []


async def test_the_escape_character_itself_is_searched_literally(
        backend: Backend, connect: Connect, demo_master: Path) -> None:
    """SQLAlchemy escapes with '/': a search for '1/2' (a share in the building-owner ledger) finds
    exactly the owners holding half, the same on every backend."""
    expected = keys_where(demo_master, "molit.building_holdings",
                          "SELECT owner_rrn FROM bldg_owner WHERE share = '1/2' ORDER BY 1")
    assert len(expected) > 100
    conn = connect(backend, "molit.building_holdings")
    rows = await conn.search({}, {"share": "1/2"}, ["share"], 10_000)
    assert sorted(r["owner_rrn"] for r in rows) == expected
    assert {r["share"] for r in rows} == {"1/2"}


async def test_substring_search_folds_ascii_letter_case_the_same_on_every_backend(
        request: pytest.FixtureRequest, backend: Backend, connect: Connect, demo_master: Path) -> None:
    """'E편한세상' finds the 해운대e편한세상아파트 buildings on SQLite (LIKE folds ASCII case), so it must
    everywhere: a caseworker's search may not depend on which database the agency runs."""
    expected = expected_contains(demo_master, "e편한세상")
    assert len(expected) >= 5
    conn = connect(backend, "molit.building_title")
    rows = await conn.search({}, {c: "E편한세상" for c in ADDRESS}, [], 100)
    assert [r["mgmBldrgstPk"] for r in rows] == expected


async def test_fetch_answers_only_the_keys_it_was_asked(
        request: pytest.FixtureRequest, backend: Backend, connect: Connect, demo_master: Path) -> None:
    """A key that differs from a real one only in letter case or a trailing space is unknown: it gets no
    rows, and no other key appears in the result."""
    household = keys_where(demo_master, "mois.household", "SELECT hshld_id FROM resident ORDER BY 1 LIMIT 1")[0]
    rrn = keys_where(demo_master, "mois.resident", "SELECT rrn FROM resident ORDER BY 1 LIMIT 1")[0]
    assert household != household.lower()
    assert await connect(backend, "mois.household").fetch([household.lower()], ["name"]) == {}
    assert await connect(backend, "mois.resident").fetch([rrn + " "], ["name"]) == {}


async def test_a_key_asked_twice_gets_its_rows_once(
        request: pytest.FixtureRequest, backend: Backend, connect: Connect, demo_master: Path) -> None:
    """Duplicate keys (two subjects of one screen linking to the same owner) must not duplicate rows,
    even when the copies fall into different IN batches."""
    owner = keys_where(demo_master, "molit.vehicle",
                       "SELECT owner_rrn FROM vehicle GROUP BY owner_rrn HAVING count(*) = 2 ORDER BY 1 LIMIT 1")[0]
    expected = expected_fetch(demo_master, "molit.vehicle", [owner], ["vhrNo"])
    got = await connect(backend, "molit.vehicle", batch_size=1).fetch([owner, owner], ["vhrNo"])
    assert by_key(got) == expected


# ---------------------------------------------------------------- columns and errors
@pytest.mark.parametrize("ledger_id", ["mois.resident", "molit.building_title"])
async def test_columns_lists_the_real_tables_columns(
        backend: Backend, connect: Connect, demo_master: Path, ledger_id: str) -> None:
    """columns() inspects the real table (mixed-case names kept), in table order, on every backend."""
    table = LEDGERS[ledger_id]["connector"]["table"]
    expected = [r[1] for r in sqlite_rows(demo_file(demo_master, ledger_id), f"PRAGMA table_info({table})")]
    cols = await connect(backend, ledger_id).columns()
    assert list(cols) == expected
    assert all(isinstance(t, str) and t for t in cols.values())


async def test_columns_of_a_missing_table_says_the_table_does_not_exist(backend: Backend, connect: Connect) -> None:
    with pytest.raises(ConnectorError) as err:
        await connect(backend, "mois.resident", table="no_such_table").columns()
    assert err.value.reason == "table 'no_such_table' does not exist"
    assert not err.value.retryable


SQL_WORDS = re.compile(r"\b(SELECT|FROM|WHERE|INSERT|UPDATE|DELETE|JOIN|LIKE|ESCAPE)\b|\bIN\s*\(|%s|\$\d|\?", re.I)


def assert_says_nothing_secret(err: ConnectorError, *secrets: str) -> None:
    assert err.reason_ko and err.reason_ko.startswith("데이터베이스")  # the caseworker's reason is Korean
    for text in (err.reason, err.reason_ko, str(err), repr(err)):
        assert not SQL_WORDS.search(text), text
        for secret in secrets:
            assert secret not in text, text
    assert err.__cause__ is None and err.__suppress_context__  # the driver's message is not chained in


async def test_errors_never_carry_sql_parameters_or_values(
        backend: Backend, connect: Connect, demo_master: Path) -> None:
    """A requested column the table lacks: fetch and search fail with a ConnectorError whose reason names
    the error class only, never the statement, the keys or the searched values (invariant 6)."""
    keys = keys_where(demo_master, "molit.vehicle", "SELECT owner_rrn FROM vehicle ORDER BY 1 LIMIT 3")
    conn = connect(backend, "molit.vehicle")
    with pytest.raises(ConnectorError) as err:
        await conn.fetch(keys, ["cnm", "secret_column"])
    assert_says_nothing_secret(err.value, *keys, "secret_column", "vehicle")
    with pytest.raises(ConnectorError) as err:
        await conn.search({"owner_rrn": keys[0]}, {"secret_column": "박경주"}, ["cnm"], 5)
    assert_says_nothing_secret(err.value, keys[0], "박경주", "secret_column", "vehicle")


async def test_a_missing_column_is_not_retryable(backend: Backend, connect: Connect) -> None:
    """A configuration error will not pass on a retry, so the gateway must not retry it with backoff
    (SQLite and PyMySQL raise OperationalError for it, like for a lost connection)."""
    with pytest.raises(ConnectorError) as err:
        await connect(backend, "molit.vehicle").fetch(["000000-0000000"], ["secret_column"])
    assert not err.value.retryable


# ---------------------------------------------------------------- connection cut and restored
async def bounded(call: Any) -> Any:
    """Await `call` within the hang budget; a hang fails the test instead of stalling it."""
    return await asyncio.wait_for(call, CALL_BUDGET * 2)


async def assert_fails_retryably(call: Any) -> ConnectorError:
    started = time.monotonic()
    with pytest.raises(ConnectorError) as err:
        await bounded(call)
    assert time.monotonic() - started < CALL_BUDGET
    assert err.value.retryable, err.value.reason
    return err.value


async def test_a_cut_connection_fails_retryably_and_the_same_connector_recovers(
        server: Backend, connect: Connect, demo_master: Path) -> None:
    """The server's connection is cut (established connections closed, new ones closed at once) and
    then restored: calls fail fast with a retryable ConnectorError, and the SAME connector serves again
    after the restore, with no restart (invariant 5: a ledger that is down costs its own fields only)."""
    url = make_url(server.url)
    keys = keys_where(demo_master, "molit.vehicle", "SELECT DISTINCT owner_rrn FROM vehicle ORDER BY 1 LIMIT 3")
    expected = expected_fetch(demo_master, "molit.vehicle", keys, ["cnm"])
    async with TcpProxy(url.host or "127.0.0.1", url.port or (5432 if server.name == "postgresql" else 3306)) as proxy:
        conn = connect(server, "molit.vehicle", batch_size=1,
                       url=url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
        try:
            assert by_key(await bounded(conn.fetch(keys, ["cnm"]))) == expected

            proxy.cut()
            err = await assert_fails_retryably(conn.fetch(keys, ["cnm"]))
            assert_says_nothing_secret(err, *keys)
            await assert_fails_retryably(conn.fetch(keys, ["cnm"]))  # still down: fails again, no hang
            await assert_fails_retryably(conn.search({"owner_rrn": keys[0]}, {}, ["cnm"], 5))
            await assert_fails_retryably(conn.columns())
            assert proxy.refused >= 1  # the connector did try to reconnect, and was turned away

            proxy.restore()
            accepted = proxy.accepted
            assert by_key(await bounded(conn.fetch(keys, ["cnm"]))) == expected
            assert proxy.accepted > accepted  # a new connection, on the same connector object

            # cut in the middle of one fetch: after its first batch statement, before the second
            def cut_after_first(*_: Any) -> None:
                proxy.cut()

            event.listen(conn.engine.sync_engine, "after_cursor_execute", cut_after_first, once=True)
            await assert_fails_retryably(conn.fetch(keys, ["cnm"]))
            proxy.restore()
            assert by_key(await bounded(conn.fetch(keys, ["cnm"]))) == expected
        finally:
            await conn.close()


async def test_a_real_databases_padding_blanks_and_wide_numbers_come_out_trimmed_none_or_bad_cells(
        server: Backend, connect: Connect) -> None:
    """PostgreSQL and MariaDB as ledgers hold them: CHAR padding and leading blanks, a blank text, a NULL date,
    a 22-digit NUMERIC key and a NUMERIC(10,2) amount. Shown: the text trimmed, the blank as no value, the
    amount exact, the key exact as a string, and as an integer or number a bad value (never rounded); and
    introspection proposes string for the key and number for the amount."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from connectors.base import async_url
    from oneScreen.catalog import Column, propose_type
    from oneScreen.screen import NotConvertible, convert

    table = "ledger_values"
    engine = create_async_engine(async_url(server.url))
    try:
        async with engine.begin() as db:
            await db.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
            await db.execute(sa.text(f"CREATE TABLE {table} (rrn VARCHAR(20) PRIMARY KEY, name CHAR(12), "
                                     "note VARCHAR(20), big_id NUMERIC(22, 0), amount NUMERIC(10, 2), seen DATE)"))
            await db.execute(sa.text(f"INSERT INTO {table} VALUES ('900101-1000001', ' 홍길동', '   ', "
                                     "1162010200566074812345, 12.50, NULL)"))
        rows = (await connect(server, "mois.resident", table=table).fetch(
            ["900101-1000001"], ["name", "note", "big_id", "amount", "seen"]))["900101-1000001"]

        def shown(column: str, ctype: str) -> object:
            return convert(Column(column, column, "", "", ctype, None), rows[0][column])

        assert (shown("name", "string"), shown("note", "string"), shown("seen", "date")) == ("홍길동", None, None)
        assert (shown("amount", "number"), shown("big_id", "string")) == (12.5, "1162010200566074812345")
        for ctype in ("integer", "number"):
            with pytest.raises(NotConvertible, match="string"):
                shown("big_id", ctype)
        columns = await connect(server, "mois.resident", table=table).columns()
        assert (propose_type("big_id", columns["big_id"]), propose_type("amount", columns["amount"])) == \
            ("string", "number")
    finally:
        async with engine.begin() as db:
            await db.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        await engine.dispose()


async def test_a_search_can_be_ordered_by_the_shown_columns_then_the_key(
        backend: Backend, connect: Connect, demo_master: Path) -> None:
    """`order`: matches sorted by a column a caseworker reads (the road address), then by key, so a cut list is
    the same prefix every time. The same buildings on every backend; on SQLite the exact order (each backend
    sorts text by its own collation). The old search had no `order` and sorted by key only."""
    conn = connect(backend, "molit.building_title")
    text = "테헤란로"
    rows = await conn.search({}, {c: text for c in ADDRESS}, ["newPlatPlc"], 1000, ["newPlatPlc"])
    assert sorted(r["mgmBldrgstPk"] for r in rows) == sorted(expected_contains(demo_master, text))
    again = await conn.search({}, {c: text for c in ADDRESS}, ["newPlatPlc"], 1000, ["newPlatPlc"])
    assert again == rows
    if backend == SQLITE:
        assert [r["mgmBldrgstPk"] for r in rows] == [r["mgmBldrgstPk"] for r in
                                                    sorted(rows, key=lambda r: (r["newPlatPlc"], r["mgmBldrgstPk"]))]
        assert [r["mgmBldrgstPk"] for r in rows] != expected_contains(demo_master, text)  # not the key order


def test_a_dsn_that_is_not_a_url_names_its_variable_and_never_its_value() -> None:
    """A DSN holds a password: one that SQLAlchemy cannot parse stops the start naming the ledger and the
    variable, not with a SQLAlchemy traceback, and the value appears nowhere in the error."""
    from connectors.base import ConnectorConfigError
    ledger = LEDGERS["mois.resident"]
    cfg = ledger["connector"]
    spec = SourceSpec(ledger="mois.resident", key_column=ledger["key_column"], config=cfg,
                      env={cfg["dsn_env"]: "s3cret@resident-db"})
    with pytest.raises(ConnectorConfigError, match=f"^ledger mois.resident: environment variable {cfg['dsn_env']} "
                                                   "is not a database URL") as info:
        create(spec)
    assert "s3cret" not in str(info.value)
