"""4. Scale of configuration: start-up and reload time and memory for a generated catalog of 500 ledgers x 50
fields and 400 tasks, and the growth from 50 to 500 ledgers (invariant 8: a reload validates everything and
builds a whole new snapshot).

Each size runs in a fresh process on CPU 1 (clean RSS): it imports the service, builds the app's Runtime in
production mode (catalog.load, policy.load, graphql.build_schema, a connector per ledger, the gateway) and
then, after appending a comment to one task file (an admin's edit), calls Runtime.reload() once; the three named stages are timed by wrapping them in that process. Memory
is the RSS added by the Runtime (after imports) and what a reload leaves (the old snapshot must be freed).
"""
from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
import time
import weakref
from pathlib import Path

from . import profile as prof
from .common import (ROOT, SERVER_CPU, Identity, Result, Run, Target, base_env, rss_mb, say,
                     table)
from .configs import scale_config

NAME = "config"
TITLE = "Scale of configuration: start-up, reload and memory for 500 ledgers x 50 fields, 400 tasks; growth"
FIELDS = 50
TASKS_PER_LEDGER = 400 / 500


def run_bench(run: Run) -> Result:
    res = Result(NAME, TITLE)
    sizes = (10, 20) if run.smoke else (50, 100, 200, 500)
    identity = Identity(run.tmp)
    rows, got = [], {}
    for n in sizes:
        tasks = max(1, round(n * TASKS_PER_LEDGER))
        d = run.tmp / f"scale-{n}"
        catalog, policies, env = scale_config(d, n, FIELDS, tasks)
        audit = run.audit_url()  # production refuses any audit store but PostgreSQL
        env = base_env(**identity.env(), **env, ONESCREEN_CATALOG=str(catalog), ONESCREEN_POLICIES=str(policies),
                       ONESCREEN_DATA_DIR=str(d / "data"), ONESCREEN_AUDIT_URL=audit)
        cmd = run.pin(SERVER_CPU) + [sys.executable, "-m", "bench.config_scale", "--child"]
        raw = None
        if run.profile and n == sizes[-1] and prof.py_spy():
            raw = run.tmp / f"profile-config-{n}.txt"
            cmd = [prof.py_spy(), "record", "--format", "raw", "-r", "100", "-o", str(raw), "--"] + cmd
        out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        line = next((l for l in out.stdout.splitlines() if l.startswith("{")), None)
        if out.returncode != 0 or line is None:
            raise RuntimeError(f"child for {n} ledgers failed: {out.stdout[-500:]} {out.stderr[-1500:]}")
        r = json.loads(line)
        got[n] = r
        rows.append([n, r["fields"], r["tasks"], f"{r['import_s']:.2f}", f"{r['start_s']:.2f}",
                     f"{r['start_stages']['catalog']:.2f}", f"{r['start_stages']['policy']:.2f}",
                     f"{r['start_stages']['schema']:.2f}", f"{r['start_stages']['rest']:.2f}",
                     f"{r['reload_s']:.2f}", f"{r['rss_start_mb']:.0f}", f"{r['rss_reload_mb']:+.0f}",
                     "yes" if r["old_freed"] else "NO",
                     f"{r['catalog_kb']:,.0f}"])
        say(f"  {n} ledgers: start-up {r['start_s']:.2f} s, reload {r['reload_s']:.2f} s, "
            f"+{r['rss_start_mb']:.0f} MB RSS")
        if raw is not None:
            prof.report(raw, f"start-up + reload of {n} ledgers", say=say, table=prof.CONFIG_COMPONENTS)
    table(["ledgers", "fields", "tasks", "import s", "start-up s", "catalog.load", "policy.load", "build_schema",
           "rest of start", "reload s", "RSS MB (start)", "RSS after reload", "old snapshot freed",
           "catalog KB"], rows)
    say("  (start-up: Runtime() in production mode, after imports; stages in seconds; RSS: MB added by the Runtime; "
        "'after reload': RSS change across one reload, after gc; "
        "freed: the old snapshot is gone after the reload (weakref))")
    say(f"  command: {run.command(NAME)}")
    big, small = got[sizes[-1]], got[sizes[0]]
    scale = sizes[-1] / sizes[0]
    t_ratio = (big["start_s"] / small["start_s"]) / scale
    m_ratio = (big["rss_start_mb"] / max(small["rss_start_mb"], 0.1)) / scale
    exp_t = math.log(big["start_s"] / small["start_s"]) / math.log(scale)
    exp_m = math.log(max(big["rss_start_mb"], 0.1) / max(small["rss_start_mb"], 0.1)) / math.log(scale)
    say(f"  growth {sizes[0]} -> {sizes[-1]} ledgers: start-up time x{big['start_s'] / small['start_s']:.1f} "
        f"(exponent {exp_t:.2f}), memory x{big['rss_start_mb'] / max(small['rss_start_mb'], 0.1):.1f} "
        f"(exponent {exp_m:.2f}); 1.00 is linear")
    label = f"{sizes[-1]} ledgers"
    res.targets += [
        Target(f"start-up, {label} x {FIELDS} fields, {big['tasks']} tasks", big["start_s"], 3.0, "<", " s",
               f"+{big['import_s']:.1f} s imports; {big['rss_start_mb']:.0f} MB"),
        Target(f"reload, {label}", big["reload_s"], 1.0, "<", " s"),
        Target(f"start-up time per ledger, {label} / {sizes[0]} (linear: 1.0)", t_ratio, 1.25, "<=", "x",
               f"exponent {exp_t:.2f}"),
        Target(f"memory per ledger, {label} / {sizes[0]} (linear: 1.0)", m_ratio, 1.25, "<=", "x",
               f"exponent {exp_m:.2f}"),
    ]
    return res


