"""Structured logs: one JSON object a line, with request id, user, task and ledger ids.

Never a field value, a subject identifier, a token or a secret: callers pass
only those safe keys through `extra=`, and only the keys in SAFE_KEYS are written.
"""
from __future__ import annotations

import logging
import sys
import time

import orjson

SAFE_KEYS = ("request_id", "user", "org", "task", "ledger", "ledgers", "reason", "status", "duration_ms",
             "operation", "outcome", "mode", "path", "errors")


class JsonFormatter(logging.Formatter):
    _second: tuple[int, str] = (-1, "")  # the last second formatted and its text, as one tuple (threads)

    def format(self, record: logging.LogRecord) -> str:
        second, stamp = self._second
        if int(record.created) != second:
            second = int(record.created)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, stamp)
        out = {"ts": f"{stamp}.{int(record.msecs):03d}Z", "level": record.levelname, "logger": record.name,
               "msg": record.getMessage()}
        given = record.__dict__
        out.update((key, given[key]) for key in SAFE_KEYS if key in given)
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__  # the class only: messages may hold values
        return orjson.dumps(out, default=str).decode()


def setup(level: str = "INFO") -> None:
    # The line written holds none of: caller's file and line, thread, process. Not collecting them is the
    # logging HOWTO's "Optimization" (findCaller walks the stack for every record).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # uvicorn's access log would write query strings; oneScreen logs its own request line instead
    logging.getLogger("uvicorn.access").disabled = True
