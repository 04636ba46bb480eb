// 내 정보 이용내역 (Uses of my data): a citizen's receipts. Every disclosure about them, one plain sentence per
// access, each field shown / masked / denied / consent-gated with the rule and basis (never a value); filters by
// period, organisation and task; the proof of each receipt as a download (check it with
// `python -m oneScreen.verify_receipt proof.json --public-key key.pem`) and the public key; receipts pushed by
// e-mail on request (a mail per access or a daily digest). Who the citizen is comes from their sign-in.

import {gql} from "./api.js";
import {$, fill, h} from "./dom.js";
import {addStrings, pick, t} from "./i18n.js";
import {announce, clearAlert, formatTime, handleError, show, state, token} from "./ui.js";

addStrings({
  ko: {
    "nav.receipts": "내 정보 이용내역",
    "receipts.title": "내 정보 이용내역",
    "receipts.intro": "공공기관이 회원님의 정보를 조회할 때마다 남는 기록입니다. 어떤 기관이 어떤 업무로, 어떤 법적 근거에 따라 어떤 항목을 보았는지(보임·가림·거부·동의 필요) 알려 드립니다. 정보의 값은 여기에도 남기지 않습니다.",
    "receipts.filters": "조건 (선택)",
    "receipts.since": "시작일",
    "receipts.until": "종료일 (포함)",
    "receipts.organisation": "조회한 기관",
    "receipts.anyOrganisation": "전체 기관",
    "receipts.task": "업무",
    "receipts.anyTask": "전체 업무",
    "receipts.search": "조회",
    "receipts.results": "이용내역",
    "receipts.none": "조건에 맞는 이용내역이 없습니다.",
    "receipts.loading": "이용내역을 불러오는 중…",
    "receipts.loaded": "이용내역 {n}건을 불러왔습니다.",
    "receipts.more": "더 보기",
    "receipts.field": "항목",
    "receipts.fate": "처리",
    "receipts.rule": "규칙",
    "receipts.basis": "근거",
    "receipts.legalBasis": "법적 근거",
    "receipts.caseRef": "접수번호",
    "receipts.caseHidden": "업무 특성상 표시하지 않음",
    "receipts.agencies": "정보를 제공한 기관",
    "receipts.consent": "동의 또는 예외",
    "receipts.deferred": "법에 따라 나중에 알려 드린 조회입니다: {basis}",
    "receipts.linked": "다른 분을 조회할 때 회원님의 정보가 함께 표시된 기록입니다. 그분의 정보는 보여 드리지 않습니다.",
    "receipts.linkedOther": "건축물·세대 등 다른 대상을 조회할 때 회원님의 정보가 함께 표시된 기록입니다. 그 대상의 다른 정보는 보여 드리지 않습니다.",
    "receipts.caseOther": "다른 분의 업무이므로 표시하지 않음",
    "receipts.caseOtherThing": "다른 대상의 업무이므로 표시하지 않음",
    "receipts.record": "감사 기록 #{seq}",
    "receipts.proof": "증명 내려받기",
    "receipts.proofDone": "감사 기록 #{seq}의 증명을 내려받았습니다.",
    "receipts.key": "검증용 공개키 내려받기",
    "receipts.verifyHint": "증명은 서비스 없이 확인할 수 있습니다: python -m oneScreen.verify_receipt proof.json --public-key key.pem",
    "receipts.fate.SHOWN": "보임",
    "receipts.fate.MASKED": "가림",
    "receipts.fate.DENIED": "거부",
    "receipts.fate.CONSENT_REQUIRED": "동의 필요",
    "receipts.fate.NOT_SHOWN": "보이지 않음",
    "receipts.push": "이용내역 알림 받기",
    "receipts.email": "전자우편 주소",
    "receipts.mode": "알림 방식",
    "receipts.mode.IMMEDIATE": "조회될 때마다",
    "receipts.mode.DAILY": "하루 한 번 모아서",
    "receipts.subscribe": "알림 신청",
    "receipts.unsubscribe": "알림 해지",
    "receipts.subscribed": "{email}(으)로 알림을 보냅니다 ({mode}).",
    "receipts.notSubscribed": "알림을 받고 있지 않습니다.",
    "receipts.unsubscribed": "알림을 해지했습니다.",
    "receipts.emailInvalid": "전자우편 주소를 입력하세요 (예: name@example.kr).",
  },
  en: {
    "nav.receipts": "Uses of my data",
    "receipts.title": "Uses of my data",
    "receipts.intro": "A record of every time a public body looked up your data: which organisation, for which task, under which law, and which items it saw (shown, masked, denied, consent required). The values themselves are never kept here.",
    "receipts.filters": "Filters (optional)",
    "receipts.since": "From",
    "receipts.until": "To (inclusive)",
    "receipts.organisation": "Organisation",
    "receipts.anyOrganisation": "All organisations",
    "receipts.task": "Task",
    "receipts.anyTask": "All tasks",
    "receipts.search": "Search",
    "receipts.results": "Uses",
    "receipts.none": "No use of your data matches.",
    "receipts.loading": "Loading…",
    "receipts.loaded": "{n} {n|use|uses} loaded.",
    "receipts.more": "More",
    "receipts.field": "Item",
    "receipts.fate": "Outcome",
    "receipts.rule": "Rule",
    "receipts.basis": "Basis",
    "receipts.legalBasis": "Legal basis",
    "receipts.caseRef": "Case reference",
    "receipts.caseHidden": "not shown for this task",
    "receipts.agencies": "Agencies that provided the data",
    "receipts.consent": "Consent or exception",
    "receipts.deferred": "You are told of this look-up later, as the law allows: {basis}",
    "receipts.linked": "Another person was looked up, and your details were shown with theirs. Nothing of theirs is shown here.",
    "receipts.linkedOther": "Something else (a building, a household...) was looked up, and your details were shown with it. Nothing else of it is shown here.",
    "receipts.caseOther": "not shown: the case is another person's",
    "receipts.caseOtherThing": "not shown: the case is about something else",
    "receipts.record": "Audit record #{seq}",
    "receipts.proof": "Download the proof",
    "receipts.proofDone": "The proof of audit record #{seq} was downloaded.",
    "receipts.key": "Download the public key",
    "receipts.verifyHint": "Check a proof without the service: python -m oneScreen.verify_receipt proof.json --public-key key.pem",
    "receipts.fate.SHOWN": "shown",
    "receipts.fate.MASKED": "masked",
    "receipts.fate.DENIED": "denied",
    "receipts.fate.CONSENT_REQUIRED": "consent required",
    "receipts.fate.NOT_SHOWN": "not shown",
    "receipts.push": "Get told by e-mail",
    "receipts.email": "E-mail address",
    "receipts.mode": "How often",
    "receipts.mode.IMMEDIATE": "each time",
    "receipts.mode.DAILY": "once a day",
    "receipts.subscribe": "Subscribe",
    "receipts.unsubscribe": "Unsubscribe",
    "receipts.subscribed": "Mails go to {email} ({mode}).",
    "receipts.notSubscribed": "You get no mails.",
    "receipts.unsubscribed": "Unsubscribed.",
    "receipts.emailInvalid": "Type an e-mail address (e.g. name@example.kr).",
  },
});

