"""The catalog and policy loaders: every bad file is refused with file, line and reason (invariant 8)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oneScreen import catalog, policy
from oneScreen.errors import ConfigError, ConfigErrors
from oneScreen.settings import ROOT


def errors_of(path: Path) -> list[ConfigError]:
    try:
        catalog.load(path)
    except ConfigErrors as exc:
        return exc.errors
    except ConfigError as exc:
        return [exc]
    return []


def line_of(path: Path, needle: str, nth: int = 1) -> int:
    hits = [i + 1 for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()) if needle in line]
    return hits[nth - 1]


def test_the_shipped_catalog_and_policies_are_valid():
    cat = catalog.load(ROOT / "field_catalog.yaml")
    pol = policy.load(ROOT / "policies", cat)
    assert len(cat.fields) >= 40
    assert len({l.connector["demo_file"] for l in cat.ledgers.values() if "demo_file" in l.connector}) == 6
    assert any(l.connector["kind"] == "rest" for l in cat.ledgers.values())
    assert len(pol.tasks) >= 5


def edit(catalog_copy: Path, old: str, new: str, count: int = 1) -> Path:
    path = catalog_copy / "field_catalog.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, count), encoding="utf-8")
    return path


@pytest.mark.parametrize("old,new,needle,reason", [
    ("  - {id: citizen.sex, ledger: mois.resident,", "  - {id: citizen.sex, ledger: mois.nowhere,",
     "id: citizen.sex", "unknown ledger 'mois.nowhere'"),
    ("  - {id: citizen.sex, ledger", "  - {id: citizen.name, ledger", "id: citizen.name, ledger", "duplicate field id 'citizen.name'"),
    ("column: mvin_de, type: date,", "column: mvin_de, type: datetime,", "column: mvin_de", "fields.6.type"),
    ("column: mgm_bldrgst_pk, target: building,", "column: mgm_bldrgst_pk, target: spaceship,", "target: spaceship",
     "unknown subject type 'spaceship'"),
    ("  - id: citizen\n", "  - id: screen\n", "id: screen", "name of a built-in query"),
    ("    agency: MOIS\n    name: 주민등록표\n", "    agency: MOJ\n    name: 주민등록표\n", "agency: MOJ", "unknown agency 'MOJ'"),
])
def test_catalog_errors_name_file_line_and_reason(catalog_copy, old, new, needle, reason):
    path = edit(catalog_copy, old, new)
    errs = errors_of(path)
    assert errs, "the broken catalog was accepted"
    expected_line = line_of(path, needle, 2 if "duplicate" in reason else 1)
    assert any(e.file == str(path) and e.line == expected_line and reason in e.reason for e in errs), \
        [e.message for e in errs]


def test_reserved_subject_ids_cover_every_built_in_query():
    """A subject type's typed root query sits beside the built-in ones: the reserved ids must name them all."""
    from oneScreen.graphql.schema import build_schema
    from oneScreen.graphql.typed import camel

    cat = catalog.load(ROOT / "field_catalog.yaml")
    roots = set(build_schema(cat)._schema.query_type.fields)
    typed_roots = {camel(s) for s in cat.subject_types}
    assert typed_roots <= roots
    assert roots - typed_roots == {camel(r) for r in catalog.RESERVED_SUBJECT_IDS}


