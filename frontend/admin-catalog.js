// The catalog browser: every ledger (agency, subject type, SQL or REST) and every field with its type,
// sensitivity, default mask and the tasks that use it; fields filter by text, ledger, sensitivity and use.

import {$, fill, h} from "./dom.js";
import {pick, t} from "./i18n.js";
import {admin, adminHooks, agencyName, ledgerName, maskText, mayOpen, sensitivityBadge, subjectLabel,
        taskLabel} from "./admin-common.js";

const SENSITIVITIES = ["public", "internal", "personal", "sensitive", "unique_id"];

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
        const n = cat.fields.filter((f) => f.ledger === l.id).length;
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

function visibleFields() {
  const f = admin.fieldFilter;
  const q = f.text.trim().toLowerCase();
  return admin.catalog.fields.filter((x) => {
    if (f.ledger && x.ledger !== f.ledger) return false;
    if (f.sensitivity && x.sensitivity !== f.sensitivity) return false;
    if (f.usage === "used" && !x.usedBy.length) return false;
    if (f.usage === "unused" && x.usedBy.length) return false;
    if (!q) return true;
    return [x.id, x.label, x.labelEn, ...x.sourceColumns].some((s) => (s || "").toLowerCase().includes(q));
  });
}

function renderFields() {
  const all = admin.catalog.fields;
  const fields = visibleFields();
  $("#admin-field-count").textContent = fields.length === all.length
    ? t("admin.catalog.count", {n: all.length}) : t("admin.catalog.countFiltered", {n: fields.length, total: all.length});
  const box = $("#admin-fields");
  if (!fields.length) {
    fill(box, h("p", {class: "empty"}, t("admin.catalog.none")));
    return;
  }
  const headingId = "admin-fields-title";
  const cols = ["admin.catalog.fieldId", "admin.catalog.label", "admin.catalog.type", "admin.catalog.sensitivity",
                "admin.catalog.ledger", "admin.catalog.defaultMask", "admin.catalog.usedBy"];
  fill(box, h("div", {class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": headingId},
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
  renderCatalogPage();
  $("#admin-fields-title").focus();
}

function onFilter() {
  admin.fieldFilter = {
    text: $("#admin-filter-text").value,
    ledger: $("#admin-filter-ledger").value,
    sensitivity: $("#admin-filter-sensitivity").value,
    usage: $("#admin-filter-usage").value,
  };
  if (admin.catalog) renderFields();
}

export function bindCatalogPage() {
  const form = $("#admin-field-filter");
  form.addEventListener("input", onFilter);
  form.addEventListener("change", onFilter);
  form.addEventListener("submit", (event) => { event.preventDefault(); onFilter(); $("#admin-fields-title").focus(); });
}
