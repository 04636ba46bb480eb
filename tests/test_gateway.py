"""The gateway and the running configuration: concurrency, partial failure, cache, single-flight, reload."""
from __future__ import annotations

import asyncio

import pytest

from oneScreen import catalog as catalog_mod
from oneScreen.errors import ConfigErrors
from oneScreen.gateway import Gateway, KeyRows, LedgerFailure
from oneScreen.metrics import Metrics
from oneScreen.planner import Fetch
from oneScreen.settings import ROOT

from conftest import sample
from test_screen import SCREEN, citizens, fields_of


class BarrierConnector:
    """Answers only once every ledger of the stage has been asked: a sequential gateway would never finish."""

    def __init__(self, barrier: asyncio.Barrier, key_column: str) -> None:
        self.barrier, self.key_column = barrier, key_column

    async def fetch(self, keys, columns):
        await self.barrier.wait()
        return {k: [{c: f"v-{c}" for c in columns}] for k in keys}

    async def close(self):
        pass


async def test_the_ledgers_of_a_stage_are_read_concurrently():
    """Invariant 4: the critical path is the slowest ledger, not the sum."""
    cat = catalog_mod.load(ROOT / "field_catalog.yaml")
    ids = ["mois.resident", "molit.vehicle", "nhis.eligibility", "court.family"]
    barrier = asyncio.Barrier(len(ids))
    gw = Gateway({i: cat.ledgers[i] for i in ids},
                 {i: BarrierConnector(barrier, cat.ledgers[i].key_column) for i in ids}, Metrics())
    fetches = [Fetch(cat.ledgers[i], ("900101-1234567",), ("x",)) for i in ids]
    results = await asyncio.wait_for(gw.run(fetches), 10)
    assert all(isinstance(results[(i, "900101-1234567")], KeyRows) for i in ids), results


