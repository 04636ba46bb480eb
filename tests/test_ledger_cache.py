"""The ledger caches are bounded in bytes as well as entries (ONESCREEN_CACHE_MB, oneScreen/ledgercache.py).

A worker's memory must level off whatever its subjects' records weigh: with many distinct subjects whose records
are large, the caches stop at their byte bound (measured by what Python really allocated, tracemalloc) and
evict the least recently used subjects, which are read from their ledger again.
"""
from __future__ import annotations

import gc
import tracemalloc

import pytest

from oneScreen import catalog as catalog_mod
from oneScreen.gateway import Gateway, KeyRows
from oneScreen.metrics import Metrics
from oneScreen.planner import Fetch
from oneScreen.settings import ROOT, load as load_settings

from conftest import env_for

COLUMNS = tuple(f"c{i}" for i in range(12))


class WideRecords:
    """A ledger whose every subject has a large record (12 columns of 300 characters), new objects per read."""

    def __init__(self) -> None:
        self.read: list[str] = []

    async def fetch(self, keys, columns):
        self.read += keys
        return {k: [{c: f"{k}:{c}:" + "x" * 300 for c in columns}] for k in keys}

    async def close(self):
        pass


async def test_the_cache_stays_under_its_byte_bound_with_many_distinct_subjects_and_evicts():
    cat = catalog_mod.load(ROOT / "field_catalog.yaml")
    ledger = cat.ledgers["mois.resident"]
    assert ledger.cache_size >= 10_000 and ledger.cache_ttl > 0  # the entry bound alone would hold every subject
    conn = WideRecords()
    gw = Gateway({ledger.id: ledger}, {ledger.id: conn}, Metrics(), cache_mb=1)
    cache = gw.caches[ledger.id]
    subjects = [f"{900000 + i}-1234567" for i in range(3_000)]  # ~3,000 x 5 KB = 15 MB of records
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(0, len(subjects), 50):
            got = await gw.run([Fetch(ledger, tuple(subjects[i:i + 50]), COLUMNS)])
            assert all(isinstance(v, KeyRows) and v.rows for v in got.values())
            del got
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    bound = 1024 * 1024
    assert cache.maxsize == bound and cache.currsize <= bound
    assert held <= bound, f"the cache holds {held:,} bytes, over its bound of {bound:,}"
    assert 50 < len(cache) < 1_000, len(cache)  # evicting: far fewer than the 3,000 subjects read
    assert subjects[-1] in cache and subjects[0] not in cache  # the least recently used went first
    reads = len(conn.read)
    await gw.run([Fetch(ledger, (subjects[0], subjects[-1]), COLUMNS)])
    assert conn.read[reads:] == [subjects[0]]  # the evicted subject is read again, the cached one is not


async def test_the_entry_bound_still_holds_and_a_record_larger_than_the_bound_is_served_uncached():
    cat = catalog_mod.load(ROOT / "field_catalog.yaml")
    ledger = cat.ledgers["mois.resident"]
    small = catalog_mod.Ledger(**{**ledger.__dict__, "cache_size": 5})
    conn = WideRecords()
    gw = Gateway({small.id: small}, {small.id: conn}, Metrics())
    await gw.run([Fetch(small, tuple(f"{900000 + i}-1234567" for i in range(20)), ("c0",))])
    assert len(gw.caches[small.id]) == 5
    tiny = Gateway({ledger.id: ledger}, {ledger.id: WideRecords()}, Metrics(), cache_mb=0.001)  # ~1 KB
    got = await tiny.run([Fetch(ledger, ("900101-1234567",), COLUMNS)])
    assert got[(ledger.id, "900101-1234567")].rows  # served
    assert len(tiny.caches[ledger.id]) == 0  # but not cached: it alone is larger than the bound


def test_onescreen_cache_mb_is_read_and_shared_among_the_cached_ledgers(data_dir):
    settings = load_settings(env_for(data_dir, ONESCREEN_CACHE_MB="8"))
    assert settings.cache_mb == 8.0
    assert load_settings(env_for(data_dir)).cache_mb == 64.0
    with pytest.raises(ValueError, match="ONESCREEN_CACHE_MB"):
        load_settings(env_for(data_dir, ONESCREEN_CACHE_MB="0"))


async def test_the_running_service_bounds_its_caches_by_onescreen_cache_mb(make_app):
    app = make_app(ONESCREEN_CACHE_MB="6")
    try:
        caches = app.state.runtime.snapshot.gateway.caches
        assert caches
        assert sum(c.maxsize for c in caches.values()) <= 6 * 1024 * 1024
        assert all(c.maxsize >= 6 * 1024 * 1024 // len(caches) - 1 for c in caches.values())
    finally:
        await app.state.runtime.close()
