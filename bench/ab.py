"""A/B: the working tree against a git ref, on the peer screen, interleaved in one run.

    python -m bench.ab [REF] [--rounds N] [--seconds S]      (REF defaults to HEAD)

This machine is shared and noisy: two runs of `python -m bench peers` minutes apart differ by more than
most single changes gain. Here both builds serve the same 30-field screen (production mode, RS256, policy,
masking, a durable PostgreSQL audit record per screen) over the same emulator, uncached (another subject per
request, bench/distinct.lua: 6 ledger reads per screen) and all-cached (one subject), at c=128, alternating A, B, A, B... for N rounds; each figure is the server's CPU ms per screen (its own CPU
time over its requests, so a busy neighbour shows as fewer screens/s, not as more CPU per screen). It prints
every round and the median ratio. The ref is checked out with `git worktree` into the run's temp dir and
imported through PYTHONPATH; nothing of it is kept.
"""
from __future__ import annotations

import argparse
import statistics
import sys

from .common import ROOT, Identity, Run, ref_and_tree, say, tmpdir, wrk
from .configs import peer_config, rest_connector
from .servers import start_emulator, start_onescreen

EXTRA = {"items_path": None, "result_code_path": None, "total_count_path": None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    p.add_argument("ref", nargs="?", default="HEAD")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=6)
    args = p.parse_args(argv)
    run = Run(smoke=False, tmp=tmpdir("onescreen-ab-"))
    with ref_and_tree(run, args.ref) as builds:
        return _compare(run, args, builds)


def _compare(run: Run, args: argparse.Namespace, builds: dict[str, str]) -> int:
    emu, ledger_url = start_emulator(run, 20.0)
    identity = Identity(run.tmp)
    cpu: dict[tuple[str, str], list[float]] = {}
    for rnd in range(args.rounds):
        for build, path in builds.items():
            for mode, ttl in (("uncached", 0), ("cached", 3600)):
                cfg = peer_config(run.tmp / f"cfg-{mode}", rest_connector("BENCH_LEDGER_URL", "BENCH_LEDGER_KEY",
                                                                          prefix="/ledger", **EXTRA), cache_ttl=ttl)
                side = "ref" if path != str(ROOT) else "tree"
                name = f"{mode}-{rnd}-{side}"
                s = start_onescreen(run, name, cfg, identity, ledger_url=ledger_url, audit_url=run.audit_url(side, path),
                                    env_extra={"PYTHONPATH": path})
                distinct = mode == "uncached"  # another subject per request: 6 ledger reads per screen, as judged
                if distinct:
                    s.body.write_bytes(cfg.variables_body("K1"))
                wrk(run, s.url, 32, 2, body_file=s.body, headers=s.headers, distinct=distinct)
                load = wrk(run, s.url, 128, args.seconds, body_file=s.body, headers=s.headers, server_pid=s.proc.pid,
                           distinct=distinct)
                s.proc.stop()
                ms = 10 * load.server_cpu * load.seconds / load.requests if load.requests else float("nan")
                cpu.setdefault((build, mode), []).append(ms)
                say(f"  round {rnd + 1} {build:<14} {mode:<9} {load.rps:7.0f} screens/s  cpu {load.server_cpu:3.0f}%"
                    f"  {ms:.2f} CPU ms/screen  errors {load.errors}")
    emu.stop()
    ref, tree = builds
    for mode in ("uncached", "cached"):
        a, b = statistics.median(cpu[(ref, mode)]), statistics.median(cpu[(tree, mode)])
        say(f"  {mode:<9} median CPU ms/screen: {ref} {a:.2f}, working tree {b:.2f}: "
            f"the working tree does {a / b:.2f}x the screens per CPU second")
    say(f"  command: cd {ROOT} && {sys.executable} -m bench.ab {ref} --rounds {args.rounds} --seconds {args.seconds:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
