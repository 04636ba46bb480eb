"""GraphQL skin over the running catalog and tasks, as the admin pages browse and edit them.

`catalog` lists every ledger and field (links included) with the tasks that use
each field, and every task as its file states it (rules as written, plus the
YAML text), for the roles granted `catalog.read` (roles.yaml): ADMIN_FORBIDDEN otherwise, as admin.py refuses.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from .. import yamlfile
from ..catalog import Catalog, Field
from ..errors import OneScreenError
from ..masking import STRATEGIES
from ..policy import FieldRuleSpec, Policies, Task as TaskModel, TaskFile, today
from .types import RecordColumn, gql_error


@strawberry.type
class CatalogLedger:
    id: strawberry.ID
    name: str
    name_en: str
    agency: str
    agency_name: str
    agency_name_en: str
    subject: str  # the subject type its rows are keyed by
    rows: str  # one | many rows per subject
    connector_kind: str  # sql | rest
    field_count: int = 0  # catalog fields read from it


@strawberry.type
class CatalogEntry:
    """A catalog field (or link) with the tasks that use it, anywhere in a field path."""

    id: strawberry.ID
    label: str
    label_en: str
    type: str  # string, integer, number, date, boolean, record, link
    sensitivity: str
    ledger: strawberry.ID
    cardinality: str
    mask: Optional[JSON]  # default masking strategy (a name, or {column: strategy} for a record)
    target: Optional[str]  # a link: the subject type it points to
    columns: list[RecordColumn]  # a record's columns; empty otherwise
    source_columns: list[str]  # the ledger columns it reads
    used_by: list[strawberry.ID]  # task codes


@strawberry.type
class CatalogSubjectType:
    id: strawberry.ID
    label: str
    label_en: str


@strawberry.type
class CatalogRole:
    id: strawberry.ID
    label: str
    label_en: str
    actions: list[str]  # the admin and audit actions roles.yaml grants it (none: a caseworker's role)


@strawberry.type
class CatalogAgreement:
    """A sharing agreement of the running configuration (agreements.py): what the task editor shows per field."""
    id: strawberry.ID
    title: str
    title_en: str
    agency: str
    signer: str
    organisations: list[str]
    roles: list[str]
    tasks: list[str]
    fields: list[str]
    valid_from: str
    valid_until: str
    revoked: Optional[str]
    in_force: bool  # today (KST)


@strawberry.type
class TaskFieldRule:
    """One entry of a task section as written in its file: the field path and the task's own rules."""

    field: str  # the path as written, e.g. "citizen.residence > building.main_purpose"
    id: strawberry.ID  # canonical path id, e.g. "citizen.residence>building.main_purpose"
    mask: Optional[JSON]  # the task's own mask (not the field's default)
    full_value_basis: Optional[str]
    consent: bool


@strawberry.type
class TaskDefinitionSection:
    title: str
    title_en: str
    fields: list[TaskFieldRule]


@strawberry.type
class DeferredDisclosureDefinition:
    """A task's deferred disclosure as its file writes it: the law, and a day (ISO, UTC) or a period in days."""

    legal_basis: str
    until: Optional[str]
    period_days: Optional[int]


@strawberry.type
class TaskDefinition:
    code: strawberry.ID
    name: str
    name_en: str
    legal_basis: str
    legal_basis_en: str
    subject: str
    roles: list[str]
    jurisdiction: str
    case_ref_example: Optional[str]
    subjects_per_request: int
    sections: list[TaskDefinitionSection]
    consent_valid_days: Optional[int] = strawberry.field(default=None, description=(
        "days a consent recorded for a case opens its consent-gated fields (counting the day it is recorded); "
        "null: no end"))
    deferred_disclosure: Optional[DeferredDisclosureDefinition] = strawberry.field(default=None, description=(
        "the subject's receipts are sealed until a day or for a period after each access; null: told at once"))
    receipt_case_ref: str = strawberry.field(default="shown", description=(
        "shown or hidden: whether the subject's receipt shows the case reference"))
    yaml: str  # the task file as it is on disk (the base a change's diff is taken against)