# ---------------------------------------------------------------- the child process
def child() -> None:
    t0 = time.perf_counter()
    from oneScreen import catalog as catalog_mod, policy as policy_mod, runtime as app_mod
    from oneScreen.settings import load as load_settings
    import_s = time.perf_counter() - t0
    gc.collect()
    rss0 = rss_mb()
    stages = {"catalog": 0.0, "policy": 0.0, "schema": 0.0}

    def timed(fn, key):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                stages[key] += time.perf_counter() - t
        return wrapper

    catalog_mod.load = timed(catalog_mod.load, "catalog")
    policy_mod.load = timed(policy_mod.load, "policy")
    app_mod.build_schema = timed(app_mod.build_schema, "schema")
    env = dict(os.environ)
    settings = load_settings(env)
    t = time.perf_counter()
    runtime = app_mod.Runtime(settings, env)
    start_s = time.perf_counter() - t
    start_stages = dict(stages, rest=start_s - sum(stages.values()))
    gc.collect()
    rss1 = rss_mb()
    for k in stages:
        stages[k] = 0.0
    edited = sorted(Path(settings.policies_dir).glob("tasks/*.yaml"))[0]  # an admin edits one task file
    with open(edited, "a", encoding="utf-8") as fh:
        fh.write("# edited by the benchmark: a reload must notice and rebuild\n")
    before = runtime.snapshot
    t = time.perf_counter()
    runtime.reload()
    reload_s = time.perf_counter() - t
    reload_stages = dict(stages, rest=reload_s - sum(stages.values()))
    if runtime.snapshot is before:
        raise SystemExit("Runtime.reload() kept the old snapshot although a task file changed")
    old_ref = weakref.ref(before)
    del before
    gc.collect()
    rss2 = rss_mb()
    old_freed = old_ref() is None
    snap = runtime.snapshot
    print(json.dumps({
        "ledgers": len(snap.catalog.ledgers), "fields": len(snap.catalog.fields), "tasks": len(snap.policies.tasks),
        "import_s": import_s, "start_s": start_s, "start_stages": start_stages, "reload_s": reload_s,
        "reload_stages": reload_stages, "rss_start_mb": rss1 - rss0, "rss_reload_mb": rss2 - rss1, "old_freed": old_freed,
        "catalog_kb": Path(settings.catalog_path).stat().st_size / 1024}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child()
