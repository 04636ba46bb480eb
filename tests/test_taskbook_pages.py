"""The bulk import and the catalog reports in the admin pages, in a real browser against a real `onescreen serve`:
an upload with errors lists them by row and proposes nothing; a clean upload is one change that a second admin
approves; the matrix and the full-view report answer an auditor's questions. Korean first, keyboard, axe clean."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import need_service
import test_admin_pages
from test_admin_pages import call, task_file
from test_frontend import AXE_DIR, AXE_VERSION, axe, axe_source
from test_taskbook import PENSION, row, write_xlsx

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - test_frontend's browser fixture reports it
    expect = None

browser = test_admin_pages.browser
repo_config = test_admin_pages.repo_config
admin_site = test_admin_pages.admin_site
as_user = test_admin_pages.as_user


def test_an_upload_with_errors_lists_them_by_row_and_a_clean_one_is_approved_by_a_second_admin(
        as_user, admin_site, tmp_path):
    before = call(admin_site, "oh.samu", "{ changes { id } }")["data"]["changes"]
    bad = write_xlsx(tmp_path / "사무목록.xlsx", [
        row(**PENSION, fields="성명"),
        row(code="pension_check", fields="citizen.pension_amount"),
        row(**{**PENSION, "code": "no_basis", "basis": None, "basis_en": None}, fields="성명"),
    ])
    oh = as_user("oh.samu")
    oh.click("#nav-admin-import")
    expect(oh.locator("#admin-import-title")).to_be_focused()
    oh.click("#import-check")
    expect(oh.locator("#import-file-error")).to_have_text("올릴 파일을 고르세요.")
    oh.set_input_files("#import-file", str(bad))
    oh.click("#import-propose")
    problems = oh.locator("#import-result [role=alert]")
    expect(problems).to_contain_text("사무목록.xlsx에 문제 3건이 있습니다")
    expect(problems).to_contain_text("아무것도 제안하지 않았습니다")
    expect(oh.locator("#import-result tr[data-row='3']")).to_contain_text("unknown item 'citizen.pension_amount'")
    expect(oh.locator("#import-result tr[data-row='4'][data-column='근거 법령']")).to_contain_text("missing legal basis")
    assert call(admin_site, "oh.samu", "{ changes { id } }")["data"]["changes"] == before

    good = write_xlsx(tmp_path / "good.xlsx", [row(**PENSION, fields="성명\n주민등록번호\ncitizen.residence > 주용도")])
    oh.set_input_files("#import-file", str(good))
    oh.click("#import-check")
    expect(oh.locator("#import-result li[data-task='pension_check']")).to_contain_text("새 사무 pension_check")
    expect(oh.locator("#import-result .import-change")).to_have_count(0)  # checked only
    oh.click("#import-propose")
    change = oh.locator("#import-result .import-change")
    expect(change).to_contain_text("승인 대기")
    change_id = change.get_attribute("data-change")
    assert not task_file(admin_site, "pension_check").exists()

    kang = as_user("kang.samu")
    kang.click("#nav-admin-changes")
    card = kang.locator(f"#changes-pending article[data-change='{change_id}']")
    expect(card).to_contain_text("good.xlsx")
    card.locator("button[data-action=approve]").click()
    kang.fill("#approve-comment", "연금 확인 사무 일괄 등록 승인")
    kang.click("#approve-confirm")
    expect(kang.locator(f"#changes-history article[data-change='{change_id}']")).to_have_attribute(
        "data-status", "applied")
    assert "citizen.residence > building.main_purpose" in task_file(admin_site, "pension_check").read_text(
        encoding="utf-8")


def test_the_matrix_and_who_sees_the_rrn_in_full_in_the_reports_page(as_user, admin_site):
    page = as_user("yoon.gamsa")
    expect(page.locator("#nav-admin-reports")).to_be_hidden()  # an auditor is not granted catalog.read here
    page = as_user("han.catalog")
    page.click("#nav-admin-reports")
    page.select_option("#matrix-sensitivity", "unique_id")
    page.fill("#matrix-tasks", "move_in")
    page.press("#matrix-tasks", "Enter")  # the keyboard submits the filter
    cell = page.locator("#report-matrix tr[data-field='citizen.rrn'] td[data-task='move_in_report']")
    expect(cell).to_have_attribute("data-status", "allow")
    expect(cell).to_have_text("허용")
    expect(page.locator("#report-matrix th[data-task]")).to_have_count(1)
    page.select_option("#report-kind", "full-view")
    page.fill("#report-field", "citizen.rrn")
    page.click("#report-show")
    expect(page.locator("#report-other tr[data-key]")).to_have_count(3)
    expect(page.locator("#report-other-count")).to_contain_text("사무 3개")
    page.click("#lang-toggle")
    expect(page.locator("#report-other-count")).to_contain_text("3 tasks")


def test_axe_finds_no_serious_or_critical_violations_on_the_import_and_reports_pages(as_user, admin_site, tmp_path):
    source = axe_source()
    need_service(source is not None, f"axe-core {AXE_VERSION} is not cached in {AXE_DIR} and npm could not fetch it")
    found: list[str] = []
    page = as_user("han.catalog")
    page.click("#nav-admin-import")
    found += axe(page, source, "import")
    page.set_input_files("#import-file", str(write_xlsx(tmp_path / "bad.xlsx", [
        row(**PENSION, fields="citizen.pension_amount")])))
    page.click("#import-check")
    expect(page.locator("#import-result tr[data-row='2']")).to_be_visible()
    found += axe(page, source, "import with problems")
    page.click("#nav-admin-reports")
    page.click("#matrix-show")
    expect(page.locator("#report-matrix table")).to_be_visible()
    page.click("#report-show")
    expect(page.locator("#report-other table")).to_be_visible()
    found += axe(page, source, "reports")
    page.click("#lang-toggle")
    found += axe(page, source, "reports in English")
    assert found == [], "\n".join(found)
