// oneScreen caseworker screen: sign in, choose a task, enter the case reference and find the subject, then
// the one screen (screen.js); and the access history (audit.js). Plain ES modules, no build step.
// Every value from the server reaches the page as text (dom.js h()/textContent), never as markup.

import {Q, demoToken, demoUsers, gql, session} from "./api.js";
import {$, $$, fill, h} from "./dom.js";
import {lang, pick, roleLabel, setLang, t} from "./i18n.js";
import {bindAudit, goAudit, renderAudit} from "./audit.js";
import {bindReceipts, goReceipts, isCitizen, renderReceipts, resetReceipts} from "./receipts.js";
import {bindAdmin, firstAdminPage, goAdmin, isAdmin, renderAdmin, resetAdmin} from "./admin.js";
import {bindScreen, loadScreen, renderScreen} from "./screen.js";
import {announce, badge, canSeeHistory, clearAlert, handleError, hooks, matchSummary, renderHeader, resetState,
        setFieldError, show, showAlert, state, token} from "./ui.js";
import {go as goRoute, isHandle, parse as parseRoute} from "./route.js";

const LANG_KEY = "onescreen.lang";
let pendingRoute = null;  // the view a URL named before sign-in (a reload, a bookmark, a second tab)
let restoring = false;    // a view shown from the URL (Back, reload): the URL stays as it is
const CASE_REF_RE = /^[0-9A-Za-z가-힣._:/-]{1,64}$/u;
// the server's check (graphql/context.py PERSONAL_IN_CASE_REF): no RRN or phone number in a case reference
const PERSONAL_IN_CASE_REF = /(?<![0-9])[0-9]{6}[-._:/]?[0-9]{7}(?![0-9])|(?<![0-9])(?:82[-._:/]?0?|0)(?:2|[3-6][1-5]|70|1[016789]|50[0-9])[-._:/]?[0-9]{3,4}[-._:/]?[0-9]{4}(?![0-9])/u;

// ------------------------------------------------------------------ static text, language

