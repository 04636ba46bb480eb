"""Prometheus metrics of one service instance (its own registry, served at /metrics).

Counts and latencies only: never a value, a subject identifier or a token. With `onescreen serve --workers N`
(PROMETHEUS_MULTIPROC_DIR set by cli.py before the workers start) every worker writes its values to files in
that directory and /metrics, whichever worker answers it, sums them (prometheus_client's multiprocess mode).
"""
from __future__ import annotations

import os
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable (set by `onescreen serve --workers N`)

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        # prometheus_client chose where values live (memory, or the directory's files) when it was imported
        self.multiprocess = bool(os.environ.get(MULTIPROC_DIR))
        self._last_commit: Callable[[], float] | None = None
        r = self.registry = CollectorRegistry()
        self._bound: dict[tuple, Any] = {}
        self.ledger_fetches = Counter("onescreen_ledger_fetches", "Reads sent to a ledger", ["ledger"], registry=r)
        self.ledger_errors = Counter("onescreen_ledger_errors", "Ledger reads that failed or timed out",
                                     ["ledger"], registry=r)
        self.ledger_latency = Histogram("onescreen_ledger_fetch_seconds", "Ledger read latency", ["ledger"],
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.ledger_retries = Counter("onescreen_ledger_retries", "Ledger reads retried after a retryable failure",
                                      ["ledger"], registry=r)
        self.circuit_state = Gauge("onescreen_ledger_circuit_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
                                   ["ledger"], multiprocess_mode="max", registry=r)  # workers: the worst
        self.cache_hits = Counter("onescreen_cache_hits", "Subject keys answered from the cache", ["ledger"],
                                  registry=r)
        self.cache_misses = Counter("onescreen_cache_misses", "Subject keys not in the cache", ["ledger"],
                                    registry=r)
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
