"""Regenerate the screenshots in docs/ (1280x800) from a real `onescreen serve` and Debian's chromium.

    python tests/make_screenshots.py [--out docs]

docs/screen-ko.png  the one screen of a welfare application (기초생활보장 급여 신청), Korean, a source tooltip shown
docs/screen-en.png  the same screen in English
docs/print.png      the same screen as printed (@media print)
docs/import.png     the admin pages' bulk task import: a spreadsheet with problems, listed by row and column

Uses the demo ledgers (synthetic people only), generated afresh in a temporary directory.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from playwright.sync_api import sync_playwright  # noqa: E402

from oneScreen.demo import ledgers as demo_ledgers  # noqa: E402
from test_frontend import CHROMIUM, Site, field, gangnam_citizens, launch, open_screen, serve, sign_in  # noqa: E402
from test_taskbook import PENSION, row as sheet_row, write_xlsx  # noqa: E402

VIEWPORT = {"width": 1280, "height": 800}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs", help="directory for the PNGs (docs/)")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium fonts-noto-cjk", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        demo_ledgers.ensure(data / "demo")
        log = Path(tmp) / "server.log"
        with serve(data, log) as base, sync_playwright() as p:
            site = Site(base, data, 0, log)
            browser = launch(p)
            page = browser.new_page(viewport=VIEWPORT, locale="ko-KR", timezone_id="Asia/Seoul")
            row = gangnam_citizens(site, 1)[0]
            open_screen(page, site, "lee.bokji", "basic_livelihood", f"{row['name']} {row['birth_date']}",
                        "2026-복지-0001")
            field(page, "citizen.address").locator(".value").hover()  # a value's source, as on hover or focus
            page.screenshot(path=str(args.out / "screen-ko.png"))
            page.click("#lang-toggle")
            page.evaluate("document.activeElement && document.activeElement.blur()")
            field(page, "citizen.address").locator(".value").hover()
            page.screenshot(path=str(args.out / "screen-en.png"))
            page.click("#lang-toggle")
            page.mouse.move(0, 0)
            page.evaluate("document.activeElement && document.activeElement.blur()")
            page.emulate_media(media="print")
            page.screenshot(path=str(args.out / "print.png"))
            page.emulate_media(media="screen")
            import_page = browser.new_page(viewport=VIEWPORT, locale="ko-KR", timezone_id="Asia/Seoul")
            sign_in(import_page, site, "oh.samu")
            import_page.click("#nav-admin-import")
            sheet = Path(tmp) / "사무목록.xlsx"
            write_xlsx(sheet, [
                sheet_row(**PENSION, fields="성명\n주민등록번호\ncitizen.residence > 주용도"),
                sheet_row(code="pension_check", fields="연금 수령액"),
                sheet_row(**{**PENSION, "code": "disability_check", "name": "장애인 등록 확인", "basis": None,
                       "roles": "사회복지 담당 공무원, 연금 담당자"}, fields="성명"),
            ])
            import_page.set_input_files("#import-file", str(sheet))
            import_page.click("#import-check")
            import_page.locator("#import-result tr[data-row]").first.wait_for()
            import_page.evaluate("document.activeElement && document.activeElement.blur()")
            import_page.screenshot(path=str(args.out / "import.png"))
            browser.close()
    for name in ("screen-ko.png", "screen-en.png", "print.png", "import.png"):
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
