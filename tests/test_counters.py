"""Rate limits and lookup budgets shared by every pod through Redis, and what happens when Redis is gone.

Pins invariant 11 for rate limits and lookup budgets (two pods, one limit), invariant 10 for Redis (every call
bounded; a dead Redis costs one timeout per few seconds, not one per request), and the two failure modes:
rate limits fail open (counted, logged once), the lookup budget fails closed (503 LOOKUP_BUDGET_UNAVAILABLE,
nothing read).
"""
from __future__ import annotations

import logging
import time

import pytest

from conftest import free_port, token_with
from redisservers import PrivateRedis, shared_redis, silent_server
from test_lookups import GUESS, api_with, guesses, metric  # noqa: F401 (a fixture)
from test_screen import citizens

ME = "{ me { user } }"
PATIENT = {"ONESCREEN_REDIS_TIMEOUT": "5"}  # where Redis must answer: a loaded test machine is slow, not a fault


@pytest.fixture
def redis_env():
    with shared_redis() as env:
        yield env


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    yield server
    server.kill()


async def test_a_users_and_an_organisations_rate_limit_hold_across_two_pods(api_with, redis_env, data_dir):  # noqa: F811
    """Two service instances (two pods) on one Redis: a user's 6 a minute (a burst of 1) spent on one is spent
    on the other; so is an organisation's, across its users."""
    a = await api_with(**redis_env, **PATIENT, ONESCREEN_RATE_USER_PER_MIN="6")
    b = await api_with(**redis_env, **PATIENT, ONESCREEN_RATE_USER_PER_MIN="6")
    assert (await a.post("kim.jumin", ME)).status_code == 200
    r = await b.post("kim.jumin", ME)
    assert r.status_code == 429 and r.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert 1 <= int(r.headers["Retry-After"]) <= 10
    assert (await b.post("park.geonchuk", ME)).status_code == 200  # another user has their own limit

    c = await api_with(**redis_env, **PATIENT, ONESCREEN_RATE_USER_PER_MIN="0", ONESCREEN_RATE_ORG_PER_MIN="6")
    d = await api_with(**redis_env, **PATIENT, ONESCREEN_RATE_USER_PER_MIN="0", ONESCREEN_RATE_ORG_PER_MIN="6")
    one = token_with(data_dir, "staff.one", ["caseworker"], org="공유기관")
    two = token_with(data_dir, "staff.two", ["caseworker"], org="공유기관")
    assert (await c.post(None, ME, token=one)).status_code == 200
    assert (await d.post(None, ME, token=two)).status_code == 429  # the organisation's minute, spent on pod c


async def test_each_request_is_one_round_trip_to_redis_for_both_limits(api_with, private_redis):  # noqa: F811
    api = await api_with(ONESCREEN_REDIS_URL=private_redis.url, **PATIENT, ONESCREEN_RATE_USER_PER_MIN="6000",
                         ONESCREEN_RATE_ORG_PER_MIN="60000")
    assert (await api.post("kim.jumin", ME)).status_code == 200  # the first loads the script (NOSCRIPT, LOAD)
    assert private_redis.command_calls("script|load") == 1
    private_redis.reset_stats()
    for _ in range(7):
        assert (await api.post("kim.jumin", ME)).status_code == 200
    assert private_redis.command_calls("evalsha") == 7  # user and organisation in one script, once a request
    assert private_redis.command_calls("eval") == 0


async def test_the_lookup_budget_holds_across_two_pods(api_with, redis_env, data_dir):  # noqa: F811
    a = await api_with(**redis_env, **PATIENT, ONESCREEN_LOOKUP_MISSES_PER_USER="2")
    b = await api_with(**redis_env, **PATIENT, ONESCREEN_LOOKUP_MISSES_PER_USER="2")
    wrong = guesses(data_dir, citizens(data_dir, 1)[0], 3)
    assert (await a.post("jung.jutaek", GUESS, {"g": wrong[0]})).status_code == 200  # a miss, on pod a
    assert (await b.post("jung.jutaek", GUESS, {"g": wrong[1]})).status_code == 200  # a miss, on pod b
    before = await a.fetches()
    r = await a.post("jung.jutaek", GUESS, {"g": wrong[2]})
    assert r.status_code == 429, r.text
    assert [e["extensions"]["code"] for e in r.json()["errors"]] == ["LOOKUP_BUDGET_EXCEEDED"]
    assert await a.fetches() == before
    assert await a.app.state.runtime.lookups.misses("user", "jung.jutaek") == 2


async def test_a_hung_redis_lets_requests_through_at_one_timeout_per_few_seconds(api_with, caplog):  # noqa: F811
    """Rate limits fail open: a Redis that accepts connections and never answers costs the first request its
    bound (ONESCREEN_REDIS_TIMEOUT); the breaker then lets the next ones through without asking Redis (one
    connection, not ten), each counted in onescreen_shared_counter_failures_total, and one log line says so."""
    with silent_server() as hung:
        api = await api_with(ONESCREEN_REDIS_URL=f"redis://127.0.0.1:{hung.port}/0", ONESCREEN_REDIS_TIMEOUT="1",
                             ONESCREEN_RATE_USER_PER_MIN="6")
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="onescreen.counters"):
            statuses = [(await api.post("kim.jumin", ME)).status_code for _ in range(10)]
        took = time.monotonic() - started
        assert hung.connections == 1  # asked once: the nine others did not wait for it
    assert statuses == [200] * 10  # a limit of 1 in a burst: the old in-process limiter refused 9 of them
    assert took < 5, f"10 requests took {took:.2f} s: more than one wait of 1 s on the hung Redis"
    assert await metric(api, 'onescreen_shared_counter_failures_total{counter="rate_limit"}') == 10
    lines = [r for r in caplog.records if r.name == "onescreen.counters"]
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR and lines[0].__dict__["reason"] == "TimeoutError"


