"""The per-read figures of each ledger (metrics.LedgerCounts) reach /metrics exactly as prometheus_client's own
Counter and Histogram children gave them: same names, labels, samples and values; with several workers they
are written through to the children whose files /metrics sums."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from oneScreen.metrics import LATENCY_BUCKETS, LEDGER, Metrics
from oneScreen.settings import ROOT

ADDS = [("a", "fetches", 2), ("a", "hits", 3), ("b.c", "errors", 1), ("b.c", "retries", 1), ("a", "misses", 1),
        ("b.c", "fetches", 1)]
LATENCIES = [("a", 0.03), ("a", 0.005), ("a", 20.0), ("b.c", 0.0051), ("b.c", 10.0), ("a", 0.0), ("b.c", 0.05)]


def _ledger_lines(text: str) -> list[str]:
    names = tuple(name for name, _, _, _ in LEDGER)
    lines = [re.sub(r"^(\w+_created\{.*?\}) .*", r"\1 T", line) for line in text.splitlines()
             if line.startswith(names)]  # the ledgers' samples (HELP and TYPE lines start with '#')
    return sorted(lines)


def test_ledger_figures_are_exported_as_prometheus_clients_own_metrics_would_be():
    reference = CollectorRegistry()
    kids = {name: (Histogram(name, doc, ["ledger"], buckets=LATENCY_BUCKETS, registry=reference) if kind == "histogram"
                   else Counter(name, doc, ["ledger"], registry=reference))
            for name, _, kind, doc in LEDGER}
    by_attr = {attr: kids[name] for name, attr, _, _ in LEDGER}
    m = Metrics()
    for lid in ("a", "b.c"):
        m.ledger(lid)
        for child in kids.values():
            child.labels(lid)
    for lid, attr, n in ADDS:
        counts = m.ledger(lid)
        setattr(counts, attr, getattr(counts, attr) + n)
        by_attr[attr].labels(lid).inc(n)
    for lid, seconds in LATENCIES:
        m.ledger(lid).observe(seconds)
        by_attr["latency"].labels(lid).observe(seconds)
    got = _ledger_lines(m.render().decode())
    assert got == _ledger_lines(generate_latest(reference).decode())
    assert 'onescreen_ledger_fetch_seconds_bucket{le="0.01",ledger="a"} 2.0' in got  # 0.005 falls in le=0.005
    assert 'onescreen_ledger_fetches_total{ledger="b.c"} 1.0' in got


def test_with_several_workers_ledger_figures_go_to_the_shared_files(tmp_path):
    """PROMETHEUS_MULTIPROC_DIR (`onescreen serve --workers N`): another process's /metrics sees them."""
    code = ("from oneScreen.metrics import Metrics\n"
            "m = Metrics(); c = m.ledger('a'); c.fetches += 1; c.fetches += 2; c.hits += 4; c.errors += 1\n"
            "c.observe(0.03)\n")
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    reader = ("from oneScreen.metrics import Metrics\n"
              "import sys; sys.stdout.write(Metrics().render().decode())\n")
    text = subprocess.run([sys.executable, "-c", reader], env=env, check=True, timeout=60, capture_output=True,
                          text=True).stdout
    for line in ('onescreen_ledger_fetches_total{ledger="a"} 3.0', 'onescreen_cache_hits_total{ledger="a"} 4.0',
                 'onescreen_ledger_errors_total{ledger="a"} 1.0', 'onescreen_ledger_fetch_seconds_count{ledger="a"} 1.0',
                 'onescreen_ledger_fetch_seconds_bucket{le="0.05",ledger="a"} 1.0'):
        assert line in text, line
