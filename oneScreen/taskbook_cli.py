"""The command line of the task spreadsheet and the catalog-wide reports (kept out of cli.py, which routes here).

`onescreen task template|export|import` (taskbook.py) and `onescreen catalog matrix|report` (reports.py), over
the active configuration: the configuration store's active version (ONESCREEN_CONFIG_URL), else the files.
An import proposes through admin.py like every other change (permissions, lint, four eyes, audit).
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Sequence

from . import configstore, reports, settings as settings_mod, taskbook


def running_files(s: settings_mod.Settings) -> dict[str, str]:
    """The active configuration as {path: text}: the store's active version, else the files."""
    if s.config_url:
        version = configstore.read_active_blocking(s.config_url, s.audit_timeout)
        if version is None:
            raise configstore.NotStarted("the configuration store holds no version yet (onescreen config import)")
        return dict(version.files)
    return configstore.read_files(s.catalog_path, s.policies_dir)


def run(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    from .errors import OneScreenError

    try:
        if args.command == "task":
            return _task(args, s)
        return _report(args, s)
    except taskbook.ImportInvalid as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); nothing was proposed", file=sys.stderr)
        return 1
    except (OneScreenError, configstore.NotStarted, ValueError) as exc:
        print(getattr(exc, "message", None) or str(exc), file=sys.stderr)
        return 1


def _task(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    path = Path(args.file)
    if args.task_command == "template":
        taskbook.write_template(path)
        print(f"wrote {path}: the headers of the task spreadsheet, no rows")
        return 0
    if args.task_command == "export":
        _cat, pol = reports.load_files(running_files(s))
        n = taskbook.export(pol, path)
        print(f"wrote {path}: {len(pol.tasks)} tasks, {n} rows")
        return 0
    if not path.is_file():
        print(f"{path}: no such file", file=sys.stderr)
        return 2
    if args.dry_run:
        plan = taskbook.plan(path, running_files(s), name=str(args.file), remove_missing=args.remove_missing)
        print(plan.text(), end="")
        print("dry run: nothing proposed")
        return 0
    if not args.user:
        print("--user is required to propose (or give --dry-run)", file=sys.stderr)
        return 2
    return _import(args, s, path)


def _import(args: argparse.Namespace, s: settings_mod.Settings, path: Path) -> int:
    from .errors import OneScreenError
    from .identity import demo_user
    from .runtime import Runtime

    try:
        caller = demo_user(args.user).caller
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2

    async def go() -> int:
        runtime = Runtime(s)
        try:
            plan, p = await runtime.admin.import_tasks(caller, path, name=str(args.file),
                                                       remove_missing=args.remove_missing)
        except taskbook.ImportInvalid:
            raise
        except OneScreenError as exc:
            print(exc.message, file=sys.stderr)
            return 1
        finally:
            await runtime.close()
        print(plan.text(), end="")
        if p is None:
            print("nothing to change: every task is as the spreadsheet says")
            return 0
        print(f"change {p.id}: {p.status} - {p.summary}")
        for reason in p.widening:
            print(f"  widens access: {reason}")
        if p.status == "pending":
            print(f"  needs approval by a second admin: onescreen changes approve {p.id} --user OTHER")
        return 0

    return asyncio.run(go())


def _print(header: Sequence[str], rows: list[Sequence[object]], as_csv: bool) -> None:
    if as_csv:
        sys.stdout.write(reports.rows_csv(header, rows))
        return
    text = [[str("" if v is None else v) for v in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in text) for i in range(len(header))]
    for r in text:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def _version_files(s: settings_mod.Settings, which: str) -> dict[str, str]:
    if which.isdigit():
        if not s.config_url:
            raise ValueError(f"version {which}: versions live in the configuration store (ONESCREEN_CONFIG_URL)")

        async def get() -> dict[str, str]:
            store = configstore.ConfigStore(s.config_url, s.audit_timeout)
            try:
                return dict((await store.get(int(which))).files)
            finally:
                await store.close()
        return asyncio.run(get())
    d = Path(which)
    if not (d / configstore.CATALOG).is_file() or not (d / configstore.POLICIES).is_dir():
        raise ValueError(f"{which}: neither a version number nor a directory with field_catalog.yaml and policies/")
    return configstore.read_files(d / configstore.CATALOG, d / configstore.POLICIES)


def _report(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    if args.catalog_command == "matrix":
        cat, pol = reports.load_files(running_files(s))
        m = reports.matrix(cat, pol, sensitivity=args.sensitivity, agency=args.agency)
        if args.csv:
            sys.stdout.write(m.csv())
        else:
            _print(["field", "sensitivity", *m.tasks], [[f.id, f.sensitivity, *cells] for f, cells in m.rows], False)
        return 0
    name, extra = args.report, args.args
    if name == "diff":
        if len(extra) != 2:
            print("usage: onescreen catalog report diff A B (store version numbers or directories)", file=sys.stderr)
            return 2
        fields, changes = reports.version_diff(_version_files(s, extra[0]), _version_files(s, extra[1]))
        if args.csv:
            _print(["task", "kind", "change"], [["", "catalog", line] for line in fields]
                   + [[c.code, c.kind, line] for c in changes for line in c.lines], True)
        else:
            if fields:
                print("\n".join(["catalog", *(f"  {line}" for line in fields)]))
            print("\n".join(c.text() for c in changes) if changes else "no task differs")
        return 0
    cat, pol = reports.load_files(running_files(s))
    if name == "unused":
        _print(["field", "label", "agency", "ledger", "sensitivity"],
               [[f.id, f.label, f.ledger.agency.id, f.ledger.id, f.sensitivity]
                for f in reports.unused_fields(cat, pol)], args.csv)
    elif name == "no-basis":
        _print(["task", "field", "sensitivity", "reason"],
               [[t.code, tf.id, tf.target.sensitivity, why] for t, tf, why in reports.without_basis(pol)], args.csv)
    elif name == "idle-roles":
        _print(["role", "label", "admin actions"],
               [[r, label, " ".join(actions)] for r, label, actions in reports.idle_roles(pol)], args.csv)
    else:
        if len(extra) != 1 or extra[0] not in cat.fields:
            print("usage: onescreen catalog report full-view FIELD (a catalog field id, e.g. citizen.rrn)",
                  file=sys.stderr)
            return 2
        from .identity import demo_users
        users = [(u.user, u.roles) for u in demo_users()] if s.demo else []
        views = reports.who_sees_in_full(pol, extra[0])
        _print(["task", "path", "roles", "consent", "basis", "demo users"],
               [[v.task, v.path, " ".join(v.roles), "예" if v.consent else "", v.basis,
                 len(reports.users_with(v.roles, users))] for v in views], args.csv)
        all_users = reports.users_with({r for v in views for r in v.roles}, users)
        if not args.csv:
            print(f"{extra[0]} in full: {len(views)} task(s), "
                  f"{len({r for v in views for r in v.roles})} role(s), {len(all_users)} demo user(s)")
    return 0
