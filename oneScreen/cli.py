"""The `onescreen` command: serve, token, demo, catalog, policy, task, changes, config, audit."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import sys
from pathlib import Path

from . import settings as settings_mod
from .errors import ConfigError, ConfigErrors, OneScreenError, counted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onescreen", description="oneScreen: one screen per administrative task")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the service (demo ledgers and users unless ONESCREEN_MODE=production)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, help="worker processes (default ONESCREEN_WORKERS or 1)")

    p = sub.add_parser("token", help="print a bearer token for a demo user (demo mode)")
    p.add_argument("--user", required=True)

    demo = sub.add_parser("demo", help="demo data").add_subparsers(dest="demo_command", required=True)
    p = demo.add_parser("users", help="list the demo users")
    p.add_argument("--json", action="store_true")
    p = demo.add_parser("sample", help="subject keys that exist in the demo data")
    p.add_argument("--type", required=True, choices=["citizen", "building", "parcel", "household"])
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--for-user", metavar="USER", help="only subjects in this demo user's district (its region), "
                                                      "so the user's district-limited tasks can read them")
    p.add_argument("--json", action="store_true")
    demo.add_parser("generate", help="(re)generate the demo ledgers in the data directory")

    cat = sub.add_parser("catalog", help="the field catalog").add_subparsers(dest="catalog_command", required=True)
    p = cat.add_parser("validate", help="validate field_catalog.yaml (and the policies against it)")
    p.add_argument("path", nargs="?")
    p.add_argument("--policies", help="policies directory to validate against the catalog")
    p.add_argument("--check-sources", action="store_true", help="also check every source column exists")
    cat.add_parser("schema", help="print the JSON Schema of field_catalog.yaml")
    p = cat.add_parser("introspect", help="a ledger's real columns, each with the catalog field mapped to it")
    p.add_argument("--ledger", required=True)
    p.add_argument("--user", required=True, help="who asks (a demo user in demo mode)")
    p = cat.add_parser("map", help="propose mapping a source column to a (new or existing) catalog field")
    for arg in ("--id", "--ledger", "--column", "--type", "--label", "--label-en", "--sensitivity", "--user"):
        p.add_argument(arg, required=True)
    p.add_argument("--mask")
    p.add_argument("--format")
    p = cat.add_parser("matrix", help="the field x task matrix: allow, mask:STRATEGY, consent, - (not granted)")
    p.add_argument("--csv", action="store_true", help="CSV (the default is an aligned table)")
    p.add_argument("--sensitivity", action="append", default=[], help="only fields of this sensitivity (repeatable)")
    p.add_argument("--agency", action="append", default=[], help="only fields of this agency's ledgers (repeatable)")
    p = cat.add_parser("report", help="catalog-wide reports: unused, no-basis, idle-roles, full-view FIELD, "
                                      "diff A B (A, B: configuration store versions or directories)")
    p.add_argument("report", choices=["unused", "no-basis", "idle-roles", "full-view", "diff"])
    p.add_argument("args", nargs="*", metavar="ARG")
    p.add_argument("--csv", action="store_true")
    p = cat.add_parser("retire", help="propose retiring a field no task uses")
    p.add_argument("--id", required=True)
    p.add_argument("--user", required=True)

    task = sub.add_parser("task", help="task field sets").add_subparsers(dest="task_command", required=True)
    p = task.add_parser("propose", help="propose a task file (create or replace policies/tasks/CODE.yaml)")
    p.add_argument("file", help="the task YAML")
    p.add_argument("--user", required=True)
    p = task.add_parser("preview", help="the ledgers a draft touches and what it newly discloses")
    p.add_argument("file")
    p.add_argument("--user", required=True)
    p = task.add_parser("template", help="write an empty task spreadsheet (.xlsx or .csv) with the Korean headers")
    p.add_argument("file")
    p = task.add_parser("export", help="write the active tasks to a spreadsheet (.xlsx or .csv), one row per field")
    p.add_argument("file")
    p = task.add_parser("import", help="propose the tasks of a spreadsheet as ONE change (every problem as "
                                       "FILE:SHEET:ROW:COLUMN: reason; nothing proposed while any row is wrong)")
    p.add_argument("file")
    p.add_argument("--user", help="the proposing admin (not needed with --dry-run)")
    p.add_argument("--dry-run", action="store_true", help="validate and print the per-task diff; propose nothing")
    p.add_argument("--remove-missing", action="store_true", help="also remove the tasks the spreadsheet lacks")

    chg = sub.add_parser("changes", help="configuration change proposals").add_subparsers(dest="changes_command",
                                                                                         required=True)
    p = chg.add_parser("list")
    p.add_argument("--status")
    p.add_argument("--user", required=True)
    for name in ("approve", "reject", "restore", "show"):
        p = chg.add_parser(name)
        p.add_argument("id", type=int)
        p.add_argument("--user", required=True)


    pol = sub.add_parser("policy", help="roles and tasks").add_subparsers(dest="policy_command", required=True)
    p = pol.add_parser("validate", help="validate the policies directory against the catalog")
    p.add_argument("path", nargs="?")
    p = pol.add_parser("lint", help="check every task as a whole: one treatment per kind of personal data, a legal "
                                    "basis for every field, catalog fields no task shows (FILE:LINE: reason)")
    p.add_argument("path", nargs="?", help="the policies directory (default: ONESCREEN_POLICIES)")
    p.add_argument("--catalog", help="the field catalog (default: ONESCREEN_CATALOG)")
    p = pol.add_parser("test", help="run the decision tests beside the policies (DIR/tests/*.yaml): each "
                                    "expectation that fails as FILE:LINE: expected X, got Y (rule R); exit 1 then")
    p.add_argument("path", nargs="?", help="the policies directory (default: ONESCREEN_POLICIES); its tests/ run")
    p.add_argument("--catalog", help="the field catalog (default: ONESCREEN_CATALOG)")
    pol.add_parser("schema", help="print the JSON Schemas of roles.yaml, the task files and the decision tests")
    p = pol.add_parser("explain", help="the decision for one field of one task for one user, and the rule that made it")
    p.add_argument("--user", required=True, help="a demo user id")
    p.add_argument("--task", required=True)
    p.add_argument("--field", required=True, help="field path, e.g. citizen.rrn or 'citizen.residence > building.name'")
    p.add_argument("--subject", metavar="KEY", help="decide for this subject: its region and consent are read as "
                   "the service reads them (from its ledger and the consent store)")
    p.add_argument("--case-ref", metavar="CASE", help="with --subject: the case whose consent counts (a consent "
                   "opens the fields of its own case only)")
    p.add_argument("--in-region", choices=["yes", "no"], help="without --subject: assume the subject is (not) in the "
                   "user's region (default: not, and said so)")
    p.add_argument("--consented", choices=["yes", "no"], help="without --subject: assume consent is (not) recorded "
                   "(default: not, and said so)")

    cfg = sub.add_parser("config", help="the approved configuration: the store's versions (ONESCREEN_CONFIG_URL), "
                         "or the demo's own copy in the data directory").add_subparsers(dest="config_command",
                                                                                        required=True)
    p = cfg.add_parser("import", help="seed an empty configuration store with the files (ONESCREEN_CATALOG, "
                                      "ONESCREEN_POLICIES, or --from DIR), validated first")
    p.add_argument("--from", dest="source", metavar="DIR", help="read DIR/field_catalog.yaml and DIR/policies/")
    p.add_argument("--replace", action="store_true", help="make the files a new active version even if the store "
                   "has one (a change reviewed in git instead of the admin screens): every pod switches to it")
    p = cfg.add_parser("export", help="write the store's active version (or the demo's configuration) as files: "
                                      "DIR/field_catalog.yaml and DIR/policies/ (demo: the shipped files by default)")
    p.add_argument("dir", nargs="?", metavar="DIR")
    p.add_argument("--to", metavar="DIR", help="the same as DIR")
    p.add_argument("--version", type=int, help="export this version of the store instead of the active one")
    cfg.add_parser("versions", help="list the store's configuration versions, newest first")
    cfg.add_parser("reset", help="start the demo's configuration again from the shipped files (drops its edits)")

    aud = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="audit_command", required=True)
    p = aud.add_parser("verify", help="check the hash chain, the signed checkpoints and that every request is "
                                      "recorded once; exit 1 naming the first bad record")
    p.add_argument("--from", dest="from_number", type=int, metavar="CHECKPOINT",
                   help="start at this (trusted) checkpoint instead of the first record")
    aud.add_parser("export", help="print the trail as JSON lines, oldest first")
    p = aud.add_parser("init", help="create the audit store and record its schema version (the owner role, once)")
    p.add_argument("--grant", metavar="ROLE", help="grant the service role what it needs (PostgreSQL)")
    aud.add_parser("migrate", help="bring the audit store to this version's schema (the owner role)")
    aud.add_parser("checkpoints", help="list the signed checkpoints")
    aud.add_parser("public-key", help="print the public key (PEM) that checks the checkpoints' signatures")
    p = aud.add_parser("prove", help="print the proof (JSON) that record SEQ is in the trail: its Merkle path to "
                                     "the signed checkpoint that seals it (check it with python -m "
                                     "oneScreen.verify_receipt); the officer's user id and address stay "
                                     "hidden behind their commitments unless --reveal names them")
    p.add_argument("seq", type=int, metavar="SEQ")
    p.add_argument("--reveal", action="append", default=[], choices=("user", "client", "user_name"),
                   help="also reveal this private member (value and salt), e.g. for an auditor; repeatable")

    nt = sub.add_parser("notify", help="the citizen's receipts pushed by e-mail").add_subparsers(
        dest="notify_command", required=True)
    p = nt.add_parser("run", help="deliver the receipt outbox over SMTP (ONESCREEN_NOTIFY_SMTP_HOST): at least once, "
                                  "one Message-ID per mail, retries with backoff, dead state after the last try")
    p.add_argument("--once", action="store_true", help="deliver what is due now, print the counts and stop")

    from . import agreements_cli
    agreements_cli.add_parser(sub)

    args = parser.parse_args(argv)
    try:
        s = settings_mod.load()
    except ValueError as exc:  # a malformed setting: it names the variable and the value
        return _refuse(args.command, f"{'cannot start' if args.command == 'serve' else 'onescreen'}: {exc}")
    if s.demo and (args.command != "config" or args.config_command == "import"):
        from .demo import config as demo_config
        demo_config.ensure(s)  # the demo's configuration is its copy in the data directory (made on first use)
    handler = {"serve": _serve, "token": _token, "demo": _demo, "catalog": _catalog, "policy": _policy,
               "audit": _audit, "task": _admin_cli, "changes": _admin_cli, "config": _config, "notify": _notify}
    if (args.command == "catalog" and args.catalog_command in ("matrix", "report")) or (
            args.command == "task" and args.task_command in ("template", "export", "import")):
        from .taskbook_cli import run
        return run(args, s)
    if args.command == "agreement":
        return agreements_cli.run(args, s)
    if args.command == "catalog" and args.catalog_command in ("introspect", "map", "retire"):
        return _admin_cli(args, s)
    return handler[args.command](args, s)


def _refuse(command: str, message: str, errors: list[str] | None = None) -> int:
    """Why the command cannot run; exit status 1. `serve` says it as a JSON log line like every other line of
    the service (a log collector parses its stderr so, and would drop plain text); the other commands, which a
    person runs, as plain text."""
    if command == "serve":
        import logging

        from . import logs
        if not logging.getLogger().handlers:
            logs.setup()
        logging.getLogger("onescreen.cli").error(message, extra={"operation": "start", "outcome": "refused",
                                                                 **({"errors": errors} if errors else {})})
    else:
        print("\n".join([message, *(errors or [])]), file=sys.stderr)
    return 1


def _serve(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    import signal

    import uvicorn

    from . import logs, server
    from .app import create_app

    logs.setup(s.log_level)
    try:
        app = create_app(s)
    except (ConfigError, ConfigErrors) as exc:
        return _refuse("serve", "configuration is invalid; not starting",
                       [str(e) for e in getattr(exc, "errors", [exc])])
    except ValueError as exc:
        return _refuse("serve", f"cannot start: {exc}")
    problem = asyncio.run(_audit_schema_problem(s))
    if problem:
        return _refuse("serve", f"cannot start: {problem}")
    runtime = app.state.runtime

    async def hup() -> None:
        from .configstore import ConfigStoreUnavailable
        # a refused configuration is logged (JSON, FILE:LINE: reason) and counted by the runtime itself
        with contextlib.suppress(ConfigError, ConfigErrors, ConfigStoreUnavailable):
            await runtime.reload_async()

    def on_hup(*_a: object) -> None:  # a signal handler: the reload itself runs on the loop, its build off it
        if runtime.loop is not None:
            runtime.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(hup()))

    host, port = args.host or s.host, args.port or s.port
    workers = args.workers or s.workers
    if s.demo:
        print(f"oneScreen (DEMO MODE, synthetic data) on http://{host}:{port}  data: {s.data_dir}  "
              f"configuration: {s.catalog_path}, {s.policies_dir}", file=sys.stderr)
    # access_log=False: uvicorn's access lines would hold paths and query strings (invariant 12)
    # proxy_headers=False: X-Forwarded-For is believed from ONESCREEN_TRUSTED_PROXIES only, in the app (app.py's
    # ForwardedClient), which keeps the socket's peer for the decisions that trust the proxy itself
    common = dict(host=host, port=port, log_config=None, access_log=False, proxy_headers=False,
                  timeout_graceful_shutdown=30,  # drain in-flight requests (and their audit writes) on SIGTERM
                  **server.uvicorn_options(s))  # bounds on request heads, idle connections, open connections
    if workers > 1:
        # The configuration was validated (and demo files and keys created) above, once, before any worker
        # starts; each worker then builds its own app from the same environment. SIGHUP restarts workers.
        asyncio.run(runtime.close())
        # Metrics of every worker, summed by /metrics (metrics.py): a fresh directory of this run's files, set
        # before the workers start (prometheus_client reads it when imported), removed when they have stopped.
        import shutil
        import tempfile
        from .metrics import MULTIPROC_DIR
        metrics_dir = tempfile.mkdtemp(prefix="onescreen-metrics-")
        os.environ[MULTIPROC_DIR] = metrics_dir
        try:
            uvicorn.run("oneScreen.app:worker_app", factory=True, workers=workers, **common)
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        return 0
    signal.signal(signal.SIGHUP, on_hup)
    uvicorn.run(app, **common)
    return 0


def _token(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    from .identity import mint_demo_token

    if not s.demo:
        print("tokens come from the organisation's SSO in production mode", file=sys.stderr)
        return 2
    try:
        print(mint_demo_token(s.data_dir, args.user, s.token_ttl))
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    return 0


def _demo(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    from . import jurisdiction
    from .demo import ledgers
    from .identity import demo_user, demo_users

    if args.demo_command == "users":
        from . import catalog as catalog_mod, policy as policy_mod
        pol = policy_mod.load(s.policies_dir, catalog_mod.load(s.catalog_path))
        users = [{"user": u.user, "name": u.name, "org": u.org, "region": u.region, "roles": list(u.roles),
                  "tasks": sorted(t.code for t in pol.tasks_for(u.caller))}
                 for u in demo_users()]
        if args.json:
            print(json.dumps(users, ensure_ascii=False, indent=2))
        else:
            for u in users:
                print(f"{u['user']:<16} {u['name']}  {u['org']}  roles={','.join(u['roles'])}  "
                      f"tasks={','.join(u['tasks']) or '-'}")
        return 0
    if args.demo_command == "generate":
        paths = ledgers.generate(s.data_dir / "demo")
        for p in paths.values():
            print(p)
        return 0
    # sample
    region = None
    if args.for_user:
        try:
            user = demo_user(args.for_user)
        except KeyError as exc:
            print(exc.args[0], file=sys.stderr)
            return 2
        if not user.region:
            print(f"demo user {args.for_user!r} has no district (region)", file=sys.stderr)
            return 2
        region = user.region
    paths = ledgers.ensure(s.data_dir / "demo")
    # the ledger, its key and the column of the subject's 법정동 / 시군구 code (a PNU starts with its 법정동 code)
    table = {"citizen": ("mois_resident", "resident", "rrn", "legal_dong_cd"),
             "household": ("mois_resident", "resident", "hshld_id", "legal_dong_cd"),
             "building": ("molit_building", "bldg_title", "mgmBldrgstPk", "sigunguCd"),
             "parcel": ("molit_land", "land", "pnu", "pnu")}[args.type]
    db, tbl, col, region_col = table
    keys: list[str] = []
    with sqlite3.connect(f"file:{paths[db]}?mode=ro", uri=True) as conn:
        for key, code in conn.execute(f'SELECT "{col}", "{region_col}" FROM "{tbl}" ORDER BY rowid'):
            if len(keys) >= max(0, args.limit):
                break
            if key in keys or (region is not None and not jurisdiction.covers(region, str(code)[:10])):
                continue
            keys.append(key)
    print(json.dumps(keys) if args.json else "\n".join(keys))
    return 0


def _catalog(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    from . import catalog as catalog_mod, policy as policy_mod

    if args.catalog_command == "schema":
        print(json.dumps(catalog_mod.json_schema(), ensure_ascii=False, indent=2))
        return 0
    path = Path(args.path) if args.path else s.catalog_path
    try:
        cat = catalog_mod.load(path)
        policies_dir = Path(args.policies) if args.policies else (None if args.path else s.policies_dir)
        if policies_dir:
            policy_mod.load(policies_dir, cat)
    except ConfigError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    except ConfigErrors as exc:
        for e in exc.errors:
            print(e.message, file=sys.stderr)
        return 1
    if args.check_sources:
        problems = asyncio.run(_check_sources(cat, s))
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            return 1
    for w in cat.warnings:  # they do not fail the validation
        print(f"{w.file}:{w.line}: warning: {w.reason}" if w.line else f"{w.file}: warning: {w.reason}")
    print(f"{path}: OK ({counted(len(cat.ledgers), 'ledger')}, {counted(len(cat.fields), 'field')})")
    return 0


async def _check_sources(cat, s: settings_mod.Settings) -> list[str]:
    import os

    demo_dir = None
    env = dict(os.environ)
    stop = None
    if s.demo:
        from .demo import agency_api, ledgers
        demo_dir = str(s.data_dir / "demo")
        ledgers.ensure(Path(demo_dir))
        stop = agency_api.start_for_demo(s.catalog_path, env, Path(demo_dir))
    try:
        return await _check_each_source(cat, env, demo_dir)
    finally:
        if stop:
            stop()


async def _check_each_source(cat, env, demo_dir) -> list[str]:
    from connectors import base

    from . import yamlfile

    _data, lines = yamlfile.load(Path(cat.source))
    line_of_field = {f: yamlfile.line_of(lines, (sect, i)) for sect in ("fields", "links")
                     for i, f in enumerate(x["id"] for x in (_data.get(sect) or []))}
    problems: list[str] = []
    for lid, ledger in cat.ledgers.items():
        try:
            conn = base.create(base.SourceSpec(lid, ledger.key_column, ledger.connector, env, demo_dir))
        except base.ConnectorConfigError as exc:
            problems.append(f"{cat.source}: {exc}")
            continue
        try:
            cols = await conn.columns()
        except base.ConnectorError as exc:
            problems.append(f"{cat.source}: ledger {lid}: {exc.reason}")
            continue
        finally:
            await conn.close()
        if ledger.key_column not in cols:
            problems.append(f"{cat.source}: ledger {lid}: key column {ledger.key_column!r} does not exist")
        for f in cat.fields.values():
            if f.ledger.id != lid:
                continue
            for c in f.columns:
                if c.column not in cols:
                    problems.append(f"{cat.source}:{line_of_field.get(f.id)}: field {f.id}: column {c.column!r} "
                                    f"does not exist in ledger {lid}")
    return problems


def _policy(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    from . import catalog as catalog_mod, policy as policy_mod

    try:
        cat = catalog_mod.load(Path(getattr(args, "catalog", None) or s.catalog_path))
        pol = policy_mod.load(Path(getattr(args, "path", None) or s.policies_dir), cat)
    except (ConfigError, ConfigErrors) as exc:
        for e in getattr(exc, "errors", [exc]):
            print(e.message, file=sys.stderr)
        return 1
    if args.policy_command == "schema":
        print(json.dumps(policy_mod.json_schemas(), ensure_ascii=False, indent=2))
        return 0
    if args.policy_command == "validate":
        print(f"OK ({counted(len(pol.tasks), 'task')}, {counted(len(pol.roles), 'role')})")
        return 0
    if args.policy_command == "lint":
        from .lint import lint
        findings = lint(cat, pol)
        for f in findings:
            print(f, file=sys.stderr)
        errors = sum(f.error for f in findings)
        print(f"{'FAILED' if errors else 'OK'} ({len(pol.tasks)} tasks: {errors} errors, "
              f"{len(findings) - errors} warnings)")
        return 1 if errors else 0
    if args.policy_command == "test":
        return _policy_test(cat, pol, Path(args.path or s.policies_dir))
    from .identity import demo_user
    try:
        caller = demo_user(args.user).caller
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    task = pol.tasks.get(args.task)
    if task is None:
        print(f"unknown task {args.task!r} (known: {', '.join(sorted(pol.tasks))})", file=sys.stderr)
        return 2
    try:
        field_id = catalog_mod.path_id(cat.path(args.field))
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    yes = {"yes": True, "no": False, None: None}
    facts = policy_mod.Subject(yes[args.in_region], yes[args.consented])
    if args.subject is not None:
        if args.in_region or args.consented:
            print("give --subject (its facts are read) or --in-region / --consented (assumed), not both",
                  file=sys.stderr)
            return 2
        try:
            facts, notes = asyncio.run(_subject_facts(s, caller, task, field_id, args.subject, args.case_ref))
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
    else:
        notes = _assumptions(pol, caller, task, field_id, facts)
    d = policy_mod.decide(caller, task, field_id, facts)
    print(f"{d.status.value}  user={caller.user} task={task.code} field={field_id}")
    for note in notes:
        print(note)
    print(f"rule: {d.rule}")
    if d.mask:
        print(f"mask: {d.mask}")
    if d.reason:
        print(f"reason: {d.reason} / {d.reason_en}")
    return 0


def _policy_test(cat, pol, policies_dir: Path) -> int:
    """`onescreen policy test`: the decision tests of policies_dir/tests against these policies."""
    from . import policy_cases
    try:
        cases = policy_cases.load(policies_dir / policy_cases.DIRECTORY, cat, pol)
    except (ConfigError, ConfigErrors) as exc:
        for e in getattr(exc, "errors", [exc]):
            print(e.message, file=sys.stderr)
        return 1
    by_case = [policy_cases.run(case, pol) for case in cases]
    failures = [f for fs in by_case for f in fs]
    for f in failures:
        print(f, file=sys.stderr)
    for code, kinds in policy_cases.uncovered(cases, pol).items():
        print(f"{pol.tasks[code].source}: warning: no decision test of task {code} shows: {', '.join(kinds)}",
              file=sys.stderr)
    decisions = sum(len(case.expect) for case in cases)
    files = len({case.file for case in cases})
    if failures:
        print(f"FAILED ({len(failures)} of {counted(decisions, 'decision')}, in {sum(map(bool, by_case))} of "
              f"{counted(len(cases), 'case')})")
        return 1
    print(f"OK ({counted(len(cases), 'case')}, {counted(decisions, 'decision')}, {counted(files, 'file')})")
    return 0


def _assumptions(pol, caller, task, field_id: str, facts) -> list[str]:
    """What `policy explain` assumes of a subject it was not given, one line each: nothing is silently assumed."""
    from .permissions import TASK_USE
    tf = task.fields.get(field_id)
    if tf is None or not pol.permissions.allowed(caller, TASK_USE, task):
        return []  # decided before any fact of the subject matters
    out = []
    if task.jurisdiction == "own_region" and not caller.national and facts.in_region is None:
        out.append(f"assumed: the subject is OUTSIDE {caller.user}'s region ({caller.region}): task {task.code} is "
                   "limited to the caseworker's region, and no subject was given (--subject KEY decides for a real "
                   "subject; --in-region yes assumes one of the region)")
    if tf.consent and facts.consented is None:
        out.append(f"assumed: NO consent is recorded for task {task.code} (--subject KEY reads the consent store; "
                   "--consented yes assumes it)")
    return out


async def _subject_facts(s: settings_mod.Settings, caller, task, field_id: str, key: str, case_ref: str | None):
    """The facts the service would use for subject `key` (its region, its consent), read the way the service
    reads them, and one line each saying what they are (never the key or a value read)."""
    from .disclose import Door
    from .runtime import Runtime

    runtime = Runtime(s)
    try:
        snap = runtime.snapshot
        st = snap.catalog.subject_types[task.subject]
        if not st.key_pattern.match(key):
            raise ValueError(f"--subject is not a valid {st.key_label_en} ({st.key_label}), the key of task "
                             f"{task.code}'s subject type {st.id}")
        tf = task.fields.get(field_id)
        if tf is not None and tf.consent and case_ref is None:
            raise ValueError(f"give --case-ref: {tf.id} is consent-gated, and a consent opens the fields of its "
                             "own case only")
        door = Door(caller, snap, "policy-explain")
        if case_ref is not None:
            try:
                door.check_case_ref(case_ref)
            except OneScreenError as exc:
                raise ValueError(f"--case-ref: {exc.message}") from None
        await runtime.ready()
        facts = await door._facts(task, task.subject, key, [tf.path] if tf else [], False,
                                  await door._region(task, task.subject, key), case_ref or "")
    finally:
        await runtime.close()
    notes = []
    if facts.in_region is not None:
        where = snap.catalog.fields[st.region_field].ledger.id
        notes.append(f"subject: in {caller.user}'s region ({caller.region}), as read from {where}" if facts.in_region
                     else f"subject: NOT in {caller.user}'s region ({caller.region}), or not found in {where}, as "
                     "read from it")
    if facts.consented is not None:
        notes.append(f"subject: consent for task {task.code} and case {case_ref} is "
                     f"{'in force' if facts.consented else 'NOT in force (none recorded for this case, or expired)'}")
    if facts.in_region is None and facts.consented is None:
        notes.append("subject: no rule for this field depends on the subject")
    return facts, notes


def _admin_cli(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    """Admin operations from the command line, through the same validation and four-eyes rules as the API.

    The running service notices the files change and reloads them (validated) on its own."""
    from .admin import Admin
    from .runtime import Runtime
    from .errors import OneScreenError
    from .identity import demo_user

    try:
        caller = demo_user(args.user).caller
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2

    async def run() -> int:
        runtime = Runtime(s)
        admin: Admin = runtime.admin
        try:
            if args.command == "catalog" and args.catalog_command == "introspect":
                for name, typ, fields, proposed in await admin.introspect(caller, args.ledger):
                    print(f"{name:<24} {typ:<16} {proposed:<8} {', '.join(fields) if fields else '(unmapped)'}")
                return 0
            if args.command == "catalog" and args.catalog_command == "map":
                p = await admin.map_field(caller, {"id": args.id, "ledger": args.ledger, "column": args.column,
                                                   "type": args.type, "label": args.label, "label_en": args.label_en,
                                                   "sensitivity": args.sensitivity, "mask": args.mask,
                                                   "format": args.format})
            elif args.command == "catalog":
                p = await admin.retire_field(caller, args.id)
            elif args.command == "task":
                text = Path(args.file).read_text(encoding="utf-8")
                import yaml
                code = (yaml.safe_load(text) or {}).get("code", "")
                if args.task_command == "preview":
                    ledgers, newly = await admin.preview_task(caller, str(code), text)
                    print("ledgers: " + ", ".join(ledgers))
                    print("newly disclosed:" + "".join(f"\n  {n}" for n in newly) if newly else "newly disclosed: nothing")
                    return 0
                p = await admin.save_task(caller, str(code), text)
            elif args.changes_command == "list":
                for p in await admin.list(caller, args.status):
                    print(f"{p.id:>5} {p.status:<8} {p.proposer:<14} {p.summary}")
                return 0
            elif args.changes_command == "show":
                p = await admin.get(caller, args.id)
            else:
                p = await {"approve": admin.approve, "reject": admin.reject, "restore": admin.restore}[
                    args.changes_command](caller, args.id)
        except OneScreenError as exc:
            print(exc.message, file=sys.stderr)
            return 1
        finally:
            await runtime.close()
        print(f"change {p.id}: {p.status} - {p.summary}")
        for reason in p.widening:
            print(f"  widens access: {reason}")
        if p.status == "pending":
            print(f"  needs approval by a second admin: onescreen changes approve {p.id} --user OTHER")
        print(p.diff, end="")
        return 0

    return asyncio.run(run())


def _config(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    """The store's versions (import, export, versions); or the demo's own copy: export it (the only way it reaches
    the shipped files), or start it again."""
    from .demo import config as demo_config

    if s.config_url and args.config_command != "reset":
        return asyncio.run(_config_store(args, s))
    if args.config_command in ("import", "versions"):
        print("no configuration store: the files are the configuration here. Set ONESCREEN_CONFIG_URL (production "
              "with a PostgreSQL ONESCREEN_AUDIT_URL uses that database)", file=sys.stderr)
        return 2
    if args.version is not None:
        print("--version needs a configuration store (ONESCREEN_CONFIG_URL)", file=sys.stderr)
        return 2
    args.to = args.to or args.dir
    if not demo_config.parts(s):
        print("nothing to do: the configuration is not the demo's copy (production mode, or ONESCREEN_CATALOG and "
              f"ONESCREEN_POLICIES set): it is {s.catalog_path} and {s.policies_dir}", file=sys.stderr)
        return 2
    if args.config_command == "reset":
        for path in demo_config.reset(s):
            print(f"copied again from the shipped files: {path}")
        return 0
    demo_config.ensure(s)
    if args.to:
        catalog, policies = Path(args.to) / "field_catalog.yaml", Path(args.to) / "policies"
    else:
        catalog, policies = s.shipped_catalog, s.shipped_policies
    try:
        from . import catalog as catalog_mod, policy as policy_mod
        policy_mod.load(s.policies_dir, catalog_mod.load(s.catalog_path))  # never export an invalid configuration
    except (ConfigError, ConfigErrors) as exc:
        for e in getattr(exc, "errors", [exc]):
            print(e.message, file=sys.stderr)
        return 1
    written = demo_config.export(s, catalog, policies)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"nothing to write: {catalog} and {policies} already hold the demo's configuration")
    return 0


def _validate_files(catalog: Path, policies: Path) -> list[str]:
    """FILE:LINE: reason of every problem the service (loaders) or the policy lint (its errors) would refuse."""
    from . import catalog as catalog_mod, policy as policy_mod
    from .lint import lint
    try:
        cat = catalog_mod.load(catalog)
        pol = policy_mod.load(policies, cat)
    except (ConfigError, ConfigErrors) as exc:
        return [e.message for e in getattr(exc, "errors", [exc])]
    return [str(f) for f in lint(cat, pol) if f.error]


async def _config_store(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    import getpass

    from . import configstore
    from sqlalchemy.engine import make_url

    where = make_url(s.config_url).render_as_string(hide_password=True)
    store = configstore.ConfigStore(s.config_url, s.audit_timeout)
    try:
        if args.config_command == "import":
            catalog, policies = ((Path(args.source) / "field_catalog.yaml", Path(args.source) / "policies")
                                 if args.source else (s.catalog_path, s.policies_dir))
            problems = _validate_files(catalog, policies)
            for line in problems:
                print(line, file=sys.stderr)
            if problems:
                print(f"nothing imported: {counted(len(problems), 'problem')} in {catalog} and {policies}",
                      file=sys.stderr)
                return 1
            files = configstore.read_files(catalog, policies)
            by = f"{getpass.getuser()} (onescreen config import)"
            from .changes import _meta as changes_meta
            await store.create(changes_meta)
            seeded = await store.seed(files, by)
            if seeded is not None:
                print(f"{where}: configuration version {seeded.id} imported from {catalog} and {policies} "
                      f"({counted(len(files), 'file')}); it is the active version")
                return 0
            current = await store.active()
            assert current is not None
            if not args.replace:
                same = "the same files" if current.digest == configstore.digest(files) else "other files"
                print(f"{where}: the store already has an active configuration (version {current.id}, {same}): "
                      "nothing imported. The files only seed an empty store; --replace makes them a new version")
                return 0
            if current.digest == configstore.digest(files):
                print(f"{where}: version {current.id} (active) already holds these files: nothing imported")
                return 0
            version = await store.activate(files, base=current.id, by=by, source="import --replace")
            print(f"{where}: configuration version {version.id} imported from {catalog} and {policies}; it is the "
                  f"active version (was {current.id}): every pod switches to it")
            return 0
        if args.config_command == "versions":
            active_id = await store.active_id()
            for v in await store.history():
                print(f"{v.id:>6} {'active' if v.id == active_id else '':<7} {v.created_at:<33} {v.source:<24} "
                      f"{v.created_by}")
            return 0
        # export
        target = args.dir or args.to
        if not target:
            print("give the directory to write: onescreen config export DIR", file=sys.stderr)
            return 2
        version = await store.get(args.version) if args.version else await store.active()
        if version is None:
            print(f"{where}: the store holds no configuration yet (onescreen config import)", file=sys.stderr)
            return 1
        written = configstore.export(version.files, Path(target))
        for path in written:
            print(f"wrote {path}")
        print(f"configuration version {version.id} is in {target}" + ("" if written else " (nothing to change)"))
        return 0
    except configstore.ConfigStoreUnavailable as exc:
        print(f"{where}: {exc.message}", file=sys.stderr)
        return 1
    except configstore.VersionConflict as exc:
        print(exc.message, file=sys.stderr)
        return 1
    except Exception as exc:  # the store refused (no table, no privilege, unreachable): say which, never a secret
        import sqlalchemy as sa
        if not isinstance(exc, (sa.exc.SQLAlchemyError, OSError)):
            raise
        print(f"{where}: the configuration store refused ({type(getattr(exc, 'orig', exc)).__name__}); its tables "
              "are made by `onescreen audit init` (the owner role) or by this command with a role that may "
              "create them", file=sys.stderr)
        return 1
    finally:
        await store.close()


async def _audit_schema_problem(s: settings_mod.Settings) -> str | None:
    """Why the audit store at ONESCREEN_AUDIT_URL must stop the start (missing, another schema version), or None.

    An unreachable store does not: the service then answers 503 and /readyz says why until it is back."""
    from sqlalchemy.engine import make_url

    from .audit import AuditSchemaError, AuditUnavailable, setup

    if s.demo and make_url(s.audit_url).get_backend_name() == "sqlite":
        return None  # the demo's file store creates itself
    store = setup.admin_store(s)
    try:
        await store.open()
    except AuditSchemaError as exc:
        return exc.message
    except AuditUnavailable:
        return None
    finally:
        await store.close()
    return None


def _audit(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    import os

    from . import audit
    from .audit import setup

    env = dict(os.environ)
    command = args.audit_command
    try:
        if command == "public-key":
            signer = setup.signer(s, env)
            if signer is None:
                print("no checkpoint signing key: set ONESCREEN_AUDIT_SIGNING_KEY or ONESCREEN_AUDIT_SIGNING_KEY_FILE",
                      file=sys.stderr)
                return 1
            print(f"# key id {signer.key_id}")
            print(audit.checkpoints.public_pem(signer.public_key), end="")
            return 0
        code, out = asyncio.run(_audit_run(args, s, env))
    except ValueError as exc:
        code, out = 1, str(exc)
    except audit.AuditUnavailable as exc:
        from .audit.verify import read_failure
        code, out = 1, f"{read_failure(exc)} ({exc.reason}, {s.audit_url.split('://')[0]} store)"
    if out:
        print(out, file=sys.stdout if code == 0 else sys.stderr)
    return code


async def _audit_run(args: argparse.Namespace, s: settings_mod.Settings, env: dict[str, str]) -> tuple[int, str]:
    from . import audit
    from .audit import setup
    from .changes import _meta as changes_meta
    from .consent import _meta as consent_meta

    store = setup.admin_store(s)
    # the other stores at the same URL, and what the service role may do with their tables
    from .configstore import COMPANIONS as config_companions
    from .notify import _meta as notify_meta
    companions = [(consent_meta, "SELECT, INSERT"), (changes_meta, "SELECT, INSERT, UPDATE"), *config_companions,
                  (notify_meta, "SELECT, INSERT, UPDATE, DELETE")]
    try:
        if args.audit_command == "init":
            return 0, f"audit store: {await store.init(grant_to=args.grant, companions=companions)} " \
                      f"(schema version {audit.SCHEMA_VERSION})"
        if args.audit_command == "migrate":
            return 0, f"audit store: {await store.migrate(companions=companions)}"
        await store.open()
        if args.audit_command == "export":
            await audit.export(store, sys.stdout)
            return 0, ""
        if args.audit_command == "prove":
            from .audit.proof import prove
            from .errors import BadRequest
            try:
                proof = await prove(store, args.seq, args.reveal)
            except BadRequest as exc:
                return 1, exc.message
            return 0, json.dumps(proof, ensure_ascii=False, indent=2, sort_keys=True)
        if args.audit_command == "checkpoints":
            lines = [f"{'number':>8} {'records':>21} {'count':>8}  {'sealed at':32} {'key':24} root"]
            after = 0
            while batch := await store.checkpoints(after, 1000):
                lines += [f"{c.number:>8} {f'{c.first_seq}-{c.seq}':>21} {c.count:>8}  {c.at:32} {c.key_id:24} {c.root}"
                          for c in batch]
                after = batch[-1].number
            return 0, "\n".join(lines if len(lines) > 1 else ["no checkpoints yet"])
        result = await audit.verify(store, keys=setup.key_ring(s, env), witness=setup.witness(s),
                                    from_number=args.from_number)
        return audit.summary(result)
    except audit.AuditUnavailable as exc:
        if args.audit_command == "verify":
            return audit.unavailable(exc)
        raise
    finally:
        await store.close()


def _notify(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    """`onescreen notify run [--once]`: the receipts' delivery worker, beside the service."""
    import signal
    import types

    from . import catalog as catalog_mod, logs, notify, policy as policy_mod, receipts
    from .audit import setup
    from connectors.base import async_url

    logs.setup(s.log_level)
    if s.notify_smtp_host is None:
        print("no SMTP server: set ONESCREEN_NOTIFY_SMTP_HOST (and _PORT, _FROM)", file=sys.stderr)
        return 1
    cat = catalog_mod.load(s.catalog_path)
    snapshot = types.SimpleNamespace(catalog=cat, policies=policy_mod.load(s.policies_dir, cat))

    async def run() -> int:
        store = setup.admin_store(s)
        box = notify.Outbox(async_url(s.audit_url).render_as_string(hide_password=False))
        smtp = notify.Smtp(s.notify_smtp_host, s.notify_smtp_port, s.notify_from, s.notify_smtp_user,
                           os.environ.get("ONESCREEN_NOTIFY_SMTP_PASSWORD") or None, s.notify_smtp_starttls)
        worker = notify.Deliverer(box, store, smtp, lambda r: receipts.receipt(snapshot, r),
                                  max_attempts=s.notify_max_attempts, backoff=s.notify_backoff)
        try:
            await store.open()
            await box.open()
            if args.once:
                await worker.run_once()
            else:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                await worker.run(s.notify_interval, stop)
        finally:
            await box.close()
            await store.close()
        c = worker.counts
        print(f"receipt mails: {c['sent']} sent, {c['retry']} to retry, {c['dead']} dead")
        return 0

    try:
        return asyncio.run(run())
    except (ValueError, notify.NotifySchemaError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except OneScreenError as exc:
        print(exc.message, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
