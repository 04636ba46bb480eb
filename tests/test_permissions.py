"""One permission check: which role may do which admin or audit action is data (roles.yaml), and every path asks
permissions.py; using a task stays the task's own roles (invariant 1 for the task as a whole).

Invariant 8 on the permissions table: a bad entry is refused with file, line and reason, and a reload keeps the
running table.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, Api, token_with
from oneScreen import catalog as catalog_mod, policy as policy_mod
from oneScreen.errors import AdminForbidden, ConfigErrors
from oneScreen.identity import _demo_subject
from oneScreen.permissions import ACTIONS, TASK_USE
from oneScreen.policy import Caller
from test_catalog import run_cli
from test_screen import citizens

SHIPPED = policy_mod.load(ROOT / "policies", catalog_mod.load(ROOT / "field_catalog.yaml"))
HISTORY = "query($s: ID!) { accessHistory(subject: $s) { entries { task } } }"
# every admin operation of the API, with the action roles.yaml must grant for it
ADMIN_OPS = [
    ("catalog.read", "{ catalog { ledgers { id } } }", {}),
    ("catalog.introspect", '{ ledgerColumns(ledger: "mois.resident") { name } }', {}),
    ("catalog.propose", 'mutation { retireField(id: "citizen.sex") { id } }', {}),
    ("catalog.propose", """mutation($i: FieldMappingInput!) { proposeFieldMapping(input: $i) { id } }""",
     {"i": {"id": "citizen.email", "ledger": "mois.resident", "column": "email", "type": "string", "label": "전자우편",
            "labelEn": "E-mail", "sensitivity": "personal"}}),
    ("task.propose", 'mutation { proposeTask(code: "move_in_report", yaml: "code: x") { id } }', {}),
    ("task.propose", '{ previewTask(code: "move_in_report", yaml: "code: x") { ledgers } }', {}),
    ("changes.read", "{ changes { id } }", {}),
    ("catalog.approve|task.approve", 'mutation { approveChange(id: "1") { id } }', {}),
    ("catalog.approve|task.approve", 'mutation { rejectChange(id: "1") { id } }', {}),
    ("catalog.propose|task.propose", 'mutation { restoreVersion(change: "1") { id } }', {}),
]


def caller(*roles: str, subject: str | None = None) -> Caller:
    return Caller("someone", "someone", "org", "national", frozenset(roles), subject)


def roles_yaml(policies: Path, permissions: str) -> Path:
    """Replace the `permissions:` section of a copy of roles.yaml (the roles stay as shipped)."""
    path = policies / "roles.yaml"
    head = path.read_text(encoding="utf-8").split("\npermissions:", 1)[0]
    path.write_text(head + "\npermissions:\n" + permissions, encoding="utf-8")
    return path


@pytest.fixture
async def config_api(make_app, data_dir, catalog_copy):
    """The app on a writable copy of the configuration (catalog_copy), and a client of it."""
    app = make_app(ONESCREEN_CATALOG=str(catalog_copy / "field_catalog.yaml"),
                   ONESCREEN_POLICIES=str(catalog_copy / "policies"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield Api(client, data_dir, app)
    await app.state.runtime.close()


# ---------------------------------------------------------------- a role not in the table is refused


@pytest.mark.parametrize("action", list(ACTIONS))
def test_a_role_the_table_does_not_name_is_refused_each_admin_and_audit_action(action):
    perms = SHIPPED.permissions
    granted = perms.roles_for(action)
    others = set(SHIPPED.roles) - granted
    assert granted and others  # the shipped table grants every action to some roles, and not to all
    outsider = caller(*others, "no_such_role")
    assert not perms.allowed(outsider, action)
    with pytest.raises(AdminForbidden) as refused:
        perms.require(outsider, action, what="do it")
    assert refused.value.code == "ADMIN_FORBIDDEN"
    assert refused.value.message == f"you may not do it: it needs one of the roles {', '.join(sorted(granted))}"
    for role in granted:
        assert perms.allowed(caller(role), action)


async def test_an_auditor_gets_no_admin_operation_and_an_admin_no_access_history(api, data_dir):
    subject = citizens(data_dir, 1)[0]
    for user in ("yoon.gamsa", "kim.jumin"):
        for action, query, variables in ADMIN_OPS:
            _, body = await api.gql(user, query, variables)
            assert body["errors"][0]["extensions"]["code"] == "ADMIN_FORBIDDEN", (user, query, body)
            assert "catalog_admin" in body["errors"][0]["message"], body  # names the roles that would do
    stranger = token_with(data_dir, "stranger", ["no_such_role", "catalog_admin", "task_configurer"])
    _, body = await api.gql(None, HISTORY, {"s": subject}, token=stranger)
    assert body["errors"][0]["extensions"]["code"] == "TASK_FORBIDDEN"
    assert body["errors"][0]["message"] == "access history is for auditors, and for citizens about themselves"


async def test_me_lists_the_actions_the_callers_roles_are_granted(api):
    expected = {"yoon.gamsa": ["access_history.read", "receipt.release"], "kim.jumin": [], "demo.citizen": [],
                "oh.samu": ["catalog.read", "task.propose", "task.approve", "changes.read"],
                "han.catalog": ["catalog.read", "catalog.introspect", "catalog.propose", "catalog.approve",
                                "task.propose", "task.approve", "changes.read"]}
    for user, actions in expected.items():
        _, body = await api.gql(user, "{ me { actions } }")
        assert body["data"]["me"]["actions"] == actions, user


def test_using_a_task_is_granted_by_the_tasks_own_roles_through_the_same_check():
    perms = SHIPPED.permissions
    task = SHIPPED.tasks["move_in_report"]
    assert perms.allowed(caller("resident_registration_officer"), TASK_USE, task)
    assert not perms.allowed(caller("catalog_admin", "task_configurer", "auditor"), TASK_USE, task)
    assert [t.code for t in SHIPPED.tasks_for(caller("resident_registration_officer"))] == [
        t.code for t in SHIPPED.tasks.values() if "resident_registration_officer" in t.roles]
    with pytest.raises(ValueError):  # an action nobody defined is a bug, never a yes or a no
        perms.allowed(caller("catalog_admin"), "catalog.delete")


# ---------------------------------------------------------------- the table in roles.yaml decides


async def test_the_table_in_roles_yaml_decides_who_may_and_a_reload_applies_it(config_api, catalog_copy, data_dir):
    api = config_api
    me = _demo_subject(data_dir)  # the demo citizen's own key
    _, body = await api.gql("yoon.gamsa", "{ catalog { ledgers { id } } }")
    assert body["errors"][0]["extensions"]["code"] == "ADMIN_FORBIDDEN"
    _, body = await api.gql("yoon.gamsa", HISTORY, {"s": me})
    assert "errors" not in body

    # auditors may now browse the catalog and the changes; the access history moves to welfare officers
    roles_yaml(catalog_copy / "policies", "  catalog.read: [catalog_admin, task_configurer, auditor]\n"
                                          "  changes.read: [auditor]\n"
                                          "  access_history.read: [welfare_officer]\n")
    api.app.state.runtime.reload()

    _, body = await api.gql("yoon.gamsa", "{ catalog { ledgers { id } roles { id actions } } }")
    assert "errors" not in body and body["data"]["catalog"]["ledgers"]
    roles = {r["id"]: r["actions"] for r in body["data"]["catalog"]["roles"]}
    assert roles["auditor"] == ["catalog.read", "changes.read"] and roles["welfare_officer"] == ["access_history.read"]
    _, body = await api.gql("yoon.gamsa", "{ changes { id } }")
    assert body["data"] == {"changes": []}
    _, body = await api.gql("yoon.gamsa", '{ ledgerColumns(ledger: "mois.resident") { name } }')
    assert body["errors"][0]["extensions"]["code"] == "ADMIN_FORBIDDEN"
    _, body = await api.gql("yoon.gamsa", HISTORY, {"s": me})
    assert body["errors"][0]["extensions"]["code"] == "TASK_FORBIDDEN"
    _, body = await api.gql("lee.bokji", HISTORY, {"s": me})
    assert "errors" not in body
    _, body = await api.gql("demo.citizen", HISTORY, {"s": me})  # a citizen's own history needs no table entry
    assert "errors" not in body
    # task changes are granted to no role now: refused, and the message says so
    _, body = await api.gql("oh.samu", 'mutation { proposeTask(code: "move_in_report", yaml: "code: x") { id } }')
    assert body["errors"][0]["extensions"]["code"] == "ADMIN_FORBIDDEN"
    assert body["errors"][0]["message"] == "you may not edit tasks: no role is granted it (permissions in roles.yaml)"
    _, body = await api.gql("oh.samu", "{ me { actions } }")
    assert body["data"]["me"]["actions"] == ["catalog.read"]


def test_a_roles_yaml_without_permissions_grants_no_admin_or_audit_action(catalog_copy):
    path = catalog_copy / "policies" / "roles.yaml"
    path.write_text(path.read_text(encoding="utf-8").split("\npermissions:", 1)[0] + "\n", encoding="utf-8")
    pol = policy_mod.load(catalog_copy / "policies", catalog_mod.load(catalog_copy / "field_catalog.yaml"))
    everyone = caller(*pol.roles)
    assert [a for a in ACTIONS if pol.permissions.allowed(everyone, a)] == []
    assert pol.tasks_for(caller("welfare_officer"))  # tasks are granted by their own roles, as before


# ---------------------------------------------------------------- a bad entry is refused at load


def test_an_invalid_permissions_entry_is_refused_with_file_and_line(catalog_copy, data_dir):
    path = roles_yaml(catalog_copy / "policies", "  catalog.read: [catalog_admin, task_configurer]\n"
                                                 "  catalog.delete: [catalog_admin]\n"
                                                 "  catalog.approve: [catalog_admin, catalog_admn]\n"
                                                 "  task.use: [welfare_officer]\n"
                                                 "  changes.read: [auditor, auditor]\n")
    lines = path.read_text(encoding="utf-8").splitlines()
    line = {key: next(i for i, text in enumerate(lines, 1) if text.startswith(f"  {key}:"))
            for key in ("catalog.delete", "catalog.approve", "task.use", "changes.read")}
    with pytest.raises(ConfigErrors) as refused:
        policy_mod.load(catalog_copy / "policies", catalog_mod.load(catalog_copy / "field_catalog.yaml"))
    messages = [e.message for e in refused.value.errors]
    assert messages == [
        f"{path}:{line['catalog.delete']}: permissions: unknown action 'catalog.delete'; the actions are "
        + ", ".join(ACTIONS),
        f"{path}:{line['catalog.approve']}: permissions.catalog.approve: unknown role 'catalog_admn' "
        "(not defined under roles)",
        f"{path}:{line['task.use']}: permissions: task.use is granted by each task's own `roles` "
        "(policies/tasks/*.yaml), not here",
        f"{path}:{line['changes.read']}: permissions.changes.read: role 'auditor' is listed twice",
    ]
    result = run_cli("policy", "validate", str(catalog_copy / "policies"),
                     env_extra={"ONESCREEN_DATA_DIR": str(data_dir),
                                "ONESCREEN_CATALOG": str(catalog_copy / "field_catalog.yaml"),
                                "ONESCREEN_POLICIES": str(catalog_copy / "policies")})
    assert result.returncode == 1 and f"{path}:{line['catalog.approve']}: " in result.stderr


async def test_a_reload_with_a_bad_permissions_entry_keeps_the_running_table(config_api, catalog_copy):
    api = config_api
    roles_yaml(catalog_copy / "policies", "  catalog.read: [catalog_admin, nobody]\n")
    with pytest.raises(ConfigErrors):
        api.app.state.runtime.reload()
    _, body = await api.gql("oh.samu", "{ catalog { ledgers { id } } }")
    assert "errors" not in body  # still the shipped table


# ---------------------------------------------------------------- nothing else compares role names


def _role_checks(tree: ast.AST) -> list[int]:
    """Lines that intersect role sets (`a.roles & b.roles`), or where a role set decides a condition
    (`x in caller.roles`, `roles.isdisjoint(...)`, ...) in an if, a boolean operator or a comprehension's filter."""
    def asks_roles(node: ast.AST) -> bool:
        for n in ast.walk(node):
            if isinstance(n, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in n.ops) \
                    and any(isinstance(c, ast.Attribute) and c.attr == "roles" for c in n.comparators):
                return True
            if isinstance(n, ast.BinOp) and isinstance(n.op, (ast.BitAnd, ast.Sub)) \
                    and any(isinstance(s, ast.Attribute) and s.attr == "roles" for s in (n.left, n.right)):
                return True
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) \
                    and n.func.attr in ("isdisjoint", "issubset", "issuperset", "intersection") \
                    and isinstance(n.func.value, ast.Attribute) and n.func.value.attr == "roles":
                return True
        return False

    conditions: list[ast.AST] = []
    for n in ast.walk(tree):
        if isinstance(n, (ast.If, ast.While, ast.IfExp, ast.Assert)):
            conditions.append(n.test)
        elif isinstance(n, ast.comprehension):
            conditions.extend(n.ifs)
        elif isinstance(n, ast.BoolOp):
            conditions.extend(n.values)
        elif isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not):
            conditions.append(n.operand)
    intersections = [n for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitAnd)
                     and any(isinstance(s, ast.Attribute) and s.attr == "roles" for s in (n.left, n.right))]
    return sorted({c.lineno for c in conditions if asks_roles(c)} | {n.lineno for n in intersections})


