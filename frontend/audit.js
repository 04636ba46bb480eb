// Access history: who saw a subject's data, when, for which task and legal basis, and which fields (by their
// labels, "거주 건축물 › 주용도"), with reads that rest on the subject's consent marked. For auditors (a
// citizen by RRN, a building or a parcel by its number) and for citizens (their own, from their sign-in:
// nothing to type). Narrowed by officer, task, case and period; paged with the server's cursors; exported
// as CSV (UTF-8 with a BOM for Excel, every cell quoted; ids, names and outcomes, never a value).
// A table on a desk, a card per access on a phone (app.css).

import {Q, gql} from "./api.js";
import {$, fill, h, saveFile} from "./dom.js";
import {addStrings, pick, roleLabel, t} from "./i18n.js";
import {announce, badge, clearAlert, formatTime, handleError, may, setFieldError, show, showAlert, state,
        token} from "./ui.js";

addStrings({
  ko: {
    "audit.typeLabel": "대상 유형",
    "audit.type.citizen": "국민(개인)",
    "audit.type.building": "건축물",
    "audit.type.parcel": "토지(필지)",
    "audit.keyLabel.citizen": "정보주체 주민등록번호",
    "audit.keyLabel.building": "건축물대장 관리번호",
    "audit.keyLabel.parcel": "필지고유번호(PNU, 19자리)",
    "audit.keyHint.building": "예: 11110-100000001",
    "audit.keyHint.parcel": "예: 1111010100100010000",
    "audit.keyInvalid.building": "건축물대장 관리번호를 영문, 숫자, - 로 5~40자 입력하세요.",
    "audit.keyInvalid.parcel": "필지고유번호 19자리 숫자를 입력하세요.",
    "audit.ownLabel": "주민등록번호 (비워 두면 내 기록)",
    "audit.ownHint": "로그인한 본인의 기록을 보여 줍니다. 번호를 입력할 필요가 없습니다.",
    "audit.onlyOwn": "본인의 열람 기록만 볼 수 있습니다. 다른 사람의 기록을 볼 권한이 없습니다.",
    "audit.filters": "조건 (선택)",
    "audit.filterUser": "열람자 ID",
    "audit.filterTask": "사무",
    "audit.anyTask": "전체 사무",
    "audit.filterCase": "접수번호",
    "audit.filterSince": "시작일",
    "audit.filterUntil": "종료일 (포함)",
    "audit.periodInvalid": "종료일은 시작일과 같거나 그 뒤여야 합니다.",
    "audit.consent": "동의",
    "audit.consentBased": "동의 기반 열람",
    "audit.csv": "CSV로 내려받기",
    "audit.csvWorking": "CSV 파일을 만드는 중…",
    "audit.csvDone": "열람 기록 {n}건을 CSV 파일로 내려받았습니다.",
    "audit.csvCut": "열람 기록이 너무 많아 처음 {n}건만 CSV 파일에 담았습니다. 조건을 좁혀 다시 내려받으세요.",
    "audit.yes": "예",
    "audit.no": "아니요",
    "audit.csv.userId": "열람자 ID",
    "audit.csv.taskCode": "사무 코드",
  },
  en: {
    "audit.typeLabel": "Subject type",
    "audit.type.citizen": "Citizen",
    "audit.type.building": "Building",
    "audit.type.parcel": "Parcel",
    "audit.keyLabel.citizen": "The citizen's resident registration number",
    "audit.keyLabel.building": "Building register number",
    "audit.keyLabel.parcel": "Parcel number (PNU, 19 digits)",
    "audit.keyHint.building": "e.g. 11110-100000001",
    "audit.keyHint.parcel": "e.g. 1111010100100010000",
    "audit.keyInvalid.building": "Type the building register number: 5-40 letters, digits or -.",
    "audit.keyInvalid.parcel": "Type the 19-digit parcel number.",
    "audit.ownLabel": "Resident registration number (empty: your own)",
    "audit.ownHint": "Shows the history of the person signed in: there is no number to type.",
    "audit.onlyOwn": "You can see only your own access history: you may not see anyone else's.",
    "audit.filters": "Filters (optional)",
    "audit.filterUser": "Officer (user id)",
    "audit.filterTask": "Task",
    "audit.anyTask": "All tasks",
    "audit.filterCase": "Case reference",
    "audit.filterSince": "From",
    "audit.filterUntil": "To (inclusive)",
    "audit.periodInvalid": "The end date must be on or after the start date.",
    "audit.consent": "Consent",
    "audit.consentBased": "Read on consent",
    "audit.csv": "Download CSV",
    "audit.csvWorking": "Making the CSV file…",
    "audit.csvDone": "{n} {n|entry|entries} of the access history downloaded as a CSV file.",
    "audit.csvCut": "Too many entries: the CSV file holds the first {n}. Narrow the filters and download again.",
    "audit.yes": "yes",
    "audit.no": "no",
    "audit.csv.userId": "Officer id",
    "audit.csv.taskCode": "Task code",
  },
});

