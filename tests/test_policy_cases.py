"""Policies tested as data (invariant 1): every case of policies/tests/*.yaml is one test here, decided by the pure
policy.decide() over the shipped catalog and policies; the same cases run in `onescreen policy test`."""
from __future__ import annotations

from pathlib import Path

import pytest

from oneScreen import catalog as catalog_mod, cli, policy, policy_cases
from oneScreen.errors import ConfigErrors
from oneScreen.policy import Status, decide
from oneScreen.settings import ROOT

CAT = catalog_mod.load(ROOT / "field_catalog.yaml")
POL = policy.load(ROOT / "policies", CAT)
TESTS = ROOT / "policies" / policy_cases.DIRECTORY
try:
    CASES, PROBLEMS = policy_cases.load(TESTS, CAT, POL), []
except ConfigErrors as exc:  # reported by the first test below, not as a collection error
    CASES, PROBLEMS = [], [e.message for e in exc.errors]


def test_the_shipped_decision_tests_are_well_formed():
    assert not PROBLEMS, "\n".join(PROBLEMS)
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[f"{Path(c.file).name}:{c.line}" for c in CASES])
def test_the_shipped_policies_decide_as_their_tests_expect(case):
    failures = policy_cases.run(case, POL)
    assert not failures, f"{case.name}:\n" + "\n".join(map(str, failures))


def test_every_shipped_task_has_a_case_of_every_decision_it_can_make():
    """Allowed, denied (not in the set; roles not granted) for every task; masked, consent required and given,
    and jurisdiction for the tasks that have them."""
    assert policy_cases.uncovered(CASES, POL) == {}


def test_every_denial_in_the_decision_tests_says_why_in_both_languages():
    denials = [d for c in CASES for e in c.expect
               if (d := decide(c.caller, POL.tasks[c.task], e.field, c.subject)).status is Status.DENIED]
    assert denials and all(d.reason and d.reason_en and d.rule for d in denials)


def write(policies: Path, text: str, name: str = "extra.yaml") -> Path:
    path = policies / policy_cases.DIRECTORY / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD_CASE = """\
callers:
  vehicle: {user: choi.chaeryang, region: "11000", roles: [vehicle_registration_officer]}
cases:
  - name: the RRN is masked
    caller: vehicle
    task: vehicle_transfer
    expect:
      citizen.rrn: {status: MASKED, mask: rrn}
"""


@pytest.mark.parametrize("old,new,line,reason", [
    ("    caller: vehicle\n", "    caller: chauffeur\n", 5, "unknown caller 'chauffeur' (this file's callers: vehicle)"),
    ("    task: vehicle_transfer\n", "    task: yacht_transfer\n", 6, "unknown task 'yacht_transfer'"),
    ("roles: [vehicle_registration_officer]", "roles: [vehicle_officer]", 2,
     "unknown role 'vehicle_officer' (roles.yaml has no such role)"),
    ("      citizen.rrn:", "      citizen.yacht:", 8, "unknown field 'citizen.yacht'"),
    ("      citizen.rrn:", "      citizen.name > building.name:", 8, "'citizen.name' is not a link"),
    ("{status: MASKED, mask: rrn}", "{status: MASKED}", 8, "a MASKED expectation names its mask"),
    ("{status: MASKED, mask: rrn}", "{status: OK, mask: rrn}", 8, "'mask' belongs to a MASKED expectation, not to OK"),
    ("{status: MASKED, mask: rrn}", "{status: HIDDEN}", 8, "cases.0.expect.citizen.rrn.status: Input should be 'OK'"),
    ("{status: MASKED, mask: rrn}", "MASKED", 8, "cases.0.expect.citizen.rrn: Input should be a valid dictionary"),
    ("    task: vehicle_transfer\n", "    task: vehicle_transfer\n    subjet: {in_region: true}\n", 7,
     "cases.0.subjet: Extra inputs are not permitted"),
    ("      citizen.rrn: {status: MASKED, mask: rrn}\n",
     "      citizen.rrn: {status: MASKED, mask: rrn}\n      citizen.rrn: {status: OK}\n", 9,
     "duplicate key 'citizen.rrn'"),
    ("      citizen.rrn: {status: MASKED, mask: rrn}\n",
     "      citizen.rrn: {status: MASKED, mask: rrn}\n      \" citizen.rrn\": {status: OK}\n", 9,
     "field 'citizen.rrn' is expected twice in this case"),
    ("    expect:\n", "    expect: [\n", 9, "YAML syntax error"),
])
def test_a_malformed_decision_test_is_refused_with_file_line_and_reason(catalog_copy, old, new, line, reason):
    policies = catalog_copy / "policies"
    assert old in GOOD_CASE
    path = write(policies, GOOD_CASE.replace(old, new, 1))
    with pytest.raises(ConfigErrors) as exc:
        policy_cases.load(policies / policy_cases.DIRECTORY, CAT, POL)
    assert [(e.file, e.line) for e in exc.value.errors] == [(str(path), line)], exc.value
    assert reason in exc.value.errors[0].reason, exc.value.errors[0].message


