"""Policy as data: roles, tasks (legal basis, roles, ordered field sets) and decide().

Owns invariant 1 (deny by default): a field path the task's set does not name
is DENIED, whatever the query asks for. Every data path in the service asks
`decide()`; nothing else grants access to a field. Whether a caller may use a
task, or do an admin or audit action, is permissions.py's to answer.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field as PField, field_validator, model_validator

from . import agreements as agreements_mod, jurisdiction, permissions as permissions_mod, yamlfile
from .catalog import Catalog, Field, parse_path, path_id
from .errors import ConfigError, ConfigErrors, TaskForbidden, load_each


NO_AGREEMENT = "no sharing agreement in force"  # the rule of a field no agreement covers on the day
PROVIDER_MASK = "provider mask"  # the rule of a mask a sharing agreement requires: "provider mask STRATEGY"

# A case reference (민원 접수번호, case id): what a disclosure is recorded against; checked on every request too.
CASE_REF_PATTERN = r"^[0-9A-Za-z가-힣._:/-]{1,64}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleSpec(_Model):
    id: str = PField(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    label_en: str


class RolesFile(_Model):
    roles: list[RoleSpec]
    permissions: dict[str, list[str]] = PField(
        default_factory=dict, json_schema_extra={"propertyNames": {"enum": list(permissions_mod.ACTIONS)}},
        description="admin and audit action -> the roles that may do it (permissions.py); an action not listed, "
                    "or a role not named, is refused. Using a task is granted by the task's own roles")


class FieldRuleSpec(_Model):
    field: str = PField(description="field path, e.g. citizen.residence > building.main_purpose")
    mask: str | dict[str, str] | None = PField(None, description="masking strategy for this task")
    full_value_basis: str | None = PField(None, description="legal basis that grants the full (unmasked) value")
    consent: bool = PField(False, description="the subject must consent (or an exception apply) first")


class SectionSpec(_Model):
    title: str
    title_en: str
    fields: list[str | FieldRuleSpec] = PField(min_length=1)


class DeferredDisclosureSpec(_Model):
    legal_basis: str = PField(min_length=1, description="the law that lets the subject be told later (e.g. an "
                                                        "investigation, a tax audit in progress)")
    until: date | None = PField(None, description="receipts stay sealed until this day (UTC)")
    period_days: int | None = PField(None, ge=1, le=3650, description="receipts stay sealed this many days after "
                                                                       "the access")

    @field_validator("legal_basis")
    @classmethod
    def _names_a_law(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the legal basis that lets the subject be told later is blank; name the law")
        return v

    @model_validator(mode="after")
    def _one_end(self) -> "DeferredDisclosureSpec":
        if (self.until is None) == (self.period_days is None):
            raise ValueError("deferred_disclosure needs exactly one of until (a date) or period_days")
        return self


class TaskFile(_Model):
    code: str = PField(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    name_en: str
    legal_basis: str
    legal_basis_en: str
    subject: str
    roles: list[str] = PField(min_length=1)
    jurisdiction: Literal["national", "own_region"] = PField(
        "national", description="own_region: a caseworker sees only subjects of their own region")
    case_ref_example: str | None = PField(None, pattern=CASE_REF_PATTERN, description=(
        "an example of this task's case references (e.g. 2026-전입-0001), shown as the caseworker's hint"))
    subjects_per_request: int = PField(
        1, ge=1, le=1000, description="subjects one request may look up for this task: 1 for a caseworker's "
                                      "screen; a batch task (e.g. a periodic review) says how many")
    consent_valid_days: int | None = PField(None, ge=1, le=3650, description=(
        "how many days a consent (or exception) recorded for a case opens its consent-gated fields, counting the "
        "day it is recorded (KST); absent: until the case is closed. A consent is bound to its case either way"))
    deferred_disclosure: DeferredDisclosureSpec | None = PField(None, description=(
        "the subject is told of an access later: its receipt is in the signed trail from the access, but sealed "
        "(not shown to the subject nor pushed) until the date, or until an auditor releases it"))
    receipt_case_ref: Literal["shown", "hidden"] = PField("shown", description=(
        "whether the subject's receipt shows the case reference (hidden: an internal case number that must not "
        "reach the subject)"))
    sections: list[SectionSpec] = PField(min_length=1)


class Status(str, enum.Enum):
    OK = "OK"
    MASKED = "MASKED"
    DENIED = "DENIED"
    NOT_FOUND = "NOT_FOUND"
    UNAVAILABLE = "UNAVAILABLE"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"
    PARTIAL = "PARTIAL"  # shown, but the ledger has more rows than were read (screen.py)


@dataclass(frozen=True)
class Role:
    id: str
    label: str
    label_en: str


@dataclass(frozen=True)
class TaskField:
    path: tuple[Field, ...]
    id: str  # canonical path id, e.g. "citizen.residence>building.main_purpose"
    mask: str | Mapping[str, str] | None = None  # effective strategy: the task's, else the field's default
    full_value_basis: str | None = None
    consent: bool = False
    # the sharing agreements that could cover each field of the path (agreements.py); None: not enforced
    coverage: agreements_mod.Coverage | None = None

    @property
    def target(self) -> Field:
        return self.path[-1]


@dataclass(frozen=True)
class Section:
    title: str
    title_en: str
    fields: tuple[TaskField, ...]


@dataclass(frozen=True)
class Task:
    code: str
    name: str
    name_en: str
    legal_basis: str
    legal_basis_en: str
    subject: str
    roles: frozenset[str]
    sections: tuple[Section, ...]
    fields: Mapping[str, TaskField]  # by path id
    source: str
    jurisdiction: str = "national"
    case_ref_example: str | None = None
    subjects_per_request: int = 1
    consent_valid_days: int | None = None  # a consent's validity in days (None: no end); bound to its case always
    deferred: "Deferred | None" = None  # receipts sealed until a date or for a period (receipts.py)
    receipt_case_ref: str = "shown"  # "hidden": the subject's receipt leaves the case reference out

    @cached_property  # read per disclosure (Door._reader, screen_consents); a task never changes
    def needs_consent(self) -> bool:
        return any(tf.consent for tf in self.fields.values())


@dataclass(frozen=True)
class Deferred:
    """A task's deferred disclosure: its legal basis, and a fixed day or a period in days after the access."""

    legal_basis: str
    until: date | None = None
    period_days: int | None = None

    def sealed_until(self, at: datetime) -> date:
        """The day (UTC) from which the receipt of an access at `at` is shown."""
        if self.until is not None:
            return self.until
        return at.astimezone(timezone.utc).date() + timedelta(days=self.period_days or 0)


