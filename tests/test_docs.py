"""The repository stands on its own, and docs/ARCHITECTURE.md stays true to the code.

A clone has nothing beside it: no document or code may send a reader (or an import) to ../shared, except the
benchmarks' optional external peers. ARCHITECTURE.md names every module of the service, and every code name it
gives (`policy.decide`, `gateway.Gateway.run`, ...) still exists: a rename that forgets the document fails here.
"""
from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path

from oneScreen.settings import ROOT

ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
# where ../shared may be named: the benchmarks' optional peers A and C (peer-bench), used when present; and this test
MAY_NAME_SHARED = {"BENCHMARKS.md", "bench/peers.py", "bench/servers.py", "tests/test_docs.py"}


def repository_files() -> list[Path]:
    try:
        names = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True,
                               timeout=30).stdout.splitlines()
        files = [ROOT / n for n in names]
    except (OSError, subprocess.SubprocessError):  # not a git checkout (an unpacked source tree)
        files = [p for p in ROOT.rglob("*") if p.is_file() and not {".git", ".venv"} & set(p.relative_to(ROOT).parts)]
    return [f for f in files if f.is_file() and "vendor" not in f.parts]


def test_nothing_in_the_repository_needs_what_a_clone_lacks():
    named = {}
    for f in repository_files():
        try:
            text = f.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if re.search(r"\.\./shared\b|/work/shared|\bshared/(?:DESIGN|CONVENTIONS)\.md|\b(?:DESIGN|CONVENTIONS)\.md",
                     text):
            named[str(f.relative_to(ROOT))] = True
    assert set(named) <= MAY_NAME_SHARED, sorted(set(named) - MAY_NAME_SHARED)


def test_readme_and_operations_link_the_architecture():
    assert "](docs/ARCHITECTURE.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](ARCHITECTURE.md)" in (ROOT / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")


def test_the_architecture_names_every_module_of_the_service():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    modules = [p for p in (ROOT / "oneScreen").rglob("*.py") if p.name != "__init__.py" and "static" not in p.parts]
    missing = [str(p.relative_to(ROOT)) for p in modules if p.name not in text]
    assert missing == []
    for d in ("connectors", "bench", "tools", "frontend", "policies", "schemas", "deploy"):
        assert f"\n{d}/" in text, d


CLASSES = {"Runtime": "oneScreen.runtime", "Snapshot": "oneScreen.runtime", "App": "oneScreen.app",
           "Door": "oneScreen.disclose", "Batcher": "oneScreen.batch", "Schema": "oneScreen.graphql.schema"}


def resolve(name: str) -> bool:
    """Whether a dotted code name of the document exists: `policy.decide`, `graphql.schema.Schema.run`,
    `Runtime.identify`, `connectors/base.SourceSpec`, ..."""
    parts = name.replace("/", ".").split(".")
    if parts[0] in CLASSES:
        obj, rest = importlib.import_module(CLASSES[parts[0]]), parts
    else:
        for package in ("oneScreen", ""):
            for cut in range(len(parts), 0, -1):
                module = ".".join(([package] if package else []) + parts[:cut])
                try:
                    obj, rest = importlib.import_module(module), parts[cut:]
                    break
                except ImportError:
                    continue
            else:
                continue
            break
        else:
            return False
    for attr in rest:
        if not hasattr(obj, attr):
            return False
        obj = getattr(obj, attr)
    return True


def test_every_code_name_the_architecture_gives_exists():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    names = set(re.findall(r"`([A-Za-z_][\w/]*(?:\.[A-Za-z_]\w*)+)(?:\(\))?`", text))
    names |= set(re.findall(r"^\s*(?:-> \w+\s+|\w+\s{2,})([A-Za-z_][\w.]*\.[A-Za-z_]\w*)", text, re.M))
    not_code = ("citizen.", "building.", "parcel.", "household.", "extensions.")  # catalog ids, GraphQL keys
    checked = [n for n in names if not n.endswith((".py", ".md", ".yaml", ".js")) and not n.startswith(not_code)]
    assert len(checked) > 20
    unknown = sorted(n for n in checked if not resolve(n))
    assert unknown == []


def _sample(monkeypatch, capsys, data_dir: Path, *args: str) -> list[str]:
    from conftest import env_for
    from oneScreen import cli

    for k, v in env_for(data_dir).items():
        monkeypatch.setenv(k, v)
    capsys.readouterr()
    assert cli.main(["demo", "sample", *args, "--json"]) == 0
    import json
    return json.loads(capsys.readouterr().out)


def test_demo_sample_for_a_user_gives_subjects_of_the_users_district(monkeypatch, capsys, data_dir):
    """`demo sample --for-user lee.bokji` gives 강남구 (11680) residents only: the ones basic_livelihood, limited
    to the caseworker's district, can read (the old command had no --for-user and gave the first rows)."""
    from conftest import sample

    for user, region in (("lee.bokji", "11680"), ("kim.jumin", "11110")):
        keys = _sample(monkeypatch, capsys, data_dir, "--type", "citizen", "--limit", "5", "--for-user", user)
        assert len(keys) == 5
        codes = {r[0] for r in sample(data_dir, "mois_resident:SELECT legal_dong_cd FROM resident WHERE rrn IN "
                                                f"({','.join('?' * len(keys))})", *keys)}
        assert codes and all(c.startswith(region) for c in codes), codes
    buildings = _sample(monkeypatch, capsys, data_dir, "--type", "building", "--limit", "3", "--for-user", "park.geonchuk")
    assert {r[0] for r in sample(data_dir, "molit_building:SELECT sigunguCd FROM bldg_title WHERE mgmBldrgstPk IN "
                                           f"({','.join('?' * len(buildings))})", *buildings)} == {"11440"}


def test_every_subject_the_readme_names_exists_in_its_users_district(monkeypatch, capsys, data_dir):
    """Each RRN in README.md is what `demo sample --for-user U` gives for the user its example signs in as (the
    README says which, on the sample line): it exists in the demo data and in the user's district."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    samples = re.findall(r"demo sample --type citizen (?:--limit 1 )?--for-user ([\w.]+)\s*# (\d{6}-\d{7})", readme)
    assert samples, "README's examples take their subjects from `demo sample --for-user`"
    for user, rrn in samples:
        assert rrn in _sample(monkeypatch, capsys, data_dir, "--type", "citizen", "--limit", "1", "--for-user", user)
    named = set(re.findall(r"(?<!\d)\d{6}-[1-8]\d{6}(?!\d)", readme)) - {"900101-1234567"}  # the format's example
    assert named == {rrn for _, rrn in samples}, named
