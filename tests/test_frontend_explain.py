"""Why, per field, the readable access history and the admin's four eyes, in a real browser (chromium through
Playwright) against a real `onescreen serve` (the parts of tests/test_frontend.py, one server for the module)."""
from __future__ import annotations

import pytest

from conftest import need_service
from test_frontend import (AXE_DIR, AXE_VERSION, axe, axe_source, browser, field, gangnam_citizens,  # noqa: F401
                           jongno_citizen, open_screen, outside_screen, page, sign_in, site, value)

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
    outside = gangnam_citizens(site, 1, offset=7)[0]  # 강남구: multi.counter works for 종로구
    outside_screen(page, site, outside, "2026-0052")
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
    disclosures = page.locator("details.explain")
    expect(disclosures.first).to_be_visible()
    assert disclosures.count() >= 5  # the full RRN, the family, the consent-gated fields
    for d in disclosures.all():
        d.locator("summary").click()
    assert axe(page, source, "screen with explanations open") == []


# ---------------------------------------------------------------------------------------------- access history

CONSENT = """mutation($s: ID!, $c: String!) { recordConsent(task: "basic_livelihood", subject: $s, caseRef: $c,
  method: "written") { method } }"""
LOOK = 'query($t: ID!, $s: ID!, $c: String!) { screen(task: $t, subject: $s, caseRef: $c) { requestId } }'


def history_subject(site, offset: int) -> str:
    """A 강남구 resident read four times: by lee.bokji before and after consent, twice by jung.jutaek."""
    rrn = gangnam_citizens(site, 1, offset=offset)[0]["rrn"]
    site.gql("lee.bokji", LOOK, {"t": "basic_livelihood", "s": rrn, "c": "HIS-1"})
    site.gql("lee.bokji", CONSENT, {"s": rrn, "c": "HIS-2"})
    site.gql("lee.bokji", LOOK, {"t": "basic_livelihood", "s": rrn, "c": "HIS-2"})
    site.gql("jung.jutaek", LOOK, {"t": "housing_special_supply", "s": rrn, "c": "HIS-3"})
    site.gql("jung.jutaek", LOOK, {"t": "housing_special_supply", "s": rrn, "c": "-HIS-4"})
    return rrn


def test_the_access_history_reads_as_names_and_labels_filters_and_exports_csv(page, site):
    import csv
    import io

    rrn = history_subject(site, 9)
    sign_in(page, site, "yoon.gamsa")
    page.fill("#audit-rrn", rrn)
    page.click("#audit-submit")
    rows = page.locator("#audit-results tbody tr")
    expect(rows).to_have_count(4)
    first = rows.first.locator("td").all_inner_texts()
    assert first[1] == "정주택 (jung.jutaek)" and first[4] == "주택 특별공급 자격 확인" and first[6] == "-HIS-4"
    consent_row = rows.filter(has_text="HIS-2")
    expect(consent_row.locator(".consent-mark")).to_have_text("동의 기반 열람")
    expect(rows.filter(has_text="HIS-1").locator(".consent-mark")).to_have_count(0)
    expect(consent_row.locator(".history-fields")).to_contain_text("거주 건축물 › 대지(필지) › 개별공시지가(원/㎡)")
    assert "citizen.residence>" not in page.locator("#audit-results").inner_text()

    page.fill("#audit-user", "lee.bokji")
    page.click("#audit-submit")
    expect(rows).to_have_count(2)
    page.fill("#audit-case", "HIS-2")
    page.click("#audit-submit")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".consent-mark")).to_be_visible()
    page.fill("#audit-user", "")
    page.fill("#audit-case", "")
    page.select_option("#audit-task", "housing_special_supply")
    page.click("#audit-submit")
    expect(rows).to_have_count(2)
    page.select_option("#audit-task", "")
    page.fill("#audit-since", "2001-01-01")
    page.fill("#audit-until", "2001-12-31")
    page.click("#audit-submit")
    expect(page.locator("#audit-results .empty")).to_have_text("열람 기록이 없습니다.")
    page.fill("#audit-since", "")
    page.fill("#audit-until", "")
    page.click("#audit-submit")
    expect(rows).to_have_count(4)

    with page.expect_download() as download:
        page.click("#audit-csv")
    raw = download.value.path().read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM: Excel reads the Korean as Korean
    text = raw.decode("utf-8-sig")
    assert rrn not in text
    table = list(csv.reader(io.StringIO(text)))
    assert table[0][:4] == ["일시", "열람자 ID", "열람자", "기관"] and len(table) == 5
    assert all(line.startswith('"') for line in text.strip().split("\r\n"))  # every cell quoted
    by_case = {r[8]: r for r in table[1:]}
    assert set(by_case) == {"'-HIS-4", "HIS-3", "HIS-2", "HIS-1"}  # a leading - is no formula in Excel
    assert by_case["HIS-2"][1:3] == ["lee.bokji", "이복지"] and by_case["HIS-2"][9] == "예"
    assert by_case["HIS-1"][7] == "국민기초생활 보장법 제21조(급여의 신청), 제22조(신청에 의한 조사)"
    assert "성명: 정상" in by_case["HIS-1"][10]


