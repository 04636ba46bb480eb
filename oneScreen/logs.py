"""Structured logs: one JSON object a line, with request id, user, task and ledger ids.

Never a field value, a subject identifier, a token or a secret: callers pass
only those safe keys through `extra=`, and only the keys in SAFE_KEYS are written.
Owns invariant 12 for the libraries' lines: their arguments (aiosqlite's SQL
parameters, asyncio's reprs) may hold client text, so only their fixed text is written.
"""
from __future__ import annotations

import logging
import sys
import time

import orjson

OWN_LOGGERS = ("onescreen.", "oneScreen.", "connectors.")  # whose calls pass no client text (fixed messages)
SAFE_KEYS = ("request_id", "user", "org", "task", "ledger", "ledgers", "reason", "status", "duration_ms",
             "operation", "outcome", "mode", "path", "errors", "version")


class JsonFormatter(logging.Formatter):
    _second: tuple[int, str] = (-1, "")  # the last second formatted and its text, as one tuple (threads)

    def format(self, record: logging.LogRecord) -> str:
        second, stamp = self._second
        if int(record.created) != second:
            second = int(record.created)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, stamp)
        if record.name.startswith(OWN_LOGGERS):
            msg = record.getMessage()
        else:  # a library's line: its format string's first line, never its arguments, nor its extra keys
            msg = str(record.msg).split("\n", 1)[0][:200]
        out = {"ts": f"{stamp}.{int(record.msecs):03d}Z", "level": record.levelname, "logger": record.name,
               "msg": msg}
        if record.name.startswith(OWN_LOGGERS):
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
    # uvicorn's access log would write paths and query strings (invariant 12); oneScreen logs its own request
    # line instead. `onescreen serve` also starts uvicorn with access_log=False.
    logging.getLogger("uvicorn.access").disabled = True
