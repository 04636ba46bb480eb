"""The admin pages, driven in a real browser (Debian's chromium through Playwright) against a real `onescreen serve`:
a catalog admin maps a ledger column, a task configurer adds the new field to a task, a second configurer approves
it (four eyes), and a caseworker sees it on the one screen without a restart; and only admins are offered any of it.

One server for the module, over a copy of the demo ledgers and a COPY of field_catalog.yaml and policies/ (the
repository's own files are never written). The tests share that server; each sets up what it needs (through the
pages or the API), so any one of them also runs alone.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from conftest import need_service
from oneScreen.identity import mint_demo_token
from oneScreen.settings import ROOT
import test_frontend
from test_frontend import (AXE_DIR, AXE_VERSION, Site, axe, axe_source, focused, open_screen, pause_timers, serve,
                           sign_in, tab_to, value)

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - test_frontend's browser fixture reports it
    Page = None

browser = test_frontend.browser  # the module's chromium (a fixture), as test_frontend.py launches it

ADMIN_NAV = ["#nav-admin-catalog", "#nav-admin-mapping", "#nav-admin-task", "#nav-admin-changes"]
NEW_FIELD = "citizen.vehicle_vins"
PROPOSE_TASK = """mutation($c: ID!, $y: String!) { proposeTask(code: $c, yaml: $y) { id status widening } }"""


@dataclass
class AdminSite(Site):
    config: Path = Path()  # the server's own copy of field_catalog.yaml and policies/


@pytest.fixture(scope="module")
def repo_config() -> Iterator[None]:
    """Invariant of this module: the repository's catalog and policies are never changed by what the admins do."""
    def digest() -> str:
        files = [ROOT / "field_catalog.yaml", *sorted((ROOT / "policies").rglob("*.yaml"))]
        return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()

    before = digest()
    yield
    assert digest() == before, "the admin pages changed the repository's own configuration files"


@pytest.fixture(scope="module")
def admin_site(browser, demo_master: Path, tmp_path_factory: pytest.TempPathFactory,
               repo_config) -> Iterator[AdminSite]:
    root = tmp_path_factory.mktemp("admin-pages")
    data_dir = root / "data"
    shutil.copytree(demo_master, data_dir)
    config = root / "config"
    config.mkdir()
    shutil.copy(ROOT / "field_catalog.yaml", config / "field_catalog.yaml")
    shutil.copytree(ROOT / "policies", config / "policies")
    log = root / "server.log"
    with serve(data_dir, log, ONESCREEN_CATALOG=str(config / "field_catalog.yaml"),
               ONESCREEN_POLICIES=str(config / "policies")) as base:
        yield AdminSite(base, data_dir, 0, log, config)


@pytest.fixture
def as_user(browser, admin_site) -> Iterator[Callable[[str], "Page"]]:
    """A fresh browser context signed in as a demo user (one per user, as on separate desks)."""
    opened = []

    def open_as(user: str | None) -> "Page":
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ko-KR",
                                      timezone_id="Asia/Seoul")
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        opened.append((context, page))
        if user:
            sign_in(page, admin_site, user)
        return page

    yield open_as
    errors = [e for _, page in opened for e in page.errors]
    for context, _ in opened:
        context.close()
    assert errors == [], errors


def call(site: Site, user: str, query: str, variables: dict | None = None) -> dict:
    r = httpx.post(f"{site.base}/graphql", json={"query": query, "variables": variables or {}}, timeout=30,
                   headers={"Authorization": f"Bearer {mint_demo_token(site.data_dir, user)}"})
    return r.json()


def task_file(site: AdminSite, code: str) -> Path:
    return site.config / "policies" / "tasks" / f"{code}.yaml"


def open_task(page: "Page", code: str) -> None:
    page.click("#nav-admin-task")
    expect(page.locator(f"#task-open option[value='{code}']")).to_be_attached()
    page.select_option("#task-open", code)
    page.click("#task-open-submit")
    expect(page.locator("#admin-task-form")).to_be_visible()


def pending_card(page: "Page", change_id: str):
    return page.locator(f"#changes-pending article[data-change='{change_id}']")


# ---------------------------------------------------------------------------------------------- the whole change


