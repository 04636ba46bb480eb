"""Catalog-wide reports for auditors and task configurers, computed from one configuration (catalog + policies).

The field x task matrix (what each task grants of each field: allow, mask with its strategy, consent, or
nothing), fields no task uses, fields shown in full without a legal basis of their own, roles no task names,
who can see a field in full, and the task-by-task diff of two configurations (a change's, or two versions').
Read-only over the snapshot's data: no report reads a ledger, so no value can reach one.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from .catalog import Catalog, Field
from .lint import NEEDS_OWN_BASIS
from .policy import Policies, Task, TaskField

NOT_GRANTED = "-"


def mask_text(mask: str | Mapping[str, str] | None) -> str:
    """A mask as the reports and the task spreadsheet write it: `name`, or `name=name, rrn=rrn` for a record."""
    if mask is None:
        return ""
    if isinstance(mask, str):
        return mask
    return ", ".join(f"{k}={v}" for k, v in mask.items())


def grant(tf: TaskField) -> str:
    """What a task field grants: allow, mask:STRATEGY, consent, consent+mask:STRATEGY."""
    masked = tf.mask is not None and tf.full_value_basis is None
    shown = f"mask:{mask_text(tf.mask)}" if masked else "allow"
    if tf.consent:
        return "consent" if not masked else f"consent+{shown}"
    return shown


def _rank(status: str) -> int:
    """Which of two grants of one field in one task (two paths reach it) says more: the wider one is shown."""
    return {"allow": 3}.get(status, 2 if status.startswith("mask") else 1)


@dataclass(frozen=True)
class Matrix:
    tasks: tuple[str, ...]  # task codes, the columns
    rows: tuple[tuple[Field, tuple[str, ...]], ...]  # (field, one status per task)

    def csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["field", "label", "agency", "ledger", "sensitivity", *self.tasks])
        for f, cells in self.rows:
            w.writerow([f.id, f.label, f.ledger.agency.id, f.ledger.id, f.sensitivity, *cells])
        return out.getvalue()


def matrix(cat: Catalog, pol: Policies, *, sensitivity: Iterable[str] = (), agency: Iterable[str] = (),
           tasks: Iterable[str] | None = None, text: str = "", used_only: bool = False) -> Matrix:
    """Every catalog field (links left out) by every task (or `tasks`), filtered to the given sensitivities and
    agencies, to fields whose id or label contains `text`, and with `used_only` to fields one of the tasks uses."""
    sens, agencies, text = set(sensitivity), set(agency), text.strip().lower()
    codes = tuple(sorted(pol.tasks if tasks is None else (c for c in set(tasks) if c in pol.tasks)))
    grants: dict[str, dict[str, str]] = {}  # field id -> task code -> status
    for code in codes:
        for tf in pol.tasks[code].fields.values():
            cell = grants.setdefault(tf.target.id, {})
            status = grant(tf)
            if code not in cell or _rank(status) > _rank(cell[code]):
                cell[code] = status
    rows = []
    for f in sorted(cat.fields.values(), key=lambda f: f.id):
        if f.is_link or (sens and f.sensitivity not in sens) or (agencies and f.ledger.agency.id not in agencies):
            continue
        if text and text not in f.id.lower() and text not in f.label.lower():
            continue
        g = grants.get(f.id, {})
        if used_only and not g:
            continue
        rows.append((f, tuple(g.get(c, NOT_GRANTED) for c in codes)))
    return Matrix(codes, tuple(rows))


def unused_fields(cat: Catalog, pol: Policies) -> list[Field]:
    """Catalog fields and links no task's field path passes through."""
    used = {f.id for t in pol.tasks.values() for tf in t.fields.values() for f in tf.path}
    return [f for f in sorted(cat.fields.values(), key=lambda f: f.id) if f.id not in used]


def without_basis(pol: Policies) -> list[tuple[Task, TaskField, str]]:
    """(task, field, why) for each field shown without a legal basis: the task names none, or a sensitive or
    unique-id field is shown in full with no basis of its own (full_value_basis), no mask and no consent."""
    out = []
    for code in sorted(pol.tasks):
        t = pol.tasks[code]
        for tf in t.fields.values():
            if not t.legal_basis.strip():
                out.append((t, tf, "the task names no legal basis"))
            elif (tf.target.sensitivity in NEEDS_OWN_BASIS and not tf.consent and not tf.full_value_basis
                  and tf.mask is None):
                out.append((t, tf, f"{tf.target.sensitivity} field shown in full without a basis of its own"))
    return out


