// Why a field holds what it holds: a small disclosure under a masked value (which rule masks it and why),
// a usually masked value shown in full (its legal basis), a denied or consent-gated field (which rule).
// The explanation comes from the API's FieldValue.explanation, which never holds a value. A <details>
// element: keyboard-usable (Enter/Space on its summary) and announced as expanded or collapsed.

import {h} from "./dom.js";
import {addStrings, pick, t} from "./i18n.js";

addStrings({
  ko: {
    "explain.show": "{kind} 보기",
    "explain.rule": "규칙",
    "explain.basis": "근거",
    "explain.kind.MASK": "가림 규칙",
    "explain.kind.FULL_VALUE": "전체 값 열람 근거",
    "explain.kind.DENY": "열람 불가 규칙",
    "explain.kind.CONSENT": "동의 필요 규칙",
  },
  en: {
    "explain.show": "Why: {kind}",
    "explain.rule": "Rule",
    "explain.basis": "Basis",
    "explain.kind.MASK": "Masking rule",
    "explain.kind.FULL_VALUE": "Basis for the full value",
    "explain.kind.DENY": "Rule that denies it",
    "explain.kind.CONSENT": "Consent rule",
  },
});

/** The explanation of a field worth telling: masked, in full under a legal basis, denied or consent-gated. */
export function explanationOf(result) {
  const e = result?.explanation;
  if (!e || e.kind === "FIELD_SET") return null;
  const shown = ["OK", "MASKED", "PARTIAL"].includes(result.status);
  if ((e.kind === "MASK" && result.status !== "MASKED") || (e.kind === "FULL_VALUE" && !shown)) return null;
  return e;
}

/** A disclosure with the rule and its basis, or null when the field needs no explanation. */
export function renderExplanation(result, label) {
  const e = explanationOf(result);
  if (!e) return null;
  return h("details", {class: "explain", "data-kind": e.kind},
    h("summary", {}, t("explain.show", {kind: t(`explain.kind.${e.kind}`)}),
      h("span", {class: "sr-only"}, ` (${label})`)),
    h("dl", {class: "explain__body"},
      h("dt", {}, t("explain.rule")), h("dd", {class: "explain__rule"}, pick(e.label, e.labelEn),
        " ", h("code", {class: "explain__id"}, e.rule)),
      h("dt", {}, t("explain.basis")), h("dd", {class: "explain__basis"}, pick(e.basis, e.basisEn))));
}
