// The catalog browser: every ledger (agency, subject type, SQL or REST) and every field with its type,
// sensitivity, default mask and the tasks that use it; fields filter by text, ledger, sensitivity and use.

import {$, fill, h} from "./dom.js";
import {pick, t} from "./i18n.js";
import {admin, adminHooks, agencyName, ledgerName, maskText, mayOpen, searchCatalog, sensitivityBadge,
        showProblem, subjectLabel, taskLabel} from "./admin-common.js";

const SENSITIVITIES = ["public", "internal", "personal", "sensitive", "unique_id"];
const PAGE = 100;  // fields a page shows (the server searches; at most 200 a request)

let found = null;  // the last answer of GET /admin/catalog/fields: {total, offset, all, fields}
let asked = 0;     // the number of the last search asked (an older answer arriving late is dropped)

export function renderCatalogPage() {
  const cat = admin.catalog;
  if (!cat) {
    fill($("#admin-ledgers"), h("p", {class: "empty"}, t("admin.loading")));
    $("#admin-fields").replaceChildren();
    $("#admin-field-count").textContent = "";
    return;
  }
  renderFilterOptions();
  renderLedgers();
  renderFields();
  if (!found) search(0);
}

/** Ask the server for one page of the fields matching the filters. */
export async function search(offset = 0) {
  const f = admin.fieldFilter;
  const n = ++asked;
  try {
    const body = await searchCatalog("fields", {q: f.text.trim(), ledger: f.ledger, sensitivity: f.sensitivity,
                                                usage: f.usage, offset, limit: PAGE});
    if (n !== asked) return;
    found = body;
  } catch (err) {
    if (n === asked) showProblem(err);
    return;
  }
  if (admin.catalog) renderFields();
}

export function resetCatalogPage() {
  found = null;
  asked += 1;
}

function renderFilterOptions() {
  const f = admin.fieldFilter;
  fill($("#admin-filter-ledger"), h("option", {value: ""}, t("admin.catalog.allLedgers")),
    admin.catalog.ledgers.map((l) => h("option", {value: l.id, selected: l.id === f.ledger}, `${pick(l.name, l.nameEn)} (${l.id})`)));
  fill($("#admin-filter-sensitivity"), h("option", {value: ""}, t("admin.catalog.allSensitivities")),
    SENSITIVITIES.map((s) => h("option", {value: s, selected: s === f.sensitivity}, t(`admin.sens.${s}`))));
  fill($("#admin-filter-usage"), ["", "used", "unused"].map((u) =>
    h("option", {value: u, selected: u === f.usage}, t(`admin.catalog.usage.${u || "all"}`))));
  $("#admin-filter-text").value = f.text;
}

