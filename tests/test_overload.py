"""A worker takes at most ONESCREEN_MAX_IN_FLIGHT GraphQL requests at once; the rest wait their turn, first come
first served, for at most ONESCREEN_QUEUE_TIMEOUT, then get 503 OVERLOADED before anything is read.

Without the bound, an open-loop flood at 1.2x a worker's capacity had every request in progress slow together
until clients gave up: 0.63x of the capacity answered, p99 10 s (`python -m bench openloop`, 75% of B's rate).
The slow ledger here is the REST one (the agency API on loopback, its answers delayed)."""
from __future__ import annotations

import asyncio
import logging
import sqlite3

import httpx
import pytest

from conftest import Api, env_for, sample
from oneScreen.demo.agency_api import AgencyServer
from oneScreen.settings import load as load_settings
from test_screen import SCREEN, fields_of

KEY = "test-service-key-123"
HUB = "building.parcel>parcel.buildings"  # the field the agency API answers on building_use_change


@pytest.fixture
async def agency(data_dir):
    async with AgencyServer(data_dir / "demo", KEY) as srv:
        yield srv


def buildings(data_dir, n: int) -> list[str]:
    return [r["mgmBldrgstPk"] for r in
            sample(data_dir, "molit_building:SELECT mgmBldrgstPk FROM bldg_title ORDER BY mgmBldrgstPk LIMIT ?", n)]


async def served(make_app, data_dir, agency, **env):
    app = make_app(ONESCREEN_URL_MOLIT_BLDG_HUB=agency.url, ONESCREEN_KEY_MOLIT_BLDG_HUB=KEY, **env)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=30)
    return app, client, Api(client, data_dir, app)


