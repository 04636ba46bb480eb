"""Optional OpenTelemetry tracing: a span per GraphQL request and per ledger read, when the packages are installed.

Without opentelemetry-api every span is a no-op. Spans carry ids (request,
ledger, key count), never a value or a subject identifier. Exporters are the
operator's choice, configured the standard OpenTelemetry way.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, ContextManager

try:
    from opentelemetry import trace as _trace
except ImportError:  # tracing is optional
    _trace = None

NO_SPAN = contextlib.nullcontext()
# A provider named in the environment is loaded by get_tracer_provider() itself on first use.
_PROVIDER_FROM_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


def tracer() -> Any:
    """The tracer when a real TracerProvider is configured, else None (no span objects at all)."""
    if _trace is None:
        return None
    if not _PROVIDER_FROM_ENV and getattr(_trace, "_TRACER_PROVIDER", False) is None:
        return None  # none set in this process yet (get_tracer_provider() would look in the environment per span)
    provider = _trace.get_tracer_provider()
    if type(provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
        return None
    return provider.get_tracer("onescreen")


def span(name: str, **attributes: Any) -> ContextManager[Any]:
    """A span around a block, or a shared do-nothing context when tracing is off (the usual case: a request
    makes seven of these)."""
    tracer_ = tracer()
    if tracer_ is None:
        return NO_SPAN
    return tracer_.start_as_current_span(name, attributes=attributes)
