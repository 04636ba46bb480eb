"""Optional OpenTelemetry tracing: a request span with its ledger reads inside, and no identifiers in them."""
from __future__ import annotations

import pytest

from test_screen import SCREEN, citizens

sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="tracing is optional: opentelemetry-sdk not installed")


async def test_a_request_is_traced_down_to_its_ledger_reads(api, data_dir):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    rrn = citizens(data_dir, 1)[0]
    await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "T-1"})
    await api.client.post("/graphql", json={"query": "{ me { user } }", "operationName": f"{rrn} 박경주"},
                          headers={"Authorization": f"Bearer {api.token('kim.jumin')}"})
    spans = exporter.get_finished_spans()
    request = [s for s in spans if s.name == "graphql.request"]
    fetches = [s for s in spans if s.name == "ledger.fetch"]
    if not request:
        pytest.skip("another tracer provider was already installed in this process")
    assert {s.attributes["ledger"] for s in fetches} >= {"mois.resident", "mois.household", "molit.building_title"}
    assert all(s.context.trace_id == request[0].context.trace_id for s in fetches)
    assert rrn not in str([dict(s.attributes) for s in spans])
    assert request[-1].attributes["operation"] == "other"  # invariant 12: a client's text is no span attribute
