"""A citizen's receipts: for every disclosure about them, who (agency, organisation) looked, when, for which task
and legal basis, and what happened to each field (shown, masked, denied, consent-gated) and by which rule,
consent or legal exception; with the proof that the record is in the signed trail (audit/proof.py).

Owns, for the subject's side, invariants 6 and 7: a receipt is made from an audit record and configuration
alone, so it never holds a field's value (a masked or denied field is named, never shown); a receipt of a task
with deferred disclosure exists in the trail from the access but stays sealed (not shown to the subject, not
pushed) until its day or until an auditor releases it, which is itself an audited act.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .audit import AuditEvent, StoredRecord
from .audit.store import HistoryFilter
from .errors import AdminForbidden, BadRequest, TaskForbidden
from .explain import explain
from .policy import Status, Task

if TYPE_CHECKING:
    from .disclose import Door
    from .runtime import Snapshot

RELEASE = "receipt.release"
KST = timezone(timedelta(hours=9), "KST")  # the time a receipt's sentence names, as the citizen reads clocks

# a field's fate on a receipt, from the record's status
SHOWN, MASKED, DENIED, CONSENT_REQUIRED, NOT_SHOWN = "SHOWN", "MASKED", "DENIED", "CONSENT_REQUIRED", "NOT_SHOWN"
_FATE = {"OK": SHOWN, "PARTIAL": SHOWN, "MASKED": MASKED, "DENIED": DENIED, "CONSENT_REQUIRED": CONSENT_REQUIRED,
         "NOT_FOUND": NOT_SHOWN, "UNAVAILABLE": NOT_SHOWN}
FATE_WORDS = {SHOWN: ("보임", "shown"), MASKED: ("가림", "masked"), DENIED: ("거부", "denied"),
              CONSENT_REQUIRED: ("동의 필요(미열람)", "consent required (not shown)"),
              NOT_SHOWN: ("값 없음 또는 장애(미열람)", "no value or ledger unavailable (not shown)")}


@dataclass(frozen=True)
class FieldReceipt:
    id: str
    label: str
    label_en: str
    status: str  # SHOWN, MASKED, DENIED, CONSENT_REQUIRED, NOT_SHOWN
    rule: str  # the rule that decided it, in Korean: the mask, the denial, the consent, the legal exception
    rule_en: str
    basis: str  # why: the legal basis, the consent or the exception
    basis_en: str


@dataclass(frozen=True)
class Receipt:
    seq: int
    hash: str
    at: datetime
    organisation: str
    agencies: tuple[tuple[str, str], ...]  # (Korean, English) names of the agencies whose ledgers were read
    task: str
    task_name: str
    task_name_en: str
    legal_basis: str
    legal_basis_en: str
    case_ref: str | None  # None: the task keeps it from the subject (receipt_case_ref: hidden)
    consent: str | None  # the consent or legal exception the read rested on, in words; None: none
    fields: tuple[FieldReceipt, ...]
    deferred_basis: str | None  # set on a receipt that was sealed (deferred disclosure) and is now shown
    line: str  # the access in one plain sentence
    line_en: str
    linked: bool = False  # the access was about another person, whose record fields showed rows about this one
    # a linked receipt: the subject type of what was looked up (citizen: another person; building, household...):
    # a type from the task, never whom or which
    looked_up: str | None = None


# ---------------------------------------------------------------- sealing
def sealed_until(e: AuditEvent) -> date | None:
    """The day a deferred disclosure's receipt opens, as written into its record at the access; None: not deferred."""
    text = e.detail.get("deferred_until") if isinstance(e.detail, dict) else None
    try:
        return date.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def is_sealed(r: StoredRecord, released: set[int], today: date) -> bool:
    until = sealed_until(r.event)
    return until is not None and today < until and r.seq not in released


def today_utc() -> date:
    return datetime.now(timezone.utc).date()


# ---------------------------------------------------------------- one receipt
def _labels(snapshot: "Snapshot", path: str) -> tuple[str, str]:
    from .graphql.schema import path_labels
    return path_labels(snapshot.catalog, path)


