"""Sharing agreements in a real browser against a real `onescreen serve` (issue 22): the provider page of an
agreement admin's own agency (its reads from the audit trail, agreements ending soon, reads under no agreement,
CSV), and the task editor's agreement beside each field; both axe clean, Korean first with the English toggle.
"""
from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from conftest import need_service
from test_admin_pages import admin_site, as_user, browser, call, open_task, repo_config  # noqa: F401 - fixtures
from test_frontend import AXE_DIR, AXE_VERSION, axe, axe_source

SCREEN = """query($t: ID!, $s: ID!, $c: String!) { screen(task: $t, subject: $s, caseRef: $c) {
  sections { fields { id status } } } }"""


def test_the_provider_page_shows_who_reads_molits_fields_and_the_agreement_ending_soon(as_user, admin_site,
                                                                                        tmp_path: Path):
    rrn = admin_site.rows("mois_resident:SELECT rrn FROM resident ORDER BY rrn LIMIT 1")[0][0]
    for case in ("2026-전입-0101", "2026-전입-0102"):
        body = call(admin_site, "kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": case})
        assert "errors" not in body, body
    usage = call(admin_site, "kim.jumin", "{ me { user } }")  # the caseworker is offered no provider page
    assert usage["data"]["me"]["user"] == "kim.jumin"

    page = as_user("bae.hyeopyak")  # MOLIT's agreement admin lands on the provider page
    expect(page.locator("#view-admin-provider")).to_be_visible()
    expect(page.locator("#nav-admin-changes")).to_be_visible()  # where they sign the other side's proposals
    expect(page.locator("#nav-admin-task")).to_be_hidden()
    expect(page.locator("#provider-agency")).to_contain_text("국토교통부 (MOLIT)")
    row = page.locator("#provider-usage tr[data-task='move_in_report'][data-field='building.main_purpose']")
    expect(row).to_contain_text("서울특별시 종로구청 민원여권과")
    reads = int(row.locator("td[data-reads]").get_attribute("data-reads"))
    assert reads >= 2
    expect(page.locator("#provider-expiring li[data-agreement='molit-building-use-change']")).to_be_visible()
    expect(page.locator("#provider-uncovered")).to_contain_text("없습니다")  # none, by construction, in words
    assert rrn not in page.content()  # no subject data on the page

    # CSV export holds the same rows
    with page.expect_download() as dl:
        page.click("#provider-csv")
    path = tmp_path / "provider.csv"
    dl.value.save_as(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("organisation,role,task,field,reads")
    assert f"서울특별시 종로구청 민원여권과,resident_registration_officer,move_in_report,building.main_purpose,{reads}," in text

    page.click("#lang-toggle")
    expect(page.locator("#admin-provider-title")).to_have_text("Provider view")
    expect(page.locator("#provider-uncovered")).to_contain_text("None.")

    source = axe_source()
    need_service(source is not None, f"axe-core {AXE_VERSION} is not cached in {AXE_DIR} and npm could not fetch it")
    found = axe(page, source, "provider page in English")
    page.click("#lang-toggle")
    found += axe(page, source, "provider page")
    assert found == [], "\n".join(found)


def test_the_task_editor_shows_the_agreement_beside_each_field_and_the_fields_it_lacks(as_user, admin_site):
    page = as_user("oh.samu")
    open_task(page, "move_in_report")
    sections = page.locator("#task-sections")
    expect(sections.locator(".task-field[data-field='citizen.name'] .task-field__agreement")
           ).to_have_attribute("data-agreement", "mois-move-in-report")
    across = sections.locator(".task-field[data-field='citizen.residence>building.main_purpose'] .task-field__agreement")
    expect(across).to_have_attribute("data-agreement", "mois-move-in-report molit-move-in-report")
    expect(across).to_contain_text("제공기관 협약: mois-move-in-report, molit-move-in-report")

    # a field no provider agreed to for this task: said beside it, and listed by the preview as denied
    page.fill("#task-picker-filter", "월 보험료(원)")
    page.locator("button.pick[data-pick='citizen.monthly_premium']").click()
    line = sections.locator(".task-field[data-field='citizen.monthly_premium'] .task-field__agreement")
    expect(line).to_have_attribute("data-agreement", "none")
    expect(line).to_contain_text("제공기관 협약 없음")
    page.click("#task-preview")
    preview = page.locator("#task-preview-box")
    expect(preview.locator(".preview-denied li[data-field='citizen.monthly_premium']")).to_contain_text("제공기관 협약 없음")
    expect(preview.locator(".preview-screen [data-field='citizen.monthly_premium']")).to_have_attribute("data-denied", "true")

    source = axe_source()
    need_service(source is not None, f"axe-core {AXE_VERSION} is not cached in {AXE_DIR} and npm could not fetch it")
    found = axe(page, source, "task editor with agreements and a preview")
    page.click("#lang-toggle")
    expect(line).to_contain_text("No agreement of the providing agency")
    found += axe(page, source, "task editor in English")
    assert found == [], "\n".join(found)


def test_a_widened_agreement_is_signed_by_the_using_side_on_the_changes_page(as_user, admin_site):
    path = admin_site.config / "policies" / "agreements" / "molit-vehicle-transfer.yaml"
    widened = path.read_text(encoding="utf-8").replace("fields:\n", "fields:\n  - citizen.vehicle_plate_numbers\n")
    proposed = call(admin_site, "bae.hyeopyak", """mutation($y: String) {
        proposeAgreement(id: "molit-vehicle-transfer", yaml: $y) { id status widening } }""", {"y": widened})
    change = proposed["data"]["proposeAgreement"]
    assert change["status"] == "pending"
    assert change["widening"] == ["agreement molit-vehicle-transfer: shares citizen.vehicle_plate_numbers too"]

    bae = as_user("bae.hyeopyak")  # the proposer signed for MOLIT; they cannot sign the other side too
    bae.click("#nav-admin-changes")
    card = bae.locator(f"#changes-pending article[data-change='{change['id']}']")
    expect(card.locator(".four-eyes-note")).to_be_visible()
    expect(card.locator("button[data-action=approve]")).to_be_disabled()

    an = as_user("an.hyeopyak")  # MOIS (the using side's signer 행정안전부) signs
    an.click("#nav-admin-changes")
    card = an.locator(f"#changes-pending article[data-change='{change['id']}']")
    expect(card).to_contain_text("협약 molit-vehicle-transfer")
    card.locator("button[data-action=approve]").click()
    an.fill("#approve-comment", "이용기관 서명")
    an.click("#approve-confirm")
    expect(an.locator(f"#changes-history article[data-change='{change['id']}']")).to_have_attribute(
        "data-status", "applied")
    assert "  - citizen.vehicle_plate_numbers\n" in path.read_text(encoding="utf-8")
