"""GraphQL skin of the citizen's receipts (receipts.py) and their push (notify.py): `myReceipts`, `receiptProof`,
`auditPublicKey`, `myReceiptSubscription`; `subscribeReceipts`, `unsubscribeReceipts`, `releaseReceipt`.

Resolvers only call receipts.py / notify.py with the request's door and shape the answer; a receipt never
holds a field's value (receipts.py owns that)."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Optional

import strawberry
from strawberry.types import Info

from .. import receipts as receipts_mod
from ..audit.store import HistoryFilter
from ..errors import BadRequest, OneScreenError
from .types import gql_error


@strawberry.type
class FieldReceipt:
    id: strawberry.ID
    label: str
    label_en: str
    status: str = strawberry.field(description="SHOWN, MASKED, DENIED, CONSENT_REQUIRED or NOT_SHOWN: never a value")
    rule: str
    rule_en: str
    basis: str
    basis_en: str


@strawberry.type
class AgencyName:
    name: str
    name_en: str


@strawberry.type
class Receipt:
    seq: int = strawberry.field(description="the audit record's sequence number (its proof: receiptProof(seq))")
    hash: str
    at: datetime
    organisation: str
    agencies: list[AgencyName]
    task: strawberry.ID
    task_name: str
    task_name_en: str
    legal_basis: str
    legal_basis_en: str
    case_ref: Optional[str] = strawberry.field(description="null: the task keeps the case reference from the subject")
    consent: Optional[str] = strawberry.field(description="the consent or legal exception the read rested on")
    deferred_basis: Optional[str] = strawberry.field(description=(
        "set when the subject was told later (deferred disclosure): the law that allowed it"))
    fields: list[FieldReceipt]
    line: str
    line_en: str
    linked: bool = strawberry.field(description=(
        "true: the access was about another person or thing (you as a household member, a relative, an owner of a "
        "building) and showed the rows of its record fields that are about you; `fields` are those fields, and "
        "nothing else of what was looked up is given (`lookedUp` says only its type)"))
    looked_up: Optional[str] = strawberry.field(default=None, description=(
        "a linked receipt: the subject type of what was looked up (citizen: another person; building, household: "
        "the rows were that building's owners, that household's members); a type, never whom or which"))

    @classmethod
    def of(cls, r: receipts_mod.Receipt) -> "Receipt":
        return cls(seq=r.seq, hash=r.hash, at=r.at, organisation=r.organisation,
                   agencies=[AgencyName(name=a, name_en=b) for a, b in r.agencies], task=strawberry.ID(r.task),
                   task_name=r.task_name, task_name_en=r.task_name_en, legal_basis=r.legal_basis,
                   legal_basis_en=r.legal_basis_en, case_ref=r.case_ref, consent=r.consent,
                   deferred_basis=r.deferred_basis, line=r.line, line_en=r.line_en, linked=r.linked,
                   looked_up=r.looked_up,
                   fields=[FieldReceipt(id=strawberry.ID(f.id), label=f.label, label_en=f.label_en, status=f.status,
                                        rule=f.rule, rule_en=f.rule_en, basis=f.basis, basis_en=f.basis_en)
                           for f in r.fields])


@strawberry.type
class Receipts:
    entries: list[Receipt]
    next_cursor: Optional[str]


@strawberry.type
class ReceiptSubscription:
    email: str
    mode: str = strawberry.field(description="IMMEDIATE (a mail per access) or DAILY (one digest a day)")


@strawberry.type
class ReleasedReceipt:
    seq: int
    task: strawberry.ID


async def my_receipts(info: Info, first: int = 20, after: Optional[str] = None, since: Optional[datetime] = None,
                      until: Optional[datetime] = None, organisation: Optional[str] = None,
                      task: Optional[strawberry.ID] = None) -> Receipts:
    """The signed-in citizen's receipts, newest first: every disclosure about them (a task with deferred
    disclosure: once its day has come or an auditor released it), narrowed by period [since, until), the
    organisation that looked, and the task."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise gql_error(BadRequest(f"{name} must carry a time zone offset, e.g. 2026-12-01T00:00:00+09:00"))
    filters = HistoryFilter(task=str(task) if task else None, since=since, until=until,
                            organisation=organisation or None)
    try:
        entries, cursor = await receipts_mod.my_receipts(info.context, first, after, filters)
    except OneScreenError as err:
        raise gql_error(err) from None
    return Receipts(entries=[Receipt.of(r) for r in entries], next_cursor=cursor)


async def receipt_proof(info: Info, seq: int) -> str:
    """The proof (JSON text) that one of your receipts is in the signed audit trail: check it with
    `python -m oneScreen.verify_receipt proof.json --public-key key.pem` (key: auditPublicKey)."""
    try:
        proof = await receipts_mod.my_receipt_proof(info.context, seq)
    except OneScreenError as err:
        raise gql_error(err) from None
    return json.dumps(proof, ensure_ascii=False, indent=2, sort_keys=True)


async def audit_public_key(info: Info) -> str:
    """The public key (PEM) that checks the audit trail's signed checkpoints, and so every receipt's proof."""
    from ..audit.checkpoints import public_pem
    c = info.context.snapshot.audit.checkpointing
    if c is None:
        raise gql_error(BadRequest("this service signs no checkpoints"))
    return public_pem(c.signer.public_key)


async def my_receipt_subscription(info: Info) -> Optional[ReceiptSubscription]:
    """Where your receipts are pushed (null: they are not)."""
    from .. import notify
    try:
        sub = await notify.my_subscription(info.context)
    except OneScreenError as err:
        raise gql_error(err) from None
    return None if sub is None else ReceiptSubscription(email=sub.email, mode=sub.mode)


async def subscribe_receipts(info: Info, email: str, mode: str = "IMMEDIATE") -> ReceiptSubscription:
    """Push your receipts to `email`: IMMEDIATE (a mail per access) or DAILY (one digest a day). Opt-in; replaces
    an earlier subscription."""
    from .. import notify
    try:
        sub = await notify.subscribe(info.context, email, mode)
    except OneScreenError as err:
        raise gql_error(err) from None
    return ReceiptSubscription(email=sub.email, mode=sub.mode)


async def unsubscribe_receipts(info: Info) -> bool:
    """Stop pushing your receipts (those already queued are not sent)."""
    from .. import notify
    try:
        return await notify.unsubscribe(info.context)
    except OneScreenError as err:
        raise gql_error(err) from None


async def release_receipt(info: Info, seq: int, reason: str) -> ReleasedReceipt:
    """Auditors: release the sealed receipt of a task with deferred disclosure before its day (audited; the
    subject sees it and it is pushed)."""
    try:
        r = await receipts_mod.release(info.context, seq, reason)
    except OneScreenError as err:
        raise gql_error(err) from None
    return ReleasedReceipt(seq=r.seq, task=strawberry.ID(r.event.task))


QUERIES = {"my_receipts": my_receipts, "receipt_proof": receipt_proof, "audit_public_key": audit_public_key,
           "my_receipt_subscription": my_receipt_subscription}
MUTATIONS = {"subscribe_receipts": subscribe_receipts, "unsubscribe_receipts": unsubscribe_receipts,
             "release_receipt": release_receipt}
