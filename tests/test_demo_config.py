"""The demo's configuration is its own copy in the data directory: a demo admin's approved change never rewrites
the repository's field_catalog.yaml or policies/ (the shipped files); only `onescreen config export` does."""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import env_for
from oneScreen import cli
from oneScreen.demo import config as demo_config
from oneScreen.settings import ROOT, SHIPPED_CATALOG, SHIPPED_POLICIES, load as load_settings
from test_admin import APPROVE, TASK
from test_screen import SCREEN, citizens, fields_of


def shipped_bytes() -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in [SHIPPED_CATALOG, *sorted(SHIPPED_POLICIES.rglob("*"))] if p.is_file()}


@pytest.fixture
def shipped_guard():
    """The shipped files' bytes before the test; put back (and the test failed) if the test changed them."""
    before = shipped_bytes()
    yield before
    after = shipped_bytes()
    if after != before:
        for p in set(after) - set(before):
            p.unlink()
        for p, data in before.items():
            p.write_bytes(data)
        changed = sorted(str(p) for p in set(before) | set(after) if before.get(p) != after.get(p))
        pytest.fail(f"the test changed the shipped files (now put back): {changed}")


async def test_a_demo_approval_changes_the_demo_copy_and_never_the_shipped_files(api, data_dir, shipped_guard):
    active = api.app.state.runtime.settings.policies_dir / "tasks" / "move_in_report.yaml"  # what the demo runs
    text = active.read_text(encoding="utf-8")
    assert text == (SHIPPED_POLICIES / "tasks" / "move_in_report.yaml").read_text(encoding="utf-8")  # a copy
    draft = text.replace("      - citizen.birth_date\n",
                         "      - citizen.birth_date\n      - citizen.vehicle_plate_numbers\n", 1)
    assert draft != text
    _, body = await api.gql("oh.samu", TASK, {"c": "move_in_report", "y": draft})
    proposal = body["data"]["proposeTask"]
    assert proposal["status"] == "pending", body
    _, body = await api.gql("kang.samu", APPROVE, {"id": proposal["id"]})
    assert body["data"]["approveChange"]["status"] == "applied", body

    rrn = citizens(data_dir, 1)[0]
    _, screen = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "A-1"})
    assert "citizen.vehicle_plate_numbers" in fields_of(screen["data"]["screen"])  # served at once
    assert active.read_text(encoding="utf-8") == draft  # written to the demo's copy
    assert shipped_bytes() == shipped_guard  # and not to the repository's files
    assert active.is_relative_to(data_dir / "config")
    if shutil.which("git") and (ROOT / ".git").exists():
        status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "field_catalog.yaml",
                                 "policies"], capture_output=True, text=True, check=True).stdout
        assert status == ""


def demo_settings(data_dir: Path, shipped: Path, **env: str):
    """Demo settings whose shipped files are a copy in `shipped` (so a test may change them)."""
    shipped.mkdir()
    shutil.copy(SHIPPED_CATALOG, shipped / "field_catalog.yaml")
    shutil.copytree(SHIPPED_POLICIES, shipped / "policies")
    return dataclasses.replace(load_settings(env_for(data_dir, **env)), shipped_catalog=shipped / "field_catalog.yaml",
                               shipped_policies=shipped / "policies")


def test_the_demo_copy_follows_the_shipped_files_until_it_is_edited(data_dir, tmp_path):
    s = demo_settings(data_dir, tmp_path / "shipped")
    roles = s.policies_dir / "roles.yaml"
    assert not roles.exists()
    assert demo_config.ensure(s) and roles.read_bytes() == (s.shipped_policies / "roles.yaml").read_bytes()
    assert demo_config.ensure(s) == []  # nothing changed: nothing to do

    (s.shipped_policies / "roles.yaml").write_text(roles.read_text(encoding="utf-8") + "# shipped later\n")
    demo_config.ensure(s)  # never edited: it follows the shipped files (a `git pull` reaches the demo)
    assert roles.read_text(encoding="utf-8").endswith("# shipped later\n")

    roles.write_text(roles.read_text(encoding="utf-8") + "# the demo's edit\n")
    (s.shipped_policies / "roles.yaml").write_text("roles: []\n# shipped even later\n")
    [said] = demo_config.ensure(s)
    assert "was edited: the edited copy is kept" in said and "onescreen config reset" in said
    assert roles.read_text(encoding="utf-8").endswith("# the demo's edit\n")  # the demo's edit is not lost

    demo_config.reset(s)
    assert roles.read_text(encoding="utf-8") == "roles: []\n# shipped even later\n"


def test_config_export_is_the_one_way_to_the_shipped_files(data_dir, tmp_path, monkeypatch, capsys):
    s = demo_settings(data_dir, tmp_path / "shipped")
    demo_config.ensure(s)
    task = s.policies_dir / "tasks" / "move_in_report.yaml"
    task.write_text(task.read_text(encoding="utf-8").replace("name_en: ", "name_en: Exported ", 1), encoding="utf-8")
    (s.policies_dir / "tasks" / "vehicle_transfer.yaml").unlink()  # e.g. a restored "create task" change
    written = demo_config.export(s, s.shipped_catalog, s.shipped_policies)
    assert sorted(p.name for p in written) == ["move_in_report.yaml", "vehicle_transfer.yaml"]
    assert (s.shipped_policies / "tasks" / "move_in_report.yaml").read_bytes() == task.read_bytes()
    assert not (s.shipped_policies / "tasks" / "vehicle_transfer.yaml").exists()
    assert demo_config.export(s, s.shipped_catalog, s.shipped_policies) == []  # in step

    for k, v in env_for(data_dir).items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "out"
    assert cli.main(["config", "export", "--to", str(out)]) == 0  # the demo's copy (a fresh one of the real files)
    assert (out / "field_catalog.yaml").read_bytes() == SHIPPED_CATALOG.read_bytes()
    assert "wrote" in capsys.readouterr().out


async def test_explicit_catalog_and_policies_are_used_as_they_are(make_app, data_dir, catalog_copy):
    app = make_app(ONESCREEN_CATALOG=str(catalog_copy / "field_catalog.yaml"),
                   ONESCREEN_POLICIES=str(catalog_copy / "policies"))
    try:
        s = app.state.runtime.settings
        assert (s.catalog_path, s.policies_dir) == (catalog_copy / "field_catalog.yaml", catalog_copy / "policies")
        assert not (data_dir / "config").exists() and demo_config.parts(s) == []
    finally:
        await app.state.runtime.close()
