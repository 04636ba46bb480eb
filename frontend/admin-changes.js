// Change approval: pending proposals with their diff (as text) and the reasons they widen access, approve or
// reject (four eyes: the server refuses a proposer's own approval, and this page says so); and the history
// of decided changes, each applied one restorable (a restore is itself a proposal under the same rules).

import {$, fill, h} from "./dom.js";
import {t} from "./i18n.js";
import {AQ, admin, call, changeAction, changeStatus, diffView, loadCatalog, searchCatalog, shortTime, showProblem,
        summaryText, wideningList} from "./admin-common.js";
import {announce, clearAlert, may, state} from "./ui.js";

let busy = false;

export async function loadChanges() {
  $("#changes-done").hidden = true;
  const data = await call(AQ.changes);
  admin.changes = data.changes;
}

function mayDecide(kind) {
  return may(changeAction(kind, "approve"));
}

export function renderChangesPage() {
  const all = admin.changes;
  const pending = (all || []).filter((c) => c.status === "pending");
  const past = (all || []).filter((c) => c.status !== "pending");
  $("#changes-pending-title").textContent = all ? t("admin.changes.pending", {n: pending.length}) : t("admin.changes.pendingNone");
  if (!all) {
    fill($("#changes-pending"), h("p", {class: "empty"}, t("admin.loading")));
    $("#changes-history").replaceChildren();
    return;
  }
  fill($("#changes-pending"), pending.length
    ? h("ol", {class: "changes"}, pending.map((c) => h("li", {}, card(c))))
    : h("p", {class: "empty"}, t("admin.changes.noPending")));
  fill($("#changes-history"), past.length
    ? h("ol", {class: "changes"}, past.map((c) => h("li", {}, card(c))))
    : h("p", {class: "empty"}, t("admin.changes.noHistory")));
  renderCompare();
}

// ------------------------------------------------------------------ two versions compared

let compared = null;  // {from, to, answer} of GET /admin/versions/diff

/** The versions one can compare: the running one, and the one before and after each applied change. */
function versionOptions() {
  const applied = (admin.changes || []).filter((c) => c.status === "applied");
  return [["current", t("admin.compare.current")],
          ...applied.flatMap((c) => [[`after-${c.id}`, t("admin.compare.after", {id: c.id, summary: summaryText(c.summary)})],
                                     [`before-${c.id}`, t("admin.compare.before", {id: c.id, summary: summaryText(c.summary)})]])];
}

function renderCompare() {
  const options = versionOptions();
  const from = $("#compare-from").value || (options[2] || options[0])[0];
  const to = $("#compare-to").value || "current";
  fill($("#compare-from"), options.map(([v, label]) => h("option", {value: v, selected: v === from}, label)));
  fill($("#compare-to"), options.map(([v, label]) => h("option", {value: v, selected: v === to}, label)));
  const box = $("#compare-result");
  if (!compared) { box.replaceChildren(); return; }
  const {fields, tasks} = compared.answer;
  if (!fields.length && !tasks.length) {
    fill(box, h("p", {class: "empty", id: "compare-summary"}, t("admin.compare.same")));
    return;
  }
  const kind = (line) => line.startsWith("+ ") ? "added" : line.startsWith("- ") ? "removed" : "changed";
  const lineItem = (line) => h("li", {"data-kind": kind(line)},
    h("span", {class: "sr-only"}, t(`admin.compare.line.${kind(line)}`), " "), h("code", {}, line));
  fill(box,
    h("p", {id: "compare-summary"}, t("admin.compare.summary", {fields: fields.length, tasks: tasks.length})),
    fields.length ? h("section", {class: "compare-fields"},
      h("h3", {}, t("admin.compare.fields")),
      h("ul", {class: "diff-lines"}, fields.map(lineItem))) : null,
    tasks.map((c) => h("article", {class: "compare-task card", "data-task": c.code, "data-kind": c.kind},
      h("h3", {}, t(`admin.compare.task.${c.kind}`, {code: c.code})),
      h("ul", {class: "diff-lines"}, c.lines.map(lineItem)))));
}

async function onCompare(event) {
  event.preventDefault();
  clearAlert();
  const from = $("#compare-from").value;
  const to = $("#compare-to").value;
  const button = $("#compare-show");
  button.disabled = true;
  announce(t("admin.loading"));
  try {
    compared = {from, to, answer: await searchCatalog("/admin/versions/diff", {from, to})};
  } catch (err) {
    showProblem(err);
    return;
  } finally {
    button.disabled = false;
  }
  renderCompare();
  const a = compared.answer;
  announce(t("admin.compare.summary", {fields: a.fields.length, tasks: a.tasks.length}));
}

export function resetCompare() {
  compared = null;
}

export function bindChangesPage() {
  $("#admin-compare-form").addEventListener("submit", onCompare);
}

function card(c) {
  const titleId = `change-${c.id}-title`;
  const summary = summaryText(c.summary);
  const label = t("admin.changes.label", {id: c.id, summary});
  const mine = c.proposer === state.me?.user;
  const pending = c.status === "pending";
  const files = c.files.map((f) => f.split(/[\\/]/).pop()).join(", ");
  const meta = [
    ["admin.changes.kind", t(`admin.kind.${c.kind}`)],
    ["admin.changes.proposer", c.proposer + (mine ? ` (${t("admin.changes.you")})` : "")],
    ["admin.changes.created", shortTime(c.createdAt)],
    ["admin.changes.files", files],
  ];
  if (!pending) {
    meta.push(["admin.changes.decider", c.approver || t(c.status === "applied" ? "admin.changes.atOnce" : "admin.changes.nobody")]);
    meta.push(["admin.changes.decided", c.decidedAt ? shortTime(c.decidedAt) : "—"]);
    if (c.comment) meta.push(["admin.changes.comment", c.comment]);
  }
  const diff = diffView(c.diff, t("admin.changes.diffLabel", {id: c.id}));
  return h("article", {class: `change${pending ? " change--pending" : ""}`, "data-change": c.id, "data-status": c.status,
                       "aria-labelledby": titleId},
    h("h3", {id: titleId, tabindex: "-1"}, h("span", {class: "change__id"}, `#${c.id}`), " ", summary, " ", changeStatus(c.status)),
    h("dl", {class: "change__meta"}, meta.map(([k, v]) => h("div", {}, h("dt", {}, t(k)), h("dd", {}, v)))),
    c.widening.length
      ? h("div", {class: "change__widening"}, h("h4", {}, t(pending ? "admin.changes.wideningPending" : "admin.changes.widening")),
          wideningList(c.widening))
      : null,
    pending
      ? [h("h4", {}, t("admin.result.diff")), diff]
      : h("details", {class: "change__details"}, h("summary", {}, t("admin.changes.showDiff", {id: c.id})), diff),
    pending && mine ? h("p", {class: "note four-eyes-note", id: `change-${c.id}-own`}, t("admin.changes.ownNote")) : null,
    pending && !mayDecide(c.kind) ? h("p", {class: "note"}, t(`admin.changes.notYours.${c.kind}`)) : null,
    h("div", {class: "change__actions"},
      pending && mayDecide(c.kind) ? [
        // four eyes: one's own proposal cannot be approved, so its button is off and the note says why
        h("button", {type: "button", class: "btn btn--primary", "data-action": "approve", "data-id": c.id,
                     disabled: mine, "aria-describedby": mine ? `change-${c.id}-own` : null,
                     "aria-label": t("admin.changes.approveLabel", {label}), onclick: () => confirmApprove(c, summary)},
          t("admin.changes.approve")),
        h("button", {type: "button", class: "btn btn--danger", "data-action": "reject", "data-id": c.id,
                     "aria-label": t("admin.changes.rejectLabel", {label}), onclick: () => decide(c.id, "reject")},
          t("admin.changes.reject"))] : null,
      c.status === "applied" && may(changeAction(c.kind, "propose"))
        ? h("button", {type: "button", class: "btn", "data-action": "restore", "data-id": c.id,
                       "aria-label": t("admin.changes.restoreLabel", {label}), onclick: () => decide(c.id, "restore")},
            t("admin.changes.restore"))
        : null),
    h("div", {class: "change__problem", hidden: true}));
}

const ANSWER = {approve: "approveChange", reject: "rejectChange", restore: "restoreVersion"};
const DOING = {approve: "admin.changes.approving", reject: "admin.changes.rejecting", restore: "admin.changes.restoring"};
const DONE = {approve: "admin.changes.approved", reject: "admin.changes.rejected", restore: "admin.changes.restored"};

/** Approving asks first: a modal dialog that names the change and its widening, and takes the approver's
    comment (kept with the approval). Escape or Cancel closes it with nothing done; the focus returns. */
function confirmApprove(c, summary) {
  if (busy) return;
  const opener = document.activeElement;
  const errorId = "approve-comment-error";
  const input = h("textarea", {id: "approve-comment", rows: "3", maxlength: "1000", required: true,
                               "aria-describedby": `approve-comment-hint ${errorId}`});
  const error = h("p", {class: "field-error", id: errorId, role: "alert"});
  const dialog = h("dialog", {class: "dialog approve-dialog", id: "approve-dialog", "aria-labelledby": "approve-title",
                              "aria-describedby": "approve-intro"},
    h("form", {method: "dialog", novalidate: true},
      h("h2", {id: "approve-title"}, t("admin.changes.confirmTitle", {id: c.id})),
      h("p", {id: "approve-intro"}, t("admin.changes.confirmIntro", {title: summary, n: c.widening.length})),
      c.widening.length ? wideningList(c.widening) : null,
      h("div", {class: "field-row"},
        h("label", {for: "approve-comment"}, t("admin.changes.commentLabel")), input,
        h("p", {class: "hint", id: "approve-comment-hint"}, t("admin.changes.commentHint")), error),
      h("div", {class: "dialog__actions"},
        h("button", {type: "submit", class: "btn btn--primary", id: "approve-confirm", value: "approve"},
          t("admin.changes.confirm")),
        h("button", {type: "button", class: "btn", id: "approve-cancel", onclick: () => dialog.close()},
          t("admin.changes.cancel")))));
  dialog.querySelector("form").addEventListener("submit", (event) => {
    event.preventDefault();
    const comment = input.value.trim();
    if (!comment) {
      error.textContent = t("admin.changes.commentMissing");
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    dialog.close();
    decide(c.id, "approve", comment);
  });
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (!busy && opener && document.contains(opener)) opener.focus();
  });
  document.getElementById("approve-dialog")?.remove();
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
}

async function decide(id, action, comment = null) {
  if (busy) return;
  busy = true;
  clearAlert();
  const node = $(`article[data-change="${id}"]`);
  node?.setAttribute("aria-busy", "true");
  announce(t(DOING[action], {id}));
  try {
    const data = await call(AQ[action], action === "restore" ? {change: id} : action === "approve" ? {id, comment} : {id});
    const p = data[ANSWER[action]];
    await loadChanges();
    if (p.status === "applied") await loadCatalog({force: true});
    renderChangesPage();
    const message = t(DONE[action], {id, newId: p.id, status: t(`admin.status.${p.status}`)});
    fill($("#changes-done"), message);
    $("#changes-done").hidden = false;
    announce(message);
    const next = action === "restore" && p.status === "pending" ? $(`#change-${p.id}-title`) : null;
    (next || $("#changes-pending-title")).focus();
  } catch (err) {
    const stale = /not pending|changed since|was never applied|no change/.test(err?.message || "");
    if (stale) {
      try { await loadChanges(); } catch { /* the alert says enough */ }
      renderChangesPage();
      showProblem(err);
      $("#changes-pending-title").focus();
    } else {
      showProblem(err, node ? $(".change__problem", node) : null);
    }
  } finally {
    node?.removeAttribute("aria-busy");
    busy = false;
  }
}
