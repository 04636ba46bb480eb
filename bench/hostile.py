"""9. Hostile requests: the CPU of the worst refused and accepted requests at the default limits (invariant 10).

    python -m bench hostile [--smoke]        (python -m bench.hostile [--smoke] runs this one alone)

The app runs in this process (demo mode, demo ledgers in a temporary directory, its heap settled as `onescreen
serve` settles it) and each request goes straight to its ASGI callable, so the CPU counted is the server's whole
request: identity, limits, parse, validation, execution, audit record and response (process CPU time, every
thread). Each text is sent with one more trailing space every time, so no parse cache helps: a hostile caller
varies the text. The median over the rounds is printed, with the work figure that bounds each case.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import time
from typing import Any

import orjson

from .common import Result, Run, Target, say, table, tmpdir

NAME = "hostile"
TITLE = "Hostile requests: CPU ms of the worst refused and accepted requests at the default limits"
# Targets as multiples of parsing the largest text the limits let through (max_tokens tokens), measured in the
# same process at the same time: on a shared machine the ratios hold when the milliseconds do not.
REFUSED_PARSES = 1.5  # refused by the limits (graphql/limits.py): about its parsing
INVALID_PARSES = 3.0  # refused by validation within its bounds (error limit, merge budget): parse and validate
ACCEPTED_PARSES = 4.0  # the largest request without subjects: parse, validate, execute, respond


def run_bench(run: Run) -> Result:
    return asyncio.run(_bench(run))


async def _bench(run: Run) -> Result:
    from oneScreen.app import create_app
    from oneScreen.identity import mint_demo_token
    from oneScreen.settings import load as load_settings

    res = Result(NAME, TITLE)
    data = run.tmp / "hostile-data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONESCREEN_")}
    env["ONESCREEN_DATA_DIR"] = str(data)
    env["ONESCREEN_RATE_USER_PER_MIN"] = "0"  # measure the request, not the rate limiter's refusal
    app = create_app(load_settings(env), env)
    try:
        limits = app.state.runtime.settings.limits
        say(f"  default limits: {limits}")
        tokens = {u: mint_demo_token(data, u).encode() for u in ("multi.counter", "choi.chaeryang")}
        rrns = [r[0] for r in sqlite3.connect(data / "demo" / "mois_resident.sqlite").execute(
            "SELECT rrn FROM resident ORDER BY rrn LIMIT ?", (limits.max_subjects,))]
        schema = app.state.runtime.snapshot.schema._schema
        cases = _cases(limits, rrns, schema)
        rounds = 3 if run.smoke else 15
        for _ in range(3):  # warm-up: first requests open the stores and import lazily
            await _post(app, {"query": "{ me { user } }"}, tokens["multi.counter"])
        parse_ms = _parse_ms(limits, rounds)
        say(f"  parsing a text of {limits.max_tokens} tokens (the most the limits let through) costs {parse_ms:.2f} ms")
        rows, worst = [], {"refused": 0.0, "invalid": 0.0, "accepted": 0.0, "subjects": 0.0}
        for name, kind, user, body in cases:
            times, outcome = [], ""
            for i in range(rounds):
                sent = {**body, "query": body["query"] + " " * i}
                t0 = time.process_time()
                status, answer = await _post(app, sent, tokens[user])
                times.append((time.process_time() - t0) * 1000)
                outcome = _outcome(status, answer)
            ms = statistics.median(times)
            if outcome.startswith("ok") == (kind in ("refused", "invalid")):
                raise RuntimeError(f"{name}: expected it {kind}, got {outcome}: {str(answer)[:300]}")
            worst[kind] = max(worst[kind], ms)
            rows.append([name, kind, len(body["query"]), outcome, f"{ms:.2f}"])
        table(["request", "kind", "chars", "answer", "CPU ms (median)"], rows)
        per_subject = worst["subjects"] / limits.max_subjects
        say(f"  a subject of the largest batch costs {per_subject:.2f} ms (its disclosure, policy, audit record)")
        say(f"  worst refused by the limits {worst['refused']:.1f} ms, by validation {worst['invalid']:.1f} ms, "
            f"worst accepted without subjects {worst['accepted']:.1f} ms, {limits.max_subjects} subjects "
            f"{worst['subjects']:.1f} ms")
        res.targets += [
            Target("worst request refused by the limits / parsing the largest text", worst["refused"] / parse_ms,
                   REFUSED_PARSES, "<=", "x", f"{worst['refused']:.1f} ms"),
            Target("worst request refused by validation / parsing the largest text", worst["invalid"] / parse_ms,
                   INVALID_PARSES, "<=", "x", f"{worst['invalid']:.1f} ms"),
            Target("worst accepted request without subjects / parsing the largest text", worst["accepted"] / parse_ms,
                   ACCEPTED_PARSES, "<=", "x", f"{worst['accepted']:.1f} ms"),
            Target(f"CPU ms per subject of a {limits.max_subjects}-subject batch", per_subject, 3.0, "<=", " ms",
                   "bounded by max_subjects, the rate limits and the lookup budgets"),
        ]
    finally:
        await app.state.runtime.close()
    return res


def _cases(limits: Any, rrns: list[str], schema: Any) -> list[tuple[str, str, str, dict]]:
    """(name, kind, user, body): the worst of each kind this benchmark knows. Kinds: refused by the limits, refused
    by validation (invalid), accepted without subjects, accepted with max_subjects subjects."""
    def q(text: str, **extra: Any) -> dict:
        return {"query": text, **extra}

    levels = 40
    bomb = (f"{{ me {{ ...F{levels} }} }} fragment F0 on Me {{ user }} "
            + " ".join(f"fragment F{i} on Me {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)))
    cycle = "{ me { ...C0 } } " + " ".join(f"fragment C{i} on Me {{ user ...C{(i + 1) % 300} }}" for i in range(300))
    repeated = "{ " + " ".join(["me { user }"] * min((limits.max_chars - 4) // 12, (limits.max_tokens - 2) // 4)) + " }"
    task = "fragment T on Task { code name sections { title fields { id label labelEn type columns { name } } } }"
    copies = "{ " + " ".join(f"a{i}: tasks {{ ...T }}" for i in range(limits.max_aliases)) + " } " + task
    tokens = "{ me { " + " ".join(f"a{i}: user" for i in range(limits.max_tokens // 3 + 1)) + " } }"
    too_long = "{ me { user } }" + " " * limits.max_chars
    nested = "{ me " + "{ ... " * 190 + "{ user }" + " }" * 190 + " }"
    unknown = "{ me { " + " ".join(f"f{i}" for i in range(150)) + " } }"
    side = ("{ me { " + " ".join(f"...A{i}" for i in range(150)) + " } } "
            + " ".join(f"fragment A{i} on Me {{ a{i}: user }}" for i in range(150)))
    # accepted
    aliases = "{ me { " + " ".join(f"a{i}: user" for i in range(limits.max_aliases)) + " } }"
    repeats = "{ " + " ".join(["me { user }"] * (limits.max_repeats // 2 + 1)) + " }"  # 2 repeats each
    everything = ("{ me { user name organisation region roles } tasks { code name nameEn legalBasis legalBasisEn "
                  "subjectType roles sections { title titleEn fields { id label labelEn type sensitivity ledger agency "
                  "cardinality columns { name label labelEn type } } } } }")
    list_literal = ('{ screen(task: "vehicle_transfer", subject: "x", caseRef: "c", fields: ['
                    + " 0" * (limits.max_tokens - 40) + "]) { subject } }")
    from graphql import get_introspection_query
    introspection = get_introspection_query(descriptions=True)
    citizen = _everything(schema.type_map["Citizen"], 2)  # 58 fields: within max_cost for max_subjects subjects
    batch = ("query(" + ", ".join(f"$r{i}: ID!" for i in range(len(rrns))) + ") { "
             + " ".join(f'c{i}: citizen(rrn: $r{i}, task: "vehicle_transfer", caseRef: "B-1") {{ ...C }}'
                        for i in range(len(rrns))) + f" }} fragment C on Citizen {{ {citizen} }}")
    return [
        (f"fragment bomb, {levels} levels", "refused", "multi.counter", q(bomb)),
        ("fragment cycle of 300", "refused", "multi.counter", q(cycle)),
        ("{ me { user } } repeated to the tokens limit", "refused", "multi.counter", q(repeated)),
        (f"{limits.max_aliases} alias copies of tasks", "refused", "multi.counter", q(copies)),
        (f"{limits.max_tokens} tokens and one more", "refused", "multi.counter", q(tokens)),
        (f"{limits.max_chars} characters and more", "refused", "multi.counter", q(too_long)),
        ("150 unknown fields (error limit)", "invalid", "multi.counter", q(unknown)),
        ("150 fragments side by side (merge budget)", "invalid", "multi.counter", q(side)),
        (f"{limits.max_aliases} aliases", "accepted", "multi.counter", q(aliases)),
        ("190 nested inline fragments", "accepted", "multi.counter", q(nested)),
        (f"{limits.max_repeats} repeats: {{ me {{ user }} }} x {limits.max_repeats // 2 + 1}", "accepted",
         "multi.counter", q(repeats)),
        ("every field of me and tasks", "accepted", "multi.counter", q(everything)),
        ("a list literal filling the tokens", "accepted", "multi.counter", q(list_literal)),
        ("the GraphiQL introspection query", "accepted", "multi.counter", q(introspection)),
        (f"{len(rrns)} subjects x every field of a Citizen", "subjects", "choi.chaeryang",
         q(batch, variables={f"r{i}": r for i, r in enumerate(rrns)})),
    ]


def _parse_ms(limits: Any, rounds: int) -> float:
    """CPU ms of parsing a text of exactly max_tokens tokens (aliased fields: the common shape)."""
    from graphql import parse
    text = "{ me { " + " ".join(f"a{i}: user" for i in range((limits.max_tokens - 6) // 3)) + " } }"
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        parse(text, max_lexical_tokens=limits.max_tokens)
        times.append((time.process_time() - t0) * 1000)
    return statistics.median(times)


def _everything(obj: Any, depth: int) -> str:
    from graphql import get_named_type, is_leaf_type
    parts = []
    for name, f in obj.fields.items():
        t = get_named_type(f.type)
        if is_leaf_type(t):
            parts.append(name)
        elif depth > 1 and not f.args:
            parts.append(f"{name} {{ {_everything(t, depth - 1)} }}")
    return " ".join(parts)


def _outcome(status: int, answer: Any) -> str:
    """"ok" (executed: data, perhaps with field errors) or what refused it before execution."""
    if not isinstance(answer, dict):
        return f"HTTP {status}"
    errors = answer.get("errors") or []
    if "data" in answer:  # executed (the app sends data, even null, once execution started)
        return "ok" + (f", {len(errors)} field errors" if errors else "")
    code = (errors[0].get("extensions") or {}).get("code") if errors else None
    return f"refused: {code or 'invalid'}" + (f" ({len(errors)} errors)" if len(errors) > 1 else "")


async def _post(app: Any, body: dict, token: bytes) -> tuple[int, Any]:
    """POST /graphql straight to the ASGI app (no client, no sockets: only the server's work is counted)."""
    raw = orjson.dumps(body)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/graphql", "raw_path": b"/graphql", "query_string": b"", "root_path": "",
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
             "headers": [(b"content-type", b"application/json"), (b"authorization", b"Bearer " + token),
                         (b"content-length", str(len(raw)).encode())]}
    messages = [{"type": "http.request", "body": raw, "more_body": False}]
    out: dict[str, Any] = {"status": 0, "body": b""}

    async def receive() -> dict:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return out["status"], orjson.loads(out["body"]) if out["body"][:1] == b"{" else out["body"]


def main(argv: list[str] | None = None) -> int:
    from .common import print_targets
    p = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="3 rounds instead of 15; figures printed, not judged")
    args = p.parse_args(argv)
    run = Run(smoke=args.smoke, tmp=tmpdir("onescreen-hostile-"))
    say(f"== {NAME}: {TITLE}")
    say(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    res = run_bench(run)
    print_targets(run, res)
    say(f"  reproduce: {run.command(NAME)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
