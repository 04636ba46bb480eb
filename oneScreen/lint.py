"""`onescreen policy lint`: checks of the policies as a whole, beyond what the loaders validate file by file.

Owns the consistency side of invariant 6 (masked values never leave unmasked): within one task, one kind
of personal data (name, RRN, address, phone, birth date; the catalog's `personal_data`) gets one treatment
in every field and record column that carries it, since a name masked in one table is no use when the next
shows it in full. Also: every field has a legal basis, and a catalog field no task shows is reported, with
the catalog's own warnings (an identifier typed as a number). Where sharing agreements are enforced, a field a
task requires (or the region its jurisdiction check reads) that no agreement in force covers is a warning (it
would always be DENIED), and so is an agreements directory whose one file, deleted, would turn enforcement off.
Findings are `FILE:LINE: reason`, errors and warnings; run on every proposed change (changes.py) and in CI.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from . import catalog as catalog_mod, policy as policy_mod, yamlfile
from .agreements import Agreements
from .catalog import Catalog, Field, parse_path, path_id
from .policy import Policies, Task, TaskField

KINDS = {"name": "names", "rrn": "resident registration numbers", "address": "addresses",
         "phone": "phone numbers", "birth_date": "birth dates"}
STRATEGY = {"name": "name", "rrn": "rrn", "address": "address", "phone": "phone", "birth_date": "date_year"}
NEEDS_OWN_BASIS = ("sensitive", "unique_id")  # shown in full, these need a legal basis of their own (or consent)


@dataclass(frozen=True)
class Finding:
    file: str
    line: int | None
    reason: str
    error: bool = True  # False: a warning, which does not fail the lint

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {'' if self.error else 'warning: '}{self.reason}"


@dataclass(frozen=True)
class _Carrier:
    """One place of a task that shows a kind of personal data: a field, or one column of a record field."""

    field: TaskField
    column: str | None  # the record column, None for a scalar field
    treatment: str | None  # the mask strategy, None when shown in full
    line: int | None

    def __str__(self) -> str:
        return self.field.id if self.column is None else f"{self.field.id}, column {self.column}"


def lint_files(catalog_path: Path, policies_dir: Path) -> list[Finding]:
    """Load (ConfigError/ConfigErrors as the loaders raise them) and lint."""
    cat = catalog_mod.load(Path(catalog_path))
    return lint(cat, policy_mod.load(Path(policies_dir), cat))


def lint(catalog: Catalog, policies: Policies, day: dt.date | None = None) -> list[Finding]:
    """Every finding; agreements are judged as in force on `day` (None: today, KST, as a request's day)."""
    day = day or policy_mod.today()
    findings: list[Finding] = []
    for task in policies.tasks.values():
        findings += _task(catalog, task, policies.agreements, day)
    catalog_warnings = [Finding(w.file, w.line, w.reason, error=False) for w in catalog.warnings]
    return findings + _last_agreement(policies) + _unshown(catalog, policies) + catalog_warnings


def errors(catalog: Catalog, policies: Policies) -> list[Finding]:
    """The lint's errors only (what refuses a change): each task's; the warnings (fields no task shows, the
    catalog's own) are left out, and the catalog file is not read again for them."""
    return [f for task in policies.tasks.values() for f in _task(catalog, task) if f.error]


def _task(catalog: Catalog, task: Task, agreements: Agreements | None = None, day: dt.date | None = None
          ) -> list[Finding]:
    """The task's findings; with `agreements` (enforced) and `day`, also the fields no agreement covers."""
    data, lines = yamlfile.load(Path(task.source))
    line_of: dict[str, int | None] = {}  # task field id -> line of its entry
    for si, sec in enumerate(data.get("sections") or []):
        for fi, entry in enumerate(sec.get("fields") or []):
            text = entry if isinstance(entry, str) else entry.get("field", "")
            line_of[path_id(parse_path(catalog, text))] = yamlfile.line_of(lines, ("sections", si, "fields", fi))
    out: list[Finding] = []

    def finding(line: int | None, reason: str, error: bool = True) -> None:
        out.append(Finding(task.source, line, f"task {task.code}: {reason}", error))

    if agreements is not None and day is not None:
        for tf in task.fields.values():
            for f in _uncovered(agreements, tf.path, task, day):
                finding(line_of.get(tf.id), f"{tf.id} is always DENIED: no sharing agreement in force on {day} "
                                            f"covers {f.id} for this task", error=False)
        region = catalog.subject_types[task.subject].region_field if task.jurisdiction == "own_region" else None
        for f in _uncovered(agreements, (catalog.fields[region],) if region else (), task, day):
            finding(yamlfile.line_of(lines, ("jurisdiction",)),
                    f"the jurisdiction check reads {f.id}, which no sharing agreement in force on {day} covers "
                    "for this task: every caseworker of a district is refused every subject", error=False)

    for key, what in (("legal_basis", "legal basis"), ("legal_basis_en", "legal basis in English")):
        if not str(data.get(key) or "").strip():
            finding(yamlfile.line_of(lines, (key,)), f"the task names no {what}: every field it shows needs one")

    by_kind: dict[str, list[_Carrier]] = {}
    for tf in task.fields.values():
        line = line_of.get(tf.id)
        shown = None if tf.full_value_basis else tf.mask  # a full_value_basis grants the unmasked value
        if tf.full_value_basis is not None and not tf.full_value_basis.strip():
            finding(line, f"{tf.id}: full_value_basis is empty; name the provision that grants the full value")
        target = tf.target
        if target.sensitivity in NEEDS_OWN_BASIS and shown is None and not tf.consent and not tf.full_value_basis:
            finding(line, f"{tf.id} is {target.sensitivity.replace('_', ' ')} data shown in full without a legal "
                          "basis of its own: name the provision with full_value_basis, mask it, or gate it on "
                          "the subject's consent")
        for col in target.columns:
            if col.personal_data is None:
                continue
            if target.type == "record":
                carrier = _Carrier(tf, col.name, shown.get(col.name) if isinstance(shown, Mapping) else None, line)
            else:
                carrier = _Carrier(tf, None, shown if isinstance(shown, str) else None, line)
            by_kind.setdefault(col.personal_data, []).append(carrier)
            want = STRATEGY[col.personal_data]
            if carrier.treatment is not None and carrier.treatment != want:
                finding(line, f"{KINDS[col.personal_data]} are masked with '{carrier.treatment}' here ({carrier}); "
                              f"the strategy for them is '{want}'")

    for kind, carriers in by_kind.items():
        masked = next((c for c in carriers if c.treatment is not None), None)
        if masked is None:
            continue  # shown in full everywhere: consistent
        for c in carriers:
            if c.treatment != masked.treatment:
                finding(c.line, f"{KINDS[kind]} are {_how(c.treatment)} here ({c}) but {_how(masked.treatment)} "
                                f"at line {masked.line} ({masked}): within a task one kind of personal data gets "
                                "one treatment in every field and record column that carries it")
    return out


def _uncovered(agreements: Agreements, path: tuple[Field, ...] | tuple[()], task: Task, day: dt.date
               ) -> list[Field]:
    """The fields of `path` no agreement in force on `day` covers for the task, whoever the caller."""
    return [f for f in path if not any(a.in_force(day) for a in agreements.candidates(f, task.code))]


def _last_agreement(policies: Policies) -> list[Finding]:
    """A warning when the agreements directory holds one file: deleting it would turn enforcement off."""
    if policies.agreements is None or len(policies.agreements.by_id) != 1:
        return []
    [a] = policies.agreements.by_id.values()
    _data, lines = yamlfile.load(Path(a.source))
    return [Finding(a.source, yamlfile.line_of(lines, ("id",)), f"agreement {a.id} is the only agreement file: "
                    "deleting it would turn agreement enforcement off (every field of every task open to its roles); "
                    "revoke it with `revoked: DAY` instead", error=False)]


def _how(treatment: str | None) -> str:
    return "shown in full" if treatment is None else f"masked with '{treatment}'"


def _unshown(catalog: Catalog, policies: Policies) -> list[Finding]:
    """A warning for each catalog field (not link) no task's section shows, nor the service reads to find or
    place subjects (a subject type's region field, its search fields)."""
    shown = {tf.target.id for t in policies.tasks.values() for tf in t.fields.values()}
    used = set(shown)
    for st in catalog.subject_types.values():
        if st.region_field:
            used.add(st.region_field)
        if st.search:
            used.update(fid for group in st.search.by for fid in group)
            used.update(st.search.contains)
    data, lines = yamlfile.load(Path(catalog.source))
    out = []
    for i, entry in enumerate(data.get("fields") or []):
        fid = entry.get("id") if isinstance(entry, dict) else None
        if fid in catalog.fields and fid not in used:
            out.append(Finding(catalog.source, yamlfile.line_of(lines, ("fields", i)),
                               f"field {fid}: no task's section shows it (add it to a task, or retire it)",
                               error=False))
    return out
