"""The caseworker's web screen, driven in a real browser (Debian's chromium through Playwright) against a real
`onescreen serve` process on its own copy of the demo ledgers: what a caseworker sees, and only that.

One server for the module. Its data directory is a copy of the demo data in which one resident's name is
markup, and its building-HUB REST ledger points at a port nothing listens on (until the retry test starts
the agency API there). axe-core comes from the npm registry (cached; .ci/run fetches it ahead).
"""
from __future__ import annotations

import contextlib
import html.parser
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from conftest import free_port, need_service, sample, serve
from oneScreen.identity import mint_demo_token
from oneScreen.settings import ROOT

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - reported by need_service below
    sync_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AXE_VERSION = "4.14.1"
AXE_DIR = Path(os.environ.get("ONESCREEN_AXE_DIR") or  # where .ci/run puts it
               Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
               / "onescreen-tests" / f"axe-core-{AXE_VERSION}")
FRONTEND = ROOT / "frontend"
MARKUP_NAME = "<img src=x onerror=alert(1)>김"
TOKEN_KEY = "onescreen.token"
REQUEST_ID = re.compile(r"^[0-9a-f]{32}")
AS_OF = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d KST")


# ---------------------------------------------------------------------------------------------- the parts


@dataclass
class Site:
    base: str
    data_dir: Path
    hub_port: int
    log: Path

    def rows(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        return sample(self.data_dir, sql, *params)

    def gql(self, user: str, query: str, variables: dict) -> dict:
        r = httpx.post(f"{self.base}/graphql", json={"query": query, "variables": variables}, timeout=30,
                       headers={"Authorization": f"Bearer {mint_demo_token(self.data_dir, user)}"})
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        return r.json()["data"]



def markup_resident(data_dir: Path) -> str:
    """Give one resident (of 종로구, nobody else's test subject) a name that is markup; return the RRN."""
    path = data_dir / "demo" / "mois_resident.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        rrn = conn.execute("SELECT rrn FROM resident WHERE legal_dong_cd LIKE '11110%' ORDER BY rrn DESC LIMIT 1"
                           ).fetchone()[0]
        conn.execute("UPDATE resident SET name = ? WHERE rrn = ?", (MARKUP_NAME, rrn))
    return rrn


