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


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    if _trace is None:
        yield
        return
    with _trace.get_tracer("onescreen").start_as_current_span(name, attributes=attributes):
        yield
