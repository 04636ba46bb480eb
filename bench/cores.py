"""10. Two cores: screens/s at c=128 with one worker and with `--workers 2`, oneScreen and peer B alike, same run.

Every other HTTP benchmark pins the server to CPU 1 and the load (wrk, the ledger emulator) to CPU 0. Here the
servers may use both cores (taskset -c 0,1), so they share them with wrk and the emulator: on a 2-core machine
a second worker cannot double anything, and the scaling factor says how much of the second core a server turns
into screens. B is started the same way (uvicorn --workers 2, like `onescreen serve --workers 2`). The four
servers are started once; three rounds each load B with 1 worker, oneScreen with 1, B with 2, oneScreen with 2
(seconds apart), and the median round's factor is judged, as `bench peers` judges its ratio. Distinct
subjects (bench/distinct.lua), oneScreen in production mode with no cache and the durable audit record.

To say why a factor is what it is, each run also gives the server's CPU per screen (a second worker that costs
more CPU per screen is contending for something) and how busy the whole machine was (near 200%, a second worker
has no core to use), and the run starts by measuring how much a second process adds to pure Python CPU work on
this machine (two cores of a virtual machine may share a physical core: then not even a loop scales 2x).
"""
from __future__ import annotations

import multiprocessing
import os
import time
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


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine so far (/proc/stat's cpu line; idle and iowait are not busy)."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def _spin(seconds: float, out) -> None:
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(10_000):
            n += 1
    out.put(n)


def cpu_ceiling(seconds: float) -> float:
    """How much a second process adds for pure Python CPU work on this machine: the work two processes do at once
    over the work one does alone (2.0 on two idle, independent cores; less when the cores are hyperthreads of one
    physical core, share a host's core, or run other things). No server can scale past it."""
    def work(procs: int) -> int:
        q = multiprocessing.Queue()
        ps = [multiprocessing.Process(target=_spin, args=(seconds, q)) for _ in range(procs)]
        for p in ps:
            p.start()
        total = sum(q.get() for _ in ps)
        for p in ps:
            p.join()
        return total
    one = work(1)
    return work(2) / one if one else 0.0


def run_bench(run: Run) -> Result:
    res = Result(NAME, TITLE)
    if not run.has_wrk:
        why = "needs wrk (apt-get install -y wrk)"
        res.targets += [Target("oneScreen screens/s, 2 workers / 1 worker (median round)", None, 1.0, ">", "x", why),
                        Target("B screens/s, 2 workers / 1 worker (median round; reference)", None, 1.0, ">", "x", why)]
        return res
    if (os.cpu_count() or 1) < 2:
        res.not_measured["two cores"] = "this machine has one CPU"
        return res
    d, warm = run.dur(10, 1), run.dur(3, 0)
    ceiling = cpu_ceiling(run.dur(3, 1))
    say(f"  pure CPU work, two processes at once / one alone: {ceiling:.2f}x (the most a second worker can add)")
    emu, ledger_url = start_emulator(run, 20.0)
    identity = Identity(run.tmp)
    cfg = peer_config(run.tmp / "cores", rest_connector("BENCH_LEDGER_URL", "BENCH_LEDGER_KEY", prefix="/ledger",
                                                        **EXTRA), cache_ttl=0)
    servers = {}
    for workers in (1, 2):
        servers[("B", workers)] = start_python_peer(run, "B", ledger_url, workers=workers, cpus=BOTH)
        s = start_onescreen(run, f"cores-{workers}", cfg, identity, ledger_url=ledger_url, audit_url=run.audit_url(),
                            env_extra={"ONESCREEN_WORKERS": str(workers)}, cpus=BOTH)
        s.body = run.tmp / f"cores-variables-{workers}.json"
        s.body.write_bytes(cfg.variables_body("K1"))
        servers[("oneScreen", workers)] = s
    if warm:
        for s in servers.values():
            wrk(run, s.url, 32, warm, body_file=s.body, headers=s.headers, distinct=True)
    rounds = 3 if not run.smoke else 1
    per_round: list[dict[tuple[str, int], tuple[float, float, float, float, float]]] = []
    commands = []
    for r in range(rounds):  # every round: the four runs seconds apart, so each ratio is taken at one moment
        got: dict[tuple[str, int], tuple[float, float, float, float, float]] = {}
        for (label, workers), s in servers.items():
            t0, (b0, a0) = tree_ticks(s.proc.pid), machine_busy()
            load = wrk(run, s.url, 128, d, body_file=s.body, headers=s.headers, distinct=True)
            cpu = 100 * (tree_ticks(s.proc.pid) - t0) / os.sysconf("SC_CLK_TCK") / load.seconds
            b1, a1 = machine_busy()
            busy = 100 * (os.cpu_count() or 1) * (b1 - b0) / max(1, a1 - a0)
            got[(label, workers)] = (load.rps, load.p50_ms, load.p99_ms, cpu, busy)
            say(f"  round {r + 1}: {label:<9} workers={workers}  {load.rps:8.1f} screens/s  p50 {load.p50_ms:6.1f} ms"
                f"  p99 {load.p99_ms:6.1f} ms  errors {load.errors}  server cpu {cpu:.0f}%  machine busy {busy:.0f}%"
                f"  ({10 * cpu / load.rps if load.rps else 0:.2f} server CPU ms/screen)")
            if r == 0 and workers == 2:
                commands.append(f"{label}: {load.command}")
        per_round.append(got)
    for s in servers.values():
        s.proc.stop()
    emu.stop()
    say(f"  load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = []
    for r, got in enumerate(per_round):
        rows += [[r + 1, label, w, f"{v[0]:.0f}", f"{v[1]:.1f}", f"{v[2]:.1f}", f"{v[3]:.0f}",
                  f"{10 * v[3] / v[0] if v[0] else 0:.2f}", f"{v[4]:.0f}"] for (label, w), v in got.items()]
    table(["round", "server (CPUs 0,1)", "workers", "screens/s", "p50 ms", "p99 ms", "server cpu% (all workers)",
           "server CPU ms/screen", "machine busy %"], rows)
    say("  (the servers share both cores with wrk and the ledger emulator, and with whatever else runs on the "
        "machine: 200% server cpu is out of reach)")
    for c in commands:
        say(f"  command: {c}")
    factors = {}
    for label, what in (("oneScreen", "oneScreen screens/s, 2 workers / 1 worker (median round)"),
                        ("B", "B screens/s, 2 workers / 1 worker (median round; reference)")):
        ratios = sorted(g[(label, 2)][0] / g[(label, 1)][0] for g in per_round if g[(label, 1)][0])
        factors[label] = ratios[len(ratios) // 2] if ratios else None
        res.targets.append(Target(what, factors[label], 1.0, ">", "x",
                                  f"rounds {', '.join(f'{x:.2f}' for x in ratios)}"))
    if factors["oneScreen"] and factors["B"]:
        res.notes.append(f"scaling with a second worker (median round): oneScreen {factors['oneScreen']:.2f}x, "
                         f"B {factors['B']:.2f}x; pure CPU work scales {ceiling:.2f}x on this machine")
    return res