def launch(playwright: Any) -> "Browser":
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def axe_source() -> str | None:
    """axe-core's axe.min.js from the npm registry (npm pack, pinned version), cached outside the repository."""
    script = AXE_DIR / "axe.min.js"
    if not script.is_file() and shutil.which("npm"):
        AXE_DIR.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=AXE_DIR.parent) as tmp:
            done = subprocess.run(["npm", "pack", f"axe-core@{AXE_VERSION}", "--pack-destination", tmp, "--silent"],
                                  capture_output=True, text=True, timeout=120)
            tarballs = list(Path(tmp).glob("axe-core-*.tgz"))
            if done.returncode == 0 and tarballs:
                with tarfile.open(tarballs[0]) as tar:
                    tar.extract("package/axe.min.js", tmp, filter="data")
                    tar.extract("package/LICENSE", tmp, filter="data")
                staged = Path(tmp) / "package"
                with contextlib.suppress(OSError):
                    staged.rename(AXE_DIR)  # atomic: a concurrent run may have won, which is as good
    return script.read_text(encoding="utf-8") if script.is_file() else None


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser() -> Iterator["Browser"]:
    need_service(sync_playwright is not None, "the playwright Python package is not installed (pip install playwright)")
    need_service(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(browser, demo_master: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("frontend")
    data_dir = root / "data"
    shutil.copytree(demo_master, data_dir)
    markup_resident(data_dir)
    hub_port = free_port()  # nothing listens here: the building-HUB ledger is down
    log = root / "server.log"
    with serve(data_dir, log, ONESCREEN_URL_MOLIT_BLDG_HUB=f"http://127.0.0.1:{hub_port}",
               ONESCREEN_KEY_MOLIT_BLDG_HUB="x") as base:
        yield Site(base, data_dir, hub_port, log)


@pytest.fixture
def page(browser, site) -> Iterator["Page"]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ko-KR", timezone_id="Asia/Seoul")
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    pg.errors = []  # uncaught exceptions of the page: a bug of the screen
    pg.dialogs = []  # alert/confirm/prompt: never expected (a markup value must not run)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))

    def on_dialog(d):
        pg.dialogs.append(d.message)
        d.dismiss()

    pg.on("dialog", on_dialog)
    yield pg
    errors = pg.errors
    context.close()
    assert errors == [], errors


# ---------------------------------------------------------------------------------------------- the flow


def start(page: "Page", site: Site) -> None:
    page.goto(site.base + "/")
    expect(page.locator("body[data-ready=true]")).to_be_attached()


def sign_in(page: "Page", site: Site, user: str) -> None:
    start(page, site)
    page.click(f"label[for='demo-user-{user.replace('.', '_')}']")
    page.click("#demo-submit")
    expect(page.locator("#logout")).to_be_visible()


def choose_task(page: "Page", code: str) -> None:
    page.click("#nav-tasks")
    page.click(f"button.task[data-task='{code}']")
    expect(page.locator("#view-subject")).to_be_visible()


def search_subject(page: "Page", case_ref: str, query: str) -> None:
    page.fill("#case-ref", case_ref)
    page.fill("#subject-query", query)
    page.click("#subject-submit")
    expect(page.locator("#matches")).to_be_visible()
    expect(page.locator("#matches-body button.select, #matches-body .empty").first).to_be_visible()


def wait_screen(page: "Page") -> None:
    expect(page.locator("#sections .field").first).to_be_visible()
    expect(page.locator("#sections .field[data-status=LOADING]")).to_have_count(0)
    expect(page.locator("[data-meta=request-id]")).to_have_text(REQUEST_ID)


def open_screen(page: "Page", site: Site, user: str, task: str, query: str, case_ref: str = "2026-0001",
                match_text: str | None = None) -> None:
    sign_in(page, site, user)
    choose_task(page, task)
    search_subject(page, case_ref, query)
    rows = page.locator("#matches-body tbody tr")
    if match_text is not None:
        rows = rows.filter(has_text=match_text)
    rows.first.locator("button.select").click()
    wait_screen(page)


def field(page: "Page", fid: str):
    return page.locator(f"#sections .field[data-field='{fid}']")


def value(page: "Page", fid: str) -> str:
    return field(page, fid).locator(".value").inner_text().strip()


def table(page: "Page", fid: str) -> list[list[str]]:
    return [[c.strip() for c in row.locator("td").all_inner_texts()]
            for row in field(page, fid).locator("tbody tr").all()]


def tab_to(page: "Page", selector: str, limit: int = 80) -> None:
    """Press Tab until the focused element matches `selector` (only the keyboard moves the focus)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("sel => !!document.activeElement && document.activeElement.matches(sel)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def focused(page: "Page", selector: str) -> bool:
    return page.evaluate("sel => !!document.activeElement && document.activeElement.matches(sel)", selector)


def screen_requests(page: "Page") -> list[dict]:
    """Collects the variables of every `screen` query the page sends from now on."""
    sent: list[dict] = []

    def on_request(request):
        if request.url.endswith("/graphql") and request.method == "POST":
            body = json.loads(request.post_data or "{}")
            # the page sends a query's hash first (automatic persisted queries), its text only when asked
            if body.get("operationName") == "Screen" and "query" not in body:
                sent.append(body.get("variables") or {})

    page.on("request", on_request)
    return sent


# ---------------------------------------------------------------------------------------------- subjects


def gangnam_citizens(site: Site, n: int, offset: int = 0) -> list[sqlite3.Row]:
    """강남구 residents with a health-insurance record (lee.bokji's jurisdiction; consent-gated fields)."""
    rows = site.rows("mois_resident:SELECT rrn, name, birth_date FROM resident WHERE legal_dong_cd LIKE '11680%' "
                     "ORDER BY rrn")
    insured = {r[0] for r in site.rows("nhis_eligibility:SELECT rrn FROM eligibility")}
    return [r for r in rows if r["rrn"] in insured][offset:offset + n]


def citizen_with_vehicles(site: Site) -> str:
    return site.rows("molit_vehicle:SELECT owner_rrn FROM vehicle GROUP BY owner_rrn HAVING COUNT(*) >= 2 "
                     "ORDER BY owner_rrn LIMIT 1")[0][0]


def jongno_citizen(site: Site, offset: int) -> sqlite3.Row:
    return site.rows("mois_resident:SELECT * FROM resident WHERE legal_dong_cd LIKE '11110%' AND name NOT LIKE '<%' "
                     "ORDER BY rrn LIMIT 1 OFFSET ?", offset)[0]


# ---------------------------------------------------------------------------------------------- 1. sign in, 2. task


def test_demo_sign_in_keeps_the_token_in_session_storage_only(page, site):
    start(page, site)
    picker = page.locator("#demo-users")
    kim = picker.locator("label[for='demo-user-kim_jumin']")
    expect(kim).to_contain_text("김주민")
    expect(kim).to_contain_text("서울특별시 종로구청 민원여권과")
    expect(kim).to_contain_text("주민등록 담당 공무원")
    expect(picker.locator("label[for='demo-user-yoon_gamsa']")).to_contain_text("감사 담당자")
    page.click("#demo-submit")  # nobody chosen yet: says what to do, signs nobody in
    expect(page.locator("#alert")).to_contain_text("데모 사용자를 선택")
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None

    kim.click()
    page.click("#demo-submit")
    expect(page.locator("#who")).to_have_text("김주민 · 서울특별시 종로구청 민원여권과")
    token = page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')")
    assert token and token.count(".") == 2
    assert page.evaluate("localStorage.length") == 0
    assert token not in page.url and "token" not in page.url
    assert page.evaluate("document.cookie") == ""
    task = page.locator("button.task[data-task='move_in_report']")
    expect(task).to_contain_text("전입신고")
    expect(task).to_contain_text("주민등록법 제16조(거주지 이동에 따른 신고)")
    expect(page.locator("button.task")).to_have_count(1)

    page.reload()  # the tab's session survives a reload, without signing in again
    expect(page.locator("#who")).to_have_text("김주민 · 서울특별시 종로구청 민원여권과")


def test_tasks_are_searched_by_name_or_code_with_their_legal_basis(page, site):
    sign_in(page, site, "multi.counter")
    tasks = page.locator("button.task")
    expect(tasks).to_have_count(4)
    page.fill("#task-search", "자동차")
    expect(tasks).to_have_count(1)
    expect(tasks.first).to_contain_text("자동차관리법 제12조(이전등록)")
    page.fill("#task-search", "basic_liv")
    expect(tasks).to_have_count(2)
    expect(tasks.first).to_contain_text("기초생활보장 급여 신청")
    expect(tasks.first).to_contain_text("국민기초생활 보장법 제21조")
    page.fill("#task-search", "없는 사무")
    expect(tasks).to_have_count(0)
    expect(page.locator("#task-list")).to_contain_text("일치하는 사무가 없습니다")
    page.fill("#task-search", "")
    expect(tasks).to_have_count(4)


# ---------------------------------------------------------------------------------------------- 3, 4. the screen


def test_move_in_report_shows_ledger_values_with_their_sources(page, site):
    row = jongno_citizen(site, 3)
    open_screen(page, site, "kim.jumin", "move_in_report", f"{row['name']} {row['birth_date']}", "2026-전입-0042")
    matches_cells = page.locator("#matches-body tbody tr").first.locator("td").all_inner_texts()
    assert row["name"] in matches_cells and row["birth_date"] in matches_cells

    assert value(page, "citizen.name") == row["name"]
    assert value(page, "citizen.rrn") == row["rrn"]  # full value: the task names its legal basis
    assert value(page, "citizen.birth_date") == row["birth_date"]
    assert value(page, "citizen.address") == row["road_addr"]
    assert value(page, "citizen.move_in_date") == row["mvin_de"]
    phone = value(page, "citizen.mobile_phone")
    assert re.fullmatch(r"010-\*{4}-\d{4}", phone) and phone[-4:] == row["mbl_telno"][-4:]
    expect(field(page, "citizen.mobile_phone").locator(".badge")).to_have_text("일부 가림")
    members = sample(site.data_dir, "mois_resident:SELECT name FROM resident WHERE hshld_id = ?", row["hshld_id"])
    assert sorted(r[0] for r in table(page, "citizen.household>household.members")) == sorted(m[0] for m in members)
    building = site.rows("molit_building:SELECT * FROM bldg_title WHERE mgmBldrgstPk = ?", row["mgm_bldrgst_pk"])[0]
    assert value(page, "citizen.residence>building.main_purpose") == building["mainPurpsCdNm"]

    # task, legal basis, case reference and request id are on the screen
    expect(page.locator("#screen-title")).to_have_text("전입신고")
    expect(page.locator("[data-meta=basis]")).to_have_text("주민등록법 제16조(거주지 이동에 따른 신고)")
    expect(page.locator("[data-meta=case-ref]")).to_have_text("2026-전입-0042")
    expect(page.locator("[data-meta=caseworker]")).to_contain_text("김주민")

    # the source shows on hover and on keyboard focus
    name = field(page, "citizen.name")
    source = name.locator(".source")
    expect(source).to_be_hidden()
    name.locator(".value").hover()
    expect(source).to_be_visible()
    expect(source).to_contain_text("행정안전부 주민등록표")
    expect(source).to_have_text(AS_OF)
    page.mouse.move(0, 0)
    expect(source).to_be_hidden()
    name.locator(".value").focus()
    expect(source).to_be_visible()
    described = name.locator(".value").get_attribute("aria-describedby")
    assert described == source.get_attribute("id")
    page.keyboard.press("Escape")
    expect(source).to_be_hidden()

    # read again within the ledger's cache time: the screen says the values are cached
    first_id = page.locator("[data-meta=request-id]").inner_text()
    page.click("#reload")
    expect(page.locator("[data-meta=request-id]")).not_to_have_text(first_id)
    wait_screen(page)
    expect(field(page, "citizen.name").locator(".cached-tag")).to_have_text("캐시")
    expect(field(page, "citizen.name").locator(".source")).to_contain_text("캐시된 값")


def test_vehicle_transfer_shows_the_rrn_masked_and_the_vehicles_as_a_table(page, site):
    rrn = citizen_with_vehicles(site)
    open_screen(page, site, "choi.chaeryang", "vehicle_transfer", rrn, "2026-차량-7")
    shown = value(page, "citizen.rrn")
    assert re.fullmatch(r"\d{6}-\d\*{6}", shown) and shown == rrn[:8] + "******"
    expect(field(page, "citizen.rrn").locator(".badge")).to_have_text("일부 가림")
    assert rrn not in page.locator("#view-screen").inner_text()
    vehicles = site.rows("molit_vehicle:SELECT * FROM vehicle WHERE owner_rrn = ? ", rrn)
    rows = table(page, "citizen.vehicles")
    assert sorted(r[0] for r in rows) == sorted(v["vhrNo"] for v in vehicles)
    by_plate = {v["vhrNo"]: v for v in vehicles}
    for plate, model, kind, year, cc, first in rows:
        v = by_plate[plate]
        assert (model, kind, year, cc, first) == (v["cnm"], v["vhctyAsortNm"], str(v["prye"]), str(v["dsplvl"]),
                                                  v["frstRegistDe"])
    headers = field(page, "citizen.vehicles").locator("thead th").all_inner_texts()
    assert headers[:2] == ["자동차등록번호", "차명"]


def outside_screen(page: "Page", site: Site, row: sqlite3.Row, case_ref: str) -> None:
    """basic_livelihood's screen of a citizen outside the caller's district. A search finds no such citizen (issue
    18: no match within the jurisdiction), so multi.counter (종로구) finds a 강남구 resident for move_in_report
    (no jurisdiction rule) and opens the welfare screen of the same handle through its URL."""
    open_screen(page, site, "multi.counter", "move_in_report", row["rrn"], case_ref)
    handle = re.search(r"subject=([^&]+)", page.url).group(1)
    page.goto(f"{site.base}/#/task/basic_livelihood/screen?case={case_ref}&subject={handle}")
    expect(page.locator("#screen-code")).to_contain_text("basic_livelihood")
    wait_screen(page)


def test_a_citizen_outside_the_welfare_officers_district_is_denied_with_the_reason(page, site):
    rrn = gangnam_citizens(site, 1, offset=5)[0]["rrn"]  # 강남구: multi.counter works for 종로구
    row = site.rows("mois_resident:SELECT * FROM resident WHERE rrn = ?", rrn)[0]
    outside_screen(page, site, row, "2026-9")
    fields = page.locator("#sections .field")
    assert fields.count() >= 15
    expect(page.locator("#sections .field:not([data-status=DENIED])")).to_have_count(0)
    expect(field(page, "citizen.name").locator(".badge")).to_have_text("열람 불가")
    expect(field(page, "citizen.name").locator(".field__reason")).to_have_text("사유: 관할 구역 밖의 대상자입니다")
    screen_text = page.locator("#view-screen").inner_text()
    assert row["name"] not in screen_text and row["road_addr"] not in screen_text


def test_consent_required_fields_open_after_consent_is_recorded(page, site):
    row = gangnam_citizens(site, 1, offset=0)[0]
    open_screen(page, site, "lee.bokji", "basic_livelihood", f"{row['name']} {row['birth_date']}", "2026-복지-0101")
    gated = ["citizen.insured_type", "citizen.monthly_premium", "citizen.workplace_name",
             "citizen.insurance_dependants"]
    for fid in gated:
        expect(field(page, fid)).to_have_attribute("data-status", "CONSENT_REQUIRED")
        expect(field(page, fid).locator(".badge")).to_have_text("동의 필요")
    assert value(page, "citizen.name") == row["name"]  # the rest of the screen is there meanwhile
    first_id = page.locator("[data-meta=request-id]").inner_text()

    page.click("#consent-open")  # one consent action per screen
    dialog = page.locator("#consent-dialog")
    expect(dialog).to_be_visible()
    page.click("#consent-submit")  # no method chosen: the dialog says so and stays
    expect(page.locator("#consent-error")).to_have_text("동의 방법을 선택하세요.")
    expect(page.locator("#consent-exception-code")).to_be_disabled()
    page.check("#consent-written")
    page.click("#consent-submit")
    expect(dialog).to_be_hidden()
    expect(page.locator("[data-meta=request-id]")).not_to_have_text(first_id)
    wait_screen(page)
    nhis = site.rows("nhis_eligibility:SELECT * FROM eligibility WHERE rrn = ?", row["rrn"])[0]
    assert value(page, "citizen.insured_type") == nhis["insured_type"]
    assert value(page, "citizen.monthly_premium") == f"{nhis['mthly_prm']:,}"
    assert value(page, "citizen.workplace_name") == (nhis["workplace_nm"] or "값 없음")
    expect(page.locator("#sections .field[data-status=CONSENT_REQUIRED]")).to_have_count(0)


def test_one_consent_action_per_screen_confirms_visibly_and_marks_each_consent_based_value(page, site):
    """Issue 18: one consent action for the screen (not a button per field), bound to the screen's case; a
    visible confirmation after recording; every value shown on consent says so (method, recorder, time, case);
    another case of the same subject is not opened by it, but offers it for reuse, applied only once confirmed."""
    row = gangnam_citizens(site, 1, offset=5)[0]
    open_screen(page, site, "lee.bokji", "basic_livelihood", f"{row['name']} {row['birth_date']}", "2026-복지-0002")
    panel = page.locator("#consent-panel")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("4개 항목은 이 건(2026-복지-0002)에 대한 정보주체의 동의")
    expect(page.locator("button.consent")).to_have_count(1)  # one action for the four gated fields
    expect(page.locator("#sections button.consent")).to_have_count(0)
    page.click("#consent-open")
    expect(page.locator("#consent-case")).to_have_text("적용 대상 건: 2026-복지-0002")
    page.check("#consent-oral")
    page.click("#consent-submit")
    expect(page.locator("#consent-dialog")).to_be_hidden()
    confirmation = page.locator("#consent-in-force")
    expect(confirmation).to_be_visible()
    expect(confirmation).to_contain_text("동의를 기록했습니다. 이 건(2026-복지-0002)의 동의 항목을 표시합니다")
    expect(confirmation).to_contain_text("구두 동의 · 기록자 lee.bokji")
    expect(page.locator("#sections .field[data-status=CONSENT_REQUIRED]")).to_have_count(0)
    marks = page.locator("#sections .field__consent")
    expect(marks).to_have_count(4)
    for fid in ("citizen.insured_type", "citizen.monthly_premium", "citizen.workplace_name",
                "citizen.insurance_dependants"):
        mark = field(page, fid).locator(".field__consent")
        expect(mark).to_contain_text("동의 근거")
        expect(mark).to_contain_text("구두 동의 · 기록자 lee.bokji")
        expect(mark).to_contain_text("건 2026-복지-0002")
        expect(mark).to_contain_text(re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} KST"))
    expect(field(page, "citizen.name").locator(".field__consent")).to_have_count(0)  # the task's own basis

    # another case of the same subject: nothing opened, the consent offered for reuse, applied when confirmed
    page.click("#new-search")
    search_subject(page, "2026-복지-0011", f"{row['name']} {row['birth_date']}")
    page.click("#matches-body button.select")
    wait_screen(page)
    expect(page.locator("#sections .field[data-status=CONSENT_REQUIRED]")).to_have_count(4)
    expect(page.locator("#sections .field__consent")).to_have_count(0)
    offer = panel.locator("li[data-reuse-case='2026-복지-0002']")
    expect(offer).to_contain_text("구두 동의 · 기록자 lee.bokji")
    offer.locator("button.consent-reuse__ask").click()
    expect(offer.locator(".consent-reuse__confirm")).to_contain_text("건 2026-복지-0002에 기록된 동의를 이 건(2026-복지-0011)에도")
    assert focused(page, ".consent-reuse__yes")
    page.keyboard.press("Enter")  # the confirmation, by keyboard
    expect(page.locator("#consent-in-force")).to_contain_text("다른 건의 동의를 이 건(2026-복지-0011)에 재사용했습니다")
    expect(page.locator("#sections .field[data-status=CONSENT_REQUIRED]")).to_have_count(0)
    expect(field(page, "citizen.insured_type").locator(".field__consent")).to_contain_text("건 2026-복지-0011")
    expect(field(page, "citizen.insured_type").locator(".field__consent")).to_contain_text("다른 건에서 재사용")
    page.click("#lang-toggle")
    expect(field(page, "citizen.insured_type").locator(".field__consent")).to_contain_text(
        "On consent Oral consent · recorded by lee.bokji")
    page.click("#lang-toggle")
    source = axe_source()
    if source is not None:  # axe stays clean with the panel, its confirmation and the marks
        assert axe(page, source, "screen with a consent in force") == []


def test_building_screen_shows_the_unavailable_ledger_and_retries_only_its_fields(page, site):
    """Invariant 5 as the caseworker sees it: the building-HUB API is down, the rest of the screen is served."""
    from oneScreen.demo import agency_api

    b = site.rows("molit_building:SELECT * FROM bldg_title WHERE bldNm IS NOT NULL AND bldNm != '' "
                  "ORDER BY mgmBldrgstPk LIMIT 1 OFFSET 40")[0]
    address = b["newPlatPlc"]
    part = address.split(" ", 2)[2]  # without the city and district: part of the address
    sent = screen_requests(page)
    open_screen(page, site, "park.geonchuk", "building_use_change", part, "2026-건축-0033", match_text=address)
    assert value(page, "building.road_address") == address
    assert value(page, "building.register_id") == b["mgmBldrgstPk"]
    assert value(page, "building.main_purpose") == b["mainPurpsCdNm"]
    assert value(page, "building.floors_above_ground") == str(b["grndFlrCnt"])
    owners = site.rows("molit_building:SELECT owner_name FROM bldg_owner WHERE mgmBldrgstPk = ?", b["mgmBldrgstPk"])
    assert sorted(r[0] for r in table(page, "building.owners")) == sorted(o[0] for o in owners)

    hub = field(page, "building.parcel>parcel.buildings")
    expect(hub).to_have_attribute("data-status", "UNAVAILABLE")
    expect(hub.locator(".badge")).to_have_text("조회 실패")
    expect(hub.locator(".field__agency")).to_contain_text("국토교통부 건축HUB")
    expect(hub.locator(".field__reason")).to_contain_text("조회 실패")
    banner = page.locator("#unavailable")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("건축HUB")
    expect(page.locator("#sections .field[data-status=UNAVAILABLE]")).to_have_count(1)
    others = page.locator("#sections .field[data-status=OK]")
    ok_before = others.count()
    assert ok_before >= 15

    url, stop = agency_api.start_in_thread(site.data_dir / "demo", "x", port=site.hub_port)  # the agency is back
    try:
        hub.locator("button.retry").click()
        expect(hub).to_have_attribute("data-status", "OK")
    finally:
        stop()
    assert sent[-1]["fields"] == ["building.parcel>parcel.buildings"]  # only that ledger's fields again
    assert all(s["fields"] is None for s in sent[:-1])
    on_parcel = site.rows("molit_building:SELECT bldNm FROM bldg_title WHERE pnu = ?", b["pnu"])
    assert len(table(page, "building.parcel>parcel.buildings")) == len(on_parcel)
    expect(banner).to_be_hidden()
    expect(others).to_have_count(ok_before + 1)
    expect(page.locator("[data-meta=request-id]")).to_contain_text("재조회")
    assert focused(page, ".field[data-field='building.parcel>parcel.buildings'] .value")


# ---------------------------------------------------------------------------------------------- 5. print


def test_print_layout_has_the_case_header_and_no_chrome(page, site):
    rrn = citizen_with_vehicles(site)
    open_screen(page, site, "choi.chaeryang", "vehicle_transfer", rrn, "2026-차량-0500")
    page.emulate_media(media="print")
    for chrome in ["header.app-header", ".toolbar", "#nav-tasks", "#logout", "#lang-toggle", ".source-help",
                   "#view-subject", "button.retry, button.consent"]:
        for node in page.locator(chrome).all():
            expect(node).to_be_hidden()
    expect(page.locator(".screen-header__app")).to_be_visible()
    expect(page.locator("#screen-title")).to_have_text("자동차 이전등록")
    for key, text in {"basis": "자동차관리법 제12조(이전등록)", "case-ref": "2026-차량-0500",
                      "caseworker": "최차량 · 서울특별시 차량등록사업소"}.items():
        expect(page.locator(f"[data-meta={key}]")).to_have_text(text)
        expect(page.locator(f"[data-meta={key}]")).to_be_visible()
    expect(page.locator("[data-meta=request-id]")).to_have_text(REQUEST_ID)
    expect(page.locator("[data-meta=at]")).to_have_text(AS_OF)
    expect(field(page, "citizen.name").locator(".source")).to_be_visible()  # sources travel with the values
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF")
    page.emulate_media(media="screen")
    expect(page.locator("header.app-header")).to_be_visible()


# ---------------------------------------------------------------------------------------------- keyboard, language


def test_the_whole_flow_with_the_keyboard_alone(page, site):
    row = gangnam_citizens(site, 1, offset=1)[0]
    start(page, site)
    tab_to(page, "input[name=demo-user]")
    assert page.evaluate("getComputedStyle(document.activeElement.nextElementSibling).outlineStyle") == "solid"
    page.keyboard.press("ArrowDown")  # kim.jumin -> lee.bokji
    assert page.evaluate("document.activeElement.value") == "lee.bokji"
    tab_to(page, "#demo-submit")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    expect(page.locator("#view-tasks")).to_be_visible()
    assert focused(page, "#task-search")
    page.keyboard.type("급여 신청")
    page.keyboard.press("Enter")  # one task matches: Enter takes it
    expect(page.locator("#view-subject")).to_be_visible()
    assert focused(page, "#case-ref")
    page.keyboard.type("510922-2547567")  # an RRN is no case reference: refused before anything is sent
    page.keyboard.press("Tab")
    assert focused(page, "#subject-query")
    page.keyboard.type(f"{row['name']} {row['birth_date']}")
    page.keyboard.press("Enter")
    expect(page.locator("#case-ref-error")).to_contain_text("주민등록번호나 전화번호를 넣을 수 없습니다")
    assert focused(page, "#case-ref")
    page.keyboard.press("Control+A")
    page.keyboard.type("2026-복지-0777")
    page.keyboard.press("Tab")
    assert focused(page, "#subject-query")
    page.keyboard.press("Enter")
    expect(page.locator("#matches-body button.select")).to_have_count(1)
    expect(page.locator("#status[role=status][aria-live=polite]")).to_have_text("대상 1건을 찾았습니다. 선택하세요.")
    assert focused(page, "#matches-body button.select")
    page.keyboard.press("Enter")
    wait_screen(page)
    expect(page.locator("#status")).to_have_text(re.compile(r"^화면을 불러왔습니다: 항목 \d+개, 확인 필요 \d+개\.$"))
    assert value(page, "citizen.name") == row["name"]

    tab_to(page, ".field[data-field='citizen.rrn'] .value")  # the source shows on keyboard focus
    expect(field(page, "citizen.rrn").locator(".source")).to_be_visible()
    tab_to(page, "#consent-open")
    page.keyboard.press("Enter")
    expect(page.locator("#consent-dialog")).to_be_visible()
    assert focused(page, "#consent-written")
    for _ in range(3):
        page.keyboard.press("ArrowDown")  # written -> electronic -> oral -> exception
    assert focused(page, "#consent-exception")
    page.keyboard.press("Tab")
    assert focused(page, "#consent-exception-code")
    page.keyboard.press("ArrowDown")  # EMERGENCY -> DUTY_IMPOSITION
    assert page.evaluate("document.activeElement.value") == "DUTY_IMPOSITION"
    page.keyboard.press("Tab")
    assert focused(page, "#consent-submit")
    page.keyboard.press("Enter")
    expect(page.locator("#consent-dialog")).to_be_hidden()
    expect(page.locator("#sections .field[data-status=CONSENT_REQUIRED]")).to_have_count(0)
    wait_screen(page)
    nhis = site.rows("nhis_eligibility:SELECT insured_type FROM eligibility WHERE rrn = ?", row["rrn"])[0]
    assert value(page, "citizen.insured_type") == nhis[0]
    assert focused(page, ".field[data-field='citizen.insured_type'] .value")


def test_korean_first_with_an_english_toggle(page, site):
    row = jongno_citizen(site, 7)
    open_screen(page, site, "kim.jumin", "move_in_report", row["rrn"])
    assert page.evaluate("document.documentElement.lang") == "ko"
    expect(page.locator("#sections h2").first).to_contain_text("신고인")
    toggle = page.locator("#lang-toggle")
    expect(toggle).to_have_text("English")
    expect(toggle).to_have_attribute("lang", "en")
    toggle.click()
    assert page.evaluate("document.documentElement.lang") == "en"
    expect(page.locator("#sections h2").first).to_contain_text("Reporter")
    expect(field(page, "citizen.name").locator("dt")).to_have_text("Name")
    expect(field(page, "citizen.mobile_phone").locator(".badge")).to_have_text("Masked")
    expect(page.locator("#screen-title")).to_have_text("Move-in report")
    expect(page.locator("[data-meta=basis]")).to_have_text(
        "Resident Registration Act, Article 16 (report of change of residence)")
    expect(page.locator("#nav-tasks")).to_have_text("Tasks")
    expect(page.locator("#logout")).to_have_text("Sign out")
    expect(field(page, "citizen.household>household.members").locator("thead th").first).to_have_text("Name")
    expect(field(page, "citizen.name").locator(".source")).to_contain_text("Ministry of the Interior and Safety")
    assert value(page, "citizen.name") == row["name"]  # data stay as they are
    expect(toggle).to_have_text("한국어")
    assert focused(page, "#lang-toggle")
    toggle.click()
    expect(page.locator("#sections h2").first).to_contain_text("신고인")
    assert page.evaluate("document.documentElement.lang") == "ko"


def test_logout_clears_the_screen_and_the_token(page, site):
    row = jongno_citizen(site, 9)
    open_screen(page, site, "kim.jumin", "move_in_report", row["rrn"])
    token = page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')")
    assert token
    page.click("#logout")
    expect(page.locator("#view-signin")).to_be_visible()
    expect(page.locator("#logout")).to_be_hidden()
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
    stored = page.evaluate("JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])")
    assert token not in stored
    body = page.locator("body").inner_text()
    assert row["name"] not in body and row["road_addr"] not in body
    assert page.evaluate("document.querySelectorAll('#sections *, #matches-body *, #screen-meta *').length") == 0
    assert page.input_value("#case-ref") == "" and page.input_value("#subject-query") == ""
    page.reload()
    expect(page.locator("body[data-ready=true]")).to_be_attached()
    expect(page.locator("#view-signin")).to_be_visible()
    expect(page.locator("#logout")).to_be_hidden()


# ---------------------------------------------------------------------------------------------- wording


def english_strings() -> dict[str, str]:
    """Every English UI string of the caseworker and admin pages (i18n.js's `en` table, admin-i18n.js's EN)."""
    out = {}
    for name, start in (("i18n.js", "\n  en: {"), ("admin-i18n.js", "\nconst EN = {")):
        text = (FRONTEND / name).read_text(encoding="utf-8")
        block = text[text.index(start):]
        block = block[:block.index("\n};") if name == "admin-i18n.js" else block.index("\n  },")]
        out.update((k, json.loads(f'"{v}"')) for k, v in re.findall(r'^\s*"([\w.]+)": "((?:[^"\\]|\\.)*)",?$',
                                                                     block, re.M))
    assert len(out) > 300
    return out


def test_counts_agree_with_their_words_in_english(page, site):
    """No "1 matches found": every English string that counts something is rendered, as the pages render it, with
    each count 1 and 2, and the word after it agrees (1 match, 2 matches)."""
    strings = english_strings()
    counted = {k: v for k, v in strings.items() if re.search(r"\{(n|m|total|unmapped)\}", v)}
    assert "subject.found" in counted and "admin.task.previewed" in counted
    start(page, site)
    shown = page.evaluate("""async (keys) => {
        const i18n = await import("/i18n.js");
        await import("/admin-i18n.js");
        i18n.setLang("en");
        const all = {n: 0, m: 0, total: 0, unmapped: 0, task: "T", title: "S", page: 1, problems: "", id: 7,
                     file: "t.xlsx", added: 1, changed: 0, removed: 0, totalTasks: 405, roles: 1, users: 1, field: "F",
                     code: "c", caseRef: "2026-0001", from: 1, to: 2, shown: 1};
        const out = {};
        for (const k of keys) {
          out[k] = [1, 2].map((c) => i18n.t(k, {...all, n: c, m: c, total: c, unmapped: c}));
        }
        i18n.setLang("ko");
        return out;
    }""", sorted(counted))
    nouns = ["match", "task", "item", "entry", "field", "column", "ledger", "disclosure", "record", "subject"]
    plural_after_one = re.compile(r"\b1 (?:matches|entries|need|" + "|".join(n + "s" for n in nouns) + r")\b")
    singular_after_two = re.compile(r"\b2 (?:" + "|".join(nouns) + r"|needs)\b")
    for key, (one, two) in shown.items():
        assert not plural_after_one.search(one), (key, one)
        assert not singular_after_two.search(two), (key, two)
        assert "{" not in one + two, (key, one)
    assert shown["subject.found"] == ["1 match found. Choose it.", "2 matches found. Choose one."]


def test_one_match_is_announced_in_the_singular(page, site):
    row = jongno_citizen(site, 23)
    sign_in(page, site, "kim.jumin")
    page.click("#lang-toggle")
    choose_task(page, "move_in_report")
    search_subject(page, "2026-0001", row["rrn"])
    expect(page.locator("#matches-count")).to_have_text("1 match found. Choose it.")


def test_the_case_reference_hint_is_the_tasks_own(page, site):
    """A building permit's hint shows a building case reference (the task's case_ref_example), not a welfare one."""
    sign_in(page, site, "park.geonchuk")
    choose_task(page, "building_use_change")
    hint = page.locator("#case-ref-hint")
    expect(hint).to_contain_text("예: 2026-건축-0001")
    assert "복지" not in hint.inner_text()
    page.click("#logout")
    sign_in(page, site, "lee.bokji")
    choose_task(page, "basic_livelihood")
    expect(hint).to_contain_text("예: 2026-복지-0001")


def test_a_search_with_more_matches_than_shown_says_so(page, site):
    """합정동 matches 105 buildings: the page shows 20 and says there are more, instead of "대상 20건"."""
    sign_in(page, site, "park.geonchuk")
    choose_task(page, "building_use_change")
    search_subject(page, "2026-건축-0001", "합정동")
    expect(page.locator("#matches-body tbody tr")).to_have_count(20)
    count = page.locator("#matches-count")
    everyone = site.rows("molit_building:SELECT COUNT(*) FROM bldg_title WHERE platPlc LIKE '%합정동%' "
                         "OR newPlatPlc LIKE '%합정동%'")[0][0]
    expect(count).to_contain_text(f"{everyone}건 중 20건")
    expect(count).to_contain_text("검색어를 더 구체적으로")
    lot = site.rows("molit_building:SELECT platPlc FROM bldg_title WHERE platPlc LIKE '%합정동%' "
                    "ORDER BY mgmBldrgstPk LIMIT 1")[0][0]
    page.fill("#subject-query", lot.split("마포구 ", 1)[1])  # e.g. 합정동 307번지: down to the lot number
    page.click("#subject-submit")
    expect(count).to_have_text(re.compile(r"^대상 \d+건을 찾았습니다"))


def pause_timers(page: "Page") -> None:
    """Stop the page's timers (Playwright's clock) until `page.clock.run_for(...)`: what a timer would do later (an
    announcement still to come) is then checked at a moment the test chooses, not whenever the network answers."""
    now = time.time()
    page.clock.install(time=now)
    page.clock.pause_at(now + 1)


def test_a_status_line_ends_with_the_work_it_announced(page, site):
    """"검색하는 중…" must not stay after the search failed: the alert says how it ended. The page's timers run
    on a controlled clock, so the announcement that was still to come is checked too."""
    sign_in(page, site, "park.geonchuk")
    choose_task(page, "building_use_change")
    pause_timers(page)
    page.fill("#case-ref", "2026-건축-0002")
    page.fill("#subject-query", "%")  # one character: the server refuses it
    page.click("#subject-submit")
    expect(page.locator("#alert")).to_contain_text("주소 일부를 2자 이상")
    page.clock.run_for(1000)
    expect(page.locator("#status")).to_have_text("")


def test_every_english_record_table_shows_all_its_columns(page, site):
    """The English vehicle table's last column was cut off behind a scroll bar at 1280 px: headings now wrap
    between words, so every table of the screen fits its field."""
    rrn = citizen_with_vehicles(site)
    open_screen(page, site, "choi.chaeryang", "vehicle_transfer", rrn, "2026-차량-7")
    page.click("#lang-toggle")
    expect(field(page, "citizen.vehicles").locator("thead th").last).to_have_text("First registered")
    cut = page.evaluate("""() => [...document.querySelectorAll("#sections .table-wrap")]
        .filter((w) => w.scrollWidth > w.clientWidth + 1).map((w) => w.closest(".field").dataset.field)""")
    assert cut == []


# ---------------------------------------------------------------------------------------------- security, errors


def test_a_name_that_is_markup_shows_as_text(page, site):
    rrn = site.rows("mois_resident:SELECT rrn FROM resident WHERE name = ?", MARKUP_NAME)[0][0]
    open_screen(page, site, "kim.jumin", "move_in_report", rrn)
    assert value(page, "citizen.name") == MARKUP_NAME
    members = [r[0] for r in table(page, "citizen.household>household.members")]
    assert MARKUP_NAME in members
    expect(page.locator("[data-meta=subject]")).to_contain_text(MARKUP_NAME)
    assert page.locator("img").count() == 0
    assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0
    page.wait_for_timeout(300)
    assert page.dialogs == []
    # and should a future change reach for an HTML sink, the page's Trusted Types policy refuses it
    with pytest.raises(Exception, match="TrustedHTML"):
        page.evaluate("document.body.insertAdjacentHTML('beforeend', '<b>x</b>')")


def test_the_frontend_never_parses_data_as_markup():
    """Static guard for the rule the markup test exercises: no HTML parsing sinks, nothing inline for the CSP."""
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function"
                       r"|setAttribute\(\s*['\"]on")
    for js in FRONTEND.glob("*.js"):
        code = re.sub(r"/\*.*?\*/", "", js.read_text(encoding="utf-8"), flags=re.S)  # block comments
        code = re.sub(r"^[ \t]*//.*$", "", code, flags=re.M)  # line comments
        assert "function" in code, js.name  # only the comments went
        assert not sinks.search(code), js.name
        assert "localStorage" not in code, js.name  # the token: sessionStorage at most

    class Inline(html.parser.HTMLParser):
        problems: list[str] = []

        def handle_starttag(self, tag, attrs):
            names = {k for k, _ in attrs}
            if tag == "script" and "src" not in names:
                self.problems.append("inline script")
            if tag == "style" or "style" in names or any(n.startswith("on") for n in names):
                self.problems.append(f"inline style or handler on <{tag}>")
            if tag in ("script", "link") and any(v and "//" in v for k, v in attrs if k in ("src", "href")):
                self.problems.append("a resource from another origin")

    page = (FRONTEND / "index.html").read_text(encoding="utf-8")
    parser = Inline()
    parser.feed(page)
    assert parser.problems == []
    assert "require-trusted-types-for 'script'; trusted-types 'none'" in page  # HTML sinks throw in the browser


def offline(page: "Page") -> list[str]:
    """Abort every request the page makes to a host other than loopback (the network is off); returns them."""
    from urllib.parse import urlsplit
    refused: list[str] = []

    def route(r):
        host = urlsplit(r.request.url).hostname or ""
        if r.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost", "::1"):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort("internetdisconnected")

    page.route("**/*", route)
    return refused


def test_graphiql_works_offline_under_the_csp_with_a_demo_users_token(page, site):
    """GraphiQL (demo mode) loads only the package's files: with every non-loopback request refused it loads,
    under the same CSP as every page (nothing violates it), takes a demo user's token into its headers and runs a
    query. The token is never persisted to localStorage."""
    refused = offline(page)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning") else None)
    response = page.goto(site.base + "/graphql")
    assert "script-src 'self';" in response.headers["content-security-policy"]
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    expect(editor).to_be_visible()
    expect(page.locator("#os-signin")).to_be_visible()
    page.select_option("#os-user", "kim.jumin")
    page.click("#os-use-token")
    expect(page.locator("#os-status")).to_contain_text("kim.jumin's token")
    page.click(".graphiql-execute-button")
    result = page.locator(".result-window")
    expect(result).to_contain_text('"user": "kim.jumin"')
    expect(result).to_contain_text('"code": "move_in_report"')
    assert refused == [], refused  # nothing even tried to leave the machine
    assert not [m for m in console if "Content Security Policy" in m or "Refused to" in m], console
    storage = page.evaluate("JSON.stringify(Object.assign({}, localStorage))")
    assert "Bearer" not in storage and "eyJ" not in storage  # GraphiQL's history (with headers): the tab's only
    assert "graphiql:queries" in page.evaluate("Object.keys(sessionStorage).join()")


def test_graphiql_vendored_files_are_the_pinned_ones():
    """tools/fetch_graphiql.py's pins (the npm releases strawberry's own GraphiQL page pins by SRI), offline."""
    import importlib.util
    import sys
    spec = importlib.util.spec_from_file_location("fetch_graphiql", ROOT / "tools" / "fetch_graphiql.py")
    fetch_graphiql = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = fetch_graphiql  # its dataclasses look their module up
    spec.loader.exec_module(fetch_graphiql)
    assert fetch_graphiql.check() == []
    page = (ROOT / "oneScreen" / "static" / "graphiql" / "index.html").read_text(encoding="utf-8")
    assert "//" not in "".join(re.findall(r'(?:src|href)="([^"]*)"', page))  # nothing from another origin
    assert "<script>" not in page and "<style" not in page and " style=" not in page


def test_production_signs_in_with_the_organisations_sso_token(browser, data_dir, tmp_path):
    """No demo users outside demo mode: the caseworker pastes the bearer token their SSO issued."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from test_identity import CLAIMS, production_env

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = tmp_path / "sso.pem"
    keys.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    env = {k: v for k, v in production_env(data_dir, keys).items() if k.startswith("ONESCREEN_")}
    env.pop("ONESCREEN_DATA_DIR", None)
    now = int(time.time())
    sso_token = jwt.encode({**CLAIMS, "iat": now, "exp": now + 300}, private, algorithm="RS256")
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ko-KR")
    page = context.new_page()
    try:
        with serve(data_dir, tmp_path / "server.log", **env) as base:
            page.goto(base + "/")
            expect(page.locator("body[data-ready=true]")).to_be_attached()
            expect(page.locator("#demo-form")).to_be_hidden()
            expect(page.locator("#token-input")).to_be_visible()  # the token form is open, nothing to pick
            page.fill("#token-input", sso_token)
            page.click("#token-form button[type=submit]")
            expect(page.locator("#who")).to_have_text(f"{CLAIMS['name']} · {CLAIMS['org']}")
            expect(page.locator("button.task")).to_have_count(1)
            expect(page.locator("button.task")).to_contain_text("자동차 이전등록")
            assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") == sso_token
    finally:
        context.close()


def test_an_expired_sign_in_sends_the_caseworker_back_to_sign_in(page, site):
    row = jongno_citizen(site, 11)
    sign_in(page, site, "kim.jumin")
    choose_task(page, "move_in_report")
    expired = mint_demo_token(site.data_dir, "kim.jumin", ttl=-120)  # expired beyond the verifier's leeway
    page.evaluate("([k, v]) => sessionStorage.setItem(k, v)", [TOKEN_KEY, expired])
    page.fill("#case-ref", "2026-0001")
    page.fill("#subject-query", row["rrn"])
    page.click("#subject-submit")
    expect(page.locator("#view-signin")).to_be_visible()
    expect(page.locator("#alert[role=alert]")).to_contain_text("다시 로그인하세요")
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
    expect(page.locator("#logout")).to_be_hidden()

    # the organisation's SSO token, pasted: a bad one is refused with the same advice, a good one signs in
    page.locator("#token-details summary").click()
    page.fill("#token-input", expired)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#alert")).to_contain_text("다시 로그인하세요")
    page.fill("#token-input", "Bearer " + mint_demo_token(site.data_dir, "kim.jumin"))
    page.click("#token-form button[type=submit]")
    expect(page.locator("#who")).to_contain_text("김주민")
    expect(page.locator("#token-input")).to_have_value("")


def test_an_audit_outage_says_nothing_was_disclosed_and_what_to_do(page, site):
    """Invariant 7 as the caseworker sees it: no audit record, no data, and advice instead of a blank screen."""
    row = jongno_citizen(site, 13)
    open_screen(page, site, "kim.jumin", "move_in_report", row["rrn"])
    audit = site.data_dir / "audit.sqlite"
    with contextlib.closing(sqlite3.connect(audit, timeout=10)) as conn, conn:
        conn.execute("ALTER TABLE onescreen_audit RENAME TO onescreen_audit_away")  # the store breaks
    try:
        page.click("#reload")
        alert = page.locator("#alert")
        expect(alert).to_contain_text("아무 정보도 제공되지 않았습니다")
        expect(alert).to_contain_text("운영자에게 연락")
        expect(page.locator("#sections .placeholder--error").first).to_have_text("불러오지 못했습니다")
        assert row["name"] not in page.locator("#sections").inner_text()  # (the header keeps the search match)
        expect(page.locator("#sections .field[data-status=OK]")).to_have_count(0)
    finally:
        with contextlib.closing(sqlite3.connect(audit, timeout=10)) as conn, conn:
            conn.execute("ALTER TABLE onescreen_audit_away RENAME TO onescreen_audit")
    page.click("#reload")
    wait_screen(page)
    assert value(page, "citizen.name") == row["name"]


# ---------------------------------------------------------------------------------------------- auditor page


def test_the_auditor_pages_through_a_citizens_access_history(page, site):
    row = jongno_citizen(site, 15)
    query = ('query($s: ID!, $c: String!) { screen(task: "move_in_report", subject: $s, caseRef: $c) '
             '{ requestId } }')
    for i in range(1, 24):
        site.gql("kim.jumin", query, {"s": row["rrn"], "c": f"AUD-{i:02d}"})
    sign_in(page, site, "yoon.gamsa")
    expect(page.locator("#view-audit")).to_be_visible()  # an auditor has no task: the history is the start
    expect(page.locator("#nav-tasks")).to_be_hidden()
    page.fill("#audit-rrn", "12345")
    page.click("#audit-submit")
    expect(page.locator("#audit-rrn-error")).to_contain_text("900101-1234567")
    page.fill("#audit-rrn", row["rrn"])
    page.select_option("#audit-size", "10")
    page.click("#audit-submit")
    rows = page.locator("#audit-results tbody tr")
    expect(rows).to_have_count(10)
    first = rows.first.locator("td").all_inner_texts()
    assert AS_OF.fullmatch(first[0])
    assert first[1:7] == ["김주민 (kim.jumin)", "서울특별시 종로구청 민원여권과", "주민등록 담당 공무원", "전입신고",
                          "주민등록법 제16조(거주지 이동에 따른 신고)", "AUD-23"]
    outcomes = rows.first.locator(".history-fields li")
    expect(outcomes.filter(has_text="정상")).to_contain_text("성명")
    expect(outcomes.filter(has_text="일부 가림")).to_have_text("일부 가림 휴대전화번호")
    expect(page.locator("#audit-prev")).to_be_disabled()
    page.click("#audit-next")
    expect(page.locator("#audit-page")).to_have_text("2쪽")
    expect(rows.first.locator("td").nth(6)).to_have_text("AUD-13")
    page.click("#audit-next")
    expect(rows).to_have_count(3)
    expect(rows.last.locator("td").nth(6)).to_have_text("AUD-01")
    expect(page.locator("#audit-next")).to_be_disabled()
    assert focused(page, "#audit-results-title")
    page.click("#audit-prev")
    expect(page.locator("#audit-page")).to_have_text("2쪽")
    expect(rows.first.locator("td").nth(6)).to_have_text("AUD-13")


def test_a_citizen_sees_their_own_history_and_nobody_elses(page, site):
    own = site.rows("mois_resident:SELECT rrn FROM resident ORDER BY rrn LIMIT 1")[0][0]
    other = jongno_citizen(site, 17)["rrn"]
    sign_in(page, site, "demo.citizen")
    expect(page.locator("#receipts-title")).to_have_text("내 정보 이용내역")  # a citizen lands on their receipts
    page.click("#nav-audit")
    expect(page.locator("#audit-title")).to_have_text("내 정보 열람 기록")
    page.fill("#audit-rrn", other)
    page.click("#audit-submit")
    expect(page.locator("#alert")).to_contain_text("권한이 없습니다")
    expect(page.locator("#audit-results tbody tr")).to_have_count(0)
    page.fill("#audit-rrn", own)
    page.click("#audit-submit")
    expect(page.locator("#audit-results h2")).to_have_text("열람 기록 (1쪽)")


def test_a_late_answer_to_an_earlier_history_query_does_not_replace_the_latest_one(page, site):
    """A citizen's own history is asked for when the view opens; a query they submit before it answers is the
    one on screen: the earlier answer, arriving last (a loaded server), is dropped (it showed their own rows
    under another subject's refusal)."""
    other = jongno_citizen(site, 17)["rrn"]
    sign_in(page, site, "demo.citizen")
    expect(page.locator("#receipts-title")).to_have_text("내 정보 이용내역")
    held = []

    def hold(route):
        if json.loads(route.request.post_data or "{}").get("operationName") == "AccessHistory" and not held:
            held.append(route)  # the view's own-history query: answered after the submitted one
        else:
            route.continue_()

    page.route("**/graphql", hold)
    page.click("#nav-audit")
    expect(page.locator("#audit-title")).to_have_text("내 정보 열람 기록")
    page.wait_for_function("document.querySelector('#audit-results').getAttribute('aria-busy') === 'true'")
    assert len(held) == 1
    page.fill("#audit-rrn", other)
    page.click("#audit-submit")
    expect(page.locator("#alert")).to_contain_text("권한이 없습니다")
    held[0].continue_()
    page.wait_for_function("!document.querySelector('#audit-results').hasAttribute('aria-busy')")
    page.unroute("**/graphql")
    page.evaluate("() => new Promise((done) => setTimeout(done, 300))")  # the held answer has been handled
    expect(page.locator("#audit-results > *")).to_have_count(0)  # no history shown: not even "none found"


# ---------------------------------------------------------------------------------------------- layout, a11y


def test_sections_show_their_loading_state_and_nothing_jumps(page, site):
    row = jongno_citizen(site, 19)
    sign_in(page, site, "kim.jumin")
    choose_task(page, "move_in_report")
    search_subject(page, "2026-0001", row["rrn"])
    held = []

    def hold(route):
        if json.loads(route.request.post_data or "{}").get("operationName") == "Screen":
            held.append(route)  # answered below, once the loading state has been looked at
        else:
            route.continue_()

    page.route("**/graphql", hold)
    page.click("#matches-body button.select")
    sections = page.locator("#sections .screen-section")
    expect(sections).to_have_count(4)
    for s in sections.all():
        expect(s).to_have_attribute("aria-busy", "true")
        expect(s.locator(".section-loading")).to_be_visible()
    expect(page.locator("#sections .field[data-status=LOADING] .placeholder").first).to_have_text("불러오는 중…")
    assert page.locator("#sections .field").count() == page.locator("#sections .field[data-status=LOADING]").count()

    def boxes():
        return [page.locator(sel).bounding_box() for sel in
                ["#screen-title", "#sections", "#sections .screen-section >> nth=0",
                 "#sections .screen-section >> nth=1", "#sections h2 >> nth=0", "#sections h2 >> nth=1"]]

    before = boxes()
    assert len(held) == 1
    held[0].continue_()
    wait_screen(page)
    page.unroute("**/graphql")
    after = boxes()
    for b, a in zip(before, after):
        assert abs(b["x"] - a["x"]) < 1 and abs(b["y"] - a["y"]) < 1, (before, after)
    for s in sections.all():
        expect(s).to_have_attribute("aria-busy", "false")
        expect(s.locator(".section-loading")).to_be_hidden()


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800}, {"width": 640, "height": 400}],
                         ids=["1280x800", "200%-zoom"])
