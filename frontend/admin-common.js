// What the admin pages share: their state, their GraphQL queries, the catalog as loaded, labels of codes,
// and how a refused or invalid change is shown (the server's message, file:line lines included, as text).

import {ApiError, gql} from "./api.js";
import {$, fill, h} from "./dom.js";
import {pick, t} from "./i18n.js";
import {clearAlert, clearStatus, handleError, may, token} from "./ui.js";

export const PAGES = ["catalog", "mapping", "task", "changes", "import", "reports", "provider"];

export const AQ = {
  // the small part of the catalog only: fields (25,000 at national scale) and task definitions are searched
  // and paged on the server (searchCatalog, GET /admin/catalog/...)
  catalog: `query AdminCatalog { catalog {
    ledgers { id name nameEn agency agencyName agencyNameEn subject rows connectorKind fieldCount }
    subjectTypes { id label labelEn }
    roles { id label labelEn actions }
    maskStrategies
    taskNames { code name nameEn subject }
    agreementsEnforced
    agreements { id title titleEn agency signer organisations roles tasks fields validFrom validUntil revoked inForce }
  } }`,
  columns: `query LedgerColumns($ledger: ID!) {
    ledgerColumns(ledger: $ledger) { name type fields proposedType samples } }`,
  map: `mutation ProposeFieldMapping($input: FieldMappingInput!) {
    proposeFieldMapping(input: $input) { id status widening diff summary } }`,
  preview: `query PreviewTask($code: ID!, $yaml: String!) { previewTask(code: $code, yaml: $yaml) {
    ledgers newlyDisclosed denied { field reason reasonEn } } }`,
  propose: `mutation ProposeTask($code: ID!, $yaml: String!) {
    proposeTask(code: $code, yaml: $yaml) { id status widening diff proposer summary } }`,
  changes: `query Changes { changes { id kind summary proposer createdAt status diff widening approver decidedAt files
                                      comment } }`,
  approve: `mutation ApproveChange($id: ID!, $comment: String) {
    approveChange(id: $id, comment: $comment) { id status approver summary comment } }`,
  reject: `mutation RejectChange($id: ID!) { rejectChange(id: $id) { id status approver summary } }`,
  restore: `mutation RestoreVersion($change: ID!) { restoreVersion(change: $change) { id status widening summary } }`,
};

export const admin = freshAdmin();

/** Set by admin.js: go to an admin page (`page`, with page options). */
export const adminHooks = {go: () => {}};

function freshAdmin() {
  return {
    catalog: null,            // the `catalog` answer, or null until loaded
    fields: new Map(),        // the fields seen in search results so far, by id
    loading: null,            // the promise of a catalog load in flight
    fieldFilter: {text: "", ledger: "", sensitivity: "", usage: ""},
    mapping: {ledger: "", columns: null, result: null, problem: null},
    task: null,               // the task editor's draft (admin-task.js)
    changes: null,            // the `changes` answer
  };
}

export function resetAdmin() {
  Object.assign(admin, freshAdmin());
}

/** The action each admin page needs (roles.yaml grants actions to roles; the server refuses anyway). */
const PAGE_ACTION = {catalog: "catalog.read", mapping: "catalog.propose", task: "task.propose", changes: "changes.read",
                     import: "task.propose", reports: "catalog.read", provider: "agreement.read"};

/** Whether the signed-in user may open an admin page. */
export function mayOpen(page) {
  return may(PAGE_ACTION[page]);
}

export const isAdmin = () => PAGES.some(mayOpen);

/** The action a change of `kind` needs to be decided ("approve") or restored ("propose"). */
export const changeAction = (kind, verb) =>
  `${kind === "catalog" || kind === "agreement" ? kind : "task"}.${verb}`;

export function call(query, variables = {}) {
  return gql(token(), query, variables);
}

export async function loadCatalog({force = false} = {}) {
  if (admin.catalog && !force) return admin.catalog;
  if (!admin.loading || force) {
    admin.loading = call(AQ.catalog).then((data) => {
      admin.catalog = {...data.catalog, tasks: data.catalog.taskNames};
      return admin.catalog;
    }).finally(() => { admin.loading = null; });
  }
  return admin.loading;
}

