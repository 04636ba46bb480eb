"""POST (and GET) /graphql: the walk of one request, read straight down.

identify (identity.py) -> rate limits -> a turn (at most ONESCREEN_MAX_IN_FLIGHT at once) -> read the request
(http.py) -> execute (graphql/schema.py, which calls the door, disclose.py) -> write the audit events (audit/)
-> respond.

Owns invariant 7 on the request side: the response is built, then the request's audit records are
durable, and only then does any byte of it leave; when the trail cannot be written, the answer is 503
and nothing is disclosed. Every step has a bound: the queue timeout around the wait for a turn, the
request timeout around execution, the audit deadline around the write.
"""
from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from .audit import AuditUnavailable
from .disclose import Door
from .errors import Unauthenticated
from .http import GRAPHQL_RESPONSE, HttpError, peer, read_request
from .metrics import Metrics
from .policy import Caller
from .runtime import Runtime
from .tracing import span

log = logging.getLogger("onescreen.app")
GRAPHIQL = Path(__file__).resolve().parent / "static" / "graphiql"  # demo mode's IDE, vendored (tools/fetch_graphiql.py)


def graphql_endpoints(runtime: Runtime) -> tuple[Callable[[Request], Awaitable[Response]],
                                                   Callable[[Request], Awaitable[Response]]]:
    """The POST and GET handlers of /graphql for `runtime`."""
    settings = runtime.settings
    # A bound on the requests this worker works on at once. Without it, more arrivals than the worker can serve
    # all ran at once and slowed together until their clients gave up (an open-loop flood at 1.2x capacity:
    # 0.63x of it answered, p99 10 s); with it, the excess waits its turn first come, first served, or after
    # ONESCREEN_QUEUE_TIMEOUT is told to retry, before anything is read, and those admitted finish in time.
    turns = asyncio.Semaphore(settings.max_in_flight)
    said_overloaded = [-math.inf]  # loop time of the last log line saying so: once a minute at most

    async def post(request: Request) -> Response:
        started = time.perf_counter()
        m = runtime.metrics
        try:
            caller = runtime.verifier.identify(request.headers, peer(request))
        except Unauthenticated as exc:
            m.requests.labels("unauthenticated").inc()
            return error(401, exc.code, exc.message, {"WWW-Authenticate": "Bearer"})
        refused = await runtime.rate_limits.check(caller.user, caller.org or caller.user)  # one Redis round trip
        if refused is not None:
            m.requests.labels("rate_limited").inc()
            return error(429, "RATE_LIMITED", "too many requests; slow down and retry",
                         {"Retry-After": str(max(1, math.ceil(refused[1])))})
        if turns.locked():  # every turn is taken: wait for one, within the bound
            try:
                async with asyncio.timeout(settings.queue_timeout):
                    await turns.acquire()
            except TimeoutError:
                return overloaded(m)
        else:
            await turns.acquire()  # a free turn: taken at once
        try:
            return await admitted(request, started, m, caller)
        finally:
            turns.release()

    def overloaded(m: Metrics) -> Response:
        m.requests.labels("overloaded").inc()
        now = asyncio.get_running_loop().time()
        if now - said_overloaded[0] >= 60:
            said_overloaded[0] = now
            log.warning("requests refused: the worker is at ONESCREEN_MAX_IN_FLIGHT and they waited "
                        "ONESCREEN_QUEUE_TIMEOUT (onescreen_graphql_requests_total{outcome=\"overloaded\"} counts them)",
                        extra={"reason": f"{settings.max_in_flight} in flight, {settings.queue_timeout:g} s"})
        return error(503, "OVERLOADED", "the service is busy; retry in a moment (nothing was read or disclosed)",
                     {"Retry-After": "1"})

    async def admitted(request: Request, started: float, m: Metrics, caller: Caller) -> Response:
        request_id = secrets.token_hex(16)  # 32 hex digits, as uuid4().hex, at a third of the cost
        snapshot = runtime.snapshot
        try:
            gql = await read_request(request, allow_get=settings.allow_get, persisted=runtime.persisted,
                                     body_timeout=settings.body_timeout, max_tokens=settings.limits.max_tokens)
        except HttpError as exc:
            return error(exc.status, exc.code, exc.message, exc.headers)
        try:
            await runtime.ready()
        except AuditUnavailable as exc:
            runtime.refused(exc)
            return error(503, exc.code, exc.message)
        door = Door(caller, snapshot, request_id, request.client.host if request.client else "")
        try:
            with span("graphql.request", request_id=request_id, operation=gql.operation_label or ""):
                async with asyncio.timeout(settings.request_timeout):
                    result = await snapshot.schema.run(gql.query, gql.variables, door, gql.operation)
        except TimeoutError:
            m.requests.labels("timeout").inc()
            return error(504, "REQUEST_TIMEOUT", f"the request took longer than {settings.request_timeout:g} s; "
                         "nothing was disclosed", {"X-Request-Id": request_id})
        out: dict[str, Any] = {}
        if result.errors:
            out["errors"] = [_formatted(e, request_id) for e in result.errors]
        executed = _executed(result)
        if result.data is not None or executed:
            out["data"] = result.data
        out["extensions"] = {"requestId": request_id}
        status = 400 if result.errors and not executed and gql.media_type == GRAPHQL_RESPONSE else 200
        headers = {"X-Request-Id": request_id}
        if door.budget_unavailable:  # the shared lookup budget could not be checked: no lookup by identifier ran
            status = 503
        elif door.retry_after is not None:  # a lookup by identifier was refused: the caller's lookup budget is spent
            status, headers["Retry-After"] = 429, str(math.ceil(door.retry_after))
        body = orjson.dumps(out)  # before the audit write: a response that cannot be sent is never recorded as sent
        try:
            events = door.events()
            if events:
                audit_started = time.perf_counter()
                await runtime.audit.append_many(events)  # invariant 7: durable before anything is sent
                m.audit_latency.observe(time.perf_counter() - audit_started)
                m.committed()
        except AuditUnavailable as exc:
            runtime.refused(exc)
            m.audit_failures.inc()
            m.requests.labels("audit_failed").inc()
            log.error("audit write failed; nothing disclosed", extra={"request_id": request_id, "reason": exc.reason})
            return error(503, exc.code, exc.message, {"X-Request-Id": request_id})
        elapsed = time.perf_counter() - started
        m.bound(m.request_latency, runtime.operation_label(gql.operation_label)).observe(elapsed)
        m.bound(m.requests, "ok" if not result.errors else "lookup_budget" if status in (429, 503) else "errors").inc()
        log.info("graphql request", extra={"request_id": request_id, "user": caller.user, "org": caller.org,
                                           "operation": gql.operation_label, "duration_ms": round(elapsed * 1000, 1),
                                           "errors": len(result.errors or [])})
        return Response(body, status_code=status, media_type=gql.media_type, headers=headers)

    async def get(request: Request) -> Response:
        wants_html = "text/html" in request.headers.get("accept", "")
        if wants_html and settings.demo and not request.query_params.get("query"):
            return FileResponse(GRAPHIQL / "index.html")  # GraphiQL, a developer tool of demo mode
        if not settings.allow_get:
            return error(405, "METHOD_NOT_ALLOWED", "use POST /graphql (GET is off: subject identifiers in URLs "
                         "end up in access logs)", {"Allow": "POST"})
        return await post(request)

    return post, get


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


def error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_response({"errors": [{"message": message, "extensions": {"code": code}}]}, status, headers)


def _formatted(error: Any, request_id: str) -> dict:
    out = error.formatted
    if out.get("message") == "Internal error":  # masked: the request id lets an operator find it in the logs
        out = {**out, "extensions": {**(out.get("extensions") or {}), "code": "INTERNAL", "requestId": request_id}}
    return out


def _executed(result: Any) -> bool:
    """Whether execution started (errors then are field errors), as opposed to parse/validation errors."""
    return any(e.path for e in (result.errors or []))
