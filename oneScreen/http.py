"""GraphQL over HTTP: request parsing, media types, GET policy, persisted queries, rate limits.

Follows the GraphQL-over-HTTP specification: POST with application/json,
responses in application/graphql-response+json when the client accepts it
(then 4xx for requests that fail to parse or validate) or application/json.
GET is off by default (subject identifiers in URLs end up in access logs);
when enabled it serves queries only, never mutations. Mutations need a JSON
body, which a cross-site form cannot send (no simple-request content type).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cachetools import TTLCache
from graphql import GraphQLSyntaxError, OperationDefinitionNode, OperationType, get_operation_ast, parse
from starlette.requests import Request

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
MAX_BODY = 256 * 1024
MAX_VARIABLES = 64 * 1024
# Invariant 12: an operation name a client sends reaches logs, spans and metric labels only when it is a plain
# name (or a registered operation's name); anything else (an RRN, a person's name, a phone number) is "other"
PLAIN_OPERATION = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass(frozen=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any]
    operation: str | None
    media_type: str  # what the response is sent as
    operation_label: str | None = None  # `operation` as logs and metrics may show it (PersistedQueries.label)


def negotiate(accept: str | None) -> str:
    """The response media type for an Accept header (406 if the client accepts neither JSON type)."""
    if not accept:
        return JSON
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if GRAPHQL_RESPONSE in types:
        return GRAPHQL_RESPONSE
    if JSON in types or "*/*" in types or "application/*" in types:
        return JSON
    raise HttpError(406, "NOT_ACCEPTABLE", f"send Accept: {GRAPHQL_RESPONSE} or {JSON}")


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The request body, refused (413) past `limit` bytes and (408) when it has not all come within `timeout`
    seconds: a client trickling its body holds no connection and no task for longer (invariant 10)."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise HttpError(413, "BODY_TOO_LARGE", f"the request body is larger than {limit} bytes")
    body = b""
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise HttpError(413, "BODY_TOO_LARGE", f"the request body is larger than {limit} bytes")
    except TimeoutError:
        raise HttpError(408, "BODY_TIMEOUT", f"the request body did not arrive within {timeout:g} s",
                        {"Connection": "close"}) from None
    return body


PEER = "onescreen.peer"  # scope key: the socket's peer, kept when a trusted proxy's X-Forwarded-For names the client


def peer(request: Request) -> str | None:
    """The address of the socket's other end: the one trust is decided on (ONESCREEN_TRUSTED_PROXIES). The
    workstation a trusted proxy forwarded for, which audit records name, is `request.client` (app.py)."""
    got = request.scope.get(PEER, request.scope.get("client"))
    return got[0] if got else None


async def read_request(request: Request, *, allow_get: bool, persisted: "PersistedQueries",
                       body_timeout: float, max_tokens: int) -> GraphQLRequest:
    media_type = negotiate(request.headers.get("accept"))
    if request.method == "GET":
        if not allow_get:
            raise HttpError(405, "METHOD_NOT_ALLOWED", "use POST /graphql (GET is off: subject identifiers "
                            "in URLs end up in access logs)", {"Allow": "POST"})
        params = request.query_params
        try:
            variables = json.loads(params["variables"]) if params.get("variables") else {}
            extensions = json.loads(params["extensions"]) if params.get("extensions") else {}
        except ValueError:
            raise HttpError(400, "BAD_REQUEST", "variables and extensions must be JSON") from None
        payload = {"query": params.get("query"), "variables": variables, "operationName": params.get("operationName"),
                   "extensions": extensions}
    else:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != JSON:
            raise HttpError(415, "UNSUPPORTED_MEDIA_TYPE", f"send the request as Content-Type: {JSON}")
        body = await read_body(request, MAX_BODY, body_timeout)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise HttpError(400, "BAD_REQUEST", "the body is not valid JSON (UTF-8)") from None
    if not isinstance(payload, dict):
        raise HttpError(400, "BAD_REQUEST", 'the body must be a JSON object: {"query": "...", "variables": {...}}')
    variables = {} if payload.get("variables") is None else payload["variables"]
    operation = payload.get("operationName")
    extensions = {} if payload.get("extensions") is None else payload["extensions"]
    if not isinstance(variables, dict) or not (operation is None or isinstance(operation, str)) \
            or not isinstance(extensions, dict):
        raise HttpError(400, "BAD_REQUEST", "variables and extensions must be objects, operationName a string")
    if len(orjson.dumps(variables)) > MAX_VARIABLES:
        raise HttpError(413, "VARIABLES_TOO_LARGE", f"variables larger than {MAX_VARIABLES} bytes")
    query = persisted.resolve(payload.get("query"), extensions)
    if request.method == "GET" and _is_mutation(query, operation, max_tokens):
        raise HttpError(405, "METHOD_NOT_ALLOWED", "mutations only over POST", {"Allow": "POST"})
    return GraphQLRequest(query, variables, operation, media_type, persisted.label(operation))


def _is_mutation(query: str, operation: str | None, max_tokens: int) -> bool:
    try:
        op = get_operation_ast(parse(query, max_lexical_tokens=max_tokens), operation)
    except (GraphQLSyntaxError, RecursionError):
        return False  # the schema reports it
    return op is not None and op.operation is OperationType.MUTATION


def read_registered(path: Path) -> tuple[dict[str, str], frozenset[str]]:
    """The registered queries of a persisted-query file ({sha256: query}) and their operation names, each query
    parsed once; ValueError naming the file and the query when one cannot be used."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(q, str) for q in data.values()):
        raise ValueError(f"{path}: not an object of sha256 -> query text")
    names: set[str] = set()
    for digest, query in data.items():
        if hashlib.sha256(query.encode()).hexdigest() != digest:
            raise ValueError(f"{path}: the query registered under {digest[:12]}... does not hash to it")
        try:
            names.update(d.name.value for d in parse(query).definitions
                         if isinstance(d, OperationDefinitionNode) and d.name is not None)
        except GraphQLSyntaxError:
            raise ValueError(f"{path}: the query registered under {digest[:12]}... does not parse") from None
    return data, frozenset(names)


