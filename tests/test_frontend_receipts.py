"""The citizen's side end to end (issue 19), in a real browser against a real `onescreen serve` that delivers
receipts itself (ONESCREEN_NOTIFY_IN_PROCESS) to an SMTP server on loopback (aiosmtpd):

a caseworker views a subject on the one screen; the citizen's page 내 정보 이용내역 shows the receipt with the
fields' fates as the screen decided them (never a value); the SMTP server got exactly one mail for it; the proof
downloaded from the page verifies with the standalone verifier and the key downloaded beside it; a deferred
task's receipt appears (and is mailed) only after an auditor releases it. Keyboard-usable, axe-clean, in Korean
and English.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conftest import free_port, need_service, serve
from oneScreen.identity import _demo_subject, mint_demo_token
from oneScreen.settings import ROOT
from test_frontend import (AXE_DIR, AXE_VERSION, Site, axe, axe_source, browser, open_screen,  # noqa: F401
                           sign_in, tab_to)
from test_notify import Mailbox
from test_receipts import HOUSEHOLD, RELEASE, household_of, with_deferred_task

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the browser fixture skips with the reason
    expect = None

FATE = {"OK": "SHOWN", "MASKED": "MASKED", "DENIED": "DENIED", "CONSENT_REQUIRED": "CONSENT_REQUIRED",
        "NOT_FOUND": "NOT_SHOWN", "UNAVAILABLE": "NOT_SHOWN", "PARTIAL": "SHOWN"}


@pytest.fixture(scope="module")
def mailed() -> Iterator[tuple[Mailbox, int]]:
    from aiosmtpd.controller import Controller
    box, port = Mailbox(), free_port()
    box.got = threading.Condition()
    handle = box.handle_DATA

    async def counted(server, session, envelope):
        answer = await handle(server, session, envelope)
        with box.got:
            box.got.notify_all()
        return answer

    box.handle_DATA = counted
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def citizen_site(browser, mailed, demo_master: Path, tmp_path_factory) -> Iterator[Site]:
    import shutil
    root = tmp_path_factory.mktemp("receipts-site")
    data_dir = root / "data"
    shutil.copytree(demo_master, data_dir)
    _, port = mailed
    with serve(data_dir, root / "server.log", ONESCREEN_POLICIES=str(with_deferred_task(root)),
               ONESCREEN_NOTIFY_SMTP_HOST="127.0.0.1", ONESCREEN_NOTIFY_SMTP_PORT=str(port),
               ONESCREEN_NOTIFY_IN_PROCESS="true", ONESCREEN_NOTIFY_INTERVAL="0.2",
               ONESCREEN_AUDIT_CHECKPOINT_RECORDS="1") as base:
        yield Site(base, data_dir, 0, root / "server.log")


def wait_for_mails(box: Mailbox, n: int) -> None:
    """Wait (bounded) until the mailbox holds `n` messages."""
    with box.got:
        assert box.got.wait_for(lambda: len(box.messages) >= n, timeout=60), box.deliveries


def citizen_page(browser):
    """A browser page as a citizen in Seoul sees it (Korean, downloads allowed) that collects the page's errors, and
    axe's source (the test skips without it, before opening anything)."""
    source = axe_source()
    need_service(source is not None, f"axe-core {AXE_VERSION} is not cached in {AXE_DIR} and npm could not fetch it")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ko-KR", timezone_id="Asia/Seoul",
                                  accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return context, page, errors, source


def sealed(site: Site, seq: int) -> None:
    """Wait (bounded) until the record's checkpoint is sealed: its proof can be made."""
    token = mint_demo_token(site.data_dir, "demo.citizen")
    for _ in range(300):
        r = httpx.post(f"{site.base}/graphql", headers={"Authorization": f"Bearer {token}"}, timeout=30,
                       json={"query": "query($s: Int!) { receiptProof(seq: $s) }", "variables": {"s": seq}})
        if "errors" not in r.json():
            return
        threading.Event().wait(0.1)
    raise AssertionError(r.text)