def test_a_mapped_column_added_to_a_task_and_approved_by_a_second_admin_is_on_the_screen_at_once(as_user, admin_site):
    """Invariant 8 through the admin pages: each change is validated, a widening one waits for a second admin,
    and the running service serves the new configuration without a restart; invariant 1: until then the
    caseworker's task does not name the field."""
    owner = admin_site.rows("molit_vehicle:SELECT owner_rrn FROM vehicle GROUP BY owner_rrn HAVING COUNT(*) >= 2 "
                            "ORDER BY owner_rrn LIMIT 1")[0][0]
    vins = [r[0] for r in admin_site.rows("molit_vehicle:SELECT vin FROM vehicle WHERE owner_rrn = ?", owner)]

    # a catalog admin lands on the catalog, is offered every admin page, and maps the vehicle register's VIN column
    han = as_user("han.catalog")
    expect(han.locator("#view-admin-catalog")).to_be_visible()
    for nav in ADMIN_NAV:
        expect(han.locator(nav)).to_be_visible()
    expect(han.locator("#admin-fields tr[data-field='citizen.rrn']")).to_contain_text("고유식별정보")
    han.click("#nav-admin-mapping")
    han.select_option("#admin-map-ledger", "molit.vehicle")
    han.click("#admin-map-load")
    vin = han.locator("#admin-columns tr[data-column='vin']")
    expect(vin).to_have_attribute("data-mapped", "false")
    expect(vin).to_contain_text("매핑 안 됨")  # in words, not by colour alone
    expect(han.locator("#admin-columns tr[data-column='vhrNo']")).to_contain_text("citizen.vehicle_plate_numbers")
    vin.locator("button.map-column").click()
    expect(han.locator("#map-id")).to_be_focused()
    han.fill("#map-id", NEW_FIELD)
    han.fill("#map-label", "차대번호")
    han.fill("#map-label-en", "Vehicle identification numbers")
    han.select_option("#map-sensitivity", "personal")
    han.click("#map-submit")
    result = han.locator("#admin-map-result .result")
    expect(result).to_have_attribute("data-status", "applied")  # no task uses it yet: nothing widens
    expect(result.locator(".diff")).to_contain_text(f"+  - {{id: {NEW_FIELD}, ledger: molit.vehicle, column: vin")
    expect(vin).to_have_attribute("data-mapped", "true")
    expect(vin).to_contain_text(NEW_FIELD)
    han.click("#nav-admin-catalog")
    expect(han.locator(f"#admin-fields tr[data-field='{NEW_FIELD}']")).to_contain_text("쓰는 사무 없음")

    # a task configurer (not offered the mapping page) adds the field to the move-in report and proposes it
    oh = as_user("oh.samu")
    expect(oh.locator("#nav-admin-mapping")).to_be_hidden()
    open_task(oh, "move_in_report")
    oh.fill("#task-picker-filter", "차대번호")
    oh.locator(f"button.pick[data-pick='{NEW_FIELD}']").click()
    expect(oh.locator(f"#task-sections .task-field[data-field='{NEW_FIELD}']")).to_be_visible()
    # MOLIT has not agreed to share it for this task (yet): the editor says so beside the field
    expect(oh.locator(f"#task-sections .task-field[data-field='{NEW_FIELD}'] .task-field__agreement")
           ).to_have_attribute("data-agreement", "none")
    expect(oh.locator("#task-yaml")).to_have_value(re.compile(rf"\n      - {NEW_FIELD}\n  - title: 현 주소\n"))
    oh.click("#task-preview")
    preview = oh.locator("#task-preview-box")
    expect(preview.locator(".preview-ledgers li[data-ledger='molit.vehicle']")).to_be_visible()
    expect(preview.locator(".widening")).to_contain_text(NEW_FIELD)
    oh.click("#task-propose")
    proposal = oh.locator("#task-result .result")
    expect(proposal).to_have_attribute("data-status", "pending")
    expect(proposal.locator(f".widening li[data-reason='task move_in_report: gains field {NEW_FIELD}']")).to_be_visible()
    expect(proposal.locator(".diff")).to_contain_text(f"+      - {NEW_FIELD}")
    change = proposal.get_attribute("data-change")
    tasks = call(admin_site, "kim.jumin", "{ tasks { code sections { fields { id } } } }")["data"]["tasks"]
    move_in = next(t for t in tasks if t["code"] == "move_in_report")
    assert NEW_FIELD not in [f["id"] for s in move_in["sections"] for f in s["fields"]]  # not before approval

    # the proposer cannot approve it: four eyes, said on the card
    oh.locator("#task-result button.to-changes").click()
    card = pending_card(oh, change)
    expect(card.locator(".four-eyes-note")).to_be_visible()
    expect(card.locator("button[data-action=approve]")).to_be_disabled()
    expect(card).to_have_attribute("data-status", "pending")

    # a second task configurer approves it on the changes page
    kang = as_user("kang.samu")
    kang.click("#nav-admin-changes")
    card = pending_card(kang, change)
    expect(card.locator(".widening")).to_contain_text(NEW_FIELD)
    card.locator("button[data-action=approve]").click()
    kang.fill("#approve-comment", "차량 확인용 항목 추가에 동의")
    kang.click("#approve-confirm")
    expect(kang.locator("#changes-done")).to_contain_text(f"#{change}")
    expect(kang.locator(f"#changes-history article[data-change='{change}']")).to_have_attribute("data-status", "applied")
    assert f"      - {NEW_FIELD}\n" in task_file(admin_site, "move_in_report").read_text(encoding="utf-8")

    # MOLIT's agreement admin widens its agreement for the move-in report; MOIS (the using side) signs it
    agreement = admin_site.config / "policies" / "agreements" / "molit-move-in-report.yaml"
    widened = agreement.read_text(encoding="utf-8").replace(
        "  ledgers: [molit.building_title]", "  ledgers: [molit.building_title, molit.vehicle]").replace(
        "  - building.road_address\n", f"  - building.road_address\n  - {NEW_FIELD}\n")
    signed = call(admin_site, "bae.hyeopyak", """mutation($y: String) {
        proposeAgreement(id: "molit-move-in-report", yaml: $y) { id status } }""", {"y": widened})
    assert signed["data"]["proposeAgreement"]["status"] == "pending", signed
    approved = call(admin_site, "an.hyeopyak", """mutation($id: ID!) { approveChange(id: $id) { status } }""",
                    {"id": signed["data"]["proposeAgreement"]["id"]})
    assert approved["data"]["approveChange"]["status"] == "applied", approved

    # and the caseworker sees the VINs on the move-in report's screen, from the same running server
    kim = as_user(None)
    open_screen(kim, admin_site, "kim.jumin", "move_in_report", owner)
    assert value(kim, NEW_FIELD) == ", ".join(vins)


