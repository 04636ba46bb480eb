"""`onescreen policy lint`: one treatment per kind of personal data within a task, a legal basis for every
field, a warning for catalog fields no task shows; each finding `FILE:LINE: reason`; run on proposals.

Pins invariant 6 (masked values never leave unmasked) at the level of a task's configuration: a value masked
in one field must not be shown in full by another field of the same task.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from oneScreen import catalog as catalog_mod, policy as policy_mod
from oneScreen.errors import ConfigErrors
from oneScreen.lint import lint, lint_files
from oneScreen.settings import ROOT
from test_admin import TASK, admin_api  # noqa: F401 - the fixture
from test_catalog import line_of, run_cli


def findings(config: Path) -> list[str]:
    return [str(f) for f in lint_files(config / "field_catalog.yaml", config / "policies")]


def errors(config: Path) -> list[str]:
    return [str(f) for f in lint_files(config / "field_catalog.yaml", config / "policies") if f.error]


def task_file(config: Path, code: str) -> Path:
    return config / "policies" / "tasks" / f"{code}.yaml"


def replace(path: Path, old: str, new: str) -> Path:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_the_shipped_policies_lint_clean():
    """CI: the shipped catalog and policies have no lint error (warnings name catalog fields no task shows)."""
    result = run_cli("policy", "lint")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK (") and " 0 errors" in result.stdout
    assert all(": warning: " in line for line in result.stderr.splitlines()), result.stderr


def test_a_name_masked_in_one_table_and_shown_in_another_is_an_error(catalog_copy):
    """The issue's case: housing_special_supply masked family members' names but showed household members'
    names in full; the finding points at the line that shows them, and names the line that masks them."""
    path = replace(task_file(catalog_copy, "housing_special_supply"),
                   "      - field: citizen.household > household.members\n        mask: {name: name}\n",
                   "      - citizen.household > household.members\n")
    shown, masked = line_of(path, "citizen.household > household.members"), line_of(path, "field: citizen.name")
    assert errors(catalog_copy) == [
        f"{path}:{shown}: task housing_special_supply: names are shown in full here "
        f"(citizen.household>household.members, column name) but masked with 'name' at line {masked} "
        "(citizen.name): within a task one kind of personal data gets one treatment in every field and record "
        "column that carries it"]
    result = run_cli("policy", "lint", str(catalog_copy / "policies"), "--catalog",
                     str(catalog_copy / "field_catalog.yaml"))
    assert result.returncode == 1 and f"{path}:{shown}: task housing_special_supply: names are shown" in result.stderr
    assert result.stdout.startswith("FAILED (")


def test_a_scalar_field_and_a_record_column_of_one_kind_are_held_together(catalog_copy):
    """Birth dates: citizen.birth_date (a field) in full, the family's birth dates (a record column) masked."""
    path = replace(task_file(catalog_copy, "housing_special_supply"),
                   "      - field: citizen.family\n        mask: {name: name}\n",
                   "      - field: citizen.family\n        mask: {name: name, birth_date: date_year}\n")
    scalar, record = errors(catalog_copy)  # citizen.birth_date, and the household members' column
    assert scalar.startswith(f"{path}:{line_of(path, '- citizen.birth_date')}: task housing_special_supply: birth "
                             "dates are shown in full here (citizen.birth_date) but masked with 'date_year' at line "
                             f"{line_of(path, 'field: citizen.family')} (citizen.family, column birth_date)")
    assert record.startswith(f"{path}:{line_of(path, 'citizen.household > household.members')}: task "
                             "housing_special_supply: birth dates are shown in full here "
                             "(citizen.household>household.members, column birth_date)")


def test_a_mask_that_does_not_fit_the_kind_of_data_is_an_error(catalog_copy):
    path = replace(task_file(catalog_copy, "housing_special_supply"),
                   "      - field: citizen.family\n        mask: {name: name}\n",
                   "      - field: citizen.family\n        mask: {name: phone}\n")
    found = errors(catalog_copy)
    line = line_of(path, "field: citizen.family")
    assert (f"{path}:{line}: task housing_special_supply: names are masked with 'phone' here (citizen.family, "
            "column name); the strategy for them is 'name'") in found


