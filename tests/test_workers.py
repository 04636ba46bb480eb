"""Scale-out: several worker processes share one PostgreSQL audit store; the chain stays whole."""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from conftest import need_service, serve
from sqlservers import PG_URL, drop_database, pg_available, unique_db_name, _create_database, _run
from sqlalchemy.engine import make_url
from test_catalog import run_cli


@pytest.fixture
def pg_audit_url():
    need_service(pg_available(), f"PostgreSQL is not reachable at {PG_URL}")
    name = unique_db_name("onescreen_workers")
    _run(_create_database(make_url(PG_URL), name))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(PG_URL, name)


def test_two_workers_share_a_postgresql_audit_store_and_lose_no_record(data_dir, pg_audit_url, tmp_path):
    init = run_cli("audit", "init", env_extra={"ONESCREEN_DATA_DIR": str(data_dir), "ONESCREEN_AUDIT_URL": pg_audit_url})
    assert init.returncode == 0, init.stderr
    with serve(data_dir, tmp_path / "server.log", "--workers", "2", ready="/readyz", ONESCREEN_AUDIT_URL=pg_audit_url,
               ONESCREEN_RATE_USER_PER_MIN="0", ONESCREEN_RATE_ORG_PER_MIN="0") as base:
        token = run_cli("token", "--user", "jung.jutaek", env_extra={"ONESCREEN_DATA_DIR": str(data_dir)}).stdout.strip()
        rrns = json.loads(run_cli("demo", "sample", "--type", "citizen", "--limit", "40", "--json",
                                  env_extra={"ONESCREEN_DATA_DIR": str(data_dir)}).stdout)
        query = 'query($s: ID!) { screen(task: "housing_special_supply", subject: $s, caseRef: "W-1") { requestId } }'

        async def load() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=30,
                                         headers={"Authorization": f"Bearer {token}"}) as c:
                sem = asyncio.Semaphore(16)

                async def one(rrn: str) -> httpx.Response:
                    async with sem:
                        return await c.post("/graphql", json={"query": query, "variables": {"s": rrn}})
                return await asyncio.gather(*(one(r) for r in rrns * 5))

        responses = asyncio.run(load())
        assert all(r.status_code == 200 and "errors" not in r.json() for r in responses)
        pids = {r.headers.get("x-request-id") for r in responses}
        assert len(pids) == 200
    result = run_cli("audit", "verify", env_extra={"ONESCREEN_DATA_DIR": str(data_dir),
                                                   "ONESCREEN_AUDIT_URL": pg_audit_url})
    assert result.returncode == 0, result.stderr
    assert "signed checkpoints hold" in result.stdout  # each worker sealed its last checkpoint when it stopped
    exported = run_cli("audit", "export", env_extra={"ONESCREEN_DATA_DIR": str(data_dir),
                                                     "ONESCREEN_AUDIT_URL": pg_audit_url})
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    subjects = [r for r in records if r["request_index"] == 0]  # the rest: household members shown (disclose.py)
    assert len(subjects) == 200 and len({(r["request_id"], r["request_index"]) for r in records}) == len(records)
    assert {r["request_id"] for r in subjects} == pids  # every response has its durable record, none lost
    workers_log = (tmp_path / "server.log").read_text()
    assert workers_log.count("DEMO MODE") >= 2  # both workers served


def test_metrics_of_two_workers_are_summed_whichever_worker_answers(data_dir, pg_audit_url, tmp_path):
    """`onescreen serve --workers 2`: /metrics counts every worker's requests (prometheus_client's multiprocess
    mode, in a fresh directory made for the run and removed after it), not the answering worker's alone."""
    init = run_cli("audit", "init", env_extra={"ONESCREEN_DATA_DIR": str(data_dir), "ONESCREEN_AUDIT_URL": pg_audit_url})
    assert init.returncode == 0, init.stderr
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with serve(data_dir, tmp_path / "server.log", "--workers", "2", ready="/readyz", ONESCREEN_AUDIT_URL=pg_audit_url,
               ONESCREEN_RATE_USER_PER_MIN="0", ONESCREEN_RATE_ORG_PER_MIN="0", TMPDIR=str(tmp)) as base:
        token = run_cli("token", "--user", "jung.jutaek", env_extra={"ONESCREEN_DATA_DIR": str(data_dir)}).stdout.strip()

        async def load() -> list[str]:
            async with httpx.AsyncClient(base_url=base, timeout=30,
                                         headers={"Authorization": f"Bearer {token}"}) as c:
                sem = asyncio.Semaphore(16)

                async def one() -> int:
                    async with sem:
                        return (await c.post("/graphql", json={"query": "{ me { user } }"})).status_code
                assert await asyncio.gather(*(one() for _ in range(120))) == [200] * 120
            scrapes = []
            for _ in range(6):  # a new connection each time: either worker may answer
                async with httpx.AsyncClient(base_url=base, timeout=30) as c:
                    scrapes.append((await c.get("/metrics")).text)
            return scrapes

        scrapes = asyncio.run(load())
        for text in scrapes:
            ok = [line for line in text.splitlines() if line.startswith('onescreen_graphql_requests_total{outcome="ok"}')]
            assert len(ok) == 1 and float(ok[0].rsplit(" ", 1)[1]) == 120, ok
        assert [d.name.startswith("onescreen-metrics-") for d in tmp.iterdir()] == [True]
    assert list(tmp.iterdir()) == []  # the run's metric files are gone with it
