// Consent on the one screen: ONE consent action per screen (not a button per field), bound to the screen's
// case. The panel above the sections says whether a consent (or legal exception) is in force for this task,
// subject and case, and how (method, who recorded it, when, for which case, until when); offers to record one
// (the dialog) or to reuse one recorded for another case of the same subject (an explicit, confirmed act that
// the server audits); and confirms visibly what was recorded. Each consent-based value is marked (consentMark).

import {ApiError, Q, gql} from "./api.js";
import {$, fill, h} from "./dom.js";
import {t} from "./i18n.js";
import {announce, clearAlert, errorMessage, formatTime, handleError, state, token} from "./ui.js";
import {loadScreen} from "./screen.js";

/** A consent's method in words: written, electronic, oral, or the exception's code. */
function methodText(c) {
  return c.exception ? t(`consent.${c.exception}`) : t(`consent.${c.method}`);
}

/** "서면 동의 · 기록 lee.bokji · 2026-12-04 16:20:00 KST · 건 2026-복지-0002 · 2027-03-03까지" */
function consentFacts(c, {validity = true} = {}) {
  const parts = [methodText(c), t("consent.by", {user: c.recordedBy}), formatTime(new Date(c.at ?? c.recordedAt)),
                 t("consent.case", {caseRef: c.caseRef})];
  if (validity) parts.push(c.validUntil ? t("consent.until", {date: c.validUntil}) : t("consent.noEnd"));
  if (c.reusedFrom) parts.push(t("consent.reused"));
  return parts.join(" · ");
}

/** The mark of a value shown on consent: that it is consent-based, and the consent's method, recorder, time, case. */
export function consentMark(result) {
  if (!result?.consentBased || !result.consent) return null;
  return h("p", {class: "field__consent", "data-consent": "based"},
    h("span", {class: "consent-tag"}, t("consent.based")), " ", consentFacts(result.consent, {validity: false}));
}

function gatedFields() {
  return [...(state.screen?.results.values() || [])].filter((f) => f.status === "CONSENT_REQUIRED");
}

/** The screen's one consent panel: hidden when the task has no consent-gated field on this screen. */
export function renderConsentPanel() {
  const panel = $("#consent-panel");
  const s = state.screen;
  const consent = s?.consent || null;
  const waiting = gatedFields();
  const reusable = s?.reusable || [];
  if (!s || (!consent && !waiting.length)) {
    panel.hidden = true;
    panel.replaceChildren();
    return;
  }
  const hadFocus = panel.contains(document.activeElement) ? document.activeElement.id : null;
  panel.hidden = false;
  const body = [h("h2", {class: "consent-panel__title", id: "consent-panel-title"}, t("consent.panelTitle"))];
  if (consent) {
    const just = s.confirmed === consent.id;
    body.push(h("p", {class: `consent-panel__state${just ? " consent-panel__state--confirmed" : ""}`,
                      id: "consent-in-force", "data-consent-id": consent.id},
      h("strong", {}, t(just ? (consent.reusedFrom ? "consent.confirmedReuse" : "consent.confirmed")
                             : "consent.inForce", {caseRef: consent.caseRef})), " ",
      consentFacts(consent)));
  } else {
    body.push(h("p", {class: "consent-panel__state"}, t("consent.needed", {n: waiting.length, caseRef: state.caseRef})),
      h("button", {type: "button", class: "btn btn--primary btn--small consent", id: "consent-open",
                   onclick: () => openConsent()}, t("consent.action")));
    if (reusable.length) body.push(renderReusable(reusable));
  }
  fill(panel, body);
  if (hadFocus && $(`#${hadFocus}`)) $(`#${hadFocus}`).focus();
}

