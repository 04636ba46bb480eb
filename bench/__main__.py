"""`python -m bench [NAME ...] [--smoke] [--profile] [--keep]`: run the benchmarks, print every target.

NAME is one or more of: fanout peers fetch config memory heap audit hostile tasks openloop cores (default: all
eleven, in that order).
--smoke   tiny loads, seconds each; targets are printed but not judged (CI runs this; never asserts time)
--profile also record the oneScreen worker with py-spy under load (extra, unmeasured runs) and print top frames
--keep    keep the temporary directory (generated configs, logs, raw profiles)
--minutes N  the length of `memory`'s soak (default 2; 10 for the figure in BENCHMARKS.md; smoke: 20 s)

BENCH_WITHOUT=wrk,node,peers,postgres (environment) runs as if those were missing (to check the skips).
"""
from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import time
import traceback

from .common import (Result, Run, fmt, machine, pg_available, pg_settings, print_targets, say, stop_all,
                     tmpdir)

BENCHES = {"fanout": "fanout", "peers": "peers", "fetch": "fetch_economy", "config": "config_scale",
           "memory": "memory", "heap": "heap", "audit": "audit_rate", "hostile": "hostile", "tasks": "taskbook_scale",
           "openloop": "openloop", "cores": "cores", "tails": "tails"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"benchmarks to run (default: all): {' '.join(BENCHES)}")
    p.add_argument("--smoke", action="store_true", help="tiny loads; print, do not judge")
    p.add_argument("--profile", action="store_true", help="py-spy profiles of the oneScreen worker under load")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--minutes", type=float, help="length of the memory soak in minutes (default 2)")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHES]
    if unknown:
        p.error(f"unknown benchmark {unknown[0]!r} (known: {' '.join(BENCHES)})")
    names = args.names or list(BENCHES)
    run = Run(smoke=args.smoke, tmp=tmpdir("onescreen-bench-"), profile=args.profile, minutes=args.minutes,
              argv=sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    say(f"oneScreen benchmarks{' (SMOKE: tiny loads, nothing judged)' if run.smoke else ''}: {' '.join(names)}")
    info = machine()
    info["audit store"] = pg_settings() if pg_available() else "SQLite file (PostgreSQL not running)"
    for k, v in info.items():
        say(f"  machine {k}: {v}")
    say(f"  temporary directory: {run.tmp}")
    if not run.has_wrk:
        say("  note: wrk not found: HTTP load figures are skipped (apt-get install -y wrk)")
    failed = False
    try:
        for name in names:
            mod = importlib.import_module(f"bench.{BENCHES[name]}")
            say("")
            say(f"== {name}: {mod.TITLE}")
            say(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores: above ~0.5 "
                f"someone else is using this machine and the figures are noisier)")
            t0 = time.monotonic()
            try:
                res = mod.run_bench(run)
            except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
                failed = True
                res = Result(name, mod.TITLE, error=f"{exc.__class__.__name__}: {exc}")
                traceback.print_exc(file=sys.stdout)
            finally:
                stop_all()
            res.seconds = time.monotonic() - t0
            run.results.append(res)
            print_targets(run, res)
            for n in res.notes:
                say(f"  note: {n}")
            say(f"  reproduce: {run.command(name)}")
            verdicts = [t.verdict(run.smoke) for t in res.targets]
            status = "ERROR " + res.error if res.error else (
                f"{verdicts.count('PASS')} PASS, {verdicts.count('FALLS SHORT')} FALLS SHORT, "
                f"{verdicts.count('NOT MEASURED')} NOT MEASURED" if not run.smoke else f"{len(verdicts)} targets printed")
            say(f"BENCH {name}: done in {res.seconds:.1f} s ({status})")
    finally:
        stop_all()
        run.drop_audit_stores()
    say("")
    say("== summary" + (" (smoke: figures from tiny loads, not judged)" if run.smoke else ""))
    for res in run.results:
        for t in res.targets:
            why = f" ({t.note})" if t.measured is None and t.note else ""
            say(f"  {res.name:<7} {t.what:<72} {fmt(t.measured, t.unit):>12}  {t.op} {fmt(t.limit, t.unit):<8} "
                f"{t.verdict(run.smoke)}{why}")
        for what, why in res.not_measured.items():
            say(f"  {res.name:<7} {what}: NOT MEASURED ({why})")
        if res.error:
            say(f"  {res.name:<7} ERROR: {res.error}")
    total = time.monotonic() - started
    say(f"total time: {total:.1f} s  ({' '.join(f'{r.name} {r.seconds:.0f}s' for r in run.results)})")
    say(f"command: {run.command(' '.join(args.names)).rstrip()}" + (" --profile" if run.profile else ""))
    if not args.keep:
        shutil.rmtree(run.tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
