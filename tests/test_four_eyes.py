"""Four eyes as an admin meets it: approving one's own proposal is refused with a message that says so (and that
nothing was rejected); a second admin's approval keeps their comment, in the change and in its audit event; a
change store made before comments existed gains the column and keeps its changes."""
from __future__ import annotations

import json
import sqlite3

from test_admin import TASK, admin_api, task_with  # noqa: F401 - admin_api: the fixture

APPROVE = """mutation($id: ID!, $m: String) { approveChange(id: $id, comment: $m) { id status approver comment } }"""
CHANGES = """{ changes { id status comment } }"""


async def propose(api, catalog_copy) -> str:
    _, body = await api.gql("oh.samu", TASK, {"c": "move_in_report",
                                              "y": task_with(catalog_copy, "move_in_report", "citizen.vehicles")})
    proposal = body["data"]["proposeTask"]
    assert proposal["status"] == "pending", body
    return proposal["id"]


async def test_approving_ones_own_proposal_is_refused_as_four_eyes_and_nothing_is_rejected(admin_api, catalog_copy):
    api = await admin_api()
    pid = await propose(api, catalog_copy)
    _, body = await api.gql("oh.samu", APPROVE, {"id": pid, "m": "looks fine"})
    error = body["errors"][0]
    assert error["extensions"]["code"] == "CHANGE_REFUSED"
    assert error["message"] == (f"four eyes: you proposed change {pid}, and a change that widens access must be "
                                "approved by a different admin; nothing was changed (it is still pending)")
    _, body = await api.gql("oh.samu", CHANGES)
    assert {"id": pid, "status": "pending", "comment": None} in body["data"]["changes"]


async def test_a_second_admins_approval_keeps_its_comment(admin_api, catalog_copy, data_dir):
    api = await admin_api()
    pid = await propose(api, catalog_copy)
    _, body = await api.gql("kang.samu", APPROVE, {"id": pid, "m": "  전입신고 차량 확인 필요: 민원과 요청 2026-11  "})
    assert body["data"]["approveChange"] == {"id": pid, "status": "applied", "approver": "kang.samu",
                                             "comment": "전입신고 차량 확인 필요: 민원과 요청 2026-11"}
    _, body = await api.gql("kang.samu", CHANGES)
    assert {"id": pid, "status": "applied", "comment": "전입신고 차량 확인 필요: 민원과 요청 2026-11"} in body["data"]["changes"]
    audit = sqlite3.connect(data_dir / "audit.sqlite")
    details = [json.loads(r[0]) for r in audit.execute("SELECT detail FROM onescreen_audit WHERE kind = 'config_change'")]
    applied = [d for d in details if d["action"] == "applied" and str(d["change"]) == pid]
    assert applied and applied[0]["comment"] == "전입신고 차량 확인 필요: 민원과 요청 2026-11"

    _, body = await api.gql("kang.samu", APPROVE, {"id": "1", "m": "x" * 1001})
    assert body["errors"][0]["extensions"]["code"] == "CHANGE_INVALID"
    assert "comment: at most 1000 characters" in body["errors"][0]["message"]


async def test_a_change_store_from_before_comments_gains_the_column(data_dir):
    from oneScreen.changes import ChangeStore
    path = data_dir / "old-changes.sqlite"
    with sqlite3.connect(path) as conn:  # the table as it was made before approvals had a comment
        conn.execute("CREATE TABLE onescreen_change (id INTEGER PRIMARY KEY AUTOINCREMENT, kind VARCHAR(16) NOT NULL, "
                     "summary TEXT NOT NULL, proposer VARCHAR(128) NOT NULL, created_at VARCHAR(40) NOT NULL, "
                     "status VARCHAR(16) NOT NULL, files TEXT NOT NULL, diff TEXT NOT NULL, widening TEXT NOT NULL, "
                     "approver VARCHAR(128), decided_at VARCHAR(40))")
        conn.execute("INSERT INTO onescreen_change (kind, summary, proposer, created_at, status, files, diff, widening) "
                     "VALUES ('task', 'edit task x', 'oh.samu', '2026-01-01T00:00:00+00:00', 'pending', '[]', '', '[]')")
    store = ChangeStore(f"sqlite+aiosqlite:///{path}")
    try:
        await store.open()
        old = await store.get(1)
        assert old.summary == "edit task x" and old.comment is None
        decided = await store.decide(1, "applied", "kang.samu", "ok")
        assert decided.comment == "ok"
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert "comment" in [r[1] for r in conn.execute("PRAGMA table_info(onescreen_change)")]


class PodKilled(BaseException):
    """The process stops here: nothing after this point of the request runs (not an Exception: no handler)."""


async def test_an_approval_is_in_the_audit_trail_before_the_change_it_approves_takes_effect(
        admin_api, catalog_copy, data_dir):
    """The "applied" record is written after the change is active; a pod killed between the two (or an audit store
    that fails then) left a widening change in force with no record of who approved it. The approval's record is
    now durable before the change takes effect."""
    api = await admin_api()
    pid = await propose(api, catalog_copy)
    runtime = api.app.state.runtime
    real_reload = runtime.reload_async

    async def reload_then_die() -> None:
        await real_reload()
        raise PodKilled()

    runtime.reload_async = reload_then_die
    try:
        await api.gql("kang.samu", APPROVE, {"id": pid, "m": "차량 확인"})
        raise AssertionError("the request went on after the pod was killed")
    except PodKilled:
        pass
    task = runtime.snapshot.policies.tasks["move_in_report"]
    assert "citizen.vehicles" in task.fields  # the widening change is in force
    audit = sqlite3.connect(data_dir / "audit.sqlite")
    rows = [(r[0], json.loads(r[1])) for r in audit.execute(
        "SELECT user_id, detail FROM onescreen_audit WHERE kind = 'config_change'")]
    mine = [(user, d) for user, d in rows if str(d["change"]) == pid]
    assert [d["action"] for _, d in mine] == ["proposed", "approved"], mine
    user, approved = mine[1]
    assert user == "kang.samu" and approved["approver"] == "kang.samu" and approved["comment"] == "차량 확인"
    assert approved["proposer"] == "oh.samu" and "citizen.vehicles" in approved["diff"]
