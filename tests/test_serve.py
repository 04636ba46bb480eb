"""The real thing: `onescreen serve` as a process, driven by the CLI's own tokens and samples over HTTP."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from conftest import sample, serve
from oneScreen.masking import name as masked_name
from test_catalog import run_cli


@pytest.fixture
def server(data_dir: Path, tmp_path: Path):
    log_path = tmp_path / "server.log"
    with serve(data_dir, log_path) as base:
        yield base, log_path


def cli(data_dir: Path, *args: str) -> str:
    result = run_cli(*args, env_extra={"ONESCREEN_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_demo_users_and_samples_come_from_the_cli(data_dir):
    users = json.loads(cli(data_dir, "demo", "users", "--json"))
    by_user = {u["user"]: u for u in users}
    assert {"user", "name", "roles", "tasks"} <= set(users[0])
    assert "basic_livelihood" in by_user["lee.bokji"]["tasks"] and "auditor" in by_user["yoon.gamsa"]["roles"]
    for kind, (db, table, col) in {"citizen": ("mois_resident", "resident", "rrn"),
                                   "building": ("molit_building", "bldg_title", "mgmBldrgstPk"),
                                   "parcel": ("molit_land", "land", "pnu")}.items():
        keys = json.loads(cli(data_dir, "demo", "sample", "--type", kind, "--limit", "5", "--json"))
        assert len(keys) == 5
        found = sample(data_dir, f'{db}:SELECT COUNT(*) FROM {table} WHERE "{col}" IN (?,?,?,?,?)', *keys)[0][0]
        assert found == 5


def test_a_served_screen_end_to_end_with_a_cli_token(server, data_dir, tmp_path):
    base, log_path = server
    token = cli(data_dir, "token", "--user", "jung.jutaek").strip()
    rrn = json.loads(cli(data_dir, "demo", "sample", "--type", "citizen", "--limit", "1", "--json"))[0]
    query = ('query($s: ID!) { screen(task: "housing_special_supply", subject: $s, caseRef: "2026-주택-0001") '
             '{ requestId sections { fields { id status value source { ledger } } } } }')
    r = httpx.post(f"{base}/graphql", json={"query": query, "variables": {"s": rrn}},
                   headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    fields = {f["id"]: f for s in r.json()["data"]["screen"]["sections"] for f in s["fields"]}
    name = sample(data_dir, "mois_resident:SELECT name FROM resident WHERE rrn = ?", rrn)[0][0]
    # housing_special_supply masks every name it shows (policy lint: one treatment per kind of personal data)
    assert fields["citizen.name"]["value"] == masked_name(name) and fields["citizen.name"]["status"] == "MASKED"
    metrics = httpx.get(f"{base}/metrics").text
    touched = {f["source"]["ledger"] for f in fields.values() if f["source"]}
    for ledger in touched:
        assert f'onescreen_ledger_fetches_total{{ledger="{ledger}"}} 1.0' in metrics

    # a token minted for another data directory is not valid here
    other = tmp_path / "other-data"
    other_token = run_cli("token", "--user", "jung.jutaek", env_extra={"ONESCREEN_DATA_DIR": str(other)}).stdout.strip()
    r = httpx.post(f"{base}/graphql", json={"query": query, "variables": {"s": rrn}},
                   headers={"Authorization": f"Bearer {other_token}"}, timeout=30)
    assert r.status_code == 401
    assert httpx.post(f"{base}/graphql", json={"query": query, "variables": {"s": rrn}}).status_code == 401

    # the logs of the whole run hold no subject identifier and no value
    logs = log_path.read_text(encoding="utf-8")
    assert "DEMO MODE" in logs
    assert rrn not in logs and name not in logs and token not in logs
    for line in logs.splitlines():
        if line.startswith("{"):
            json.loads(line)  # structured: one JSON object a line


SECURITY = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "x-frame-options": "DENY"}


def test_every_answer_carries_the_security_headers(server, data_dir):
    """POST /graphql's answers, good and bad, carry the same headers as every other page, GraphiQL (demo mode's developer tool) and its files included."""
    base, _ = server
    token = cli(data_dir, "token", "--user", "jung.jutaek").strip()
    answers = {
        "screen": httpx.post(f"{base}/graphql", json={"query": "{ __typename }"},
                             headers={"Authorization": f"Bearer {token}"}),
        "no token": httpx.post(f"{base}/graphql", json={"query": "{ __typename }"}),
        "not json": httpx.post(f"{base}/graphql", content=b"{", headers={"Authorization": f"Bearer {token}",
                                                                        "Content-Type": "application/json"}),
        "page": httpx.get(f"{base}/"),
        "probe": httpx.get(f"{base}/healthz"),
        "graphiql": httpx.get(f"{base}/graphql", headers={"Accept": "text/html"}),
        "graphiql file": httpx.get(f"{base}/graphiql/onescreen-graphiql.js"),
    }
    assert [answers[k].status_code for k in answers] == [200, 401, 400, 200, 200, 200, 200]
    for what, r in answers.items():
        assert {k: r.headers.get(k) for k in SECURITY} == SECURITY, what
        assert "frame-ancestors 'none'" in r.headers.get("content-security-policy", ""), what
        assert "unsafe-inline" not in r.headers["content-security-policy"], what
        assert "script-src 'self';" in r.headers["content-security-policy"], what


def test_graphiql_and_probes_answer(server):
    base, _ = server
    assert httpx.get(f"{base}/readyz").json()["status"] == "ready"
    assert "graphiql" in httpx.get(f"{base}/graphql", headers={"Accept": "text/html"}).text.lower()
    assert httpx.get(f"{base}/graphql").status_code == 405  # GET is no GraphQL transport unless enabled
    assert httpx.get(f"{base}/").status_code == 200


def test_the_command_line_starts_without_the_service_stack():
    """`onescreen --help`, `token` or `audit verify` answer in a fraction of a second: importing the CLI and the
    settings loads none of the service's heavy packages (strawberry, graphql-core, SQLAlchemy, aiohttp, ...); each
    command imports what it needs. Counted by modules, not timed (1.1 s before, 0.15 s after on this machine)."""
    import subprocess
    import sys

    code = ("import sys, oneScreen.cli, oneScreen.settings; "
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    heavy = {"strawberry", "graphql", "sqlalchemy", "aiohttp", "starlette", "uvicorn", "cryptography", "jwt",
             "pydantic", "yaml", "orjson", "asyncpg", "prometheus_client"}
    assert loaded & heavy == set()