@strawberry.type
class TaskName:
    code: strawberry.ID
    name: str
    name_en: str
    subject: str


@strawberry.type
class AdminCatalog:
    """Ledgers, subject types, roles and task names are small; `fields` (every field: 25,000 at national scale)
    and `tasks` (every definition, read from its file) are resolved only when a query selects them. The admin
    pages page and search them instead (GET /admin/catalog/fields|picker|tasks, catalog_pages.py)."""
    ledgers: list[CatalogLedger]
    subject_types: list[CatalogSubjectType]
    roles: list[CatalogRole]
    mask_strategies: list[str]
    agreements_enforced: bool  # false: no policies/agreements directory, every field of a task's set is open
    agreements: list[CatalogAgreement]
    task_names: list[TaskName]
    cat: strawberry.Private[Catalog]
    pol: strawberry.Private[Policies]

    @strawberry.field
    def fields(self) -> list[CatalogEntry]:
        users: dict[str, set[str]] = {}
        for code, t in self.pol.tasks.items():
            for tf in t.fields.values():
                for f in tf.path:
                    users.setdefault(f.id, set()).add(code)
        return [_entry(f, sorted(users.get(f.id, ()))) for f in self.cat.fields.values()]

    @strawberry.field
    def tasks(self) -> list[TaskDefinition]:
        return [_definition(t, self.cat) for t in sorted(self.pol.tasks.values(), key=lambda t: t.code)]


async def catalog(info: Info) -> AdminCatalog:
    """Every ledger, field and task of the running configuration, for catalog admins and task configurers."""
    snap, caller = info.context.snapshot, info.context.caller
    try:
        snap.policies.permissions.require(caller, "catalog.read", what="browse the catalog")
    except OneScreenError as err:
        raise gql_error(err) from None
    return build(snap.catalog, snap.policies)


def build(cat: Catalog, pol: Policies) -> AdminCatalog:
    counts: dict[str, int] = {}
    for f in cat.fields.values():
        counts[f.ledger.id] = counts.get(f.ledger.id, 0) + 1
    return AdminCatalog(
        ledgers=[CatalogLedger(id=strawberry.ID(l.id), name=l.name, name_en=l.name_en, agency=l.agency.id,
                               agency_name=l.agency.name, agency_name_en=l.agency.name_en, subject=l.subject,
                               rows=l.rows, connector_kind=str(l.connector.get("kind", "")),
                               field_count=counts.get(l.id, 0))
                 for l in cat.ledgers.values()],
        subject_types=[CatalogSubjectType(id=strawberry.ID(s.id), label=s.label, label_en=s.label_en)
                       for s in cat.subject_types.values()],
        roles=[CatalogRole(id=strawberry.ID(r.id), label=r.label, label_en=r.label_en,
                           actions=pol.permissions.granted_to(r.id)) for r in pol.roles.values()],
        mask_strategies=list(STRATEGIES),
        task_names=[TaskName(code=strawberry.ID(t.code), name=t.name, name_en=t.name_en, subject=t.subject)
                    for t in sorted(pol.tasks.values(), key=lambda t: t.code)],
        cat=cat, pol=pol,
        agreements_enforced=pol.agreements is not None,
        agreements=[_agreement(a, today()) for a in sorted(
            pol.agreements.by_id.values() if pol.agreements is not None else (), key=lambda a: a.id)],
    )


def _agreement(a: Any, day: Any) -> CatalogAgreement:
    return CatalogAgreement(id=strawberry.ID(a.id), title=a.title, title_en=a.title_en, agency=a.agency,
                            signer=a.signer, organisations=list(a.organisations), roles=sorted(a.roles),
                            tasks=sorted(a.tasks), fields=list(a.fields), valid_from=a.valid_from.isoformat(),
                            valid_until=a.valid_until.isoformat(),
                            revoked=a.revoked.isoformat() if a.revoked else None, in_force=a.in_force(day))


