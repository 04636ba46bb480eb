"""Optional OpenTelemetry tracing: a request span with its ledger reads inside, and no identifiers in them."""
from __future__ import annotations

import importlib.util

import pytest

from conftest import need_service
from test_screen import SCREEN, citizens


@pytest.fixture
def exporter():
    """An in-memory exporter on this process's tracer provider (installed here unless one already is: a
    process gets one provider, so a second test adds its exporter to the same provider)."""
    need_service(importlib.util.find_spec("opentelemetry.sdk") is not None,
                 "tracing is optional: opentelemetry-sdk is not installed (pip install '.[test]')")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    out = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(out))
    yield out
    out.shutdown()


async def test_a_request_is_traced_down_to_its_ledger_reads(api, data_dir, exporter):
    rrn = citizens(data_dir, 1)[0]
    await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": rrn, "c": "T-1"})
    await api.client.post("/graphql", json={"query": "{ me { user } }", "operationName": f"{rrn} 박경주"},
                          headers={"Authorization": f"Bearer {api.token('kim.jumin')}"})
    spans = exporter.get_finished_spans()
    request = [s for s in spans if s.name == "graphql.request"]
    fetches = [s for s in spans if s.name == "ledger.fetch"]
    assert len(request) == 2, "span() made no request span although a tracer provider is installed"
    assert {s.attributes["ledger"] for s in fetches} >= {"mois.resident", "mois.household", "molit.building_title"}
    assert all(s.context.trace_id == request[0].context.trace_id for s in fetches)  # the screen's, not `me`'s
    assert rrn not in str([dict(s.attributes) for s in spans])
    assert request[-1].attributes["operation"] == "other"  # invariant 12: a client's text is no span attribute
