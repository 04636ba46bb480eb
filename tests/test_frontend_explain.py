"""Why, per field, the readable access history and the admin's four eyes, in a real browser (chromium through
Playwright) against a real `onescreen serve` (the parts of tests/test_frontend.py, one server for the module)."""
from __future__ import annotations

import pytest

from conftest import need_service
from test_frontend import (AXE_DIR, AXE_VERSION, axe, axe_source, browser, field, gangnam_citizens,  # noqa: F401
                           jongno_citizen, open_screen, page, sign_in, site, value)

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the browser fixture skips with the reason
    expect = None


def test_each_masked_full_or_denied_field_says_which_rule_and_why(page, site):
    row = gangnam_citizens(site, 1, offset=5)[0]
    open_screen(page, site, "lee.bokji", "basic_livelihood", f"{row['name']} {row['birth_date']}", "2026-복지-0051")
    rrn = field(page, "citizen.rrn")
    assert value(page, "citizen.rrn") == row["rrn"]
    why = rrn.locator("details.explain")
    expect(why).to_have_attribute("data-kind", "FULL_VALUE")
    expect(why.locator(".explain__basis")).to_be_hidden()
    why.locator("summary").focus()
    page.keyboard.press("Enter")  # the keyboard opens it
    expect(why.locator(".explain__basis")).to_have_text("국민기초생활 보장법 시행령 제41조(고유식별정보의 처리)")
    expect(why.locator(".explain__rule")).to_contain_text("평소에는 가리는 항목")
    consent = field(page, "citizen.insured_type").locator("details.explain")
    expect(consent).to_have_attribute("data-kind", "CONSENT")
    expect(field(page, "citizen.name").locator("details.explain")).to_have_count(0)  # nothing to explain

    page.click("#lang-toggle")
    expect(why.locator("summary")).to_contain_text("Basis for the full value")
    expect(why.locator(".explain__rule")).to_contain_text("usually masked")
    page.click("#lang-toggle")

    page.click("#logout")
    outside = jongno_citizen(site, 7)  # 종로구: lee.bokji works for 강남구
    open_screen(page, site, "lee.bokji", "basic_livelihood", outside["rrn"], "2026-복지-0052")
    denied = field(page, "citizen.name").locator("details.explain")
    expect(denied).to_have_attribute("data-kind", "DENY")
    denied.locator("summary").click()
    expect(denied.locator(".explain__rule")).to_contain_text("관할 구역 규칙")
    expect(denied.locator(".explain__id")).to_have_text("jurisdiction: own_region")


def test_a_masked_value_says_which_rule_masks_it(page, site):
    owner = site.rows("molit_vehicle:SELECT owner_rrn FROM vehicle ORDER BY owner_rrn LIMIT 1")[0][0]
    open_screen(page, site, "choi.chaeryang", "vehicle_transfer", owner, "2026-차량-0051")
    why = field(page, "citizen.rrn").locator("details.explain")
    expect(why).to_have_attribute("data-kind", "MASK")
    why.locator("summary").click()
    expect(why.locator(".explain__rule")).to_contain_text("뒷자리 6자리는 가립니다")
    expect(why.locator(".explain__id")).to_have_text("mask rrn")
    expect(why.locator(".explain__basis")).to_contain_text("법적 근거가 지정되어 있지 않습니다")
    assert owner not in why.inner_text()


def test_axe_finds_nothing_serious_in_the_explanations(page, site):
    source = axe_source()
    need_service(source is not None, f"axe-core {AXE_VERSION} is not cached in {AXE_DIR} and npm could not fetch it")
    row = gangnam_citizens(site, 1, offset=6)[0]
    open_screen(page, site, "lee.bokji", "basic_livelihood", f"{row['name']} {row['birth_date']}", "2026-복지-0053")
    for d in page.locator("details.explain").all():
        d.locator("summary").click()
    assert axe(page, source, "screen with explanations open") == []