class SlowCountingConnector:
    """Counts its calls; each read waits until the test opens `gate` (open from the start unless closed)."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = asyncio.Event()  # a read is in flight
        self.gate = asyncio.Event()
        self.gate.set()

    async def fetch(self, keys, columns):
        self.calls += 1
        self.started.set()
        await asyncio.sleep(0)  # a read takes at least one turn of the loop, so identical reads can meet
        await self.gate.wait()
        return {k: [{c: c for c in columns}] for k in keys}

    async def close(self):
        pass


async def test_concurrent_identical_reads_share_one_call():
    cat = catalog_mod.load(ROOT / "field_catalog.yaml")
    ledger = cat.ledgers["mois.resident"]
    conn = SlowCountingConnector()
    gw = Gateway({ledger.id: ledger}, {ledger.id: conn}, Metrics())
    gw.caches.clear()  # single-flight alone, no cache
    fetch = Fetch(ledger, ("900101-1234567", "900101-2234567"), ("name",))
    results = await asyncio.gather(*(gw.run([fetch]) for _ in range(100)))
    assert conn.calls == 1
    assert all(r[(ledger.id, "900101-1234567")].rows == ({"name": "name"},) for r in results)


@pytest.mark.parametrize("ledgers", [1, 2])  # one read in the stage (awaited in line), or several (gathered)
async def test_a_cancelled_read_releases_the_screens_that_joined_it_and_is_read_again_later(ledgers):
    """A screen whose read others joined (single-flight) is cancelled (its client went away): the joiners hear
    a failure of that ledger at once instead of waiting for ever, and the next screen reads the ledger anew."""
    cat = catalog_mod.load(ROOT / "field_catalog.yaml")
    ids = ["mois.resident", "molit.vehicle"][:ledgers]
    conns = {i: SlowCountingConnector() for i in ids}
    for c in conns.values():
        c.gate.clear()  # reads stay in flight until the test says
    gw = Gateway({i: cat.ledgers[i] for i in ids}, conns, Metrics())
    gw.caches.clear()
    fetches = [Fetch(cat.ledgers[i], ("900101-1234567",), ("name",)) for i in ids]
    first = asyncio.ensure_future(gw.run(fetches))
    for c in conns.values():
        await asyncio.wait_for(c.started.wait(), 5)  # the first screen's reads are in flight
    joined = asyncio.ensure_future(gw.run(fetches))
    await asyncio.sleep(0)  # the second screen runs up to its join
    assert not joined.done() and [c.calls for c in conns.values()] == [1] * ledgers  # it joined, no read of its own
    first.cancel()
    results = await asyncio.wait_for(joined, 5)
    assert [results[(i, "900101-1234567")] for i in ids] == \
        [LedgerFailure(cat.ledgers[i], "the read was cancelled") for i in ids]
    assert first.cancelled() and not gw._inflight
    for c in conns.values():
        c.gate.set()
    again = await gw.run(fetches)
    assert all(isinstance(again[(i, "900101-1234567")], KeyRows) for i in ids)
    assert [c.calls for c in conns.values()] == [2] * ledgers


async def test_a_cached_entry_answers_only_the_same_or_fewer_columns():
    cat = catalog_mod.load(ROOT / "field_catalog.yaml")
    ledger = cat.ledgers["mois.resident"]
    conn = SlowCountingConnector()
    gw = Gateway({ledger.id: ledger}, {ledger.id: conn}, Metrics())
    key = ("900101-1234567",)
    await gw.run([Fetch(ledger, key, ("address", "name"))])
    fewer = await gw.run([Fetch(ledger, key, ("name",))])
    assert conn.calls == 1 and fewer[(ledger.id, key[0])].cached
    assert fewer[(ledger.id, key[0])].rows == ({"name": "name"},)  # projected: no extra column leaves the cache
    more = await gw.run([Fetch(ledger, key, ("name", "phone"))])
    assert conn.calls == 2 and not more[(ledger.id, key[0])].cached


async def test_a_failing_ledger_costs_only_its_own_fields(make_app, catalog_copy, data_dir):
    """Invariant 5: a broken ledger's fields are UNAVAILABLE with a reason; the rest of the screen is served."""
    path = catalog_copy / "field_catalog.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("table: vehicle}", "table: vehicle_gone}"), encoding="utf-8")
    app = make_app(ONESCREEN_CATALOG=str(path), ONESCREEN_POLICIES=str(catalog_copy / "policies"))
    import httpx
    from conftest import Api
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        api = Api(c, data_dir, app)
        rrn = citizens(data_dir, 1, "legal_dong_cd LIKE '11680%'")[0]
        status, body = await api.gql("lee.bokji", SCREEN, {"t": "basic_livelihood", "s": rrn, "c": "F-1"})
    await app.state.runtime.close()
    assert status == 200 and "errors" not in body
    got = fields_of(body["data"]["screen"])
    assert got["citizen.vehicles"]["status"] == "UNAVAILABLE"
    assert "자동차등록원부" in got["citizen.vehicles"]["reason"] and "SELECT" not in got["citizen.vehicles"]["reason"]
    assert got["citizen.vehicles"]["source"]["ledger"] == "molit.vehicle"
    others = {k: v["status"] for k, v in got.items() if k != "citizen.vehicles"}
    assert "UNAVAILABLE" not in others.values() and others["citizen.monthly_premium"] == "CONSENT_REQUIRED"
    assert others["citizen.name"] == others["citizen.residence>building.main_purpose"] == "OK"


async def test_a_bad_reload_is_refused_and_a_good_one_swaps_without_restart(make_app, catalog_copy, data_dir):
    """Invariant 8: reload validates first and swaps atomically; a bad file leaves the running snapshot."""
    path = catalog_copy / "field_catalog.yaml"
    app = make_app(ONESCREEN_CATALOG=str(path), ONESCREEN_POLICIES=str(catalog_copy / "policies"))
    runtime = app.state.runtime
    import httpx
    from conftest import Api
    rrn = citizens(data_dir, 1)[0]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        api = Api(c, data_dir, app)
        before = runtime.snapshot
        original = path.read_text(encoding="utf-8")
        path.write_text(original.replace("ledger: mois.resident, column: name,", "ledger: mois.gone, column: name,"),
                        encoding="utf-8")
        with pytest.raises(ConfigErrors) as exc:
            runtime.reload()
        assert "unknown ledger 'mois.gone'" in str(exc.value)
        assert runtime.snapshot is before
        _, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "R-1"})
        assert fields_of(body["data"]["screen"])["citizen.name"]["label"] == "성명"

        path.write_text(original.replace("type: string, sensitivity: personal, label: 성명,",
                                         "type: string, sensitivity: personal, label: 성명(한글),"), encoding="utf-8")
        runtime.reload()
        assert runtime.snapshot is not before
        _, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "R-2"})
        got = fields_of(body["data"]["screen"])
        assert got["citizen.name"]["label"] == "성명(한글)"
        assert got["citizen.name"]["value"] == sample(data_dir, "mois_resident:SELECT name FROM resident WHERE rrn=?", rrn)[0][0]
    await runtime.close()