def test_no_module_outside_permissions_compares_role_names():
    """Every "may this caller" question goes through permissions.py: no other module names an admin or audit
    role, keeps a set of them, or decides a condition on the caller's roles (the old CATALOG_ROLES and
    TASK_ROLES of changes.py, the "auditor" of graphql/schema.py, the role checks of policy.py and cli.py)."""
    table_roles = set().union(*SHIPPED.permissions.grants.values())
    assert {"catalog_admin", "task_configurer", "auditor"} <= table_roles
    found = []
    for path in sorted((ROOT / "oneScreen").rglob("*.py")):
        if path.name == "permissions.py" and path.parent.name == "oneScreen":
            continue
        where = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for n in ast.walk(tree):
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in table_roles:
                found.append(f"{where}:{n.lineno}: names the role {n.value!r}")
            if isinstance(n, ast.Name) and n.id in ("CATALOG_ROLES", "TASK_ROLES"):
                found.append(f"{where}:{n.lineno}: {n.id}")
        found += [f"{where}:{line}: decides on the caller's roles" for line in _role_checks(tree)]
    for path in sorted((ROOT / "frontend").glob("*.js")):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"""["'`](%s)["'`]|\b(CATALOG_ROLES|TASK_ROLES)\b""" % "|".join(table_roles), text):
            found.append(f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}")
    assert found == []
