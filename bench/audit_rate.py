"""6. Audit: records per second into PostgreSQL from two worker processes, and the share of request time
spent on the durable audit write (invariant 7: every disclosure is audited before the response leaves).

- Rate: two processes, each with oneScreen.audit.AuditStore on the same PostgreSQL table and 64 concurrent
  appenders (one 30-field disclosure record each, its own request id), for a fixed window, sealing signed
  checkpoints as the service does (every 1,000 records or 60 s, and at the stop); the chain, the checkpoints and
  their witness copies are verified afterwards. The checkpoint cost per record is the sealers' time over the
  records they sealed.
- Share: `onescreen serve` over the six 20 ms REST ledgers (as in fan-out) under wrk at c=1 and c=32; the
  server's own histograms give the time in the audit write (onescreen_audit_write_seconds) over the time of
  the requests (onescreen_graphql_request_seconds).
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from . import profile as prof
from .common import (ROOT, Identity, Result, Run, Target, base_env, metric_sum, metrics, pg_available, say, table,
                     wrk)
from .configs import peer_config, rest_connector
from .servers import start_emulator, start_onescreen

NAME = "audit"
TITLE = "Audit: records/s into PostgreSQL from two workers; share of request time in the audit write"
TABLE = "bench_audit_rate"
APPENDERS = 64


def _event(i: int, worker: int):
    from oneScreen.audit import AuditEvent, FieldDecision, pseudonymise
    fields = tuple(FieldDecision(f"person.{l}_a{a}", "MASKED" if a == 1 else "OK")
                   for l in ("resident", "family", "building", "land", "vehicle", "health") for a in range(1, 6))
    return AuditEvent(kind="disclosure", request_id=f"w{worker}-{i:08d}", user="bench.user", organisation="BENCH",
                      role="bench_officer", task="peer_screen", legal_basis="벤치마크 (법적 근거 아님)",
                      case_ref="BENCH-0001", subject_type="person",
                      subject=pseudonymise(b"bench-pseudonym-key!", "person", f"K{i % 5000}"), fields=fields,
                      ledgers=("bench.building", "bench.family", "bench.health", "bench.land", "bench.resident",
                               "bench.vehicle"), client="127.0.0.1")


def _checkpointing(witness: str):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from oneScreen.audit import Checkpointing, Signer
    signer = Signer.ed25519(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    return Checkpointing(signer, Path(witness), every_records=1000, every_seconds=60)


async def _worker(url: str, worker: int, start_at: float, seconds: float, witness: str) -> dict:
    import dataclasses

    from oneScreen.audit import AuditStore
    store = AuditStore(url, table=TABLE, checkpointing=_checkpointing(witness))
    await store.open()
    pool = [_event(i, worker) for i in range(4096)]  # built before the window: only the store is measured
    count = 0
    await asyncio.sleep(max(0.0, start_at - time.time()))
    end = time.monotonic() + seconds
    t0 = time.monotonic()

    async def appender(k: int) -> None:
        nonlocal count
        i = k
        while time.monotonic() < end:
            # each append its own request: (request_id, request_index) is unique in the trail
            await store.append(dataclasses.replace(pool[i % len(pool)], request_id=f"w{worker}-{i:09d}"))
            count += 1
            i += APPENDERS

    try:
        await asyncio.gather(*(appender(k) for k in range(APPENDERS)))
        elapsed = time.monotonic() - t0
    finally:
        await store.close()  # seals the last checkpoint
    sealer = store.sealer
    return {"records": count, "seconds": elapsed, "batches": store.batches_committed,
            "checkpoints": sealer.sealed, "sealed_records": sealer.sealed_records, "seal_seconds": sealer.seconds}


async def _verify(url: str, witness: str) -> tuple[bool, int, int, float]:
    from oneScreen.audit import AuditStore, KeyRing, Witness
    c = _checkpointing(witness)
    store = AuditStore(url, table=TABLE)
    try:
        await store.open()
        t0 = time.perf_counter()
        v = await store.verify(keys=KeyRing([c.signer.public_key]), witness=Witness(c.witness_dir, TABLE))
        return v.ok, v.count, v.checkpoints, time.perf_counter() - t0
    finally:
        await store.close()


async def _init(url: str) -> None:
    from oneScreen.audit import AuditStore
    store = AuditStore(url, table=TABLE)
    try:
        await store.init()
    finally:
        await store.close()


def run_bench(run: Run) -> Result:
    res = Result(NAME, TITLE)
    if not pg_available():
        say("  note: PostgreSQL is not running on 127.0.0.1:5432: the audit rate is NOT MEASURED")
        res.targets.append(Target("audit records/s into PostgreSQL, two workers", None, 2000, ">=", "/s",
                                  "PostgreSQL is not running on 127.0.0.1:5432"))
    else:
        url = run.audit_url()
        asyncio.run(_init(url))
        witness = str(run.tmp / "audit-rate-witness")
        seconds = run.dur(10, 1)
        start_at = time.time() + run.dur(3.0, 1.5)  # both open their store first, then start together
        procs = [subprocess.Popen([sys.executable, "-m", "bench.audit_rate", "--worker", url, str(w), str(start_at),
                                   str(seconds), witness], cwd=ROOT, env=base_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for w in (1, 2)]
        outs = [p.communicate(timeout=seconds + 120) for p in procs]
        got = []
        for p, (out, err) in zip(procs, outs):
            line = next((l for l in out.splitlines() if l.startswith("{")), None)
            if p.returncode != 0 or line is None:
                raise RuntimeError(f"audit worker failed: {err[-800:]}")
            got.append(json.loads(line))
        total = sum(g["records"] for g in got)
        window = max(g["seconds"] for g in got)
        ok, count, checkpoints, verify_s = asyncio.run(_verify(url, witness))
        table(["worker", "records", "seconds", "records/s", "transactions", "records/transaction"],
              [[f"worker {i + 1}", f"{g['records']:,}", f"{g['seconds']:.1f}", f"{g['records'] / g['seconds']:,.0f}",
                f"{g['batches']:,}", f"{g['records'] / max(g['batches'], 1):.1f}"] for i, g in enumerate(got)])
        say(f"  two workers: {total:,} records in {window:.1f} s = {total / window:,.0f} records/s; chain "
            f"{'verified' if ok else 'BROKEN'} ({count:,} records, {checkpoints} signed checkpoints, verify took "
            f"{verify_s:.1f} s)")
        sealed = sum(g["sealed_records"] for g in got)
        seal_s = sum(g["seal_seconds"] for g in got)
        if sealed:
            say(f"  checkpoints: {sum(g['checkpoints'] for g in got)} sealed over {sealed:,} records, "
                f"{seal_s * 1000:.0f} ms sealing in all = {seal_s * 1e6 / sealed:.1f} us per record "
                f"(beside the writer, off the request path)")
        say(f"  command: {run.command(NAME)}")
        res.targets.append(Target("audit records/s into PostgreSQL, two workers", total / window, 2000, ">=", "/s",
                                  f"{APPENDERS} appenders per worker, checkpoints on; chain "
                                  f"{'ok' if ok else 'BROKEN'}"))
        if not ok:
            res.notes.append("the audit chain did not verify after two concurrent writers")

    # --- share of request time spent on the audit write, from the server's own histograms
    if not run.has_wrk:
        say("  note: wrk is not installed: the audit share of request time is NOT MEASURED")
        res.targets.append(Target("audit write / request time", None, 10.0, "<=", "%", "needs wrk"))
        return res
    identity = Identity(run.tmp)
    emu, ledger_url = start_emulator(run, 20.0)
    cfg = peer_config(run.tmp / "audit-share", rest_connector("BENCH_LEDGER_URL", "BENCH_LEDGER_KEY"), cache_ttl=0)
    server = start_onescreen(run, "audit-share", cfg, identity, ledger_url=ledger_url, audit_url=run.audit_url())
    rows, shares = [], {}
    for c in (1, 32):
        m0 = metrics(server.base)
        load = wrk(run, server.url, c, run.dur(6, 1), body_file=server.body, headers=server.headers,
                   server_pid=server.proc.pid)
        m1 = metrics(server.base)
        audit_s = metric_sum(m1, "onescreen_audit_write_seconds_sum") - metric_sum(m0, "onescreen_audit_write_seconds_sum")
        audit_n = metric_sum(m1, "onescreen_audit_write_seconds_count") - metric_sum(m0, "onescreen_audit_write_seconds_count")
        req_s = metric_sum(m1, "onescreen_graphql_request_seconds_sum") - metric_sum(m0, "onescreen_graphql_request_seconds_sum")
        if "onescreen_audit_write_seconds_sum" not in m1 or req_s <= 0:
            say("  note: the server has no onescreen_audit_write_seconds histogram: share NOT MEASURED")
            break
        shares[c] = 100 * audit_s / req_s
        rows.append([c, f"{load.rps:.0f}", f"{load.p50_ms:.1f}", f"{1000 * req_s / max(load.requests, 1):.1f}",
                     f"{1000 * audit_s / max(audit_n, 1):.2f}", f"{shares[c]:.1f}%"])
        say(f"  command: {load.command}")
    if rows:
        table(["conc", "screens/s", "p50 ms", "mean request ms", "mean audit write ms", "audit share"], rows)
    if run.profile:
        raw = run.tmp / "profile-audit-c32.txt"
        spy = prof.record(server.proc.pid, 6, raw)
        wrk(run, server.url, 32, 6, body_file=server.body, headers=server.headers)
        if spy:
            spy.wait()
        prof.report(raw, "oneScreen under c=32 (audit share run)", say=say)
    server.proc.stop()
    emu.stop()
    for c in (1, 32):
        res.targets.append(Target(f"audit write / request time at c={c}", shares.get(c), 10.0, "<=", "%"))
    return res


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        url, worker, start_at, seconds = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
        witness = sys.argv[6]
        try:
            import uvloop
            result = uvloop.run(_worker(url, worker, start_at, seconds, witness))
        except ImportError:
            result = asyncio.run(_worker(url, worker, start_at, seconds, witness))
        print(json.dumps(result), flush=True)
