"""Task configurers onboard tasks from the ministry's spreadsheet (.xlsx, .csv) and auditors ask catalog-wide
questions: through the real CLI, real files written by openpyxl and the csv module, and the real change path."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pytest

from test_catalog import run_cli

HEADERS = ["사무코드", "사무명", "사무명(영문)", "근거 법령", "근거 법령(영문)", "대상 유형", "담당 역할", "관할",
           "접수번호 예시", "요청당 대상 수", "구역", "구역(영문)", "필요 정보 항목", "마스킹", "전체값 근거", "동의 필요"]


@pytest.fixture
def env(catalog_copy, data_dir):
    return {"ONESCREEN_DATA_DIR": str(data_dir), "ONESCREEN_CATALOG": str(catalog_copy / "field_catalog.yaml"),
            "ONESCREEN_POLICIES": str(catalog_copy / "policies")}


def task_files(catalog_copy: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((catalog_copy / "policies" / "tasks").glob("*.yaml"))}


def write_xlsx(path: Path, rows: list[list[object]], headers: list[str] = HEADERS) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "사무"
    ws.append(headers)
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


def row(**values: object) -> list[object]:
    keys = ["code", "name", "name_en", "basis", "basis_en", "subject", "roles", "jurisdiction", "case_ref", "per",
            "section", "section_en", "fields", "mask", "full", "consent"]
    return [values.get(k) for k in keys]


PENSION = dict(code="pension_check", name="연금 수급 확인", name_en="Pension eligibility check",
               basis="국민연금법 제61조(노령연금 수급권자)", basis_en="National Pension Act, Article 61",
               subject="국민", roles="사회복지 담당 공무원", section="신청인", section_en="Applicant")


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_the_demo_tasks_round_trip_through_the_spreadsheet_unchanged(env, catalog_copy, tmp_path, suffix):
    before = task_files(catalog_copy)
    sheet = tmp_path / f"tasks{suffix}"
    exported = run_cli("task", "export", str(sheet), env_extra=env)
    assert exported.returncode == 0, exported.stderr
    assert f"{len(before)} tasks" in exported.stdout
    if suffix == ".xlsx":
        ws = openpyxl.load_workbook(sheet)["사무"]
        assert [c.value for c in ws[1]] == HEADERS
        codes = {r[0] for r in ws.iter_rows(min_row=2, values_only=True)}
    else:
        codes = {r["사무코드"] for r in csv.DictReader(io.StringIO(sheet.read_text(encoding="utf-8-sig")))}
    assert codes == {p.removesuffix(".yaml") for p in before}

    dry = run_cli("task", "import", "--dry-run", str(sheet), env_extra=env)
    assert dry.returncode == 0, dry.stderr
    assert f"0 new, 0 changed, 0 removed, {len(before)} unchanged" in dry.stdout
    real = run_cli("task", "import", str(sheet), "--user", "oh.samu", env_extra=env)
    assert real.returncode == 0, real.stderr
    assert "nothing to change" in real.stdout
    assert task_files(catalog_copy) == before  # byte for byte: comments and all
    listed = run_cli("changes", "list", "--user", "kang.samu", env_extra=env)
    assert listed.stdout.strip() == ""  # no proposal was made


def test_every_problem_of_a_spreadsheet_is_listed_by_row_and_column_and_nothing_is_proposed(env, catalog_copy,
                                                                                            tmp_path):
    catalog = catalog_copy / "field_catalog.yaml"  # two citizen fields labelled alike: the label is ambiguous
    catalog.write_text(catalog.read_text(encoding="utf-8").replace(
        "label: 휴대전화번호, label_en: Mobile phone", "label: 주소(도로명), label_en: Mobile phone"), encoding="utf-8")
    before = task_files(catalog_copy)
    sheet = write_xlsx(tmp_path / "bad.xlsx", [
        row(**PENSION, fields="성명"),                                    # 2: fine
        row(code="pension_check", fields="citizen.pension_amount"),      # 3: unknown item
        row(code="pension_check", fields="주소(도로명)"),                   # 4: ambiguous label
        row(**{**PENSION, "code": "ghost_task", "roles": "마법사"}, fields="성명"),  # 5: unknown role
        row(**{**PENSION, "code": "no_basis", "basis": None, "basis_en": None}, fields="성명"),  # 6: no legal basis
        row(**{**PENSION, "code": "odd_mask"}, fields="성명", mask="address"),  # 7: lint: one treatment per kind
    ])
    result = run_cli("task", "import", str(sheet), "--user", "oh.samu", env_extra=env)
    assert result.returncode == 1
    err = result.stderr
    assert (f"{sheet}:사무:3:필요 정보 항목: unknown item 'citizen.pension_amount': no field of 국민 (citizen) has "
            "that id or label") in err
    assert (f"{sheet}:사무:4:필요 정보 항목: ambiguous label '주소(도로명)': it names 2 fields of citizen "
            "(citizen.address, citizen.mobile_phone); give the catalog id") in err
    assert f"{sheet}:사무:5:담당 역할: unknown role '마법사'" in err
    assert f"{sheet}:사무:6:근거 법령: missing legal basis: task no_basis gives none on any of its rows" in err
    assert "nothing was proposed" in err
    assert task_files(catalog_copy) == before
    assert run_cli("changes", "list", "--user", "kang.samu", env_extra=env).stdout.strip() == ""

    # with the row errors fixed, the lint's finding comes back on the row that caused it
    lint_only = write_xlsx(tmp_path / "lint.xlsx", [row(**PENSION, fields="성명\n주민등록번호", mask="address")])
    result = run_cli("task", "import", str(lint_only), "--dry-run", env_extra=env)
    assert result.returncode == 1
    assert (f"{lint_only}:사무:2:필요 정보 항목: task pension_check: names are masked with 'address' here "
            "(citizen.name); the strategy for them is 'name'") in result.stderr


def test_a_clean_import_is_one_change_with_a_per_task_diff_approved_by_a_second_admin(env, catalog_copy, tmp_path):
    before = task_files(catalog_copy)
    sheet = tmp_path / "onboard.xlsx"
    assert run_cli("task", "export", str(sheet), env_extra=env).returncode == 0
    wb = openpyxl.load_workbook(sheet)
    ws = wb["사무"]
    col = {c.value: i for i, c in enumerate(ws[1])}
    for r in ws.iter_rows(min_row=2):  # housing_special_supply shows the address in full from now on
        if r[col["사무코드"]].value == "housing_special_supply" and r[col["필요 정보 항목"]].value == "citizen.address":
            r[col["마스킹"]].value = None
    # one row per task, the items by Korean label in one cell, through a link
    ws.append(row(**PENSION, fields="성명\n주민등록번호\ncitizen.residence > 주용도"))
    wb.save(sheet)

    dry = run_cli("task", "import", "--dry-run", str(sheet), env_extra=env)
    assert dry.returncode == 0, dry.stderr
    assert "1 new, 1 changed" in dry.stdout
    assert "new task pension_check" in dry.stdout and "+ citizen.residence>building.main_purpose (allow)" in dry.stdout
    assert "widens: citizen.address newly disclosed in full" in dry.stdout
    assert task_files(catalog_copy) == before

    proposed = run_cli("task", "import", str(sheet), "--user", "oh.samu", env_extra=env)
    assert proposed.returncode == 0, proposed.stderr
    assert "pending" in proposed.stdout and "new task pension_check discloses 3 fields" in proposed.stdout
    listed = run_cli("changes", "list", "--user", "kang.samu", env_extra=env).stdout.strip().splitlines()
    assert len(listed) == 1 and "import onboard.xlsx" in listed[0]  # ONE change for the whole spreadsheet
    change_id = listed[0].split()[0]
    assert task_files(catalog_copy) == before  # nothing applied before the second admin
    refused = run_cli("changes", "approve", change_id, "--user", "oh.samu", env_extra=env)
    assert refused.returncode == 1 and "four eyes" in refused.stderr
    approved = run_cli("changes", "approve", change_id, "--user", "kang.samu", env_extra=env)
    assert approved.returncode == 0 and "applied" in approved.stdout

    tasks = catalog_copy / "policies" / "tasks"
    assert "citizen.residence > building.main_purpose" in (tasks / "pension_check.yaml").read_text(encoding="utf-8")
    explain = run_cli("policy", "explain", "--user", "jung.jutaek", "--task", "housing_special_supply",
                      "--field", "citizen.address", env_extra=env)
    assert "OK" in explain.stdout and "MASKED" not in explain.stdout
    again = run_cli("task", "import", "--dry-run", str(sheet), env_extra=env)
    assert "0 new, 0 changed" in again.stdout  # what was approved is what the spreadsheet says


def test_the_template_has_the_documented_korean_headers(env, tmp_path):
    for name in ("t.xlsx", "t.csv"):
        out = run_cli("task", "template", str(tmp_path / name), env_extra=env)
        assert out.returncode == 0, out.stderr
    assert [c.value for c in openpyxl.load_workbook(tmp_path / "t.xlsx")["사무"][1]] == HEADERS
    assert next(csv.reader(io.StringIO((tmp_path / "t.csv").read_text(encoding="utf-8-sig")))) == HEADERS
    bad = write_xlsx(tmp_path / "wrong.xlsx", [["x"]], headers=["사무 코드"])
    result = run_cli("task", "import", "--dry-run", str(bad), env_extra=env)
    assert result.returncode == 1
    assert f"{bad}:사무:1:사무 코드: unknown column" in result.stderr
    assert f"{bad}:사무:1:필요 정보 항목: this column is missing" in result.stderr


# ---------------------------------------------------------------- reports


def test_the_field_by_task_matrix_is_csv_filterable_by_sensitivity_and_agency(env):
    out = run_cli("catalog", "matrix", "--csv", "--sensitivity", "unique_id", env_extra=env)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {r["sensitivity"] for r in rows} == {"unique_id"}
    rrn = next(r for r in rows if r["field"] == "citizen.rrn")
    assert rrn["move_in_report"] == "allow"  # full value by its basis
    assert rrn["vehicle_transfer"] == "mask:rrn"
    assert rrn["building_use_change"] == "-"
    health = list(csv.DictReader(io.StringIO(run_cli("catalog", "matrix", "--csv", "--agency", "NHIS",
                                                     env_extra=env).stdout)))
    assert health and {r["agency"] for r in health} == {"NHIS"}
    premium = next(r for r in health if r["field"] == "citizen.monthly_premium")
    assert premium["basic_livelihood"] == "consent"


def test_who_sees_the_rrn_in_full_names_tasks_roles_and_demo_users(env):
    out = run_cli("catalog", "report", "full-view", "citizen.rrn", "--csv", env_extra=env)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {r["task"] for r in rows} == {"basic_livelihood", "basic_livelihood_review", "move_in_report"}
    move_in = next(r for r in rows if r["task"] == "move_in_report")
    assert move_in["roles"] == "resident_registration_officer" and move_in["demo users"] == "2"  # kim, multi
    text = run_cli("catalog", "report", "full-view", "citizen.rrn", env_extra=env).stdout
    assert "citizen.rrn in full: 3 task(s), 2 role(s), 3 demo user(s)" in text


def test_unused_fields_idle_roles_and_fields_without_a_legal_basis_are_reported(env, catalog_copy):
    # a task file kept in git, written without a legal basis (never through the change path, which lints it)
    path = catalog_copy / "policies" / "tasks" / "vehicle_transfer.yaml"
    text = path.read_text(encoding="utf-8")
    basis = next(line for line in text.splitlines() if line.startswith("legal_basis:"))
    path.write_text(text.replace(basis, 'legal_basis: ""'), encoding="utf-8")
    unused = list(csv.DictReader(io.StringIO(run_cli("catalog", "report", "unused", "--csv", env_extra=env).stdout)))
    assert "citizen.dependant_count" in {r["field"] for r in unused}
    assert "citizen.name" not in {r["field"] for r in unused}
    roles = list(csv.DictReader(io.StringIO(run_cli("catalog", "report", "idle-roles", "--csv",
                                                    env_extra=env).stdout)))
    assert {r["role"] for r in roles} == {"agreement_admin", "auditor", "catalog_admin", "citizen",
                                             "task_configurer"}
    no_basis = list(csv.DictReader(io.StringIO(run_cli("catalog", "report", "no-basis", "--csv",
                                                       env_extra=env).stdout)))
    assert no_basis and {r["task"] for r in no_basis} == {"vehicle_transfer"}
    assert {r["reason"] for r in no_basis} == {"the task names no legal basis"}


def test_two_configurations_are_compared_task_by_task(env, catalog_copy, tmp_path):
    import shutil
    other = tmp_path / "other"
    shutil.copytree(catalog_copy, other)
    path = other / "policies" / "tasks" / "housing_special_supply.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "      - field: citizen.address\n        mask: address\n", "      - citizen.address\n"), encoding="utf-8")
    (other / "policies" / "tasks" / "building_use_change.yaml").unlink()
    out = run_cli("catalog", "report", "diff", str(catalog_copy), str(other), env_extra=env)
    assert out.returncode == 0, out.stderr
    assert "task housing_special_supply\n  widens: citizen.address newly disclosed in full (no mask)" in out.stdout
    assert "removed task building_use_change" in out.stdout
    assert "move_in_report" not in out.stdout
    same = run_cli("catalog", "report", "diff", str(catalog_copy), str(catalog_copy), env_extra=env)
    assert same.stdout.strip() == "no task differs"


# ---------------------------------------------------------------- the admin pages' HTTP routes


@pytest.fixture
async def http(make_app, catalog_copy, data_dir):
    import httpx
    from conftest import Api
    app = make_app(ONESCREEN_CATALOG=str(catalog_copy / "field_catalog.yaml"),
                   ONESCREEN_POLICIES=str(catalog_copy / "policies"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield Api(client, data_dir, app)
    await app.state.runtime.close()


async def upload(api, user: str, path: Path, dry: bool = False):
    return await api.client.post(f"/admin/tasks/import?name={path.name}{'&dryRun=1' if dry else ''}",
                                 content=path.read_bytes(), headers={"Authorization": f"Bearer {api.token(user)}"})


async def test_an_uploaded_spreadsheet_answers_its_problems_by_row_or_one_change_to_approve(http, catalog_copy,
                                                                                           tmp_path):
    before = task_files(catalog_copy)
    bad = write_xlsx(tmp_path / "bad.xlsx", [row(**PENSION, fields="성명"),
                                             row(code="pension_check", fields="citizen.pension_amount")])
    r = await upload(http, "oh.samu", bad)
    assert r.status_code == 422
    problems = r.json()["problems"]
    assert [(p["row"], p["column"]) for p in problems] == [(3, "필요 정보 항목")]
    assert problems[0]["text"].startswith("bad.xlsx:사무:3:필요 정보 항목: unknown item 'citizen.pension_amount'")
    assert task_files(catalog_copy) == before

    caseworker = await upload(http, "kim.jumin", bad)
    assert caseworker.status_code == 403 and caseworker.json()["code"] == "ADMIN_FORBIDDEN"

    good = write_xlsx(tmp_path / "good.xlsx", [row(**PENSION, fields="성명\n주민등록번호")])
    dry = await upload(http, "oh.samu", good, dry=True)
    assert dry.status_code == 200 and dry.json()["change"] is None
    assert dry.json()["changes"] == [{"code": "pension_check", "kind": "added", "lines": [
        "roles: welfare_officer", "legal basis: 국민연금법 제61조(노령연금 수급권자)", "+ citizen.name (allow)",
        "+ citizen.rrn (mask:rrn)"]}]
    r = await upload(http, "oh.samu", good)
    assert r.status_code == 200, r.text
    change = r.json()["change"]
    assert change["status"] == "pending" and change["widening"] == ["new task pension_check discloses 2 fields"]
    status, body = await http.gql("kang.samu", "mutation($id: ID!) { approveChange(id: $id) { status } }",
                                  {"id": str(change["id"])})
    assert body["data"]["approveChange"]["status"] == "applied"
    assert "pension_check" in http.app.state.runtime.snapshot.policies.tasks


async def test_the_reports_are_served_to_catalog_readers_as_json_and_csv(http):
    auth = {"Authorization": f"Bearer {http.token('yoon.gamsa')}"}
    assert (await http.client.get("/admin/reports/matrix", headers=auth)).status_code == 403  # an auditor: no
    auth = {"Authorization": f"Bearer {http.token('han.catalog')}"}
    r = await http.client.get("/admin/reports/matrix?sensitivity=unique_id&tasks=move", headers=auth)
    assert r.status_code == 200
    body = r.json()
    assert body["header"] == ["field", "label", "label_en", "agency", "sensitivity", "move_in_report"]
    assert ["citizen.rrn", "주민등록번호", "Resident registration number", "MOIS", "unique_id", "allow"] in body["rows"]
    r = await http.client.get("/admin/reports/full-view?field=citizen.rrn&format=csv", headers=auth)
    assert r.headers["content-type"].startswith("text/csv")
    assert {row["task"] for row in csv.DictReader(io.StringIO(r.text))} == {
        "basic_livelihood", "basic_livelihood_review", "move_in_report"}
    assert (await http.client.get("/admin/reports/matrix")).status_code == 401


def test_with_a_configuration_store_an_import_is_a_new_version_and_versions_diff_task_by_task(data_dir, tmp_path):
    """Production keeps the configuration in PostgreSQL: the import proposes against the active version, the
    approval activates the next one, and `catalog report diff 1 2` says what changed, task by task."""
    from sqlalchemy.engine import make_url

    from conftest import need_service
    from sqlservers import PG_URL, _create_database, _run, drop_database, pg_available, unique_db_name
    from test_config_store import seed

    need_service(pg_available(), f"PostgreSQL is not reachable at {PG_URL}")
    name = unique_db_name("onescreen_taskbook")
    _run(_create_database(make_url(PG_URL), name))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        assert seed(url).id == 1
        env = {"ONESCREEN_DATA_DIR": str(data_dir), "ONESCREEN_CONFIG_URL": url}
        sheet = write_xlsx(tmp_path / "pension.xlsx", [row(**PENSION, fields="성명\n주민등록번호")])
        proposed = run_cli("task", "import", str(sheet), "--user", "oh.samu", env_extra=env)
        assert proposed.returncode == 0, proposed.stderr
        change_id = next(line for line in proposed.stdout.splitlines() if line.startswith("change ")).split()[1]
        approved = run_cli("changes", "approve", change_id.rstrip(":"), "--user", "kang.samu", env_extra=env)
        assert approved.returncode == 0 and "applied" in approved.stdout, approved.stderr
        diff = run_cli("catalog", "report", "diff", "1", "2", env_extra=env)
        assert diff.returncode == 0, diff.stderr
        assert diff.stdout.startswith("new task pension_check\n") and "+ citizen.rrn (mask:rrn)" in diff.stdout
        exported = run_cli("task", "export", str(tmp_path / "active.csv"), env_extra=env)
        assert exported.returncode == 0 and "7 tasks" in exported.stdout  # the store's active version
    finally:
        drop_database(PG_URL, name)


def excel_style_xlsx(path: Path, rows: list[list[str]], doctype: str = "") -> Path:
    """A workbook as Excel writes it: shared strings (openpyxl writes inline ones), the sheet named in the
    workbook's relationships, a second sheet before it."""
    import zipfile
    from xml.sax.saxutils import escape
    strings: list[str] = []

    def ref(i: int, j: int) -> str:
        return f"{chr(65 + j)}{i + 1}"

    cells = []
    for i, r in enumerate(rows):
        cs = []
        for j, v in enumerate(r):
            strings.append(v)
            cs.append(f'<c r="{ref(i, j)}" t="s"><v>{len(strings) - 1}</v></c>')
        cells.append(f'<row r="{i + 1}">{"".join(cs)}</row>')
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("xl/workbook.xml", f'{doctype}<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
                   f'<sheet name="안내" sheetId="1" r:id="rId2"/><sheet name="사무" sheetId="2" r:id="rId1"/>'
                   '</sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels", '<Relationships xmlns="http://schemas.openxmlformats.org/package/'
                   '2006/relationships"><Relationship Id="rId1" Target="worksheets/sheet2.xml" Type="ws"/>'
                   '<Relationship Id="rId2" Target="worksheets/sheet1.xml" Type="ws"/></Relationships>')
        z.writestr("xl/sharedStrings.xml", f'<sst xmlns="{main}">' + "".join(
            f"<si><r><t>{escape(s[:2])}</t></r><r><t>{escape(s[2:])}</t></r></si>" for s in strings) + "</sst>")
        z.writestr("xl/worksheets/sheet1.xml", f'<worksheet xmlns="{main}"><sheetData/></worksheet>')
        z.writestr("xl/worksheets/sheet2.xml", f'<worksheet xmlns="{main}"><sheetData>{"".join(cells)}'
                   "</sheetData></worksheet>")
    return path