def test_the_screen_fits_at_1280x800_and_at_200_percent_zoom(browser, site, viewport):
    context = browser.new_context(viewport=viewport, device_scale_factor=2 if viewport["width"] == 640 else 1,
                                  locale="ko-KR")
    page = context.new_page()
    try:
        row = gangnam_citizens(site, 1, offset=2)[0]
        open_screen(page, site, "lee.bokji", "basic_livelihood", row["rrn"])
        no_overflow = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        assert page.evaluate(no_overflow)
        for sel in ["#logout", "#lang-toggle", "#print", "#screen-title", "[data-meta=request-id]"]:
            expect(page.locator(sel)).to_be_visible()
        widest = page.evaluate("Math.max(...[...document.querySelectorAll('.screen-section')]"
                               ".map(s => s.getBoundingClientRect().right))")
        assert widest <= viewport["width"]
        page.click("#nav-tasks")
        assert page.evaluate(no_overflow)
    finally:
        context.close()


def axe(page: "Page", source: str, context: str) -> list[str]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(source)  # through the DevTools protocol: the page's CSP stays as it is for the app
    found = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.filter(v => ['serious', 'critical'].includes(v.impact))
                 .map(v => `${v.id} (${v.impact}): ${v.nodes.map(n => n.target.join(' ')).join(', ')}`);
    }""")
    return [f"{context}: {v}" for v in found]


def test_axe_finds_no_serious_or_critical_violations(page, site):
    source = axe_source()
    need_service(source is not None, f"axe-core {AXE_VERSION} is not cached in {AXE_DIR} and npm could not fetch it")
    found: list[str] = []
    start(page, site)
    found += axe(page, source, "sign-in")
    page.click("label[for='demo-user-lee_bokji']")
    page.click("#demo-submit")
    expect(page.locator("#view-tasks")).to_be_visible()
    found += axe(page, source, "tasks")
    page.click("button.task[data-task='basic_livelihood']")
    row = gangnam_citizens(site, 1, offset=3)[0]
    page.click("#subject-submit")  # empty form: the field errors
    found += axe(page, source, "subject form with errors")
    search_subject(page, "2026-복지-0003", f"{row['name']} {row['birth_date']}")
    found += axe(page, source, "matches")
    page.click("#matches-body button.select")
    wait_screen(page)
    expect(page.locator("#sections .field[data-status=CONSENT_REQUIRED]").first).to_be_visible()
    found += axe(page, source, "screen")
    field(page, "citizen.name").locator(".value").focus()
    found += axe(page, source, "screen with a source tooltip")
    page.click("#consent-open")  # one consent action per screen
    expect(page.locator("#consent-dialog")).to_be_visible()
    found += axe(page, source, "consent dialog")
    page.keyboard.press("Escape")
    page.click("#lang-toggle")
    found += axe(page, source, "screen in English")
    page.click("#lang-toggle")
    page.click("#logout")
    sign_in(page, site, "yoon.gamsa")
    page.fill("#audit-rrn", row["rrn"])
    page.click("#audit-submit")
    expect(page.locator("#audit-results tbody tr").first).to_be_visible()
    found += axe(page, source, "access history")
    assert found == []


def test_a_partial_read_bad_values_and_the_records_date_are_shown_as_such(browser, demo_master, tmp_path):
    """The values portals send, as the caseworker sees them (on a server of its own: its building-HUB ledger
    reads one page of 100, and names crtnDay as its last-modified column): 119 buildings make the field
    "일부만 조회" with "119건 ... 100건" in its reason, a date that is no date is "값 오류" in its own cell and
    explained below the table (never repeated), padded text is trimmed, a blank is "—", the source gives the
    ledger's last update beside the time of the read, and no ledger is named unavailable. In English too."""
    from oneScreen.demo import agency_api

    data_dir = tmp_path / "data"
    shutil.copytree(demo_master, data_dir)
    catalog = tmp_path / "field_catalog.yaml"
    text = (ROOT / "field_catalog.yaml").read_text(encoding="utf-8")
    text = text.replace("      page_size: 100\n", "      page_size: 100\n      max_pages: 1\n", 1)
    catalog.write_text(text.replace("    timeout: 5\n", '    timeout: 5\n    last_modified_column: crtnDay\n'
                                                       '    last_modified_format: "%Y%m%d"\n', 1), encoding="utf-8")
    b = sample(data_dir, "molit_building:SELECT * FROM bldg_title ORDER BY mgmBldrgstPk LIMIT 1 OFFSET 7")[0]
    items = [{"bldNm": " 가동 ", "mainPurpsCdNm": "업무시설", "totArea": "812.5", "useAprDay": "20241399",
              "crtnDay": "20240301"}]
    items += [{"bldNm": f"{i}동", "mainPurpsCdNm": " ", "totArea": "100", "useAprDay": "20200101",
               "crtnDay": "20231115"} for i in range(2, 120)]
    url, stop = agency_api.start_in_thread(data_dir / "demo", "portal-key")
    try:
        httpx.post(f"{url}/_control/items", json={"pnu": b["pnu"], "items": items}, timeout=10).raise_for_status()
        with serve(data_dir, tmp_path / "server.log", ONESCREEN_CATALOG=str(catalog),
                   ONESCREEN_POLICIES=str(ROOT / "policies"), ONESCREEN_URL_MOLIT_BLDG_HUB=url,
                   ONESCREEN_KEY_MOLIT_BLDG_HUB="portal-key") as base:
            context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ko-KR",
                                          timezone_id="Asia/Seoul")
            page = context.new_page()
            page.set_default_timeout(15_000)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            site = Site(base, data_dir, 0, tmp_path / "server.log")
            open_screen(page, site, "park.geonchuk", "building_use_change", b["mgmBldrgstPk"], "2026-건축-0077")
            hub = field(page, "building.parcel>parcel.buildings")
            expect(hub).to_have_attribute("data-status", "PARTIAL")
            expect(hub.locator(".badge")).to_have_text("일부만 조회")
            expect(hub.locator(".field__reason")).to_contain_text("119건이 있으나 100건만 읽었습니다")
            rows = table(page, "building.parcel>parcel.buildings")
            assert len(rows) == 100 and rows[0] == ["가동", "업무시설", "812.5", "값 오류"]
            assert rows[1] == ["2동", "—", "100", "2020-01-01"]
            expect(hub.locator(".field__bad li")).to_have_text(
                ["1행 사용승인일 값 오류: 날짜가 아닙니다 (카탈로그의 형식: %Y%m%d)"])
            expect(page.locator("#unavailable")).to_be_hidden()
            hub.locator(".value").focus()
            source = hub.locator(".source")
            expect(source).to_be_visible()
            expect(source).to_contain_text("대장 최종 변경 2024-03-01")
            expect(source).to_contain_text(re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d KST 조회"))
            assert "20241399" not in page.content()
            page.click("#lang-toggle")
            expect(hub.locator(".badge")).to_have_text("Partial")
            expect(hub.locator(".field__reason")).to_contain_text("100 of 119 rows read")
            expect(hub.locator(".field__bad li")).to_have_text(
                ["Bad value, row 1, Use approval date: not a date (the catalog's format: %Y%m%d)"])
            context.close()
            assert errors == [], errors
    finally:
        stop()