def test_yaml_syntax_errors_name_their_line(catalog_copy):
    path = catalog_copy / "field_catalog.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[40] = lines[40] + " ]]: {"
    path.write_text("\n".join(lines), encoding="utf-8")
    errs = errors_of(path)
    assert len(errs) == 1 and "YAML syntax error" in errs[0].reason and errs[0].line in (41, 42)


def test_duplicate_yaml_keys_are_refused(catalog_copy):
    path = edit(catalog_copy, "    key_arg: rrn\n", "    key_arg: rrn\n    key_arg: id\n")
    errs = errors_of(path)
    assert errs and "duplicate key 'key_arg'" in errs[0].reason and errs[0].line == line_of(path, "key_arg: id")


def test_a_task_naming_a_field_the_catalog_lacks_is_refused_with_its_line(catalog_copy):
    task = catalog_copy / "policies" / "tasks" / "vehicle_transfer.yaml"
    task.write_text(task.read_text(encoding="utf-8").replace("      - citizen.vehicles", "      - citizen.yacht"),
                    encoding="utf-8")
    with pytest.raises(ConfigErrors) as exc:
        policy.load(catalog_copy / "policies", catalog.load(catalog_copy / "field_catalog.yaml"))
    [err] = exc.value.errors
    assert err.file == str(task) and err.line == line_of(task, "citizen.yacht") and "citizen.yacht" in err.reason


def test_a_path_through_a_non_link_is_refused(catalog_copy):
    task = catalog_copy / "policies" / "tasks" / "vehicle_transfer.yaml"
    task.write_text(task.read_text(encoding="utf-8").replace(
        "      - citizen.vehicles", "      - citizen.name > building.name"), encoding="utf-8")
    with pytest.raises(ConfigErrors) as exc:
        policy.load(catalog_copy / "policies", catalog.load(catalog_copy / "field_catalog.yaml"))
    assert "not a link" in exc.value.errors[0].reason


def run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONESCREEN_")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "oneScreen.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_catalog_validate_cli_prints_file_line_reason_and_exits_1(catalog_copy):
    path = edit(catalog_copy, "  - {id: citizen.sex, ledger: mois.resident,", "  - {id: citizen.sex, ledger: mois.nowhere,")
    result = run_cli("catalog", "validate", str(path))
    assert result.returncode == 1
    assert f"{path}:{line_of(path, 'id: citizen.sex')}: unknown ledger 'mois.nowhere'" in result.stderr
    ok = run_cli("catalog", "validate", str(ROOT / "field_catalog.yaml"))
    assert ok.returncode == 0, ok.stderr


def test_catalog_validate_check_sources_finds_a_missing_column(catalog_copy, data_dir):
    path = edit(catalog_copy, "column: mvin_de, type: date,", "column: mvin_date, type: date,")
    result = run_cli("catalog", "validate", str(path), "--check-sources",
                     env_extra={"ONESCREEN_DATA_DIR": str(data_dir)})
    assert result.returncode == 1
    assert f"{path}:{line_of(path, 'column: mvin_date')}: field citizen.move_in_date: column 'mvin_date' does not exist" \
        in result.stderr
    good = run_cli("catalog", "validate", "--check-sources", env_extra={"ONESCREEN_DATA_DIR": str(data_dir)})
    assert good.returncode == 0, good.stderr


def test_an_invalid_configuration_never_starts_the_server(catalog_copy, data_dir):
    path = edit(catalog_copy, "column: mgm_bldrgst_pk, target: building,", "column: mgm_bldrgst_pk, target: spaceship,")
    result = run_cli("serve", "--port", "1", env_extra={"ONESCREEN_DATA_DIR": str(data_dir),
                                                        "ONESCREEN_CATALOG": str(path)})
    assert result.returncode == 1
    (line,) = [json.loads(x) for x in result.stderr.splitlines()]  # a JSON log line, as every line of the service
    assert line["level"] == "ERROR" and line["msg"] == "configuration is invalid; not starting"
    assert any(e.startswith(f"{path}:{line_of(path, 'target: spaceship')}: ") for e in line["errors"]), line


def test_a_malformed_setting_is_one_clear_line_never_a_traceback(data_dir):
    """A setting the service cannot use stops `onescreen serve` with one JSON log line naming the variable and
    its value (a log collector drops plain text and tracebacks), and any other command with one plain line."""
    env = {"ONESCREEN_DATA_DIR": str(data_dir), "ONESCREEN_TRUSTED_PROXIES": "10.0.0.300"}
    served = run_cli("serve", "--port", "1", env_extra=env)
    assert served.returncode == 1 and "Traceback" not in served.stderr
    (line,) = [json.loads(x) for x in served.stderr.splitlines()]
    assert line["level"] == "ERROR" and line["outcome"] == "refused"
    assert "ONESCREEN_TRUSTED_PROXIES: '10.0.0.300' is not an IP address" in line["msg"]
    tool = run_cli("catalog", "validate", env_extra=env)
    assert tool.returncode == 1
    assert tool.stderr.splitlines() == ["onescreen: ONESCREEN_TRUSTED_PROXIES: '10.0.0.300' is not an IP address or "
                                        "network (e.g. 10.0.0.0/8)"]


def test_json_schema_comes_from_the_loader_models():
    schema = catalog.json_schema()
    assert set(schema["required"]) >= {"version", "agencies", "ledgers", "fields"}
    assert "FieldSpec" in schema["$defs"]


def test_yaml_loader_gives_what_safe_load_gives_and_lines_on_demand(tmp_path):
    """The fast builder (plain strings, maps, lists) must agree with PyYAML for every other kind of node."""
    import yaml

    from oneScreen import yamlfile

    text = ("base: &b {cache_ttl: 30, rows: one}\n"
            "ledgers:\n"
            "  - <<: *b\n"
            "    id: x.y\n"
            "    on: yes\n"
            "    since: 2024-01-31\n"
            "    ratio: 0.5\n"
            "    missing: null\n"
            "    7: seven\n"
            "    list: [1, '2', ~]\n")
    path = tmp_path / "f.yaml"
    path.write_text(text, encoding="utf-8")
    data, lines = yamlfile.load(path)
    assert data == yaml.safe_load(text)
    assert yamlfile.line_of(lines, ("ledgers", 0, "since")) == 6
    assert yamlfile.line_of(lines, ("ledgers", 0, "list", 2)) == 10

    path.write_text(text + "    id: again\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        yamlfile.load(path)
    assert err.value.line == 11 and "duplicate key 'id'" in err.value.reason


def test_an_identifier_typed_as_a_number_is_warned_of_with_file_and_line_but_loads(catalog_copy):
    """A 22-digit building key mapped as `type: integer` cannot be shown exactly: `catalog validate` (and the
    policy lint) warn at its line that identifiers are strings; the catalog still loads."""
    path = edit(catalog_copy, "column: mgmBldrgstPk, type: string,", "column: mgmBldrgstPk, type: integer,")
    path = edit(catalog_copy, "      - {name: share, column: share, label: 지분, label_en: Share}\n",
                "      - {name: share, column: share_no, type: number, label: 지분, label_en: Share}\n")
    cat = catalog.load(path)
    where = [(w.line, w.reason.split(",")[0]) for w in cat.warnings]
    assert where == [
        (line_of(path, "id: building.register_id"), "field 'building.register_id' reads column 'mgmBldrgstPk'"),
        (line_of(path, "column: share_no"), "field 'building.owners' reads column 'share_no'")]
    assert all("type: string" in w.reason for w in cat.warnings)
    result = run_cli("catalog", "validate", str(path))
    assert result.returncode == 0, result.stderr
    assert f"{path}:{line_of(path, 'id: building.register_id')}: warning: field 'building.register_id'" in result.stdout
    from oneScreen import lint
    findings = [str(f) for f in lint.lint(cat, policy.load(catalog_copy / "policies", cat)) if not f.error]
    assert any("mgmBldrgstPk" in f and f.startswith(f"{path}:") for f in findings)
    assert catalog.load(ROOT / "field_catalog.yaml").warnings == ()
