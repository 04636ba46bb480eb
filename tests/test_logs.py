"""Structured log lines: one JSON object each, with their own time, and only the safe keys."""
from __future__ import annotations

import json


def test_log_lines_carry_their_own_time_and_only_the_safe_keys():
    """The formatter reuses the text of the last second it wrote; a line of another second gets its own."""
    import logging

    from oneScreen.logs import JsonFormatter

    fmt = JsonFormatter()

    def line(created: float, **extra) -> dict:
        record = logging.LogRecord("onescreen.app", logging.INFO, "", 0, "graphql request", None, None)
        record.created, record.msecs = created, (created % 1) * 1000
        record.__dict__.update(extra)
        return json.loads(fmt.format(record))

    assert line(1_790_000_000.25, user="kim", value="900101-1234567")["ts"] == "2026-09-21T14:13:20.250Z"
    assert line(1_790_000_000.75)["ts"] == "2026-09-21T14:13:20.750Z"
    second = line(1_790_000_061.5, request_id="r1")
    assert second["ts"] == "2026-09-21T14:14:21.500Z" and second["request_id"] == "r1"
    assert "value" not in line(1_790_000_000.0, user="kim", value="900101-1234567")  # not a safe key


def test_a_library_line_is_written_without_its_arguments():
    """Invariant 12: a library formats client text into its messages (aiosqlite logs SQL parameters at DEBUG,
    asyncio the reprs of failed tasks); only its fixed text reaches the log, never its arguments or extra keys."""
    import logging

    from oneScreen.logs import JsonFormatter

    fmt = JsonFormatter()

    def line(name: str, msg: str, *args, **extra) -> dict:
        record = logging.LogRecord(name, logging.DEBUG, "", 0, msg, args, None)
        record.__dict__.update(extra)
        return json.loads(fmt.format(record))

    sql = line("aiosqlite", "executing %s", "SELECT rrn FROM resident WHERE rrn IN ('510922-2547567')",
               user="510922-2547567")
    assert sql["msg"] == "executing %s" and "user" not in sql
    task = line("asyncio", "Task exception was never retrieved\nfuture: <Task exception=BadRequest('박경주')>")
    assert task["msg"] == "Task exception was never retrieved"
    own = line("onescreen.app", "graphql request", user="kim")
    assert own["msg"] == "graphql request" and own["user"] == "kim"