def _field(snapshot: "Snapshot", task: Task | None, fid: str, status: str, consent: str | None) -> FieldReceipt:
    label, label_en = _labels(snapshot, fid)
    fate = _FATE.get(status, NOT_SHOWN)
    tf = task.fields.get(fid) if task is not None else None
    if tf is None:  # the task changed since: the record's status alone
        ko, en = FATE_WORDS[fate]
        return FieldReceipt(fid, label, label_en, fate, ko, en, "", "")
    if fate == NOT_SHOWN:
        return FieldReceipt(fid, label, label_en, fate, *FATE_WORDS[fate], task.legal_basis, task.legal_basis_en)
    ex = explain(task, tf, Status(status) if status != "PARTIAL" else Status.OK)
    if fate == SHOWN and tf.consent and consent:
        return FieldReceipt(fid, label, label_en, fate, "정보주체의 동의 또는 법적 예외에 따라 열람",
                            "read on the subject's consent or a legal exception", consent, consent)
    return FieldReceipt(fid, label, label_en, fate, ex.label, ex.label_en, ex.basis, ex.basis_en)


def _consent(detail: dict) -> str | None:
    if detail.get("consent_based") is not True:
        return None
    exception, method = detail.get("consent_exception"), detail.get("consent_method")
    if isinstance(exception, str) and exception:
        return f"법적 예외: {exception}"
    words = f"동의({method})" if isinstance(method, str) and method else "동의"
    cid = detail.get("consent_id")
    return f"{words} 기록 #{cid}" if isinstance(cid, int) else words


def receipt(snapshot: "Snapshot", r: StoredRecord) -> Receipt:
    """The receipt of one disclosure record: configuration and the record, never a value."""
    e = r.event
    task = snapshot.policies.tasks.get(e.task)
    detail = e.detail if isinstance(e.detail, dict) else {}
    consent = _consent(detail)
    fields = tuple(_field(snapshot, task, f.id, f.status, consent) for f in e.fields)
    agencies: dict[str, tuple[str, str]] = {}
    for ledger_id in e.ledgers:
        ledger = snapshot.catalog.ledgers.get(ledger_id)
        if ledger is not None:
            agencies[ledger.agency.id] = (ledger.agency.name, ledger.agency.name_en)
    hidden = task is not None and task.receipt_case_ref == "hidden"
    name, name_en = (task.name, task.name_en) if task is not None else (e.task, e.task)
    basis_en = task.legal_basis_en if task is not None else e.legal_basis
    deferred = detail.get("deferred_basis") if isinstance(detail.get("deferred_basis"), str) else None
    counts = {fate: sum(1 for f in fields if f.status == fate) for fate in FATE_WORDS}
    when = r.at.astimezone(KST)
    ko = ", ".join(f"{FATE_WORDS[k][0]} {n}" for k, n in counts.items() if n)
    en = ", ".join(f"{n} {FATE_WORDS[k][1]}" for k, n in counts.items() if n)
    linked = detail.get("linked") is True
    if linked:  # disclose.py's record of a person shown in the record fields of another subject's look-up
        what, what_en = "·".join(f.label for f in fields), ", ".join(f.label_en for f in fields)
        # what was looked up: another person, or a building, a household... (the task's subject type; a type, never
        # whom or which)
        looked_up = task.subject if task is not None else None
        looked = snapshot.catalog.subject_types.get(looked_up) if looked_up is not None else None
        if looked is None or looked_up == "citizen":
            whom, whose, whom_en, whose_en = "다른 분의 정보를", "그분의", "another person", "their"
        else:
            whom, whose, whom_en, whose_en = (f"{looked.label} 정보를", f"그 {looked.label}의",
                                              f"a {looked.label_en.lower()}", "its")
        line = (f"{when:%Y-%m-%d %H:%M} (한국 시간), {e.organisation or '기관'}에서 「{name}」 업무로 {whom} "
                f"조회할 때, 회원님이 {whose} {what} 항목에 포함되어 함께 표시되었습니다 ({ko}). 근거: {e.legal_basis}.")
        line_en = (f"{when:%Y-%m-%d %H:%M} KST, {e.organisation or 'an agency'} looked up {whom_en} for the "
                   f"task \"{name_en}\", and you were shown among {whose_en} {what_en} ({en}). Legal basis: {basis_en}.")
    else:
        looked_up = None
        line = (f"{when:%Y-%m-%d %H:%M} (한국 시간), {e.organisation or '기관'}에서 「{name}」 업무로 회원님의 정보 "
                f"{len(fields)}개 항목을 조회했습니다 ({ko}). 근거: {e.legal_basis}.")
        line_en = (f"{when:%Y-%m-%d %H:%M} KST, {e.organisation or 'an agency'} looked up {len(fields)} items of your "
                   f"data for the task \"{name_en}\" ({en}). Legal basis: {basis_en}.")
    return Receipt(r.seq, r.hash, r.at, e.organisation, tuple(agencies.values()), e.task, name, name_en,
                   e.legal_basis, basis_en, None if hidden or linked else e.case_ref, consent, fields, deferred, line,
                   line_en, linked, looked_up)