@dataclass(frozen=True)
class Caller:
    user: str
    name: str
    org: str
    region: str | None  # "national", a 시도 or 시군구 code (jurisdiction.py); None: the token names no region
    roles: frozenset[str]
    subject: str | None = None  # a citizen signed in as themselves: their own subject key

    @property
    def national(self) -> bool:
        """Nationwide jurisdiction, named explicitly: never inferred from a code that ends in zeros."""
        return self.region == jurisdiction.NATIONAL

    @cached_property  # asked on every request of a region-limited task; a Caller is immutable
    def scope(self) -> str:
        """What the caller's jurisdiction is: "national", "region" (a well-formed code) or "none"."""
        if self.national:
            return "national"
        return "region" if self.region is not None and jurisdiction.problem(self.region) is None else "none"

    def covers(self, legal_dong_code: object) -> bool:
        """Whether a subject of this 법정동 (or 시군구) code is in the caller's region (jurisdiction.covers)."""
        return jurisdiction.covers(self.region, legal_dong_code)


@dataclass(frozen=True)
class Subject:
    """What policy knows of the subject of a request (None: not looked up because no rule needs it)."""

    in_region: bool | None = None
    consented: bool | None = None


@dataclass(frozen=True)
class Decision:
    status: Status  # OK (allow), MASKED (allow, then mask), DENIED, CONSENT_REQUIRED
    reason: str | None = None
    reason_en: str | None = None
    mask: str | Mapping[str, str] | None = None
    rule: str = ""  # which rule decided, for `onescreen policy explain`

    @property
    def allowed(self) -> bool:
        """Whether the field is read from its ledger (masked fields are read, then masked)."""
        return self.status is Status.OK or self.status is Status.MASKED


@dataclass(frozen=True)
class Policies:
    roles: Mapping[str, Role]
    tasks: Mapping[str, Task]
    permissions: permissions_mod.Permissions = dataclasses.field(default_factory=permissions_mod.Permissions)
    agreements: agreements_mod.Agreements | None = None  # None: no agreements directory, not enforced

    def tasks_for(self, caller: Caller) -> list[Task]:
        return [t for t in self.tasks.values() if self.permissions.allowed(caller, permissions_mod.TASK_USE, t)]

    def task_for(self, caller: Caller, code: str) -> Task:
        """The task if the caller may perform it; TaskForbidden otherwise (unknown tasks look the same)."""
        task = self.tasks.get(code)
        if task is None or not self.permissions.allowed(caller, permissions_mod.TASK_USE, task):
            # name the task only if it exists: an error never echoes arbitrary input (it may be a subject id)
            what = f"task {task.code!r} ({task.name})" if task is not None else "this task"
            raise TaskForbidden(f"you may not perform {what}: none of your roles is granted it")
        return task


def today() -> dt.date:
    """The request's day: the caseworkers' (KST), as consent validity counts it."""
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=9))).date()