const KEY_RE = {citizen: /^\d{6}-[1-8]\d{6}$/, building: /^[0-9A-Za-z-]{5,40}$/, parcel: /^\d{19}$/};
const CSV_PAGE = 100;
const CSV_MAX_PAGES = 50;  // at most 5,000 entries in one file: every wait has a bound

function citizenOnly() {
  return (state.me?.roles || []).includes("citizen") && !may("access_history.read");
}

export function goAudit() {
  show("audit");
  const a = state.audit;
  if (a.formFor !== state.me?.user) {  // a new sign-in: the form starts empty
    a.formFor = state.me?.user;
    for (const sel of ["#audit-rrn", "#audit-user", "#audit-case", "#audit-since", "#audit-until"]) $(sel).value = "";
    $("#audit-type").value = "citizen";
    $("#audit-task").value = "";
    $("#audit-csv").hidden = true;
  }
  renderAudit();
  if (citizenOnly() && a.entries === null && !a.loading) {
    // their own history, at once: who they are comes from their sign-in
    Object.assign(a, {rrn: null, type: "citizen", filters: {}, size: 20, cursors: [null], page: 0, entries: null,
                      next: null});
    loadAuditPage();
    return;
  }
  $(citizenOnly() ? "#audit-title" : "#audit-rrn").focus();
}

function renderForm() {
  const own = citizenOnly();
  const type = own ? "citizen" : $("#audit-type").value;
  $("#audit-type-row").hidden = own;
  $("#audit-rrn").required = !own;
  $("#audit-rrn").setAttribute("inputmode", type === "building" ? "text" : "numeric");
  $("#audit-rrn-label").textContent = own ? t("audit.ownLabel") : t(`audit.keyLabel.${type}`);
  $("#audit-rrn-hint").textContent = own ? t("audit.ownHint") : t(type === "citizen" ? "audit.rrnHint" : `audit.keyHint.${type}`);
  const select = $("#audit-task");
  const chosen = select.value;
  const tasks = new Map(state.tasks.map((x) => [x.code, pick(x.name, x.nameEn)]));
  for (const e of state.audit.entries || []) if (!tasks.has(e.task)) tasks.set(e.task, pick(e.taskName, e.taskNameEn) || e.task);
  for (const code of state.audit.seenTasks || []) if (!tasks.has(code[0])) tasks.set(code[0], pick(code[1], code[2]) || code[0]);
  fill(select, h("option", {value: ""}, t("audit.anyTask")),
    [...tasks].map(([code, name]) => h("option", {value: code}, name === code ? code : `${name} (${code})`)));
  select.value = tasks.has(chosen) ? chosen : "";
}