async def test_lookups_by_identifier_are_refused_when_redis_is_unreachable_and_nothing_is_read(
        api_with, data_dir):  # noqa: F811
    """The lookup budget fails closed: with no Redis on its port, a lookup by identifier (a guess or a real
    RRN) is 503 LOOKUP_BUDGET_UNAVAILABLE and reaches no ledger; requests that look nobody up by identifier
    go on."""
    api = await api_with(ONESCREEN_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    rrn = citizens(data_dir, 1)[0]
    before = await api.fetches()
    for subject in [rrn, *guesses(data_dir, rrn, 2)]:
        r = await api.post("jung.jutaek", GUESS, {"g": subject})
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["data"] == {"citizen": None}
        assert [e["extensions"]["code"] for e in body["errors"]] == ["LOOKUP_BUDGET_UNAVAILABLE"]
        assert subject not in r.text
    assert await api.fetches() == before  # nothing read
    assert (await api.post("jung.jutaek", ME)).status_code == 200
    assert await metric(api, 'onescreen_shared_counter_failures_total{counter="lookup_budget"}') == 3


async def test_a_redis_killed_while_serving_closes_lookups_and_opens_rate_limits(
        api_with, private_redis, data_dir):  # noqa: F811
    api = await api_with(ONESCREEN_REDIS_URL=private_redis.url, **PATIENT, ONESCREEN_RATE_USER_PER_MIN="6")
    rrn = citizens(data_dir, 1)[0]
    r = await api.post("jung.jutaek", GUESS, {"g": rrn})
    assert r.status_code == 200 and r.json()["data"]["citizen"]["name"]
    assert (await api.post("jung.jutaek", GUESS, {"g": rrn})).status_code == 429  # the rate limit counts
    private_redis.kill()
    before = await api.fetches()
    r = await api.post("jung.jutaek", GUESS, {"g": rrn})
    assert r.status_code == 503 and r.json()["errors"][0]["extensions"]["code"] == "LOOKUP_BUDGET_UNAVAILABLE"
    assert await api.fetches() == before
    assert (await api.post("jung.jutaek", ME)).status_code == 200  # fail open


def test_production_refuses_to_start_with_what_cannot_be_shared(data_dir, tmp_path):
    """A production pod with a local audit file, or with no Redis for its limits, would keep its own trail or
    its own counts: `onescreen serve` refuses to start and says what to set. Counting per process is allowed
    only when ONESCREEN_COUNTERS=per-process says so."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from test_catalog import run_cli
    from test_identity import production_env
    keys = tmp_path / "sso.pem"
    keys.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    env = {k: v for k, v in production_env(data_dir, keys).items() if k.startswith("ONESCREEN_")}

    sqlite = run_cli("serve", env_extra={**env, "ONESCREEN_AUDIT_URL": f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"})
    assert sqlite.returncode == 1
    assert "cannot start: production mode needs ONESCREEN_AUDIT_URL to point at PostgreSQL" in sqlite.stderr

    no_redis = {k: v for k, v in env.items() if k != "ONESCREEN_COUNTERS"}
    refused = run_cli("serve", env_extra=no_redis)
    assert refused.returncode == 1
    assert "cannot start: production mode needs ONESCREEN_REDIS_URL" in refused.stderr
    assert "ONESCREEN_COUNTERS=per-process" in refused.stderr
    shared = run_cli("serve", env_extra={**no_redis, "ONESCREEN_COUNTERS": "shared"})
    assert shared.returncode == 1 and "ONESCREEN_COUNTERS=shared needs ONESCREEN_REDIS_URL" in shared.stderr
    wrong = run_cli("serve", env_extra={**no_redis, "ONESCREEN_COUNTERS": "local"})
    assert wrong.returncode != 0 and "ONESCREEN_COUNTERS must be 'shared' or 'per-process'" in wrong.stderr

    from oneScreen.app import create_app
    from oneScreen.counters import InProcessRateLimits
    from oneScreen.settings import load as load_settings
    full = production_env(data_dir, keys)  # ONESCREEN_COUNTERS=per-process, explicitly: it starts
    app = create_app(load_settings(full), full)
    assert isinstance(app.state.runtime.rate_limits, InProcessRateLimits)
    import asyncio
    asyncio.run(app.state.runtime.close())


async def test_a_demo_without_redis_says_once_at_start_that_it_counts_in_its_own_process(make_app, caplog):
    app = make_app()
    with caplog.at_level(logging.INFO):
        async with app.router.lifespan_context(app):
            pass
    said = [r for r in caplog.records if "counted in this process only" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    from oneScreen.counters import InProcessRateLimits
    assert isinstance(app.state.runtime.rate_limits, InProcessRateLimits)
