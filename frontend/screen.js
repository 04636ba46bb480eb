// The one screen: the task's sections in order, each field with its value (tables for records) or a text
// badge saying why not (masked, denied, consent required, not found, unavailable), a value read only in part
// (partial) with its reason, each bad value in its own cell with its reason, its source (the ledger's last
// update, the time of the read) on hover and focus; per-section loading states; retry of one ledger's fields;
// the consent panel and each consent-based value's mark (consent.js).

import {Q, gql} from "./api.js";
import {bindConsent, consentMark, renderConsentPanel} from "./consent.js";
import {$, $$, append, fill, h, uid} from "./dom.js";
import {columnLabel, pick, t} from "./i18n.js";
import {renderExplanation} from "./explain.js";
import {announce, badge, clearAlert, formatCell, formatTime, handleError, hooks, isBadHandle, matchSummary, state,
        token} from "./ui.js";

const STATUS_NEEDS_ATTENTION = new Set(["DENIED", "NOT_FOUND", "UNAVAILABLE", "CONSENT_REQUIRED", "PARTIAL"]);
const SHOWN = new Set(["OK", "MASKED", "PARTIAL"]);  // statuses whose value is shown

function taskFieldIds() {
  return state.task.sections.flatMap((s) => s.fields.map((f) => f.id));
}

/** Load the whole screen, or (with `fields`) re-read some of its fields, e.g. one ledger's after a failure. */
export async function loadScreen({fields = null, focusField = null, retryLedger = null} = {}) {
  const partial = Array.isArray(fields);
  if (!partial) {
    state.generation += 1;
    state.screen = {results: new Map(), requestId: null, retryIds: [], loadedAt: null, failed: new Set()};
  }
  const generation = state.generation;
  const ids = partial ? fields : taskFieldIds();
  for (const id of ids) state.loading.add(id);
  if (partial) {
    updateFields(ids);
    renderUnavailable();  // its retry button waits too
  } else {
    renderScreen();
    $("#screen-title").focus();
  }
  if (retryLedger) announce(t("screen.retrying", {ledger: retryLedger}));
  else announce(t("screen.loading"));
  let data = null;
  let failure = null;
  try {
    data = await gql(token(), Q.screen, {task: state.task.code, subject: state.match.id, caseRef: state.caseRef,
                                         fields: partial ? fields : null});
  } catch (err) {
    failure = err;
  }
  if (generation !== state.generation || !state.screen) return; // the caseworker moved on meanwhile
  for (const id of ids) state.loading.delete(id);
  if (failure && !partial && isBadHandle(failure)) {
    hooks.expired();  // app.js: back to the search, which says to search again
    return;
  }
  if (failure) {
    for (const id of ids) state.screen.failed.add(id);
    if (partial) updateFields(ids); else renderScreen();
    renderScreenHeader();
    handleError(failure);
    return;
  }
  const screen = data.screen;
  for (const section of screen.sections) {
    for (const field of section.fields) {
      state.screen.results.set(field.id, field);
      state.screen.failed.delete(field.id);
    }
  }
  if (partial) {
    state.screen.retryIds.push(screen.requestId);
    updateFields(ids);
    renderScreenHeader();
    renderUnavailable();
  } else {
    state.screen.requestId = screen.requestId;
    state.screen.loadedAt = new Date();
    state.screen.consent = screen.consent ?? null;  // the consent in force for this case (consent.js)
    state.screen.reusable = screen.reusableConsents || [];
    renderScreen();
  }
  if (retryLedger) {
    const still = ids.some((id) => state.screen.results.get(id)?.status === "UNAVAILABLE");
    announce(t("screen.retried", {ledger: retryLedger, result: t(still ? "screen.retryStill" : "screen.retryOk")}));
  } else {
    const all = [...state.screen.results.values()];
    const problems = all.filter((f) => STATUS_NEEDS_ATTENTION.has(f.status)).length;
    announce(t("screen.loaded", {n: all.length, problems: problems ? t("screen.problems", {n: problems}) : ""}));
  }
  if (focusField) focusOnField(focusField);
  else if (!document.activeElement || document.activeElement === document.body) $("#screen-title").focus();
}