const LIST = `query MyReceipts($first: Int, $after: String, $since: DateTime, $until: DateTime, $organisation: String,
                                $task: ID) {
  myReceipts(first: $first, after: $after, since: $since, until: $until, organisation: $organisation, task: $task) {
    entries { seq at organisation agencies { name nameEn } task taskName taskNameEn legalBasis legalBasisEn caseRef
              consent deferredBasis line lineEn linked lookedUp fields { id label labelEn status rule ruleEn basis basisEn } }
    nextCursor }
  myReceiptSubscription { email mode } }`;
const PROOF = `query ReceiptProof($seq: Int!) { receiptProof(seq: $seq) }`;
const KEY = `query AuditPublicKey { auditPublicKey }`;
const SUBSCRIBE = `mutation SubscribeReceipts($email: String!, $mode: String!) {
  subscribeReceipts(email: $email, mode: $mode) { email mode } }`;
const UNSUBSCRIBE = `mutation UnsubscribeReceipts { unsubscribeReceipts }`;

const r = {entries: null, next: null, filters: {}, subscription: null, seen: new Map(), loading: false};

export function isCitizen() {
  return (state.me?.roles || []).includes("citizen");
}

export function resetReceipts() {
  Object.assign(r, {entries: null, next: null, filters: {}, subscription: null, seen: new Map(), loading: false});
  $("#receipts-results").replaceChildren();
  for (const sel of ["#receipts-since", "#receipts-until", "#receipts-email"]) $(sel).value = "";
}