// ------------------------------------------------------------------ lookups and labels

export function ledgerOf(id) {
  return admin.catalog?.ledgers.find((l) => l.id === id) || null;
}

export function fieldOf(id) {
  return admin.fields.get(id) || null;
}

/** Keep the fields of a search answer, so that their labels and rules show wherever they are named. */
export function rememberFields(fields) {
  for (const f of fields) admin.fields.set(f.id, f);
  return fields;
}

/** GET one of the admin endpoints (path, params as an object or [name, value] pairs, empty values left out): its
    JSON, or with format=csv its file as a Blob; a refusal throws ApiError with the server's code and message. */
export async function adminGet(path, params = {}) {
  const entries = (Array.isArray(params) ? params : Object.entries(params))
    .filter(([, v]) => v !== "" && v !== null && v !== undefined);
  const response = await fetch(`${path}?${new URLSearchParams(entries)}`,
    {headers: {"Authorization": `Bearer ${token()}`}, credentials: "omit", cache: "no-store"});
  if (response.ok && entries.some(([k, v]) => k === "format" && v === "csv")) return response.blob();
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const err = body.errors?.[0];
    throw new ApiError(err?.extensions?.code || body.code || "HTTP", err?.message || body.message || "",
                       {status: response.status});
  }
  return body;
}

/** One page of server-side search results: GET /admin/catalog/{kind} (fields, picker, tasks) or another path. */
export async function searchCatalog(kind, params = {}) {
  const body = await adminGet(kind.startsWith("/") ? kind : `/admin/catalog/${kind}`, params);
  if (body.fields) rememberFields(body.fields);
  if (body.items) for (const i of body.items) rememberFields([...i.links, i.field]);
  return body;
}

export function taskOf(code) {
  return admin.catalog?.tasks.find((x) => x.code === code) || null;
}

export function ledgerName(id) {
  const l = ledgerOf(id);
  return l ? pick(l.name, l.nameEn) : id;
}

export function agencyName(ledger) {
  return pick(ledger.agencyName, ledger.agencyNameEn);
}

export function subjectLabel(id) {
  const s = admin.catalog?.subjectTypes.find((x) => x.id === id);
  return s ? pick(s.label, s.labelEn) : id;
}

export function roleName(id) {
  const r = admin.catalog?.roles.find((x) => x.id === id);
  return r ? pick(r.label, r.labelEn) : id;
}

export function fieldLabel(id) {
  const f = fieldOf(id);
  return f ? pick(f.label, f.labelEn) : id;
}

/** "성명 (citizen.name)"; a path "거주 건축물 › 주용도 (citizen.residence>building.main_purpose)". */
export function pathLabel(pathId) {
  const labels = String(pathId).split(">").map((id) => fieldLabel(id.trim()));
  return `${labels.join(" › ")} (${pathId})`;
}

export function taskLabel(code) {
  const task = taskOf(code);
  return task ? `${pick(task.name, task.nameEn)} (${code})` : code;
}

/** A sensitivity class as text (with a symbol; the colour only repeats it). */
export function sensitivityBadge(sensitivity) {
  return h("span", {class: `sens sens--${sensitivity.replace(/_/g, "-")}`, "data-sensitivity": sensitivity},
    t(`admin.sens.${sensitivity}`));
}

export function maskText(mask) {
  if (mask === null || mask === undefined || mask === "") return t("admin.mask.none");
  if (typeof mask === "string") return t(`admin.mask.${mask}`);
  return Object.entries(mask).map(([col, s]) => `${col}: ${t(`admin.mask.${s}`)}`).join(", ");
}