async def test_many_concurrent_screens_of_one_subject_read_each_ledger_once(api, data_dir):
    rrn = citizens(data_dir, 1)[0]
    before = await api.fetches()
    results = await asyncio.gather(*(api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": f"S-{i}"})
                                     for i in range(20)))
    assert all(status == 200 and "errors" not in body for status, body in results)
    after = await api.fetches()
    assert {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)} == {
        "mois.resident": 1, "mois.household": 1, "molit.building_title": 1}


async def test_failure_results_are_not_cached():
    cat = catalog_mod.load(ROOT / "field_catalog.yaml")
    ledger = cat.ledgers["mois.resident"]

    class Flaky(SlowCountingConnector):
        async def fetch(self, keys, columns):
            self.calls += 1
            if self.calls == 1:
                from connectors.base import ConnectorError
                raise ConnectorError("database error (OperationalError)", retryable=False)
            return await super().fetch(keys, columns)

    conn = Flaky()
    gw = Gateway({ledger.id: ledger}, {ledger.id: conn}, Metrics())
    first = await gw.run([Fetch(ledger, ("900101-1234567",), ("name",))])
    assert isinstance(first[(ledger.id, "900101-1234567")], LedgerFailure)
    second = await gw.run([Fetch(ledger, ("900101-1234567",), ("name",))])
    assert isinstance(second[(ledger.id, "900101-1234567")], KeyRows)


async def test_a_reload_refused_for_its_tasks_still_loads_a_changed_catalog_once_fixed(make_app, catalog_copy):
    """Invariant 8 across the partial-reload shortcut: catalog and task files changed together, tasks broken."""
    cat_path, task = catalog_copy / "field_catalog.yaml", catalog_copy / "policies" / "tasks" / "vehicle_transfer.yaml"
    app = make_app(ONESCREEN_CATALOG=str(cat_path), ONESCREEN_POLICIES=str(catalog_copy / "policies"))
    runtime = app.state.runtime
    cat_path.write_text(cat_path.read_text(encoding="utf-8").replace("label: 성명,", "label: 성명(새),"), encoding="utf-8")
    good_task = task.read_text(encoding="utf-8")
    task.write_text(good_task.replace("citizen.vehicles", "citizen.yacht"), encoding="utf-8")
    with pytest.raises(ConfigErrors):
        runtime.reload()
    task.write_text(good_task, encoding="utf-8")
    runtime.reload()
    assert runtime.snapshot.catalog.fields["citizen.name"].label == "성명(새)"
    await runtime.close()