export function goReceipts() {
  show("receipts");
  renderReceipts();
  if (r.entries === null && !r.loading) load(false);
  $("#receipts-title").focus();
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], {type}));
  const link = h("a", {href: url, download: name, hidden: true});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function onProof(seq) {
  clearAlert();
  try {
    const data = await gql(token(), PROOF, {seq});
    download(`receipt-${seq}-proof.json`, data.receiptProof, "application/json");
    announce(t("receipts.proofDone", {seq}));
  } catch (err) {
    handleError(err);
  }
}

async function onKey() {
  clearAlert();
  try {
    const data = await gql(token(), KEY);
    download("onescreen-audit-public-key.pem", data.auditPublicKey, "application/x-pem-file");
  } catch (err) {
    handleError(err);
  }
}

function readFilters() {
  const f = {};
  const since = $("#receipts-since").value;
  const until = $("#receipts-until").value;
  if (since) f.since = `${since}T00:00:00+09:00`;
  if (until) {
    const next = new Date(`${until}T00:00:00+09:00`);
    next.setTime(next.getTime() + 24 * 3600 * 1000);
    f.until = next.toISOString();
  }
  if ($("#receipts-org").value) f.organisation = $("#receipts-org").value;
  if ($("#receipts-task").value) f.task = $("#receipts-task").value;
  return f;
}

async function load(more) {
  r.loading = true;
  $("#receipts-results").setAttribute("aria-busy", "true");
  announce(t("receipts.loading"));
  try {
    const data = await gql(token(), LIST, {first: 20, after: more ? r.next : null, ...r.filters});
    const page = data.myReceipts.entries;
    r.entries = more ? [...(r.entries || []), ...page] : page;
    r.next = data.myReceipts.nextCursor;
    r.subscription = data.myReceiptSubscription;
    for (const e of page) r.seen.set(`task:${e.task}`, [e.task, pick(e.taskName, e.taskNameEn)]);
    for (const e of page) r.seen.set(`org:${e.organisation}`, [e.organisation, e.organisation]);
    r.loading = false;
    renderReceipts();
    announce(t("receipts.loaded", {n: page.length}));
  } catch (err) {
    r.loading = false;
    renderReceipts();
    handleError(err);
  } finally {
    $("#receipts-results").removeAttribute("aria-busy");
  }
}

function options(select, prefix, any) {
  const chosen = select.value;
  const items = [...r.seen.entries()].filter(([k]) => k.startsWith(prefix)).map(([, v]) => v);
  fill(select, h("option", {value: ""}, t(any)), items.map(([value, label]) => h("option", {value}, label)));
  select.value = items.some(([value]) => value === chosen) ? chosen : "";
}

