"""Instructions per screen (valgrind's callgrind): the working tree against a git ref, and peer B.

    python -m bench.icount [REF] [--screens N] [--conc C] [--rounds R] [--cached] [--peer-b]

On this shared 2-core machine two timed runs a minute apart differ by 10-25%, more than most single changes
gain, so `python -m bench.ab` needs several rounds to see a 5% change. callgrind counts the instructions the
server executes instead, whatever the machine is doing (a cache miss or a descheduled core costs time, not
instructions). Work whose amount depends on timing still varies, above all whether a collection of the cyclic
GC's older generations (a walk of the whole heap) falls inside the counted window: counts of one build differ
by up to 6% (5.79-6.17 M at 600 screens), so a change of a few percent is judged by the mean of several
rounds (`--screens 600 --rounds 2` or more), which the summary line gives. Each build's server runs
under `valgrind --tool=callgrind --instr-atstart=no` (start-up at near native speed, nothing counted), takes
60 warm-up screens, then counting is switched on for N screens (`callgrind_control -i on/off`) and the total
is divided by N. The screens: the peer screen (production mode, RS256, policy, masking, a durable PostgreSQL
audit record each) over the emulator's six ledgers, another subject per screen (6 ledger reads each), or with
--cached one subject with every read cached. --peer-b counts peer B (bench/peer_b.py) on the same
distinct subjects: the reference the 0.6x target is set against. Instructions are not time (a C call and a
Python call of equal count differ), so timed figures stay `python -m bench`'s; this is for the direction and
size of a change.
"""
from __future__ import annotations

import argparse
import asyncio
import glob
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from .common import ROOT, Identity, Proc, Run, base_env, free_port, ref_and_tree, say, tmpdir, wait_http
from .configs import peer_config, rest_connector
from .servers import SERVICE_KEY, peer_b_command, start_emulator

EXTRA = {"items_path": None, "result_code_path": None, "total_count_path": None}
WARM = 60


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.icount", description=__doc__.split("\n\n")[0])
    p.add_argument("ref", nargs="?", default="HEAD")
    p.add_argument("--screens", type=int, default=300)
    p.add_argument("--conc", type=int, default=16)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--cached", action="store_true", help="one subject, every ledger read cached")
    p.add_argument("--peer-b", action="store_true", help="also count peer B on the same distinct subjects")
    args = p.parse_args(argv)
    run = Run(smoke=False, tmp=tmpdir("onescreen-icount-"))
    with ref_and_tree(run, args.ref) as builds:
        return _count(run, args, builds)


