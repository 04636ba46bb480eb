"""The provider's view: who reads which fields of an agency's ledgers, for which tasks, and how often.

Aggregated from the audit trail's disclosure and search records (organisation, role, task, field ids and their
statuses, the record's day): never a subject, a case reference or a value. Also the agency's agreements that end
within agreements.EXPIRING_DAYS, and the fields read under no agreement in force on the day of the read (none by
construction once agreements are enforced: policy.decide denies them before any read).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .agreements import EXPIRING_DAYS, Agreement
from .consent import KST
from .permissions import uses_agreement

if TYPE_CHECKING:
    from .audit.store import AuditStore
    from .catalog import Catalog
    from .policy import Policies

READ = frozenset({"OK", "MASKED", "PARTIAL"})  # a field whose value left its ledger for the caseworker
HEADER = ["organisation", "role", "task", "field", "reads", "first_day", "last_day"]


@dataclass(frozen=True)
class Usage:
    organisation: str
    role: str
    task: str
    field: str
    reads: int
    first_day: str
    last_day: str
    covered: bool  # every read was under an agreement in force on its day


@dataclass(frozen=True)
class ProviderView:
    agency: str
    usage: list[Usage]
    expiring: list[Agreement]
    agreements: list[Agreement]
    enforced: bool
    since: str | None

    @property
    def uncovered(self) -> list[Usage]:
        return [u for u in self.usage if not u.covered]


async def view(store: "AuditStore", cat: "Catalog", pol: "Policies", agency: str, today: dt.date,
               since: dt.date | None = None) -> ProviderView:
    """The provider page of `agency`, from the audit trail (records on or after `since`, KST day; None: all)."""
    t = store.table
    q = sa.select(t.c.seq, t.c.at, t.c.organisation, t.c.role, t.c.task, t.c.fields, t.c.ledgers).where(
        t.c.kind.in_(("disclosure", "search")))
    if since is not None:
        q = q.where(t.c.at >= dt.datetime.combine(since, dt.time(), KST).astimezone(dt.timezone.utc))
    ours = {lid for lid, ledger in cat.ledgers.items() if ledger.agency.id == agency}
    counts: dict[tuple[str, str, str, str], list[Any]] = {}

    async def run(conn: Any) -> None:
        last = 0
        while True:
            rows = (await conn.execute(q.where(t.c.seq > last).order_by(t.c.seq).limit(5000))).all()
            for r in rows:
                if ours.isdisjoint(json.loads(r.ledgers)):
                    continue
                day = r.at.astimezone(KST).date()
                seen: set[str] = set()
                for f in json.loads(r.fields):
                    if f.get("status") not in READ:
                        continue
                    for fid in str(f.get("id", "")).split(">"):
                        field = cat.fields.get(fid.strip())
                        if field is None or field.ledger.id not in ours or field.id in seen:
                            continue
                        seen.add(field.id)
                        key = (r.organisation, r.role, r.task, field.id)
                        entry = counts.setdefault(key, [0, day, day, True])
                        entry[0] += 1
                        entry[1], entry[2] = min(entry[1], day), max(entry[2], day)
                        if entry[3] and not _covered(pol, field.id, field.ledger.id, r.task, r.organisation,
                                                     r.role, day):
                            entry[3] = False
            if len(rows) < 5000:
                return
            last = rows[-1].seq

    await store.read(run, bounded=False)
    usage = [Usage(o, r, task, f, n, first.isoformat(), lastd.isoformat(), covered)
             for (o, r, task, f), (n, first, lastd, covered) in sorted(counts.items())]
    mine = pol.agreements.of_agency(agency) if pol.agreements is not None else []
    horizon = today + dt.timedelta(days=EXPIRING_DAYS)
    expiring = [a for a in mine if a.revoked is None and today <= a.valid_until <= horizon]
    return ProviderView(agency, usage, expiring, mine, pol.agreements is not None,
                        since.isoformat() if since else None)


def _covered(pol: "Policies", field: str, ledger: str, task: str, org: str, role: str, day: dt.date) -> bool:
    """Whether an agreement of the running configuration in force on `day` covered this read."""
    if pol.agreements is None:
        return False
    from .policy import Caller
    who = Caller("", "", org, None, frozenset({role}) if role else frozenset())
    return any(a.in_force(day) and task in a.tasks and field in a.fields and ledger in a.ledgers
               and uses_agreement(who, a.organisations, a.roles) for a in pol.agreements.by_id.values())


def to_csv(v: ProviderView) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(HEADER + ["under_agreement"])
    for u in v.usage:
        w.writerow([u.organisation, u.role, u.task, u.field, u.reads, u.first_day, u.last_day,
                    "yes" if u.covered else "no"])
    return out.getvalue()


def to_json(v: ProviderView, cat: "Catalog", today: dt.date) -> dict[str, Any]:
    def agreement(a: Agreement) -> dict[str, Any]:
        return {"id": a.id, "title": a.title, "titleEn": a.title_en, "signer": a.signer,
                "roles": sorted(a.roles), "organisations": list(a.organisations), "tasks": sorted(a.tasks),
                "fields": sorted(a.fields), "validFrom": a.valid_from.isoformat(),
                "validUntil": a.valid_until.isoformat(), "revoked": a.revoked.isoformat() if a.revoked else None,
                "inForce": a.in_force(today), "daysLeft": (a.valid_until - today).days,
                "legalBasis": a.legal_basis, "legalBasisEn": a.legal_basis_en}
    ag = cat.agencies[v.agency]
    return {"agency": v.agency, "agencyName": ag.name, "agencyNameEn": ag.name_en, "enforced": v.enforced,
            "since": v.since, "today": today.isoformat(), "expiringDays": EXPIRING_DAYS,
            "usage": [{"organisation": u.organisation, "role": u.role, "task": u.task, "field": u.field,
                       "label": cat.fields[u.field].label, "labelEn": cat.fields[u.field].label_en,
                       "reads": u.reads, "firstDay": u.first_day, "lastDay": u.last_day, "covered": u.covered}
                      for u in v.usage],
            "expiring": [agreement(a) for a in v.expiring],
            "agreements": [agreement(a) for a in v.agreements],
            "uncovered": [{"organisation": u.organisation, "task": u.task, "field": u.field, "reads": u.reads}
                          for u in v.uncovered]}
