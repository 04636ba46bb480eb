"""GraphQL skin over admin.py: introspection, mappings, tasks and change control, for admin roles only."""
from __future__ import annotations

from typing import Optional

import strawberry
from strawberry.types import Info

from ..changes import Proposal
from ..errors import OneScreenError
from .types import gql_error


@strawberry.type
class SourceColumn:
    name: str
    type: str
    fields: list[strawberry.ID]  # catalog fields mapped to it; empty: unmapped
    proposed_type: str = strawberry.field(description=(
        "the catalog type proposed for the column: string for identifiers (keys, numbers, codes) and for integers "
        "wider than JSON clients hold exactly, else the type its source type maps to"))
    samples: list[str] = strawberry.field(description=(
        "up to three sample values of the column, to map by: masked unless every field mapped to it is public or "
        "internal and carries no personal data (always masked while no field maps it); empty where the source "
        "cannot be sampled"))


@strawberry.type
class ChangeProposal:
    id: strawberry.ID
    kind: str
    summary: str
    proposer: str
    created_at: str
    status: str  # pending | applied | rejected | stale
    diff: str
    widening: list[str]  # why it needs a second admin; empty: applied at once
    approver: Optional[str]
    decided_at: Optional[str]
    files: list[str]
    comment: Optional[str] = strawberry.field(description="the approver's comment, given with the approval")

    @staticmethod
    def of(p: Proposal) -> "ChangeProposal":
        return ChangeProposal(id=strawberry.ID(str(p.id)), kind=p.kind, summary=p.summary, proposer=p.proposer,
                              created_at=p.created_at, status=p.status, diff=p.diff, widening=list(p.widening),
                              approver=p.approver, decided_at=p.decided_at, files=[str(f.path) for f in p.files],
                              comment=p.comment)


@strawberry.type
class DeniedField:
    field: str
    reason: str
    reason_en: str


@strawberry.type
class TaskPreview:
    ledgers: list[strawberry.ID]
    newly_disclosed: list[str]
    denied: list[DeniedField] = strawberry.field(description=(
        "fields of the draft no sharing agreement in force today covers for the task's roles: DENIED on screens"))


@strawberry.input
class FieldMappingInput:
    id: strawberry.ID
    ledger: strawberry.ID
    column: str
    type: str
    label: str
    label_en: str
    sensitivity: str
    mask: Optional[str] = None
    format: Optional[str] = None
    cardinality: Optional[str] = None


def _admin(info: Info):
    from ..admin import CLIENT
    CLIENT.set(info.context.client)  # the records of what this request changes name where it came from
    return info.context.snapshot.admin, info.context.caller


def _id(value: strawberry.ID) -> int:
    try:
        return int(str(value))
    except ValueError:
        from ..admin import ChangeRefused
        raise gql_error(ChangeRefused("a change id is a number")) from None


async def ledger_columns(info: Info, ledger: strawberry.ID) -> list[SourceColumn]:
    admin, caller = _admin(info)
    try:
        cols = await admin.introspect(caller, str(ledger))
        samples = await admin.samples(caller, str(ledger), [c[0] for c in cols])
    except OneScreenError as err:
        raise gql_error(err) from None
    return [SourceColumn(name=n, type=t, fields=[strawberry.ID(f) for f in fs], proposed_type=p,
                         samples=samples.get(n, []))
            for n, t, fs, p in cols]


async def changes(info: Info, status: Optional[str] = None) -> list[ChangeProposal]:
    admin, caller = _admin(info)
    try:
        return [ChangeProposal.of(p) for p in await admin.list(caller, status)]
    except OneScreenError as err:
        raise gql_error(err) from None


async def preview_task(info: Info, code: strawberry.ID, yaml: str) -> TaskPreview:
    admin, caller = _admin(info)
    try:
        ledgers, newly = await admin.preview_task(caller, str(code), yaml)
        denied = await admin.preview_agreements(caller, str(code), yaml)
    except OneScreenError as err:
        raise gql_error(err) from None
    return TaskPreview(ledgers=[strawberry.ID(x) for x in ledgers], newly_disclosed=newly,
                       denied=[DeniedField(field=f, reason=r, reason_en=e) for f, r, e in denied])


async def propose_field_mapping(info: Info, input: FieldMappingInput) -> ChangeProposal:
    admin, caller = _admin(info)
    spec = {"id": str(input.id), "ledger": str(input.ledger), "column": input.column, "type": input.type,
            "label": input.label, "label_en": input.label_en, "sensitivity": input.sensitivity, "mask": input.mask,
            "format": input.format, "cardinality": input.cardinality}
    return await _run(admin.map_field(caller, spec))


async def retire_field(info: Info, id: strawberry.ID) -> ChangeProposal:
    admin, caller = _admin(info)
    return await _run(admin.retire_field(caller, str(id)))


async def propose_task(info: Info, code: strawberry.ID, yaml: str) -> ChangeProposal:
    admin, caller = _admin(info)
    return await _run(admin.save_task(caller, str(code), yaml))


async def propose_agreement(info: Info, id: strawberry.ID, yaml: Optional[str] = None) -> ChangeProposal:
    """Create or change a sharing agreement (policies/agreements/ID.yaml), or remove it (yaml null), for the
    caller's own side: narrowing applies at once, widening waits for an admin of the other side."""
    admin, caller = _admin(info)
    return await _run(admin.save_agreement(caller, str(id), yaml))


async def approve_change(info: Info, id: strawberry.ID, comment: Optional[str] = None) -> ChangeProposal:
    """Approve a pending change (not one's own: four eyes), with an optional comment kept with the approval."""
    admin, caller = _admin(info)
    return await _run(admin.approve(caller, _id(id), comment))


async def reject_change(info: Info, id: strawberry.ID) -> ChangeProposal:
    admin, caller = _admin(info)
    return await _run(admin.reject(caller, _id(id)))


async def restore_version(info: Info, change: strawberry.ID) -> ChangeProposal:
    admin, caller = _admin(info)
    return await _run(admin.restore(caller, _id(change)))


async def _run(awaitable) -> ChangeProposal:
    try:
        return ChangeProposal.of(await awaitable)
    except OneScreenError as err:
        raise gql_error(err) from None


QUERIES = {"ledger_columns": ledger_columns, "changes": changes, "preview_task": preview_task}
MUTATIONS = {"propose_field_mapping": propose_field_mapping, "retire_field": retire_field,
             "propose_task": propose_task, "propose_agreement": propose_agreement, "approve_change": approve_change, "reject_change": reject_change,
             "restore_version": restore_version}