# ---------------------------------------------------------------- the entrances (Door's caller and snapshot)
def _citizen_pseudonym(door: "Door") -> str:
    if door.caller.subject is None:
        raise TaskForbidden("receipts are for citizens signed in as themselves (the citizen role, with their "
                            "resident registration number in the token)")
    key = door.check_subject("citizen", door.caller.subject)
    return door.pseudonym("citizen", key)


async def my_receipts(door: "Door", first: int, after: str | None, filters: HistoryFilter
                      ) -> tuple[list[Receipt], str | None]:
    """The signed-in citizen's receipts, newest first, without the sealed ones."""
    if not 1 <= first <= 100:
        raise BadRequest("first must be between 1 and 100")
    pseudonym = _citizen_pseudonym(door)
    store = door.snapshot.audit
    records, cursor = await store.history(pseudonym, first, after, filters=filters)
    released = await store.released(pseudonym) if any(sealed_until(r.event) for r in records) else set()
    today = today_utc()
    return [receipt(door.snapshot, r) for r in records if not is_sealed(r, released, today)], cursor


async def visible(door: "Door", records: list[StoredRecord], pseudonym: str) -> list[StoredRecord]:
    """For a citizen's own access history: the records whose receipts are not sealed."""
    if not any(sealed_until(r.event) for r in records):
        return records
    released, today = await door.snapshot.audit.released(pseudonym), today_utc()
    return [r for r in records if not is_sealed(r, released, today)]


async def my_receipt_proof(door: "Door", seq: int) -> dict[str, Any]:
    """The proof of one of the signed-in citizen's own receipts (audit/proof.py)."""
    from .audit.proof import prove
    pseudonym = _citizen_pseudonym(door)
    store = door.snapshot.audit
    r = await store.record_at(seq)
    if r is None or r.event.subject != pseudonym or r.event.kind != "disclosure" or \
            is_sealed(r, await store.released(pseudonym), today_utc()):
        raise BadRequest(f"receipt {seq} is not one of your receipts")
    return await prove(store, seq)


async def release(door: "Door", seq: int, reason: str) -> StoredRecord:
    """An auditor releases the sealed receipt of record `seq` before its day: a `release` audit event (written
    with the response, like every audited act) opens it, and its push waits no longer."""
    permissions = door.snapshot.policies.permissions
    if not permissions.allowed(door.caller, RELEASE):
        raise AdminForbidden("releasing a sealed receipt is for the roles roles.yaml grants receipt.release "
                             "(auditors)")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise BadRequest("reason: say in 1-500 characters why the receipt is released before its day")
    store = door.snapshot.audit
    r = await store.record_at(seq)
    until = sealed_until(r.event) if r is not None and r.event.kind == "disclosure" else None
    if r is None or until is None:
        raise BadRequest(f"record {seq} is not the disclosure of a task with deferred disclosure")
    if not is_sealed(r, await store.released(r.event.subject), today_utc()):
        raise BadRequest(f"the receipt of record {seq} is not sealed (released already, or its day has come)")
    e = r.event
    door.extra_events.append(AuditEvent(
        kind="release", request_id=door.request_id, user=door.caller.user, organisation=door.caller.org,
        role=permissions.granting(door.caller, RELEASE)[0], task=e.task,
        legal_basis=e.legal_basis, case_ref=e.case_ref, subject_type=e.subject_type, subject=e.subject, fields=(),
        ledgers=(), client=door.client, detail={"released_seq": seq, "reason": reason.strip(),
                                                "sealed_until": until.isoformat()}))
    return r
