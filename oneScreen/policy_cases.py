"""Decision tests as data: `policies/tests/*.yaml`, run by `onescreen policy test` and by pytest.

Each case names a caller (user, org, region, roles), a task, what is known of the subject (in the caller's
region, consented) and, per field path, the decision the pure `policy.decide()` must give: its status, the
rule that decides (optional) and, for MASKED, the mask. Pins invariant 1 as data, Cerbos-style: what each
task discloses, to whom and under which facts is reviewed with the policies it tests. A malformed file is
refused with `FILE:LINE: reason`; an expectation that does not hold is `FILE:LINE: expected X, got Y (rule R)`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field as PField

from . import yamlfile
from .catalog import Catalog, path_id
from .errors import ConfigError, ConfigErrors
from .permissions import uses_task
from .policy import NO_AGREEMENT, Caller, Decision, Policies, Status, Subject, decide

DIRECTORY = "tests"  # beside roles.yaml and tasks/ in the policies directory

ExpectedStatus = Literal["OK", "MASKED", "DENIED", "CONSENT_REQUIRED"]  # what decide() can answer


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallerSpec(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)  # region: 11680 unquoted
    user: str
    org: str = ""
    region: str | None = PField(description="'national', a region code, or null: the sign-in names no region")
    roles: list[str]


class SubjectSpec(_Model):
    in_region: bool | None = PField(None, description="the subject is in the caller's region (absent: not known)")
    consented: bool | None = PField(None, description=(
        "a consent is in force for the task, the subject AND the request's case (recorded for that case, or reused "
        "for it, and valid on the day); absent: not known"))


class ExpectSpec(_Model):
    status: ExpectedStatus
    rule: str | None = PField(None, description="the rule that must decide, as `onescreen policy explain` prints it")
    mask: str | dict[str, str] | None = PField(None, description="the mask of a MASKED field (required for MASKED)")


class CaseSpec(_Model):
    name: str = PField(description="what the case shows, in a sentence")
    day: dt.date | None = PField(None, description="the request's day (sharing agreements in force on it); absent: "
                                                   "the file's `day`, else today")
    caller: str | CallerSpec = PField(description="a caller of this file's `callers:`, or one written out")
    task: str
    subject: SubjectSpec = SubjectSpec()
    expect: dict[str, ExpectSpec] = PField(min_length=1, description="field path -> {status, rule, mask}")


class CasesFile(_Model):
    day: dt.date | None = PField(None, description="the request's day of every case that names none (absent: today)")
    callers: dict[str, CallerSpec] = PField(default_factory=dict, description="callers the cases name")
    cases: list[CaseSpec] = PField(min_length=1)


@dataclass(frozen=True)
class Expectation:
    field: str  # canonical path id
    status: Status
    rule: str | None
    mask: str | Mapping[str, str] | None
    line: int | None

    def describe(self) -> str:
        out = self.status.value + (f" with mask {_mask_text(self.mask)}" if self.mask is not None else "")
        return out + (f" (rule {self.rule})" if self.rule is not None else "")

    def holds(self, d: Decision) -> bool:
        return d.status is self.status and (self.rule is None or d.rule == self.rule) \
            and (self.status is not Status.MASKED or _same_mask(d.mask, self.mask))


@dataclass(frozen=True)
class Case:
    file: str
    line: int | None
    name: str
    caller: Caller
    task: str
    subject: Subject
    expect: tuple[Expectation, ...]
    day: dt.date | None = None  # the request's day (None: today)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Failure:
    file: str
    line: int | None
    expected: str
    got: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: expected {self.expected}, got {self.got}"


def load(directory: Path, catalog: Catalog, policies: Policies) -> list[Case]:
    """Every case of `directory/*.yaml`, checked against the catalog and the policies; ConfigErrors naming
    file and line for every problem (a file without tests counts as one)."""
    directory = Path(directory)
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ConfigErrors([ConfigError(str(directory), None, "no decision test files (*.yaml) found")])
    cases: list[Case] = []
    errors: list[ConfigError] = []
    for path in files:
        try:
            cases += _load_file(path, catalog, policies)
        except ConfigError as exc:
            errors.append(exc)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise ConfigErrors(errors)
    return cases


def _load_file(path: Path, catalog: Catalog, policies: Policies) -> list[Case]:
    file = str(path)
    data, lines = yamlfile.load(path)
    spec: CasesFile = yamlfile.validate(CasesFile, data, lines, file)
    errors: list[ConfigError] = []

    def err(loc: tuple, reason: str) -> None:
        errors.append(ConfigError(file, yamlfile.line_of(lines, loc), reason))

    known_roles = policies.roles  # a role a caller holds must exist (a typo would pass as a denial)

    def caller_of(c: CallerSpec, loc: tuple) -> Caller:
        for i, role in enumerate(c.roles):
            if role not in known_roles:
                err(loc + ("roles", i), f"unknown role {role!r} (roles.yaml has no such role)")
        return Caller(c.user, c.user, c.org, c.region, frozenset(c.roles))

    named = {name: caller_of(c, ("callers", name)) for name, c in spec.callers.items()}
    cases: list[Case] = []
    for ci, case in enumerate(spec.cases):
        loc = ("cases", ci)
        if isinstance(case.caller, str):
            caller = named.get(case.caller)
            if caller is None:
                known = ", ".join(sorted(named)) or "none"
                err(loc + ("caller",), f"unknown caller {case.caller!r} (this file's callers: {known})")
        else:
            caller = caller_of(case.caller, loc + ("caller",))
        if case.task not in policies.tasks:
            err(loc + ("task",), f"unknown task {case.task!r} (known: {', '.join(sorted(policies.tasks))})")
        expectations: list[Expectation] = []
        seen: dict[str, str] = {}
        for text, e in case.expect.items():
            eloc = loc + ("expect", text)
            try:
                fid = path_id(catalog.path(text))
            except KeyError as exc:
                err(eloc, f"{exc.args[0]} (in field path {text!r}; the catalog has no such field)")
                continue
            if fid in seen:
                err(eloc, f"field {fid!r} is expected twice in this case (also as {seen[fid]!r})")
                continue
            seen[fid] = text
            if e.status == "MASKED" and e.mask is None:
                err(eloc, "a MASKED expectation names its mask: {status: MASKED, mask: STRATEGY}")
                continue
            if e.status != "MASKED" and e.mask is not None:
                err(eloc, f"'mask' belongs to a MASKED expectation, not to {e.status}")
                continue
            expectations.append(Expectation(fid, Status(e.status), e.rule, e.mask, yamlfile.line_of(lines, eloc)))
        if caller is not None:
            cases.append(Case(file, yamlfile.line_of(lines, loc), case.name, caller, case.task,
                              Subject(case.subject.in_region, case.subject.consented), tuple(expectations),
                              case.day or spec.day))
    if errors:
        raise ConfigErrors(errors)
    return cases


def run(case: Case, policies: Policies) -> list[Failure]:
    """The expectations of `case` that `decide()` does not meet."""
    task = policies.tasks[case.task]
    failures = []
    for e in case.expect:
        d = decide(case.caller, task, e.field, case.subject, case.day)
        if not e.holds(d):
            got = d.status.value + (f" with mask {_mask_text(d.mask)}" if d.mask is not None else "")
            failures.append(Failure(case.file, e.line, e.describe(), f"{got} (rule {d.rule})"))
    return failures


def uncovered(cases: list[Case], policies: Policies) -> dict[str, list[str]]:
    """Per task, the kinds of decision it can make that no case shows (task code -> kinds, in a fixed order):
    allowed, denied (not in the field set), denied (the caller's roles are not granted the task), and where
    the task has them: masked, consent required, allowed with consent, denied by jurisdiction."""
    shown: dict[str, set[str]] = {code: set() for code in policies.tasks}
    for case in cases:
        task = policies.tasks[case.task]
        for e in case.expect:
            d = decide(case.caller, task, e.field, case.subject, case.day)
            tf = task.fields.get(e.field)
            kind = {Status.OK: "allowed", Status.MASKED: "masked", Status.CONSENT_REQUIRED: "consent required"}.get(
                d.status)
            if d.status is Status.DENIED:
                kind = ("denied: task not granted to the caller's roles" if not uses_task(case.caller, task)
                        else "denied: not in the task's field set" if tf is None
                        else "denied: no sharing agreement" if d.rule == NO_AGREEMENT else "denied by jurisdiction")
            shown[task.code].add(kind)
            if d.status is Status.OK and tf is not None and tf.consent:
                shown[task.code].add("allowed with consent")
    out = {}
    for code, task in policies.tasks.items():
        kinds = ["allowed", "denied: not in the task's field set", "denied: task not granted to the caller's roles"]
        if any(tf.mask is not None and tf.full_value_basis is None for tf in task.fields.values()):
            kinds.append("masked")
        if task.needs_consent:
            kinds += ["consent required", "allowed with consent"]
        if task.jurisdiction == "own_region":
            kinds.append("denied by jurisdiction")
        missing = [k for k in kinds if k not in shown[code]]
        if missing:
            out[code] = missing
    return out


def _mask_text(mask: str | Mapping[str, str] | None) -> str:
    if isinstance(mask, Mapping):
        return "{" + ", ".join(f"{k}: {v}" for k, v in mask.items()) + "}"
    return str(mask)


def _same_mask(a: str | Mapping[str, str] | None, b: str | Mapping[str, str] | None) -> bool:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return dict(a) == dict(b)
    return a == b


def json_schema() -> dict:
    """JSON Schema of a decision test file, from the model the loader uses."""
    return CasesFile.model_json_schema()
