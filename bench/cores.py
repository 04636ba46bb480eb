"""10. Two cores: screens/s at c=128 with one worker and with `--workers 2`, oneScreen and peer B alike, same run.

Every other HTTP benchmark pins the server to CPU 1 and the load (wrk, the ledger emulator) to CPU 0. Here the
servers may use both cores (taskset -c 0,1), so they share them with wrk and the emulator: on a 2-core machine
a second worker cannot double anything, and the scaling factor says how much of the second core a server turns
into screens. B is started the same way (uvicorn --workers 2, like `onescreen serve --workers 2`). Order: B with
1 worker, oneScreen with 1, B with 2, oneScreen with 2, each after a short warm-up, distinct subjects
(bench/distinct.lua), oneScreen in production mode with no cache and the durable audit record.
"""
from __future__ import annotations

import os
from pathlib import Path

from .common import Identity, Result, Run, Target, say, table, wrk
from .configs import peer_config, rest_connector
from .openloop import EXTRA
from .servers import start_emulator, start_onescreen, start_python_peer

NAME = "cores"
TITLE = "Two cores: screens/s at c=128, --workers 2 vs 1, oneScreen and B in the same run"
BOTH = "0,1"


def tree_ticks(pid: int) -> int:
    """CPU ticks (user + system) of `pid` and its children (uvicorn's workers)."""
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            parts = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(d.name) == pid or int(parts[1]) == pid:
            total += int(parts[11]) + int(parts[12])
    return total


def run_bench(run: Run) -> Result:
    res = Result(NAME, TITLE)
    if not run.has_wrk:
        why = "needs wrk (apt-get install -y wrk)"
        res.targets += [Target("oneScreen screens/s, 2 workers / 1 worker", None, 1.0, ">", "x", why),
                        Target("B screens/s, 2 workers / 1 worker (reference)", None, 1.0, ">", "x", why)]
        return res
    if (os.cpu_count() or 1) < 2:
        res.not_measured["two cores"] = "this machine has one CPU"
        return res
    d, warm = run.dur(10, 1), run.dur(3, 0)
    emu, ledger_url = start_emulator(run, 20.0)
    identity = Identity(run.tmp)
    cfg = peer_config(run.tmp / "cores", rest_connector("BENCH_LEDGER_URL", "BENCH_LEDGER_KEY", prefix="/ledger",
                                                        **EXTRA), cache_ttl=0)
    got: dict[tuple[str, int], tuple[float, float, float, float]] = {}
    commands = []
    for workers in (1, 2):
        for label in ("B", "oneScreen"):
            if label == "B":
                s = start_python_peer(run, "B", ledger_url, workers=workers, cpus=BOTH)
            else:
                s = start_onescreen(run, f"cores-{workers}", cfg, identity, ledger_url=ledger_url,
                                    audit_url=run.audit_url(), env_extra={"ONESCREEN_WORKERS": str(workers)},
                                    cpus=BOTH)
                s.body = run.tmp / f"cores-variables-{workers}.json"
                s.body.write_bytes(cfg.variables_body("K1"))
            if warm:
                wrk(run, s.url, 32, warm, body_file=s.body, headers=s.headers, distinct=True)
            t0 = tree_ticks(s.proc.pid)
            load = wrk(run, s.url, 128, d, body_file=s.body, headers=s.headers, distinct=True)
            cpu = 100 * (tree_ticks(s.proc.pid) - t0) / os.sysconf("SC_CLK_TCK") / load.seconds
            got[(label, workers)] = (load.rps, load.p50_ms, load.p99_ms, cpu)
            say(f"  {label:<9} workers={workers}  {load.rps:8.1f} screens/s  p50 {load.p50_ms:6.1f} ms  p99 "
                f"{load.p99_ms:6.1f} ms  errors {load.errors}  server cpu {cpu:.0f}%")
            if workers == 2:
                commands.append(f"{label}: {load.command}")
            s.proc.stop()
    emu.stop()
    rows = [[label, w, f"{v[0]:.0f}", f"{v[1]:.1f}", f"{v[2]:.1f}", f"{v[3]:.0f}"] for (label, w), v in got.items()]
    table(["server (CPUs 0,1)", "workers", "screens/s", "p50 ms", "p99 ms", "server cpu% (all workers)"], rows)
    say("  (the servers share both cores with wrk and the ledger emulator: 200% server cpu is out of reach)")
    for c in commands:
        say(f"  command: {c}")
    for label, what in (("oneScreen", "oneScreen screens/s, 2 workers / 1 worker"),
                        ("B", "B screens/s, 2 workers / 1 worker (reference)")):
        one, two = got[(label, 1)][0], got[(label, 2)][0]
        res.targets.append(Target(what, two / one if one else None, 1.0, ">", "x",
                                  f"{one:.0f} -> {two:.0f} screens/s"))
    o = res.targets[0].measured
    b = res.targets[1].measured
    if o and b:
        res.notes.append(f"scaling with a second worker: oneScreen {o:.2f}x, B {b:.2f}x")
    return res
