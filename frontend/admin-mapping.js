// Column mapping (catalog admins): a ledger's real source columns beside the catalog fields mapped to them,
// the unmapped ones marked in words and by a symbol (not by colour alone), and a form that proposes mapping
// one column to a new catalog field. The server checks the column against the live source.

import {$, fill, h} from "./dom.js";
import {pick, t} from "./i18n.js";
import {AQ, admin, adminHooks, call, changeStatus, diffView, fieldLabel, ledgerOf, loadCatalog, showProblem,
        summaryText, wideningList} from "./admin-common.js";
import {announce, clearAlert, setFieldError} from "./ui.js";

const ID_RE = /^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$/;
const TYPES = ["string", "integer", "number", "date", "boolean"];
const SENSITIVITIES = ["public", "internal", "personal", "sensitive", "unique_id"];

export function renderMappingPage() {
  const m = admin.mapping;
  renderLedgerOptions();
  renderFormOptions();
  const form = $("#admin-map-form");
  form.hidden = !m.columns;
  renderColumns();
  renderResult();
}

function renderLedgerOptions() {
  const select = $("#admin-map-ledger");
  const current = select.value || admin.mapping.ledger;
  const ledgers = admin.catalog?.ledgers || [];
  fill(select, h("option", {value: ""}, t("admin.mapping.pickLedger")),
    ledgers.map((l) => h("option", {value: l.id, selected: l.id === current},
      `${pick(l.name, l.nameEn)} (${l.id}) · ${pick(l.agencyName, l.agencyNameEn)}`)));
}

function renderFormOptions() {
  keepSelect("#map-type", TYPES.map((x) => [x, t(`admin.type.${x}`)]));
  keepSelect("#map-sensitivity", SENSITIVITIES.map((x) => [x, t(`admin.sens.${x}`)]), "personal");
  keepSelect("#map-mask", [["", t("admin.mask.none")], ...(admin.catalog?.maskStrategies || [])
    .map((x) => [x, t(`admin.mask.${x}`)])]);
  const ledger = ledgerOf(admin.mapping.ledger);
  keepSelect("#map-cardinality", [["", t("admin.mapping.cardinalityDefault", {rows: ledger ? t(`admin.rows.${ledger.rows}`) : "—"})],
    ["one", t("admin.rows.one")], ["many", t("admin.rows.many")]]);
  // unmapped first in the column picker; the table keeps the source's order
  const columns = [...(admin.mapping.columns || [])].sort((x, y) => Number(x.fields.length > 0) - Number(y.fields.length > 0));
  keepSelect("#map-column", columns.map((c) => [c.name, c.fields.length
    ? t("admin.mapping.columnMapped", {name: c.name, type: c.type})
    : t("admin.mapping.columnUnmapped", {name: c.name, type: c.type})]));
}

/** Refill a select's options (language, ledger), keeping what the admin chose. */
function keepSelect(selector, options, fallback = "") {
  const select = $(selector);
  const value = select.value || fallback;
  fill(select, options.map(([v, text]) => h("option", {value: v, selected: v === value}, text)));
}