def test_an_invalid_task_change_shows_the_servers_file_and_line(as_user, admin_site):
    """Invariant 8: a bad change is refused with file, line and reason, and nothing is stored or changed."""
    before = call(admin_site, "oh.samu", "{ changes { id } }")["data"]["changes"]
    text = task_file(admin_site, "vehicle_transfer").read_bytes()
    page = as_user("oh.samu")
    open_task(page, "vehicle_transfer")
    area = page.locator("#task-yaml")
    area.fill(area.input_value() + "      - citizen.name\n")  # by hand: the same field twice
    page.click("#task-propose")
    problem = page.locator("#task-result [role=alert]")
    expect(problem).to_contain_text("아무것도 바뀌지 않았습니다")
    expect(problem.locator(".problem__lines")).to_contain_text(
        re.compile(r"policies/tasks/vehicle_transfer\.yaml:\d+: .*appears twice"))
    assert call(admin_site, "oh.samu", "{ changes { id } }")["data"]["changes"] == before  # nothing stored
    assert task_file(admin_site, "vehicle_transfer").read_bytes() == text  # nothing changed

    # a column whose values do not convert is refused by the server too, with its reason
    han = as_user("han.catalog")
    han.click("#nav-admin-mapping")
    han.select_option("#admin-map-ledger", "molit.vehicle")
    han.click("#admin-map-load")
    han.locator("#admin-columns tr[data-column='owner_rrn'] button.map-column").click()
    han.fill("#map-label", "소유자 번호")
    han.fill("#map-label-en", "Owner number")
    han.select_option("#map-type", "integer")
    han.click("#map-submit")
    expect(han.locator("#admin-map-result [role=alert]")).to_contain_text("do not convert to integer")


def test_a_caseworker_is_offered_no_admin_page_and_the_api_refuses_them(as_user, admin_site):
    page = as_user("kim.jumin")
    expect(page.locator("#view-tasks")).to_be_visible()
    for nav in ADMIN_NAV:
        expect(page.locator(nav)).to_be_hidden()
    answers = page.evaluate("""async (queries) => Promise.all(queries.map(async (query) => {
        const r = await fetch('/graphql', {method: 'POST', headers: {'Content-Type': 'application/json',
          Authorization: 'Bearer ' + sessionStorage.getItem('onescreen.token')}, body: JSON.stringify({query})});
        const body = await r.json();
        return body.errors && body.errors[0].extensions.code;
    }))""", ["{ catalog { ledgers { id } } }", '{ ledgerColumns(ledger: "molit.vehicle") { name } }',
             "{ changes { id } }", 'mutation { retireField(id: "citizen.sex") { id } }'])
    assert answers == ["ADMIN_FORBIDDEN"] * 4


def test_the_pages_offered_follow_the_permissions_of_roles_yaml(as_user, admin_site):
    """Which role may do which admin action is data: grant auditors catalog.read and changes.read in the
    served copy of roles.yaml, and an auditor is offered the catalog and changes pages (and no other admin
    page); the running service picks the file up without a restart."""
    path = admin_site.config / "policies" / "roles.yaml"
    shipped = path.read_text(encoding="utf-8")
    granted = shipped.replace("  catalog.read: [catalog_admin, task_configurer, agreement_admin]",
                              "  catalog.read: [catalog_admin, task_configurer, agreement_admin, auditor]")
    granted = granted.replace("  changes.read: [catalog_admin, task_configurer, agreement_admin]",
                              "  changes.read: [catalog_admin, task_configurer, agreement_admin, auditor]")
    assert granted.count("auditor]") == 4  # the two granted here, access_history.read, receipt.release

    def auditor_actions(expected: list[str]) -> None:  # the watcher reloads within its 2 s interval
        for _ in range(100):
            actions = call(admin_site, "yoon.gamsa", "{ me { actions } }")["data"]["me"]["actions"]
            if actions == expected:
                return
            time.sleep(0.1)
        raise AssertionError(f"the service did not reload roles.yaml: {actions}")

    try:
        path.write_text(granted, encoding="utf-8")
        auditor_actions(["catalog.read", "changes.read", "access_history.read", "receipt.release"])
        page = as_user("yoon.gamsa")
        expect(page.locator("#nav-admin-catalog")).to_be_visible()
        expect(page.locator("#nav-admin-changes")).to_be_visible()
        expect(page.locator("#nav-admin-mapping")).to_be_hidden()
        expect(page.locator("#nav-admin-task")).to_be_hidden()
        page.click("#nav-admin-catalog")
        expect(page.locator("#view-admin-catalog tr[data-ledger='mois.resident']")).to_be_visible()
        expect(page.locator("#view-admin-catalog tr[data-ledger='mois.resident'] button")).to_have_count(1)  # no mapping
    finally:
        path.write_text(shipped, encoding="utf-8")
        auditor_actions(["access_history.read", "receipt.release"])


