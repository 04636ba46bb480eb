"""A slow, failing or dead ledger costs its own fields and no more (invariant 5)."""
from __future__ import annotations

import asyncio
import dataclasses
import re
import time

from connectors.base import ConnectorError
from oneScreen import catalog as catalog_mod
from oneScreen.gateway import Gateway, KeyRows, LedgerFailure
from oneScreen.metrics import Metrics
from oneScreen.planner import Fetch
from oneScreen.settings import ROOT

KEY = "900101-1234567"


class Scripted:
    """A connector whose answers a test scripts: 'ok', 'retryable', 'fatal' or 'hang', one per call."""

    def __init__(self, script: list[str], default: str = "ok") -> None:
        self.script, self.default, self.calls = list(script), default, 0

    async def fetch(self, keys, columns):
        self.calls += 1
        what = self.script.pop(0) if self.script else self.default
        if what == "retryable":
            raise ConnectorError("HTTP 500 from agency API", retryable=True)
        if what == "fatal":
            raise ConnectorError("agency API rejected the service key (resultCode 30)")
        if what == "hang":
            await asyncio.sleep(3600)
        return {k: [{c: "v" for c in columns}] for k in keys}

    async def close(self):
        pass


class Clock:
    """The breakers' clock, moved by the test (no sleeping until a circuit may close)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gateway(conn, clock=time.monotonic, **ledger_changes):
    cat = catalog_mod.load(ROOT / "field_catalog.yaml")
    ledger = dataclasses.replace(cat.ledgers["nhis.eligibility"], cache_ttl=0, **ledger_changes)
    return Gateway({ledger.id: ledger}, {ledger.id: conn}, Metrics(), clock), ledger


async def read(gw, ledger):
    return (await gw.run([Fetch(ledger, (KEY,), ("insured_type",))]))[(ledger.id, KEY)]


async def test_a_retryable_failure_is_retried_and_can_recover():
    conn = Scripted(["retryable", "retryable", "ok"])
    gw, ledger = gateway(conn, retries=2)
    result = await read(gw, ledger)
    assert isinstance(result, KeyRows) and conn.calls == 3
    assert gw.circuits()[ledger.id] == "closed"


async def test_a_non_retryable_failure_is_not_retried():
    conn = Scripted([], default="fatal")
    gw, ledger = gateway(conn, retries=3)
    result = await read(gw, ledger)
    assert isinstance(result, LedgerFailure) and conn.calls == 1
    assert "resultCode 30" in result.reason


async def test_repeated_failures_open_the_circuit_until_a_half_open_probe_closes_it():
    conn = Scripted([], default="retryable")
    clock = Clock()
    gw, ledger = gateway(conn, clock, retries=2, breaker_failures=3, breaker_reset=30)
    first = await read(gw, ledger)
    assert isinstance(first, LedgerFailure) and conn.calls == 3 and "after 3 attempts" in first.reason
    assert gw.circuits()[ledger.id] == "open"
    second = await read(gw, ledger)
    assert isinstance(second, LedgerFailure) and "circuit open" in second.reason
    assert conn.calls == 3  # no call while open
    clock.now += 29.9
    assert "circuit open" in (await read(gw, ledger)).reason and conn.calls == 3
    clock.now += 0.1
    conn.default = "ok"
    third = await read(gw, ledger)
    assert isinstance(third, KeyRows) and conn.calls == 4  # exactly one probe
    assert gw.circuits()[ledger.id] == "closed"
    assert 'onescreen_ledger_circuit_state{ledger="nhis.eligibility"} 0.0' in gw.metrics.render().decode()


async def test_a_failed_probe_opens_the_circuit_again():
    conn = Scripted([], default="fatal")
    clock = Clock()
    gw, ledger = gateway(conn, clock, retries=0, breaker_failures=1, breaker_reset=30)
    await read(gw, ledger)
    assert gw.circuits()[ledger.id] == "open"
    clock.now += 30
    await read(gw, ledger)
    assert conn.calls == 2 and gw.circuits()[ledger.id] == "open"
    assert 'onescreen_ledger_circuit_state{ledger="nhis.eligibility"} 2.0' in gw.metrics.render().decode()


async def test_a_hanging_ledger_costs_its_timeout_and_no_more():
    conn = Scripted([], default="hang")
    gw, ledger = gateway(conn, timeout=0.3, retries=2)
    started = time.monotonic()
    result = await read(gw, ledger)
    elapsed = time.monotonic() - started
    assert isinstance(result, LedgerFailure) and "no answer within 0.3 s" in result.reason
    assert elapsed < 1.5  # the budget includes retries: a hang is not multiplied by them


async def test_the_concurrency_limit_bounds_reads_in_flight_to_one_ledger():
    in_flight = peak = 0

    class Counting(Scripted):
        async def fetch(self, keys, columns):
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.02)
            in_flight -= 1
            return {k: [{c: "v" for c in columns}] for k in keys}

    gw, ledger = gateway(Counting([]), max_concurrency=3)
    fetches = [Fetch(ledger, (f"900101-{1000000 + i}",), ("insured_type",)) for i in range(12)]
    results = await asyncio.gather(*(gw.run([f]) for f in fetches))
    assert all(isinstance(next(iter(r.values())), KeyRows) for r in results)
    assert peak == 3


async def test_under_concurrency_every_reason_names_the_real_cause_also_behind_the_open_circuit():
    """Many screens at once against a failing agency: most reads meet the circuit the first failures opened;
    each of their reasons still names the real cause (HTTP 500), in English and in Korean, with the failures
    that opened the circuit and when the last one was."""
    conn = Scripted([], default="retryable")
    gw, ledger = gateway(conn, retries=2, breaker_failures=5, breaker_reset=30)
    fetches = [Fetch(ledger, (f"900101-{1000000 + i}",), ("insured_type",)) for i in range(40)]
    results = [r for batch in await asyncio.gather(*(gw.run([f]) for f in fetches)) for r in batch.values()]
    assert all(isinstance(r, LedgerFailure) for r in results) and gw.circuits()[ledger.id] == "open"
    behind = [r for r in results if r.reason.startswith("circuit open")]
    assert len(behind) >= 20 and conn.calls < 40
    assert all("HTTP 500 from agency API" in r.reason for r in results), {r.reason for r in results}
    assert all(re.fullmatch(r"circuit open after \d+ failures, last: HTTP 500 from agency API at "
                            r"\d\d:\d\d:\d\d KST; next try in \d+ s", r.reason) for r in behind)
    assert all("HTTP 500" in r.reason_ko and "연결 차단" in r.reason_ko for r in behind)


async def test_each_read_of_a_stage_ends_at_its_own_ledgers_timeout():
    """One timer serves a stage's reads (gateway._StageClock): a hanging ledger with a short timeout fails at its
    deadline as a timeout of its own, while a slower ledger with a longer timeout in the same stage answers."""
    cat = catalog_mod.load(ROOT / "field_catalog.yaml")
    ids = list(cat.ledgers)[:2]
    short = dataclasses.replace(cat.ledgers[ids[0]], cache_ttl=0, timeout=0.2, retries=0)
    long = dataclasses.replace(cat.ledgers[ids[1]], cache_ttl=0, timeout=30.0, retries=0)
    cancelled = asyncio.Event()

    class Hang(Scripted):
        async def fetch(self, keys, columns):
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.set()
                raise

    class AfterTheOther(Scripted):
        async def fetch(self, keys, columns):
            await cancelled.wait()  # answers only once the short ledger's read was given up
            return await super().fetch(keys, columns)

    gw = Gateway({short.id: short, long.id: long}, {short.id: Hang([]), long.id: AfterTheOther([])}, Metrics())
    out = await gw.run([Fetch(short, (KEY,), ("a",)), Fetch(long, (KEY,), ("b",))])
    assert isinstance(out[(short.id, KEY)], LedgerFailure)
    assert out[(short.id, KEY)].reason == "no answer within 0.2 s"
    assert isinstance(out[(long.id, KEY)], KeyRows) and out[(long.id, KEY)].rows == ({"b": "v"},)
    assert gw.breakers[short.id].state == "closed" and gw._inflight == {}
    assert asyncio.current_task().cancelling() == 0  # nothing of the clock's cancellations is left on the caller


async def test_a_cancelled_stage_stays_cancelled_and_its_timer_is_stopped():
    """A stage cancelled from outside (the request given up) is a cancellation, not a ledger timeout, with one
    read or several; its reads stop being in flight and the stage's timer fires no more."""
    cat = catalog_mod.load(ROOT / "field_catalog.yaml")
    ids = list(cat.ledgers)[:2]
    ledgers = [dataclasses.replace(cat.ledgers[i], cache_ttl=0, timeout=0.3, retries=0) for i in ids]
    for n in (1, 2):
        started = asyncio.Event()

        class Hang(Scripted):
            async def fetch(self, keys, columns):
                started.set()
                await asyncio.sleep(3600)

        gw = Gateway({lg.id: lg for lg in ledgers}, {lg.id: Hang([]) for lg in ledgers}, Metrics())
        stage = asyncio.ensure_future(gw.run([Fetch(lg, (KEY,), ("a",)) for lg in ledgers[:n]]))
        await started.wait()
        stage.cancel()
        try:
            await stage
        except asyncio.CancelledError:
            pass
        assert stage.cancelled(), n
        assert gw._inflight == {}
        await asyncio.sleep(0.4)  # past the reads' deadline: a timer left behind would cancel this task
        assert asyncio.current_task().cancelling() == 0
        assert all(b.state == "closed" for b in gw.breakers.values())  # no timeout was counted against a ledger