def decide(caller: Caller, task: Task, field_path: str, subject: Subject = Subject(),
           day: dt.date | None = None) -> Decision:
    """The decision for one field path of one request on `day` (the request's day; None: today, KST). Deny by
    default; the first rule that applies decides."""
    if not permissions_mod.uses_task(caller, task):
        return Decision(Status.DENIED, f"사무 {task.name}을(를) 수행할 권한이 없습니다",
                        f"not permitted to perform task {task.name_en}", rule="task roles")
    tf = task.fields.get(field_path)
    if tf is None:
        return Decision(Status.DENIED, f"사무 {task.name}에 필요한 항목이 아닙니다",
                        f"not required by task {task.name_en}", rule="not in the task's field set")
    provider_mask = None
    if tf.coverage is not None:
        verdict = agreements_mod.judge(tf.coverage, caller, day or today())
        if not verdict.ok:
            return Decision(Status.DENIED, verdict.reason, verdict.reason_en, rule=NO_AGREEMENT)
        provider_mask = verdict.mask
    if task.jurisdiction == "own_region" and not caller.national and caller.scope != "region":
        return Decision(Status.DENIED, "로그인 정보에 올바른 관할 구역이 없어 관할 구역 사무의 항목을 열람할 수 없습니다",
                        f"your sign-in carries no valid region, and task {task.name_en} is limited to the "
                        "caseworker's region", rule="jurisdiction: own_region, caller without a valid region")
    if task.jurisdiction == "own_region" and not caller.national and subject.in_region is not True:
        return Decision(Status.DENIED, "관할 구역 밖의 대상자입니다",
                        f"the subject is outside your jurisdiction (task {task.name_en} is handled by the subject's region)",
                        rule="jurisdiction: own_region")
    if tf.consent and subject.consented is not True:
        return Decision(Status.CONSENT_REQUIRED, "정보주체의 동의(또는 예외 사유)가 필요합니다",
                        "the subject's consent (or an exception) must be recorded first", rule="consent required")
    if provider_mask is not None:  # the providing agency requires it: no task's rule lifts it
        return Decision(Status.MASKED, None, None, mask=provider_mask, rule=f"{PROVIDER_MASK} {provider_mask}")
    return allowed_decision(tf)


def allowed_decision(tf: TaskField) -> Decision:
    """The decision for a field of the task's set once every rule of access passed: masked or in full."""
    if tf.mask is not None and tf.full_value_basis is None:
        return Decision(Status.MASKED, None, None, mask=tf.mask, rule=f"mask {tf.mask}")
    basis = f"full value: {tf.full_value_basis}" if tf.full_value_basis else "in the task's field set"
    return Decision(Status.OK, rule=basis)


def may_record_consent(caller: Caller, task: Task, subject: Subject, day: dt.date | None = None) -> Decision:
    """Whether the caller may record the subject's consent for the task: the rules of reading its consent-gated
    fields (the task's roles, the caller's jurisdiction), with the consent itself taken as given."""
    facts = Subject(subject.in_region, consented=True)
    for tf in task.fields.values():
        if tf.consent:
            d = decide(caller, task, tf.id, facts, day)
            if not d.allowed:
                return d
    return Decision(Status.OK, rule="may read the consent-gated fields once consent is recorded")


def load(directory: Path, catalog: Catalog) -> Policies:
    """Load roles.yaml and tasks/*.yaml; every problem is reported with file and line."""
    directory = Path(directory)
    errors: list[ConfigError] = []
    roles_path = directory / "roles.yaml"
    roles: dict[str, Role] = {}
    permissions = permissions_mod.Permissions()
    try:
        data, lines = yamlfile.load(roles_path)
        spec = yamlfile.validate(RolesFile, data, lines, str(roles_path))
        for i, r in enumerate(spec.roles):
            if r.id in roles:
                errors.append(ConfigError(str(roles_path), yamlfile.line_of(lines, ("roles", i, "id")),
                                          f"duplicate role {r.id!r}"))
            roles[r.id] = Role(r.id, r.label, r.label_en)
        permissions, problems = permissions_mod.load(spec.permissions, roles, str(roles_path), lines)
        errors.extend(problems)
    except ConfigError as exc:
        errors.append(exc)
    except ConfigErrors as exc:
        errors.extend(exc.errors)

    task_files = sorted((directory / "tasks").glob("*.yaml"))
    if not task_files:
        errors.append(ConfigError(str(directory / "tasks"), None, "no task files (*.yaml) found"))
    tasks = load_each(task_files, lambda path: _load_task(path, catalog, roles), lambda t: t.code, "task code", errors)
    agreements = None
    try:
        # an agreement may name a task not built yet (or retired): `onescreen agreement validate` says so
        agreements = agreements_mod.load(directory, catalog, roles, None)
    except ConfigErrors as exc:
        errors.extend(exc.errors)
    if errors:
        raise ConfigErrors(errors)
    if agreements is not None:
        tasks = {code: _covered(t, agreements) for code, t in tasks.items()}
    return Policies(roles, tasks, permissions, agreements)