def test_an_auditor_looks_up_a_buildings_history(page, site):
    pk = site.rows("molit_building:SELECT mgmBldrgstPk FROM bldg_title ORDER BY mgmBldrgstPk LIMIT 1 OFFSET 7")[0][0]
    site.gql("park.geonchuk", LOOK, {"t": "building_use_change", "s": pk, "c": "HIS-B1"})
    sign_in(page, site, "yoon.gamsa")
    page.select_option("#audit-type", "building")
    expect(page.locator("#audit-rrn-label")).to_have_text("건축물대장 관리번호")
    page.fill("#audit-rrn", "no")
    page.click("#audit-submit")
    expect(page.locator("#audit-rrn-error")).to_contain_text("5~40자")
    page.fill("#audit-rrn", pk)
    page.click("#audit-submit")
    rows = page.locator("#audit-results tbody tr")
    expect(rows).to_have_count(1)
    cells = rows.first.locator("td").all_inner_texts()
    assert cells[1] == "박건축 (park.geonchuk)" and cells[4] == "건축물 용도변경 허가" and cells[6] == "HIS-B1"
    expect(rows.first.locator(".history-fields")).to_contain_text("대지(필지) › 필지고유번호")


def test_a_citizen_sees_their_own_history_without_typing_their_number(page, site):
    own = site.rows("mois_resident:SELECT rrn FROM resident ORDER BY rrn LIMIT 1")[0][0]
    site.gql("jung.jutaek", LOOK, {"t": "housing_special_supply", "s": own, "c": "HIS-C1"})
    sign_in(page, site, "demo.citizen")
    expect(page.locator("#receipts-title")).to_have_text("내 정보 이용내역")  # a citizen lands on their receipts
    page.click("#nav-audit")
    expect(page.locator("#audit-title")).to_have_text("내 정보 열람 기록")
    rows = page.locator("#audit-results tbody tr")
    expect(rows.filter(has_text="HIS-C1")).to_have_count(1)  # nothing typed
    assert page.locator("#audit-rrn").input_value() == ""
    expect(page.locator("#audit-type-row")).to_be_hidden()
    expect(rows.filter(has_text="HIS-C1").locator("td").nth(1)).to_have_text("정주택 (jung.jutaek)")
    other = jongno_citizen(site, 19)["rrn"]
    page.fill("#audit-rrn", other)
    page.click("#audit-submit")
    expect(page.locator("#alert")).to_contain_text("본인의 열람 기록만 볼 수 있습니다")


def test_the_access_history_is_a_card_per_access_on_a_phone(browser, site):
    rrn = history_subject(site, 11)
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ko-KR", timezone_id="Asia/Seoul",
                                  is_mobile=True, has_touch=True)
    try:
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        sign_in(pg, site, "yoon.gamsa")
        pg.fill("#audit-rrn", rrn)
        pg.click("#audit-submit")
        cards = pg.locator("#audit-results tbody tr")
        expect(cards).to_have_count(4)
        assert pg.evaluate("document.documentElement.scrollWidth") <= 390  # nothing scrolls sideways
        box = cards.first.bounding_box()
        assert box["width"] <= 390 and box["x"] >= 0
        assert cards.first.evaluate("tr => getComputedStyle(tr).display") == "block"
        labels = cards.first.locator("td").evaluate_all(
            "tds => tds.map(td => getComputedStyle(td, '::before').content)")
        assert labels[:2] == ['"일시"', '"열람자"'] and labels[-1] == '"항목 (결과)"'
        task = cards.first.locator("td").nth(4).bounding_box()
        at = cards.first.locator("td").nth(0).bounding_box()
        assert task["y"] > at["y"] and abs(task["x"] - at["x"]) < 2  # stacked, not side by side
        source = axe_source()
        if source is not None:
            assert axe(pg, source, "access history on a phone") == []
    finally:
        context.close()


def test_axe_finds_nothing_serious_in_the_access_history(page, site):
    source = axe_source()
    need_service(source is not None, f"axe-core {AXE_VERSION} is not cached in {AXE_DIR} and npm could not fetch it")
    rrn = gangnam_citizens(site, 1, offset=10)[0]["rrn"]
    site.gql("lee.bokji", LOOK, {"t": "basic_livelihood", "s": rrn, "c": "HIS-A1"})
    sign_in(page, site, "yoon.gamsa")
    page.fill("#audit-rrn", rrn)
    page.click("#audit-submit")
    expect(page.locator("#audit-results tbody tr")).to_have_count(1)
    page.fill("#audit-since", "2026-12-31")
    page.fill("#audit-until", "2026-01-01")
    page.click("#audit-submit")
    expect(page.locator("#audit-period-error")).not_to_be_empty()
    assert axe(page, source, "access history with filters") == []
