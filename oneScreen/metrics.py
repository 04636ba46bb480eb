"""Prometheus metrics of one service instance (its own registry, served at /metrics).

Counts and latencies only: never a value, a subject identifier or a token. With `onescreen serve --workers N`
(PROMETHEUS_MULTIPROC_DIR set by cli.py before the workers start) every worker writes its values to files in
that directory and /metrics, whichever worker answers it, sums them (prometheus_client's multiprocess mode).
"""
from __future__ import annotations

import os
import time
from bisect import bisect_left
from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable (set by `onescreen serve --workers N`)

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


# The per-read figures of a ledger: (metric name, LedgerCounts attribute, type, help). A read of six ledgers
# observed each in prometheus_client's labelled children (a method, a lock and a bucket walk per figure):
# plain numbers here, turned into the same samples when /metrics is scraped (_LedgerCollector): part of
# the per-read bookkeeping done once per stage, counted together in gateway._StageClock's docstring (-5.3%).
LEDGER = (("onescreen_ledger_fetches", "fetches", "counter", "Reads sent to a ledger"),
          ("onescreen_ledger_errors", "errors", "counter", "Ledger reads that failed or timed out"),
          ("onescreen_ledger_fetch_seconds", "latency", "histogram", "Ledger read latency"),
          ("onescreen_ledger_retries", "retries", "counter", "Ledger reads retried after a retryable failure"),
          ("onescreen_cache_hits", "hits", "counter", "Subject keys answered from the cache"),
          ("onescreen_cache_misses", "misses", "counter", "Subject keys not in the cache"))


class LedgerCounts:
    """One ledger's per-read figures as plain numbers (one process: the event loop's thread alone writes them)."""

    __slots__ = ("fetches", "errors", "retries", "hits", "misses", "buckets", "seconds", "created")

    def __init__(self) -> None:
        self.fetches = self.errors = self.retries = self.hits = self.misses = 0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # not cumulative; the last one: beyond every bound
        self.seconds = 0.0
        self.created = time.time()

    def observe(self, seconds: float) -> None:
        self.seconds += seconds
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # le: the first bound >= seconds


class _LedgerChildren(LedgerCounts):
    """The same figures written through to prometheus_client's children (several workers: the children live
    in the directory's files, which /metrics sums): `counts.fetches += 1` increments the child as well."""

    __slots__ = ("_m",)

    def __init__(self, children: dict[str, Any], lid: str) -> None:
        object.__setattr__(self, "_m", {attr: children[name].labels(lid) for name, attr, _, _ in LEDGER})
        super().__init__()

    def __setattr__(self, attr: str, value: Any) -> None:
        child = self._m.get(attr)
        if child is not None:
            child.inc(value - getattr(self, attr, value))
        object.__setattr__(self, attr, value)

    def observe(self, seconds: float) -> None:
        self._m["latency"].observe(seconds)


class _LedgerCollector:
    """Exports every ledger's LedgerCounts as prometheus_client's own Counter and Histogram would (same names,
    labels, samples and _created), when /metrics is scraped."""

    def __init__(self, ledgers: dict[str, LedgerCounts]) -> None:
        self.ledgers = ledgers

    def describe(self) -> Iterator[Metric]:
        for name, _, kind, doc in LEDGER:
            yield Metric(name, doc, kind)

    def collect(self) -> Iterator[Metric]:
        ledgers = list(self.ledgers.items())
        les = [floatToGoString(b) for b in LATENCY_BUCKETS] + ["+Inf"]
        for name, attr, kind, doc in LEDGER:
            family = Metric(name, doc, kind)
            for lid, c in ledgers:
                label = {"ledger": lid}
                if kind == "counter":
                    family.add_sample(name + "_total", label, float(getattr(c, attr)))
                else:
                    total = 0
                    for le, n in zip(les, c.buckets):
                        total += n
                        family.add_sample(name + "_bucket", {"ledger": lid, "le": le}, float(total))
                    family.add_sample(name + "_count", label, float(total))
                    family.add_sample(name + "_sum", label, c.seconds)
                family.add_sample(name + "_created", label, c.created)
            yield family