def test_a_sensitive_field_shown_in_full_needs_a_legal_basis_of_its_own(catalog_copy):
    """Every field has a legal basis: the task's for personal data; sensitive data and unique identifiers shown
    in full name their own (full_value_basis), or are consent-gated, or masked."""
    path = replace(task_file(catalog_copy, "basic_livelihood"),
                   "      - field: citizen.family\n        full_value_basis: 국민기초생활 보장법 제22조제1항(부양의무자의 조사)\n",
                   "      - citizen.family\n")
    assert errors(catalog_copy) == [
        f"{path}:{line_of(path, '- citizen.family')}: task basic_livelihood: citizen.family is sensitive data shown "
        "in full without a legal basis of its own: name the provision with full_value_basis, mask it, or gate it "
        "on the subject's consent"]
    replace(path, "      - citizen.family\n", "      - field: citizen.family\n        consent: true\n")
    assert errors(catalog_copy) == []  # consent is a legal basis too
    replace(path, "legal_basis: 국민기초생활 보장법 제21조(급여의 신청), 제22조(신청에 의한 조사)\n", 'legal_basis: " "\n')
    replace(path, "        full_value_basis: 국민기초생활 보장법 시행령 제41조(고유식별정보의 처리)\n",
            '        full_value_basis: ""\n')
    assert errors(catalog_copy) == [
        f"{path}:{line_of(path, 'legal_basis: ')}: task basic_livelihood: the task names no legal basis: every "
        "field it shows needs one",
        f"{path}:{line_of(path, 'field: citizen.rrn')}: task basic_livelihood: citizen.rrn: full_value_basis is "
        "empty; name the provision that grants the full value"]


def test_catalog_fields_no_task_shows_are_warnings(catalog_copy):
    cat = catalog_copy / "field_catalog.yaml"
    warning = (f"{cat}:{line_of(cat, 'id: citizen.dependant_count')}: warning: field citizen.dependant_count: "
               "no task's section shows it (add it to a task, or retire it)")
    assert warning in findings(catalog_copy)
    assert not any("citizen.legal_dong_code" in f or "building.sigungu_code" in f for f in findings(catalog_copy))
    replace(task_file(catalog_copy, "basic_livelihood"), "      - field: citizen.monthly_premium\n",
            "      - field: citizen.dependant_count\n        consent: true\n      - field: citizen.monthly_premium\n")
    assert not any("citizen.dependant_count: no task's section shows it" in f for f in findings(catalog_copy))


@pytest.mark.parametrize("old,new,reason", [
    ("label_en: Mobile phone, personal_data: phone}",
     "label_en: Mobile phone, personal_data: phone, person: {column: rrn, subject: citizen}}",
     "field 'citizen.mobile_phone': only a record field's rows are about persons of their own"),
    ("    person: {column: rel_rrn, subject: citizen}\n", "    person: {column: rel_rrn, subject: resident}\n",
     "field 'citizen.family': unknown subject type 'resident' (known: building, citizen, household, parcel)"),
    ("    person: {column: rel_rrn, subject: citizen}\n", "    person: {subject: citizen}\n",
     "person.column: Field required"),
])
def test_a_record_field_names_whom_its_rows_are_about_with_a_column_and_a_subject_type(catalog_copy, old, new,
                                                                                      reason):
    """`person:` (the column read so that each person shown gets their own audit record and receipt) is refused
    where it cannot mean that, at its file and line."""
    path = replace(catalog_copy / "field_catalog.yaml", old, new)
    with pytest.raises(ConfigErrors) as exc:
        catalog_mod.load(path)
    [error] = exc.value.errors
    assert reason in error.reason and error.file == str(path) and error.line is not None, error




@pytest.mark.parametrize("old,new,reason", [
    ("label_en: Mobile phone, personal_data: phone}", "label_en: Mobile phone, personal_data: email}",
     "personal_data: Input should be 'name', 'rrn', 'address', 'phone' or 'birth_date'"),
    ("    type: record\n    sensitivity: sensitive\n    label: 가족관계\n",
     "    type: record\n    sensitivity: sensitive\n    personal_data: name\n    label: 가족관계\n",
     "carries personal data per column"),
    ("column: owner_name, type: string, sensitivity: personal,",
     "column: owner_name, type: string, sensitivity: public,",
     "carries personal data (name), so its sensitivity cannot be 'public'"),
])
def test_the_catalog_says_which_kind_of_personal_data_a_field_carries(catalog_copy, old, new, reason):
    path = replace(catalog_copy / "field_catalog.yaml", old, new)
    with pytest.raises(ConfigErrors) as exc:
        catalog_mod.load(path)
    [error] = exc.value.errors
    assert reason in error.reason and error.file == str(path) and error.line is not None