def idle_roles(pol: Policies) -> list[tuple[str, str, list[str]]]:
    """(role id, label, the admin actions it holds) for each role no task names."""
    used = {r for t in pol.tasks.values() for r in t.roles}
    actions: dict[str, list[str]] = {}
    for action, roles in pol.permissions.grants.items():
        for r in roles:
            actions.setdefault(r, []).append(action)
    return [(r.id, r.label, sorted(actions.get(r.id, []))) for r in sorted(pol.roles.values(), key=lambda r: r.id)
            if r.id not in used]


@dataclass(frozen=True)
class FullView:
    task: str
    path: str  # the task's field path that reaches the field
    roles: tuple[str, ...]
    consent: bool
    basis: str  # the full-value basis, else the task's legal basis


def who_sees_in_full(pol: Policies, field_id: str) -> list[FullView]:
    """The tasks that disclose `field_id` unmasked (by any path), with the roles that perform them."""
    out = []
    for code in sorted(pol.tasks):
        t = pol.tasks[code]
        for tf in t.fields.values():
            if tf.target.id == field_id and (tf.mask is None or tf.full_value_basis):
                out.append(FullView(code, tf.id, tuple(sorted(t.roles)), tf.consent,
                                    tf.full_value_basis or t.legal_basis))
    return out