export function renderAudit() {
  $("#audit-title").textContent = t(citizenOnly() ? "audit.titleCitizen" : "audit.title");
  renderForm();
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
    const cell = (key, ...content) => h("td", {"data-label": t(key)}, ...content);
    const rows = a.entries.map((e) => h("tr", {"data-consent": e.consentBased ? "true" : "false"},
      cell("audit.at", formatTime(new Date(e.at))),
      cell("audit.user", officer(e)),
      cell("audit.organisation", e.organisation),
      cell("audit.role", roleLabel(e.role)),
      cell("audit.task", h("span", {}, taskName(e), e.consentBased
        ? [" ", h("span", {class: "badge badge--consent-required consent-mark"}, t("audit.consentBased"))] : null)),
      cell("audit.basis", e.legalBasis),
      cell("audit.caseRef", e.caseRef || "—"),
      h("td", {class: "history-fields-cell", "data-label": t("audit.fields")}, renderFields(e.fields))));
    fill(box, heading, h("div", {class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": headingId},
      h("table", {class: "data-table history-table", "aria-labelledby": headingId},
        h("thead", {}, h("tr", {}, cols.map((c) => h("th", {scope: "col"}, t(c))))),
        h("tbody", {}, rows))));
  }
  pager.hidden = false;
  $("#audit-csv").hidden = !a.entries.length && a.page === 0;
  $("#audit-page").textContent = t("audit.page", {page});
  $("#audit-prev").disabled = a.page === 0 || a.loading;
  $("#audit-next").disabled = !a.next || a.loading;
}

function officer(e) {
  return e.userName ? `${e.userName} (${e.user})` : e.user;
}

/** The fields of one access, grouped by outcome: "정상 성명, 주소 …", "일부 가림 휴대전화번호". */
function renderFields(fields) {
  const byStatus = new Map();
  for (const f of fields) {
    if (!byStatus.has(f.status)) byStatus.set(f.status, []);
    byStatus.get(f.status).push(f);
  }
  return h("ul", {class: "history-fields"}, [...byStatus].map(([status, list]) => h("li", {"data-status": status},
    badge(status), " ",
    h("span", {class: "history-fields__ids"}, list.map((f, i) => [i ? ", " : "",
      h("span", {class: "history-field", "data-field": f.id, title: f.id}, pick(f.label, f.labelEn) || f.id)])))));
}

function taskName(e) {
  const own = state.tasks.find((x) => x.code === e.task);
  const name = own ? pick(own.name, own.nameEn) : pick(e.taskName, e.taskNameEn);
  return name || e.task;
}

/** The filters of the form, as the API takes them (a date range is whole days, Korean time). */
function readFilters() {
  const since = $("#audit-since").value;
  const until = $("#audit-until").value;
  const filters = {};
  const user = $("#audit-user").value.trim();
  const task = $("#audit-task").value;
  const caseRef = $("#audit-case").value.trim();
  if (user) filters.user = user;
  if (task) filters.task = task;
  if (caseRef) filters.caseRef = caseRef;
  if (since) filters.since = `${since}T00:00:00+09:00`;
  if (until) {
    const next = new Date(`${until}T00:00:00+09:00`);
    next.setTime(next.getTime() + 24 * 3600 * 1000);
    filters.until = next.toISOString();
  }
  return filters;
}

async function onAuditSubmit(event) {
  event.preventDefault();
  clearAlert();
  const input = $("#audit-rrn");
  const own = citizenOnly();
  const type = own ? "citizen" : $("#audit-type").value;
  const key = input.value.trim();
  const ok = (own && !key) || KEY_RE[type].test(key);
  setFieldError(input, $("#audit-rrn-error"), ok ? "" : t(type === "citizen" ? "audit.rrnInvalid" : `audit.keyInvalid.${type}`));
  if (!ok) { input.focus(); return; }
  const since = $("#audit-since").value;
  const until = $("#audit-until").value;
  const periodOk = !since || !until || since <= until;
  setFieldError($("#audit-until"), $("#audit-period-error"), periodOk ? "" : t("audit.periodInvalid"));
  if (!periodOk) { $("#audit-until").focus(); return; }
  Object.assign(state.audit, {rrn: key || null, type, filters: readFilters(),
                              size: Number($("#audit-size").value) || 20, cursors: [null], page: 0,
                              entries: null, next: null});
  await loadAuditPage();
}

function variables(a, first, after) {
  const v = {first, after, subjectType: a.type || "citizen", ...a.filters};
  if (a.rrn) v.subject = a.rrn;
  return v;
}

