"""Shared fixtures: real demo ledgers (SQLite files), the real app, real tokens.

Services a machine may lack (PostgreSQL, MariaDB) are checked by `need_service`:
missing, the test skips with the reason, unless ONESCREEN_REQUIRE_SERVICES=1
(CI), where it fails.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import event

from oneScreen.app import create_app
from oneScreen.demo import ledgers as demo_ledgers
from oneScreen.identity import mint_demo_token
from oneScreen.settings import ROOT, load as load_settings

REQUIRE_SERVICES = os.environ.get("ONESCREEN_REQUIRE_SERVICES") == "1"

try:  # Playwright's `expect` waits 5 s by default; a page action waits 15 s here (set_default_timeout). On a loaded
    # 2-core CI machine an answer that takes 5-15 s failed an assertion whose action would have waited: one bound.
    from playwright.sync_api import expect as _expect
    _expect.set_options(timeout=15_000)
except ImportError:  # pragma: no cover - the browser tests skip (or fail under CI) on their own
    pass


def need_service(available: bool, reason: str) -> None:
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing (ONESCREEN_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def _session_databases() -> Iterator[None]:
    """Drops the PostgreSQL databases tests made for the session (sqlservers.session_pg_database)."""
    yield
    import sqlservers
    sqlservers.drop_session_databases()


@pytest.fixture(scope="session")
def demo_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo ledgers, generated once per test session."""
    d = tmp_path_factory.mktemp("demo-master")
    demo_ledgers.ensure(d / "demo")
    return d


@pytest.fixture
def data_dir(tmp_path: Path, demo_master: Path) -> Path:
    """A fresh data directory per test, with a copy of the demo ledgers (tests cannot disturb each other)."""
    d = tmp_path / "data"
    shutil.copytree(demo_master, d)
    return d


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONESCREEN_")}
    env["ONESCREEN_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


@pytest.fixture
def make_app(data_dir: Path):
    apps = []

    def make(**extra: str):
        app = create_app(load_settings(env_for(data_dir, **extra)), env_for(data_dir, **extra))
        apps.append(app)
        return app

    yield make


@pytest.fixture
async def app(make_app) -> AsyncIterator[Any]:
    a = make_app()
    yield a
    await a.state.runtime.close()


_ABSENT = object()


def token_with(data_dir: Path, sub: str, roles: list[str], *, org: str = "테스트 기관", region: Any = _ABSENT,
               **claims: Any) -> str:
    """A demo-mode bearer token with exactly these claims (`region` left out unless given, None included as
    null): for callers the demo users do not cover, and for malformed claims."""
    import jwt

    from oneScreen.identity import DEMO_AUDIENCE, DEMO_ISSUER, demo_key
    now = int(time.time())
    body = {"sub": sub, "name": sub, "org": org, "roles": roles, "iss": DEMO_ISSUER, "aud": DEMO_AUDIENCE,
            "iat": now, "nbf": now, "exp": now + 600, **claims}
    if region is not _ABSENT:
        body["region"] = region
    return jwt.encode(body, demo_key(data_dir), algorithm="HS256")


class Api:
    """A caseworker's view of the HTTP API."""

    def __init__(self, client: httpx.AsyncClient, data_dir: Path, app: Any) -> None:
        self.client, self.data_dir, self.app = client, data_dir, app

    def token(self, user: str) -> str:
        return mint_demo_token(self.data_dir, user)

    async def gql(self, user: str | None, query: str, variables: dict | None = None, *,
                  token: str | None = None) -> tuple[int, dict]:
        """POST a query as demo user `user` (or with the bearer `token`); the status and the JSON body."""
        r = await self.post(user, query, variables, token=token)
        return r.status_code, r.json()

    async def post(self, user: str | None, query: str, variables: dict | None = None, *,
                   token: str | None = None) -> httpx.Response:
        token = token or (self.token(user) if user else None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)

    async def fetches(self) -> dict[str, float]:
        r = await self.client.get("/metrics")
        out = {}
        for line in r.text.splitlines():
            if line.startswith("onescreen_ledger_fetches_total{"):
                ledger = line.split('ledger="', 1)[1].split('"', 1)[0]
                out[ledger] = float(line.rsplit(" ", 1)[1])
        return out


@pytest.fixture
async def api(app: Any, data_dir: Path) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://onescreen.test") as c:
        yield Api(c, data_dir, app)


@pytest.fixture
def sql_log(app: Any) -> list[str]:
    """Every SQL statement (with its parameters) that the app's connectors send to their ledgers."""
    statements: list[str] = []
    seen = set()
    for lid, conn in app.state.runtime.snapshot.gateway.connectors.items():
        if not hasattr(conn, "engine"):
            continue  # REST ledgers: see the agency server's own request count
        engine = conn.engine.sync_engine
        if id(engine) in seen:
            continue
        seen.add(id(engine))

        def before(_conn, _cursor, statement, parameters, _context, _many, lid=lid):
            statements.append(f"{statement} -- {parameters!r}")

        event.listen(engine, "before_cursor_execute", before)
    return statements


def demo_db(data_dir: Path, name: str) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{data_dir / 'demo' / (name + '.sqlite')}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def sample(data_dir: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    """Rows from the demo ledgers, read directly (the expected side of a test)."""
    db, _, query = sql.partition(":")
    with demo_db(data_dir, db) as conn:
        return list(conn.execute(query, params))


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    """A writable copy of field_catalog.yaml and policies/ for tests that break or change them."""
    d = tmp_path / "config"
    d.mkdir()
    shutil.copy(ROOT / "field_catalog.yaml", d / "field_catalog.yaml")
    shutil.copytree(ROOT / "policies", d / "policies")
    return d


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(data_dir: Path, log_path: Path, *args: str, ready: str = "/healthz", **env_extra: str) -> Iterator[str]:
    """`onescreen serve ARGS` as a real process on a free port over `data_dir`; yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONESCREEN_")}
    env.update(ONESCREEN_DATA_DIR=str(data_dir), ONESCREEN_PORT=str(port), **env_extra)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "oneScreen.cli", "serve", *args], env=env, stdout=log,
                                stderr=log, cwd=ROOT)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        try:
            while True:
                try:
                    if httpx.get(f"{base}{ready}", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()


def jdump(x: Any) -> str:
    return json.dumps(x, ensure_ascii=False)


async def eventually(probe: Any, expected: Any, what: str, seconds: float = 4.0) -> None:
    """Wait until `await probe()` gives `expected` (a change the service follows on its own, such as a file it
    watches), looking every 20 ms; AssertionError saying `what` did not happen after `seconds`."""
    for _ in range(int(seconds / 0.02)):
        if await probe() == expected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {seconds:g} s")
