"""Profiles of a server under load: py-spy (sampling, attached by pid) summarised as top frames.

`python -m bench peers --profile` (and fanout, audit) records the oneScreen worker with py-spy while
wrk loads it in an extra, unmeasured run, then prints the functions with the most samples: by
own time (the leaf frame) and inclusive (anywhere on the stack), paths shortened.

    python -m bench.profile RAW_FILE     # summarise a `py-spy record --format raw` file
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path, rate: int = 200) -> subprocess.Popen | None:
    """Start py-spy on `pid` for `seconds` (returns the process, or None when py-spy is missing)."""
    exe = py_spy()
    if exe is None:
        return None
    return subprocess.Popen([exe, "record", "--format", "raw", "--nonblocking", "-r", str(rate), "-d",
                             str(max(1, round(seconds))), "-o", str(out), "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _func(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{m['func']} ({_short(m['file'])})"


def summarise(raw: Path, top: int = 15) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """(samples, [(function, own %)], [(function, inclusive %)]) of a py-spy raw (collapsed stacks) file."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        funcs = [_func(f) for f in frames]
        own[funcs[-1]] += n
        for f in set(funcs):
            incl[f] += n
    pct = (lambda c: [(f, 100 * v / total) for f, v in c.most_common(top)]) if total else (lambda c: [])
    return total, pct(own), pct(incl)


# Where a sample's time goes: the first of these (in this order) that any frame of its stack matches.
SERVER_COMPONENTS = (
    ("GraphQL validation (graphql-core validate)", ("validate (graphql/validation", "validate_document (strawberry")),
    ("GraphQL parse", ("parse (graphql/language/parser",)),
    ("durable audit write (oneScreen/audit/, SQLAlchemy, asyncpg)", ("oneScreen/audit/", "asyncpg/")),
    ("JWT verification (PyJWT, cryptography)", ("jwt/", "oneScreen/identity.py")),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("logging", ("logging/", "oneScreen/logs.py")),
    ("tracing (opentelemetry)", ("opentelemetry/", "trace/__init__.py", "oneScreen/tracing.py")),
    ("ledger reads: REST connector + aiohttp client", ("connectors/rest.py", "aiohttp/", "yarl/", "multidict/")),
    ("ledger reads: SQL connector (aiosqlite)", ("connectors/sql.py", "aiosqlite/")),
    ("SQLAlchemy in a greenlet (audit or consent store: py-spy cannot see the caller)", ("sqlalchemy/", "greenlet")),
    ("policy and masking (policy.py, masking.py)", ("oneScreen/policy.py", "oneScreen/masking.py")),
    ("plan, gateway, recombine (planner/gateway/screen/context)",
     ("oneScreen/planner.py", "oneScreen/gateway.py", "oneScreen/screen.py", "oneScreen/disclose.py", "oneScreen/batch.py",
      "cachetools/")),
    ("GraphQL execution (strawberry, graphql-core, oneScreen/graphql)",
     ("graphql/", "strawberry/", "oneScreen/graphql/")),
    ("request handling (oneScreen/endpoint.py, app.py, http.py)", ("oneScreen/endpoint.py", "oneScreen/app.py",
                                                                   "oneScreen/http.py")),
    ("HTTP server (uvicorn, starlette, httptools)", ("uvicorn/", "starlette/", "httptools")),
    ("event loop (asyncio, uvloop)", ("asyncio/", "uvloop/")),
)
CONFIG_COMPONENTS = (
    ("YAML parse (PyYAML: libyaml's C loader shows as yamlfile.load's own time)",
     ("yaml/", "load (oneScreen/yamlfile.py")),
    ("line map of every YAML node (yamlfile._walk)", ("_walk (oneScreen/yamlfile.py",)),
    ("pydantic validation", ("pydantic",)),
    ("GraphQL schema build (strawberry, graphql-core)", ("strawberry/", "graphql/", "oneScreen/graphql/")),
    ("connectors (SQLAlchemy engines, REST)", ("connectors/", "sqlalchemy/")),
    ("gateway (caches, breakers, metrics)", ("oneScreen/gateway.py", "prometheus_client/")),
    ("catalog compile (catalog.py)", ("oneScreen/catalog.py",)),
    ("policy compile (policy.py)", ("oneScreen/policy.py",)),
    ("imports", ("_find_and_load",)),
)


def components(raw: Path, table=SERVER_COMPONENTS) -> list[tuple[str, float]]:
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        name = next((c for c, marks in table if any(m in stack for m in marks)), "other")
        counts[name] += n
    return [(c, 100 * v / total) for c, v in counts.most_common()] if total else []


def report(raw: Path, title: str, top: int = 15, say=print, table=SERVER_COMPONENTS) -> None:
    if not raw.exists() or raw.stat().st_size == 0:
        say(f"  profile {title}: no samples (py-spy missing or not permitted)")
        return
    total, own, incl = summarise(raw, top)
    say(f"  profile {title}: {total} samples (py-spy, on-CPU only), raw stacks in {raw}")
    say("    by component (a sample counts for the first component, in this order, found on its stack):")
    for c, p in components(raw, table):
        say(f"      {p:5.1f}%  {c}")
    say("    own time (leaf frame):")
    for f, p in own:
        say(f"      {p:5.1f}%  {f}")
    say("    inclusive (on the stack), skipping the event loop and server plumbing:")
    skip = ("run (asyncio/", "_run_once (asyncio/", "run_forever (asyncio/", "run_until_complete", "<module>",
            "main (", "_run_module_as_main", "_run_code", "run (uvicorn", "serve (uvicorn", "_serve (",
            "run (runners.py", "run (asyncio/runners.py", "_run (asyncio/events.py", "run_task (")
    shown = 0
    for f, p in summarise(raw, top * 4)[2]:
        if any(s in f for s in skip):
            continue
        say(f"      {p:5.1f}%  {f}")
        shown += 1
        if shown >= top:
            break


if __name__ == "__main__":
    report(Path(sys.argv[1]), sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25)