function renderReusable(reusable) {
  return h("div", {class: "consent-reuse"},
    h("h3", {class: "consent-reuse__title"}, t("consent.reuseTitle")),
    h("p", {class: "hint"}, t("consent.reuseIntro", {caseRef: state.caseRef})),
    h("ul", {class: "plain-list consent-reuse__list"}, reusable.map((c, i) => {
      const confirmId = `consent-reuse-confirm-${i}`;
      return h("li", {"data-reuse-case": c.caseRef},
        h("span", {}, consentFacts(c)), " ",
        h("button", {type: "button", class: "btn btn--small consent-reuse__ask", id: `consent-reuse-${i}`,
                     "aria-controls": confirmId, "aria-expanded": "false",
                     onclick: (e) => askReuse(e.currentTarget, confirmId)},
          t("consent.reuseAsk", {caseRef: c.caseRef})),
        h("div", {class: "consent-reuse__confirm", id: confirmId, hidden: true, role: "group",
                  "aria-label": t("consent.reuseConfirmLabel")},
          h("p", {}, t("consent.reuseConfirmText", {from: c.caseRef, to: state.caseRef})),
          h("button", {type: "button", class: "btn btn--primary btn--small consent-reuse__yes",
                       id: `consent-reuse-yes-${i}`, onclick: (e) => reuse(c, e.currentTarget)},
            t("consent.reuseYes")),
          " ",
          h("button", {type: "button", class: "btn btn--small", onclick: () => cancelReuse(confirmId, i)},
            t("consent.cancel")),
          h("p", {class: "field-error", id: `consent-reuse-error-${i}`, role: "alert"})));
    })));
}

function askReuse(button, confirmId) {
  button.setAttribute("aria-expanded", "true");
  const box = $(`#${confirmId}`);
  box.hidden = false;
  $(".consent-reuse__yes", box).focus();
}

function cancelReuse(confirmId, i) {
  $(`#${confirmId}`).hidden = true;
  const ask = $(`#consent-reuse-${i}`);
  ask.setAttribute("aria-expanded", "false");
  ask.focus();
}

async function reuse(c, button) {
  button.disabled = true;
  const error = button.parentNode.querySelector(".field-error");
  try {
    const data = await gql(token(), Q.reuseConsent, {
      task: state.task.code, subject: state.match.id, fromCase: c.caseRef, toCase: state.caseRef});
    done(data.reuseConsent, t("consent.reusedAnnounce", {from: c.caseRef, to: state.caseRef}));
  } catch (err) {
    button.disabled = false;
    failed(err, error);
  }
}

/** After a consent is recorded or reused: reload the screen, confirm it visibly in the panel, announce it. */
async function done(consent, message) {
  clearAlert();
  const first = gatedFields()[0]?.id ?? null;
  await loadScreen({focusField: first});
  if (state.screen?.consent?.id === consent.id) {
    state.screen.confirmed = consent.id;
    renderConsentPanel();
  }
  announce(message);
}

function failed(err, errorNode) {
  if (err instanceof ApiError && err.code === "UNAUTHENTICATED") {
    if ($("#consent-dialog").open) $("#consent-dialog").close();
    handleError(err);
    return;
  }
  const rid = err?.requestId ? ` (${t("err.requestId", {id: err.requestId})})` : "";
  errorNode.textContent = errorMessage(err) + rid;  // stays where it was: try again or cancel
}

// ------------------------------------------------------------------ the dialog: record a consent for this case

export function openConsent() {
  const form = $("#consent-form");
  form.reset();
  $("#consent-exception-code").disabled = true;
  $("#consent-error").textContent = "";
  fill($("#consent-case"), t("consent.forCase", {caseRef: state.caseRef}));
  $("#consent-dialog").showModal();
  $("#consent-written").focus();
}

function onConsentMethodChange() {
  const picked = $("input[name=consent-method]:checked")?.value;
  $("#consent-exception-code").disabled = picked !== "exception";
}

async function onConsentSubmit(event) {
  event.preventDefault();
  const picked = $("input[name=consent-method]:checked")?.value;
  if (!picked) {
    $("#consent-error").textContent = t("consent.pick");
    $("#consent-written").focus();
    return;
  }
  const exception = picked === "exception" ? $("#consent-exception-code").value : null;
  const button = $("#consent-submit");
  button.disabled = true;
  try {
    const data = await gql(token(), Q.recordConsent, {
      task: state.task.code, subject: state.match.id, caseRef: state.caseRef, method: picked, exception});
    const c = data.recordConsent;
    $("#consent-dialog").close();
    await done(c, t(c.noticeDeferred ? "consent.recordedDeferred" : "consent.recorded", {method: methodText(c)}));
  } catch (err) {
    failed(err, $("#consent-error"));
  } finally {
    button.disabled = false;
  }
}

export function bindConsent() {
  $("#consent-form").addEventListener("submit", onConsentSubmit);
  $("#consent-form").addEventListener("change", onConsentMethodChange);
  $("#consent-cancel").addEventListener("click", () => $("#consent-dialog").close());
}
