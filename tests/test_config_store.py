"""The approved configuration as versions in a store (PostgreSQL, or SQLite for a demo): seeded from the files,
exported as files, followed by every process, and applied by the admin screens without writing a file.

Pins invariant 11 for the configuration (every pod runs the store's active version) and invariant 8 across
pods (a version is validated before it runs; a refused one leaves the running one, with FILE:LINE: reason).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from conftest import Api, need_service
from oneScreen import configstore
from oneScreen.settings import ROOT
from sqlservers import PG_URL, _create_database, _run, drop_database, pg_available, unique_db_name
from test_admin import APPROVE, TASK
from test_catalog import run_cli
from test_screen import SCREEN, citizens, fields_of


@pytest.fixture
def pg_config_url():
    """An empty database of its own on the real PostgreSQL (plain postgresql:// URL, as an operator sets it)."""
    need_service(pg_available(), f"PostgreSQL is not reachable at {PG_URL}")
    name = unique_db_name("onescreen_config")
    _run(_create_database(make_url(PG_URL), name))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(PG_URL, name)


def shipped_files() -> dict[str, str]:
    return configstore.read_files(ROOT / "field_catalog.yaml", ROOT / "policies")


def seed(url: str, files: dict[str, str] | None = None) -> configstore.Version:
    async def run() -> configstore.Version:
        store = configstore.ConfigStore(url)
        try:
            await store.create()
            return await store.seed(files or shipped_files(), "test")
        finally:
            await store.close()
    return _run(run())


def store_call(url: str, what):
    """Run `what(store)` against a store of its own (another process's view of the same database)."""
    async def run():
        store = configstore.ConfigStore(url)
        try:
            return await what(store)
        finally:
            await store.close()
    return _run(run())


def tree_digest(directory: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in directory.rglob("*")):
        h.update(str(f.relative_to(directory)).encode() + b"\0")
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture
async def store_api(make_app, data_dir, catalog_copy):
    """Apps whose configuration is the store at the URL given (demo users and ledgers; files only seed)."""
    made = []

    async def make(url: str) -> Api:
        app = make_app(ONESCREEN_CONFIG_URL=url, ONESCREEN_CATALOG=str(catalog_copy / "field_catalog.yaml"),
                       ONESCREEN_POLICIES=str(catalog_copy / "policies"))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        made.append((app, client))
        return Api(client, data_dir, app)

    yield make
    for app, client in made:
        await client.aclose()
        await app.state.runtime.close()


async def until(predicate, seconds: float = 5.0) -> None:
    """Wait (by looking every 20 ms) until `predicate()` holds, at most `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        assert loop.time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------- files are the seed and the export


def test_import_seeds_an_empty_store_once_and_export_gives_back_the_same_files(pg_config_url, data_dir, tmp_path):
    env = {"ONESCREEN_DATA_DIR": str(data_dir), "ONESCREEN_CONFIG_URL": pg_config_url,
           "ONESCREEN_CATALOG": str(ROOT / "field_catalog.yaml"), "ONESCREEN_POLICIES": str(ROOT / "policies")}
    first = run_cli("config", "import", env_extra=env)
    assert first.returncode == 0, first.stderr
    assert "configuration version 1 imported" in first.stdout
    again = run_cli("config", "import", env_extra=env)
    assert again.returncode == 0 and "already has an active configuration (version 1, the same files)" in again.stdout

    out = tmp_path / "exported"
    exported = run_cli("config", "export", str(out), env_extra=env)
    assert exported.returncode == 0, exported.stderr
    assert configstore.read_files(out / "field_catalog.yaml", out / "policies") == shipped_files()  # byte for byte

    # a change reviewed in git: --replace makes it the next version; a file the version lacks goes on export
    (out / "policies" / "tasks" / "move_in_report.yaml").write_text(
        (out / "policies" / "tasks" / "move_in_report.yaml").read_text(encoding="utf-8").replace(
            "      - citizen.sex\n", ""), encoding="utf-8")
    (out / "policies" / "tasks" / "vehicle_transfer.yaml").unlink()
    replaced = run_cli("config", "import", "--from", str(out), "--replace", env_extra=env)
    assert replaced.returncode == 0 and "version 2 imported" in replaced.stdout and "(was 1)" in replaced.stdout
    stale = tmp_path / "stale"
    shutil.copytree(ROOT / "policies", stale / "policies")
    assert run_cli("config", "export", str(stale), env_extra=env).returncode == 0
    assert not (stale / "policies" / "tasks" / "vehicle_transfer.yaml").exists()
    assert "citizen.sex" not in (stale / "policies" / "tasks" / "move_in_report.yaml").read_text(encoding="utf-8")
    listing = [line.split() for line in run_cli("config", "versions", env_extra=env).stdout.splitlines()]
    assert listing[0][:2] == ["2", "active"] and listing[1][0] == "1" and len(listing) == 2


def test_import_refuses_invalid_files_with_file_line_reason_and_writes_nothing(pg_config_url, data_dir, catalog_copy):
    store_call(pg_config_url, lambda s: s.create())  # the owner's `audit init` made the tables
    task = catalog_copy / "policies" / "tasks" / "move_in_report.yaml"
    task.write_text(task.read_text(encoding="utf-8").replace("      - citizen.sex\n", "      - citizen.nowhere\n"),
                    encoding="utf-8")
    env = {"ONESCREEN_DATA_DIR": str(data_dir), "ONESCREEN_CONFIG_URL": pg_config_url,
           "ONESCREEN_CATALOG": str(catalog_copy / "field_catalog.yaml"),
           "ONESCREEN_POLICIES": str(catalog_copy / "policies")}
    result = run_cli("config", "import", env_extra=env)
    assert result.returncode == 1
    line = task.read_text(encoding="utf-8").splitlines().index("      - citizen.nowhere") + 1
    assert f"{task}:{line}:" in result.stderr and "nothing imported" in result.stderr
    assert store_call(pg_config_url, lambda s: s.active_id()) is None


async def test_a_pod_refuses_to_start_on_an_empty_store_and_names_the_import_command(pg_config_url, make_app):
    with pytest.raises(configstore.NotStarted, match="onescreen config import"):
        make_app(ONESCREEN_CONFIG_URL=pg_config_url)


# ---------------------------------------------------------------- the admin screens write versions, not files


async def test_an_approved_change_becomes_the_active_version_and_no_file_is_written(
        pg_config_url, store_api, catalog_copy, data_dir):
    agreement = catalog_copy / "policies" / "agreements" / "mois-vehicle-transfer.yaml"  # MOIS shares the sex too
    agreement.write_text(agreement.read_text(encoding="utf-8").replace("fields:\n", "fields:\n  - citizen.sex\n"),
                         encoding="utf-8")
    seed(pg_config_url, configstore.read_files(catalog_copy / "field_catalog.yaml", catalog_copy / "policies"))
    before = tree_digest(catalog_copy)
    api = await store_api(pg_config_url)
    runtime = api.app.state.runtime
    assert runtime.snapshot.source.version == 1
    task = (catalog_copy / "policies" / "tasks" / "vehicle_transfer.yaml").read_text(encoding="utf-8")
    wider = task.replace("      - citizen.vehicles\n", "      - citizen.vehicles\n      - citizen.sex\n")
    _, body = await api.gql("oh.samu", TASK, {"c": "vehicle_transfer", "y": wider})
    change = body["data"]["proposeTask"]
    assert change["status"] == "pending"
    assert store_call(pg_config_url, lambda s: s.active_id()) == 1  # a proposal is no version
    _, body = await api.gql("kang.samu", APPROVE, {"id": change["id"]})
    assert body["data"]["approveChange"]["status"] == "applied"

    assert runtime.snapshot.source.version == 2 == store_call(pg_config_url, lambda s: s.active_id())
    version = store_call(pg_config_url, lambda s: s.get(2))
    assert version.source == f"change {change['id']}" and version.created_by == "kang.samu"
    assert version.files["policies/tasks/vehicle_transfer.yaml"] == wider
    rrn = citizens(data_dir, 1)[0]
    _, screen = await api.gql("choi.chaeryang", SCREEN, {"t": "vehicle_transfer", "s": rrn, "c": "V-1"})
    assert fields_of(screen["data"]["screen"])["citizen.sex"]["status"] == "OK"
    assert tree_digest(catalog_copy) == before  # the files only seeded the store
    text = (await api.client.get("/metrics")).text
    assert "onescreen_config_version 2.0" in text


async def test_two_approvals_against_one_version_activate_one_and_refuse_the_other(pg_config_url):
    """Two pods approve changes made against the same version at once: one becomes active; the other writes
    nothing (no version, its change still pending) and is told to look again."""
    base = seed(pg_config_url)

    async def race(store: configstore.ConfigStore):
        a = dict(base.files, **{"policies/tasks/move_in_report.yaml": "a"})
        b = dict(base.files, **{"policies/tasks/move_in_report.yaml": "b"})
        return await asyncio.gather(store.activate(a, base=base.id, by="a", source="a"),
                                    store.activate(b, base=base.id, by="b", source="b"), return_exceptions=True)

    results = store_call(pg_config_url, race)
    won = [r for r in results if isinstance(r, configstore.Version)]
    lost = [r for r in results if isinstance(r, configstore.VersionConflict)]
    assert len(won) == 1 and len(lost) == 1, results
    assert "changed since version 1" in lost[0].message
    assert store_call(pg_config_url, lambda s: s.active_id()) == won[0].id
    assert [v.id for v in store_call(pg_config_url, lambda s: s.history())] == [won[0].id, base.id]


# ---------------------------------------------------------------- every process follows the active version


async def test_a_refused_version_keeps_the_running_one_with_file_line_a_metric_and_readyz_200(
        pg_config_url, store_api, caplog):
    """Invariant 8 across pods: a version that fails validation never replaces the running one; it is logged
    (one JSON line: FILE:LINE: reason, the version), counted, and /readyz says so as a warning, still 200: a
    version every pod refuses must not take every pod out. The next good version is taken."""
    base = seed(pg_config_url)
    api = await store_api(pg_config_url)
    runtime = api.app.state.runtime
    follower = asyncio.ensure_future(runtime.watch_config())
    try:
        broken = dict(base.files)
        task = "policies/tasks/move_in_report.yaml"
        broken[task] = broken[task].replace("      - citizen.sex\n", "      - citizen.nowhere\n")
        line = broken[task].splitlines().index("      - citizen.nowhere") + 1
        with caplog.at_level(logging.ERROR, logger="onescreen.runtime"):
            store_call(pg_config_url, lambda s: s.activate(broken, base=base.id, by="someone", source="by hand"))
            await until(lambda: runtime.config_error is not None)
        assert runtime.snapshot.source.version == base.id and "citizen.sex" in \
            runtime.snapshot.policies.tasks["move_in_report"].fields
        record = next(r for r in caplog.records if r.name == "onescreen.runtime" and r.levelno == logging.ERROR)
        assert record.version == 2 and "version 2 refused" in record.getMessage()
        assert any(e.startswith(f"{task}:{line}: ") and "citizen.nowhere" in e for e in record.errors)
        from oneScreen.logs import JsonFormatter
        line_out = json.loads(JsonFormatter().format(record))
        assert line_out["version"] == 2 and any(f"{task}:{line}:" in e for e in line_out["errors"])
        r = await api.client.get("/readyz")
        assert r.status_code == 200 and r.json()["status"] == "ready" and r.json()["configVersion"] == base.id
        assert f"{task}:{line}:" in r.json()["warnings"][0] and r.json()["problems"] == []
        assert "onescreen_config_reload_failures_total 1.0" in (await api.client.get("/metrics")).text

        fixed = dict(base.files)
        fixed[task] = fixed[task].replace("      - citizen.sex\n", "")
        store_call(pg_config_url, lambda s: s.activate(fixed, base=2, by="someone", source="fixed"))
        await until(lambda: runtime.snapshot.source.version == 3)
        assert "citizen.sex" not in runtime.snapshot.policies.tasks["move_in_report"].fields
        r = await api.client.get("/readyz")
        assert r.json()["warnings"] == [] and r.json()["configVersion"] == 3
        assert "onescreen_config_reload_failures_total 1.0" in (await api.client.get("/metrics")).text
    finally:
        follower.cancel()


async def test_the_demo_keeps_its_versions_in_a_sqlite_store_found_by_the_periodic_look(store_api, tmp_path):
    """SQLite has no NOTIFY: the look every few seconds alone brings a new version."""
    url = f"sqlite:///{tmp_path / 'config.sqlite'}"
    base = seed(url)
    api = await store_api(url)
    runtime = api.app.state.runtime
    follower = asyncio.ensure_future(runtime.watch_config(interval=0.1))
    try:
        narrower = dict(base.files)
        narrower["policies/tasks/move_in_report.yaml"] = narrower["policies/tasks/move_in_report.yaml"].replace(
            "      - citizen.sex\n", "")
        store_call(url, lambda s: s.activate(narrower, base=base.id, by="x", source="x"))
        await until(lambda: runtime.snapshot.source.version == 2)
        assert "citizen.sex" not in runtime.snapshot.policies.tasks["move_in_report"].fields
    finally:
        follower.cancel()


async def test_a_version_this_pod_cannot_run_is_refused_before_it_becomes_active(pg_config_url, store_api,
                                                                                 catalog_copy):
    """The approving pod builds the whole snapshot (connectors too) before the version is activated: a new
    ledger whose DSN variable the pods lack is refused, and nothing is written."""
    seed(pg_config_url)
    api = await store_api(pg_config_url)
    runtime = api.app.state.runtime
    files = runtime.snapshot.source.files
    catalog = files["field_catalog.yaml"].replace(
        "dsn_env: ONESCREEN_DSN_NHIS, demo_file: nhis_eligibility.sqlite,", "dsn_env: ONESCREEN_DSN_NHIS_NEW,", 1)
    assert catalog != files["field_catalog.yaml"]
    from oneScreen.errors import ConfigErrors
    with pytest.raises(ConfigErrors) as refused:
        await runtime.activate([("field_catalog.yaml", files["field_catalog.yaml"], catalog)], by="x", source="x")
    assert str(refused.value).startswith("field_catalog.yaml: ledger nhis.eligibility: environment variable "
                                         "ONESCREEN_DSN_NHIS_NEW")
    assert store_call(pg_config_url, lambda s: s.active_id()) == 1 and runtime.snapshot.source.version == 1
    assert [v.id for v in store_call(pg_config_url, lambda s: s.history())] == [1]


async def test_an_apply_made_against_text_the_running_version_no_longer_has_writes_nothing(pg_config_url, store_api):
    """Between an approval's check and its activation the process may have switched to a version that changed
    the same file: the change is refused (no lost update), nothing is written."""
    seed(pg_config_url)
    api = await store_api(pg_config_url)
    runtime = api.app.state.runtime
    task = "policies/tasks/move_in_report.yaml"
    with pytest.raises(configstore.VersionConflict, match="move_in_report.yaml changed since"):
        await runtime.activate([(task, "what another version had", "new text")], by="x", source="x")
    assert [v.id for v in store_call(pg_config_url, lambda s: s.history())] == [1]