async def until(predicate, seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_a_request_beyond_the_bound_waits_its_bounded_turn_then_gets_503_and_reads_nothing(
        make_app, data_dir, agency, caplog):
    app, client, api = await served(make_app, data_dir, agency, ONESCREEN_MAX_IN_FLIGHT="2",
                                    ONESCREEN_QUEUE_TIMEOUT="0.2")
    keys = buildings(data_dir, 4)
    try:
        agency.set_faults(latency_ms=3000)  # the agency API answers after 3 s: both turns stay taken meanwhile

        def screen(i: int):
            return api.post("park.geonchuk", SCREEN, {"t": "building_use_change", "s": keys[i], "c": f"OV-{i}"})
        busy = [asyncio.ensure_future(screen(0)), asyncio.ensure_future(screen(1))]
        await until(lambda: agency.state.in_flight == 2)
        before = agency.state.requests
        with caplog.at_level(logging.WARNING, logger="onescreen.app"):
            third, fourth = await asyncio.gather(screen(2), screen(3))
        for r in (third, fourth):
            assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
            assert r.json()["errors"][0]["extensions"]["code"] == "OVERLOADED"
            assert "nothing was read or disclosed" in r.json()["errors"][0]["message"]
        assert not any(t.done() for t in busy)  # refused after its bounded wait, not after the requests ahead
        assert agency.state.requests == before  # neither read the ledger
        said = [rec for rec in caplog.records if "ONESCREEN_MAX_IN_FLIGHT" in rec.getMessage()]
        assert len(said) == 1 and said[0].levelno == logging.WARNING  # once, not once per refusal

        for r in await asyncio.gather(*busy):  # the two admitted ones are served whole
            assert r.status_code == 200 and fields_of(r.json()["data"]["screen"])[HUB]["status"] == "OK", r.text
        agency.set_faults()
        r = await api.post("park.geonchuk", SCREEN, {"t": "building_use_change", "s": keys[2], "c": "OV-5"})
        # the turns came back: served
        assert r.status_code == 200, r.text
        text = (await client.get("/metrics")).text
        assert 'onescreen_graphql_requests_total{outcome="overloaded"} 2.0' in text
        with sqlite3.connect(data_dir / "audit.sqlite") as db:  # the refused ones disclosed nothing: no record
            cases = {r[0] for r in db.execute("SELECT case_ref FROM onescreen_audit WHERE kind = 'disclosure'")}
        assert {"OV-0", "OV-1", "OV-5"} <= cases and not cases & {"OV-2", "OV-3"}, cases
    finally:
        await client.aclose()
        await app.state.runtime.close()


async def test_requests_beyond_the_bound_wait_their_turn_and_are_all_served_never_more_at_once(
        make_app, data_dir, agency):
    app, client, api = await served(make_app, data_dir, agency, ONESCREEN_MAX_IN_FLIGHT="2",
                                    ONESCREEN_QUEUE_TIMEOUT="20")
    keys = buildings(data_dir, 6)
    try:
        agency.set_faults(latency_ms=150)
        agency.reset_stats()
        got = await asyncio.gather(*(api.post("park.geonchuk", SCREEN, {"t": "building_use_change", "s": k,
                                                                         "c": f"Q-{i}"}) for i, k in enumerate(keys)))
        assert [r.status_code for r in got] == [200] * 6, [r.text for r in got if r.status_code != 200]
        assert agency.state.requests == 6 and agency.state.max_concurrent == 2  # two screens at a time
    finally:
        await client.aclose()
        await app.state.runtime.close()


def test_the_bounds_must_be_positive(data_dir):
    for name in ("ONESCREEN_MAX_IN_FLIGHT", "ONESCREEN_QUEUE_TIMEOUT"):
        for bad in ("0", "-1", "lots"):
            with pytest.raises(ValueError, match=f"{name} must be a positive"):
                load_settings(env_for(data_dir, **{name: bad}))
    assert load_settings(env_for(data_dir)).max_in_flight == 256


def test_every_numeric_setting_refuses_what_is_not_a_number_naming_the_variable(data_dir):
    """A typo in a setting stops the start with its name and value (`onescreen serve` writes it as one JSON line,
    test_catalog), never a bare "invalid literal for int()" or a traceback from deep in the start."""
    from oneScreen.settings import LIMIT_VARIABLES
    numeric = ["ONESCREEN_PORT", "ONESCREEN_TOKEN_TTL", "ONESCREEN_RATE_USER_PER_MIN", "ONESCREEN_RATE_ORG_PER_MIN",
               "ONESCREEN_REQUEST_TIMEOUT", "ONESCREEN_WORKERS", "ONESCREEN_CACHE_MB", *LIMIT_VARIABLES]
    for name in numeric:
        for bad in ("lots", "-1"):
            with pytest.raises(ValueError, match=f"^{name} must be .*{bad!r}"):
                load_settings(env_for(data_dir, **{name: bad}))
    with pytest.raises(ValueError, match="^ONESCREEN_PORT must be a TCP port"):
        load_settings(env_for(data_dir, ONESCREEN_PORT="70000"))
    with pytest.raises(ValueError, match="^ONESCREEN_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, not 'LOUD'"):
        load_settings(env_for(data_dir, ONESCREEN_LOG_LEVEL="LOUD"))
    s = load_settings(env_for(data_dir, ONESCREEN_LOG_LEVEL="debug", ONESCREEN_RATE_USER_PER_MIN="0",
                              ONESCREEN_MAX_DEPTH="12"))
    assert (s.log_level, s.rate_user_per_min, s.limits.max_depth) == ("DEBUG", 0, 12)


def test_a_malformed_database_url_is_named_and_never_echoed(data_dir):
    """ONESCREEN_AUDIT_URL and ONESCREEN_CONFIG_URL hold passwords: a value that is not a URL stops the start
    naming the variable, without the value (it ended in a SQLAlchemy traceback that printed nothing useful)."""
    for name in ("ONESCREEN_AUDIT_URL", "ONESCREEN_CONFIG_URL"):
        with pytest.raises(ValueError, match=f"^{name} must be a database URL") as info:
            load_settings(env_for(data_dir, **{name: "s3cret-password@audit-db"}))
        assert "s3cret" not in str(info.value)