class Metrics:
    def __init__(self) -> None:
        # prometheus_client chose where values live (memory, or the directory's files) when it was imported
        self.multiprocess = bool(os.environ.get(MULTIPROC_DIR))
        self._last_commit: Callable[[], float] | None = None
        r = self.registry = CollectorRegistry()
        self._bound: dict[tuple, Any] = {}
        # the per-read figures of each ledger (metrics.LEDGER): plain numbers exported when scraped, or with
        # several workers prometheus_client's children (their files are what /metrics sums)
        self.ledgers: dict[str, Any] = {}
        if self.multiprocess:
            self._children = {name: (Histogram if kind == "histogram" else Counter)(
                name, doc, ["ledger"], registry=r, **({"buckets": LATENCY_BUCKETS} if kind == "histogram" else {}))
                for name, _, kind, doc in LEDGER}
        else:
            r.register(_LedgerCollector(self.ledgers))
        self.circuit_state = Gauge("onescreen_ledger_circuit_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
                                   ["ledger"], multiprocess_mode="max", registry=r)  # workers: the worst
        self.requests = Counter("onescreen_graphql_requests", "GraphQL requests", ["outcome"], registry=r)
        self.request_latency = Histogram("onescreen_graphql_request_seconds", "GraphQL request latency",
                                         ["operation"], buckets=LATENCY_BUCKETS, registry=r)
        self.audit_latency = Histogram("onescreen_audit_write_seconds", "Durable audit write per request",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.audit_failures = Counter("onescreen_audit_write_failures", "Audit writes that failed (request refused)",
                                      registry=r)
        # reason: AuditUnavailable.REASONS (deadline, connection, refused, closed, schema): a bounded set
        self.audit_refused = Counter("onescreen_audit_refused_requests", "Requests refused because the audit "
                                     "trail could not be written, by reason", ["reason"], registry=r)
        self.audit_last_commit = Gauge("onescreen_audit_last_commit_timestamp_seconds", "Unix time of this "
                                       "process's last successful audit commit (0: none yet)",
                                       multiprocess_mode="max", registry=r)  # workers: the latest of them
        self.config_reload_failures = Counter("onescreen_config_reload_failures", "Configurations (a store's "
                                              "version, or the files) refused by validation; the running one "
                                              "stayed", registry=r)
        self.config_version = Gauge("onescreen_config_version", "Id of the store's configuration version this "
                                    "process runs (0: the files are the configuration)", multiprocess_mode="min",
                                    registry=r)  # workers: the oldest any of them runs
        self.decisions = Counter("onescreen_policy_decisions", "Field decisions", ["status"], registry=r)
        self.lookup_misses = Counter("onescreen_lookup_misses", "Lookups by identifier that found no subject "
                                     "(each spends the caller's lookup budget)", registry=r)
        self.lookup_refusals = Counter("onescreen_lookup_budget_refusals", "Requests refused because a lookup "
                                       "budget was spent (LOOKUP_BUDGET_EXCEEDED)", ["scope"], registry=r)
        # counter: rate_limit (the request went on: fail open) or lookup_budget (refused: fail closed)
        self.shared_counter_failures = Counter("onescreen_shared_counter_failures", "Checks of a shared counter "
                                               "(Redis) that got no answer in time", ["counter"], registry=r)
        # the citizen's receipts pushed by e-mail (notify.py); outcome: sent, retry, dead
        self.receipt_mails = Counter("onescreen_receipt_mails", "Receipt mails (one per access, or a daily "
                                     "digest) by outcome: sent, retry (a transient failure), dead (given up)",
                                     ["outcome"], registry=r)

    def ledger(self, lid: str) -> "LedgerCounts | _LedgerChildren":
        """The per-read figures of ledger `lid`, made once (a reload's new gateway goes on counting in them)."""
        counts = self.ledgers.get(lid)
        if counts is None:
            counts = self.ledgers[lid] = _LedgerChildren(self._children, lid) if self.multiprocess \
                else LedgerCounts()
        return counts

    def bound(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, made once per metric and label values: labels() validates its arguments
        and takes a lock on every call, a few of them per screen. (Label values are bounded by the callers.)"""
        key = (metric, values)
        child = self._bound.get(key)
        if child is None:
            child = self._bound[key] = metric.labels(*values)
        return child

    def watch_last_commit(self, last_commit: Callable[[], float]) -> None:
        """onescreen_audit_last_commit_timestamp_seconds follows `last_commit()` (read when scraped; with
        several workers, written by `committed()`: another worker's /metrics reads this one's file)."""
        self._last_commit = last_commit
        if not self.multiprocess:
            self.audit_last_commit.set_function(last_commit)

    def committed(self) -> None:
        if self.multiprocess and self._last_commit is not None:
            self.audit_last_commit.set(self._last_commit())

    def render(self) -> bytes:
        if self.multiprocess:  # every worker's values, from the files in PROMETHEUS_MULTIPROC_DIR
            from prometheus_client import multiprocess
            self.committed()
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