function applyStatic() {
  document.title = t("app.title");
  for (const node of $$("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of $$("[data-i18n-attr]")) {
    for (const pair of node.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      node.setAttribute(attr, t(key));
    }
  }
  $("#lang-toggle").setAttribute("lang", lang() === "ko" ? "en" : "ko");
}

function renderCurrent() {
  renderHeader();
  if (state.view === "signin") renderSignin();
  if (state.view === "tasks") renderTasks();
  if (state.view === "subject") renderSubject();
  if (state.view === "screen") renderScreen();
  if (state.view === "audit") renderAudit();
  if (state.view === "receipts") renderReceipts();
  if (state.view.startsWith("admin-")) renderAdmin();
}

function toggleLang() {
  setLang(lang() === "ko" ? "en" : "ko");
  try { sessionStorage.setItem(LANG_KEY, lang()); } catch { /* in memory only */ }
  applyStatic();
  renderCurrent();
  announce(lang() === "ko" ? "한국어로 표시합니다." : "Showing the screen in English.");
}

// ------------------------------------------------------------------ 1. sign in

function renderSignin() {
  const demo = Array.isArray(state.demo) && state.demo.length > 0;
  $("#demo-form").hidden = !demo;
  if (!demo) $("#token-details").open = true;
  if (!demo) return;
  const list = $("#demo-users");
  const checked = $("input[name=demo-user]:checked", list)?.value;
  fill(list, state.demo.map((u) => {
    const id = `demo-user-${u.user.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const tasks = u.tasks?.length ? t("signin.demoTasks", {tasks: u.tasks.join(", ")}) : t("signin.demoNoTasks");
    return h("div", {class: "user-option"},
      h("input", {type: "radio", name: "demo-user", id, value: u.user, checked: u.user === checked}),
      h("label", {for: id},
        h("span", {class: "user-option__name"}, u.name),
        h("span", {class: "user-option__id"}, u.user),
        h("span", {class: "user-option__org"}, u.org || "—"),
        h("span", {class: "user-option__roles"}, (u.roles || []).map(roleLabel).join(", ")),
        h("span", {class: "user-option__tasks"}, tasks)));
  }));
}

async function onDemoSubmit(event) {
  event.preventDefault();
  clearAlert();
  const picked = $("input[name=demo-user]:checked");
  if (!picked) {
    showAlert(t("signin.demoPick"));
    $("input[name=demo-user]")?.focus();
    return;
  }
  announce(t("signin.loading"));
  try {
    await signIn(await demoToken(picked.value));
  } catch (err) {
    handleError(err);
  }
}

async function onTokenSubmit(event) {
  event.preventDefault();
  clearAlert();
  const input = $("#token-input");
  const bearer = input.value.trim().replace(/^Bearer\s+/i, "");
  if (!bearer) {
    showAlert(t("signin.tokenEmpty"));
    input.focus();
    return;
  }
  announce(t("signin.loading"));
  try {
    await signIn(bearer);
    input.value = "";
  } catch (err) {
    handleError(err);
  }
}

/** Verify the token with the server (me + tasks); only then keep it, in sessionStorage. */
async function signIn(bearer) {
  const data = await gql(bearer, Q.signIn);
  state.token = bearer;
  session.token = bearer;
  state.me = data.me;
  state.tasks = data.tasks || [];
  clearAlert();
  announce(t("signin.done", {name: data.me.name}));
  const route = pendingRoute;
  pendingRoute = null;
  restoring = true;  // the first view after sign-in takes the place of the URL that was there
  try {
    land(route);
  } finally {
    restoring = false;
  }
  goRoute(currentRoute(), {replace: true});
}

function land(route) {
  const admin = route?.view?.startsWith("admin-");
  const allowed = route?.view === "audit" ? canSeeHistory() : route?.view === "receipts" ? isCitizen()
    : admin ? isAdmin() : state.tasks.length;
  if (route && allowed) {
    applyRoute(route);
  } else if (state.tasks.length) {
    goTasks();
  } else if (isCitizen()) {
    goReceipts();
  } else if (canSeeHistory()) {
    goAudit();
  } else if (isAdmin()) {
    goAdmin(firstAdminPage());
  } else {
    renderHeader();
    showAlert(t("signin.noTasks"));
  }
}

function signOut({announceIt = true} = {}) {
  session.token = null;
  // signed out by the caseworker: the URL forgets the view; an expired sign-in returns there after signing in
  if (announceIt) goRoute({view: "signin"}, {replace: true});
  else pendingRoute = parseRoute(window.location.hash);
  const dialog = $("#consent-dialog");
  if (dialog.open) dialog.close();
  resetState();
  resetAdmin();
  resetReceipts();
  // erase everything the session showed or typed
  for (const sel of ["#task-list", "#task-count", "#task-summary", "#matches-body", "#screen-meta", "#screen-title",
                     "#screen-code",
                     "#sections", "#unavailable", "#consent-panel", "#audit-results", "#audit-page", "#who"]) {
    $(sel).replaceChildren();
  }
  for (const sel of ["#task-search", "#case-ref", "#subject-query", "#audit-rrn", "#token-input"]) $(sel).value = "";
  for (const sel of ["#case-ref-error", "#subject-query-error", "#audit-rrn-error"]) $(sel).textContent = "";
  $("#matches").hidden = true;
  $("#unavailable").hidden = true;
  $("#audit-pager").hidden = true;
  clearAlert();
  show("signin");
  renderSignin();
  if (announceIt) {
    announce(t("signout.done"));
    $("#signin-title").focus();
  }
}

// ------------------------------------------------------------------ 2. choose a task

function goTasks() {
  show("tasks");
  renderTasks();
  $("#task-search").focus();
}

function visibleTasks() {
  const q = state.taskFilter.trim().toLowerCase();
  if (!q) return state.tasks;
  return state.tasks.filter((task) => [task.code, task.name, task.nameEn]
    .some((s) => (s || "").toLowerCase().includes(q)));
}

function renderTasks() {
  const tasks = visibleTasks();
  const total = state.tasks.length;
  $("#task-count").textContent = tasks.length === total
    ? t("tasks.count", {n: total}) : t("tasks.countFiltered", {n: tasks.length, total});
  const list = $("#task-list");
  if (!tasks.length) {
    fill(list, h("li", {class: "task-list__none"}, t("tasks.none")));
    return;
  }
  fill(list, tasks.map((task) => h("li", {},
    h("button", {type: "button", class: "task", "data-task": task.code, onclick: () => chooseTask(task.code)},
      h("span", {class: "task__name"}, pick(task.name, task.nameEn)),
      h("span", {class: "task__code"}, t("tasks.code", {code: task.code})),
      h("span", {class: "task__basis"}, t("tasks.basis", {basis: pick(task.legalBasis, task.legalBasisEn)})),
      h("span", {class: "task__subject"}, t("tasks.subject", {subject: t(`subjectType.${task.subjectType}`)}))))));
}

function onTaskSearch(event) {
  state.taskFilter = event.target.value;
  renderTasks();
}

function onTaskSearchKey(event) {
  if (event.key !== "Enter") return;
  event.preventDefault();
  const tasks = visibleTasks();
  if (tasks.length === 1) chooseTask(tasks[0].code);
  else $("#task-list button")?.focus();
}

function chooseTask(code) {
  const task = state.tasks.find((x) => x.code === code);
  if (!task) return;
  clearAlert();
  if (state.task?.code !== code) {
    state.caseRef = "";
    $("#case-ref").value = "";
  }
  state.task = task;
  state.matches = null;
  state.match = null;
  state.screen = null;
  state.query = "";
  $("#subject-query").value = "";
  show("subject");
  renderSubject();
  $("#case-ref").focus();
}

// ------------------------------------------------------------------ 3. case reference and subject

function subjectKind() {
  const type = state.task?.subjectType;
  return type === "citizen" || type === "building" ? type : "other";
}

function renderSubject() {
  const task = state.task;
  if (!task) return;
  fill($("#task-summary"),
    h("p", {class: "task-summary__label"}, t("subject.task")),
    h("p", {class: "task-summary__name"}, pick(task.name, task.nameEn), " ",
      h("span", {class: "task__code"}, t("tasks.code", {code: task.code}))),
    h("p", {class: "task-summary__basis"}, t("tasks.basis", {basis: pick(task.legalBasis, task.legalBasisEn)})),
    h("button", {type: "button", class: "btn btn--small", onclick: goTasks}, t("subject.changeTask")));
  // the task's own example (policies/tasks/<code>.yaml case_ref_example): a building permit's, not a welfare case's
  $("#case-ref-hint").textContent = [t("subject.caseRefHint"),
    task.caseRefExample ? t("subject.caseRefExample", {example: task.caseRefExample}) : ""].join(" ").trim();
  const kind = subjectKind();
  $("#subject-query-label").textContent = t(`subject.queryLabel.${kind}`);
  $("#subject-query-hint").textContent = t(`subject.queryHint.${kind}`);
  renderMatches();
}

async function onSubjectSubmit(event) {
  event.preventDefault();
  clearAlert();
  const caseInput = $("#case-ref");
  const queryInput = $("#subject-query");
  const caseRef = caseInput.value.trim();
  const query = queryInput.value.trim();
  const personal = PERSONAL_IN_CASE_REF.test(caseRef);
  const caseOk = CASE_REF_RE.test(caseRef) && !personal;
  setFieldError(caseInput, $("#case-ref-error"), caseOk ? "" : t(
    !caseRef ? "subject.caseRefEmpty" : personal ? "subject.caseRefPersonal" : "subject.caseRefInvalid"));
  const checked = checkQuery(query);
  setFieldError(queryInput, $("#subject-query-error"), checked.error);
  if (!caseOk) { caseInput.focus(); return; }
  if (checked.error) { queryInput.focus(); return; }
  const sent = checked.query;
  if (sent !== query) queryInput.value = sent;  // the RRN as the register writes it: 900101-1234567
  state.caseRef = caseRef;
  state.query = sent;
  goRoute(currentRoute(), {replace: true});  // the case reference joins the URL (an RRN never does)
  const button = $("#subject-submit");
  button.disabled = true;
  $("#subject-form").setAttribute("aria-busy", "true");
  announce(t("subject.searching"));
  try {
    const data = await gql(token(), Q.subjects, {type: state.task.subjectType, query: sent, task: state.task.code});
    state.matches = data.subjectSearch.matches || [];
    state.matchesCut = data.subjectSearch.truncated;
    state.matchesTotal = data.subjectSearch.total;
    state.matchesExact = data.subjectSearch.totalExact;
    renderMatches();
    announce(matchCount());
    const first = $("#matches-body button.select");
    (first || $("#matches-title")).focus();
  } catch (err) {
    state.matches = null;  // the matches of an earlier search would now mislead
    renderMatches();
    handleError(err, {search: subjectKind() === "other" ? null : subjectKind()});
  } finally {
    button.disabled = false;
    $("#subject-form").removeAttribute("aria-busy");
  }
}

function renderMatches() {
  const box = $("#matches");
  const body = $("#matches-body");
  if (state.matches === null) {
    box.hidden = true;
    body.replaceChildren();
    return;
  }
  box.hidden = false;
  if (!state.matches.length) {
    fill(body, h("p", {class: "empty"}, t("subject.none")));
    return;
  }
  const columns = state.matches[0].fields;
  fill(body, h("p", {class: state.matchesCut ? "count count--cut" : "count", id: "matches-count"}, matchCount()),
    h("div", {class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "matches-title"},
    h("table", {class: "data-table matches-table", "aria-labelledby": "matches-title"},
      h("thead", {}, h("tr", {},
        columns.map((f) => h("th", {scope: "col"}, pick(f.label, f.labelEn))),
        h("th", {scope: "col"}, t("subject.choose")))),
      h("tbody", {}, state.matches.map((m, i) => h("tr", {},
        m.fields.map((f) => h("td", {}, f.display ?? "", f.status !== "OK" ? badge(f.status) : null)),
        h("td", {}, h("button", {type: "button", class: "btn btn--small select",
                                 "aria-label": t("subject.selectLabel", {what: matchSummary(m) || `#${i + 1}`}),
                                 onclick: () => chooseMatch(m)}, t("subject.select")))))))));
}

