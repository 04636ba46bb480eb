"""Optional OpenTelemetry tracing: a span per GraphQL request and per ledger read, when the packages are installed.

Without opentelemetry-api every span is a no-op. Spans carry ids (request,
ledger, key count), never a value or a subject identifier. Exporters are the
operator's choice, configured the standard OpenTelemetry way.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

try:
    from opentelemetry import trace as _trace
except ImportError:  # tracing is optional
    _trace = None


def _tracer() -> Any:
    """The tracer when a real TracerProvider is configured, else None (no span objects at all)."""
    if _trace is None:
        return None
    provider = _trace.get_tracer_provider()
    if type(provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
        return None
    return provider.get_tracer("onescreen")


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    tracer = _tracer()
    if tracer is None:
        yield
        return
    with tracer.start_as_current_span(name, attributes=attributes):
        yield