# ---------------------------------------------------------------------------------------------- keyboard, language


def test_the_changes_page_works_with_the_keyboard_alone(as_user, admin_site):
    original = task_file(admin_site, "vehicle_transfer").read_text(encoding="utf-8")
    wider = original.replace("      - citizen.vehicles\n", "      - citizen.vehicles\n      - citizen.sex\n")
    approve_id = call(admin_site, "oh.samu", PROPOSE_TASK, {"c": "vehicle_transfer", "y": wider})["data"]["proposeTask"]["id"]
    other = task_file(admin_site, "building_use_change").read_text(encoding="utf-8")
    widest = other.replace("roles: [building_permit_officer]", "roles: [building_permit_officer, welfare_officer]")
    assert widest != other
    reject_id = call(admin_site, "oh.samu", PROPOSE_TASK, {"c": "building_use_change", "y": widest})["data"]["proposeTask"]["id"]

    page = as_user("kang.samu")
    tab_to(page, "#nav-admin-changes")
    page.keyboard.press("Enter")
    expect(page.locator("#admin-changes-title")).to_be_focused()
    expect(pending_card(page, reject_id)).to_be_visible()
    tab_to(page, f"#changes-pending article[data-change='{reject_id}'] .diff", limit=120)  # the diff scrolls by keyboard
    tab_to(page, f"button[data-action=reject][data-id='{reject_id}']", limit=120)
    page.keyboard.press("Enter")
    expect(page.locator("#changes-done")).to_contain_text(f"#{reject_id}")
    expect(page.locator("#changes-pending-title")).to_be_focused()
    expect(page.locator(f"#changes-history article[data-change='{reject_id}']")).to_have_attribute("data-status", "rejected")

    tab_to(page, f"button[data-action=approve][data-id='{approve_id}']", limit=120)
    page.keyboard.press("Enter")
    expect(page.locator("#approve-comment")).to_be_focused()  # approving asks first, with a comment
    page.keyboard.type("성별 항목 추가 승인")
    tab_to(page, "#approve-confirm", limit=10)
    page.keyboard.press("Enter")
    expect(page.locator(f"#changes-history article[data-change='{approve_id}']")).to_have_attribute("data-status", "applied")
    assert "      - citizen.sex\n" in task_file(admin_site, "vehicle_transfer").read_text(encoding="utf-8")

    # history: read a decided change's diff, then propose restoring the version before it
    tab_to(page, f"#changes-history article[data-change='{approve_id}'] summary", limit=120)
    page.keyboard.press("Enter")
    expect(page.locator(f"#changes-history article[data-change='{approve_id}'] .diff")).to_contain_text("+      - citizen.sex")
    tab_to(page, f"button[data-action=restore][data-id='{approve_id}']", limit=120)
    page.keyboard.press("Enter")
    restore = page.locator("#changes-history article").filter(has_text=f"변경 #{approve_id} 이전 버전으로 되돌리기")
    expect(restore).to_have_attribute("data-status", "applied")  # taking the field out again narrows: at once
    expect(page.locator("#changes-done")).to_contain_text(f"#{approve_id}")
    assert task_file(admin_site, "vehicle_transfer").read_text(encoding="utf-8") == original


def test_the_task_editor_writes_an_unchanged_task_back_byte_for_byte(as_user, admin_site):
    """A change's diff shows only what the admin changed: opening a task and proposing it as is changes nothing."""
    page = as_user("kang.samu")
    page.click("#nav-admin-task")
    expect(page.locator("#task-open option[value='vehicle_transfer']")).to_be_attached()  # the catalog is loaded
    codes = page.locator("#task-open option").evaluate_all("os => os.map(o => o.value).filter(v => v !== '__new__')")
    assert len(codes) == len(list((admin_site.config / "policies" / "tasks").glob("*.yaml")))
    for code in codes:
        open_task(page, code)
        assert page.locator("#task-yaml").input_value() == task_file(admin_site, code).read_text(encoding="utf-8"), code