/** The server's widening reasons (English, stable wording) in the page's language, ids kept. */
export function wideningText(reason) {
  const rules = [
    [/^task (\w+): gains field (\S+)$/, (m) => t("admin.why.gains", {task: taskLabel(m[1]), field: pathLabel(m[2])})],
    [/^new task (\w+) discloses (\d+) fields?$/, (m) => t("admin.why.newTask", {task: m[1], n: m[2]})],
    [/^task (\w+): role (\w+) may now perform it$/, (m) => t("admin.why.role", {task: taskLabel(m[1]), role: roleName(m[2])})],
    [/^task (\w+): (\S+) is no longer masked$/, (m) => t("admin.why.unmasked", {task: taskLabel(m[1]), field: pathLabel(m[2])})],
    [/^task (\w+): (\S+) changes its mask from (.+) to (.+)$/,
      (m) => t("admin.why.maskChange", {task: taskLabel(m[1]), field: pathLabel(m[2]), from: m[3], to: m[4]})],
    [/^task (\w+): (\S+) no longer needs consent$/, (m) => t("admin.why.consent", {task: taskLabel(m[1]), field: pathLabel(m[2])})],
    [/^task (\w+): no longer limited to the caseworker's region$/, (m) => t("admin.why.region", {task: taskLabel(m[1])})],
    [/^field (\S+), used by tasks, is re-mapped to (\S+)$/, (m) => t("admin.why.remapped", {field: pathLabel(m[1]), to: m[2]})],
    [/^field (\S+), used by tasks, loses its default mask$/, (m) => t("admin.why.loses", {field: pathLabel(m[1])})],
    [/^new agreement (\S+) shares (\d+) field\(s\) of (\w+)$/,
      (m) => t("admin.why.agreementNew", {id: m[1], n: Number(m[2])})],
    [/^agreement (\S+): shares (\S+) too$/, (m) => t("admin.why.agreementField", {id: m[1], field: pathLabel(m[2])})],
    [/^agreement (\S+): (.+)$/, (m) => t("admin.why.agreementOther", {id: m[1], what: m[2]})],
  ];
  for (const [re, fn] of rules) {
    const m = re.exec(reason);
    if (m) return fn(m);
  }
  return reason;
}

/** A refusal of the server (admin.py, changes.py: stable English wording) in the page's language, or null. */
export function refusalText(message) {
  const rules = [
    [/^change (\d+) is (\w+), not pending$/, (m) => t("admin.refused.decided", {id: m[1], status: t(`admin.status.${m[2]}`)})],
    [/^change (\d+) is not pending$/, (m) => t("admin.refused.notPending", {id: m[1]})],
    [/^(\S+) changed since this change was proposed/, (m) => t("admin.refused.stale", {file: m[1]})],
    [/^change (\d+) was never applied$/, (m) => t("admin.refused.neverApplied", {id: m[1]})],
    [/^there is no change with that id$/, () => t("admin.refused.noSuchChange")],
    [/^field (\S+) is still used by tasks ([^;]+);/, (m) => t("admin.refused.inUse", {field: pathLabel(m[1]), tasks: m[2]})],
  ];
  for (const [re, fn] of rules) {
    const m = re.exec(String(message || ""));
    if (m) return fn(m);
  }
  return null;
}

/** A change's summary (the server's, English, stable wording: admin.py) in the page's language, ids kept. */
export function summaryText(summary) {
  const rules = [
    [/^map (\S+):(\S+) to (\S+)$/, (m) => t("admin.summary.map", {ledger: ledgerName(m[1]), column: m[2], field: pathLabel(m[3])})],
    [/^re-map (\S+):(\S+) to (\S+)$/, (m) => t("admin.summary.remap", {ledger: ledgerName(m[1]), column: m[2], field: pathLabel(m[3])})],
    [/^retire (\S+)$/, (m) => t("admin.summary.retire", {field: pathLabel(m[1])})],
    [/^create task (\w+)$/, (m) => t("admin.summary.createTask", {task: taskLabel(m[1])})],
    [/^edit task (\w+)$/, (m) => t("admin.summary.editTask", {task: taskLabel(m[1])})],
    [/^create agreement (\S+)$/, (m) => t("admin.summary.createAgreement", {id: m[1]})],
    [/^edit agreement (\S+)$/, (m) => t("admin.summary.editAgreement", {id: m[1]})],
    [/^revoke agreement (\S+)$/, (m) => t("admin.summary.revokeAgreement", {id: m[1]})],
    [/^restore the version before change (\d+)$/, (m) => t("admin.summary.restore", {id: m[1]})],
    [/^import (.+): (\d+) tasks? in the spreadsheet: (\d+) new, (\d+) changed, (\d+) removed, (\d+) unchanged$/,
      (m) => t("admin.summary.import", {file: m[1], n: m[2], added: m[3], changed: m[4], removed: m[5]})],
  ];
  for (const [re, fn] of rules) {
    const m = re.exec(summary);
    if (m) return fn(m);
  }
  return summary;
}

export function wideningList(reasons) {
  return h("ul", {class: "widening"}, reasons.map((r) => h("li", {"data-reason": r}, wideningText(r))));
}

/** A unified diff as text: each line keeps its +/- sign; colour and weight only repeat it. */
export function diffView(diff, label) {
  const lines = (diff || "").replace(/\n$/, "").split("\n");
  const kind = (line) => (line.startsWith("+++") || line.startsWith("---") ? "file"
    : line.startsWith("@@") ? "hunk" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "same");
  return h("pre", {class: "diff", tabindex: "0", role: "region", "aria-label": label},
    lines.map((line) => h("span", {class: `diff__line diff__line--${kind(line)}`}, line || " ")));
}

export function changeStatus(status) {
  return h("span", {class: `chg-status chg-status--${status}`, "data-status": status}, t(`admin.status.${status}`));
}

// ------------------------------------------------------------------ problems

/**
 * Show why the server refused: CHANGE_INVALID lists `file:line: reason` lines, CHANGE_REFUSED and
 * ADMIN_FORBIDDEN say why; all as text. Into `box` (a page's result area, role=alert) or the page's alert.
 * Anything else (expired sign-in, network, outage) goes to the caseworker screen's usual handling.
 */
export function showProblem(err, box = null) {
  const known = err instanceof ApiError && ["CHANGE_INVALID", "CHANGE_REFUSED", "ADMIN_FORBIDDEN"].includes(err.code);
  if (!known) {
    handleError(err);
    return;
  }
  clearStatus();  // what was being done ("approving…") is over: the problem below says how it ended
  const [first, ...rest] = String(err.message || "").split("\n");
  const lines = err.code === "CHANGE_INVALID" ? rest.filter(Boolean) : [];
  const detail = err.code === "CHANGE_INVALID" ? null : first;
  const fourEyes = err.code === "CHANGE_REFUSED" && /four eyes/i.test(err.message);
  const parts = [
    h("p", {class: "problem__title"}, t(fourEyes ? "admin.err.fourEyesTitle" : `admin.err.${err.code}`)),
    /four eyes/i.test(err.message) ? h("p", {class: "problem__why"}, t("admin.err.fourEyes")) : null,
    !fourEyes && refusalText(err.message) ? h("p", {class: "problem__why"}, refusalText(err.message)) : null,
    detail ? h("p", {class: "problem__detail", lang: "en"}, detail) : null,
    lines.length ? h("ul", {class: "problem__lines"}, lines.map((l) => h("li", {lang: "en"}, h("code", {}, l)))) : null,
    err.requestId ? h("p", {class: "hint"}, t("err.requestId", {id: err.requestId})) : null,
  ];
  if (box) {
    clearAlert();
    box.hidden = false;
    fill(box, h("div", {class: "problem", role: "alert", "data-code": err.code}, parts));
    box.scrollIntoView({block: "nearest"});
    return;
  }
  const alert = $("#alert");
  fill(alert, h("div", {class: "alert__text problem", "data-code": err.code}, parts),
    h("button", {type: "button", class: "btn btn--small alert__dismiss", onclick: clearAlert}, t("err.dismiss")));
  alert.classList.add("alert--shown");
}

/** "2026-11-26T05:10:00+00:00" -> "2026-11-26 14:10 KST" */
export function shortTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso || "";
  const p = Object.fromEntries(new Intl.DateTimeFormat("en-CA", {
    timeZone: "Asia/Seoul", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    hourCycle: "h23"}).formatToParts(d).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute} KST`;
}

/** A labelled <select> for the page's forms: options as [value, text]. */
export function selectRow(id, label, options, value, extra = {}) {
  return h("div", {class: "field-row"},
    h("label", {for: id}, label),
    h("select", {id, ...extra}, options.map(([v, text]) => h("option", {value: v, selected: v === value}, text))));
}
