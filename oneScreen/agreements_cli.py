"""`onescreen agreement template|validate FILE`: the reference form of a sharing agreement, and its check.

`template` prints the standard form (Korean first, English beside it); `validate` checks a file against the
running catalog and roles (and names a task the configuration lacks), with FILE:LINE: reason errors.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import agreements, catalog as catalog_mod, policy as policy_mod
from .errors import ConfigError, ConfigErrors
from .settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    agr = sub.add_parser("agreement", help="sharing agreements between agencies (policies/agreements/*.yaml)"
                         ).add_subparsers(dest="agreement_command", required=True)
    p = agr.add_parser("template", help="print (or write) the reference form of an agreement, Korean first")
    p.add_argument("-o", "--output", help="write it to this file instead (refused if the file exists)")
    p = agr.add_parser("validate", help="check agreement files against the catalog and roles: FILE:LINE: reason")
    p.add_argument("files", nargs="+", metavar="FILE")


def run(args: argparse.Namespace, s: Settings) -> int:
    if args.agreement_command == "template":
        if args.output:
            out = Path(args.output)
            if out.exists():
                print(f"{out} exists; give a new file name", file=sys.stderr)
                return 2
            out.write_text(agreements.TEMPLATE, encoding="utf-8")
            print(f"wrote {out}", file=sys.stderr)
        else:
            sys.stdout.write(agreements.TEMPLATE)
        return 0
    try:
        cat = catalog_mod.load(s.catalog_path)
        pol = policy_mod.load(s.policies_dir, cat)
    except (ConfigError, ConfigErrors) as exc:
        print("the running configuration is invalid; fix it first:", file=sys.stderr)
        for e in getattr(exc, "errors", [exc]):
            print(e.message, file=sys.stderr)
        return 1
    failed = 0
    for name in args.files:
        try:
            a = agreements.load_file(Path(name), cat, pol.roles, pol.tasks)
        except (ConfigError, ConfigErrors) as exc:
            failed += 1
            for e in getattr(exc, "errors", [exc]):
                print(e.message, file=sys.stderr)
            continue
        print(f"{name}: OK ({a.id}: {a.agency} -> {a.signer}, {len(a.fields)} field(s), "
              f"{a.valid_from}..{a.valid_until})")
    return 1 if failed else 0
