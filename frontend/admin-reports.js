// Catalog-wide reports for auditors and catalog admins: the field x task matrix (filtered by sensitivity,
// agency, field and task text, a page of rows at a time so that it stays usable at 405 tasks), fields no task
// uses, fields without a legal basis, roles no task names, and who sees a field in full. Each as CSV too.
// From GET /admin/reports/NAME (admin_http.py); nothing here reads a ledger value.

import {$, fill, h, saveFile} from "./dom.js";
import {pick, t} from "./i18n.js";
import {admin, adminGet, fieldOf, searchCatalog, selectRow, sensitivityBadge, showProblem} from "./admin-common.js";
import {announce, clearStatus} from "./ui.js";

let matrix = null;   // the last matrix answer
let other = null;    // {name, body} of the last other report
const SENS = ["", "public", "internal", "personal", "sensitive", "unique_id"];

export function resetReports() {
  matrix = null;
  other = null;
}

function get(name, params) {
  return adminGet(`/admin/reports/${name}`, params);
}

function matrixParams() {
  const p = [["q", $("#matrix-field").value.trim()], ["tasks", $("#matrix-tasks").value.trim()]];
  if ($("#matrix-sensitivity").value) p.push(["sensitivity", $("#matrix-sensitivity").value]);
  if ($("#matrix-agency").value) p.push(["agency", $("#matrix-agency").value]);
  if ($("#matrix-used").checked) p.push(["used", "1"]);
  return p;
}

export function cellText(status) {
  if (status === "-") return t("admin.reports.cell.none");
  if (status === "allow") return t("admin.reports.cell.allow");
  if (status === "consent") return t("admin.reports.cell.consent");
  const m = /^(consent\+)?mask:(.*)$/.exec(status);
  if (m) return `${m[1] ? t("admin.reports.cell.consent") + "+" : ""}${t("admin.reports.cell.mask")} ${m[2]}`;
  return status;
}

export function renderReportsPage() {
  const agencies = [...new Map((admin.catalog?.ledgers || []).map((l) => [l.agency, pick(l.agencyName, l.agencyNameEn)]))];
  const keep = (sel) => $(sel)?.value || "";
  fill($("#matrix-filter-selects"),
    selectRow("matrix-sensitivity", t("admin.catalog.sensitivity"),
      SENS.map((s) => [s, s ? t(`admin.sens.${s}`) : t("admin.reports.all")]), keep("#matrix-sensitivity")),
    selectRow("matrix-agency", t("admin.reports.agency"),
      [["", t("admin.reports.all")], ...agencies.sort()], keep("#matrix-agency")));
  renderMatrix();
  renderOther();
}

function renderMatrix() {
  const box = $("#report-matrix");
  if (!matrix) {
    fill(box, h("p", {class: "empty"}, t("admin.reports.matrixHint")));
    return;
  }
  const tasks = matrix.header.slice(5);
  const cap = t("admin.reports.matrixCount", {n: matrix.rows.length, total: matrix.totalRows, m: tasks.length,
                                             totalTasks: matrix.totalTasks});
  fill(box, h("p", {class: "count", id: "matrix-count"}, cap),
    h("div", {class: "table-scroll", tabindex: "0", role: "region", "aria-labelledby": "matrix-count"},
      h("table", {class: "data-table matrix"},
        h("caption", {class: "visually-hidden"}, t("admin.reports.matrix")),
        h("thead", {}, h("tr", {}, h("th", {scope: "col"}, t("admin.reports.field")),
          h("th", {scope: "col"}, t("admin.catalog.sensitivity")),
          tasks.map((c) => h("th", {scope: "col", "data-task": c, title: c},
            pick(...(matrix.taskNames[c] || [c, c])))))),
        h("tbody", {}, matrix.rows.map((r) => h("tr", {"data-field": r[0]},
          h("th", {scope: "row"}, `${pick(r[1], r[2])} (${r[0]})`),
          h("td", {}, sensitivityBadge(r[4])),
          r.slice(5).map((s, i) => h("td", {"data-task": tasks[i], "data-status": s, class: `grant grant--${s.split(":")[0].replace("+", "-")}`},
            cellText(s)))))))));
}