function focusOnField(id) {
  const node = fieldNode(id);
  const target = node && ($(".value[tabindex], .table-wrap[tabindex], button", node));
  if (target) target.focus();
  else $("#screen-title").focus();
}

function fieldNode(id) {
  return $$("#sections .field").find((n) => n.dataset.field === id) || null;
}

export function renderScreen() {
  if (!state.task || !state.screen) return;
  renderScreenHeader();
  renderUnavailable();
  renderConsentPanel();
  const focusedField = document.activeElement?.closest?.("#sections .field")?.dataset.field;
  fill($("#sections"), state.task.sections.map((section, i) => {
    const titleId = `section-${i}-title`;
    return h("section", {class: "screen-section", "aria-labelledby": titleId, "data-section": i},
      h("h2", {id: titleId, class: "screen-section__title", tabindex: "-1"},
        h("span", {}, pick(section.title, section.titleEn)),
        h("span", {class: "section-loading", "aria-hidden": "true"}, t("screen.loading"))),
      h("dl", {class: "fields"}, section.fields.map((tf) => renderField(tf))));
  }));
  updateSectionBusy();
  if (focusedField) focusOnField(focusedField);
}

/** Re-render some fields in place (the rest of the screen, and the focus, stay where they are). */
function updateFields(ids) {
  const wanted = new Set(ids);
  for (const section of state.task.sections) {
    for (const tf of section.fields) {
      if (!wanted.has(tf.id)) continue;
      const old = fieldNode(tf.id);
      if (!old) continue;
      const hadFocus = old.contains(document.activeElement);
      old.replaceWith(renderField(tf));
      if (hadFocus) focusOnField(tf.id);
    }
  }
  updateSectionBusy();
}

function updateSectionBusy() {
  for (const node of $$("#sections .screen-section")) {
    const busy = $$(".field", node).some((f) => f.dataset.status === "LOADING");
    node.setAttribute("aria-busy", busy ? "true" : "false");
    node.classList.toggle("is-loading", busy);
  }
}

function renderScreenHeader() {
  const task = state.task;
  const s = state.screen;
  $("#screen-title").textContent = pick(task.name, task.nameEn);
  const me = state.me;
  const pending = state.loading.size ? t("screen.loading") : "—";  // "—": the screen could not be loaded
  const rid = s.requestId
    ? [s.requestId, s.retryIds.length ? ` (${t("screen.retryIds", {ids: s.retryIds.join(", ")})})` : ""].join("")
    : pending;
  $("#screen-code").textContent = task.code;
  const items = [
    ["basis", "screen.basis", pick(task.legalBasis, task.legalBasisEn)],
    ["case-ref", "screen.caseRef", state.caseRef],
    ["request-id", "screen.requestId", rid],
    ["subject", "screen.subject", state.match ? matchSummary(state.match) || t(`subjectType.${task.subjectType}`) : ""],
    ["caseworker", "screen.caseworker", me ? [me.name, me.organisation].filter(Boolean).join(" · ") : ""],
    ["at", "screen.at", s.loadedAt ? formatTime(s.loadedAt) : pending],
  ];
  fill($("#screen-meta"), items.map(([key, label, value]) => h("div", {class: `meta__item meta__item--${key}`},
    h("dt", {}, t(label)), h("dd", {"data-meta": key}, value))));
}

function unavailableLedgers() {
  const byLedger = new Map();
  for (const f of state.screen.results.values()) {
    if (f.status !== "UNAVAILABLE" || !f.source) continue;
    if (!byLedger.has(f.source.ledger)) byLedger.set(f.source.ledger, {source: f.source, field: f});
  }
  return [...byLedger.values()];
}