def test_the_task_editor_keeps_the_keys_its_form_does_not_hold(as_user, admin_site):
    """A top-level key the form has no control for is written back as the file has it, with its comment, where the
    form's keys are rewritten (the editor once dropped such keys: saving a task with deferred receipts from the
    form, before it had their controls, would have alerted the subjects of an investigation at once). The deferral
    and the receipt's case reference are the form's now: written from the draft, their comment kept."""
    page = as_user("kang.samu")
    original = task_file(admin_site, "move_in_report").read_text(encoding="utf-8")
    deferred = ("# 조사 중에는 통지를 미룬다\ndeferred_disclosure:\n  legal_basis: 국민기초생활 보장법 제23조제2항\n"
                "  period_days: 90\nreceipt_case_ref: hidden\n")
    other = "# 아직 편집기에 없는 키\nfuture_key:\n  a: 1\n"
    text = original.replace("sections:\n", deferred + other + "sections:\n", 1)
    written = page.evaluate("""async (text) => {
        const {taskYaml} = await import("/admin-yaml.js");
        const draft = {code: "move_in_report", name: "전입신고", nameEn: "Move-in report", legalBasis: "법",
                       legalBasisEn: "Act", subject: "citizen", roles: ["resident_registration_officer"],
                       deferredDisclosure: {legalBasis: "국민기초생활 보장법 제23조제2항", until: null, periodDays: 90},
                       receiptCaseRef: "hidden",
                       sections: [{title: "신청인", titleEn: "Applicant", fields: [{field: "citizen.name"}]}]};
        return [taskYaml(draft, text), taskYaml({...draft, deferredDisclosure: null, receiptCaseRef: "shown"}, text)];
    }""", text)
    assert deferred + other in written[0]
    assert written[0].index(other) < written[0].index("sections:")
    assert "name: 전입신고\n" in written[0]  # the form's own keys are what the form says
    assert "deferred_disclosure" not in written[1] and "receipt_case_ref: shown\n" in written[1] and other in written[1]


def test_a_tasks_receipts_are_deferred_and_their_case_reference_hidden_from_the_editor(as_user, admin_site):
    """Issue 19's controls in the task editor (Korean first, English toggle, keyboard alone): hide the case
    reference from the subject's receipts, defer the receipts (basis, then a period or a day). The form asks for a
    missing basis before the server does; a value typed into the file by hand is refused by the server naming the
    file, line and field, and nothing changes; a deferral tells the subject less, so it waits for a second admin
    (four eyes) and is then the task's; reopened, the controls show it; axe finds nothing serious."""
    code = "basic_livelihood_review"
    original = task_file(admin_site, code).read_text(encoding="utf-8")
    page = as_user("oh.samu")
    open_task(page, code)
    expect(page.locator("label[for=task-deferred]")).to_contain_text("통지 유예")
    expect(page.locator("#task-deferred")).not_to_be_checked()
    expect(page.locator("#task-deferred-basis")).to_be_disabled()
    page.select_option("#task-receipt-case-ref", "hidden")
    page.focus("#task-receipt-case-ref")
    page.keyboard.press("Tab")
    assert focused(page, "#task-deferred")
    page.keyboard.press("Space")
    expect(page.locator("#task-deferred-basis")).to_be_focused()  # switched on: straight to its legal basis
    expect(page.locator("#task-deferred-until")).to_be_disabled()  # a period by default: the day is not asked
    tab_to(page, "#task-deferred-days", limit=3)
    page.keyboard.type("90")
    page.click("#task-propose")
    problem = page.locator("#task-result [role=alert]")
    expect(problem).to_contain_text("통지를 유예하려면 그 법적 근거를 입력하세요")
    expect(page.locator("#task-deferred-basis")).to_be_focused()
    page.keyboard.type("국민기초생활 보장법 제23조제2항")
    area = page.locator("#task-yaml")
    assert ("deferred_disclosure:\n  legal_basis: 국민기초생활 보장법 제23조제2항\n  period_days: 90\n"
            "receipt_case_ref: hidden\nsections:\n") in area.input_value()

    # by hand in the file: the server refuses, naming the file, the line and the field; nothing changes
    before = call(admin_site, "oh.samu", "{ changes { id } }")["data"]["changes"]
    area.fill(area.input_value().replace("receipt_case_ref: hidden", "receipt_case_ref: partial"))
    page.click("#task-propose")
    expect(problem).to_contain_text("아무것도 바뀌지 않았습니다")
    expect(problem.locator(".problem__lines")).to_contain_text(re.compile(
        rf"policies/tasks/{code}\.yaml:\d+: receipt_case_ref: Input should be 'shown' or 'hidden'"))
    assert call(admin_site, "oh.samu", "{ changes { id } }")["data"]["changes"] == before
    assert task_file(admin_site, code).read_text(encoding="utf-8") == original

    # the form again: a fixed day instead of a period, proposed; it waits for a second admin
    page.focus("#task-deferred-end")
    page.select_option("#task-deferred-end", "until")
    expect(page.locator("#task-deferred-days")).to_be_disabled()
    page.fill("#task-deferred-until", "2027-06-30")
    yaml = area.input_value()
    assert "  until: 2027-06-30\nreceipt_case_ref: hidden\n" in yaml and "receipt_case_ref: partial" not in yaml
    source = axe_source()
    need_service(source is not None, f"axe-core {AXE_VERSION} is not cached in {AXE_DIR} and npm could not fetch it")
    assert axe(page, source, "task editor with a deferral") == []
    page.click("#task-propose")
    result = page.locator("#task-result .result")
    expect(result).to_have_attribute("data-status", "pending")
    pid = result.get_attribute("data-change")
    assert task_file(admin_site, code).read_text(encoding="utf-8") == original
    approved = call(admin_site, "kang.samu", """mutation($id: ID!) { approveChange(id: $id) { status } }""",
                    {"id": pid})
    assert approved["data"]["approveChange"]["status"] == "applied", approved
    assert "deferred_disclosure:\n  legal_basis: 국민기초생활 보장법 제23조제2항\n  until: 2027-06-30\n" \
        in task_file(admin_site, code).read_text(encoding="utf-8")

    # reopened, the controls show the running task's deferral; in English too
    again = as_user("kang.samu")
    open_task(again, code)
    expect(again.locator("#task-deferred")).to_be_checked()
    expect(again.locator("#task-deferred-until")).to_have_value("2027-06-30")
    expect(again.locator("#task-deferred-basis")).to_have_value("국민기초생활 보장법 제23조제2항")
    expect(again.locator("#task-receipt-case-ref")).to_have_value("hidden")
    again.click("#lang-toggle")
    expect(again.locator("label[for=task-deferred]")).to_have_text("Deferred disclosure: tell the subject later")
    expect(again.locator("#task-receipt-case-ref option[value=hidden]")).to_contain_text("Hidden")
    # telling the subject at once again narrows: it applies at once (and leaves the module's task as it was)
    back = call(admin_site, "oh.samu", PROPOSE_TASK, {"c": code, "y": original})["data"]["proposeTask"]
    assert back["status"] == "applied"