def verified_download(page, site: Site, card, tmp_path: Path) -> Path:
    """Download the receipt's proof (keyboard) and the public key from the citizen's page, once its record is
    sealed, and check that the standalone verifier finds it valid; the proof's file."""
    seq = int(card.get_attribute("data-seq"))
    sealed(site, seq)
    with page.expect_download() as got:
        card.locator("button.receipt__proof").focus()
        page.keyboard.press("Enter")
    proof = tmp_path / "proof.json"
    got.value.save_as(proof)
    with page.expect_download() as got:
        page.click("#receipts-key")
    key = tmp_path / "key.pem"
    got.value.save_as(key)
    done = subprocess.run([sys.executable, "-m", "oneScreen.verify_receipt", str(proof), "--public-key", str(key)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0 and f"valid: audit record {seq}" in done.stdout, done.stderr
    return proof


def test_the_citizen_walk_from_a_caseworkers_look_to_a_verified_proof(browser, citizen_site, mailed, tmp_path):
    box, _ = mailed
    site = citizen_site
    me = _demo_subject(site.data_dir)
    context, page, errors, source = citizen_page(browser)
    found: list[str] = []
    try:
        # the citizen opts in to mails, with the keyboard only
        sign_in(page, site, "demo.citizen")
        expect(page.locator("#view-receipts")).to_be_visible()
        expect(page.locator("#receipts-title")).to_have_text("내 정보 이용내역")
        tab_to(page, "#receipts-email")
        page.keyboard.type("citizen@example.test")
        tab_to(page, "#receipts-subscribe")
        page.keyboard.press("Enter")
        expect(page.locator("#receipts-sub-status")).to_contain_text("citizen@example.test")
        found += axe(page, source, "receipts, none yet")
        page.click("#logout")

        # a caseworker views the subject
        open_screen(page, site, "kim.jumin", "move_in_report", me, case_ref="2026-전입-7001")
        statuses = {f.get_attribute("data-field"): f.get_attribute("data-status")
                    for f in page.locator("#sections .field").all()}
        values = [v.strip() for v in page.locator("#sections .field .value").all_inner_texts() if len(v.strip()) >= 3]
        page.click("#logout")

        # the citizen's page shows the receipt, with the fates the screen decided
        sign_in(page, site, "demo.citizen")
        card = page.locator("li.receipt[data-task='move_in_report']")
        expect(card).to_have_count(1)
        fates = {row.get_attribute("data-field"): row.get_attribute("data-fate")
                 for row in card.locator("tr[data-field]").all()}
        assert fates == {k: FATE[v] for k, v in statuses.items()}
        assert "MASKED" in fates.values()
        expect(card.locator("h3")).to_contain_text("전입신고")
        text = card.inner_text()
        assert values and [v for v in values if v in text] == []  # the values the caseworker saw: none
        found += axe(page, source, "receipts")

        # exactly one mail for it
        wait_for_mails(box, 1)
        [mail] = box.messages.values()
        assert mail["To"] == "citizen@example.test" and "전입신고" in mail.get_content()
        assert len(box.deliveries) == 1

        # the proof and the key, downloaded from the page (keyboard), verify without the service
        verified_download(page, site, card, tmp_path)

        # a deferred task: in the trail at once, on the page and in the mailbox only once released
        site.gql("kim.jumin", """query($s: ID!) { screen(task: "fraud_investigation", subject: $s,
                 caseRef: "2026-조사-7002") { subject } }""", {"s": me})
        page.click("#receipts-submit")
        expect(page.locator("#receipts-results-title")).to_be_visible()
        expect(page.locator("li.receipt[data-task='fraud_investigation']")).to_have_count(0)
        history = site.gql("yoon.gamsa", "query($s: ID) { accessHistory(subject: $s) { entries { seq task } } }",
                           {"s": me})["accessHistory"]["entries"]
        deferred = next(e["seq"] for e in history if e["task"] == "fraud_investigation")
        assert len(box.messages) == 1
        site.gql("yoon.gamsa", RELEASE, {"seq": deferred, "r": "조사 종결"})
        page.click("#receipts-submit")
        released = page.locator("li.receipt[data-task='fraud_investigation']")
        expect(released).to_have_count(1)
        expect(released.locator(".receipt__deferred")).to_contain_text("통지 유예")
        wait_for_mails(box, 2)
        assert any("부정수급" in m.get_content() for m in box.messages.values())

        card.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "receipts.png"), full_page=False)  # README's picture (docs/receipts.png)

        # English
        page.click("#lang-toggle")
        expect(page.locator("#receipts-title")).to_have_text("Uses of my data")
        expect(released.locator("td[data-label='Outcome']").first).to_be_visible()
        found += axe(page, source, "receipts, English")
    finally:
        context.close()
    assert errors == [], errors
    assert found == [], json.dumps(found, ensure_ascii=False, indent=1)