class PersistedQueries:
    """A pre-registered allow-list (sha256 -> query) and Apollo-style automatic persisted queries.

    With `only` set, every request must name a registered query by hash: nothing else runs. An automatic one is
    kept only up to `max_chars` characters (a longer text is refused anyway), so the 10,000 kept stay bounded."""

    def __init__(self, path: Path | None = None, only: bool = False, max_chars: int = 12_288) -> None:
        self.registered: dict[str, str] = {}
        self.operations: frozenset[str] = frozenset()  # the operation names of the registered queries
        if path:
            self.use(read_registered(Path(path)))
        self.only = only
        self.max_chars = max_chars
        self.automatic: TTLCache = TTLCache(maxsize=10_000, ttl=24 * 3600)

    def use(self, loaded: tuple[dict[str, str], frozenset[str]]) -> None:
        """Run these registered queries (read_registered: the queries and their operation names) from now on."""
        self.registered, self.operations = loaded

    def label(self, operation: str | None) -> str | None:
        """`operation` if it is a registered operation's name or a plain name, else "other" (invariant 12)."""
        if operation is None or operation in self.operations or PLAIN_OPERATION.fullmatch(operation):
            return operation
        return "other"

    def resolve(self, query: Any, extensions: dict[str, Any]) -> str:
        pq = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        digest = pq.get("sha256Hash") if isinstance(pq, dict) else None
        if digest is not None and not isinstance(digest, str):
            raise HttpError(400, "BAD_REQUEST", "persistedQuery.sha256Hash must be a string")
        if isinstance(query, str):
            if not digest and not self.only:
                return query  # a plain query: nothing to check its hash against: no sha256 (0.5% of a screen)
            actual = hashlib.sha256(query.encode()).hexdigest()
            if digest and digest != actual:
                raise HttpError(400, "PERSISTED_QUERY_HASH_MISMATCH", "the query does not match its sha256Hash")
            if self.only and actual not in self.registered:
                raise HttpError(403, "PERSISTED_QUERY_REQUIRED", "only registered (persisted) queries are allowed")
            if digest and not self.only and len(query) <= self.max_chars:
                self.automatic[actual] = query
            return query
        if query is not None:
            raise HttpError(400, "BAD_REQUEST", "query must be a string")
        if digest is None:
            raise HttpError(400, "BAD_REQUEST", "the request has no query")
        found = self.registered.get(digest) or (None if self.only else self.automatic.get(digest))
        if found is None:
            # Apollo clients resend with the full query on this code (HTTP 200, like Apollo servers)
            raise HttpError(200, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
        return found


class RateLimiter:
    """Token buckets per key (user, organisation), bounded in memory: idle buckets expire. One process's count:
    counters.InProcessRateLimits uses it where the limits are not shared (a demo, ONESCREEN_COUNTERS=per-process);
    counters.RedisRateLimits counts the same figures for every pod."""

    def __init__(self, per_minute: int, burst: int | None = None, max_keys: int = 100_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst or max(1, per_minute // 6))
        self.buckets: TTLCache = TTLCache(maxsize=max_keys, ttl=3600)

    def check(self, key: str, now: float | None = None) -> float | None:
        """None if allowed (a token is taken), else the seconds until a token is free."""
        if self.rate <= 0:
            return None
        now = time.monotonic() if now is None else now
        tokens, last = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self.buckets[key] = (tokens - 1, now)
            return None
        self.buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate
