// The task editor (task configurers, catalog admins): a task's basics, its ordered sections, the fields of
// each with the task's own rules (mask strategy, full value with its legal basis, consent), a field picker
// grouped by the subject type reached and by ledger, the task file (YAML) generated from all that, a preview
// (ledgers touched, what the draft newly discloses, the screen's layout) and the proposal itself.

import {$, $$, fill, h} from "./dom.js";
import {pick, t} from "./i18n.js";
import {AQ, admin, adminHooks, call, changeStatus, diffView, fieldOf, ledgerName, ledgerOf, loadCatalog, maskText,
        searchCatalog, sensitivityBadge, showProblem, subjectLabel, summaryText, taskOf,
        wideningList} from "./admin-common.js";
import {pathText, taskYaml} from "./admin-yaml.js";
import {announce, clearAlert} from "./ui.js";

const NEW = "__new__";
const CODE_RE = /^[a-z][a-z0-9_]*$/;
const CASE_REF_RE = /^[0-9A-Za-z가-힣._:/-]{1,64}$/u;  // as policy.py's CASE_REF_PATTERN
const MAX_DEPTH = 3;  // links followed from the task's subject (citizen > building > parcel)

// ------------------------------------------------------------------ the draft

function draftOf(def) {
  return {
    code: def.code, name: def.name, nameEn: def.nameEn, legalBasis: def.legalBasis, legalBasisEn: def.legalBasisEn,
    subject: def.subject, roles: [...def.roles], jurisdiction: def.jurisdiction || "national",
    caseRefExample: def.caseRefExample || "",
    subjectsPerRequest: def.subjectsPerRequest || 1,
    consentValidDays: def.consentValidDays ?? null,
    ...deferralOf(def.deferredDisclosure), receiptCaseRef: def.receiptCaseRef || "shown",
    sections: def.sections.map((s) => ({title: s.title, titleEn: s.titleEn, fields: s.fields.map((f) => ({
      id: f.id, field: f.field, mask: f.mask ?? null, fullValueBasis: f.fullValueBasis ?? null, consent: Boolean(f.consent),
      full: Boolean(f.fullValueBasis)}))})),
  };
}

function emptyDraft() {
  return {code: "", name: "", nameEn: "", legalBasis: "", legalBasisEn: "", subject: "citizen", roles: [],
          jurisdiction: "national", caseRefExample: "", subjectsPerRequest: 1, consentValidDays: null,
          ...deferralOf(null), receiptCaseRef: "shown", sections: [{title: "", titleEn: "", fields: []}]};
}

/** The form's deferral controls from a task's deferred disclosure (null: told at once). Switching the deferral
    off keeps what was typed, so switching it back on restores it; the file then has no deferral. */
function deferralOf(d) {
  return {deferred: Boolean(d), deferredBasis: d?.legalBasis || "", deferredEnd: d?.until ? "until" : "period",
          deferredDays: d?.periodDays ?? null, deferredUntil: d?.until || ""};
}

/** The task's definition as its file writes it, and the catalog fields its paths name (fetched, not all). */
async function fetchDefinition(code) {
  const body = await searchCatalog("tasks", {code});
  const def = body.tasks[0] || null;
  if (!def) return null;
  const ids = [...new Set(def.sections.flatMap((s) => s.fields.flatMap((f) => String(f.id).split(">"))))];
  for (let i = 0; i < ids.length; i += 200) await searchCatalog("fields", {ids: ids.slice(i, i + 200).join(","), limit: 200});
  return def;
}

const PICKER_PAGE = 50;  // picker results a search shows (refine the search for others)
const TASK_PAGE = 50;    // task list results a search shows
let taskFound = null;    // the last answer of GET /admin/catalog/tasks
let taskAsked = 0;
let searching = false;  // the first search of the task list is in flight
let pickerAsked = 0;
let typing = 0;

export function resetTaskPage() {
  taskFound = null;
  taskAsked += 1;
  pickerAsked += 1;
}

/** Search the task list again (another admin may have added a task); the selection stays where it can. */
export function refreshTaskList() {
  if (taskFound) searchTasks();
}

async function searchTasks() {
  const n = ++taskAsked;
  try {
    const body = await searchCatalog("tasks", {q: $("#admin-task-search").value.trim(), limit: TASK_PAGE});
    if (n !== taskAsked) return;
    taskFound = body;
  } catch (err) {
    if (n === taskAsked) showProblem(err);
    return;
  }
  renderOpenForm();
}

async function searchPicker() {
  const task = admin.task;
  if (!task) return;
  const n = ++pickerAsked;
  try {
    const body = await searchCatalog("picker", {subject: task.draft.subject, q: task.filter.trim(), limit: PICKER_PAGE});
    if (n !== pickerAsked || admin.task !== task) return;
    task.picked = body;
  } catch (err) {
    if (n === pickerAsked) showProblem(err);
    return;
  }
  renderPickerGroups();
}

function openDraft(code, def = null) {
  admin.task = {
    isNew: !def, base: def ? def.yaml : "", draft: def ? draftOf(def) : emptyDraft(),
    yaml: "", yamlEdited: false, filter: "", target: 0, preview: null, result: null, picked: null,
  };
  regenerate();
  searchPicker();
}

function regenerate() {
  const task = admin.task;
  task.yaml = taskYaml(fileDraft(task.draft), task.base);
  task.yamlEdited = false;
  const area = $("#task-yaml");
  if (area) area.value = task.yaml;
  renderPreviewState();
}

/** The draft as the file states it: a full value has its basis and no mask; an empty record mask is no mask;
    a deferral has its basis and one end. */
function fileDraft(draft) {
  const until = draft.deferredEnd === "until";
  return {...draft, deferredDisclosure: draft.deferred ? {legalBasis: draft.deferredBasis,
    until: until ? draft.deferredUntil : null, periodDays: until ? null : draft.deferredDays} : null, sections: draft.sections.map((s) => ({...s, fields: s.fields.map((f) => ({
    field: f.field,
    mask: f.full ? null : f.mask,
    fullValueBasis: f.full ? (f.fullValueBasis || "") : null,
    consent: f.consent,
  }))}))};
}

function sectionName(section) {
  return pick(section.title, section.titleEn) || t("admin.task.untitled");
}

function usedIds() {
  return new Set(admin.task.draft.sections.flatMap((s) => s.fields.map((f) => f.id)));
}

// ------------------------------------------------------------------ rendering

export function renderTaskPage() {
  renderOpenForm();
  const task = admin.task;
  $("#admin-task-form").hidden = !task || !admin.catalog;
  if (!task || !admin.catalog) {
    $("#task-preview-box").hidden = true;
    return;
  }
  renderBasics();
  renderSections();
  renderPicker();
  $("#task-yaml").value = task.yaml;
  renderPreview();
  renderResult();
}

function renderOpenForm() {
  const select = $("#task-open");
  const current = select.value || admin.task?.draft.code || "";
  if (!taskFound) {
    if (admin.catalog && !searching) { searching = true; searchTasks().finally(() => { searching = false; }); }
    if (!select.options.length) fill(select, h("option", {value: NEW, selected: true}, t("admin.task.new")));
    $("#admin-task-search-count").textContent = "";
    return;
  }
  const tasks = taskFound.tasks;
  const first = tasks.some((x) => x.code === current) ? current : tasks[0]?.code;
  fill(select, tasks.map((x) => h("option", {value: x.code, selected: x.code === first}, `${pick(x.name, x.nameEn)} (${x.code})`)),
    h("option", {value: NEW, selected: !first}, t("admin.task.new")));
  $("#admin-task-search-count").textContent = taskFound.total > tasks.length
    ? t("admin.task.searchMore", {n: taskFound.total, shown: tasks.length}) : t("admin.task.searchCount", {n: taskFound.total});
}

function renderBasics() {
  const {draft, isNew} = admin.task;
  const values = {"#task-code": draft.code, "#task-name": draft.name, "#task-name-en": draft.nameEn,
                  "#task-basis": draft.legalBasis, "#task-basis-en": draft.legalBasisEn,
                  "#task-case-ref": draft.caseRefExample, "#task-deferred-basis": draft.deferredBasis,
                  "#task-deferred-until": draft.deferredUntil};
  for (const [sel, v] of Object.entries(values)) if ($(sel).value !== v) $(sel).value = v;
  $("#task-code").readOnly = !isNew;
  fill($("#task-subject"), admin.catalog.subjectTypes.map((s) =>
    h("option", {value: s.id, selected: s.id === draft.subject}, pick(s.label, s.labelEn))));
  $("#task-subject").disabled = !isNew;
  fill($("#task-jurisdiction"), ["national", "own_region"].map((j) =>
    h("option", {value: j, selected: j === draft.jurisdiction}, t(`admin.task.jurisdiction.${j}`))));
  if ($("#task-subjects").value !== String(draft.subjectsPerRequest)) $("#task-subjects").value = draft.subjectsPerRequest;
  const days = draft.consentValidDays === null ? "" : String(draft.consentValidDays);
  if ($("#task-consent-days").value !== days) $("#task-consent-days").value = days;
  renderReceiptControls();
  // the roles a task may name: those roles.yaml grants no catalog or task change action
  const caseworkerRoles = admin.catalog.roles.filter((r) => !r.actions.some((a) => /^(catalog|task)\./.test(a)));
  fill($("#task-roles"), caseworkerRoles.map((r) => {
    const id = `task-role-${r.id}`;
    return h("div", {class: "check"},
      h("input", {type: "checkbox", id, value: r.id, checked: draft.roles.includes(r.id), "data-role": r.id}),
      h("label", {for: id}, pick(r.label, r.labelEn), " ", h("code", {class: "admin-id"}, r.id)));
  }));
}

/** The receipt controls: the case reference shown or hidden, and the deferral (its basis and end, usable only
    while the deferral is on; of the two ends, only the chosen one). */
function renderReceiptControls() {
  const d = admin.task.draft;
  fill($("#task-receipt-case-ref"), ["shown", "hidden"].map((v) =>
    h("option", {value: v, selected: v === d.receiptCaseRef}, t(`admin.task.receiptCaseRef.${v}`))));
  $("#task-deferred").checked = d.deferred;
  fill($("#task-deferred-end"), ["period", "until"].map((v) =>
    h("option", {value: v, selected: v === d.deferredEnd}, t(`admin.task.deferredEnd.${v}`))));
  const days = d.deferredDays === null ? "" : String(d.deferredDays);
  if ($("#task-deferred-days").value !== days) $("#task-deferred-days").value = days;
  $("#task-deferred-basis").disabled = !d.deferred;
  $("#task-deferred-end").disabled = !d.deferred;
  $("#task-deferred-days").disabled = !d.deferred || d.deferredEnd !== "period";
  $("#task-deferred-until").disabled = !d.deferred || d.deferredEnd !== "until";
}

function renderSections() {
  const {draft} = admin.task;
  const box = $("#task-sections");
  fill(box, h("ol", {class: "task-sections"}, draft.sections.map((s, si) => renderSection(s, si, draft.sections.length))));
}

function renderSection(section, si, count) {
  const title = sectionName(section);
  const n = si + 1;
  return h("li", {class: "task-section", "data-section": String(si)},
    h("fieldset", {},
      h("legend", {}, t("admin.task.sectionLegend", {n, title})),
      h("div", {class: "grid-2"},
        textRow(`sec-${si}-title`, t("admin.task.sectionTitle"), section.title,
                (v) => { section.title = v; renderTargets(); }),
        textRow(`sec-${si}-title-en`, t("admin.task.sectionTitleEn"), section.titleEn, (v) => { section.titleEn = v; }, {lang: "en"})),
      h("div", {class: "mini-toolbar", role: "group", "aria-label": t("admin.task.sectionTools", {n, title})},
        h("button", {type: "button", class: "btn btn--small", "data-focus": `sec:${si}:up`, disabled: si === 0,
                     "aria-label": t("admin.task.sectionUp", {title}), onclick: () => moveSection(si, -1)}, t("admin.task.up")),
        h("button", {type: "button", class: "btn btn--small", "data-focus": `sec:${si}:down`, disabled: si === count - 1,
                     "aria-label": t("admin.task.sectionDown", {title}), onclick: () => moveSection(si, 1)}, t("admin.task.down")),
        h("button", {type: "button", class: "btn btn--small btn--danger", "data-focus": `sec:${si}:remove`, disabled: count === 1,
                     "aria-label": t("admin.task.sectionRemove", {title}), onclick: () => removeSection(si)},
          t("admin.task.remove"))),
      section.fields.length
        ? h("ol", {class: "task-fields"}, section.fields.map((f, fi) => renderField(f, si, fi)))
        : h("p", {class: "empty"}, t("admin.task.sectionEmpty"))));
}

function textRow(id, label, value, onInput, extra = {}) {
  return h("div", {class: "field-row"},
    h("label", {for: id}, label),
    h("input", {type: "text", id, value: value || "", autocomplete: "off", ...extra,
                oninput: (e) => { onInput(e.target.value); regenerate(); }}));
}

function renderField(f, si, fi) {
  const target = fieldOf(f.id.split(">").pop());
  const label = f.id.split(">").map((id) => { const x = fieldOf(id); return x ? pick(x.label, x.labelEn) : id; }).join(" › ");
  const base = `f-${si}-${fi}`;
  const isRecord = target?.type === "record";
  const strategies = admin.catalog.maskStrategies;
  const defaultText = target?.mask ? t("admin.task.maskDefault", {mask: maskText(target.mask)}) : t("admin.task.maskNone");
  const onRule = () => { regenerate(); };
  const maskControl = isRecord
    ? h("fieldset", {class: "column-masks"},
        h("legend", {}, t("admin.task.columnMasks")),
        target.columns.map((c) => {
          const id = `${base}-mask-${c.name}`;
          const value = f.mask && typeof f.mask === "object" ? f.mask[c.name] || "" : "";
          return h("div", {class: "field-row field-row--inline"},
            h("label", {for: id}, pick(c.label, c.labelEn)),
            h("select", {id, disabled: f.full, "data-mask-column": c.name, onchange: (e) => {
              const mask = {...(typeof f.mask === "object" && f.mask ? f.mask : {})};
              if (e.target.value) mask[c.name] = e.target.value; else delete mask[c.name];
              f.mask = Object.keys(mask).length ? mask : null;
              onRule();
            }}, h("option", {value: ""}, t("admin.task.maskNone")),
              strategies.map((s) => h("option", {value: s, selected: s === value}, t(`admin.mask.${s}`)))));
        }))
    : h("div", {class: "field-row field-row--inline"},
        h("label", {for: `${base}-mask`}, t("admin.task.mask")),
        h("select", {id: `${base}-mask`, disabled: f.full, "data-rule": "mask", onchange: (e) => { f.mask = e.target.value || null; onRule(); }},
          h("option", {value: ""}, defaultText),
          strategies.map((s) => h("option", {value: s, selected: s === f.mask}, t(`admin.mask.${s}`)))));
  const basisId = `${base}-basis`;
  return h("li", {class: "task-field", "data-field": f.id},
    h("div", {class: "task-field__head"},
      h("span", {class: "task-field__label"}, label), " ",
      h("code", {class: "admin-id"}, f.id), " ",
      target ? sensitivityBadge(target.sensitivity) : null, " ",
      target ? h("span", {class: "hint-inline"}, ledgerName(target.ledger)) : null),
    agreementLine(f),
    h("div", {class: "task-field__rules"},
      maskControl,
      h("div", {class: "check"},
        h("input", {type: "checkbox", id: `${base}-full`, checked: f.full, "data-rule": "full", onchange: (e) => {
          f.full = e.target.checked;
          const li = e.target.closest(".task-field");
          $(`#${basisId}`).disabled = !f.full;
          for (const sel of $$("select", li)) sel.disabled = f.full;
          if (f.full) $(`#${basisId}`).focus();
          onRule();
        }}),
        h("label", {for: `${base}-full`}, t("admin.task.full"))),
      h("div", {class: "field-row field-row--inline field-row--wide"},
        h("label", {for: basisId}, t("admin.task.basis")),
        h("input", {type: "text", id: basisId, value: f.fullValueBasis || "", disabled: !f.full, autocomplete: "off",
                    "data-rule": "basis", oninput: (e) => { f.fullValueBasis = e.target.value; onRule(); }})),
      h("div", {class: "check"},
        h("input", {type: "checkbox", id: `${base}-consent`, checked: f.consent, "data-rule": "consent",
                    onchange: (e) => { f.consent = e.target.checked; onRule(); }}),
        h("label", {for: `${base}-consent`}, t("admin.task.consent")))),
    h("div", {class: "mini-toolbar", role: "group", "aria-label": t("admin.task.fieldTools", {label})},
      h("button", {type: "button", class: "btn btn--small", "data-focus": `field:${f.id}:up`,
                   disabled: si === 0 && fi === 0, "aria-label": t("admin.task.fieldUp", {label}),
                   onclick: () => moveField(si, fi, -1)}, t("admin.task.up")),
      h("button", {type: "button", class: "btn btn--small", "data-focus": `field:${f.id}:down`,
                   disabled: si === admin.task.draft.sections.length - 1 && fi === admin.task.draft.sections[si].fields.length - 1,
                   "aria-label": t("admin.task.fieldDown", {label}), onclick: () => moveField(si, fi, 1)}, t("admin.task.down")),
      h("button", {type: "button", class: "btn btn--small btn--danger", "data-focus": `field:${f.id}:remove`,
                   "aria-label": t("admin.task.fieldRemove", {label}), onclick: () => removeField(si, fi)},
        t("admin.task.remove"))));
}

/** The sharing agreements in force that cover every field of path `pathId` for the draft's task and roles (an
    agreement naming organisations may cover some of its caseworkers: shown too); null when one field has none. */
export function agreementsFor(pathId, draft) {
  const all = admin.catalog?.agreements || [];
  const ids = [];
  for (const fid of pathId.split(">")) {
    const a = all.find((x) => x.inForce && x.tasks.includes(draft.code) && x.fields.includes(fid) &&
      (x.organisations.length || x.roles.some((r) => draft.roles.includes(r))));
    if (!a) return null;
    if (!ids.includes(a.id)) ids.push(a.id);
  }
  return ids;
}

/** Which agreement covers the field (or that none does: the field will be DENIED), said in words. */
function agreementLine(f) {
  if (!admin.catalog?.agreementsEnforced) {
    return h("p", {class: "task-field__agreement hint", "data-agreement": "not-enforced"}, t("admin.task.agreementOff"));
  }
  const ids = agreementsFor(f.id, admin.task.draft);
  return ids
    ? h("p", {class: "task-field__agreement hint", "data-agreement": ids.join(" ")}, t("admin.task.agreement", {ids: ids.join(", ")}))
    : h("p", {class: "task-field__agreement note", "data-agreement": "none"}, t("admin.task.agreementNone"));
}

function renderPicker() {
  const task = admin.task;
  const draft = task.draft;
  if ($("#task-picker-filter").value !== task.filter) $("#task-picker-filter").value = task.filter;
  renderTargets();
  renderPickerGroups();
}

/** The picker's "add to section" choices, by number and title. */
function renderTargets() {
  const task = admin.task;
  const sections = task.draft.sections;
  task.target = Math.min(task.target, sections.length - 1);
  fill($("#task-picker-target"), sections.map((s, i) => h("option", {value: String(i), selected: i === task.target},
    t("admin.task.sectionLegend", {n: i + 1, title: sectionName(s)}))));
}

function renderPickerGroups() {
  const task = admin.task;
  const used = usedIds();
  const picked = task.picked;
  if (!picked) {
    $("#task-picker-count").textContent = "";
    fill($("#task-picker-groups"), h("p", {class: "empty"}, t("admin.loading")));
    return;
  }
  // the server's page of reachable paths, grouped by the subject reached (and the links on the way) and ledger
  const groups = new Map();
  for (const item of picked.items) {
    const key = [item.subject, ...item.links.map((l) => l.id)].join(">");
    if (!groups.has(key)) groups.set(key, {subject: item.subject, links: item.links, items: []});
    groups.get(key).items.push(item);
  }
  const out = [];
  for (const g of groups.values()) {
    const via = g.links.length ? g.links.map((l) => pick(l.label, l.labelEn)).join(" › ") : t("admin.task.theSubject");
    const byLedger = new Map();
    for (const item of g.items) {
      if (!byLedger.has(item.field.ledger)) byLedger.set(item.field.ledger, []);
      byLedger.get(item.field.ledger).push(item);
    }
    out.push(h("section", {class: "picker-group", "data-subject": g.subject},
      h("h3", {}, t("admin.task.pickerGroup", {subject: subjectLabel(g.subject), via})),
      [...byLedger].map(([ledger, list]) => {
        const l = ledgerOf(ledger);
        return h("div", {class: "picker-ledger", "data-ledger": ledger},
          h("h4", {}, ledgerName(ledger), l ? h("span", {class: "hint-inline"}, ` · ${pick(l.agencyName, l.agencyNameEn)}`) : null),
          h("ul", {class: "picker-list"}, list.map(({field: f, id, labels}) => {
            const label = labels.map(([ko, en]) => pick(ko, en)).join(" › ");
            const isUsed = used.has(id);
            return h("li", {"data-path": id},
              h("button", {type: "button", class: "btn btn--small pick", "data-pick": id, "aria-disabled": isUsed ? "true" : null,
                           "aria-label": isUsed ? t("admin.task.pickedLabel", {label, id}) : t("admin.task.pickLabel", {label, id}),
                           onclick: () => addField(id)}, t(isUsed ? "admin.task.picked" : "admin.task.pick")),
              " ", h("span", {class: "picker-label"}, label), " ", h("code", {class: "admin-id"}, id), " ",
              sensitivityBadge(f.sensitivity));
          })));
      })));
  }
  $("#task-picker-count").textContent = picked.total > picked.items.length
    ? t("admin.task.pickerMore", {n: picked.total, shown: picked.items.length})
    : t("admin.task.pickerCount", {n: picked.total});
  fill($("#task-picker-groups"), out.length ? out : h("p", {class: "empty"}, t("admin.task.pickerNone")));
}

function renderPreviewState() {
  const note = $("#task-preview-stale");
  if (!note) return;
  const p = admin.task?.preview;
  note.hidden = !p || p.yaml === admin.task.yaml;
}

function renderPreview() {
  const box = $("#task-preview-box");
  const p = admin.task.preview;
  box.hidden = !p;
  if (!p) {
    box.replaceChildren();
    return;
  }
  const draft = admin.task.draft;
  const fresh = newlyDisclosedFields(p.newlyDisclosed, draft);
  fill(box,
    h("h2", {id: "task-preview-title", tabindex: "-1"}, t("admin.task.previewTitle")),
    h("p", {class: "note", id: "task-preview-stale", hidden: p.yaml === admin.task.yaml}, t("admin.task.previewStale")),
    h("h3", {}, t("admin.task.previewLedgers", {n: p.ledgers.length})),
    h("ul", {class: "plain-list preview-ledgers"}, p.ledgers.map((l) => h("li", {"data-ledger": l},
      ledgerName(l), " ", h("code", {class: "admin-id"}, l)))),
    h("h3", {}, t("admin.task.previewNew")),
    p.newlyDisclosed.length ? wideningList(p.newlyDisclosed) : h("p", {class: "preview-nothing"}, t("admin.task.previewNothing")),
    h("h3", {}, t("admin.task.previewDenied")),
    (p.denied || []).length
      ? h("ul", {class: "plain-list preview-denied"}, p.denied.map((d) => h("li", {"data-field": d.field},
          h("code", {class: "admin-id"}, d.field), " — ", pick(d.reason, d.reasonEn))))
      : h("p", {class: "preview-denied-none"}, t("admin.task.previewDeniedNone")),
    h("h3", {}, t("admin.task.previewScreen")),
    h("p", {class: "hint"}, t("admin.task.previewScreenHint")),
    p.yamlEdited ? h("p", {class: "note"}, t("admin.task.previewHandEdited")) : null,
    h("div", {class: "preview-screen"}, draft.sections.map((s) => h("section", {class: "screen-section"},
      h("h4", {class: "screen-section__title"}, sectionName(s)),
      h("dl", {class: "fields"}, s.fields.map((f) => {
        const target = fieldOf(f.id.split(">").pop());
        const label = target ? pick(target.label, target.labelEn) : f.id;
        const why = fresh.get(f.id);  // newly disclosed: said in words, the colour only repeats it
        const denied = (p.denied || []).find((d) => d.field === f.id);
        return h("div", {class: `field${why ? " field--new" : ""}`, "data-field": f.id, "data-new": why || null,
                         "data-denied": denied ? "true" : null},
          h("dt", {class: "field__label"}, label), h("dd", {class: "field__body"},
            why ? [h("span", {class: "new-tag"}, t(`admin.task.new.${why}`)), " "] : null,
            denied ? [h("span", {class: "denied-tag"}, t("admin.task.deniedTag")), " ", pick(denied.reason, denied.reasonEn)]
              : ruleSummary(f, target)));
      }))))));
}

/** The fields of the draft that the preview's reasons say it newly discloses: id -> how (gains, unmasked,
    mask, consent, or every field of a new task). */
function newlyDisclosedFields(reasons, draft) {
  const out = new Map();
  for (const r of reasons || []) {
    let m = /^task \w+: gains field (\S+)$/.exec(r);
    if (m) { out.set(m[1], "gains"); continue; }
    m = /^task \w+: (\S+) is no longer masked$/.exec(r);
    if (m) { out.set(m[1], "unmasked"); continue; }
    m = /^task \w+: (\S+) changes its mask from .+ to .+$/.exec(r);
    if (m) { out.set(m[1], "mask"); continue; }
    m = /^task \w+: (\S+) no longer needs consent$/.exec(r);
    if (m) { out.set(m[1], "consent"); continue; }
    if (/^new task \w+ discloses/.test(r)) for (const s of draft.sections) for (const f of s.fields) out.set(f.id, "gains");
  }
  return out;
}

/** How a caseworker will see a field: the full value (and why), masked (how), after consent. */
function ruleSummary(f, target) {
  const parts = [];
  if (f.consent) parts.push(t("admin.task.showConsent"));
  if (f.full) parts.push(t("admin.task.showFull", {basis: f.fullValueBasis || "—"}));
  else if (f.mask) parts.push(t("admin.task.showMasked", {mask: maskText(f.mask)}));
  else if (target?.mask) parts.push(t("admin.task.showMasked", {mask: maskText(target.mask)}));
  else parts.push(t("admin.task.showPlain"));
  return parts.join(" · ");
}

function renderResult() {
  const box = $("#task-result");
  const p = admin.task.result;
  if (!p) return;
  box.hidden = false;
  fill(box, h("div", {class: "card result", "data-change": p.id, "data-status": p.status},
    h("h2", {id: "task-result-title", tabindex: "-1"}, t("admin.result.title", {id: p.id}), " ", changeStatus(p.status)),
    h("p", {}, summaryText(p.summary)),
    h("p", {}, t(p.status === "applied" ? "admin.task.appliedNote" : "admin.result.pendingNote")),
    p.widening.length ? [h("h3", {}, t("admin.result.widening")), wideningList(p.widening)] : null,
    h("h3", {}, t("admin.result.diff")),
    diffView(p.diff, t("admin.result.diffLabel", {id: p.id})),
    h("button", {type: "button", class: "btn to-changes", onclick: () => adminHooks.go("changes")}, t("admin.result.toChanges"))));
}

// ------------------------------------------------------------------ editing

function rerender(focusKey = null, fallback = null) {
  renderSections();
  renderPicker();
  regenerate();
  const node = focusKey ? $(`[data-focus="${CSS.escape(focusKey)}"]`) : null;
  if (node && !node.disabled) node.focus();
  else (fallback ? $(fallback) : $("#task-sections-title"))?.focus();
}

function moveSection(si, delta) {
  const s = admin.task.draft.sections;
  const to = si + delta;
  if (to < 0 || to >= s.length) return;
  [s[si], s[to]] = [s[to], s[si]];
  announce(t("admin.task.movedSection", {title: sectionName(s[to]), n: to + 1}));
  rerender(`sec:${to}:${delta < 0 ? "up" : "down"}`, `#sec-${to}-title`);
}

function removeSection(si) {
  const s = admin.task.draft.sections;
  if (s.length === 1) return;
  const [gone] = s.splice(si, 1);
  announce(t("admin.task.removedSection", {title: sectionName(gone), n: gone.fields.length}));
  rerender(null, `#sec-${Math.max(0, si - 1)}-title`);
}

function addSection() {
  const s = admin.task.draft.sections;
  s.push({title: "", titleEn: "", fields: []});
  admin.task.target = s.length - 1;
  rerender(null, `#sec-${s.length - 1}-title`);
  announce(t("admin.task.addedSection", {n: s.length}));
}

/** Up and down move a field within its section, and across into the neighbouring section at either end. */
function moveField(si, fi, delta) {
  const sections = admin.task.draft.sections;
  const list = sections[si].fields;
  const [f] = list.splice(fi, 1);
  let target = si;
  if (fi + delta < 0) {
    target = si - 1;
    sections[target].fields.push(f);
  } else if (fi + delta > list.length) {
    target = si + 1;
    sections[target].fields.unshift(f);
  } else {
    list.splice(fi + delta, 0, f);
  }
  const label = f.id;
  announce(t("admin.task.movedField", {label, title: sectionName(sections[target])}));
  rerender(`field:${f.id}:${delta < 0 ? "up" : "down"}`, `[data-focus="${CSS.escape(`field:${f.id}:${delta < 0 ? "down" : "up"}`)}"]`);
}

function removeField(si, fi) {
  const list = admin.task.draft.sections[si].fields;
  const [gone] = list.splice(fi, 1);
  announce(t("admin.task.removedField", {label: gone.id}));
  const next = list[fi] || list[fi - 1];
  rerender(next ? `field:${next.id}:remove` : null, `#sec-${si}-title`);
}

function addField(pathId) {
  const task = admin.task;
  if (usedIds().has(pathId)) {
    announce(t("admin.task.alreadyIn", {id: pathId}));
    return;
  }
  const section = task.draft.sections[task.target] || task.draft.sections[0];
  section.fields.push({id: pathId, field: pathText(pathId), mask: null, fullValueBasis: null, consent: false, full: false});
  const title = sectionName(section);
  rerender(null);
  $(`[data-pick="${CSS.escape(pathId)}"]`)?.focus();
  announce(t("admin.task.added", {id: pathId, title}));
}

function onBasics(event) {
  const task = admin.task;
  if (!task) return;
  const d = task.draft;
  const target = event.target;
  if (target.dataset.role) {
    const roles = new Set(d.roles);
    if (target.checked) roles.add(target.dataset.role); else roles.delete(target.dataset.role);
    d.roles = [...roles];
  } else if (target.id === "task-subject") {
    d.subject = target.value;
    const dropped = d.sections.reduce((n, s) => n + s.fields.length, 0);
    for (const s of d.sections) s.fields = s.fields.filter((f) => f.id.split(".")[0] === d.subject);
    const kept = d.sections.reduce((n, s) => n + s.fields.length, 0);
    if (kept !== dropped) announce(t("admin.task.subjectChanged", {n: dropped - kept}));
    renderSections();
    admin.task.picked = null;
    renderPicker();
    searchPicker();
  } else {
    const map = {"task-code": "code", "task-name": "name", "task-name-en": "nameEn", "task-basis": "legalBasis",
                 "task-basis-en": "legalBasisEn", "task-jurisdiction": "jurisdiction",
                 "task-case-ref": "caseRefExample", "task-deferred-basis": "deferredBasis",
                 "task-deferred-until": "deferredUntil", "task-deferred-end": "deferredEnd",
                 "task-receipt-case-ref": "receiptCaseRef"};
    if (target.id === "task-subjects") {
      d.subjectsPerRequest = Number(target.value) || 1;  // the server checks the range (1-1000)
    } else if (target.id === "task-deferred") {
      d.deferred = target.checked;
      renderReceiptControls();
      if (d.deferred) $("#task-deferred-basis").focus();
    } else if (target.id === "task-deferred-days") {
      d.deferredDays = target.value.trim() === "" ? null : Number(target.value);  // the server checks it again
    } else if (target.id === "task-consent-days") {
      // empty: no end; the server checks the range (1-3650) and that the task has a consent-gated field
      d.consentValidDays = target.value.trim() === "" ? null : Number(target.value);
    } else {
      if (!(target.id in map)) return;
      d[map[target.id]] = target.value.trim();
      if (target.id === "task-deferred-end") renderReceiptControls();
    }
  }
  regenerate();
}

// ------------------------------------------------------------------ checking, preview, proposal

/** What the form can tell before the server does (the server checks everything again, with file and line). */
function problems() {
  const task = admin.task;
  const d = task.draft;
  const out = [];
  if (!CODE_RE.test(d.code)) out.push(["#task-code", t("admin.task.codeInvalid")]);
  if (task.isNew && taskOf(d.code)) out.push(["#task-code", t("admin.task.codeTaken", {code: d.code})]);
  if (task.yamlEdited) return out;  // the admin's own YAML: the server judges it
  for (const [sel, v] of [["#task-name", d.name], ["#task-name-en", d.nameEn], ["#task-basis", d.legalBasis],
                          ["#task-basis-en", d.legalBasisEn]]) {
    if (!v) out.push([sel, t("admin.task.required", {what: $(`label[for="${sel.slice(1)}"]`).textContent})]);
  }
  if (d.caseRefExample && !CASE_REF_RE.test(d.caseRefExample)) out.push(["#task-case-ref", t("admin.task.caseRefInvalid")]);
  if (d.deferred) {
    if (!d.deferredBasis) out.push(["#task-deferred-basis", t("admin.task.deferredBasisNeeded")]);
    if (d.deferredEnd === "until" && !/^\d{4}-\d{2}-\d{2}$/.test(d.deferredUntil)) {
      out.push(["#task-deferred-until", t("admin.task.deferredUntilInvalid")]);
    }
    if (d.deferredEnd === "period" && !(Number.isInteger(d.deferredDays) && d.deferredDays >= 1 && d.deferredDays <= 3650)) {
      out.push(["#task-deferred-days", t("admin.task.deferredDaysInvalid")]);
    }
  }
  if (!d.roles.length) out.push(["#task-roles input", t("admin.task.rolesNeeded")]);
  d.sections.forEach((s, si) => {
    if (!s.title || !s.titleEn) out.push([`#sec-${si}-title`, t("admin.task.sectionTitleNeeded", {n: si + 1})]);
    if (!s.fields.length) out.push([`#sec-${si}-title`, t("admin.task.sectionFieldsNeeded", {n: si + 1})]);
    s.fields.forEach((f, fi) => {
      if (f.full && !(f.fullValueBasis || "").trim()) out.push([`#f-${si}-${fi}-basis`, t("admin.task.basisNeeded", {id: f.id})]);
    });
  });
  return out;
}