function renderUnavailable() {
  const box = $("#unavailable");
  const ledgers = unavailableLedgers();
  box.hidden = ledgers.length === 0;
  if (!ledgers.length) {
    box.replaceChildren();
    return;
  }
  const hadFocus = box.contains(document.activeElement);
  fill(box,
    h("h2", {class: "unavailable__title"}, badge("UNAVAILABLE"), " ", t("screen.unavailableTitle")),
    h("p", {}, t("screen.unavailableIntro")),
    h("ul", {class: "unavailable__list"}, ledgers.map(({source, field}) => {
      const name = `${pick(source.agencyName, source.agencyNameEn)} ${pick(source.ledgerName, source.ledgerNameEn)}`;
      const busy = state.loading.has(field.id);
      return h("li", {"data-ledger": source.ledger},
        h("strong", {}, name), " — ", pick(field.reason, field.reasonEn) || "", " ",
        h("button", {type: "button", class: "btn btn--small retry", disabled: busy,
                     onclick: () => retryLedger(source.ledger)}, t("screen.retryLedger", {ledger: name})));
    })));
  if (hadFocus) $("button", box)?.focus();
}

function retryLedger(ledger) {
  const ids = [];
  let source = null;
  for (const f of state.screen.results.values()) {
    if (f.status === "UNAVAILABLE" && f.source?.ledger === ledger) {
      ids.push(f.id);
      source = f.source;
    }
  }
  if (!ids.length) return;
  clearAlert();
  const name = `${pick(source.agencyName, source.agencyNameEn)} ${pick(source.ledgerName, source.ledgerNameEn)}`;
  loadScreen({fields: ids, focusField: ids[0], retryLedger: name});
}

function renderField(tf) {
  const id = tf.id;
  const result = state.screen?.results.get(id);
  const loading = state.loading.has(id);
  const failed = !result && state.screen?.failed.has(id);
  const status = loading ? "LOADING" : result ? result.status : failed ? "ERROR" : "LOADING";
  const label = pick(result?.label ?? tf.label, result?.labelEn ?? tf.labelEn);
  const labelId = uid("f");
  const isRecord = (result?.type ?? tf.type) === "record";
  const node = h("div", {class: `field${isRecord ? " field--record" : ""}`, "data-field": id, "data-status": status});
  const body = h("dd", {class: "field__body"});
  append(node, [h("dt", {class: "field__label", id: labelId}, label), body]);
  if (status === "LOADING") {
    append(body, h("span", {class: "placeholder"}, t("screen.loading")));
    return node;
  }
  if (status === "ERROR") {
    append(body, h("span", {class: "placeholder placeholder--error"}, t("screen.failed")));
    return node;
  }
  const source = result.source;
  const sourceId = source ? uid("src") : null;
  if (SHOWN.has(status)) {
    append(body, renderValue(result, labelId, sourceId, label));
    if (status !== "OK") append(body, badge(status));
    if (source?.cached) append(body, h("span", {class: "cached-tag"}, t("screen.cachedShort")));
    const reason = pick(result.reason, result.reasonEn);  // a read in part ("100 of 119"), masked or not
    if (reason) append(body, h("p", {class: "field__reason"}, t("status.reason", {reason})));
    if (result.badValues?.length) append(body, renderBadValues(result));
  } else {
    append(body, badge(status));
    const reason = pick(result.reason, result.reasonEn);
    if (status === "NOT_FOUND" || status === "UNAVAILABLE") {
      if (source) {
        append(body, h("p", {class: "field__agency"}, t("status.agency", {
          agency: pick(source.agencyName, source.agencyNameEn), ledger: pick(source.ledgerName, source.ledgerNameEn)})));
      }
    }
    if (reason) append(body, h("p", {class: "field__reason"}, t("status.reason", {reason})));
    if (status === "UNAVAILABLE" && source) {
      append(body, h("button", {type: "button", class: "btn btn--small retry",
                                onclick: () => retryLedger(source.ledger)}, t("screen.retry")));
    }
  }
  append(body, consentMark(result));  // shown on the case's consent: how, by whom, when, for which case
  if (source && SHOWN.has(status)) append(body, renderSource(source, sourceId));
  const why = renderExplanation(result, label);  // which rule masked, denied or showed it in full, and why
  if (why) append(body, why);
  return node;
}

/** The bad values of a field, each with where it is (row, column) and why: the value itself is never sent. */
function renderBadValues(result) {
  return h("ul", {class: "field__bad"}, result.badValues.map((b) => {
    const key = b.row === null ? (b.column === null ? "screen.badValueOne" : "screen.badValueColumn")
      : (b.column === null ? "screen.badValueRow" : "screen.badValueCell");
    return h("li", {}, t(key, {row: b.row === null ? "" : b.row + 1, reason: pick(b.reason, b.reasonEn),
                               column: b.column === null ? "" : columnLabel(result.id, b.column)}));
  }));
}

