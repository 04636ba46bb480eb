"""Hostile and malformed input, GraphQL over HTTP, rate limits, readiness (production hardening)."""
from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3

import httpx
import pytest

from conftest import Api, eventually
from test_screen import SCREEN, citizens

CITIZEN = 'c{i}: citizen(rrn: "{rrn}", task: "vehicle_transfer", caseRef: "Q-{i}") {{ name }}'


@pytest.fixture
async def app_with(make_app, data_dir):
    made = []

    async def make(**env):
        app = make_app(**env)
        made.append(app)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        made.append(client)
        return Api(client, data_dir, app)

    yield make
    for x in made:
        if isinstance(x, httpx.AsyncClient):
            await x.aclose()
        else:
            await x.state.runtime.close()


async def refused_without_fetch(api, user, query, code=None, variables=None):
    before = await api.fetches()
    status, body = await api.gql(user, query, variables)
    assert "data" not in body or body["data"] is None, body
    assert body["errors"], body
    if code:
        assert body["errors"][0].get("extensions", {}).get("code") == code, body
    assert await api.fetches() == before  # nothing executed
    return status, body


async def test_too_many_subjects_in_one_request_are_refused_before_execution(api, data_dir):
    rrns = citizens(data_dir, 101)
    query = "{ " + " ".join(CITIZEN.format(i=i, rrn=r) for i, r in enumerate(rrns)) + " }"
    _, body = await refused_without_fetch(api, "choi.chaeryang", query, "QUERY_TOO_COMPLEX")
    assert "at most 100" in body["errors"][0]["message"]


async def test_depth_aliases_tokens_and_cost_limits_refuse_hostile_queries(app_with, data_dir):
    api = await app_with(ONESCREEN_MAX_DEPTH="2", ONESCREEN_MAX_ALIASES="20", ONESCREEN_MAX_TOKENS="2000",
                         ONESCREEN_MAX_COST="5")
    rrn = citizens(data_dir, 1)[0]
    deep = f'{{ citizen(rrn: "{rrn}", task: "basic_livelihood", caseRef: "D-1") {{ residence {{ parcel {{ area }} }} }} }}'
    _, body = await refused_without_fetch(api, "lee.bokji", deep, "QUERY_TOO_COMPLEX")
    assert "3 levels" in body["errors"][0]["message"] and "at most 2" in body["errors"][0]["message"]
    aliases = "{ " + " ".join(f"a{i}: me {{ u{i}: user }}" for i in range(11)) + " }"
    _, body = await refused_without_fetch(api, "lee.bokji", aliases, "QUERY_TOO_COMPLEX")
    assert "22 aliases" in body["errors"][0]["message"] and "at most 20" in body["errors"][0]["message"]
    tokens = "{ me { " + " ".join(["user"] * 2100) + " } }"
    _, body = await refused_without_fetch(api, "lee.bokji", tokens, "QUERY_TOO_COMPLEX")
    assert "more than 2000 tokens" in body["errors"][0]["message"]
    costly = (f'{{ citizen(rrn: "{rrn}", task: "vehicle_transfer", caseRef: "D-2") '
              '{ name rrn address vehicles { plateNo model kind modelYear } } }')
    await refused_without_fetch(api, "choi.chaeryang", costly, "QUERY_TOO_COMPLEX")


async def test_circular_and_repeated_fragments_and_directive_floods_are_refused_cheaply(api, data_dir):
    rrn = citizens(data_dir, 1)[0]
    root = f'citizen(rrn: "{rrn}", task: "vehicle_transfer", caseRef: "F-1")'
    circular = f"{{ {root} {{ ...A }} }} fragment A on Citizen {{ name ...B }} fragment B on Citizen {{ ...A }}"
    _, body = await refused_without_fetch(api, "choi.chaeryang", circular, "QUERY_TOO_COMPLEX")
    assert "Cannot spread fragment" in body["errors"][0]["message"]
    # fragments that fan out exponentially (each spreads the next twice) cost their expansion
    frags = " ".join(f"fragment F{i} on Citizen {{ ...F{i + 1} ...F{i + 1} }}" for i in range(20))
    fanout = f"{{ {root} {{ ...F0 }} }} {frags} fragment F20 on Citizen {{ name }}"
    await refused_without_fetch(api, "choi.chaeryang", fanout, "QUERY_TOO_COMPLEX")
    flood = f"{{ {root} {{ name " + "@include(if: true) " * 60 + "} }"
    await refused_without_fetch(api, "choi.chaeryang", flood, "QUERY_TOO_COMPLEX")


