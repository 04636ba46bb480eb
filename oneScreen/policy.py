"""Policy as data: roles, tasks (legal basis, roles, ordered field sets) and decide().

Owns invariant 1 (deny by default): a field path the task's set does not name
is DENIED, whatever the query asks for. Every data path in the service asks
`decide()`; nothing else grants access.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from pydantic import BaseModel, ConfigDict, Field as PField

from . import yamlfile
from .catalog import Catalog, Field, parse_path, path_id
from .errors import ConfigError, ConfigErrors, TaskForbidden


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleSpec(_Model):
    id: str = PField(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    label_en: str


class RolesFile(_Model):
    roles: list[RoleSpec]


class FieldRuleSpec(_Model):
    field: str = PField(description="field path, e.g. citizen.residence > building.main_purpose")


class SectionSpec(_Model):
    title: str
    title_en: str
    fields: list[str | FieldRuleSpec] = PField(min_length=1)


class TaskFile(_Model):
    code: str = PField(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    name_en: str
    legal_basis: str
    legal_basis_en: str
    subject: str
    roles: list[str] = PField(min_length=1)
    sections: list[SectionSpec] = PField(min_length=1)


class Status(str, enum.Enum):
    OK = "OK"
    MASKED = "MASKED"
    DENIED = "DENIED"
    NOT_FOUND = "NOT_FOUND"
    UNAVAILABLE = "UNAVAILABLE"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"


@dataclass(frozen=True)
class Role:
    id: str
    label: str
    label_en: str


@dataclass(frozen=True)
class TaskField:
    path: tuple[Field, ...]
    id: str  # canonical path id, e.g. "citizen.residence>building.main_purpose"

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


@dataclass(frozen=True)
class Caller:
    user: str
    name: str
    org: str
    region: str
    roles: frozenset[str]


@dataclass(frozen=True)
class Decision:
    status: Status  # OK (allow) or DENIED for now; masking and consent come with the policy rules
    reason: str | None = None
    reason_en: str | None = None

    @property
    def allowed(self) -> bool:
        return self.status is Status.OK


@dataclass(frozen=True)
class Policies:
    roles: Mapping[str, Role]
    tasks: Mapping[str, Task]

    def tasks_for(self, caller: Caller) -> list[Task]:
        return [t for t in self.tasks.values() if t.roles & caller.roles]

    def task_for(self, caller: Caller, code: str) -> Task:
        """The task if the caller may perform it; TaskForbidden otherwise (unknown tasks look the same)."""
        task = self.tasks.get(code)
        if task is None or not task.roles & caller.roles:
            raise TaskForbidden(f"you may not perform task {code!r}: none of your roles is granted it")
        return task


def decide(caller: Caller, task: Task, field_path: str) -> Decision:
    """The decision for one field path of one request. Deny by default."""
    if not task.roles & caller.roles:
        return Decision(Status.DENIED, f"사무 {task.name}을(를) 수행할 권한이 없습니다",
                        f"not permitted to perform task {task.name_en}")
    if field_path not in task.fields:
        return Decision(Status.DENIED, f"사무 {task.name}에 필요한 항목이 아닙니다",
                        f"not required by task {task.name_en}")
    return Decision(Status.OK)


def load(directory: Path, catalog: Catalog) -> Policies:
    """Load roles.yaml and tasks/*.yaml; every problem is reported with file and line."""
    directory = Path(directory)
    errors: list[ConfigError] = []
    roles_path = directory / "roles.yaml"
    roles: dict[str, Role] = {}
    try:
        data, lines = yamlfile.load(roles_path)
        spec = yamlfile.validate(RolesFile, data, lines, str(roles_path))
        for i, r in enumerate(spec.roles):
            if r.id in roles:
                errors.append(ConfigError(str(roles_path), yamlfile.line_of(lines, ("roles", i, "id")),
                                          f"duplicate role {r.id!r}"))
            roles[r.id] = Role(r.id, r.label, r.label_en)
    except ConfigError as exc:
        errors.append(exc)
    except ConfigErrors as exc:
        errors.extend(exc.errors)

    tasks: dict[str, Task] = {}
    task_files = sorted((directory / "tasks").glob("*.yaml"))
    if not task_files:
        errors.append(ConfigError(str(directory / "tasks"), None, "no task files (*.yaml) found"))
    for path in task_files:
        try:
            task = _load_task(path, catalog, roles)
        except ConfigError as exc:
            errors.append(exc)
            continue
        except ConfigErrors as exc:
            errors.extend(exc.errors)
            continue
        if task.code in tasks:
            errors.append(ConfigError(str(path), 1, f"task code {task.code!r} is already defined in {tasks[task.code].source}"))
        tasks[task.code] = task
    if errors:
        raise ConfigErrors(errors)
    return Policies(roles, tasks)


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
            text = entry if isinstance(entry, str) else entry.field
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
            tf = TaskField(path_fields, path_id(path_fields))
            if tf.id in all_fields:
                err(loc, f"field {tf.id!r} appears twice in the task")
                continue
            all_fields[tf.id] = tf
            fields.append(tf)
        sections.append(Section(sec.title, sec.title_en, tuple(fields)))
    if errors:
        raise ConfigErrors(errors)
    return Task(spec.code, spec.name, spec.name_en, spec.legal_basis, spec.legal_basis_en, spec.subject,
                frozenset(spec.roles), tuple(sections), all_fields, file)


def json_schemas() -> dict[str, dict]:
    return {"roles": RolesFile.model_json_schema(), "task": TaskFile.model_json_schema()}