async def test_a_proposed_change_with_lint_errors_is_refused_with_the_findings(admin_api, catalog_copy):  # noqa: F811
    """Every proposed change is linted: the issue's inconsistency, proposed as a task edit, is refused with
    its finding (FILE:LINE: reason, naming the real file) and nothing is stored or written."""
    api = await admin_api()
    path = task_file(catalog_copy, "housing_special_supply")
    before = path.read_bytes()
    draft = before.decode().replace(
        "      - field: citizen.household > household.members\n        mask: {name: name}\n",
        "      - citizen.household > household.members\n")
    _, body = await api.gql("oh.samu", TASK, {"c": "housing_special_supply", "y": draft})
    error = body["errors"][0]
    assert error["extensions"]["code"] == "CHANGE_INVALID"
    assert f"{path}:{line_of(path, 'field: citizen.household > household.members')}: task housing_special_supply: " \
           "names are shown in full here" in error["message"]
    assert path.read_bytes() == before
    assert await api.app.state.runtime.admin.store.list() == []
    # the same edit that keeps the names masked is a narrowing-or-neutral change: it applies
    fine = before.decode().replace("      - citizen.move_in_date\n", "")
    _, body = await api.gql("oh.samu", TASK, {"c": "housing_special_supply", "y": fine})
    assert body["data"]["proposeTask"]["status"] == "applied", body


def lint_on(config: Path, day: dt.date) -> list[str]:
    cat = catalog_mod.load(config / "field_catalog.yaml")
    return [str(f) for f in lint(cat, policy_mod.load(config / "policies", cat), day)]


def test_a_task_field_no_agreement_in_force_covers_is_a_warning_with_file_and_line(catalog_copy):
    """A field a task requires that no sharing agreement in force covers would always be DENIED; the region an
    own_region task's jurisdiction check reads, uncovered, refuses every subject to a district caseworker: both
    are warnings at the task's line, on the day the lint judges (an agreement that has ended counts as none)."""
    day = dt.date(2026, 6, 1)
    assert not any("sharing agreement in force" in f for f in lint_on(catalog_copy, day))
    agreements = catalog_copy / "policies" / "agreements"
    replace(agreements / "mois-move-in-report.yaml", "  - citizen.sex\n", "")
    replace(agreements / "mois-basic-livelihood.yaml", "  - citizen.legal_dong_code\n", "")
    move_in, livelihood = task_file(catalog_copy, "move_in_report"), task_file(catalog_copy, "basic_livelihood")
    found = lint_on(catalog_copy, day)
    assert [f for f in found if "sharing agreement in force" in f] == [
        f"{livelihood}:{line_of(livelihood, 'jurisdiction: own_region')}: warning: task basic_livelihood: the "
        "jurisdiction check reads citizen.legal_dong_code, which no sharing agreement in force on 2026-06-01 covers "
        "for this task: every caseworker of a district is refused every subject",
        f"{move_in}:{line_of(move_in, '- citizen.sex')}: warning: task move_in_report: citizen.sex is always DENIED: "
        "no sharing agreement in force on 2026-06-01 covers citizen.sex for this task"]
    # the day after the agreement's last: every field of its task is warned of
    after = lint_on(catalog_copy, dt.date(2037, 1, 1))
    assert sum("task vehicle_transfer: " in f and "is always DENIED" in f for f in after) == len(
        policy_mod.load(catalog_copy / "policies", catalog_mod.load(catalog_copy / "field_catalog.yaml"))
        .tasks["vehicle_transfer"].fields)


def test_an_agreements_directory_of_one_file_warns_that_deleting_it_turns_enforcement_off(catalog_copy):
    """Deleting the last agreement file turns enforcement off (no directory: not enforced): the lint says so
    while one file is left, in `onescreen policy lint`'s output, and not while there are more."""
    agreements = catalog_copy / "policies" / "agreements"
    assert not any("turn agreement enforcement off" in f for f in lint_on(catalog_copy, dt.date(2026, 6, 1)))
    for p in agreements.glob("*.yaml"):
        if p.name != "mois-move-in-report.yaml":
            p.unlink()
    last = agreements / "mois-move-in-report.yaml"
    warning = (f"{last}:{line_of(last, 'id: mois-move-in-report')}: warning: agreement mois-move-in-report is the "
               "only agreement file: deleting it would turn agreement enforcement off (every field of every task "
               "open to its roles); revoke it with `revoked: DAY` instead")
    assert warning in lint_on(catalog_copy, dt.date(2026, 6, 1))
    result = run_cli("policy", "lint", env_extra={"ONESCREEN_CATALOG": str(catalog_copy / "field_catalog.yaml"),
                                                  "ONESCREEN_POLICIES": str(catalog_copy / "policies")})
    assert result.returncode == 0, result.stderr  # warnings: the lint passes, and says so
    assert warning in result.stderr.splitlines()