/** "대상 3건을 찾았습니다", or, when the server cut the list, "31건 중 20건" and what to do. */
function matchCount() {
  const n = state.matches.length;
  if (!n) return t("subject.none");
  if (!state.matchesCut) return t("subject.found", {n});
  const total = Math.max(state.matchesTotal ?? n, n);
  return t(state.matchesExact === false ? "subject.foundMoreAtLeast" : "subject.foundMore", {n, total});
}

/** What the subject field holds, checked as the caseworker typed it: an RRN with or without its hyphen (sent with
    it), and what is wrong with one that is not an RRN; for other searches, only that it is not empty. */
function checkQuery(query) {
  if (!query) return {query, error: t("subject.queryEmpty")};
  if (subjectKind() !== "citizen" || !/^[0-9\s.-]+$/.test(query)) return {query, error: ""};
  const digits = query.replace(/[^0-9]/g, "");
  if (digits.length !== 13) return {query, error: t("subject.rrnLength", {n: digits.length})};
  const month = Number(digits.slice(2, 4));
  const day = Number(digits.slice(4, 6));
  if (month < 1 || month > 12 || day < 1 || day > 31) return {query, error: t("subject.rrnDate")};
  if (!/[1-8]/.test(digits[6])) return {query, error: t("subject.rrnDigit")};
  return {query: `${digits.slice(0, 6)}-${digits.slice(6)}`, error: ""};
}