async def test_oversized_bodies_variables_and_malformed_requests_get_clear_4xx(api):
    token = api.token("kim.jumin")
    auth = {"Authorization": f"Bearer {token}"}
    post = api.client.post
    r = await post("/graphql", content=b"{" + b" " * 300_000 + b"}", headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 413
    r = await post("/graphql", json={"query": "{ me { user } }", "variables": {"x": "y" * 70_000}}, headers=auth)
    assert r.status_code == 413 and r.json()["errors"][0]["extensions"]["code"] == "VARIABLES_TOO_LARGE"
    for bad in (b"{not json", b'{"query": "\xff\xfe"}', b"[1,2]", b'{"query": 5}', b'{"query": "{ me { user } }", "variables": []}'):
        r = await post("/graphql", content=bad, headers={**auth, "Content-Type": "application/json"})
        assert r.status_code == 400, bad
        assert r.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    r = await post("/graphql", content=b'{"query": "{ me { user } }"}', headers={**auth, "Content-Type": "text/plain"})
    assert r.status_code == 415  # a cross-site form cannot send application/json: no CSRF through simple requests
    r = await post("/graphql", json={"query": "{ me { user } }"}, headers={**auth, "Accept": "text/html"})
    assert r.status_code == 406


async def test_graphql_over_http_status_codes_follow_the_media_type(api):
    auth = {"Authorization": f"Bearer {api.token('kim.jumin')}"}
    bad = {"query": "{ me { nope } }"}
    r = await api.client.post("/graphql", json=bad, headers={**auth, "Accept": "application/graphql-response+json"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/graphql-response+json")
    assert "data" not in r.json()
    r = await api.client.post("/graphql", json=bad, headers={**auth, "Accept": "application/json"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    r = await api.client.post("/graphql", json={"query": "{ me { user } }"},
                              headers={**auth, "Accept": "application/graphql-response+json"})
    assert r.status_code == 200 and r.json()["data"]["me"]["user"] == "kim.jumin"
    two = {"query": "query A { me { user } } query B { tasks { code } }"}
    for name, message in ((None, "Must provide operation name"), ("C", "Unknown operation named <input>")):
        r = await api.client.post("/graphql", json={**two, "operationName": name},
                                  headers={**auth, "Accept": "application/graphql-response+json"})
        assert r.status_code == 400 and message in r.json()["errors"][0]["message"], r.text
    r = await api.client.post("/graphql", json={**two, "operationName": "B"}, headers=auth)
    assert r.status_code == 200 and r.json()["data"]["tasks"], r.text


async def test_get_is_off_by_default_and_never_runs_mutations(app_with, api, data_dir):
    auth = {"Authorization": f"Bearer {api.token('kim.jumin')}"}
    r = await api.client.get("/graphql", params={"query": "{ me { user } }"}, headers=auth)
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    on = await app_with(ONESCREEN_ALLOW_GET="1")
    r = await on.client.get("/graphql", params={"query": "{ me { user } }"}, headers=auth)
    assert r.status_code == 200 and r.json()["data"]["me"]["user"] == "kim.jumin"
    rrn = citizens(data_dir, 1, "legal_dong_cd LIKE '11680%'")[0]
    mutation = f'mutation {{ recordConsent(task: "basic_livelihood", subject: "{rrn}", caseRef: "G-1", method: "oral") {{ method }} }}'
    r = await on.client.get("/graphql", params={"query": mutation},
                            headers={"Authorization": f"Bearer {on.token('lee.bokji')}"})
    assert r.status_code == 405


async def test_production_hides_introspection_suggestions_and_internals(app_with, data_dir, tmp_path):
    api = await app_with(ONESCREEN_INTROSPECTION="0")
    _, body = await api.gql("kim.jumin", "{ __schema { types { name } } }")
    assert body["errors"] and "introspection" in body["errors"][0]["message"].lower()
    demo = await app_with()
    _, body = await demo.gql("kim.jumin", "{ __schema { queryType { name } } }")
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"
    from oneScreen.graphql import build_schema
    from oneScreen import catalog
    from oneScreen.settings import ROOT
    prod = build_schema(catalog.load(ROOT / "field_catalog.yaml"), production=True)
    result = await prod.execute("{ taks { code } }")
    assert "Did you mean" not in result.errors[0].message


async def test_rate_limits_answer_429_with_retry_after(app_with):
    api = await app_with(ONESCREEN_RATE_USER_PER_MIN="6")  # a burst of 1, then one every 10 s
    status, _ = await api.gql("kim.jumin", "{ me { user } }")
    assert status == 200
    r = await api.client.post("/graphql", json={"query": "{ me { user } }"},
                              headers={"Authorization": f"Bearer {api.token('kim.jumin')}"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    status, _ = await api.gql("park.geonchuk", "{ me { user } }")  # another user has their own bucket
    assert status == 200


async def test_org_rate_limit_is_shared_by_the_organisation(app_with):
    api = await app_with(ONESCREEN_RATE_ORG_PER_MIN="6", ONESCREEN_RATE_USER_PER_MIN="0")
    assert (await api.gql("kim.jumin", "{ me { user } }"))[0] == 200
    assert (await api.gql("kim.jumin", "{ me { user } }"))[0] == 429


def test_the_rate_limiter_memory_is_bounded():
    from oneScreen.http import RateLimiter
    limiter = RateLimiter(60, max_keys=100)
    for i in range(10_000):
        limiter.check(f"user-{i}", now=0.0)
    assert len(limiter.buckets) <= 100


async def test_persisted_queries_allow_list_and_automatic_persisted_queries(app_with, tmp_path):
    query = "{ me { user } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    registry = tmp_path / "persisted.json"
    registry.write_text(json.dumps({digest: query}))
    strict = await app_with(ONESCREEN_PERSISTED_QUERIES=str(registry), ONESCREEN_PERSISTED_ONLY="1")
    auth = {"Authorization": f"Bearer {strict.token('kim.jumin')}"}
    ext = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    r = await strict.client.post("/graphql", json={"extensions": ext}, headers=auth)
    assert r.json()["data"]["me"]["user"] == "kim.jumin"
    r = await strict.client.post("/graphql", json={"query": "{ me { name } }"}, headers=auth)
    assert r.status_code == 403 and r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"

    apq = await app_with()
    other = "{ me { name } }"
    other_ext = {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(other.encode()).hexdigest()}}
    r = await apq.client.post("/graphql", json={"extensions": other_ext}, headers=auth)
    assert r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    r = await apq.client.post("/graphql", json={"query": other, "extensions": other_ext}, headers=auth)
    assert r.json()["data"]["me"]["name"] == "김주민"
    r = await apq.client.post("/graphql", json={"extensions": other_ext}, headers=auth)
    assert r.json()["data"]["me"]["name"] == "김주민"
    r = await apq.client.post("/graphql", json={"query": query, "extensions": other_ext}, headers=auth)
    assert r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"



async def test_a_changed_persisted_query_file_is_followed_without_a_restart(app_with, tmp_path):
    """A new frontend registers its queries: with ONESCREEN_PERSISTED_ONLY the pods run them within the watch
    interval, no restart. A broken file leaves the registered queries running and says why in /readyz."""
    query, added = "{ me { user } }", "{ me { name } }"
    digest, added_digest = (hashlib.sha256(q.encode()).hexdigest() for q in (query, added))
    registry = tmp_path / "persisted.json"
    registry.write_text(json.dumps({digest: query}))
    strict = await app_with(ONESCREEN_PERSISTED_QUERIES=str(registry), ONESCREEN_PERSISTED_ONLY="1")
    runtime = strict.app.state.runtime
    auth = {"Authorization": f"Bearer {strict.token('kim.jumin')}"}

    async def run(q: str) -> int:
        return (await strict.client.post("/graphql", json={"query": q}, headers=auth)).status_code

    async def warnings() -> list[str]:
        return (await strict.client.get("/readyz")).json()["warnings"]

    async def warned() -> bool:
        return any("persisted queries" in w for w in await warnings())

    following = asyncio.ensure_future(runtime.follow_files(0.02))
    try:
        assert await run(query) == 200 and await run(added) == 403
        registry.write_text(json.dumps({digest: query, added_digest: added}))
        await eventually(lambda: run(added), 200, "the added query running")
        registry.write_text(json.dumps({digest: "{ me { naem }"}))  # a hand edit gone wrong
        await eventually(warned, True, "a warning of the broken file")
        assert str(registry) in " ".join(await warnings())
        assert await run(added) == 200, "a broken file replaced the registered queries"
        registry.write_text(json.dumps({digest: query}))
        await eventually(lambda: run(added), 403, "the removed query refused")
        assert await run(query) == 200 and await warnings() == []
    finally:
        following.cancel()


async def test_readyz_turns_503_when_the_audit_store_breaks_and_warns_of_a_refused_configuration(
        app_with, data_dir, catalog_copy):
    """A refused configuration leaves the pod serving its running one: /readyz stays 200 and says so as a warning
    (issue 17: with 503, a bad file reaching every pod at once took the whole service out of rotation)."""
    path = catalog_copy / "field_catalog.yaml"
    api = await app_with(ONESCREEN_CATALOG=str(path), ONESCREEN_POLICIES=str(catalog_copy / "policies"))
    assert (await api.client.get("/readyz")).status_code == 200
    audit = data_dir / "audit.sqlite"
    audit.rename(data_dir / "audit.moved")
    r = await api.client.get("/readyz")
    assert r.status_code == 503 and "audit store" in r.json()["problems"][0]
    (data_dir / "audit.moved").rename(audit)
    assert (await api.client.get("/readyz")).status_code == 200

    good = path.read_text(encoding="utf-8")
    path.write_text(good.replace("ledger: mois.resident, column: name,", "ledger: nowhere, column: name,"), encoding="utf-8")
    with pytest.raises(Exception):
        api.app.state.runtime.reload()
    r = await api.client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready" and r.json()["problems"] == []
    assert r.json()["warnings"][0].startswith("configuration: the files on disk are invalid")
    assert f"{path}:" in r.json()["warnings"][0]
    path.write_text(good, encoding="utf-8")
    api.app.state.runtime.reload()
    r = await api.client.get("/readyz")
    assert r.status_code == 200 and r.json()["warnings"] == []


async def test_metrics_cover_requests_ledgers_cache_policy_and_audit(api, data_dir):
    rrn = citizens(data_dir, 1)[0]
    await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "M-1"})
    text = (await api.client.get("/metrics")).text
    for name in ("onescreen_graphql_requests_total", "onescreen_graphql_request_seconds_bucket",
                 "onescreen_ledger_fetch_seconds_bucket", "onescreen_ledger_circuit_state", "onescreen_cache_misses_total",
                 'onescreen_policy_decisions_total{status="MASKED"}', "onescreen_audit_write_seconds_count"):
        assert name in text, name
    assert rrn not in text


async def test_a_query_text_over_the_size_limit_is_refused_and_every_text_served_is_kept_parsed(api):
    """Parsed documents are cached per query text; a text over ONESCREEN_MAX_CHARS is refused before the lexer
    sees it, so the cache holds at most 512 texts of at most that size (memory bound). Neither is such a text kept
    as an automatic persisted query (10,000 of them)."""
    runtime = api.app.state.runtime
    schema = runtime.snapshot.schema
    limit = schema.limits.max_chars
    small, large = "{ me { user } }", "{ me { user } }" + " " * limit
    status, body = await api.gql("kim.jumin", small)
    assert status == 200 and body["data"]["me"]["user"] == "kim.jumin"
    digest = hashlib.sha256(large.encode()).hexdigest()
    r = await api.client.post("/graphql", json={"query": large, "extensions": {"persistedQuery": {
        "version": 1, "sha256Hash": digest}}}, headers={"Authorization": f"Bearer {api.token('kim.jumin')}"})
    body = r.json()
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX" and str(limit) in body["errors"][0]["message"]
    assert small in schema._prepared and large not in schema._prepared
    assert digest not in runtime.persisted.automatic


async def test_a_failing_screen_answers_500_with_the_security_headers_and_no_detail(make_app, data_dir, caplog):
    """A bug below POST /graphql answers a bare 500 (Starlette's ServerErrorMiddleware), with the security
    headers; the exception is re-raised for the server to log, never sent."""
    app = make_app()

    def broken(_headers, _client):
        raise RuntimeError("a bug with a secret 900101-1234567")
    app.state.runtime.verifier.identify = broken
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            api = Api(client, data_dir, app)
            r = await client.post("/graphql", json={"query": "{ __typename }"},
                                  headers={"Authorization": f"Bearer {api.token('jung.jutaek')}"})
    finally:
        await app.state.runtime.close()
    assert r.status_code == 500 and r.text == "Internal Server Error"
    assert r.headers["x-frame-options"] == "DENY" and "frame-ancestors" in r.headers["content-security-policy"]
