"""The admin pages over a 25,000-field catalog, in a real browser against a real `onescreen serve`: the task list
and the field picker are searched on the server, an item found by its Korean label is added to a task with the
keyboard, and the changes page compares two versions (a field added, one removed). Korean first, axe clean."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import need_service, serve
from oneScreen.settings import ROOT
import test_admin_pages
from test_admin_pages import AdminSite, PROPOSE_TASK, call
from test_catalog_scale import grow_catalog
from test_frontend import AXE_DIR, AXE_VERSION, axe, axe_source, focused, sign_in

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - test_frontend's browser fixture reports it
    Page = expect = None

browser = test_admin_pages.browser
FIELDS = 25_000


@pytest.fixture(scope="module")
def big_site(browser, demo_master: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminSite]:
    root = tmp_path_factory.mktemp("catalog-scale")
    data_dir = root / "data"
    shutil.copytree(demo_master, data_dir)
    config = root / "config"
    config.mkdir()
    shutil.copy(ROOT / "field_catalog.yaml", config / "field_catalog.yaml")
    shutil.copytree(ROOT / "policies", config / "policies")
    site_needle = grow_catalog(config, FIELDS, ledgers=50)
    with serve(data_dir, root / "server.log", ONESCREEN_CATALOG=str(config / "field_catalog.yaml"),
               ONESCREEN_POLICIES=str(config / "policies")) as base:
        site = AdminSite(base, data_dir, 0, root / "server.log", config)
        site.needle = site_needle
        yield site


@pytest.fixture
def as_user(browser, big_site) -> Iterator[Callable[[str], "Page"]]:
    opened = []

    def open_as(user: str) -> "Page":
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ko-KR",
                                      timezone_id="Asia/Seoul")
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        opened.append(context)
        sign_in(page, big_site, user)
        return page

    yield open_as
    for context in opened:
        context.close()


def test_the_task_list_and_the_field_picker_find_an_item_of_a_25k_field_catalog_added_with_the_keyboard(
        as_user, big_site):
    needle = big_site.needle
    page = as_user("oh.samu")
    page.click("#nav-admin-task")
    expect(page.locator("#admin-task-title")).to_be_focused()
    page.locator("#admin-task-search").focus()
    page.keyboard.type("전입")
    expect(page.locator("#task-open option[value='move_in_report']")).to_be_attached()
    expect(page.locator("#task-open option:not([value='__new__'])")).to_have_count(1)  # found, not all listed
    expect(page.locator("#admin-task-search-count")).to_have_text("찾은 사무 1개")
    page.keyboard.press("ArrowDown")  # to the result list
    assert focused(page, "#task-open")
    page.keyboard.press("Tab")
    assert focused(page, "#task-open-submit")
    page.keyboard.press("Enter")
    expect(page.locator("#admin-task-form")).to_be_visible()
    expect(page.locator("#task-sections li[data-field='citizen.name']")).to_be_visible()

    expect(page.locator("#task-picker-count")).to_contain_text("중 50개를 보여 줍니다")  # one page, not 25,000
    assert page.locator("#task-picker-groups [data-pick]").count() == 50
    page.locator("#task-picker-filter").focus()
    page.keyboard.type("국민연금 가입기간")
    pick = page.locator(f"#task-picker-groups [data-pick='{needle}']")
    expect(pick).to_be_visible()
    expect(page.locator("#task-picker-groups [data-pick]")).to_have_count(1)
    page.keyboard.press("Tab")  # the section to add to
    page.keyboard.press("Tab")  # the one result
    assert focused(page, f"[data-pick='{needle}']")
    page.keyboard.press("Enter")
    expect(page.locator(f"#task-sections li[data-field='{needle}']")).to_contain_text("국민연금 가입기간")
    assert needle in page.locator("#task-yaml").input_value()
    page.click("#lang-toggle")
    expect(page.locator(f"#task-sections li[data-field='{needle}']")).to_contain_text(
        "National pension enrolment period")
    assert page.errors == []


def test_the_catalog_page_shows_one_page_of_25k_fields_and_searches_by_korean_label(as_user, big_site):
    page = as_user("han.catalog")
    expect(page.locator("#admin-fields tbody tr")).to_have_count(100)
    expect(page.locator("#admin-field-count")).to_contain_text("항목 25")
    page.fill("#admin-filter-text", "국민연금 가입기간")
    expect(page.locator("#admin-fields tbody tr")).to_have_count(1)
    expect(page.locator(f"#admin-fields tr[data-field='{big_site.needle}']")).to_be_visible()
    assert page.errors == []


def test_the_changes_page_compares_two_versions_a_field_added_and_one_removed(as_user, big_site):
    needle = big_site.needle
    text = (big_site.config / "policies" / "tasks" / "move_in_report.yaml").read_text(encoding="utf-8")
    new = text.replace("citizen.birth_date", needle, 1)
    proposed = call(big_site, "oh.samu", PROPOSE_TASK, {"c": "move_in_report", "y": new})["data"]["proposeTask"]
    change = proposed["id"]
    if proposed["status"] != "applied":
        approved = call(big_site, "kang.samu", "mutation($id: ID!) { approveChange(id: $id) { status } }",
                        {"id": change})
        assert approved["data"]["approveChange"]["status"] == "applied", approved
    page = as_user("kang.samu")
    page.click("#nav-admin-changes")
    expect(page.locator(f"#compare-from option[value='before-{change}']")).to_be_attached()
    page.select_option("#compare-from", f"before-{change}")
    page.select_option("#compare-to", "current")
    page.click("#compare-show")
    task = page.locator("#compare-result article[data-task='move_in_report']")
    expect(task.locator("li[data-kind='added']")).to_contain_text(f"+ {needle}")
    expect(task.locator("li[data-kind='removed']")).to_contain_text("- citizen.birth_date")
    expect(page.locator("#compare-summary")).to_contain_text("바뀐 사무 1개")

    source = axe_source()
    need_service(source is not None, f"axe-core {AXE_VERSION} is not cached in {AXE_DIR} and npm could not fetch it")
    found = axe(page, source, "changes with a version comparison")
    page.click("#lang-toggle")
    expect(page.locator("#compare-summary")).to_contain_text("1 task changed")
    found += axe(page, source, "comparison in English")
    page.click("#nav-admin-task")
    page.fill("#admin-task-search", "전입")
    expect(page.locator("#task-open option:not([value='__new__'])")).to_have_count(1)
    expect(page.locator("#task-open")).to_have_value("move_in_report")
    page.click("#task-open-submit")
    expect(page.locator(f"#task-sections li[data-field='{needle}']")).to_be_visible()
    page.fill("#task-picker-filter", "pension enrolment")
    expect(page.locator(f"#task-picker-groups [data-pick='{needle}']")).to_be_visible()
    found += axe(page, source, "task editor with picker results")
    page.click("#nav-admin-catalog")
    expect(page.locator("#admin-fields tbody tr").first).to_be_visible()
    found += axe(page, source, "catalog page")
    assert found == [], "\n".join(found)
    assert page.errors == []