function renderSource(source, sourceId) {
  const parts = [t("screen.source", {agency: pick(source.agencyName, source.agencyNameEn),
                                      ledger: pick(source.ledgerName, source.ledgerNameEn)})];
  if (source.lastUpdated) parts.push(t("screen.lastUpdated", {date: source.lastUpdated.replace("T", " ")}));
  if (source.readAt) parts.push(t("screen.readAt", {at: formatTime(new Date(source.readAt))}));
  if (source.cached) parts.push(t("screen.cached"));
  return h("span", {class: "source", role: "tooltip", id: sourceId, "data-ledger": source.ledger}, parts.join(" · "));
}

function renderValue(result, labelId, sourceId, label) {
  const value = result.value;
  const bad = result.badValues || [];
  if (Array.isArray(value) && value.some((v) => v && typeof v === "object")) {
    return renderRecords(result.id, value, labelId, sourceId, label, new Set(bad.map((b) => `${b.row}:${b.column}`)));
  }
  if (Array.isArray(value) && value.length === 0) {
    return h("span", {class: "value value--empty", tabindex: "0", "aria-describedby": sourceId},
      result.type === "record" ? t("screen.emptyRecords") : t("screen.empty"));
  }
  if (value === null || value === undefined) {
    return bad.length
      ? h("span", {class: "value value--bad", tabindex: "0", "aria-describedby": sourceId}, t("screen.badValue"))
      : h("span", {class: "value value--empty", tabindex: "0", "aria-describedby": sourceId}, t("screen.nullValue"));
  }
  const text = result.display ?? (Array.isArray(value) ? value.map(formatCell).join(", ") : formatCell(value));
  return h("span", {class: "value", tabindex: "0", "aria-describedby": sourceId}, text);
}

function renderRecords(fieldId, rows, labelId, sourceId, label, badAt = new Set()) {
  const columns = [];
  for (const row of rows) for (const key of Object.keys(row || {})) if (!columns.includes(key)) columns.push(key);
  return h("div", {class: "table-wrap value", tabindex: "0", role: "region", "aria-labelledby": labelId,
                   "aria-describedby": sourceId},
    h("table", {class: "data-table"},
      h("caption", {class: "sr-only"}, t("screen.table", {label})),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", {scope: "col"}, columnLabel(fieldId, c))))),
      h("tbody", {}, rows.map((row, i) => h("tr", {}, columns.map((c) => badAt.has(`${i}:${c}`)
        ? h("td", {class: "cell--bad"}, t("screen.badValue"))
        : h("td", {}, formatCell(row?.[c]))))))));
}

export function bindScreen() {
  $("#reload").addEventListener("click", () => { clearAlert(); loadScreen(); });
  $("#print").addEventListener("click", () => window.print());
  bindConsent();
  // Escape hides a value's source tooltip (WCAG 1.4.13) until the focus moves on
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && document.activeElement?.closest?.(".field")) {
      document.activeElement.closest(".field").classList.add("tip-dismissed");
    }
  });
  document.addEventListener("focusin", () => $$(".tip-dismissed").forEach((n) => n.classList.remove("tip-dismissed")));
  // a dialog closing gives the focus back to the button that opened it, often inside a value's field: its source
  // stays closed until the focus moves on (it would cover the values under it)
  // (or the pointer left resting on a value where the dialog's button was)
  for (const dialog of $$("dialog")) {
    dialog.addEventListener("close", () => {
      for (const node of $$("#sections .field")) {
        if (node.matches(":hover") || node.contains(document.activeElement)) node.classList.add("tip-dismissed");
      }
    });
  }
  document.addEventListener("pointerover", (event) => {  // the pointer moved to another value: its source shows
    const over = event.target.closest?.(".field");
    for (const node of $$(".tip-dismissed")) if (node !== over) node.classList.remove("tip-dismissed");
  });
}
