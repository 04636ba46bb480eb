// Access history: who saw a citizen's data, when, for which task and legal basis, and which fields;
// for auditors (any citizen, by RRN) and for citizens (themselves). Paged with the server's cursors.

import {Q, gql} from "./api.js";
import {$, fill, h} from "./dom.js";
import {pick, roleLabel, t} from "./i18n.js";
import {announce, badge, clearAlert, formatTime, handleError, may, setFieldError, show, state, token} from "./ui.js";

const RRN_RE = /^\d{6}-[1-8]\d{6}$/;

export function goAudit() {
  show("audit");
  renderAudit();
  $("#audit-rrn").focus();
}

export function renderAudit() {
  const citizenOnly = (state.me?.roles || []).includes("citizen") && !may("access_history.read");
  $("#audit-title").textContent = t(citizenOnly ? "audit.titleCitizen" : "audit.title");
  const a = state.audit;
  const box = $("#audit-results");
  const pager = $("#audit-pager");
  if (a.entries === null) {
    box.replaceChildren();
    pager.hidden = true;
    return;
  }
  const page = a.page + 1;
  const headingId = "audit-results-title";
  const heading = h("h2", {id: headingId, tabindex: "-1"}, t("audit.caption", {page}));
  if (!a.entries.length) {
    fill(box, heading, h("p", {class: "empty"}, t("audit.none")));
  } else {
    const cols = ["audit.at", "audit.user", "audit.organisation", "audit.role", "audit.task", "audit.basis",
                  "audit.caseRef", "audit.fields"];
    const rows = a.entries.map((e) => h("tr", {},
      h("td", {}, formatTime(new Date(e.at))),
      h("td", {}, e.user),
      h("td", {}, e.organisation),
      h("td", {}, roleLabel(e.role)),
      h("td", {}, taskName(e.task)),
      h("td", {}, e.legalBasis),
      h("td", {}, e.caseRef || "—"),
      h("td", {class: "history-fields-cell"}, renderFields(e.fields))));
    fill(box, heading, h("div", {class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": headingId},
      h("table", {class: "data-table history-table", "aria-labelledby": headingId},
        h("thead", {}, h("tr", {}, cols.map((c) => h("th", {scope: "col"}, t(c))))),
        h("tbody", {}, rows))));
  }
  pager.hidden = false;
  $("#audit-page").textContent = t("audit.page", {page});
  $("#audit-prev").disabled = a.page === 0 || a.loading;
  $("#audit-next").disabled = !a.next || a.loading;
}

/** The fields of one access, grouped by outcome: "정상 citizen.name, citizen.rrn…", "일부 가림 citizen.rrn". */
function renderFields(fields) {
  const byStatus = new Map();
  for (const f of fields) {
    if (!byStatus.has(f.status)) byStatus.set(f.status, []);
    byStatus.get(f.status).push(f.id);
  }
  return h("ul", {class: "history-fields"}, [...byStatus].map(([status, ids]) => h("li", {"data-status": status},
    badge(status), " ", h("span", {class: "history-fields__ids"}, ids.join(", ")))));
}

function taskName(code) {
  const task = state.tasks.find((x) => x.code === code);
  return task ? `${pick(task.name, task.nameEn)} (${code})` : code;
}

async function onAuditSubmit(event) {
  event.preventDefault();
  clearAlert();
  const input = $("#audit-rrn");
  const rrn = input.value.trim();
  const ok = RRN_RE.test(rrn);
  setFieldError(input, $("#audit-rrn-error"), ok ? "" : t("audit.rrnInvalid"));
  if (!ok) { input.focus(); return; }
  Object.assign(state.audit, {rrn, size: Number($("#audit-size").value) || 20, cursors: [null], page: 0,
                              entries: null, next: null});
  await loadAuditPage();
}

async function loadAuditPage(previousPage = null) {
  const a = state.audit;
  a.loading = true;
  $("#audit-results").setAttribute("aria-busy", "true");
  announce(t("audit.searching"));
  try {
    const data = await gql(token(), Q.accessHistory, {subject: a.rrn, first: a.size, after: a.cursors[a.page]});
    a.entries = data.accessHistory.entries;
    a.next = data.accessHistory.nextCursor;
    a.cursors[a.page + 1] = a.next;
    a.loading = false;
    renderAudit();
    announce(t("audit.loaded", {n: a.entries.length, page: a.page + 1}));
    $("#audit-results-title")?.focus();
  } catch (err) {
    a.loading = false;
    if (previousPage !== null) a.page = previousPage;  // the page on screen is still the one before
    renderAudit();
    handleError(err);
  } finally {
    $("#audit-results").removeAttribute("aria-busy");
  }
}

function auditPage(delta) {
  const a = state.audit;
  const page = a.page + delta;
  if (page < 0 || (delta > 0 && !a.next) || a.loading) return;
  const previous = a.page;
  a.page = page;
  loadAuditPage(previous);
}

export function bindAudit() {
  $("#audit-form").addEventListener("submit", onAuditSubmit);
  $("#audit-prev").addEventListener("click", () => auditPage(-1));
  $("#audit-next").addEventListener("click", () => auditPage(1));
}