def test_proposals_are_titled_in_the_pages_language_and_a_refused_approval_ends_its_status_line(as_user, admin_site):
    """The server words a change's summary in English ("edit task move_in_report"); the Korean page shows it in
    Korean. And the four-eyes refusal of one's own approval ends "변경 #N을(를) 승인하는 중…" (the page's timers
    run on a controlled clock, so the announcement still to come is checked too)."""
    original = task_file(admin_site, "move_in_report").read_text(encoding="utf-8")
    wider = original.replace("      - citizen.sex\n", "      - citizen.sex\n      - citizen.vehicles\n", 1)
    pid = call(admin_site, "oh.samu", PROPOSE_TASK, {"c": "move_in_report", "y": wider})["data"]["proposeTask"]["id"]
    page = as_user("oh.samu")
    page.click("#nav-admin-changes")
    title = pending_card(page, pid).locator("h3")
    expect(title).to_contain_text("사무 전입신고 (move_in_report) 수정")
    assert "edit task" not in title.inner_text()
    expect(page.locator(f"button[data-action=approve][data-id='{pid}']")).to_be_disabled()
    pause_timers(page)
    # a page that offered it anyway (the button forced on): the server's four-eyes refusal, in Korean
    page.locator(f"button[data-action=approve][data-id='{pid}']").evaluate("b => { b.disabled = false; }")
    page.click(f"button[data-action=approve][data-id='{pid}']")
    page.fill("#approve-comment", "내 변경")
    page.click("#approve-confirm")
    problem = pending_card(page, pid).locator(".change__problem")
    expect(problem).to_contain_text("내가 제안한 변경은 승인할 수 없습니다")
    expect(problem).to_contain_text("다른 관리자가 승인")
    assert "거부되었습니다" not in problem.inner_text()
    page.clock.run_for(1000)
    expect(page.locator("#status")).to_have_text("")
    page.click("#lang-toggle")
    expect(title).to_contain_text("Edit task Move-in report (move_in_report)")
    call(admin_site, "kang.samu", """mutation($id: ID!) { rejectChange(id: $id) { id } }""", {"id": pid})


def test_fields_are_reordered_and_ruled_with_the_keyboard(as_user, admin_site):
    page = as_user("oh.samu")
    open_task(page, "housing_special_supply")
    first = page.locator("#task-sections .task-section").first
    expect(first.locator(".task-field").nth(3)).to_have_attribute("data-field", "citizen.move_in_date")
    first.locator("[data-focus='field:citizen.move_in_date:up']").focus()
    page.keyboard.press("Enter")
    expect(first.locator(".task-field").nth(2)).to_have_attribute("data-field", "citizen.move_in_date")
    assert focused(page, "[data-focus='field:citizen.move_in_date:up']")  # the focus follows the field
    yaml = page.locator("#task-yaml").input_value()
    assert yaml.index("- citizen.move_in_date") < yaml.index("- field: citizen.address")
    # the full value needs its legal basis: ticking it moves to the basis and takes the mask away
    address = first.locator(".task-field[data-field='citizen.address']")
    address.locator("input[data-rule=full]").focus()
    page.keyboard.press("Space")
    expect(address.locator("input[data-rule=basis]")).to_be_focused()
    expect(address.locator("select[data-rule=mask]")).to_be_disabled()
    page.keyboard.type("주택공급에 관한 규칙 제23조")
    yaml = page.locator("#task-yaml").input_value()
    assert "      - field: citizen.address\n        full_value_basis: 주택공급에 관한 규칙 제23조\n" in yaml
    assert "mask: address" not in yaml


