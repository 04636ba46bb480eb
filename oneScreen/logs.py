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
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        for key in SAFE_KEYS:
            if key in record.__dict__:
                out[key] = record.__dict__[key]
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
