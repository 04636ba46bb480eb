"""Search that tells the truth and a URL per view, in a real browser (chromium through Playwright) against a real
`onescreen serve` (the fixtures of tests/test_frontend.py, one server for the module). Issue 18."""
from __future__ import annotations

import re
import sqlite3

from test_frontend import (axe, axe_source, browser, gangnam_citizens,  # noqa: F401
                           jongno_citizen, page, search_subject, sign_in, site, wait_screen, choose_task)

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the browser fixture skips with the reason
    expect = None

NO_MATCH = "관할 구역 안에서 일치하는 대상이 없습니다"


def audit_rows(site) -> int:
    with sqlite3.connect(site.data_dir / "audit.sqlite") as audit:
        return audit.execute("SELECT COUNT(*) FROM onescreen_audit").fetchone()[0]


def test_a_search_that_finds_nothing_says_the_same_for_unknown_and_out_of_district(page, site):
    """lee.bokji works for 강남구: a 종로구 resident's RRN and an RRN nobody has get the same words, no screen,
    and no audit record (the old page said "대상 1건을 찾았습니다" and opened a screen of 관할 구역 밖 denials)."""
    outside = jongno_citizen(site, 3)["rrn"]
    known = {r[0] for r in site.rows("mois_resident:SELECT rrn FROM resident WHERE rrn LIKE ?", outside[:8] + "%")}
    unknown = next(f"{outside[:8]}{i:06d}" for i in range(10 ** 6) if f"{outside[:8]}{i:06d}" not in known)
    sign_in(page, site, "lee.bokji")
    choose_task(page, "basic_livelihood")
    before = audit_rows(site)
    said = []
    for rrn in (outside, unknown.replace("-", "")):
        search_subject(page, "2026-복지-0061", rrn)
        expect(page.locator("#matches-body .empty")).to_contain_text(NO_MATCH)
        expect(page.locator("#matches-body button.select")).to_have_count(0)
        said.append(page.locator("#matches-body").inner_text())
    assert said[0] == said[1]
    assert audit_rows(site) == before  # nothing disclosed, nothing written
    expect(page.locator("#view-screen")).to_be_hidden()
    page.click("#lang-toggle")
    expect(page.locator("#matches-body .empty")).to_contain_text("No match within your jurisdiction")
    source = axe_source()
    if source is not None:
        assert axe(page, source, "a search that found nothing") == []


def test_the_search_fields_say_what_is_wrong(page, site):
    sign_in(page, site, "lee.bokji")
    choose_task(page, "basic_livelihood")
    page.fill("#case-ref", "")
    page.fill("#subject-query", "900101-123456")
    page.click("#subject-submit")
    expect(page.locator("#case-ref-error")).to_contain_text("비어 있습니다")
    expect(page.locator("#subject-query-error")).to_contain_text("13자리")
    expect(page.locator("#subject-query-error")).to_contain_text("12자리")
    expect(page.locator("#subject-query")).to_have_attribute("aria-invalid", "true")
    row = gangnam_citizens(site, 1)[0]
    search_subject(page, "2026-복지-0062", row["rrn"].replace("-", ""))  # without the hyphen: found
    expect(page.locator("#matches-body button.select")).to_have_count(1)
    expect(page.locator("#subject-query")).to_have_value(row["rrn"])


def test_a_cut_list_says_how_many_of_how_many(page, site):
    everyone = site.rows("molit_building:SELECT COUNT(*) FROM bldg_title WHERE platPlc LIKE '%합정동%' "
                         "OR newPlatPlc LIKE '%합정동%'")[0][0]
    sign_in(page, site, "park.geonchuk")
    choose_task(page, "building_use_change")
    search_subject(page, "2026-건축-0061", "합정동")
    expect(page.locator("#matches-count")).to_contain_text(f"{everyone}건 중 20건")
    page.click("#lang-toggle")
    expect(page.locator("#matches-count")).to_contain_text(f"20 of {everyone}")