function chooseMatch(match) {
  state.match = match;
  clearAlert();
  show("screen");
  loadScreen();
}

// ------------------------------------------------------------------ the URL of each view (route.js)

function currentRoute() {
  return {view: state.view, task: state.task?.code, caseRef: state.caseRef, subject: state.match?.id};
}

/** A view was shown: its URL becomes a new history entry, unless the view came from the URL itself. */
function onShown(view) {
  if (restoring || view === "signin" || !state.me) return;
  goRoute(currentRoute());
}

function leaveScreen() {
  if (!state.screen) return;
  state.screen = null;
  state.generation += 1;  // a screen still loading is dropped when it answers
  state.loading.clear();
  $("#sections").replaceChildren();
}

/** Show the view a URL names (Back, Forward, reload, a bookmark, a second tab); a task the caller may not perform
    goes to the task list, a screen URL without a usable subject handle to the search, which says so. */
function applyRoute(route) {
  const was = restoring;
  restoring = true;
  try {
    clearAlert();
    if (route?.view === "audit" && canSeeHistory()) {
      leaveScreen();
      goAudit();
      return;
    }
    if (route?.view === "receipts" && isCitizen()) {
      leaveScreen();
      goReceipts();
      return;
    }
    if (route?.view?.startsWith("admin-") && isAdmin()) {
      leaveScreen();
      goAdmin(route.view.slice(6));
      return;
    }
    const task = route?.task ? state.tasks.find((x) => x.code === route.task) : null;
    if (!task) {
      leaveScreen();
      if (!state.tasks.length) return;
      goTasks();
      goRoute(currentRoute(), {replace: true});
      return;
    }
    const caseRef = route.caseRef && CASE_REF_RE.test(route.caseRef) && !PERSONAL_IN_CASE_REF.test(route.caseRef)
      ? route.caseRef : "";
    const same = state.task?.code === task.code && state.caseRef === caseRef;
    if (state.task?.code !== task.code) {
      state.matches = null;
      state.query = "";
      $("#subject-query").value = "";
    }
    state.task = task;
    state.caseRef = caseRef;
    $("#case-ref").value = caseRef;
    if (route.view === "screen" && caseRef && isHandle(route.subject)) {
      if (same && state.view === "screen" && state.screen && state.match?.id === route.subject) return;
      leaveScreen();
      state.match = (state.matches || []).find((m) => m.id === route.subject) || {id: route.subject, fields: []};
      show("screen");
      loadScreen();
      return;
    }
    leaveScreen();
    state.match = null;
    show("subject");
    renderSubject();
    if (route.view === "screen") {
      goRoute(currentRoute(), {replace: true});
      showAlert(t("route.expired"));
    }
    (caseRef ? $("#subject-query") : $("#case-ref")).focus();
  } finally {
    restoring = was;
  }
}