function showProblems(list) {
  const box = $("#task-result");
  box.hidden = false;
  fill(box, h("div", {class: "problem", role: "alert"},
    h("p", {class: "problem__title"}, t("admin.task.fixFirst")),
    h("ul", {class: "problem__lines"}, list.map(([, message]) => h("li", {}, message)))));
  $(list[0][0])?.focus();
}

function codeForServer() {
  const task = admin.task;
  if (!task.yamlEdited) return task.draft.code;
  const m = /^code:\s*["']?([a-z][a-z0-9_]*)/m.exec(task.yaml);
  return m ? m[1] : task.draft.code;
}

async function onPreview(event) {
  event?.preventDefault();
  clearAlert();
  const task = admin.task;
  const wrong = problems();
  if (wrong.length) { showProblems(wrong); return; }
  const yaml = task.yaml;
  const button = $("#task-preview");
  button.disabled = true;
  announce(t("admin.task.previewing"));
  try {
    const data = await call(AQ.preview, {code: codeForServer(), yaml});
    task.preview = {...data.previewTask, yaml, yamlEdited: task.yamlEdited};
    task.result = null;
    $("#task-result").hidden = true;
    renderPreview();
    announce(t("admin.task.previewed", {n: task.preview.ledgers.length, m: task.preview.newlyDisclosed.length}));
    $("#task-preview-title").focus();
  } catch (err) {
    showProblem(err, $("#task-result"));
  } finally {
    button.disabled = false;
  }
}

async function onPropose() {
  clearAlert();
  const task = admin.task;
  const wrong = problems();
  if (wrong.length) { showProblems(wrong); return; }
  const button = $("#task-propose");
  button.disabled = true;
  announce(t("admin.task.proposing"));
  try {
    const code = codeForServer();
    const data = await call(AQ.propose, {code, yaml: task.yaml});
    task.result = data.proposeTask;
    await loadCatalog({force: true});
    if (task.result.status === "applied") {
      const def = (await searchCatalog("tasks", {code})).tasks[0];
      task.isNew = false;
      task.base = def ? def.yaml : task.yaml;
      taskFound = null;  // the task list shows the new or renamed task
    }
    renderTaskPage();
    announce(t(task.result.status === "applied" ? "admin.task.applied" : "admin.result.pending", {id: task.result.id}));
    $("#task-result-title").focus();
  } catch (err) {
    showProblem(err, $("#task-result"));
  } finally {
    button.disabled = false;
  }
}

async function onOpen(event) {
  event.preventDefault();
  clearAlert();
  if (!admin.catalog) return;
  const code = $("#task-open").value;
  let def = null;
  if (code !== NEW) {
    $("#admin-task-form").hidden = true;  // until the task's definition and its fields are here
    announce(t("admin.loading"));
    try {
      def = await fetchDefinition(code);
    } catch (err) {
      showProblem(err);
      return;
    }
  }
  openDraft(def ? code : NEW, def);
  $("#task-result").hidden = true;
  $("#task-result").replaceChildren();
  renderTaskPage();
  const d = admin.task.draft;
  announce(admin.task.isNew ? t("admin.task.openedNew") : t("admin.task.opened", {name: pick(d.name, d.nameEn)}));
  $(admin.task.isNew ? "#task-code" : "#task-name").focus();
}

export function bindTaskPage() {
  $("#admin-task-open").addEventListener("submit", onOpen);
  const form = $("#admin-task-form");
  form.addEventListener("submit", onPreview);
  for (const sel of ["#task-code", "#task-name", "#task-name-en", "#task-basis", "#task-basis-en", "#task-case-ref",
                     "#task-deferred-basis", "#task-deferred-days", "#task-deferred-until"]) {
    $(sel).addEventListener("input", onBasics);
  }
  for (const sel of ["#task-deferred", "#task-deferred-end", "#task-receipt-case-ref"]) $(sel).addEventListener("change", onBasics);
  $("#task-subject").addEventListener("change", onBasics);
  $("#task-jurisdiction").addEventListener("change", onBasics);
  $("#task-subjects").addEventListener("input", onBasics);
  $("#task-consent-days").addEventListener("input", onBasics);
  $("#task-roles").addEventListener("change", onBasics);
  $("#task-add-section").addEventListener("click", addSection);
  $("#task-propose").addEventListener("click", onPropose);
  $("#task-picker-filter").addEventListener("input", (e) => {
    admin.task.filter = e.target.value;
    clearTimeout(typing);
    typing = setTimeout(searchPicker, 200);  // one search per pause in typing
  });
  $("#admin-task-search").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(searchTasks, 200); });
  $("#admin-task-search").addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") { e.preventDefault(); $("#task-open").focus(); }
  });
  $("#task-picker-filter").addEventListener("keydown", (e) => { if (e.key === "Enter") e.preventDefault(); });
  $("#task-picker-target").addEventListener("change", (e) => { admin.task.target = Number(e.target.value) || 0; });
  $("#task-yaml").addEventListener("input", (e) => {
    admin.task.yaml = e.target.value;
    admin.task.yamlEdited = true;
    renderPreviewState();
  });
}