def _covered(task: Task, agreements: agreements_mod.Agreements) -> Task:
    """The task with each field's candidate agreements attached (decide() then only checks caller and day)."""
    fields = {pid: dataclasses.replace(tf, coverage=agreements.coverage(tf.path, task.code))
              for pid, tf in task.fields.items()}
    sections = tuple(dataclasses.replace(s, fields=tuple(fields[tf.id] for tf in s.fields)) for s in task.sections)
    return dataclasses.replace(task, fields=fields, sections=sections)


def _load_task(path: Path, catalog: Catalog, roles: Mapping[str, Role]) -> Task:
    data, lines = yamlfile.load(path)
    spec: TaskFile = yamlfile.validate(TaskFile, data, lines, str(path))
    file = str(path)
    errors: list[ConfigError] = []

    def err(loc: tuple, reason: str) -> None:
        errors.append(ConfigError(file, yamlfile.line_of(lines, loc), reason))

    if spec.subject not in catalog.subject_types:
        err(("subject",), f"unknown subject type {spec.subject!r}")
    for i, r in enumerate(spec.roles):
        if roles and r not in roles:
            err(("roles", i), f"unknown role {r!r}")
    sections: list[Section] = []
    all_fields: dict[str, TaskField] = {}
    for si, sec in enumerate(spec.sections):
        fields: list[TaskField] = []
        for fi, entry in enumerate(sec.fields):
            rule = FieldRuleSpec(field=entry) if isinstance(entry, str) else entry
            text = rule.field
            loc = ("sections", si, "fields", fi)
            try:
                path_fields = parse_path(catalog, text)
            except KeyError as exc:
                err(loc, f"{exc.args[0]} (in field path {text!r}; the catalog has no such field)")
                continue
            if path_fields[0].subject != spec.subject:
                err(loc, f"{text!r} starts at {path_fields[0].subject!r} but the task is about {spec.subject!r}")
                continue
            if path_fields[-1].is_link:
                err(loc, f"{text!r} ends in a link; name the field of {path_fields[-1].target!r} to show")
                continue
            mask = rule.mask if rule.mask is not None else path_fields[-1].mask
            if rule.mask is not None:
                from .catalog import check_mask
                problem = check_mask(rule.mask, path_fields[-1].columns, path_fields[-1].type)
                if problem:
                    err(loc + ("mask",), problem)
                    continue
            if rule.full_value_basis is not None and rule.mask is not None:
                err(loc, f"{text!r}: 'mask' and 'full_value_basis' contradict each other")
                continue
            tf = TaskField(path_fields, path_id(path_fields), mask, rule.full_value_basis, rule.consent)
            if tf.id in all_fields:
                err(loc, f"field {tf.id!r} appears twice in the task")
                continue
            all_fields[tf.id] = tf
            fields.append(tf)
        sections.append(Section(sec.title, sec.title_en, tuple(fields)))
    if errors:
        raise ConfigErrors(errors)
    if spec.jurisdiction == "own_region" and spec.subject in catalog.subject_types \
            and catalog.subject_types[spec.subject].region_field is None:
        err(("jurisdiction",), f"subject type {spec.subject!r} has no region_field in the catalog")
    if spec.consent_valid_days is not None and not any(tf.consent for tf in all_fields.values()):
        err(("consent_valid_days",), "consent_valid_days is set but no field of the task has consent: true")
    if errors:
        raise ConfigErrors(errors)
    return Task(spec.code, spec.name, spec.name_en, spec.legal_basis, spec.legal_basis_en, spec.subject,
                frozenset(spec.roles), tuple(sections), all_fields, file, spec.jurisdiction, spec.case_ref_example,
                spec.subjects_per_request, spec.consent_valid_days,
                None if spec.deferred_disclosure is None else Deferred(
                    spec.deferred_disclosure.legal_basis, spec.deferred_disclosure.until,
                    spec.deferred_disclosure.period_days),
                spec.receipt_case_ref)


def json_schemas() -> dict[str, dict]:
    """JSON Schemas of the policies directory's files: roles.yaml, tasks/*.yaml, tests/*.yaml and
    agreements/*.yaml."""
    from .policy_cases import json_schema as decision_test_schema
    return {"roles": RolesFile.model_json_schema(), "task": TaskFile.model_json_schema(),
            "decision_test": decision_test_schema(),
            "agreement": agreements_mod.AgreementFile.model_json_schema(mode="serialization")}
