// What every view shares: the state of the session, the live region and alerts, the header, and formatting.

import {ApiError, session} from "./api.js";
import {$, fill, h} from "./dom.js";
import {lang, roleLabel, t} from "./i18n.js";

const VIEWS = ["signin", "tasks", "subject", "screen", "audit", "receipts"];

export const state = freshState();

/** Set by app.js: what an expired sign-in does (sign out and ask to sign in again). */
export const hooks = {signOut: () => {}, shown: () => {}, expired: () => {}};

export function freshState() {
  return {
    token: null,
    me: null,
    tasks: [],
    demo: undefined,          // demo users (array) in demo mode, null otherwise, undefined until asked
    view: "signin",
    task: null,
    taskFilter: "",
    caseRef: "",
    query: "",
    matches: null,
    matchesCut: false,        // the server found more matches than it returned
    matchesTotal: null,       // how many matched within the caller's jurisdiction (at least, if not matchesExact)
    matchesExact: true,
    match: null,
    screen: null,             // {results: Map(id -> field), requestId, retryIds, loadedAt, failed: Set}
    loading: new Set(),       // field ids being (re)loaded
    generation: 0,            // bumps on every new screen: late answers for an old screen are dropped
    consentField: null,
    audit: {rrn: "", size: 20, cursors: [null], page: 0, entries: null, next: null, loading: false},
  };
}

export function resetState() {
  const demo = state.demo;
  Object.assign(state, freshState(), {demo, generation: state.generation + 1});
}

/** The bearer token: sessionStorage is its one home (memory only when the browser refuses storage). */
export function token() {
  return session.token || state.token;
}

/** Whether the signed-in user's roles are granted `action` (`me.actions`: the permissions of roles.yaml). */
export function may(action) {
  return (state.me?.actions || []).includes(action);
}

export function canSeeHistory() {
  return may("access_history.read") || (state.me?.roles || []).includes("citizen");  // a citizen: their own
}

// ------------------------------------------------------------------ messages

let announcing = null;  // the timer of an announcement not made yet

export function announce(message) {
  const region = $("#status");
  region.textContent = "";
  // a fresh text node in a later task, so that the same message twice is announced twice
  window.clearTimeout(announcing);
  announcing = window.setTimeout(() => {
    announcing = null;
    region.textContent = message;
  }, 30);
}

/** Empty the status line: a "…하는 중" there is over (one still waiting to be announced too). Every way an error
    is shown calls this, so a status line never outlives the work it announced. */
export function clearStatus() {
  window.clearTimeout(announcing);
  announcing = null;
  $("#status").textContent = "";
}

export function showAlert(message, requestId = null) {
  clearStatus();  // a "loading…" there is over: the alert says what happened
  const box = $("#alert");
  const text = requestId ? `${message} (${t("err.requestId", {id: requestId})})` : message;
  fill(box, h("p", {class: "alert__text"}, text),
       h("button", {type: "button", class: "btn btn--small alert__dismiss", onclick: clearAlert}, t("err.dismiss")));
  box.classList.add("alert--shown");
}

export function clearAlert() {
  const box = $("#alert");
  box.replaceChildren();
  box.classList.remove("alert--shown");
}

export function errorMessage(err, context = {}) {
  if (!(err instanceof ApiError)) return t("err.DEFAULT");
  if (err.code === "BAD_REQUEST") {
    if (/handle/i.test(err.message)) return t("err.handle");
    if (context.search) return t(`subject.badQuery.${context.search}`);
    return t("err.BAD_REQUEST", {message: err.message});
  }
  if (err.code === "HTTP") return t("err.HTTP", {status: err.status});
  const key = `err.${err.code}`;
  return t(key) === key ? t("err.DEFAULT") : t(key);
}

/** Tell the caseworker what went wrong and what to do; an expired sign-in sends them back to sign in. */
export function handleError(err, context = {}) {
  if (err instanceof ApiError && err.code === "UNAUTHENTICATED") {
    hooks.signOut({announceIt: false});
    showAlert(t("err.UNAUTHENTICATED"));
    $("#signin-title").focus();
    return;
  }
  if (!(err instanceof ApiError)) console.error(err); // a bug of this page, not a server answer
  showAlert(errorMessage(err, context), err?.requestId);
}

// ------------------------------------------------------------------ views and header

export function show(view) {
  state.view = view;
  for (const name of VIEWS) $(`#view-${name}`).hidden = name !== view;
  document.body.dataset.view = view;
  renderHeader();
  hooks.shown(view);  // app.js: the view's URL (route.js)
}

/** Whether the server refused a subject handle: expired, or not one it gave out (search again). */
export function isBadHandle(err) {
  return err instanceof ApiError && err.code === "BAD_REQUEST" && /handle/i.test(err.message || "");
}

export function renderHeader() {
  const signedIn = Boolean(state.me);
  $("#app-nav").hidden = !signedIn;
  $("#logout").hidden = !signedIn;
  $("#who").hidden = !signedIn;
  const navTasks = $("#nav-tasks");
  const navAudit = $("#nav-audit");
  navTasks.hidden = !(signedIn && state.tasks.length);
  navAudit.hidden = !(signedIn && canSeeHistory());
  const navReceipts = $("#nav-receipts");
  navReceipts.hidden = !(signedIn && (state.me.roles || []).includes("citizen"));
  navReceipts.toggleAttribute("aria-current", state.view === "receipts");
  if (navReceipts.hasAttribute("aria-current")) navReceipts.setAttribute("aria-current", "page");
  navTasks.toggleAttribute("aria-current", ["tasks", "subject", "screen"].includes(state.view));
  navAudit.toggleAttribute("aria-current", state.view === "audit");
  if (navTasks.hasAttribute("aria-current")) navTasks.setAttribute("aria-current", "page");
  if (navAudit.hasAttribute("aria-current")) navAudit.setAttribute("aria-current", "page");
  if (signedIn) {
    const org = state.me.organisation || roleLabel(state.me.roles[0] || "");
    $("#who").textContent = t("who", {name: state.me.name, org});
  } else {
    $("#who").textContent = "";
  }
}

export function setFieldError(input, errorNode, message) {
  errorNode.textContent = message || "";
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

// ------------------------------------------------------------------ formatting

export function badge(status) {
  return h("span", {class: `badge badge--${status.toLowerCase().replace(/_/g, "-")}`, "data-badge": status},
    t(`status.${status}`));
}

export function matchSummary(match) {
  return match.fields.filter((f) => f.status === "OK" || f.status === "MASKED")
    .map((f) => f.display ?? "").filter(Boolean).join(" · ");
}

export function formatCell(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "boolean") return value ? (lang() === "ko" ? "예" : "Yes") : (lang() === "ko" ? "아니오" : "No");
  if (typeof value === "number") {
    if (Number.isInteger(value) && Math.abs(value) < 10000) return String(value); // years, cc, counts
    return new Intl.NumberFormat(lang() === "ko" ? "ko-KR" : "en-US", {maximumFractionDigits: 2}).format(value);
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** "2026-11-26 14:00:14 KST": the counters are in Korea, whatever the browser's time zone. */
export function formatTime(date) {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) return "";
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-CA", {
    timeZone: "Asia/Seoul", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).formatToParts(date).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} KST`;
}
