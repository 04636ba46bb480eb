"""The six ledgers every HTTP benchmark reads: their names, their deterministic records and their latency.

The same data as the peer benchmark's ledger emulator (peer-bench's ledgers.py), so that oneScreen and the peer
servers are measured over identical ledgers: ledger `name`, subject `key` -> {"key": key, "a1".."a10"}, each
attribute "<first 3 letters of name>-<i>-<first 12 hex digits of sha1("name:key:i")>", served after
LEDGER_LATENCY_MS (default 20) or LEDGER_LATENCY_MS_<NAME> milliseconds. bench/emulator.py serves them.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from typing import Mapping

LEDGERS = ("resident", "family", "building", "land", "vehicle", "health")
SELECTED = ("a1", "a2", "a3", "a4", "a5")  # what a screen shows of each ledger: 6 x 5 = 30 attributes
N_ATTRS = 10


def latency_ms(name: str, env: Mapping[str, str] = os.environ) -> float:
    """The injected latency of ledger `name`: LEDGER_LATENCY_MS_<NAME>, else LEDGER_LATENCY_MS, else 20."""
    default = float(env.get("LEDGER_LATENCY_MS", "20"))
    return float(env.get(f"LEDGER_LATENCY_MS_{name.upper()}", default))


def record(name: str, key: str) -> dict[str, str]:
    """Subject `key`'s record in ledger `name`: the key and ten deterministic string attributes a1..a10."""
    out = {"key": key}
    for i in range(1, N_ATTRS + 1):
        digest = hashlib.sha1(f"{name}:{key}:{i}".encode()).hexdigest()[:12]
        out[f"a{i}"] = f"{name[:3]}-{i}-{digest}"
    return out


@functools.lru_cache(maxsize=65536)
def body(name: str, key: str) -> bytes:
    """The record as the bare JSON object the ledgers answer (json.dumps' default separators)."""
    return json.dumps(record(name, key)).encode()


def screen(key: str) -> dict[str, dict[str, dict[str, str]]]:
    """What a peer answers for one subject: {"data": {ledger: {a1..a5}}} (GraphQL's shape, for all of them)."""
    return {"data": {n: {a: record(n, key)[a] for a in SELECTED} for n in LEDGERS}}