function problem(err) {
  if (err?.code === "TASK_FORBIDDEN" && citizenOnly()) {
    showAlert(t("audit.onlyOwn"), err.requestId);
    return;
  }
  handleError(err);
}

let auditQuery = 0;  // the latest query asked for: an answer to an earlier one, arriving later, is dropped

async function loadAuditPage(previousPage = null) {
  const a = state.audit;
  const mine = ++auditQuery;
  a.loading = true;
  $("#audit-results").setAttribute("aria-busy", "true");
  announce(t("audit.searching"));
  try {
    const data = await gql(token(), Q.accessHistory, variables(a, a.size, a.cursors[a.page]));
    if (mine !== auditQuery) return;  // (a citizen's own history, asked for on opening, overtaken by a submit)
    a.entries = data.accessHistory.entries;
    a.next = data.accessHistory.nextCursor;
    a.cursors[a.page + 1] = a.next;
    a.seenTasks = [...(a.seenTasks || []), ...a.entries.map((e) => [e.task, e.taskName, e.taskNameEn])];
    a.loading = false;
    renderAudit();
    announce(t("audit.loaded", {n: a.entries.length, page: a.page + 1}));
    $("#audit-results-title")?.focus();
  } catch (err) {
    if (mine !== auditQuery) return;
    a.loading = false;
    if (previousPage !== null) a.page = previousPage;  // the page on screen is still the one before
    renderAudit();
    problem(err);
  } finally {
    if (mine === auditQuery) $("#audit-results").removeAttribute("aria-busy");
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

// ------------------------------------------------------------------ CSV

/** One CSV cell: always quoted, quotes doubled; a cell that Excel would run as a formula starts with '. */
export function csvCell(value) {
  let text = value === null || value === undefined ? "" : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return `"${text.replace(/"/g, '""')}"`;
}

export function csvText(entries) {
  const head = ["audit.at", "audit.csv.userId", "audit.user", "audit.organisation", "audit.role", "audit.csv.taskCode",
                "audit.task", "audit.basis", "audit.caseRef", "audit.consentBased", "audit.fields"].map((k) => t(k));
  const lines = [head, ...entries.map((e) => [
    formatTime(new Date(e.at)), e.user, e.userName || "", e.organisation, roleLabel(e.role), e.task, taskName(e),
    e.legalBasis, e.caseRef, t(e.consentBased ? "audit.yes" : "audit.no"),
    e.fields.map((f) => `${pick(f.label, f.labelEn) || f.id}: ${badge(f.status).textContent}`).join("; ")])];
  return "\ufeff" + lines.map((cells) => cells.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

async function onCsv() {
  const a = state.audit;
  if (a.loading || a.entries === null) return;
  const button = $("#audit-csv");
  button.disabled = true;
  announce(t("audit.csvWorking"));
  try {
    const all = [];
    let after = null;
    let cut = false;
    for (let page = 0; ; page += 1) {
      if (page === CSV_MAX_PAGES) { cut = true; break; }
      const data = await gql(token(), Q.accessHistory, variables(a, CSV_PAGE, after));
      all.push(...data.accessHistory.entries);
      after = data.accessHistory.nextCursor;
      if (!after) break;
    }
    const blob = new Blob([csvText(all)], {type: "text/csv;charset=utf-8"});
    saveFile(blob, `access-history-${new Date().toISOString().slice(0, 10).replace(/-/g, "")}.csv`);
    if (cut) showAlert(t("audit.csvCut", {n: all.length}));
    announce(t("audit.csvDone", {n: all.length}));
  } catch (err) {
    problem(err);
  } finally {
    button.disabled = false;
  }
}

export function bindAudit() {
  $("#audit-form").addEventListener("submit", onAuditSubmit);
  $("#audit-type").addEventListener("change", () => { setFieldError($("#audit-rrn"), $("#audit-rrn-error"), ""); renderForm(); });
  $("#audit-prev").addEventListener("click", () => auditPage(-1));
  $("#audit-next").addEventListener("click", () => auditPage(1));
  $("#audit-csv").addEventListener("click", onCsv);
}