function renderColumns() {
  const box = $("#admin-columns");
  const m = admin.mapping;
  if (!m.columns) {
    fill(box, h("p", {class: "empty"}, t("admin.mapping.noLedger")));
    return;
  }
  const ledger = ledgerOf(m.ledger);
  const name = ledger ? pick(ledger.name, ledger.nameEn) : m.ledger;
  const unmapped = m.columns.filter((c) => !c.fields.length);
  const headingId = "admin-columns-title";
  const cols = ["admin.mapping.column", "admin.mapping.sourceType", "admin.mapping.samples", "admin.mapping.state",
                "admin.mapping.fields", "admin.catalog.actions"];
  fill(box,
    h("h2", {id: headingId, tabindex: "-1"}, t("admin.mapping.columnsOf", {ledger: name})),
    h("p", {class: "count", id: "admin-columns-summary"},
      t("admin.mapping.summary", {n: m.columns.length, unmapped: unmapped.length})),
    h("div", {class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": headingId},
      h("table", {class: "data-table admin-table columns-table", "aria-labelledby": headingId,
                  "aria-describedby": "admin-columns-summary"},
        h("thead", {}, h("tr", {}, cols.map((c) => h("th", {scope: "col"}, t(c))))),
        h("tbody", {}, m.columns.map((c) => {
          const mapped = c.fields.length > 0;
          return h("tr", {class: mapped ? "col-row" : "col-row col-row--unmapped", "data-column": c.name,
                          "data-mapped": mapped ? "true" : "false"},
            h("th", {scope: "row"}, h("code", {}, c.name)),
            h("td", {}, c.type),
            // sample values to map by: the server masks them unless the column only feeds open fields
            h("td", {class: "samples-cell"}, c.samples?.length
              ? h("ul", {class: "plain-list samples"}, c.samples.map((v) => h("li", {}, h("code", {}, v))))
              : h("span", {class: "placeholder"}, t("admin.mapping.noSamples"))),
            h("td", {}, h("span", {class: `mapstate mapstate--${mapped ? "mapped" : "unmapped"}`},
              t(mapped ? "admin.mapping.mapped" : "admin.mapping.unmapped"))),
            h("td", {}, mapped
              ? h("ul", {class: "plain-list"}, c.fields.map((f) => h("li", {}, fieldLabel(f), " ", h("code", {class: "admin-id"}, f))))
              : "—"),
            h("td", {class: "actions-cell"}, mapped ? null : h("button", {
              type: "button", class: "btn btn--small map-column", "data-column": c.name,
              "aria-label": t("admin.mapping.mapThisLabel", {column: c.name}), onclick: () => startMapping(c)},
            t("admin.mapping.mapThis"))));
        })))));
}

function renderResult() {
  const box = $("#admin-map-result");
  const p = admin.mapping.result;
  if (!p) {
    if (!admin.mapping.problem) { box.hidden = true; box.replaceChildren(); }
    return;
  }
  box.hidden = false;
  fill(box, h("div", {class: "card result", "data-change": p.id, "data-status": p.status},
    h("h2", {id: "admin-map-result-title", tabindex: "-1"}, t("admin.result.title", {id: p.id}), " ", changeStatus(p.status)),
    h("p", {}, summaryText(p.summary)),
    h("p", {}, t(p.status === "applied" ? "admin.mapping.appliedNote" : "admin.result.pendingNote")),
    p.widening.length ? [h("h3", {}, t("admin.result.widening")), wideningList(p.widening)] : null,
    h("h3", {}, t("admin.result.diff")),
    diffView(p.diff, t("admin.result.diffLabel", {id: p.id})),
    h("button", {type: "button", class: "btn to-changes", onclick: () => adminHooks.go("changes")}, t("admin.result.toChanges"))));
}

export async function openMapping(ledger) {
  admin.mapping = {ledger, columns: null, result: null, problem: null};
  $("#admin-map-ledger").value = ledger;
  const data = await call(AQ.columns, {ledger});
  admin.mapping.columns = data.ledgerColumns;
}

async function onLedgerSubmit(event) {
  event.preventDefault();
  clearAlert();
  const ledger = $("#admin-map-ledger").value;
  if (!ledger) {
    $("#admin-map-ledger").focus();
    return;
  }
  announce(t("admin.mapping.reading"));
  try {
    await openMapping(ledger);
  } catch (err) {
    admin.mapping.columns = null;
    renderMappingPage();
    showProblem(err);
    return;
  }
  renderMappingPage();
  const unmapped = admin.mapping.columns.filter((c) => !c.fields.length).length;
  announce(t("admin.mapping.summary", {n: admin.mapping.columns.length, unmapped}));
  $("#admin-columns-title").focus();
}

function startMapping(column) {
  const ledger = ledgerOf(admin.mapping.ledger);
  $("#map-column").value = column.name;
  const snake = column.name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase().replace(/[^a-z0-9_]/g, "_");
  $("#map-id").value = `${ledger?.subject || "citizen"}.${snake}`;
  // the server's proposal (catalog.propose_type): identifiers and integers wider than 2^53 are strings
  $("#map-type").value = column.proposedType;
  for (const sel of ["#map-id", "#map-label", "#map-label-en"]) setFieldError($(sel), $(`${sel}-error`), "");
  $("#map-form-title").scrollIntoView({block: "start"});
  $("#map-id").focus();
  $("#map-id").select();
}

function readForm() {
  return {
    id: $("#map-id").value.trim(),
    ledger: admin.mapping.ledger,
    column: $("#map-column").value,
    type: $("#map-type").value,
    label: $("#map-label").value.trim(),
    labelEn: $("#map-label-en").value.trim(),
    sensitivity: $("#map-sensitivity").value,
    mask: $("#map-mask").value || null,
    format: $("#map-format").value.trim() || null,
    cardinality: $("#map-cardinality").value || null,
  };
}

function checkForm(input) {
  const ledger = ledgerOf(input.ledger);
  const checks = [
    ["#map-id", !ID_RE.test(input.id) ? t("admin.mapping.idInvalid")
      : ledger && !input.id.startsWith(`${ledger.subject}.`) ? t("admin.mapping.idSubject", {subject: ledger.subject}) : ""],
    ["#map-label", input.label ? "" : t("admin.mapping.labelEmpty")],
    ["#map-label-en", input.labelEn ? "" : t("admin.mapping.labelEmpty")],
    ["#map-mask", input.sensitivity === "unique_id" && !input.mask ? t("admin.mapping.maskNeeded") : ""],
  ];
  let first = null;
  for (const [sel, message] of checks) {
    setFieldError($(sel), $(`${sel}-error`), message);
    if (message && !first) first = $(sel);
  }
  return first;
}

async function onMapSubmit(event) {
  event.preventDefault();
  clearAlert();
  const input = readForm();
  const wrong = checkForm(input);
  if (wrong) {
    wrong.focus();
    return;
  }
  const button = $("#map-submit");
  button.disabled = true;
  $("#admin-map-form").setAttribute("aria-busy", "true");
  announce(t("admin.mapping.proposing"));
  try {
    const data = await call(AQ.map, {input});
    admin.mapping.result = data.proposeFieldMapping;
    admin.mapping.problem = null;
    await loadCatalog({force: true});
    const ledger = admin.mapping.ledger;
    const result = admin.mapping.result;
    await openMapping(ledger);
    admin.mapping.result = result;
    $("#admin-map-form").reset();
    renderMappingPage();
    announce(t(result.status === "applied" ? "admin.mapping.applied" : "admin.result.pending", {id: result.id}));
    $("#admin-map-result-title").focus();
  } catch (err) {
    admin.mapping.result = null;
    admin.mapping.problem = err;
    showProblem(err, $("#admin-map-result"));
  } finally {
    button.disabled = false;
    $("#admin-map-form").removeAttribute("aria-busy");
  }
}

export function bindMappingPage() {
  $("#admin-ledger-form").addEventListener("submit", onLedgerSubmit);
  $("#admin-map-form").addEventListener("submit", onMapSubmit);
  $("#map-cancel").addEventListener("click", () => {
    $("#admin-map-form").reset();
    $("#admin-columns-title")?.focus();
  });
}