function renderOther() {
  const box = $("#report-other");
  if (!other) {
    box.replaceChildren();
    return;
  }
  const {name, body} = other;
  const summary = name === "full-view"
    ? h("p", {class: "count", id: "report-other-count"}, t("admin.reports.fullSummary",
        {field: body.field, n: body.tasks, roles: body.roles.length, users: body.users}))
    : h("p", {class: "count", id: "report-other-count"}, t("admin.reports.rows", {n: body.rows.length}));
  fill(box, summary, body.rows.length ? h("div", {class: "table-scroll", tabindex: "0", role: "region",
    "aria-labelledby": "report-other-count"},
    h("table", {class: "data-table", "data-report": name},
      h("caption", {class: "visually-hidden"}, t(`admin.reports.kind.${name}`)),
      h("thead", {}, h("tr", {}, body.header.map((k) => h("th", {scope: "col"}, k)))),
      h("tbody", {}, body.rows.map((r) => h("tr", {"data-key": r[0]}, r.map((v) => h("td", {}, String(v))))))))
    : h("p", {class: "empty"}, t("admin.reports.none")));
}

async function download(name, params) {
  try {
    const blob = await get(name, {...Object.fromEntries(params), format: "csv"});
    saveFile(blob, `${name}.csv`);
  } catch (err) {
    showProblem(err);
  }
}

function otherParams() {
  const name = $("#report-kind").value;
  return [name, name === "full-view" ? [["field", $("#report-field").value.trim()]] : []];
}

async function showOther(e) {
  e.preventDefault();
  const [name, params] = otherParams();
  const field = $("#report-field");
  const id = field.value.trim();
  // the field is looked up on the server (the page does not hold the catalog's 25,000 fields)
  if (name === "full-view" && !(id && (fieldOf(id) || (await searchCatalog("fields", {ids: id}).catch(() => ({fields: []})))
    .fields.length))) {
    $("#report-field-error").textContent = t("admin.reports.pickField");
    field.setAttribute("aria-invalid", "true");
    field.focus();
    return;
  }
  $("#report-field-error").textContent = "";
  field.removeAttribute("aria-invalid");
  announce(t("admin.loading"));
  try {
    const body = await get(name, params);
    other = {name, body: {...body, field: field.value.trim()}};
    clearStatus();
    renderOther();
    announce(t("admin.reports.rows", {n: body.rows.length}));
  } catch (err) {
    showProblem(err);
  }
}

function suggestFields() {
  const text = $("#report-field").value.trim().toLowerCase();
  const found = text ? (admin.catalog?.fields || []).filter((f) => f.type !== "link" &&
    (f.id.toLowerCase().includes(text) || f.label.toLowerCase().includes(text))).slice(0, 30) : [];
  fill($("#report-field-list"), found.map((f) => h("option", {value: f.id}, `${pick(f.label, f.labelEn)}`)));
}

export function bindReportsPage() {
  $("#admin-matrix-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    announce(t("admin.loading"));
    try {
      matrix = await get("matrix", matrixParams());
      clearStatus();
      renderMatrix();
      announce(t("admin.reports.matrixCount", {n: matrix.rows.length, total: matrix.totalRows,
                                               m: matrix.header.length - 5, totalTasks: matrix.totalTasks}));
    } catch (err) {
      showProblem(err);
    }
  });
  $("#matrix-csv").addEventListener("click", () => download("matrix", matrixParams()));
  $("#admin-report-form").addEventListener("submit", showOther);
  $("#report-csv").addEventListener("click", () => download(...otherParams()));
  $("#report-field").addEventListener("input", suggestFields);
  $("#report-kind").addEventListener("change", () => {
    $("#report-field-row").hidden = $("#report-kind").value !== "full-view";
  });
}
