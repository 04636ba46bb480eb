// The task editor's draft written as a task file (policies/tasks/<code>.yaml), in the layout the task files
// already use, so that a change's diff shows only what the admin changed. Comment lines above a top-level
// key of the file being edited are kept above that key. Pure functions: no DOM, no server.

const YAML11_WORDS = /^(?:y|yes|n|no|true|false|on|off|null|~|=)$/i;

/** A string as a YAML scalar: plain where YAML 1.1 (the loader's) reads it back as the same string, else quoted. */
export function scalar(value) {
  const s = String(value ?? "");
  const plain = s !== ""
    && !/^[\s\-?:,[\]{}#&*!|>'"%@`]/.test(s)      // an indicator first
    && !/\s$/.test(s)                              // trailing blanks would be lost
    && !/:\s|\s#|:$/.test(s)                       // a key, or a comment, inside
    && !/[\u0000-\u001f\u007f]/.test(s)            // control characters, newlines
    && !YAML11_WORDS.test(s)                       // booleans and null of YAML 1.1
    && !/^[-+]?(?:\d|\.\d|\.inf$|\.nan$)/i.test(s); // numbers, dates, times
  return plain ? s : JSON.stringify(s);           // a JSON string is a valid YAML double-quoted scalar
}

function maskYaml(mask) {
  if (typeof mask === "string") return scalar(mask);
  return `{${Object.entries(mask).map(([k, v]) => `${scalar(k)}: ${scalar(v)}`).join(", ")}}`;
}

function hasMask(mask) {
  return typeof mask === "string" ? mask !== "" : Boolean(mask) && Object.keys(mask).length > 0;
}

/** Full-line comments directly above each top-level key of `text` (the file's header goes with its first key). */
export function commentsByKey(text) {
  const out = {};
  let pending = [];
  for (const line of String(text || "").split("\n")) {
    if (/^#/.test(line)) {
      pending.push(line);
      continue;
    }
    const key = /^([A-Za-z_][A-Za-z0-9_]*):/.exec(line);
    if (key && pending.length) out[key[1]] = pending;
    if (line.trim() !== "" || key) pending = [];
  }
  return out;
}

// the top-level keys the editor's form holds; every other key of the file is written back as the file has it:
// the editor once dropped the keys it had no control for, so saving a task under investigation from the form
// would have alerted its subjects at once
const EDITED = new Set(["code", "name", "name_en", "legal_basis", "legal_basis_en", "subject", "roles", "jurisdiction",
                        "case_ref_example", "subjects_per_request", "consent_valid_days", "deferred_disclosure",
                        "receipt_case_ref", "sections"]);
const DAY = /^\d{4}-\d{2}-\d{2}$/;  // a day as YAML reads a date: written plain, so the loader reads a date

/** The top-level blocks of `text` whose key the form does not hold, each with its lines as in the file. */
export function otherBlocks(text) {
  const out = [];
  let block = null;
  for (const line of String(text || "").split("\n")) {
    const key = /^([A-Za-z_][A-Za-z0-9_]*):/.exec(line);
    if (key) {
      block = EDITED.has(key[1]) ? null : {key: key[1], lines: [line]};
      if (block) out.push(block);
    } else if (block && (/^\s/.test(line) || line === "")) {
      block.lines.push(line);
    } else {
      block = null;  // a comment at the margin: it belongs to the key below it (commentsByKey)
    }
  }
  for (const b of out) while (b.lines.length > 1 && b.lines[b.lines.length - 1] === "") b.lines.pop();
  return out;
}

/**
 * draft: {code, name, nameEn, legalBasis, legalBasisEn, subject, roles: [ids], jurisdiction, caseRefExample,
 *        subjectsPerRequest, consentValidDays (null: none), receiptCaseRef ("shown" | "hidden"),
 *        deferredDisclosure (null: none, or {legalBasis, until: "YYYY-MM-DD" | null, periodDays: number | null}),
 *         sections: [{title, titleEn, fields: [{field, mask, fullValueBasis, consent}]}]}
 * original: the file's text when editing an existing task ("" for a new one).
 */
export function taskYaml(draft, original = "") {
  const comments = commentsByKey(original);
  const explicitJurisdiction = /^jurisdiction:/m.test(original || "");
  const explicitSubjects = /^subjects_per_request:/m.test(original || "");
  const consentDays = draft.consentValidDays ?? null;
  const out = [];
  const key = (k, value) => {
    for (const c of comments[k] || []) out.push(c);
    out.push(value === undefined ? `${k}:` : `${k}: ${value}`);
  };
  key("code", scalar(draft.code));
  key("name", scalar(draft.name));
  key("name_en", scalar(draft.nameEn));
  key("legal_basis", scalar(draft.legalBasis));
  key("legal_basis_en", scalar(draft.legalBasisEn));
  key("subject", scalar(draft.subject));
  key("roles", `[${draft.roles.map(scalar).join(", ")}]`);
  if (draft.jurisdiction === "own_region" || explicitJurisdiction) key("jurisdiction", scalar(draft.jurisdiction || "national"));
  if (draft.caseRefExample) key("case_ref_example", scalar(draft.caseRefExample));
  const subjects = draft.subjectsPerRequest ?? 1;
  if (subjects !== 1 || explicitSubjects) key("subjects_per_request", String(subjects));
  if (consentDays !== null) key("consent_valid_days", String(consentDays));
  const deferred = draft.deferredDisclosure ?? null;
  if (deferred) {
    key("deferred_disclosure");
    out.push(`  legal_basis: ${scalar(deferred.legalBasis)}`);
    if (deferred.until !== null && deferred.until !== undefined) {
      out.push(`  until: ${DAY.test(deferred.until) ? deferred.until : scalar(deferred.until)}`);
    } else {
      out.push(`  period_days: ${Number.isFinite(deferred.periodDays) ? deferred.periodDays : scalar(deferred.periodDays)}`);
    }
  }
  const receiptCaseRef = draft.receiptCaseRef || "shown";
  if (receiptCaseRef !== "shown" || /^receipt_case_ref:/m.test(original || "")) key("receipt_case_ref", scalar(receiptCaseRef));
  for (const b of otherBlocks(original)) {
    for (const c of comments[b.key] || []) out.push(c);
    out.push(...b.lines);
  }
  key("sections");
  for (const section of draft.sections) {
    out.push(`  - title: ${scalar(section.title)}`);
    out.push(`    title_en: ${scalar(section.titleEn)}`);
    out.push("    fields:");
    for (const f of section.fields) {
      const rules = [];
      if (hasMask(f.mask)) rules.push(`mask: ${maskYaml(f.mask)}`);
      if (f.fullValueBasis) rules.push(`full_value_basis: ${scalar(f.fullValueBasis)}`);
      if (f.consent) rules.push("consent: true");
      if (!rules.length) {
        out.push(`      - ${scalar(f.field)}`);
        continue;
      }
      out.push(`      - field: ${scalar(f.field)}`);
      for (const r of rules) out.push(`        ${r}`);
    }
  }
  return `${out.join("\n")}\n`;
}

/** "citizen.residence>building.main_purpose" -> "citizen.residence > building.main_purpose" (the files' style). */
export function pathText(pathId) {
  return String(pathId).split(">").map((s) => s.trim()).join(" > ");
}