def users_with(roles: Iterable[str], users: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """The users (id, roles) holding any of `roles`."""
    wanted = set(roles)
    return sorted(u for u, rs in users if wanted & set(rs))


# ---------------------------------------------------------------- the diff of two configurations, task by task


@dataclass(frozen=True)
class TaskChange:
    code: str
    kind: str  # added | removed | changed
    lines: tuple[str, ...]  # what changed, one line each; "widens:" lines disclose more than before

    def text(self) -> str:
        head = {"added": "new task", "removed": "removed task", "changed": "task"}[self.kind]
        return "\n".join([f"{head} {self.code}", *(f"  {line}" for line in self.lines)])


def _layout(t: Task) -> tuple:
    return tuple((s.title, s.title_en, tuple(tf.id for tf in s.fields)) for s in t.sections)


def same_task(a: Task, b: Task) -> bool:
    """Whether two tasks are the same definition (what they disclose, to whom, why and how it is laid out)."""
    def norm(t: Task) -> tuple:
        return (t.name, t.name_en, t.legal_basis, t.legal_basis_en, t.subject, t.roles, t.jurisdiction,
                t.case_ref_example, t.subjects_per_request, _layout(t),
                tuple(sorted((k, mask_text(v.mask), v.full_value_basis, v.consent) for k, v in t.fields.items())))
    return norm(a) == norm(b)


def task_diff(old: Policies, new: Policies, codes: Iterable[str] | None = None) -> list[TaskChange]:
    """Per task (all, or `codes`): fields added and removed, newly disclosed in full, widened or changed masks,
    consent dropped, roles, legal basis, jurisdiction and layout. Tasks that are the same are left out."""
    out = []
    for code in sorted(set(codes) if codes is not None else set(old.tasks) | set(new.tasks)):
        a, b = old.tasks.get(code), new.tasks.get(code)
        if a is None and b is None:
            continue
        if a is None:
            lines = [f"roles: {', '.join(sorted(b.roles))}", f"legal basis: {b.legal_basis}"]
            lines += [f"+ {tf.id} ({grant(tf)})" for tf in b.fields.values()]
            out.append(TaskChange(code, "added", tuple(lines)))
            continue
        if b is None:
            out.append(TaskChange(code, "removed", tuple(f"- {tf.id}" for tf in a.fields.values())))
            continue
        if same_task(a, b):
            continue
        lines = []
        for r in sorted(b.roles - a.roles):
            lines.append(f"widens: role {r} may now perform it")
        for r in sorted(a.roles - b.roles):
            lines.append(f"role {r} may no longer perform it")
        for fid, tf in b.fields.items():
            if fid not in a.fields:
                lines.append(f"+ {fid} ({grant(tf)})")
        for fid in a.fields:
            if fid not in b.fields:
                lines.append(f"- {fid}")
        for fid, tf in b.fields.items():
            o = a.fields.get(fid)
            if o is None:
                continue
            was = o.mask is not None and o.full_value_basis is None
            now = tf.mask is not None and tf.full_value_basis is None
            if was and not now:
                lines.append(f"widens: {fid} newly disclosed in full ({tf.full_value_basis or 'no mask'})")
            elif was and now and mask_text(o.mask) != mask_text(tf.mask):
                lines.append(f"widens: {fid} mask {mask_text(o.mask)} -> {mask_text(tf.mask)}")
            elif not was and now:
                lines.append(f"{fid} now masked ({mask_text(tf.mask)})")
            elif not was and not now and o.full_value_basis != tf.full_value_basis:
                lines.append(f"{fid} full-value basis: {o.full_value_basis or '-'} -> {tf.full_value_basis or '-'}")
            if o.consent and not tf.consent:
                lines.append(f"widens: {fid} no longer needs consent")
            elif tf.consent and not o.consent:
                lines.append(f"{fid} now needs consent")
        if a.legal_basis != b.legal_basis or a.legal_basis_en != b.legal_basis_en:
            lines.append(f"legal basis: {a.legal_basis} -> {b.legal_basis}")
        if a.jurisdiction != b.jurisdiction:
            widens = "widens: " if a.jurisdiction == "own_region" else ""
            lines.append(f"{widens}jurisdiction: {a.jurisdiction} -> {b.jurisdiction}")
        if (a.name, a.name_en) != (b.name, b.name_en):
            lines.append(f"name: {a.name} -> {b.name}")
        if a.subjects_per_request != b.subjects_per_request:
            lines.append(f"subjects per request: {a.subjects_per_request} -> {b.subjects_per_request}")
        if a.case_ref_example != b.case_ref_example:
            lines.append(f"case reference example: {a.case_ref_example or '-'} -> {b.case_ref_example or '-'}")
        if _layout(a) != _layout(b) and set(a.fields) == set(b.fields):
            lines.append("sections re-ordered or re-titled")
        out.append(TaskChange(code, "changed", tuple(lines or ["sections re-ordered or re-titled"])))
    return out


def field_diff(old: Catalog, new: Catalog) -> list[str]:
    """The catalog's fields added, removed or changed (sensitivity, default mask, ledger) between two versions."""
    out = [f"+ field {fid}" for fid in sorted(set(new.fields) - set(old.fields))]
    out += [f"- field {fid}" for fid in sorted(set(old.fields) - set(new.fields))]
    for fid in sorted(set(old.fields) & set(new.fields)):
        a, b = old.fields[fid], new.fields[fid]
        if a.sensitivity != b.sensitivity:
            out.append(f"field {fid} sensitivity: {a.sensitivity} -> {b.sensitivity}")
        if mask_text(a.mask) != mask_text(b.mask):
            out.append(f"field {fid} default mask: {mask_text(a.mask)} -> {mask_text(b.mask)}")
        if a.ledger.id != b.ledger.id:
            out.append(f"field {fid} ledger: {a.ledger.id} -> {b.ledger.id}")
    return out


def version_diff(old_files: Mapping[str, str], new_files: Mapping[str, str],
                 running: tuple[Mapping[str, str], Catalog, Policies] | None = None
                 ) -> tuple[list[str], list[TaskChange]]:
    """The diff of two configuration versions ({path: text}): the catalog's fields, then task by task. The one
    diff `catalog report diff A B` prints and the admin pages' version comparison shows. A version that is
    `running` (its files, catalog, policies) is not loaded again, nor a catalog both versions share (at 25,000
    fields loading one takes seconds)."""
    from .configstore import CATALOG

    def load(files: Mapping[str, str], cat: Catalog | None) -> tuple[Catalog, Policies]:
        if running is not None and dict(files) == dict(running[0]):
            return running[1], running[2]
        return load_files(files, cat)

    shared = None
    if old_files.get(CATALOG) == new_files.get(CATALOG):
        if running is not None and running[0].get(CATALOG) == old_files.get(CATALOG):
            shared = running[1]
    old_cat, old = load(old_files, shared)
    if shared is None and old_files.get(CATALOG) == new_files.get(CATALOG):
        shared = old_cat
    new_cat, new = load(new_files, shared)
    return field_diff(old_cat, new_cat), task_diff(old, new)


def rows_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if v is None else v for v in r])
    return out.getvalue()


def load_files(files: Mapping[str, str], cat: Catalog | None = None) -> tuple[Catalog, Policies]:
    """Load a configuration given as {path: text} (a version's layout) through the loaders (the policies only,
    over `cat`, when its catalog is given: the one the files hold)."""
    import tempfile
    from pathlib import Path

    from . import catalog as catalog_mod, configstore, policy as policy_mod

    with tempfile.TemporaryDirectory(prefix="onescreen-report-") as tmp:
        cat_path, pol_dir = configstore.write_tree(files, Path(tmp) / "config")
        if cat is None:
            cat = catalog_mod.load(cat_path)
        return cat, policy_mod.load(pol_dir, cat)