def test_a_workbook_saved_by_excel_is_read_and_a_damaged_one_is_refused_by_name(env, tmp_path):
    rows = [HEADERS, [str(v or "") for v in row(**PENSION, fields="성명\n주민등록번호")]]
    sheet = excel_style_xlsx(tmp_path / "excel.xlsx", rows)
    dry = run_cli("task", "import", "--dry-run", str(sheet), env_extra=env)
    assert dry.returncode == 0, dry.stderr
    assert "new task pension_check" in dry.stdout and "+ citizen.rrn (mask:rrn)" in dry.stdout
    damaged = tmp_path / "damaged.xlsx"
    damaged.write_bytes(b"PK\x03\x04 not really a workbook")
    result = run_cli("task", "import", "--dry-run", str(damaged), env_extra=env)
    assert result.returncode == 1 and f"{damaged}:-:0:-: not a readable .xlsx workbook" in result.stderr
    entities = excel_style_xlsx(tmp_path / "entities.xlsx", rows,
                                doctype='<!DOCTYPE w [<!ENTITY a "aaaaaaaaaa">]>')
    result = run_cli("task", "import", "--dry-run", str(entities), env_extra=env)
    assert result.returncode == 1 and "DOCTYPE" in result.stderr


def test_an_import_keeps_the_task_keys_the_sheet_has_no_column_for(env, catalog_copy, tmp_path):
    """A task's consent validity, deferred receipts and hidden case reference are not columns of the sheet: an
    import that changes the task's fields keeps them (it dropped them, so a task under investigation would have
    alerted its subjects at once after a spreadsheet edit)."""
    from oneScreen import catalog as catalog_mod, configstore, policy as policy_mod, taskbook

    task = catalog_copy / "policies" / "tasks" / "basic_livelihood.yaml"
    task.write_text(task.read_text(encoding="utf-8").replace(
        "consent_valid_days: 90\n",
        "consent_valid_days: 90\ndeferred_disclosure:\n  legal_basis: 국민기초생활 보장법 제23조제2항\n"
        "  until: 2027-06-30\nreceipt_case_ref: hidden\n"), encoding="utf-8")
    sheet = tmp_path / "tasks.xlsx"
    assert run_cli("task", "export", str(sheet), env_extra=env).returncode == 0
    wb = openpyxl.load_workbook(sheet)
    ws = wb["사무"]
    last = max(r[0].row for r in ws.iter_rows(min_row=2) if r[0].value == "basic_livelihood")
    added = [c.value for c in ws[last]]
    added[HEADERS.index("필요 정보 항목")] = "citizen.sex"
    for column in ("마스킹", "전체값 근거", "동의 필요"):
        added[HEADERS.index(column)] = None
    ws.insert_rows(last + 1)
    for i, v in enumerate(added, start=1):
        ws.cell(row=last + 1, column=i, value=v)
    wb.save(sheet)

    base = configstore.read_files(catalog_copy / "field_catalog.yaml", catalog_copy / "policies")
    plan = taskbook.plan(sheet, base)
    assert [(c.code, c.kind) for c in plan.changes] == [("basic_livelihood", "changed")]
    [written] = [f for f in plan.files if f.path.endswith("basic_livelihood.yaml")]
    files = configstore.changed(base, [(written.path, written.new)])
    cat_path, pol_dir = configstore.write_tree(files, tmp_path / "after")
    after = policy_mod.load(pol_dir, catalog_mod.load(cat_path)).tasks["basic_livelihood"]
    assert "citizen.sex" in after.fields
    assert after.consent_valid_days == 90
    assert after.deferred is not None and str(after.deferred.until) == "2027-06-30"
    assert after.receipt_case_ref == "hidden"
