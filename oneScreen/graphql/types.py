"""Static GraphQL types: a thin skin of plain attributes over the plain-Python results."""
from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Optional

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON

from ..catalog import Field
from .. import explain as explain_mod
from ..errors import OneScreenError
from ..consent import Consent as ConsentModel
from ..policy import Status, Task as TaskModel, TaskField
from ..screen import FieldResult, ScreenSection as ScreenSectionModel, display


def gql_error(err: OneScreenError) -> GraphQLError:
    """The client-facing form of our errors: message plus a stable extensions.code."""
    extensions = {"code": err.code}
    for attr in ("field", "ledger"):
        if getattr(err, attr, None):
            extensions[attr] = getattr(err, attr)
    return GraphQLError(err.message, extensions=extensions, original_error=err)


FieldStatus = strawberry.enum(enum.Enum("FieldStatus", {s.value: s.value for s in Status}),
                              description="What a field of a screen holds")


@strawberry.type
class RecordColumn:
    name: str
    label: str
    label_en: str
    type: str


@strawberry.type
class CatalogField:
    id: strawberry.ID
    label: str
    label_en: str
    type: str
    sensitivity: str
    ledger: strawberry.ID
    agency: str
    cardinality: str
    columns: list[RecordColumn]  # the columns of a record field (table headers); empty for scalars

    @staticmethod
    def of(pid: str, f: Field) -> "CatalogField":
        columns = [RecordColumn(name=c.name, label=c.label, label_en=c.label_en, type=c.type) for c in f.columns] \
            if f.type == "record" else []
        return CatalogField(id=strawberry.ID(pid), label=f.label, label_en=f.label_en, type=f.type,
                            sensitivity=f.sensitivity, ledger=strawberry.ID(f.ledger.id), agency=f.ledger.agency.id,
                            cardinality=f.cardinality, columns=columns)


@strawberry.type
class TaskSection:
    title: str
    title_en: str
    fields: list[CatalogField]


@strawberry.type
class Task:
    code: strawberry.ID
    name: str
    name_en: str
    legal_basis: str
    legal_basis_en: str
    subject_type: str
    roles: list[str]
    sections: list[TaskSection]
    case_ref_example: Optional[str] = strawberry.field(description="an example of the task's case references")

    @staticmethod
    def of(t: TaskModel) -> "Task":
        return Task(code=strawberry.ID(t.code), name=t.name, name_en=t.name_en, legal_basis=t.legal_basis,
                    legal_basis_en=t.legal_basis_en, subject_type=t.subject, roles=sorted(t.roles),
                    case_ref_example=t.case_ref_example,
                    sections=[TaskSection(title=s.title, title_en=s.title_en,
                                          fields=[CatalogField.of(tf.id, tf.target) for tf in s.fields])
                              for s in t.sections])


@strawberry.type
class FieldSource:
    agency: str
    agency_name: str
    agency_name_en: str
    ledger: strawberry.ID
    ledger_name: str
    ledger_name_en: str
    read_at: Optional[datetime] = strawberry.field(description="when the service read the ledger (a cached value: "
                                                               "when that read was made)")
    last_updated: Optional[str] = strawberry.field(description=(
        "the record's own last-modified date (ISO 8601 date, or date and time), from the ledger's "
        "last_modified_column; the latest of the subject's rows; null where the ledger keeps none"))
    cached: bool

    @strawberry.field(deprecation_reason="the time of the read, not the record's date: use readAt (and lastUpdated)")
    def as_of(self) -> Optional[datetime]:
        return self.read_at


@strawberry.type
class BadValue:
    """One value of a field that could not be shown as its catalog type: shown as null, and why (never the value)."""

    row: Optional[int] = strawberry.field(description="the row of a many-row field (0-based); null: the one value")
    column: Optional[str] = strawberry.field(description="the record column's name; null: a scalar field")
    reason: str
    reason_en: str


@strawberry.type
class FieldExplanation:
    """Why a field holds what it holds: the policy rule that decided it and its basis. Never a value."""

    kind: str = strawberry.field(description=(
        "MASK (masked by a rule), FULL_VALUE (shown in full under a legal basis), FIELD_SET (in the task's "
        "field set), DENY (denied by a rule), CONSENT (needs the subject's consent)"))
    rule: str = strawberry.field(description="the rule, as `onescreen policy explain` and the decision tests name it")
    label: str = strawberry.field(description="what the rule does, in Korean (labelEn: in English)")
    label_en: str
    basis: str = strawberry.field(description="why: the legal basis or the task's rule, in Korean (basisEn: English)")
    basis_en: str

    @staticmethod
    def of(e: explain_mod.Explanation) -> "FieldExplanation":
        return FieldExplanation(kind=e.kind, rule=e.rule, label=e.label, label_en=e.label_en, basis=e.basis,
                                basis_en=e.basis_en)


