// Bulk onboarding of tasks from the ministry's spreadsheet (.xlsx or .csv, the layout of `onescreen task template`):
// check it (every problem listed by row and column, nothing proposed) or propose it as ONE change, which a
// second admin approves on the changes page when it widens access. The upload goes to POST /admin/tasks/import.

import {ApiError} from "./api.js";
import {$, fill, h} from "./dom.js";
import {t} from "./i18n.js";
import {adminHooks, changeStatus, showProblem, wideningList} from "./admin-common.js";
import {announce, clearAlert, clearStatus, token} from "./ui.js";

let last = null;  // {kind: "problems"|"plan", body, name}
let busy = false;

export function resetImport() {
  last = null;
}

export function renderImportPage() {
  const box = $("#import-result");
  if (!last) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  box.hidden = false;
  if (last.kind === "problems") {
    const problems = last.body.problems || [];
    fill(box, h("div", {class: "problem", role: "alert", "data-code": "IMPORT_INVALID"},
      h("h2", {id: "import-result-title", tabindex: "-1", class: "problem__title"},
        t("admin.import.problems", {n: problems.length, file: last.name})),
      h("p", {class: "problem__why"}, t("admin.import.nothing")),
      h("table", {class: "data-table import-problems"},
        h("caption", {}, t("admin.import.problemsCaption")),
        h("thead", {}, h("tr", {}, ["row", "column", "reason"].map((k) => h("th", {scope: "col"}, t(`admin.import.${k}`))))),
        h("tbody", {}, problems.map((p) => h("tr", {"data-row": p.row, "data-column": p.column},
          h("td", {}, String(p.row)), h("td", {}, p.column), h("td", {lang: "en"}, p.reason)))))));
    return;
  }
  const b = last.body;
  const parts = [
    h("h2", {id: "import-result-title", tabindex: "-1"}, b.dryRun ? t("admin.import.checked") : t("admin.import.done")),
    h("p", {class: "import-summary", lang: "en"}, b.summary),
  ];
  if (b.changes.length) {
    parts.push(h("ul", {class: "import-diff"}, b.changes.map((c) => h("li", {"data-task": c.code, "data-kind": c.kind},
      h("p", {class: "import-diff__task"}, t(`admin.import.kind.${c.kind}`, {code: c.code})),
      h("ul", {}, c.lines.map((line) => h("li", {lang: "en", class: line.startsWith("widens") ? "widens" : null}, line)))))));
  } else {
    parts.push(h("p", {class: "empty"}, t("admin.import.unchanged")));
  }
  if (b.change) {
    parts.push(h("p", {class: "import-change", "data-change": b.change.id},
      t("admin.import.change", {id: b.change.id}), " ", changeStatus(b.change.status)));
    if (b.change.widening.length) parts.push(h("p", {}, t("admin.import.widens")), wideningList(b.change.widening));
    parts.push(h("button", {type: "button", class: "btn to-changes", onclick: () => adminHooks.go("changes")},
      t("admin.result.toChanges")));
  }
  fill(box, h("div", {class: "import-plan"}, parts));
}

async function send(dryRun) {
  if (busy) return;
  const file = $("#import-file").files[0];
  const error = $("#import-file-error");
  if (!file) {
    error.textContent = t("admin.import.pick");
    $("#import-file").setAttribute("aria-invalid", "true");
    $("#import-file").focus();
    return;
  }
  error.textContent = "";
  $("#import-file").removeAttribute("aria-invalid");
  busy = true;
  clearAlert();
  announce(t(dryRun ? "admin.import.checking" : "admin.import.proposing"));
  try {
    const response = await fetch(`/admin/tasks/import?name=${encodeURIComponent(file.name)}${dryRun ? "&dryRun=1" : ""}`, {
      method: "POST", body: file, credentials: "omit", cache: "no-store",
      headers: {"Authorization": `Bearer ${token()}`, "Content-Type": "application/octet-stream"}});
    const body = await response.json().catch(() => ({}));
    if (response.status === 422 && body.code === "IMPORT_INVALID") {
      last = {kind: "problems", body, name: file.name};
    } else if (!response.ok) {
      throw new ApiError(body.code || "HTTP", body.message || "", {status: response.status});
    } else {
      last = {kind: "plan", body, name: file.name};
    }
    clearStatus();
    renderImportPage();
    $("#import-result-title").focus();
    announce(last.kind === "problems" ? t("admin.import.problems", {n: last.body.problems.length, file: file.name})
      : t(dryRun ? "admin.import.checked" : "admin.import.done"));
  } catch (err) {
    showProblem(err instanceof ApiError ? err : new ApiError("NETWORK", "network error"), $("#import-result"));
  } finally {
    busy = false;
  }
}

export function bindImportPage() {
  $("#import-check").addEventListener("click", () => send(true));
  $("#import-propose").addEventListener("click", () => send(false));
  $("#admin-import-form").addEventListener("submit", (e) => { e.preventDefault(); send(true); });
}