function renderLedgers() {
  const cat = admin.catalog;
  const headingId = "admin-ledgers-title";
  const cols = ["admin.catalog.ledger", "admin.catalog.agency", "admin.catalog.subject", "admin.catalog.connector",
                "admin.catalog.fieldCount", "admin.catalog.actions"];
  fill($("#admin-ledgers"), h("div", {class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": headingId},
    h("table", {class: "data-table admin-table", "aria-labelledby": headingId},
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", {scope: "col"}, t(c))))),
      h("tbody", {}, cat.ledgers.map((l) => {
        const n = l.fieldCount;
        const name = pick(l.name, l.nameEn);
        return h("tr", {"data-ledger": l.id},
          h("th", {scope: "row"}, h("span", {class: "admin-name"}, name), " ", h("code", {class: "admin-id"}, l.id)),
          h("td", {}, agencyName(l)),
          h("td", {}, subjectLabel(l.subject)),
          h("td", {}, t(`admin.connector.${l.connectorKind}`)),
          h("td", {class: "num"}, String(n)),
          h("td", {class: "actions-cell"},
            h("button", {type: "button", class: "btn btn--small", "aria-label": t("admin.catalog.showFieldsOf", {ledger: name}),
                         onclick: () => showLedgerFields(l.id)}, t("admin.catalog.showFields")),
            mayOpen("mapping") ? h("button", {type: "button", class: "btn btn--small",
                                            "aria-label": t("admin.catalog.mapColumnsOf", {ledger: name}),
                                            onclick: () => adminHooks.go("mapping", {ledger: l.id})},
                                 t("admin.catalog.mapColumns")) : null));
      })))));
}

function renderFields() {
  const box = $("#admin-fields");
  if (!found) {
    $("#admin-field-count").textContent = "";
    fill(box, h("p", {class: "empty"}, t("admin.loading")));
    return;
  }
  const fields = found.fields;
  const from = found.offset + 1;
  $("#admin-field-count").textContent = found.total === found.all
    ? t("admin.catalog.count", {n: found.total}) : t("admin.catalog.countFiltered", {n: found.total, total: found.all});
  if (!fields.length) {
    fill(box, h("p", {class: "empty"}, t("admin.catalog.none")));
    return;
  }
  const pager = h("nav", {class: "pager", "aria-label": t("admin.catalog.pages")},
    h("button", {type: "button", class: "btn btn--small", id: "admin-fields-prev", disabled: found.offset === 0,
                 onclick: () => search(Math.max(0, found.offset - PAGE))}, t("admin.catalog.prev")),
    " ", h("span", {id: "admin-fields-range"}, t("admin.catalog.range", {from, to: found.offset + fields.length,
                                                                        n: found.total})), " ",
    h("button", {type: "button", class: "btn btn--small", id: "admin-fields-next",
                 disabled: found.offset + fields.length >= found.total,
                 onclick: () => search(found.offset + PAGE)}, t("admin.catalog.next")));
  const headingId = "admin-fields-title";
  const cols = ["admin.catalog.fieldId", "admin.catalog.label", "admin.catalog.type", "admin.catalog.sensitivity",
                "admin.catalog.ledger", "admin.catalog.defaultMask", "admin.catalog.usedBy"];
  fill(box, pager, h("div", {class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": headingId},
    h("table", {class: "data-table admin-table fields-table", "aria-labelledby": headingId},
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", {scope: "col"}, t(c))))),
      h("tbody", {}, fields.map((f) => h("tr", {"data-field": f.id},
        h("th", {scope: "row"}, h("code", {class: "admin-id"}, f.id)),
        h("td", {}, pick(f.label, f.labelEn)),
        h("td", {}, typeText(f)),
        h("td", {}, sensitivityBadge(f.sensitivity)),
        h("td", {}, ledgerName(f.ledger), " ", h("span", {class: "hint-inline"}, f.sourceColumns.join(", "))),
        h("td", {}, f.type === "link" ? "—" : maskText(f.mask)),
        h("td", {class: "used-by"}, f.usedBy.length
          ? h("ul", {class: "plain-list"}, f.usedBy.map((code) => h("li", {}, taskLabel(code))))
          : h("span", {class: "unused"}, t("admin.catalog.unused")))))))));
}

function typeText(f) {
  const type = t(`admin.type.${f.type}`);
  if (f.type === "link") return t("admin.catalog.linkTo", {type, target: subjectLabel(f.target)});
  return f.cardinality === "many" ? t("admin.catalog.many", {type}) : type;
}

function showLedgerFields(ledger) {
  admin.fieldFilter = {text: "", ledger, sensitivity: "", usage: ""};
  renderFilterOptions();
  search(0);
  $("#admin-fields-title").focus();
}

function onFilter() {
  admin.fieldFilter = {
    text: $("#admin-filter-text").value,
    ledger: $("#admin-filter-ledger").value,
    sensitivity: $("#admin-filter-sensitivity").value,
    usage: $("#admin-filter-usage").value,
  };
  clearTimeout(typing);
  typing = setTimeout(() => search(0), 200);  // one request per pause in typing, not per key
}

let typing = 0;

export function bindCatalogPage() {
  const form = $("#admin-field-filter");
  form.addEventListener("input", onFilter);
  form.addEventListener("change", onFilter);
  form.addEventListener("submit", (event) => { event.preventDefault(); onFilter(); $("#admin-fields-title").focus(); });
}
