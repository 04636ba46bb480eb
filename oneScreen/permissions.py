"""Who may do what: the one check every "may this caller do this" question goes through.

`Permissions.allowed(caller, action, resource)` answers for the admin pages, change control, the access
history and the use of a task; `require` refuses with ADMIN_FORBIDDEN naming the roles that would do. Which
role may do which admin or audit action is data: the `permissions` section of roles.yaml, validated at load
(an unknown action or role is FILE:LINE: reason). Using a task (`task.use`, the task as resource) is granted
by the task's own `roles`, the rule policy.decide applies to each of its fields. Deny by default: an action no
entry grants is refused, and an action this module does not know is a programming error, never an answer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Collection, Mapping

from . import yamlfile
from .errors import AdminForbidden, ConfigError

if TYPE_CHECKING:
    from .policy import Caller, Task

TASK_USE = "task.use"  # resource: the task; granted by its `roles` (policies/tasks/*.yaml), never by the table
ACCESS_HISTORY_READ = "access_history.read"  # resource: the citizen's key; a citizen always reads their own

# The actions roles.yaml's `permissions` grants to roles, and what each lets a role do.
ACTIONS: Mapping[str, str] = {
    "catalog.read": "browse the running catalog, roles and task definitions (the admin pages)",
    "catalog.introspect": "read the live columns of a ledger",
    "catalog.propose": "propose mapping, re-mapping or retiring a catalog field, or restoring a catalog version",
    "catalog.approve": "approve or reject another admin's proposed catalog change",
    "task.propose": "propose creating or editing a task (and preview a draft), or restoring a task version",
    "task.approve": "approve or reject another admin's proposed task change",
    "changes.read": "list the configuration changes and read their diffs",
    ACCESS_HISTORY_READ: "read any citizen's access history (a citizen signed in as themselves reads their own)",
    "agreement.read": "read the provider page of the caller's own agency (who reads its fields, its agreements)",
    "agreement.propose": "propose, narrow or revoke a sharing agreement for the caller's own side of it",
    "agreement.approve": "sign (approve) another admin's sharing agreement for the caller's own side of it",
    "receipt.release": "release a sealed receipt of a task with deferred disclosure before its date (audited)",
}


def belongs(org: str, name: str) -> bool:
    """Whether organisation `org` is `name` or one of its parts ("국토교통부 건축정책과" belongs to "국토교통부")."""
    return bool(org) and bool(name) and (org == name or org.startswith(name + " "))


def uses_agreement(caller: "Caller", organisations: Collection[str], roles: Collection[str]) -> bool:
    """The using side of a sharing agreement (agreements.py): the caller's organisation, or one of their roles,
    is named. policy.decide applies it to every field of a task once agreements are enforced."""
    return any(belongs(caller.org, o) for o in organisations) or not caller.roles.isdisjoint(roles)


def uses_task(caller: "Caller", task: "Task") -> bool:
    """The rule of `task.use`: one of the caller's roles is among the task's `roles`.

    policy.decide applies it to every field (first, before any other rule); everything else asks
    `Permissions.allowed(caller, TASK_USE, task)`."""
    return not caller.roles.isdisjoint(task.roles)


@dataclass(frozen=True)
class Permissions:
    """The permissions of one configuration snapshot (roles.yaml's `permissions` section)."""

    grants: Mapping[str, frozenset[str]] = field(default_factory=dict)  # action -> roles; absent: no role

    def allowed(self, caller: "Caller", action: str, resource: Any = None) -> bool:
        """Whether `caller` may do `action` (on `resource`, where the action has one)."""
        if action == TASK_USE:
            return resource is not None and uses_task(caller, resource)
        if not caller.roles.isdisjoint(self.roles_for(action)):
            return True
        if action == ACCESS_HISTORY_READ:  # their own history: the key they signed in as, never a role
            return resource is not None and caller.subject is not None and caller.subject == resource
        return False

    def require(self, caller: "Caller", action: str | tuple[str, ...], resource: Any = None, *, what: str) -> None:
        """AdminForbidden unless the caller may do `action` (a tuple: any one of them). `what` completes
        "you may not ..."; the message names the roles the table grants it to (never the resource)."""
        actions = (action,) if isinstance(action, str) else action
        if any(self.allowed(caller, a, resource) for a in actions):
            return
        roles = sorted(set().union(*(self.roles_for(a) for a in actions)))
        if roles:
            raise AdminForbidden(f"you may not {what}: it needs one of the roles {', '.join(roles)}")
        raise AdminForbidden(f"you may not {what}: no role is granted it (permissions in roles.yaml)")

    def roles_for(self, action: str) -> frozenset[str]:
        """The roles the table grants `action` to."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
        return self.grants.get(action, frozenset())

    def granting(self, caller: "Caller", action: str | tuple[str, ...], resource: Any = None) -> tuple[str, ...]:
        """The caller's roles that grant `action` (a tuple: any one of them), sorted: the role an audit record
        says the caller acted in."""
        actions = (action,) if isinstance(action, str) else action
        granted: set[str] = set()
        for a in actions:
            granted |= resource.roles if a == TASK_USE else self.roles_for(a)
        return tuple(sorted(caller.roles & granted))

    def actions_for(self, caller: "Caller") -> list[str]:
        """The table's actions the caller's roles grant (what their screens may offer them)."""
        return [a for a in ACTIONS if not caller.roles.isdisjoint(self.grants.get(a, ()))]

    def granted_to(self, role: str) -> list[str]:
        """The table's actions granted to `role`."""
        return [a for a in ACTIONS if role in self.grants.get(a, ())]


def load(section: Mapping[str, list[str]], roles: Collection[str], file: str, lines: yamlfile.Lines
         ) -> tuple[Permissions, list[ConfigError]]:
    """The `permissions` section of roles.yaml (action -> roles), checked against the known actions and the
    roles the file defines (`roles` empty: they failed to load, and are reported already)."""
    errors: list[ConfigError] = []
    grants: dict[str, frozenset[str]] = {}

    def err(loc: tuple, reason: str) -> None:
        errors.append(ConfigError(file, yamlfile.line_of(lines, ("permissions",) + loc), reason))

    for action, granted in section.items():
        if action == TASK_USE:
            err((action,), f"permissions: {TASK_USE} is granted by each task's own `roles` (policies/tasks/*.yaml), "
                           "not here")
            continue
        if action not in ACTIONS:
            err((action,), f"permissions: unknown action {action!r}; the actions are {', '.join(ACTIONS)}")
            continue
        seen: set[str] = set()
        for i, role in enumerate(granted):
            if roles and role not in roles:
                err((action, i), f"permissions.{action}: unknown role {role!r} (not defined under roles)")
            elif role in seen:
                err((action, i), f"permissions.{action}: role {role!r} is listed twice")
            seen.add(role)
        grants[action] = frozenset(seen)
    return Permissions(grants), errors