def _entry(f: Field, used_by: list[str]) -> CatalogEntry:
    columns = [RecordColumn(name=c.name, label=c.label, label_en=c.label_en, type=c.type) for c in f.columns] \
        if f.type == "record" else []
    return CatalogEntry(id=strawberry.ID(f.id), label=f.label, label_en=f.label_en, type=f.type,
                        sensitivity=f.sensitivity, ledger=strawberry.ID(f.ledger.id), cardinality=f.cardinality,
                        mask=dict(f.mask) if isinstance(f.mask, dict) else f.mask, target=f.target, columns=columns,
                        source_columns=list(f.source_columns), used_by=[strawberry.ID(c) for c in used_by])


def _definition(t: TaskModel, cat: Catalog) -> TaskDefinition:
    """The task as its file writes it: the rules the task itself sets, not the effective ones (which add the
    fields' default masks), so that an editor writing them back changes nothing it was not asked to."""
    try:
        text = Path(t.source).read_text(encoding="utf-8")
        data, lines = yamlfile.load(Path(t.source))
        spec: TaskFile | None = yamlfile.validate(TaskFile, data, lines, t.source)
    except (OSError, OneScreenError):
        text, spec = "", None  # changed on disk since it was loaded and not valid: the running version
    if spec is None or spec.code != t.code:
        sections = [TaskDefinitionSection(title=s.title, title_en=s.title_en, fields=[
            TaskFieldRule(field=" > ".join(f.id for f in tf.path), id=strawberry.ID(tf.id),
                          mask=None if tf.mask == tf.target.mask else tf.mask, full_value_basis=tf.full_value_basis,
                          consent=tf.consent) for tf in s.fields]) for s in t.sections]
        return TaskDefinition(code=strawberry.ID(t.code), name=t.name, name_en=t.name_en, legal_basis=t.legal_basis,
                              legal_basis_en=t.legal_basis_en, subject=t.subject, roles=sorted(t.roles),
                              jurisdiction=t.jurisdiction, case_ref_example=t.case_ref_example,
                              subjects_per_request=t.subjects_per_request,
                              consent_valid_days=t.consent_valid_days,
                              deferred_disclosure=_deferred(t.deferred), receipt_case_ref=t.receipt_case_ref,
                              sections=sections, yaml=text)
    sections = []
    for s in spec.sections:
        rules = []
        for entry in s.fields:
            rule = FieldRuleSpec(field=entry) if isinstance(entry, str) else entry
            try:
                pid = ">".join(f.id for f in cat.path(rule.field))
            except KeyError:
                pid = rule.field.replace(" ", "")
            rules.append(TaskFieldRule(field=rule.field, id=strawberry.ID(pid), mask=rule.mask,
                                       full_value_basis=rule.full_value_basis, consent=rule.consent))
        sections.append(TaskDefinitionSection(title=s.title, title_en=s.title_en, fields=rules))
    return TaskDefinition(code=strawberry.ID(spec.code), name=spec.name, name_en=spec.name_en,
                          legal_basis=spec.legal_basis, legal_basis_en=spec.legal_basis_en, subject=spec.subject,
                          roles=list(spec.roles), jurisdiction=spec.jurisdiction,
                          case_ref_example=spec.case_ref_example,
                          subjects_per_request=spec.subjects_per_request,
                          consent_valid_days=spec.consent_valid_days,
                          deferred_disclosure=_deferred(spec.deferred_disclosure),
                          receipt_case_ref=spec.receipt_case_ref, sections=sections, yaml=text)


def _deferred(d: Any) -> DeferredDisclosureDefinition | None:
    """A task's (or its file's) deferred disclosure for the editor; both spell it legal_basis, until, period_days."""
    if d is None:
        return None
    return DeferredDisclosureDefinition(legal_basis=d.legal_basis, until=d.until.isoformat() if d.until else None,
                                        period_days=d.period_days)


QUERIES = {"catalog": catalog}