def test_admin_pages_are_korean_first_with_an_english_toggle(as_user, admin_site):
    page = as_user("han.catalog")
    expect(page.locator("#admin-catalog-title")).to_have_text("필드 카탈로그")
    row = page.locator("#admin-fields tr[data-field='citizen.rrn']")
    expect(row).to_contain_text("주민등록번호")
    page.click("#lang-toggle")
    expect(page.locator("#admin-catalog-title")).to_have_text("Field catalog")
    expect(row).to_contain_text("Resident registration number")
    expect(row).to_contain_text("Unique identifier")
    expect(page.locator("#nav-admin-changes")).to_have_text("Changes")
    page.click("#nav-admin-changes")
    expect(page.locator("#changes-history-title")).to_have_text("History")
    page.click("#lang-toggle")
    expect(page.locator("#changes-history-title")).to_have_text("변경 이력")


def test_own_proposals_cannot_be_approved_and_an_approval_is_confirmed_with_a_comment(as_user, admin_site):
    """Four eyes in the UI: Approve is off on one's own proposal, and the note it points to says why; another
    admin's Approve asks first (Cancel changes nothing), needs a comment, and the history shows the comment."""
    source = axe_source()
    original = task_file(admin_site, "vehicle_transfer").read_text(encoding="utf-8")
    wider = original.replace("      - citizen.vehicles\n", "      - citizen.vehicles\n      - citizen.birth_date\n")
    assert wider != original
    pid = call(admin_site, "oh.samu", PROPOSE_TASK, {"c": "vehicle_transfer", "y": wider})["data"]["proposeTask"]["id"]
    oh = as_user("oh.samu")
    oh.click("#nav-admin-changes")
    approve = pending_card(oh, pid).locator("button[data-action=approve]")
    expect(approve).to_be_disabled()
    note = oh.locator(f"#{approve.get_attribute('aria-describedby')}")
    expect(note).to_have_text("내가 제안한 변경입니다. 4안 원칙에 따라 다른 관리자가 승인해야 합니다.")
    expect(pending_card(oh, pid).locator("button[data-action=reject]")).to_be_enabled()  # withdrawing is not approving

    kang = as_user("kang.samu")
    kang.click("#nav-admin-changes")
    approve = pending_card(kang, pid).locator("button[data-action=approve]")
    expect(approve).to_be_enabled()
    approve.click()
    dialog = kang.locator("#approve-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".widening")).to_contain_text("citizen.birth_date")
    if source is not None:
        assert axe(kang, source, "approve dialog") == []
    kang.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(approve).to_be_focused()
    expect(pending_card(kang, pid)).to_have_attribute("data-status", "pending")
    approve.click()
    kang.click("#approve-confirm")  # no comment yet
    expect(kang.locator("#approve-comment-error")).to_have_text("승인 의견을 입력하세요.")
    expect(kang.locator("#approve-comment")).to_be_focused()
    kang.fill("#approve-comment", "양도인 생년월일 확인 필요 (민원 개선 과제)")
    kang.click("#approve-confirm")
    done = kang.locator(f"#changes-history article[data-change='{pid}']")
    expect(done).to_have_attribute("data-status", "applied")
    expect(done.locator(".change__meta")).to_contain_text("양도인 생년월일 확인 필요 (민원 개선 과제)")
    changes = call(admin_site, "kang.samu", "{ changes { id comment approver } }")["data"]["changes"]
    assert {"id": pid, "comment": "양도인 생년월일 확인 필요 (민원 개선 과제)", "approver": "kang.samu"} in changes
    back = call(admin_site, "oh.samu", PROPOSE_TASK, {"c": "vehicle_transfer", "y": original})["data"]["proposeTask"]
    assert back["status"] == "applied"  # taking the field out again narrows: at once


def test_the_preview_marks_the_fields_a_draft_newly_discloses_in_the_layout(as_user, admin_site):
    page = as_user("oh.samu")
    open_task(page, "housing_special_supply")
    first = page.locator("#task-sections .task-section").first
    address = first.locator(".task-field[data-field='citizen.address']")
    address.locator("input[data-rule=full]").check()
    address.locator("input[data-rule=basis]").fill("주택공급에 관한 규칙 제23조")
    page.fill("#task-picker-filter", "성별")
    page.locator("button.pick[data-pick='citizen.sex']").click()
    page.click("#task-preview")
    layout = page.locator("#task-preview-box .preview-screen")
    shown = layout.locator(".field[data-field='citizen.address']")
    expect(shown).to_have_attribute("data-new", "unmasked")
    expect(shown.locator(".new-tag")).to_have_text("새로 전체 공개")  # in words, the colour only repeats it
    expect(layout.locator(".field[data-field='citizen.sex'] .new-tag")).to_have_text("새로 공개")
    expect(layout.locator(".field[data-field='citizen.birth_date']")).not_to_have_attribute("data-new", re.compile("."))
    expect(layout.locator(".field--new")).to_have_count(2)


def test_the_mapping_page_shows_sample_values_masked_for_personal_columns(as_user, admin_site):
    page = as_user("han.catalog")
    page.click("#nav-admin-mapping")
    page.select_option("#admin-map-ledger", "mois.resident")
    page.click("#admin-map-load")
    rrn = page.locator("#admin-columns tr[data-column='rrn'] .samples li")
    expect(rrn).to_have_count(3)
    assert all(re.fullmatch(r"\d{6}-\d\*{6}", v) for v in rrn.all_inner_texts())
    shown = " ".join(page.locator("#admin-columns .samples").all_inner_texts())
    for row in admin_site.rows("mois_resident:SELECT rrn, mbl_telno FROM resident"):
        assert row["rrn"] not in shown and (not row["mbl_telno"] or row["mbl_telno"] not in shown)
    expect(page.locator("#admin-columns thead")).to_contain_text("예시 값 (개인정보는 가림)")
    page.select_option("#admin-map-ledger", "molit.land")
    page.click("#admin-map-load")
    expect(page.locator("#admin-columns tr[data-column='pblntfPclnd'] .samples li")).to_have_count(3)
    prices = page.locator("#admin-columns tr[data-column='pblntfPclnd'] .samples li").all_inner_texts()
    known = {str(r[0]) for r in admin_site.rows("molit_land:SELECT pblntfPclnd FROM land")}
    assert prices and set(prices) <= known  # a public column: as it is


def test_a_refusal_is_told_in_the_pages_language(as_user, admin_site):
    """A change decided in another window meanwhile: the server's refusal (English, stable) reads in Korean."""
    original = task_file(admin_site, "building_use_change").read_text(encoding="utf-8")
    wider = original.replace("roles: [building_permit_officer]", "roles: [building_permit_officer, auditor]")
    pid = call(admin_site, "oh.samu", PROPOSE_TASK, {"c": "building_use_change", "y": wider})["data"]["proposeTask"]["id"]
    page = as_user("kang.samu")
    page.click("#nav-admin-changes")
    expect(pending_card(page, pid)).to_be_visible()
    call(admin_site, "oh.samu", """mutation($id: ID!) { rejectChange(id: $id) { id } }""", {"id": pid})
    page.click(f"button[data-action=reject][data-id='{pid}']")
    alert = page.locator("#alert")
    expect(alert).to_contain_text(f"변경 #{pid}은(는) 이미 결정되었습니다")
    expect(alert).to_contain_text("거부됨")  # its status, in Korean


def test_axe_finds_no_serious_or_critical_violations_on_the_admin_pages(as_user, admin_site):
    source = axe_source()
    need_service(source is not None, f"axe-core {AXE_VERSION} is not cached in {AXE_DIR} and npm could not fetch it")
    found: list[str] = []
    # a decided change and a pending one for the changes page
    text = task_file(admin_site, "housing_special_supply").read_text(encoding="utf-8")
    narrower = text.replace("      - citizen.move_in_date\n", "")
    assert call(admin_site, "oh.samu", PROPOSE_TASK, {"c": "housing_special_supply", "y": narrower}
                )["data"]["proposeTask"]["status"] == "applied"
    assert call(admin_site, "oh.samu", PROPOSE_TASK, {"c": "housing_special_supply", "y": text}
                )["data"]["proposeTask"]["status"] == "pending"
    page = as_user("han.catalog")
    expect(page.locator("#admin-fields tbody tr").first).to_be_visible()
    found += axe(page, source, "catalog")
    page.click("#nav-admin-mapping")
    page.select_option("#admin-map-ledger", "nhis.dependants")
    page.click("#admin-map-load")
    expect(page.locator("#admin-columns tr.col-row--unmapped").first).to_be_visible()
    found += axe(page, source, "mapping")
    page.locator("#admin-columns tr.col-row--unmapped button.map-column").first.click()
    page.fill("#map-id", "not an id")
    page.click("#map-submit")
    expect(page.locator("#map-id-error")).not_to_be_empty()
    found += axe(page, source, "mapping form with errors")
    open_task(page, "basic_livelihood")
    page.click("#task-preview")
    expect(page.locator("#task-preview-box")).to_be_visible()
    found += axe(page, source, "task editor with a preview")
    page.locator("#task-yaml").fill("code: basic_livelihood\nname: [broken\n")
    page.click("#task-propose")
    expect(page.locator("#task-result [role=alert]")).to_be_visible()
    found += axe(page, source, "task editor with the server's problems")
    page.click("#nav-admin-changes")
    expect(page.locator("#changes-pending article").first).to_be_visible()
    page.locator("#changes-history summary").first.click()
    found += axe(page, source, "changes")
    page.click("#lang-toggle")
    found += axe(page, source, "changes in English")
    assert found == [], "\n".join(found)