def test_back_and_reload_keep_task_case_and_subject_and_the_url_holds_no_rrn(page, site):
    row = gangnam_citizens(site, 1, offset=2)[0]
    sign_in(page, site, "lee.bokji")
    choose_task(page, "basic_livelihood")
    expect(page).to_have_url(re.compile(r"#/task/basic_livelihood$"))
    search_subject(page, "2026-복지-0063", row["rrn"])
    page.click("#matches-body button.select")
    wait_screen(page)
    url = page.url
    assert re.search(r"#/task/basic_livelihood/screen\?case=2026-%EB%B3%B5%EC%A7%80-0063&subject=h%3A", url), url
    assert row["rrn"] not in url and row["rrn"].replace("-", "") not in url
    title = page.locator("#screen-title").inner_text()

    page.reload()  # the same screen: task, case and subject
    expect(page.locator("#view-screen")).to_be_visible()
    wait_screen(page)
    expect(page.locator("#screen-title")).to_have_text(title)
    expect(page.locator("[data-meta=case-ref]")).to_contain_text("2026-복지-0063")
    assert page.url == url

    page.go_back()  # the search, its task and case reference
    expect(page.locator("#view-subject")).to_be_visible()
    expect(page.locator("#case-ref")).to_have_value("2026-복지-0063")
    expect(page.locator("#task-summary")).to_contain_text("basic_livelihood")
    page.go_forward()  # and the screen again
    expect(page.locator("#view-screen")).to_be_visible()
    wait_screen(page)

    second = page.context.new_page()  # a second tab of the same session, from the bookmark
    second.goto(url)
    expect(second.locator("body[data-ready=true]")).to_be_attached()
    if second.locator("#view-signin").is_visible():  # a new tab has no session yet: sign in, then the screen
        second.click("label[for='demo-user-lee_bokji']")
        second.click("#demo-submit")
    expect(second.locator("#view-screen")).to_be_visible()
    expect(second.locator("#sections .field").first).to_be_visible()
    expect(second.locator("#screen-title")).to_have_text(title)
    second.close()


def test_an_expired_or_unknown_handle_asks_to_search_again(page, site):
    sign_in(page, site, "lee.bokji")
    page.goto(site.base + "/#/task/basic_livelihood/screen?case=2026-%EB%B3%B5%EC%A7%80-0064&subject=h%3A"
              + "gAAAAABnotarealhandleatallAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    expect(page.locator("#view-subject")).to_be_visible()
    expect(page.locator("#alert")).to_contain_text("다시 검색하세요")
    expect(page.locator("#case-ref")).to_have_value("2026-복지-0064")
    expect(page).to_have_url(re.compile(r"#/task/basic_livelihood\?case="))
    assert page.errors == []
    source = axe_source()
    if source is not None:
        assert axe(page, source, "an expired handle") == []


def test_the_source_tooltip_covers_no_value_widens_no_phone_and_closes_for_a_dialog(browser, site):
    """At 390 px a value's source takes its own line (the old tooltip lay over the values under it and reached past
    the page's edge); while a dialog is open no source shows, and none is left open after it."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ko-KR", timezone_id="Asia/Seoul")
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        row = gangnam_citizens(site, 1, offset=9)[0]
        sign_in(page, site, "lee.bokji")
        choose_task(page, "basic_livelihood")
        search_subject(page, "2026-복지-0065", row["rrn"])
        page.click("#matches-body button.select")
        wait_screen(page)
        tips = page.locator("#sections .field .source")
        for fid in ("citizen.name", "citizen.address"):
            value = page.locator(f"#sections .field[data-field='{fid}'] .value").first
            value.focus()
            tip = page.locator(f"#sections .field[data-field='{fid}'] .source")
            expect(tip).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            box = tip.bounding_box()
            covered = page.evaluate("""(box) => [...document.querySelectorAll('#sections .field .value')]
                .map((v) => v.getBoundingClientRect())
                .filter((r) => r.width && r.left < box.x + box.width && box.x < r.right
                               && r.top < box.y + box.height && box.y < r.bottom).length""", box)
            assert covered == 0, fid
        page.click("#consent-open")
        expect(page.locator("#consent-dialog")).to_be_visible()
        page.locator("#sections .field[data-field='citizen.name']").hover(force=True)
        assert sum(1 for i in range(tips.count()) if tips.nth(i).is_visible()) == 0
        page.keyboard.press("Escape")
        expect(page.locator("#consent-dialog")).to_be_hidden()
        assert sum(1 for i in range(tips.count()) if tips.nth(i).is_visible()) == 0
        source = axe_source()
        if source is not None:
            assert axe(page, source, "a phone screen") == []
    finally:
        context.close()