@strawberry.type
class FieldValue:
    id: strawberry.ID
    label: str
    label_en: str
    type: str
    value: Optional[JSON]
    display: Optional[str]
    status: FieldStatus
    reason: Optional[str]
    reason_en: Optional[str]
    source: Optional[FieldSource]
    bad_values: list[BadValue] = strawberry.field(description=(
        "the cells of `value` that are null because the ledger's value cannot be shown as the catalog's type "
        "(the rest of the field is as read)"))
    consent_based: bool = strawberry.field(default=False, description=(
        "the field is shown because the subject consented (or an exception applies) for this case: `consent` "
        "says how, who recorded it, when and for which case"))
    consent: Optional["ConsentMark"] = strawberry.field(default=None, description=(
        "the consent this field is shown on (consentBased), else null"))

    @staticmethod
    def of(tf: TaskField, r: FieldResult, task: Optional[TaskModel] = None,
           consent: "ConsentModel | None" = None) -> "FieldValue":
        s = r.source
        source = None if s is None else FieldSource(
            agency=s.agency, agency_name=s.agency_name, agency_name_en=s.agency_name_en, ledger=strawberry.ID(s.ledger),
            ledger_name=s.ledger_name, ledger_name_en=s.ledger_name_en, read_at=s.read_at,
            last_updated=s.last_updated, cached=s.cached)
        f = tf.target
        return FieldValue(id=strawberry.ID(tf.id), label=f.label, label_en=f.label_en, type=f.type, value=r.value,
                          display=display(r.value), status=FieldStatus[r.status.value], reason=r.reason,
                          reason_en=r.reason_en, source=source,
                          bad_values=[BadValue(row=b.row, column=b.column, reason=b.reason, reason_en=b.reason_en)
                                      for b in r.bad], _task=task, _tf=tf, _result=r,
                          **_consent_based(tf, r, consent))

    _task: strawberry.Private[Optional[TaskModel]] = None
    _tf: strawberry.Private[Optional[TaskField]] = None
    _result: strawberry.Private[Optional[FieldResult]] = None

    @strawberry.field(description="why the field holds what it holds: which policy rule masked, denied or showed it "
                                  "in full, and its legal basis (null where the field was not decided by a task)")
    def explanation(self) -> Optional[FieldExplanation]:
        if self._task is None or self._tf is None or self._result is None:
            return None
        r = self._result
        return FieldExplanation.of(explain_mod.explain(self._task, self._tf, r.status, r.rule))


def _consent_based(tf: TaskField, r: FieldResult, consent: "ConsentModel | None") -> dict:
    """A consent-gated field that is disclosed (not CONSENT_REQUIRED, DENIED) is shown on the case's consent."""
    if not tf.consent or consent is None or r.status in (Status.CONSENT_REQUIRED, Status.DENIED):
        return {}
    return {"consent_based": True, "consent": ConsentMark.of(consent)}


@strawberry.type
class ScreenSection:
    title: str
    title_en: str
    fields: list[FieldValue]


@strawberry.type
class UnavailableLedger:
    ledger: strawberry.ID
    agency: str
    name: str
    name_en: str
    reason: str  # in Korean, as every `reason`; reasonEn in English
    reason_en: str


@strawberry.type
class Screen:
    task: Task
    subject: strawberry.ID
    subject_type: str
    case_ref: str
    request_id: strawberry.ID
    sections: list[ScreenSection]
    unavailable_ledgers: list[UnavailableLedger]  # which ledgers could not be read: their fields are UNAVAILABLE
    consent: Optional["Consent"] = strawberry.field(description=(
        "the consent (or exception) in force for this task, subject AND case today, if any: it opens the "
        "consent-gated fields of this case only; null also when the task has none or they are denied"))
    _gated: strawberry.Private[list] = None  # the results of the consent-gated fields of the screen
    _model: strawberry.Private[TaskModel] = None

    @strawberry.field(description=(
        "valid consents of this subject for this task recorded for OTHER cases: each may be reused for this case "
        "with reuseConsent (an explicit, audited act); empty when the case has a consent in force"))
    async def reusable_consents(self, info: strawberry.Info) -> list["Consent"]:
        from ..errors import OneScreenError
        if self.consent is not None or self._model is None:
            return []
        try:
            found = await info.context.screen_consents(self._model, str(self.subject), self.case_ref, self._gated,
                                                       reusable=True)
        except OneScreenError as err:
            raise gql_error(err) from None
        return [Consent.of(c) for c in found]

    @staticmethod
    def of(task: TaskModel, subject: str, case_ref: str, request_id: str,
           sections: tuple[ScreenSectionModel, ...], consent: "ConsentModel | None" = None) -> "Screen":
        by_id = task.fields
        failed: dict[str, UnavailableLedger] = {}
        for sec in sections:
            for f in sec.fields:
                src = f.result.source
                if f.result.status is Status.UNAVAILABLE and src is not None and src.ledger not in failed:
                    failed[src.ledger] = UnavailableLedger(ledger=strawberry.ID(src.ledger), agency=src.agency,
                                                           name=src.ledger_name, name_en=src.ledger_name_en,
                                                           reason=f.result.reason or "",
                                                           reason_en=f.result.reason_en or "")
        return Screen(task=Task.of(task), subject=strawberry.ID(subject), subject_type=task.subject,
                      case_ref=case_ref, request_id=strawberry.ID(request_id),
                      sections=[ScreenSection(title=s.title, title_en=s.title_en,
                                              fields=[FieldValue.of(by_id[f.id], f.result, task, consent)
                                                      for f in s.fields])
                                for s in sections],
                      unavailable_ledgers=list(failed.values()),
                      consent=None if consent is None else Consent.of(consent),
                      _gated=[f.result for s in sections for f in s.fields if by_id[f.id].consent], _model=task)


