"""The ledger caches' bound in entries AND bytes (the gateway's per-ledger TTL cache, gateway.py).

A cache of ledger records bounded only by its number of entries holds as many bytes as its subjects' records
weigh: a ledger that returns many rows or long columns per subject grows the process past any figure an
operator can plan for. `LedgerCache` is a cachetools TTLCache sized in bytes, as estimated by `entry_bytes`
(the record's rows, their keys and values, and the cache's own per-entry bookkeeping), that also never holds
more than its ledger's `cache_size` entries. When either bound is reached the least recently used entry goes.
An entry larger than the whole byte bound is not cached (the read still answers the request).

The byte bound of one worker's caches together is ONESCREEN_CACHE_MB (settings.py); each cached ledger's
cache gets an equal share (`share_bytes`). Values are only sized, never read otherwise, logged or written.
"""
from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from cachetools import TTLCache

# the cache's own bookkeeping per entry, measured with tracemalloc on CPython 3.11 (tests/test_ledger_cache.py
# checks the estimate stays above what is really allocated): the subject key string (~60 bytes), TTLCache's
# _Link (slots: ~80), its slot in the data, size and links dicts (3 x ~100 with the dicts' spare room)
PER_ENTRY = 480
_getsizeof = sys.getsizeof
_SINGLETONS = (type(None), bool)


def _value_bytes(value: Any, depth: int = 0) -> int:
    if isinstance(value, _SINGLETONS):
        return 0
    n = _getsizeof(value)
    if depth < 4:
        if isinstance(value, Mapping):
            for k, v in value.items():
                n += _value_bytes(k, depth + 1) + _value_bytes(v, depth + 1)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for v in value:
                n += _value_bytes(v, depth + 1)
    return n


def entry_bytes(entry: Any) -> int:
    """Bytes one cached entry (gateway._Entry: columns, rows, as_of, total) holds, estimated from above."""
    n = PER_ENTRY + _getsizeof(entry) + _getsizeof(entry.rows) + _value_bytes(entry.columns) + _getsizeof(entry.as_of)
    for row in entry.rows:
        n += _value_bytes(row)
    return n


def share_bytes(total_mb: float, cached_ledgers: int) -> int:
    """The byte bound of one ledger's cache: an equal share of ONESCREEN_CACHE_MB."""
    return max(1, int(total_mb * 1024 * 1024 / max(1, cached_ledgers)))


class LedgerCache(TTLCache):
    """A TTL cache of at most `max_entries` entries and `max_bytes` bytes (by entry_bytes), LRU eviction."""

    def __init__(self, max_entries: int, max_bytes: int, ttl: float) -> None:
        super().__init__(maxsize=max_bytes, ttl=ttl, getsizeof=entry_bytes)
        self.max_entries = max_entries

    def __setitem__(self, key: Any, value: Any) -> None:
        if key not in self:
            if len(self) >= self.max_entries:
                self.expire()
            while len(self) >= self.max_entries:
                self.popitem()
        try:
            super().__setitem__(key, value)
        except ValueError:  # larger than the whole byte bound: not cached (the read still answered)
            self.pop(key, None)