function fieldsTable(e, headingId) {
  const cols = ["receipts.field", "receipts.fate", "receipts.rule", "receipts.basis"];
  return h("div", {class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": headingId},
    h("table", {class: "data-table receipt-fields"},
      h("caption", {class: "sr-only"}, t("receipts.field")),
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", {scope: "col"}, t(c))))),
      h("tbody", {}, e.fields.map((f) => h("tr", {"data-field": f.id, "data-fate": f.status},
        h("td", {"data-label": t("receipts.field")}, pick(f.label, f.labelEn) || f.id),
        h("td", {"data-label": t("receipts.fate")},
          h("span", {class: `badge badge--fate-${f.status.toLowerCase().replace(/_/g, "-")}`, "data-fate": f.status},
            t(`receipts.fate.${f.status}`))),
        h("td", {"data-label": t("receipts.rule")}, pick(f.rule, f.ruleEn)),
        h("td", {"data-label": t("receipts.basis")}, pick(f.basis, f.basisEn)))))));
}

function receiptCard(e) {
  const headingId = `receipt-${e.seq}-title`;
  const dl = (key, value) => value ? [h("dt", {}, t(key)), h("dd", {}, value)] : null;
  const other = e.lookedUp && e.lookedUp !== "citizen";  // a linked receipt of a building's, a household's look-up
  return h("li", {class: "card receipt", "data-seq": e.seq, "data-task": e.task, "data-linked": String(e.linked)},
    h("h3", {id: headingId, class: "receipt__line"}, pick(e.line, e.lineEn)),
    h("dl", {class: "receipt__meta"},
      dl("receipts.task", pick(e.taskName, e.taskNameEn)),
      dl("receipts.organisation", e.organisation),
      dl("receipts.legalBasis", pick(e.legalBasis, e.legalBasisEn)),
      dl("receipts.caseRef", e.caseRef || t(!e.linked ? "receipts.caseHidden" : other ? "receipts.caseOtherThing" : "receipts.caseOther")),
      dl("receipts.agencies", e.agencies.map((a) => pick(a.name, a.nameEn)).join(", ")),
      dl("receipts.consent", e.consent),
      [h("dt", {}, t("receipts.record", {seq: e.seq})), h("dd", {}, formatTime(new Date(e.at)))]),
    e.deferredBasis ? h("p", {class: "receipt__deferred"}, t("receipts.deferred", {basis: e.deferredBasis})) : null,
    e.linked ? h("p", {class: "receipt__linked"},
                 t(other ? "receipts.linkedOther" : "receipts.linked")) : null,
    fieldsTable(e, headingId),
    h("button", {type: "button", class: "btn receipt__proof", "data-proof": e.seq,
                 "aria-describedby": headingId, onclick: () => onProof(e.seq)}, t("receipts.proof")));
}

export function renderReceipts() {
  options($("#receipts-org"), "org:", "receipts.anyOrganisation");
  options($("#receipts-task"), "task:", "receipts.anyTask");
  const sub = r.subscription;
  $("#receipts-sub-status").textContent = sub
    ? t("receipts.subscribed", {email: sub.email, mode: t(`receipts.mode.${sub.mode}`)}) : t("receipts.notSubscribed");
  $("#receipts-unsubscribe").hidden = !sub;
  const box = $("#receipts-results");
  if (r.entries === null) { box.replaceChildren(); return; }
  const heading = h("h2", {id: "receipts-results-title", tabindex: "-1"}, t("receipts.results"));
  fill(box, heading,
    r.entries.length ? h("ol", {class: "receipt-list"}, r.entries.map(receiptCard))
      : h("p", {class: "empty"}, t("receipts.none")),
    r.next ? h("button", {type: "button", class: "btn", id: "receipts-more", onclick: () => load(true)},
      t("receipts.more")) : null);
}

async function onSubscribe(event) {
  event.preventDefault();
  clearAlert();
  const input = $("#receipts-email");
  const email = input.value.trim();
  const ok = /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email);
  $("#receipts-email-error").textContent = ok ? "" : t("receipts.emailInvalid");
  if (!ok) { input.setAttribute("aria-invalid", "true"); input.focus(); return; }
  input.removeAttribute("aria-invalid");
  const mode = $("input[name=receipts-mode]:checked")?.value || "IMMEDIATE";
  try {
    const data = await gql(token(), SUBSCRIBE, {email, mode});
    r.subscription = data.subscribeReceipts;
    renderReceipts();
    announce($("#receipts-sub-status").textContent);
  } catch (err) {
    handleError(err);
  }
}

async function onUnsubscribe() {
  clearAlert();
  try {
    await gql(token(), UNSUBSCRIBE);
    r.subscription = null;
    renderReceipts();
    announce(t("receipts.unsubscribed"));
    $("#receipts-email").focus();
  } catch (err) {
    handleError(err);
  }
}

export function bindReceipts() {
  $("#receipts-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearAlert();
    r.filters = readFilters();
    load(false);
  });
  $("#receipts-key").addEventListener("click", onKey);
  $("#receipts-sub-form").addEventListener("submit", onSubscribe);
  $("#receipts-unsubscribe").addEventListener("click", onUnsubscribe);
}