async def test_a_reload_builds_the_new_configuration_off_the_event_loop(make_app, catalog_copy):
    """Invariant 10 for the operator's side: a reload (the file watcher, an admin's apply, SIGHUP) builds the new
    snapshot in a thread (seconds at national scale) while the event loop goes on serving; the swap is one
    assignment on the loop. Here the build waits for the loop to run something: on the loop it would wait in vain."""
    import threading

    path = catalog_copy / "field_catalog.yaml"
    app = make_app(ONESCREEN_CATALOG=str(path), ONESCREEN_POLICIES=str(catalog_copy / "policies"))
    runtime = app.state.runtime
    old, build = runtime.snapshot, runtime._build
    loop_ran = threading.Event()

    def slow_build(previous):
        if not loop_ran.wait(10):
            raise AssertionError("the event loop did not run while the new snapshot was built")
        return build(previous)

    runtime._build = slow_build
    try:
        path.write_text(path.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
        asyncio.get_running_loop().call_soon(loop_ran.set)
        new = await runtime.reload_async()
        assert new is runtime.snapshot and new is not old
    finally:
        await runtime.close()


async def test_a_replaced_snapshot_is_freed(make_app, catalog_copy):
    """A reload lets the old snapshot go once no request holds it, or every reload would keep its reference cycles
    (graphql-core types) for ever."""
    import gc
    import weakref

    path = catalog_copy / "field_catalog.yaml"
    app = make_app(ONESCREEN_CATALOG=str(path), ONESCREEN_POLICIES=str(catalog_copy / "policies"))
    runtime = app.state.runtime
    try:
        old = weakref.ref(runtime.snapshot.schema)
        path.write_text(path.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
        runtime.reload()
        assert runtime.snapshot.schema is not old()
        gc.collect()
        assert old() is None, "the replaced snapshot's schema is still alive"
    finally:
        await runtime.close()



async def test_the_heap_frozen_at_start_still_lets_a_replaced_snapshot_go(make_app, catalog_copy, monkeypatch):
    """The served process freezes its heap once started (gc.freeze: full collections skip the configuration, a
    stall of 50-100 ms each otherwise), so a reload must settle it again (unfreeze, collect, freeze) once the
    requests on the old snapshot have ended, or every reload would keep the old snapshot's cycles for ever."""
    import gc
    import weakref

    from oneScreen import runtime as runtime_mod

    monkeypatch.setattr(runtime_mod, "SETTLE_AFTER_RELOAD", 0.05)
    path = catalog_copy / "field_catalog.yaml"
    app = make_app(ONESCREEN_CATALOG=str(path), ONESCREEN_POLICIES=str(catalog_copy / "policies"))
    runtime = app.state.runtime
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 0, "the started service did not freeze its heap"
            old = weakref.ref(runtime.snapshot.schema)
            path.write_text(path.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
            await runtime.reload_async()
            assert runtime.snapshot.schema is not old()
            gc.collect()  # an ordinary collection does not reach the frozen old snapshot
            for _ in range(100):
                if old() is None:
                    break
                await asyncio.sleep(0.02)
            assert old() is None, "the replaced snapshot's schema is still alive after the heap settled"
            assert gc.get_freeze_count() > 0, "the heap was not frozen again"
        assert gc.get_freeze_count() == 0, "a stopped service leaves the heap frozen"
    finally:
        gc.unfreeze()
        await runtime.close()

class HangingConnector:
    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def fetch(self, keys, columns):
        self.started.set()
        await asyncio.Event().wait()  # never answers

    async def close(self):
        pass


@pytest.mark.parametrize("ledgers", [1, 2])
async def test_a_read_past_its_ledgers_timeout_fails_alone_and_leaves_the_task_uncancelled(ledgers):
    """The gateway's per-read deadline (gateway._Deadline, asyncio.timeout written out): a hung ledger becomes
    its own LedgerFailure after its timeout, the other ledger still answers, and the screen's task is left as
    it was: a later asyncio.timeout in it still ends in TimeoutError, and a cancel of it is still a cancel."""
    import dataclasses

    cat = catalog_mod.load(ROOT / "field_catalog.yaml")
    hung = dataclasses.replace(cat.ledgers["mois.resident"], timeout=0.2, retries=0)
    ok = cat.ledgers["molit.vehicle"]
    ids = [hung, ok][:ledgers]
    conns = {hung.id: HangingConnector(), ok.id: SlowCountingConnector()}
    gw = Gateway({l.id: l for l in ids}, {l.id: conns[l.id] for l in ids}, Metrics())
    gw.caches.clear()
    key = "900101-1234567"
    results = await gw.run([Fetch(l, (key,), ("name",)) for l in ids])  # one ledger: read in this very task
    assert results[(hung.id, key)] == LedgerFailure(hung, "no answer within 0.2 s")
    if ledgers == 2:
        assert isinstance(results[(ok.id, key)], KeyRows)
    task = asyncio.current_task()
    assert task.cancelling() == 0
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await asyncio.sleep(1)

    conns[hung.id].started.clear()
    screen = asyncio.ensure_future(gw.run([Fetch(hung, (key,), ("name",))]))
    await asyncio.wait_for(conns[hung.id].started.wait(), 5)
    screen.cancel()  # the client went away while the read's timer was pending
    with pytest.raises(asyncio.CancelledError):
        await screen
