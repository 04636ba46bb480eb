"""8. The task spreadsheet and the catalog reports at national scale: 405 tasks over 500 ledgers x 50 fields.

The generated configuration of bench/configs.py (scale_config) is exported to a 405-task .xlsx (taskbook.export),
one task in ten is then edited in the sheet (a field dropped, a field's consent dropped: a widening), and:
- import + validation: taskbook.plan over the running configuration as the server holds it (the snapshot:
  admin.py passes it) and as the CLI does it (loading the configuration first), every row checked, the loaders
  and `policy lint` run over the whole new configuration, the per-task diff made;
- the proposal's own validation (changes.candidate, what admin.propose runs before storing the change);
- the task-by-task diff of the two configurations (reports.task_diff, `catalog report diff`);
- the field x task matrix: all of it as CSV (`catalog matrix --csv`) and one page of it (what the admin page asks);
- the admin pages' loads over HTTP: the whole catalog query they sent before, and now the small catalog query and
  one page of fields, a field search, a picker page, a task search (time and size);
- in chromium (when Playwright and chromium are here): a real `onescreen serve` over the configuration, the reports
  page opened (the admin catalog loaded), the matrix rendered for a task filter, the catalog page opened and
  searched by a Korean label, the task editor opened and its field picker searched, and the 405-task sheet
  uploaded for a check (dry run) until its per-task diff shows.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from .common import (ROOT, Identity, Proc, Result, Run, Target, base_env, free_port, http, say,
                     table, wait_http)
from .configs import scale_config

NAME = "tasks"
TITLE = "Task spreadsheet and catalog reports: import of 405 tasks over 500 ledgers, diff, matrix (also in chromium)"
FIELDS = 50
PERMISSIONS = ("permissions:\n  catalog.read: [role_0]\n  task.propose: [role_0]\n  task.approve: [role_0]\n"
               "  changes.read: [role_0]\n")


def _timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


def _edit(rows: list[list[str]]) -> tuple[list[list[str]], int]:
    """One task in ten: its last field dropped, and consent dropped where it asked for it (widening)."""
    from oneScreen.taskbook import COLUMNS
    col = {k: i for i, (k, _h, _d) in enumerate(COLUMNS)}
    by_task: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_task.setdefault(r[col["code"]], []).append(i)
    drop, edited = set(), 0
    for n, (code, idx) in enumerate(sorted(by_task.items())):
        if n % 10:
            continue
        edited += 1
        drop.add(idx[-1])
        for i in idx:
            if rows[i][col["consent"]]:
                rows[i][col["consent"]] = ""
    return [r for i, r in enumerate(rows) if i not in drop], edited


def run_bench(run: Run) -> Result:
    from oneScreen import changes, configstore, reports, taskbook
    from oneScreen.changes import FileChange

    res = Result(NAME, TITLE)
    ledgers, tasks = (20, 16) if run.smoke else (500, 405)
    d = run.tmp / "taskbook"
    catalog, policies, env = scale_config(d, ledgers, FIELDS, tasks)
    roles = policies / "roles.yaml"
    roles.write_text(roles.read_text(encoding="utf-8") + PERMISSIONS, encoding="utf-8")
    base = configstore.read_files(catalog, policies)
    (cat, pol), load_s = _timed(reports.load_files, base)
    say(f"  configuration: {len(cat.ledgers)} ledgers, {len(cat.fields)} fields, {len(pol.tasks)} tasks "
        f"(loaded in {load_s:.2f} s)")

    sheet = d / "tasks.xlsx"
    _n, export_s = _timed(taskbook.export, pol, sheet)
    rows, edited = _edit(taskbook.export_rows(pol))
    edited_sheet = d / "tasks-edited.xlsx"
    taskbook._write(edited_sheet, rows)
    say(f"  spreadsheet: {len(rows)} rows, {sheet.stat().st_size / 1024:.0f} KB as .xlsx; {edited} tasks edited")

    same, same_s = _timed(taskbook.plan, sheet, base, loaded=(cat, pol))
    assert not same.files, "an exported sheet must import to no change"
    warm, warm_s = _timed(taskbook.plan, edited_sheet, base, loaded=(cat, pol))
    cold, cold_s = _timed(taskbook.plan, edited_sheet, base)
    assert len(warm.changes) == edited == len(cold.changes), (len(warm.changes), edited)
    _c, candidate_s = _timed(changes.candidate, base, list(warm.files), catalog=cat)  # as admin.propose does
    new_files = configstore.changed(base, [(str(f.path), f.new) for f in warm.files])
    _cat2, new_pol = reports.load_files(new_files)
    diff, diff_s = _timed(reports.task_diff, pol, new_pol)
    widening = sum(1 for c in diff for line in c.lines if line.startswith("widens"))
    m, matrix_s = _timed(reports.matrix, cat, pol)
    csv_text, csv_s = _timed(m.csv)
    codes = sorted(pol.tasks)[:40]
    page, page_s = _timed(reports.matrix, cat, pol, tasks=codes, used_only=True)
    table(["step", "seconds", "what"], [
        ["export", f"{export_s:.2f}", f"{len(pol.tasks)} tasks -> .xlsx"],
        ["import unchanged", f"{same_s:.2f}", "read, check every row, load + lint, diff: no change"],
        ["import + validation (server)", f"{warm_s:.2f}", f"{len(warm.changes)} tasks changed; the snapshot reused"],
        ["import + validation (CLI)", f"{cold_s:.2f}", "loads the running configuration first"],
        ["proposal validation", f"{candidate_s:.2f}", "changes.candidate: policies + lint errors of the new "
                                                      "version, over the running catalog (admin.propose)"],
        ["task-by-task diff", f"{diff_s:.2f}", f"{len(diff)} tasks differ, {widening} widening lines"],
        ["matrix (all)", f"{matrix_s + csv_s:.2f}", f"{len(m.rows)} fields x {len(m.tasks)} tasks, "
                                                   f"{len(csv_text) / 1e6:.1f} MB CSV"],
        ["matrix page", f"{page_s:.2f}", f"{len(page.rows)} fields used by {len(codes)} tasks"],
    ])
    res.targets += [
        Target(f"import + validation, {len(pol.tasks)} tasks over {len(cat.ledgers)} ledgers (server)", warm_s, 5.0,
               "<", " s", f"CLI, cold: {cold_s:.2f} s; + proposal validation {candidate_s:.2f} s"),
        Target(f"task-by-task diff, {len(pol.tasks)} tasks", diff_s, 1.0, "<", " s"),
        Target(f"matrix as CSV, {len(m.rows)} fields x {len(m.tasks)} tasks", matrix_s + csv_s, 5.0, "<", " s"),
    ]
    _chromium(run, res, d, catalog, policies, env, edited_sheet, len(pol.tasks), ledgers - 10)
    say(f"  command: {run.command(NAME)}")
    return res


def _chromium(run: Run, res: Result, d: Path, catalog: Path, policies: Path, env_extra: dict[str, str],
              sheet: Path, n_tasks: int, probe: int) -> None:
    """`probe`: a ledger of subj_0 (its last field is searched for by its Korean label)."""
    label, fid = f"항목 {probe}-{FIELDS - 1}", f"subj_0.l{probe:04d}_f{FIELDS - 1:02d}"
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        res.not_measured["matrix page in chromium"] = "Playwright is not installed"
        return
    if not Path(chromium).exists():
        res.not_measured["matrix page in chromium"] = "chromium is not installed"
        return
    identity = Identity(run.tmp)
    audit = run.audit_url()  # production refuses any audit store but PostgreSQL
    port = free_port()
    (d / "data").mkdir(exist_ok=True)
    env = base_env(**identity.env(), **env_extra, ONESCREEN_CATALOG=str(catalog), ONESCREEN_POLICIES=str(policies),
                   ONESCREEN_AUDIT_URL=audit, ONESCREEN_DATA_DIR=str(d / "data"), ONESCREEN_HOST="127.0.0.1",
                   ONESCREEN_PORT=str(port))
    proc = Proc("oneScreen (tasks)", [sys.executable, "-m", "oneScreen.cli", "serve"], env=env, cwd=ROOT,
                log=run.tmp / "onescreen-tasks.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/healthz", proc, timeout=120)
        token = identity.token(["role_0"], user="bench.configurer")
        auth = {"Authorization": f"Bearer {token}"}
        http_s = []
        for _ in range(2):  # the same upload straight over HTTP, twice (the first warms the server's imports)
            t = time.perf_counter()
            status, _body = http(f"{base}/admin/tasks/import?name=tasks.xlsx&dryRun=1", data=sheet.read_bytes(),
                                 headers=auth, timeout=120)
            http_s.append(time.perf_counter() - t)
            if status != 200:
                raise RuntimeError(f"the upload answered {status}: {_body[:300]!r}")
        pages = _admin_http(base, auth, label)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="ko-KR")
            page.set_default_timeout(120_000)
            page.goto(base + "/")
            page.wait_for_selector("body[data-ready=true]", state="attached")
            page.fill("#token-input", token)
            page.click("#token-form button[type=submit]")
            page.wait_for_selector("#nav-admin-reports", state="visible")
            t = time.perf_counter()
            page.click("#nav-admin-reports")
            page.wait_for_selector("#matrix-agency option >> nth=1", state="attached")
            open_s = time.perf_counter() - t
            page.wait_for_selector("#status:has-text('카탈로그 보고서 화면입니다.')", state="attached")
            page.fill("#matrix-tasks", "task_00")  # a task filter, as a configurer narrows the columns
            t = time.perf_counter()
            page.click("#matrix-show")
            page.wait_for_selector("#report-matrix table tbody tr")
            page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
            matrix_s = time.perf_counter() - t
            cells = page.locator("#report-matrix td[data-task]").count()
            t = time.perf_counter()
            page.fill("#matrix-tasks", "")
            page.click("#matrix-show")
            page.locator("#report-matrix th[data-task]").nth(min(40, n_tasks) - 1).wait_for()
            page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
            matrix_all_s = time.perf_counter() - t
            t = time.perf_counter()
            page.click("#nav-admin-catalog")
            page.wait_for_selector("#admin-fields tbody tr")
            page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
            catalog_s = time.perf_counter() - t
            t = time.perf_counter()
            page.fill("#admin-filter-text", label)  # a Korean label, searched on the server
            page.wait_for_selector(f"#admin-fields tr[data-field='{fid}']")
            search_s = time.perf_counter() - t
            t = time.perf_counter()
            page.click("#nav-admin-task")
            page.wait_for_selector("#task-open option[value='task_0000']", state="attached")
            page.click("#task-open-submit")
            page.wait_for_selector("#task-picker-groups [data-pick]")
            task_s = time.perf_counter() - t
            t = time.perf_counter()
            page.fill("#task-picker-filter", label)
            page.wait_for_selector(f"#task-picker-groups [data-pick='{fid}']")
            picker_s = time.perf_counter() - t
            page.click("#nav-admin-import")
            page.wait_for_selector("#view-admin-import:not([hidden])")
            page.set_input_files("#import-file", str(sheet))
            t = time.perf_counter()
            page.click("#import-check")
            page.wait_for_selector("#import-result li[data-task]")
            upload_s = time.perf_counter() - t
            browser.close()
    finally:
        proc.stop()
    table(["admin pages over HTTP", "seconds", "KB", "what"], [
        ["before: whole catalog", f"{pages['old_s']:.2f}", f"{pages['old_kb']:.0f}",
         "the catalog query the pages sent before (every field and task definition)"],
        ["after: catalog query", f"{pages['small_s']:.2f}", f"{pages['small_kb']:.0f}",
         "ledgers, subject types, roles, task names"],
        ["after: a page of fields", f"{pages['fields_s']:.2f}", f"{pages['fields_kb']:.0f}",
         "GET /admin/catalog/fields?limit=100"],
        ["after: field search", f"{pages['search_s']:.2f}", f"{pages['search_kb']:.1f}",
         "GET /admin/catalog/fields?q=<a Korean label>"],
        ["after: picker page", f"{pages['picker_s']:.2f}", f"{pages['picker_kb']:.0f}",
         "GET /admin/catalog/picker?subject=...&limit=50"],
        ["after: task search", f"{pages['tasks_s']:.2f}", f"{pages['tasks_kb']:.0f}", "GET /admin/catalog/tasks?q="],
    ])
    table(["in chromium", "seconds", "what"], [
        ["catalog page opened", f"{catalog_s:.2f}", "the small catalog query and the first 100 fields shown"],
        ["catalog search", f"{search_s:.2f}", "a Korean label typed, the one field found on the server"],
        ["task editor opened", f"{task_s:.2f}", "a task opened, the picker's first 50 paths shown"],
        ["picker search", f"{picker_s:.2f}", "a Korean label typed in the picker, found"],
        ["reports page opened", f"{open_s:.2f}", "the admin catalog query (no fields now) and the filters"],
        ["matrix, task filter", f"{matrix_s:.2f}", f"{cells} cells rendered"],
        ["matrix, first 40 tasks", f"{matrix_all_s:.2f}", "200 rows x 40 tasks (the page's most)"],
        ["405-task sheet checked", f"{upload_s:.2f}", "upload, validation, per-task diff shown"],
        ["the same over HTTP", f"{http_s[-1]:.2f}", f"POST /admin/tasks/import?dryRun=1 (first: {http_s[0]:.2f} s)"],
    ])
    opened = pages["small_kb"] + pages["fields_kb"]
    res.targets += [
        Target(f"admin catalog page opened in chromium, {(probe + 10) * FIELDS:,} fields", catalog_s, 2.0, "<", " s",
               f"before: the whole catalog, {pages['old_s']:.2f} s over HTTP alone ({pages['old_kb'] / 1024:.1f} MB)"),
        Target("what an admin page loads when it opens (catalog query + 100 fields)", opened, 500, "<", " KB",
               f"before: {pages['old_kb']:.0f} KB"),
        Target("task editor opened with its field picker in chromium", task_s, 2.0, "<", " s",
               f"picker search {picker_s:.2f} s, catalog search {search_s:.2f} s"),
        Target("matrix page rendered in chromium (first 40 tasks x 200 fields)", matrix_all_s, 2.0, "<", " s",
               f"task-filtered: {matrix_s:.2f} s; page opened in {open_s:.2f} s"),
        Target("405-task sheet uploaded and checked in chromium", upload_s, 5.0, "<", " s",
               f"over HTTP alone: {http_s[-1]:.2f} s"),
    ]


OLD_CATALOG = """query AdminCatalog { catalog {
    ledgers { id name nameEn agency agencyName agencyNameEn subject rows connectorKind }
    fields { id label labelEn type sensitivity ledger cardinality mask target sourceColumns usedBy
             columns { name label labelEn type } }
    subjectTypes { id label labelEn }
    roles { id label labelEn actions }
    maskStrategies
    tasks { code name nameEn legalBasis legalBasisEn subject roles jurisdiction caseRefExample subjectsPerRequest
            consentValidDays yaml sections { title titleEn fields { field id mask fullValueBasis consent } } }
  } }"""  # what the admin pages asked for when they opened, before the catalog was searched on the server


def _admin_http(base: str, auth: dict[str, str], label: str) -> dict[str, float]:
    """What an admin page loads, over HTTP: the whole catalog as before, and the small query and pages now."""
    import json
    from urllib.parse import quote

    def timed(url: str, query: str | None = None) -> tuple[float, float]:
        best = None
        for _ in range(2):  # the second: the server's search index built, as every later request finds it
            t = time.perf_counter()
            if query is None:
                status, body = http(url, headers=auth, timeout=120)
            else:
                status, body = http(url, data=json.dumps({"query": query}).encode(),
                                    headers={**auth, "Content-Type": "application/json"}, timeout=120)
            took = time.perf_counter() - t
            if status != 200 or b'"errors"' in body[:200]:
                raise RuntimeError(f"{url} answered {status}: {body[:300]!r}")
            best = took if best is None else min(best, took)
        return best, len(body) / 1024

    small = OLD_CATALOG.replace("""    fields { id label labelEn type sensitivity ledger cardinality mask target sourceColumns usedBy
             columns { name label labelEn type } }
""", "").split("    tasks {")[0] + "    taskNames { code name nameEn subject }\n  } }"
    out: dict[str, float] = {}
    out["old_s"], out["old_kb"] = timed(base + "/graphql", OLD_CATALOG)
    out["small_s"], out["small_kb"] = timed(base + "/graphql", small)
    out["fields_s"], out["fields_kb"] = timed(base + "/admin/catalog/fields?limit=100")
    out["search_s"], out["search_kb"] = timed(base + "/admin/catalog/fields?q=" + quote(label))
    out["picker_s"], out["picker_kb"] = timed(base + "/admin/catalog/picker?subject=subj_0&limit=50")
    out["tasks_s"], out["tasks_kb"] = timed(base + "/admin/catalog/tasks?q=" + quote("사무 4"))
    return out