@strawberry.type
class SubjectMatch:
    id: strawberry.ID
    subject_type: str
    fields: list[FieldValue]


@strawberry.type
class SubjectSearch:
    matches: list[SubjectMatch]
    truncated: bool = strawberry.field(description="more subjects matched than `limit`: narrow the search text")
    limit: int = strawberry.field(description="the most matches a search returns")
    total: int = strawberry.field(description="how many subjects matched within the caller's jurisdiction")
    total_exact: bool = strawberry.field(description="false: at least `total` matched (more were not counted)")


@strawberry.type
class Me:
    user: str
    name: str
    organisation: str
    region: Optional[str]  # "national", a 시도 or 시군구 code; null when the sign-in names no region
    roles: list[str]
    actions: list[str] = strawberry.field(description=(
        "the admin and audit actions the caller's roles are granted (the permissions of roles.yaml), e.g. "
        "catalog.read, task.propose, access_history.read: what the screens offer them"))


@strawberry.type(description="A consent (or legal exception) recorded for one task, subject and case")
class Consent:
    task: strawberry.ID
    case_ref: str
    method: str
    exception: Optional[str]
    notice_deferred: bool
    recorded_by: str
    at: datetime
    id: Optional[strawberry.ID] = strawberry.field(default=None, description="the consent record's id")
    organisation: str = ""
    valid_until: Optional[str] = strawberry.field(default=None, description=(
        "the last day (KST, YYYY-MM-DD) it opens the case's consent-gated fields; null: no end (the task sets none)"))
    reused_from: Optional[strawberry.ID] = strawberry.field(default=None, description=(
        "the consent of another case this one reuses (reuseConsent); null: recorded for this case"))

    @staticmethod
    def of(c: ConsentModel) -> "Consent":
        return Consent(task=strawberry.ID(c.task), case_ref=c.case_ref, method=c.method, exception=c.exception,
                       notice_deferred=c.notice_deferred, recorded_by=c.recorded_by, at=c.at,
                       id=None if c.id is None else strawberry.ID(str(c.id)), organisation=c.organisation,
                       valid_until=_day(c.valid_until),
                       reused_from=None if c.reused_from is None else strawberry.ID(str(c.reused_from)))


@strawberry.type(description="How a consent-based value of a screen was consented to: method, who, when, which case")
class ConsentMark:
    method: str = strawberry.field(description="written, electronic, oral, or exception")
    exception: Optional[str]
    recorded_by: str
    recorded_at: datetime
    case_ref: str
    valid_until: Optional[str] = strawberry.field(
        description="the last day (KST, YYYY-MM-DD) it is valid; null: no end")
    reused_from: Optional[strawberry.ID]

    @staticmethod
    def of(c: ConsentModel) -> "ConsentMark":
        return ConsentMark(method=c.method, exception=c.exception, recorded_by=c.recorded_by, recorded_at=c.at,
                           case_ref=c.case_ref, valid_until=_day(c.valid_until),
                           reused_from=None if c.reused_from is None else strawberry.ID(str(c.reused_from)))


@strawberry.type
class FieldDecision:
    id: strawberry.ID
    status: FieldStatus
    label: str = strawberry.field(description=(
        "the field's path as people read it: the catalog's Korean labels joined with › (the id where the catalog "
        "no longer has a field of it)"))
    label_en: str


@strawberry.type
class AccessRecord:
    at: datetime
    user: str
    user_name: Optional[str] = strawberry.field(description="the officer's name, as their sign-in gave it (null in "
                                                            "records written before names were recorded)")
    organisation: str
    role: str
    task: strawberry.ID
    task_name: Optional[str] = strawberry.field(description="the task's name (null: the task no longer exists)")
    task_name_en: Optional[str]
    legal_basis: str
    case_ref: str
    consent_based: bool = strawberry.field(description=(
        "fields that need the subject's consent were disclosed: the read rests on the recorded consent"))
    fields: list[FieldDecision]
    seq: Optional[int] = strawberry.field(default=None, description="the audit record's sequence number")
    sealed_until: Optional[str] = strawberry.field(default=None, description=(
        "a task with deferred disclosure: the day (YYYY-MM-DD, UTC) its receipt opens to the subject (auditors: releaseReceipt)"))


@strawberry.type
class AccessHistory:
    entries: list[AccessRecord]
    next_cursor: Optional[str]


def _day(d: date | None) -> str | None:
    return None if d is None else d.isoformat()