def _count(run: Run, args: argparse.Namespace, builds: dict[str, str]) -> int:
    emu, ledger_url = start_emulator(run, 20.0)
    identity = Identity(run.tmp)
    cfg = peer_config(run.tmp / "cfg", rest_connector("BENCH_LEDGER_URL", "BENCH_LEDGER_KEY", prefix="/ledger",
                                                      **EXTRA), cache_ttl=3600 if args.cached else 0)
    body = json.loads(cfg.variables_body("K1"))
    counts: dict[str, list[float]] = {}
    seq = 0
    for _ in range(args.rounds):
        for build, path in builds.items():
            seq += 1
            port = free_port()
            data = run.tmp / f"data-{seq}"
            data.mkdir()
            env = base_env(**identity.env(), ONESCREEN_CATALOG=str(cfg.catalog), ONESCREEN_POLICIES=str(cfg.policies),
                           ONESCREEN_AUDIT_URL=run.audit_url("ref" if path != str(ROOT) else "tree", path),
                           ONESCREEN_DATA_DIR=str(data), ONESCREEN_HOST="127.0.0.1",
                           ONESCREEN_PORT=str(port), BENCH_LEDGER_URL=ledger_url, BENCH_LEDGER_KEY=SERVICE_KEY,
                           PYTHONPATH=path)
            headers = {"Authorization": f"Bearer {identity.token([cfg.role])}"}

            def screen(i: int) -> dict:
                return {"method": "POST", "url": f"http://127.0.0.1:{port}/graphql", "headers": headers,
                        "json": dict(body, variables={"k": "K1" if args.cached else f"K{seq * 100_000 + i}"})}
            n = _server(run, f"oneScreen ({build})", [sys.executable, "-m", "oneScreen.cli", "serve"], env, run.tmp,
                        f"http://127.0.0.1:{port}/healthz", screen, args, seq)
            counts.setdefault(build, []).append(n)
            say(f"  {build:<14} {n / 1e6:7.3f} M instructions per screen")
    if args.peer_b and not args.cached:
        seq += 1
        port = free_port()
        cmd = peer_b_command(port)

        def peer(i: int) -> dict:
            return {"method": "GET", "url": f"http://127.0.0.1:{port}/screen",
                    "params": {"key": f"K{seq * 100_000 + i}"}}
        n = _server(run, "peer B", cmd, base_env(LEDGER_URL=ledger_url), run.tmp,
                    f"http://127.0.0.1:{port}/screen?key=K1", peer, args, seq)
        counts["peer B"] = [n]
        say(f"  {'peer B':<14} {n / 1e6:7.3f} M instructions per screen")
    emu.stop()
    # The mean of the rounds, not the least: a collection of the cyclic GC's older generations walks the whole heap,
    # and whether one falls inside a counted window is chance; it belongs in the figure, averaged over rounds.
    ref, tree = (statistics.fmean(counts[b]) for b in builds)
    spread = ", ".join(f"{b} {min(counts[b]) / 1e6:.3f}-{max(counts[b]) / 1e6:.3f} M" for b in builds)
    say(f"  {'distinct subjects' if not args.cached else 'all cached'}, {args.screens} screens at c={args.conc}: "
        f"{args.ref} {ref / 1e6:.3f} M, working tree {tree / 1e6:.3f} M instructions per screen "
        f"(tree / ref {tree / ref:.3f})" + (f"; peer B / tree {min(counts['peer B']) / tree:.3f}"
                                           if "peer B" in counts else "")
        + (f"; the mean of {args.rounds} rounds (ranges: {spread})" if args.rounds > 1 else ""))
    flags = " --cached" * args.cached + " --peer-b" * args.peer_b
    say(f"  command: cd {ROOT} && {sys.executable} -m bench.icount {args.ref} --screens {args.screens} "
        f"--conc {args.conc} --rounds {args.rounds}{flags}")
    return 0


def _server(run: Run, name: str, cmd: list[str], env: dict[str, str], cwd: Path, ready: str, request,
            args: argparse.Namespace, seq: int) -> float:
    """Start `cmd` under callgrind, warm it up, count `args.screens` requests made by `request(i)`."""
    out = run.tmp / f"callgrind-{seq}.out"
    proc = Proc(name, ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", *cmd],
                env=env, cwd=cwd, log=run.tmp / f"server-{seq}.log")
    wait_http(ready, proc, timeout=300)
    asyncio.run(_load(request, 0, WARM, args.conc))
    subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
    asyncio.run(_load(request, WARM, args.screens, args.conc))
    subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)
    subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
    time.sleep(0.5)
    proc.stop(60)
    total = max((int(line.split()[1]) for f in glob.glob(f"{out}*") for line in open(f, errors="replace")
                 if line.startswith(("totals:", "summary:"))), default=0)
    if not total:
        raise RuntimeError(f"callgrind counted nothing for {name}: {proc.tail()}")
    return total / args.screens


async def _load(request, start: int, n: int, conc: int) -> None:
    limit = asyncio.Semaphore(conc)
    async with aiohttp.ClientSession() as session:
        async def one(i: int) -> None:
            async with limit:
                kw = request(start + i)
                async with session.request(kw.pop("method"), kw.pop("url"), **kw) as r:
                    got = await r.read()
                    if r.status != 200 or b'"errors"' in got:
                        raise RuntimeError(f"screen {i} failed: HTTP {r.status} {got[:200]!r}")
        await asyncio.gather(*(one(i) for i in range(n)))


if __name__ == "__main__":
    sys.exit(main())
