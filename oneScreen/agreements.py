"""Sharing agreements as data: the providing agency's word behind every field a task reads.

An agreement (policies/agreements/*.yaml) says which agency shares which fields of which of its ledgers with
whom (organisations or roles), for which tasks, under which legal basis, from when until when, with which duties
and masks, and which admins of both sides signed it. policy.decide() discloses a field only if an agreement in
force on the request's day covers every field of its path for the caller and the task (owns that part of
invariant 1, and so of 2: a field no agreement covers is never fetched); require_read() holds the reads that
disclose nothing (the jurisdiction check's region, a search's matching) to the same rule. No agreements
directory at all: not enforced (deployments from before agreements existed).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field as PField

from . import yamlfile
from .errors import ConfigError, ConfigErrors, ReadNotAgreed, load_each
from .permissions import uses_agreement

if TYPE_CHECKING:
    from .catalog import Catalog, Field
    from .policy import Caller, Role, Task

DIRECTORY = "agreements"  # beside roles.yaml and tasks/ in the policies directory
EXPIRING_DAYS = 30  # the provider page warns of agreements that end within this many days


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderSpec(_Model):
    agency: str = PField(description="제공기관: the catalog's agency id (e.g. MOLIT); its admins are the callers "
                                     "whose organisation begins with the agency's name")
    ledgers: list[str] = PField(min_length=1, description="the agency's ledgers the agreement shares from")


class UsingSpec(_Model):
    signer: str = PField(min_length=1, description="이용기관: the using side's organisation whose agreement admins "
                                                   "sign (a caller's organisation equal to it or beginning with it)")
    organisations: list[str] = PField(default_factory=list, description="organisations whose caseworkers may read")
    roles: list[str] = PField(default_factory=list, description="roles whose holders may read (roles.yaml)")


class FieldSpec(_Model):
    field: str = PField(description="catalog field id, e.g. citizen.name")
    mask: str | dict[str, str] | None = PField(None, description="mask the provider requires: no task lifts it")


class DutiesSpec(_Model):
    retention_days: int = PField(0, ge=0, description="days the using side may keep what it read (0: not at all)")
    onward_sharing: bool = PField(False, description="whether the using side may pass it on (normally not)")


class SignatureSpec(_Model):
    admin: str
    date: dt.date


class SignedSpec(_Model):
    provider: SignatureSpec | None = None
    using: SignatureSpec | None = None


class AgreementFile(_Model):
    id: str = PField(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str
    title_en: str
    provider: ProviderSpec
    using: UsingSpec
    tasks: list[str] = PField(min_length=1, description="the tasks (purposes) the fields are shared for")
    fields: list[str | FieldSpec] = PField(min_length=1)
    legal_basis: str
    legal_basis_en: str
    valid_from: dt.date
    valid_until: dt.date
    revoked: dt.date | None = PField(None, description="the provider revoked it: not in force from this day on")
    duties: DutiesSpec = DutiesSpec()
    signed: SignedSpec = SignedSpec()


@dataclass(frozen=True)
class Agreement:
    id: str
    title: str
    title_en: str
    agency: str
    agency_name: str
    ledgers: frozenset[str]
    signer: str
    organisations: tuple[str, ...]
    roles: frozenset[str]
    tasks: frozenset[str]
    fields: Mapping[str, object]  # field id -> the provider's mask (None: none)
    legal_basis: str
    legal_basis_en: str
    valid_from: dt.date
    valid_until: dt.date
    revoked: dt.date | None
    retention_days: int
    onward_sharing: bool
    source: str

    def in_force(self, day: dt.date) -> bool:
        return self.valid_from <= day <= self.valid_until and (self.revoked is None or day < self.revoked)

    def serves(self, caller: "Caller") -> bool:
        """Whether the caller is on the using side: their organisation, or one of their roles, is named."""
        return uses_agreement(caller, self.organisations, self.roles)

    def covers(self, f: "Field", task: str) -> bool:
        """The field of the task, leaving the caller and the day aside."""
        return f.id in self.fields and f.ledger.id in self.ledgers and task in self.tasks


@dataclass(frozen=True)
class Coverage:
    """For one field of one task: the agreements that could cover it (per field of the path)."""

    per_field: tuple[tuple[str, tuple[Agreement, ...]], ...]  # (field id, candidate agreements)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    mask: object = None  # the provider's mask, when it requires one for the shown field
    reason: str | None = None
    reason_en: str | None = None
    agreements: tuple[str, ...] = ()


def judge(coverage: Coverage, caller: "Caller", day: dt.date) -> Verdict:
    """Whether every field of the path is covered, for the caller, on `day`; the provider's mask of the path's
    last field (none if some agreement in force shares it unmasked)."""
    used: list[str] = []
    mask: object = None
    for i, (fid, candidates) in enumerate(coverage.per_field):
        mine = [a for a in candidates if a.serves(caller)]
        live = [a for a in mine if a.in_force(day)]
        if not live:
            ended = [a.revoked if a.revoked is not None and a.revoked <= day else a.valid_until
                     for a in mine if a.valid_until < day or (a.revoked is not None and a.revoked <= day)]
            if ended:
                last = max(ended).isoformat()
                return Verdict(False, None, f"제공기관 협약이 {last}에 만료(철회)되었습니다",
                               f"agreement expired on {last}")
            return Verdict(False, None, "제공기관 협약 없음",
                           f"no agreement of the providing agency covers {fid} for this task")
        used.append(live[0].id)
        if i == len(coverage.per_field) - 1:
            masks = [a.fields[fid] for a in live]
            mask = None if any(m is None for m in masks) else masks[0]
    return Verdict(True, mask, agreements=tuple(dict.fromkeys(used)))


def require_read(agreements: "Agreements | None", fields: Iterable["Field"], task: str, caller: "Caller",
                 day: dt.date, purpose: str) -> None:
    """Deny by default for the reads that disclose nothing (the jurisdiction check's region, a search's key
    matching): each field is read for `task` only if an agreement in force on `day` covers it for the caller,
    as for a field the task discloses; else ReadNotAgreed, and nothing is read. Not enforced: nothing to check."""
    for f in fields:
        verdict = read_verdict(agreements, f, task, caller, day)
        if not verdict.ok:
            raise ReadNotAgreed(f.id, purpose, verdict.reason_en or "no sharing agreement in force")


def read_verdict(agreements: "Agreements | None", f: "Field", task: str, caller: "Caller", day: dt.date) -> Verdict:
    """Whether field `f` may be read for `task` by the caller on `day` (agreements not enforced: it may)."""
    return Verdict(True) if agreements is None else judge(agreements.coverage((f,), task), caller, day)


@dataclass(frozen=True)
class Agreements:
    by_id: Mapping[str, Agreement]

    def candidates(self, f: "Field", task: str) -> tuple[Agreement, ...]:
        return tuple(a for a in self.by_id.values() if a.covers(f, task))

    def coverage(self, path: Iterable["Field"], task: str) -> Coverage:
        return Coverage(tuple((f.id, self.candidates(f, task)) for f in path))

    def of_agency(self, agency: str) -> list[Agreement]:
        return sorted((a for a in self.by_id.values() if a.agency == agency), key=lambda a: a.id)


def load(directory: Path, catalog: "Catalog", roles: Mapping[str, "Role"], tasks: Mapping[str, "Task"] | None
         ) -> Agreements | None:
    """policies/agreements/*.yaml; None when the directory does not exist (not enforced). Every problem with
    file and line (ConfigErrors)."""
    directory = Path(directory) / DIRECTORY
    if not directory.is_dir():
        return None
    errors: list[ConfigError] = []
    out = load_each(sorted(directory.glob("*.yaml")), lambda path: load_file(path, catalog, roles, tasks),
                    lambda a: a.id, "agreement id", errors)
    if errors:
        raise ConfigErrors(errors)
    return Agreements(out)


def load_file(path: Path, catalog: "Catalog", roles: Mapping[str, "Role"], tasks: Mapping[str, "Task"] | None
              ) -> Agreement:
    """One agreement file, checked against the catalog, the roles and (when given) the tasks."""
    from .catalog import check_mask

    data, lines = yamlfile.load(path)
    spec: AgreementFile = yamlfile.validate(AgreementFile, data, lines, str(path))
    file = str(path)
    errors: list[ConfigError] = []

    def err(loc: tuple, reason: str) -> None:
        errors.append(ConfigError(file, yamlfile.line_of(lines, loc), reason))

    agency = catalog.agencies.get(spec.provider.agency)
    if agency is None:
        err(("provider", "agency"), f"unknown agency {spec.provider.agency!r} (known: "
                                    f"{', '.join(sorted(catalog.agencies))})")
    for i, lid in enumerate(spec.provider.ledgers):
        ledger = catalog.ledgers.get(lid)
        if ledger is None:
            err(("provider", "ledgers", i), f"unknown ledger {lid!r}")
        elif agency is not None and ledger.agency.id != agency.id:
            err(("provider", "ledgers", i), f"ledger {lid} belongs to {ledger.agency.id}, not to {agency.id}: "
                                            "an agency agrees only for its own ledgers")
    if not spec.using.organisations and not spec.using.roles:
        err(("using",), "name the using side's organisations or roles (or both)")
    for i, r in enumerate(spec.using.roles):
        if roles and r not in roles:
            err(("using", "roles", i), f"unknown role {r!r} (roles.yaml)")
    for i, t in enumerate(spec.tasks):
        if tasks is not None and t not in tasks:
            err(("tasks", i), f"unknown task {t!r} (policies/tasks)")
    fields: dict[str, object] = {}
    for i, entry in enumerate(spec.fields):
        rule = FieldSpec(field=entry) if isinstance(entry, str) else entry
        f = catalog.fields.get(rule.field)
        if f is None:
            err(("fields", i), f"unknown field {rule.field!r} (the catalog has no such field)")
            continue
        if f.ledger.id not in spec.provider.ledgers:
            err(("fields", i), f"field {f.id} is read from {f.ledger.id}, which the agreement does not share")
            continue
        if rule.mask is not None:
            problem = check_mask(rule.mask, f.columns, f.type)
            if problem:
                err(("fields", i, "mask"), problem)
                continue
        if f.id in fields:
            err(("fields", i), f"field {f.id} is listed twice")
        fields[f.id] = rule.mask
    if spec.valid_until < spec.valid_from:
        err(("valid_until",), f"valid_until {spec.valid_until} is before valid_from {spec.valid_from}")
    if errors:
        raise ConfigErrors(errors)
    assert agency is not None
    return Agreement(spec.id, spec.title, spec.title_en, agency.id, agency.name, frozenset(spec.provider.ledgers),
                     spec.using.signer, tuple(spec.using.organisations), frozenset(spec.using.roles),
                     frozenset(spec.tasks), fields, spec.legal_basis, spec.legal_basis_en, spec.valid_from,
                     spec.valid_until, spec.revoked, spec.duties.retention_days, spec.duties.onward_sharing, file)


def widening(old: Agreements | None, new: Agreements | None) -> list[tuple[str, str]]:
    """(agreement id, reason) for every way `new` shares more than `old`: each needs both sides' admins."""
    if new is None:
        return [("*", "agreements are no longer enforced (the agreements directory is gone)")] if old else []
    if old is None:
        return []  # enforcement starts: narrower than before
    out: list[tuple[str, str]] = []
    for aid, a in new.by_id.items():
        o = old.by_id.get(aid)
        if o is None:
            out.append((aid, f"new agreement {aid} shares {len(a.fields)} field(s) of {a.agency}"))
            continue
        for fid in sorted(set(a.fields) - set(o.fields)):
            out.append((aid, f"agreement {aid}: shares {fid} too"))
        for fid in sorted(set(a.fields) & set(o.fields)):
            if o.fields[fid] is not None and a.fields[fid] != o.fields[fid]:
                out.append((aid, f"agreement {aid}: {fid} loses or changes its required mask"))
        for what, more in (("ledger", a.ledgers - o.ledgers), ("role", a.roles - o.roles),
                           ("task", a.tasks - o.tasks), ("organisation", set(a.organisations) - set(o.organisations))):
            for x in sorted(more):
                out.append((aid, f"agreement {aid}: gains {what} {x}"))
        if a.valid_from < o.valid_from or a.valid_until > o.valid_until:
            out.append((aid, f"agreement {aid}: valid longer ({a.valid_from}..{a.valid_until})"))
        if o.revoked is not None and (a.revoked is None or a.revoked > o.revoked):
            out.append((aid, f"agreement {aid}: no longer revoked"))
        if a.signer != o.signer:
            out.append((aid, f"agreement {aid}: the using side's signer becomes {a.signer}"))
        if a.onward_sharing and not o.onward_sharing or a.retention_days > o.retention_days:
            out.append((aid, f"agreement {aid}: lighter duties"))
    return out


TEMPLATE = """\
# 정보 공동이용 협약 (사전합의 참조문) — Sharing agreement (reference form)
# 제공기관(providing agency)이 이용기관(using side)에 어떤 항목을 어떤 사무를 위해 제공하는지 정합니다.
# States which fields of which ledgers the providing agency shares with whom, for which tasks, on which terms.
# 검증 / check: onescreen agreement validate FILE
id: example-agreement                # 협약 식별자 (영문 소문자, 숫자, -, _) / agreement id
title: 예시 정보 공동이용 협약        # 협약명 / title (Korean)
title_en: Example sharing agreement  # title (English)
provider:                            # 제공기관 / providing agency
  agency: MOIS                       # 카탈로그의 기관 코드 / the catalog's agency id
  ledgers: [mois.resident]           # 제공하는 대장 / the agency's ledgers shared from
using:                               # 이용기관 / using side
  signer: 행정안전부                  # 서명하는 이용기관 (관리자의 소속이 이것으로 시작) / signing organisation
  organisations: []                  # 열람할 수 있는 기관 / organisations whose caseworkers may read
  roles: [resident_registration_officer]  # 열람할 수 있는 역할 / roles whose holders may read
tasks: [move_in_report]              # 이용 목적(사무) / tasks (purposes)
fields:                              # 제공 항목 (정확히) / the exact fields
  - citizen.name
  - {field: citizen.mobile_phone, mask: phone}  # 제공기관이 요구하는 마스킹 / mask the provider requires
legal_basis: 주민등록법 제30조(주민등록자료의 이용)   # 법적 근거 / legal basis
legal_basis_en: Resident Registration Act, Article 30
valid_from: 2026-01-01               # 효력 시작일 / in force from
valid_until: 2027-12-31              # 효력 종료일 / in force until (inclusive)
revoked: null                        # 철회일 (제공기관) / revoked from this day on (provider)
duties:                              # 의무 / duties
  retention_days: 0                  # 보유 기간(일), 0 = 보관하지 않음 / days the using side may keep it
  onward_sharing: false              # 제3자 제공 금지 / no onward sharing
signed:                              # 양측 서명 / signatures of both sides
  provider: {admin: an.hyeopyak, date: 2026-01-02}
  using: {admin: oh.samu, date: 2026-01-03}
"""