def test_a_household_member_sees_a_look_up_of_another_person_that_showed_them(browser, citizen_site, mailed,
                                                                                tmp_path):
    """The citizen's spouse is looked up on the one screen, whose household section lists the citizen. The citizen's
    page shows a receipt for it, said to be another person's look-up, with the one field that showed them and
    nothing of the spouse's; one mail says so; its proof verifies and holds neither the spouse's RRN nor the case."""
    box, _ = mailed
    site = citizen_site
    me = _demo_subject(site.data_dir)
    [spouse] = household_of(site.data_dir, me)
    site.gql("demo.citizen", """mutation { subscribeReceipts(email: "citizen@example.test", mode: "IMMEDIATE") {
             email } }""", {})
    before = len(box.messages)
    context, page, errors, source = citizen_page(browser)
    found: list[str] = []
    try:
        open_screen(page, site, "kim.jumin", "move_in_report", spouse, case_ref="2026-전입-7101")
        members = page.locator(f"#sections .field[data-field='{HOUSEHOLD}']")
        expect(members).to_have_attribute("data-status", "OK")
        assert me not in page.locator("#sections").inner_text()  # whom a row is about: read, never shown
        page.click("#logout")

        sign_in(page, site, "demo.citizen")
        card = page.locator("li.receipt[data-linked='true']")
        expect(card).to_have_count(1)
        expect(card.locator(".receipt__linked")).to_contain_text("다른 분을 조회할 때")
        fates = {row.get_attribute("data-field"): row.get_attribute("data-fate")
                 for row in card.locator("tr[data-field]").all()}
        assert fates == {HOUSEHOLD: "SHOWN"}
        text = card.inner_text()
        assert spouse not in text and "2026-전입-7101" not in text and "다른 분의 업무" in text
        found += axe(page, source, "receipts, a linked one")

        wait_for_mails(box, before + 1)
        mail = list(box.messages.values())[before]
        assert "다른 분의 정보를 조회할 때" in mail.get_content() and spouse not in mail.get_content()

        proof = verified_download(page, site, card, tmp_path)
        held = proof.read_text(encoding="utf-8")
        assert spouse not in held and "2026-전입-7101" not in held

        page.click("#lang-toggle")
        expect(card.locator(".receipt__linked")).to_contain_text("Another person was looked up")
        found += axe(page, source, "receipts, a linked one, English")
    finally:
        context.close()
    assert errors == [], errors
    assert found == [], json.dumps(found, ensure_ascii=False, indent=1)


def test_an_owner_shown_on_a_buildings_screen_reads_that_a_building_was_looked_up(browser, citizen_site):
    """The citizen, made an owner of a building in this site's copy of the register, is shown on that building's
    use-change screen: their page's receipt for it says something other than a person was looked up (note and case
    line), in Korean and English, and stays axe-clean."""
    from test_receipts import own_a_building
    from test_screen import SCREEN
    site = citizen_site
    building = own_a_building(site.data_dir, _demo_subject(site.data_dir))
    site.gql("park.geonchuk", SCREEN, {"t": "building_use_change", "s": building, "c": "2026-건축-7101"})
    context, page, errors, source = citizen_page(browser)
    found: list[str] = []
    try:
        sign_in(page, site, "demo.citizen")
        card = page.locator("li.receipt[data-linked='true'][data-task='building_use_change']")
        expect(card).to_have_count(1)
        expect(card.locator(".receipt__linked")).to_contain_text("건축물·세대 등 다른 대상을 조회할 때")
        expect(card).to_contain_text("다른 대상의 업무이므로 표시하지 않음")
        text = card.inner_text()
        assert "다른 분" not in text and building not in text and "2026-건축-7101" not in text
        found += axe(page, source, "receipts, a building's linked one")
        page.click("#lang-toggle")
        expect(card.locator(".receipt__linked")).to_contain_text("Something else (a building, a household...)")
        expect(card).to_contain_text("the case is about something else")
    finally:
        context.close()
    assert errors == [], errors
    assert found == [], json.dumps(found, ensure_ascii=False, indent=1)