/** The screen's subject handle expired (or was never given out): back to the search, to search again. */
function onExpiredHandle() {
  applyRoute({view: "screen", task: state.task?.code, caseRef: state.caseRef, subject: ""});
}

function onPopState() {
  const route = parseRoute(window.location.hash);
  if (!state.me) {  // not signed in: the view opens after sign-in
    pendingRoute = route;
    return;
  }
  const dialog = $("#consent-dialog");
  if (dialog.open) dialog.close();
  applyRoute(route || {view: "tasks"});
}

// ------------------------------------------------------------------ start

function bind() {
  $("#lang-toggle").addEventListener("click", toggleLang);
  $("#logout").addEventListener("click", () => signOut());
  $("#nav-tasks").addEventListener("click", () => { clearAlert(); goTasks(); });
  $("#nav-audit").addEventListener("click", () => { clearAlert(); goAudit(); });
  $("#nav-receipts").addEventListener("click", () => { clearAlert(); goReceipts(); });
  $("#demo-form").addEventListener("submit", onDemoSubmit);
  $("#token-form").addEventListener("submit", onTokenSubmit);
  $("#task-search").addEventListener("input", onTaskSearch);
  $("#task-search").addEventListener("keydown", onTaskSearchKey);
  $("#subject-form").addEventListener("submit", onSubjectSubmit);
  $("#new-search").addEventListener("click", () => {
    state.screen = null;
    state.generation += 1;
    state.loading.clear();
    $("#sections").replaceChildren();
    show("subject");
    renderSubject();
    $("#subject-query").focus();
  });
  bindScreen();
  bindAudit();
  bindReceipts();
  bindAdmin();
  hooks.signOut = signOut;
  hooks.shown = onShown;
  hooks.expired = onExpiredHandle;
  window.addEventListener("popstate", onPopState);
}

async function start() {
  let saved = null;
  try { saved = sessionStorage.getItem(LANG_KEY); } catch { /* default */ }
  setLang(saved || "ko");
  pendingRoute = parseRoute(window.location.hash);
  applyStatic();
  bind();
  show("signin");
  state.demo = await demoUsers();
  renderSignin();
  const stored = session.token;  // this tab signed in before a reload
  if (stored) {
    try {
      await signIn(stored);
    } catch (err) {
      session.token = null;
      handleError(err);
    }
  }
  document.body.dataset.ready = "true";
}

start();