def test_a_policies_directory_without_decision_tests_is_refused(tmp_path):
    with pytest.raises(ConfigErrors) as exc:
        policy_cases.load(tmp_path / "tests", CAT, POL)
    assert exc.value.errors[0].message == f"{tmp_path / 'tests'}: no decision test files (*.yaml) found"


@pytest.fixture
def policy_test(monkeypatch, capsys, tmp_path):
    """`onescreen policy test ARGS`: exit code, stdout lines, stderr lines."""
    import os
    for k in [k for k in os.environ if k.startswith("ONESCREEN_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("ONESCREEN_DATA_DIR", str(tmp_path / "data"))

    def run(*args: str) -> tuple[int, list[str], list[str]]:
        code = cli.main(["policy", "test", *args])
        out = capsys.readouterr()
        return code, out.out.splitlines(), out.err.splitlines()
    return run


def test_policy_test_passes_the_shipped_policies_with_a_count(policy_test):
    code, out, err = policy_test(str(ROOT / "policies"), "--catalog", str(ROOT / "field_catalog.yaml"))
    decisions = sum(len(c.expect) for c in CASES)
    assert (code, out, err) == (0, [f"OK ({len(CASES)} cases, {decisions} decisions, 6 files)"], [])


def test_policy_test_prints_each_failing_expectation_with_file_line_and_the_deciding_rule(policy_test, catalog_copy):
    policies = catalog_copy / "policies"
    path = write(policies, GOOD_CASE.replace("{status: MASKED, mask: rrn}", "{status: OK}") + (
        "      citizen.mobile_phone: {status: DENIED, rule: task roles}\n"
        "      citizen.vehicles: {status: OK}\n"
        "  - name: names are masked for housing\n"
        "    caller: {user: jung.jutaek, region: national, roles: [housing_supply_officer]}\n"
        "    task: housing_special_supply\n"
        "    expect:\n"
        "      citizen.family: {status: MASKED, mask: {name: name, birth_date: date_year}}\n"))
    code, out, err = policy_test(str(policies), "--catalog", str(catalog_copy / "field_catalog.yaml"))
    assert code == 1
    assert err == [f"{path}:8: expected OK, got MASKED with mask rrn (rule mask rrn)",
                   f"{path}:9: expected DENIED (rule task roles), got DENIED (rule not in the task's field set)",
                   f"{path}:15: expected MASKED with mask {{name: name, birth_date: date_year}}, got MASKED with "
                   "mask {name: name} (rule mask {'name': 'name'})"]
    assert out == [f"FAILED (3 of {sum(len(c.expect) for c in CASES) + 4} decisions, in 2 of {len(CASES) + 2} cases)"]


def test_policy_test_reports_malformed_files_and_tasks_no_case_covers(policy_test, catalog_copy):
    policies = catalog_copy / "policies"
    tests = policies / policy_cases.DIRECTORY
    bad = write(policies, GOOD_CASE.replace("caller: vehicle", "caller: nobody"))
    code, out, err = policy_test(str(policies), "--catalog", str(catalog_copy / "field_catalog.yaml"))
    assert (code, out, err) == (1, [], [f"{bad}:5: unknown caller 'nobody' (this file's callers: vehicle)"])

    bad.unlink()
    (tests / "vehicle_transfer.yaml").unlink()
    code, out, err = policy_test(str(policies), "--catalog", str(catalog_copy / "field_catalog.yaml"))
    task_file = policies / "tasks" / "vehicle_transfer.yaml"
    assert code == 0 and out[0].startswith("OK (")  # a warning does not fail the run
    assert err == [f"{task_file}: warning: no decision test of task vehicle_transfer shows: allowed, denied: not in "
                   "the task's field set, denied: task not granted to the caller's roles, masked"]
