"""Every disclosure is audited before its response leaves, or nothing leaves (invariant 7)."""
from __future__ import annotations

import sqlite3

from conftest import sample
from test_catalog import run_cli
from test_screen import SCREEN, citizens, fields_of

HISTORY = """query($s: ID!, $after: String) { accessHistory(subject: $s, first: 2, after: $after) {
  entries { at user organisation role task legalBasis caseRef fields { id status } } nextCursor } }"""


def audit_rows(data_dir) -> list[sqlite3.Row]:
    conn = sqlite3.connect(data_dir / "audit.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute("SELECT * FROM onescreen_audit ORDER BY seq"))
    finally:
        conn.close()


async def test_a_screen_leaves_one_audit_record_with_decisions_and_no_values(api, data_dir):
    rrn = citizens(data_dir, 1)[0]
    row = sample(data_dir, "mois_resident:SELECT name, road_addr FROM resident WHERE rrn = ?", rrn)[0]
    _, body = await api.gql("choi.chaeryang", SCREEN, {"t": "vehicle_transfer", "s": rrn, "c": "2026-차량-77"})
    assert "errors" not in body
    [rec] = audit_rows(data_dir)
    assert (rec["user_id"], rec["task"], rec["case_ref"], rec["role"]) == (
        "choi.chaeryang", "vehicle_transfer", "2026-차량-77", "vehicle_registration_officer")
    assert rec["request_id"] == body["extensions"]["requestId"]
    assert '"citizen.rrn"' in rec["fields"] and '"MASKED"' in rec["fields"]
    assert "molit.vehicle" in rec["ledgers"] and rec["legal_basis"].startswith("자동차관리법")
    raw = b"".join(p.read_bytes() for p in data_dir.glob("audit.sqlite*"))  # the file, its WAL and journal
    for secret in (rrn, row["name"], row["road_addr"]):
        assert secret.encode() not in raw


async def test_auditors_and_the_citizen_see_the_access_history_newest_first(api, data_dir):
    from oneScreen.identity import _demo_subject
    me = _demo_subject(data_dir)  # the demo citizen's own RRN
    for i, (user, task) in enumerate([("choi.chaeryang", "vehicle_transfer"), ("kim.jumin", "move_in_report"),
                                      ("jung.jutaek", "housing_special_supply")]):
        _, body = await api.gql(user, SCREEN, {"t": task, "s": me, "c": f"H-{i}"})
        assert "errors" not in body
    _, page1 = await api.gql("yoon.gamsa", HISTORY, {"s": me})
    h1 = page1["data"]["accessHistory"]
    assert [e["task"] for e in h1["entries"]] == ["housing_special_supply", "move_in_report"]
    _, page2 = await api.gql("yoon.gamsa", HISTORY, {"s": me, "after": h1["nextCursor"]})
    h2 = page2["data"]["accessHistory"]
    assert [e["task"] for e in h2["entries"]] == ["vehicle_transfer"] and h2["nextCursor"] is None
    assert h2["entries"][0]["organisation"] == "서울특별시 차량등록사업소"
    assert {"id": "citizen.rrn", "status": "MASKED"} in h2["entries"][0]["fields"]

    _, own = await api.gql("demo.citizen", HISTORY, {"s": me})
    assert own["data"]["accessHistory"] == h1
    other = citizens(data_dir, 2)[1]
    _, denied = await api.gql("demo.citizen", HISTORY, {"s": other})
    assert denied["errors"][0]["extensions"]["code"] == "TASK_FORBIDDEN"
    _, denied = await api.gql("kim.jumin", HISTORY, {"s": me})
    assert denied["errors"][0]["extensions"]["code"] == "TASK_FORBIDDEN"


async def test_a_broken_audit_store_fails_the_request_and_discloses_nothing(api, data_dir):
    rrn = citizens(data_dir, 1)[0]
    name = sample(data_dir, "mois_resident:SELECT name FROM resident WHERE rrn = ?", rrn)[0][0]
    status, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "B-1"})
    assert status == 200 and name in str(body)
    conn = sqlite3.connect(data_dir / "audit.sqlite")
    conn.execute("DROP TABLE onescreen_audit")  # the store breaks mid-run
    conn.commit()
    conn.close()
    status, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "B-2"})
    assert status == 503
    assert body["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
    assert "data" not in body and name not in str(body) and rrn not in str(body)


async def test_audit_verify_cli_detects_tampering(api, data_dir):
    rrns = citizens(data_dir, 3)
    for i, rrn in enumerate(rrns):
        await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": f"V-{i}"})
    env = {"ONESCREEN_DATA_DIR": str(data_dir)}
    ok = run_cli("audit", "verify", env_extra=env)
    assert ok.returncode == 0, ok.stderr
    exported = run_cli("audit", "export", env_extra=env)
    conn = sqlite3.connect(data_dir / "audit.sqlite")
    # every record, the household members' own (disclose.py's linked records) included: 3 screens, >= 3 records
    [(n,)] = conn.execute("SELECT count(*) FROM onescreen_audit").fetchall()
    assert exported.returncode == 0 and len(exported.stdout.strip().splitlines()) == n >= 3
    conn.execute("UPDATE onescreen_audit SET task = 'basic_livelihood' WHERE seq = 2")
    conn.commit()
    conn.close()
    bad = run_cli("audit", "verify", env_extra=env)
    assert bad.returncode != 0 and "2" in bad.stderr



def test_the_reading_audit_commands_say_the_store_cannot_be_reached_not_written(data_dir, tmp_path):
    """An auditor's verify or export against a store that does not answer: exit 1 and a line that says so. It
    said "the audit trail cannot be written; nothing was disclosed", the screen's refusal, true of no read."""
    from conftest import free_port
    env = {"ONESCREEN_DATA_DIR": str(data_dir), "ONESCREEN_AUDIT_URL": f"postgresql://u@127.0.0.1:{free_port()}/x",
           "ONESCREEN_AUDIT_TIMEOUT": "2"}
    for command in ("verify", "export", "checkpoints"):
        got = run_cli("audit", command, env_extra=env)
        assert got.returncode == 1, (command, got.stderr)
        assert "the audit store cannot be reached (connection" in got.stderr, (command, got.stderr)
        assert "written" not in got.stderr and "Traceback" not in got.stderr, (command, got.stderr)

def metric(text: str, name: str) -> float:
    return next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


async def test_metrics_show_the_last_audit_commit_and_refused_requests_by_reason(api, data_dir):
    """Invariant 7, visible to an operator: /metrics has the time of the last audit commit and a count of
    requests refused because their record could not be written, by a bounded reason."""
    rrn = citizens(data_dir, 1)[0]
    assert metric((await api.client.get("/metrics")).text, "onescreen_audit_last_commit_timestamp_seconds") == 0
    status, _ = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "M-1"})
    assert status == 200
    committed = metric((await api.client.get("/metrics")).text, "onescreen_audit_last_commit_timestamp_seconds")
    assert committed > 0
    conn = sqlite3.connect(data_dir / "audit.sqlite")
    conn.execute("DROP TABLE onescreen_audit")  # the store breaks: it answers with an error
    conn.commit()
    conn.close()
    for i in range(2):
        status, _ = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": f"M-{i + 2}"})
        assert status == 503
    text = (await api.client.get("/metrics")).text
    assert 'onescreen_audit_refused_requests_total{reason="refused"} 2.0' in text
    assert metric(text, "onescreen_audit_last_commit_timestamp_seconds") == committed
    labels = {line.split('reason="', 1)[1].split('"', 1)[0] for line in text.splitlines()
              if line.startswith("onescreen_audit_refused_requests_total{")}
    assert labels <= {"deadline", "connection", "refused", "closed", "schema"}
