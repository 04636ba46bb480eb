"""create_app(): the ASGI application: /graphql, /healthz, /readyz, /metrics and the frontend.

Owns invariant 8 on the running side: the configuration is an immutable
Snapshot; reload() builds and validates a new one and swaps it in one
assignment, so in-flight requests keep the snapshot they started with.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import hashlib
import logging
import math
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import orjson
from cachetools import LRUCache
from cryptography.fernet import Fernet
import strawberry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from connectors import base as connectors_base

from . import catalog as catalog_mod, policy as policy_mod
from .catalog import Catalog
from .audit import AuditEvent, AuditSchemaError, AuditStore, AuditUnavailable, FieldDecision
from .audit import setup as audit_setup
from .consent import ConsentStore
from .errors import ConfigError, ConfigErrors, OneScreenError, Unauthenticated
from .http import GRAPHQL_RESPONSE, HttpError, PersistedQueries, RateLimiter, read_body, read_request
from .gateway import Gateway
from .graphql import build_schema
from .graphql.context import Context
from .identity import Verifier, demo_key
from .lookups import InProcessLookupBudget, LookupBudget
from .metrics import Metrics
from .policy import Caller, Policies
from .tracing import span
from .settings import ROOT, Settings, load as load_settings

log = logging.getLogger("onescreen.app")
FRONTEND = ROOT / "frontend"
GRAPHIQL = Path(__file__).resolve().parent / "static" / "graphiql"  # demo mode's IDE, vendored (tools/fetch_graphiql.py)


@dataclass(frozen=True)
class Snapshot:
    catalog: Catalog
    policies: Policies
    schema: strawberry.Schema
    gateway: Gateway
    metrics: Metrics
    loaded_at: datetime
    audit: AuditStore
    consents: ConsentStore
    pseudonym_key: bytes
    handles: Fernet  # opaque subject handles given out by `subjects`
    admin: Any  # admin.Admin: catalog and task change control
    lookups: LookupBudget  # lookups by identifier that found nothing, per user and organisation (lookups.py)
    # policy decisions of typed queries, per task, selection, roles and facts (graphql/context.py `_decide`)
    decided: LRUCache = field(default_factory=lambda: LRUCache(maxsize=4096))


class Runtime:
    """The running service: settings, identity, metrics and the current configuration snapshot."""

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.env = dict(os.environ if env is None else env)
        self.metrics = Metrics()
        if settings.demo:
            from .demo import config as demo_config, ledgers as demo_ledgers
            demo_config.ensure(settings)  # the demo's own copy of the configuration, before anything reads it
            self.demo_dir: Path | None = settings.data_dir / "demo"
            demo_ledgers.ensure(self.demo_dir)
            self._stop_agency = start_demo_agency_api(settings, self.env, self.demo_dir)
            self.verifier = Verifier(demo_key=demo_key(settings.data_dir))
        else:
            self.demo_dir = None
            self._stop_agency = None
            keys = self.env.get("ONESCREEN_JWT_KEYS")
            self.verifier = Verifier(keys_path=Path(keys) if keys else None,
                                     issuer=self.env.get("ONESCREEN_JWT_ISSUER"),
                                     audience=self.env.get("ONESCREEN_JWT_AUDIENCE"))
        if not settings.demo and not self.env.get("ONESCREEN_AUDIT_URL"):
            raise ValueError("production mode needs ONESCREEN_AUDIT_URL (the shared PostgreSQL audit store): "
                             "a local file would not be shared by the workers, nor backed up")
        self.pseudonym_key = _pseudonym_key(settings, self.env)
        handle_key = hashlib.sha256(b"onescreen subject handles\0" + self.pseudonym_key).digest()
        self.handles = Fernet(base64.urlsafe_b64encode(handle_key))
        self.audit = audit_setup.service_store(settings, self.env)
        self.metrics.audit_last_commit.set_function(lambda: self.audit.last_commit or 0.0)
        self.consents = ConsentStore(_async_url(settings.audit_url))
        from .admin import Admin
        self.admin = Admin(self, _async_url(settings.audit_url))
        self._opened: asyncio.Task | None = None
        self.config_error: str | None = None
        self._operations: set[str] = set()
        self._catalog_stamp: tuple | None = None
        self.persisted = PersistedQueries(settings.persisted_queries, settings.persisted_only,
                                          settings.limits.max_chars)
        self.user_rate = RateLimiter(settings.rate_user_per_min)
        self.org_rate = RateLimiter(settings.rate_org_per_min)
        self.lookups = InProcessLookupBudget(settings.lookup_misses_per_user, settings.lookup_misses_per_org,
                                             settings.lookup_window)
        self.snapshot = self._build(None)
        self._loaded_stamp = self.config_stamp()

    def operation_label(self, operation: str | None) -> str:
        """A bounded set of metric labels: the first 100 operation names seen, then 'other'. `operation` is
        already checked (GraphQLRequest.operation_label: a plain or registered name, or "other")."""
        name = operation or "anonymous"
        if name in self._operations or len(self._operations) < 100:
            self._operations.add(name)
            return name
        return "other"

    def config_stamp(self) -> tuple:
        """Modification times of the configuration files, to notice changes made by others (CLI, other workers)."""
        out = []
        for f in [self.settings.catalog_path, *sorted(self.settings.policies_dir.rglob("*.yaml"))]:
            try:
                st = f.stat()  # one stat a file: the watcher runs this every 2 s over hundreds of task files
            except FileNotFoundError:
                continue
            out.append((str(f), st.st_mtime_ns, st.st_size))
        return tuple(out)

    async def watch_config(self, interval: float = 2.0) -> None:
        """Reload when the files change on disk (validated; a bad file is refused and reported by /readyz)."""
        stamp = self._loaded_stamp  # what the running snapshot was built from: a change before the first look counts
        while True:
            await asyncio.sleep(interval)
            current = self.config_stamp()
            if current != stamp:
                stamp = current
                try:
                    self.reload()
                except (ConfigError, ConfigErrors):
                    log.error("configuration on disk is invalid; the running configuration stays")

    def identify(self, request: Request) -> Caller:
        """The caller: from a trusted proxy's header when that mode is on and the peer is trusted, else a bearer token."""
        header = self.env.get("ONESCREEN_TRUSTED_PROXY_HEADER")
        if header and header in request.headers:
            if request.client is None or not _trusted(request.client.host, self.env.get("ONESCREEN_TRUSTED_PROXIES", "")):
                raise Unauthenticated("identity headers are accepted only from the trusted proxies")
            return self.verifier.from_trusted_header(request.headers[header])
        return self.verifier.caller(request.headers.get("authorization"))

    async def ready(self) -> None:
        """Open the audit and consent stores once (lazily: the first request waits for it)."""
        if self._opened is None:
            self._opened = asyncio.ensure_future(self._open())
        await asyncio.shield(self._opened)

    async def _open(self) -> None:
        try:
            await self.audit.open()
            await self.consents.open()
            await self.admin.store.open()
        except BaseException:
            self._opened = None  # try again on the next request
            raise

    def _build(self, previous: Snapshot | None) -> Snapshot:
        # The snapshot is hundreds of thousands of objects at national scale, none of them garbage: the cyclic
        # collector would walk them again and again while they are made (measured 13.0 -> 7.6 s at 500 ledgers).
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._build_snapshot(previous)
        finally:
            if enabled:
                gc.enable()

    def _build_snapshot(self, previous: Snapshot | None) -> Snapshot:
        path = self.settings.catalog_path
        stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() else None
        if previous is not None and stamp is not None and stamp == self._catalog_stamp:
            # only tasks changed: the catalog and its GraphQL schema (most of a reload at national scale) stay
            cat, schema = previous.catalog, previous.schema
        else:
            cat = catalog_mod.load(path)
            schema = build_schema(cat, production=not self.settings.demo, limits=self.settings.limits,
                                  introspection=self.settings.introspection)
        pol = policy_mod.load(self.settings.policies_dir, cat)
        old = previous.gateway if previous else None
        connectors: dict[str, Any] = {}
        for lid, ledger in cat.ledgers.items():
            prev = old.ledgers.get(lid) if old else None
            if prev is not None and (prev.connector, prev.key_column, prev.timeout) \
                    == (ledger.connector, ledger.key_column, ledger.timeout):
                connectors[lid] = old.connectors[lid]  # unchanged: keep its pool
            else:
                spec = connectors_base.SourceSpec(lid, ledger.key_column, ledger.connector, self.env,
                                                  str(self.demo_dir) if self.demo_dir else None,
                                                  budget=ledger.timeout)  # the gateway's bound on every fetch
                try:
                    connectors[lid] = connectors_base.create(spec)
                except connectors_base.ConnectorConfigError as exc:
                    raise ConfigErrors([ConfigError(str(self.settings.catalog_path), None, str(exc))]) from None
        gateway = Gateway(cat.ledgers, connectors, self.metrics)
        if old is not None:
            gateway.adopt(old)
        self._catalog_stamp = stamp  # only once the whole snapshot is built: a failed build must not mark it loaded
        return Snapshot(cat, pol, schema, gateway, self.metrics, datetime.now(timezone.utc), self.audit,
                        self.consents, self.pseudonym_key, self.handles, self.admin, self.lookups)

    def reload(self) -> Snapshot:
        """Validate the files on disk and swap them in; on any error the running snapshot stays."""
        old = self.snapshot
        if self.config_stamp() == getattr(self, "_loaded_stamp", None):
            return old  # nothing changed on disk (e.g. the watcher after an in-process apply)
        try:
            new = self._build(old)
        except (ConfigError, ConfigErrors) as exc:
            self.config_error = f"the files on disk are invalid, the running configuration stays: {exc}"[:2000]
            raise
        self.config_error = None
        self._loaded_stamp = self.config_stamp()
        self.snapshot = new  # one assignment: requests already running keep `old`
        stale = [c for lid, c in old.gateway.connectors.items() if new.gateway.connectors.get(lid) is not c]
        gc.unfreeze()  # the old snapshot must become collectable; the new one is frozen once the old is gone
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            if stale:
                loop.call_later(60, lambda: asyncio.ensure_future(_close_all(stale)))
            loop.call_later(2 * self.settings.request_timeout + 1, settle_heap)
        log.info("configuration reloaded", extra={"status": "ok"})
        return new

    async def close(self) -> None:
        await self.snapshot.gateway.close()
        await self.audit.close()
        await self.consents.close()
        await self.admin.close()
        if self._stop_agency is not None:
            self._stop_agency()

    def refused(self, exc: AuditUnavailable) -> None:
        """Count a request refused because the audit trail could not be written (invariant 7 failing closed)."""
        self.metrics.audit_refused.labels(exc.reason).inc()

    async def audit_request(self, ctx: Context) -> None:
        """One durable record per subject disclosed (or searched) by this request, before the response leaves."""
        events = [_event(ctx, d) for d in ctx.disclosures]
        events += ctx.extra_events
        if events:
            await self.audit.append_many(events)


GC_YOUNG = 10_000  # allocations between collections of the collector's young generation (CPython: 700)


def settle_heap() -> None:
    """Move what lives now (modules, the configuration snapshot: hundreds of thousands of objects at national
    scale) out of the cyclic collector's generations, so its collections only walk what requests allocate
    (`python -m bench.ab`: 1.07x-1.27x screens per CPU second). After a reload, `reload()` unfreezes and calls
    this again once requests on the old snapshot are over, so the old snapshot can still be collected.

    Also lets the young generation reach GC_YOUNG objects before it is collected. At CPython's 700, the
    allocations of the reads in flight set off a collection every few reads, each walking the other requests'
    live objects again: 3.6% of a distinct-subject screen's instructions (callgrind, the same as with the
    collector off); at 10,000 no measurable cost is left, and garbage cycles still go within milliseconds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])


def start_demo_agency_api(settings: Settings, env: dict[str, str], demo_dir: Path):
    """Demo mode: an in-process agency API test server answers the demo's REST ledgers (loopback only).

    Sets their base-URL and service-key variables in `env` (unless already set); returns a stop function."""
    from .demo import agency_api

    rest = [l.connector for l in catalog_mod.load(settings.catalog_path).ledgers.values()
            if l.connector.get("demo_server") == "agency_api"]
    if not rest or all(env.get(c["base_url_env"]) for c in rest):
        return None
    service_key = secrets.token_urlsafe(24)
    url, stop = agency_api.start_in_thread(demo_dir, service_key)
    for c in rest:
        env.setdefault(c["base_url_env"], url)
        env.setdefault(c["service_key_env"], service_key)
    return stop


def _event(ctx: Context, d: Any) -> AuditEvent:
    task = d.task
    granting = sorted(ctx.caller.roles & task.roles)
    ledgers = sorted({r.source.ledger for r in d.results.values() if r.source is not None})
    return AuditEvent(
        kind="search" if d.case_ref == "" else "disclosure", request_id=ctx.request_id, user=ctx.caller.user,
        organisation=ctx.caller.org, role=granting[0] if granting else "", task=task.code,
        legal_basis=task.legal_basis, case_ref=d.case_ref, subject_type=d.subject_type,
        subject=ctx.pseudonym(d.subject_type, d.key),
        fields=tuple(_decision(pid, r.status) for pid, r in sorted(d.results.items())),
        ledgers=tuple(ledgers), client=ctx.client)


def _decision(pid: str, status: Any) -> FieldDecision:
    """The audit's (field id, status) pair; immutable, so one object per pair serves every record."""
    d = _DECISIONS.get((pid, status))
    if d is None:
        if len(_DECISIONS) > 100_000:
            _DECISIONS.clear()
        d = _DECISIONS[(pid, status)] = FieldDecision(pid, status.value)
    return d


_DECISIONS: dict[tuple[str, Any], FieldDecision] = {}


def _trusted(host: str, proxies: str) -> bool:
    """Whether `host` is one of the trusted proxies: addresses or networks (CIDR), comma-separated."""
    import ipaddress
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    for item in (p.strip() for p in proxies.split(",")):
        try:
            if item and address in ipaddress.ip_network(item, strict=False):
                return True
        except ValueError:
            continue
    return False


def _pseudonym_key(settings: Settings, env: Mapping[str, str]) -> bytes:
    raw = env.get("ONESCREEN_AUDIT_KEY")
    if raw:
        try:
            key = bytes.fromhex(raw)
        except ValueError:
            raise ValueError("ONESCREEN_AUDIT_KEY must be hex (e.g. 64 hex digits)") from None
        if len(key) < 16:
            raise ValueError("ONESCREEN_AUDIT_KEY must hold at least 16 bytes (32 hex digits)")
        return key
    if not settings.demo:
        raise ValueError("production mode needs ONESCREEN_AUDIT_KEY (hex) to pseudonymise subjects in the audit trail")
    path = settings.data_dir / "audit-pseudonym.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _async_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    u = make_url(url)
    drivers = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
    if "+" not in u.drivername and u.get_backend_name() in drivers:
        u = u.set(drivername=drivers[u.get_backend_name()])
    return u.render_as_string(hide_password=False)


async def _close_all(connectors: list[Any]) -> None:
    await asyncio.gather(*(c.close() for c in connectors), return_exceptions=True)


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return _json({"errors": [{"message": message, "extensions": {"code": code}}]}, status, headers)


def worker_app() -> Starlette:
    """The app of one `onescreen serve --workers N` process (uvicorn factory): settings from the environment."""
    from . import logs
    settings = load_settings()
    logs.setup(settings.log_level)
    return create_app(settings)


def create_app(settings: Settings | None = None, env: Mapping[str, str] | None = None) -> Starlette:
    settings = settings or load_settings(env)
    runtime = Runtime(settings, env)

    async def graphql_endpoint(request: Request) -> Response:
        started = time.perf_counter()
        request_id = secrets.token_hex(16)  # 32 hex digits, as uuid4().hex, at a third of the cost
        snapshot = runtime.snapshot
        try:
            caller = runtime.identify(request)
        except Unauthenticated as exc:
            runtime.metrics.requests.labels("unauthenticated").inc()
            return _error(401, exc.code, exc.message, {"WWW-Authenticate": "Bearer"})
        for limiter, key in ((runtime.user_rate, caller.user), (runtime.org_rate, caller.org or caller.user)):
            wait = limiter.check(key)
            if wait is not None:
                runtime.metrics.requests.labels("rate_limited").inc()
                return _error(429, "RATE_LIMITED", "too many requests; slow down and retry",
                              {"Retry-After": str(max(1, math.ceil(wait)))})
        try:
            gql = await read_request(request, allow_get=settings.allow_get, persisted=runtime.persisted,
                                     body_timeout=settings.body_timeout,
                                     max_tokens=settings.limits.max_tokens)
        except HttpError as exc:
            return _error(exc.status, exc.code, exc.message, exc.headers)
        try:
            await runtime.ready()
        except AuditUnavailable as exc:
            runtime.refused(exc)
            return _error(503, exc.code, exc.message)
        ctx = Context(caller, snapshot, request_id, request.client.host if request.client else "")
        try:
            with span("graphql.request", request_id=request_id, operation=gql.operation_label or ""):
                async with asyncio.timeout(settings.request_timeout):
                    result = await snapshot.schema.run(gql.query, gql.variables, ctx, gql.operation)
        except TimeoutError:
            runtime.metrics.requests.labels("timeout").inc()
            return _error(504, "REQUEST_TIMEOUT", f"the request took longer than {settings.request_timeout:g} s; "
                          "nothing was disclosed", {"X-Request-Id": request_id})
        try:
            audit_started = time.perf_counter()
            await runtime.audit_request(ctx)  # invariant 7: durable before anything is sent
            runtime.metrics.audit_latency.observe(time.perf_counter() - audit_started)
        except AuditUnavailable as exc:
            runtime.refused(exc)
            runtime.metrics.audit_failures.inc()
            runtime.metrics.requests.labels("audit_failed").inc()
            log.error("audit write failed; nothing disclosed", extra={"request_id": request_id, "reason": exc.reason})
            return _error(503, exc.code, exc.message, {"X-Request-Id": request_id})
        out: dict[str, Any] = {}
        if result.errors:
            out["errors"] = [_formatted(e, request_id) for e in result.errors]
        if result.data is not None or _executed(result):
            out["data"] = result.data
        out["extensions"] = {"requestId": request_id}
        failed_before_execution = result.errors and not _executed(result)
        status = 400 if failed_before_execution and gql.media_type == GRAPHQL_RESPONSE else 200
        headers = {"X-Request-Id": request_id}
        if ctx.retry_after is not None:  # a lookup by identifier was refused: the caller's lookup budget is spent
            status, headers["Retry-After"] = 429, str(math.ceil(ctx.retry_after))
        elapsed = time.perf_counter() - started
        m = runtime.metrics
        m.bound(m.request_latency, runtime.operation_label(gql.operation_label)).observe(elapsed)
        m.bound(m.requests, "ok" if not result.errors else "lookup_budget" if status == 429 else "errors").inc()
        log.info("graphql request", extra={"request_id": request_id, "user": caller.user, "org": caller.org,
                                           "operation": gql.operation_label, "duration_ms": round(elapsed * 1000, 1),
                                           "errors": len(result.errors or [])})
        return Response(orjson.dumps(out), status_code=status, media_type=gql.media_type, headers=headers)

    async def graphql_get(request: Request) -> Response:
        wants_html = "text/html" in request.headers.get("accept", "")
        if wants_html and settings.demo and not request.query_params.get("query"):
            return FileResponse(GRAPHIQL / "index.html")  # GraphiQL, a developer tool of demo mode
        if not settings.allow_get:
            return _error(405, "METHOD_NOT_ALLOWED", "use POST /graphql (GET is off: subject identifiers in URLs "
                          "end up in access logs)", {"Allow": "POST"})
        return await graphql_endpoint(request)

    async def demo_users_endpoint(_request: Request) -> Response:
        """Demo mode only: the demo users, for the sign-in picker."""
        from .identity import demo_users
        tasks = runtime.snapshot.policies.tasks.values()
        return _json([{"user": u.user, "name": u.name, "org": u.org, "region": u.region, "roles": list(u.roles),
                       "tasks": sorted(t.code for t in tasks if t.roles & set(u.roles))} for u in demo_users()])

    async def demo_token_endpoint(request: Request) -> Response:
        """Demo mode only: a token for a demo user (what `onescreen token` prints), for the sign-in picker."""
        from .identity import mint_demo_token
        try:
            body = orjson.loads(await read_body(request, 4096, settings.body_timeout))
            token = mint_demo_token(settings.data_dir, str(body["user"]), settings.token_ttl)
        except HttpError as exc:
            return _error(exc.status, exc.code, exc.message, exc.headers)
        except (ValueError, KeyError, TypeError):
            return _error(400, "BAD_REQUEST", 'send {"user": "<a demo user id>"}')
        return _json({"token": token}, headers={"Cache-Control": "no-store"})

    async def healthz(_request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        """Ready when the configuration on disk is valid and the audit store takes writes (fail closed otherwise);
        each ledger's circuit is reported but an open one does not take the service out (its fields degrade)."""
        s = runtime.snapshot
        problems = []
        if runtime.config_error:
            problems.append(f"configuration: {runtime.config_error}")
        try:
            await runtime.ready()
            await runtime.audit.check_writable()
        except AuditUnavailable as exc:
            problems.append(f"audit store: {exc.message}")
        body = {"status": "not ready" if problems else "ready", "mode": settings.mode, "problems": problems,
                "tasks": len(s.policies.tasks), "loadedAt": s.loaded_at.isoformat(), "ledgers": s.gateway.circuits()}
        return _json(body, 503 if problems else 200)

    async def metrics(_request: Request) -> Response:
        return PlainTextResponse(runtime.metrics.render(), media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette):
        if settings.demo:
            log.warning("DEMO MODE: synthetic demo ledgers and demo users; never use with real data",
                        extra={"mode": "demo"})
        try:  # a store that is missing or of another schema version stops the start (invariant 7)
            await runtime.ready()
        except AuditSchemaError as exc:
            log.error(f"cannot start: {exc.message}", extra={"operation": "audit.open", "outcome": "failed"})
            raise
        except AuditUnavailable:
            pass  # unreachable now: requests get 503 and /readyz says why until it is back
        watcher = asyncio.ensure_future(runtime.watch_config())
        settle_heap()
        yield
        watcher.cancel()
        await runtime.close()

    routes = [
        Route("/graphql", graphql_endpoint, methods=["POST"]),
        Route("/graphql", graphql_get, methods=["GET"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]
    if settings.demo:
        routes += [Route("/demo/users", demo_users_endpoint), Route("/demo/token", demo_token_endpoint, methods=["POST"]),
                   Mount("/graphiql", StaticFiles(directory=GRAPHIQL))]
    if FRONTEND.is_dir():
        routes.append(Mount("/", StaticFiles(directory=FRONTEND, html=True)))
    app = App(routes=routes, lifespan=lifespan, middleware=[Middleware(SecurityHeaders)])
    app.graphql_post = graphql_endpoint
    app.state.runtime = runtime
    return app


class App(Starlette):
    """Starlette, with POST /graphql (every screen) handled in one step: no middleware stack, no route matching.

    The route and the middleware stay for everything else (and POST /graphql is routed too, for clarity); this
    path adds the same security headers and, like Starlette's ServerErrorMiddleware, answers 500 and re-raises
    when the endpoint fails. Measured: 0.52 -> 0.50 CPU ms per all-cached screen (`python -m bench.ab`)."""

    graphql_post: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/graphql" \
                or self.graphql_post is None:
            return await super().__call__(scope, receive, send)
        scope["app"] = self
        try:
            response = await self.graphql_post(Request(scope, receive))
        except Exception:
            response = PlainTextResponse("Internal Server Error", status_code=500)
            response.raw_headers += SECURITY_HEADERS
            await response(scope, receive, send)
            raise
        response.raw_headers += SECURITY_HEADERS
        await response(scope, receive, send)


# One policy for every page, GraphiQL included: scripts and styles only from this origin, never inline. Fonts may
# be data: URLs (GraphiQL's stylesheet embeds its fonts so), which can carry no script.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"), (b"content-security-policy", CSP.encode())]  # CSP last


class SecurityHeaders:
    """CSP without 'unsafe-inline' on every page (GraphiQL too: its files are the package's), no sniffing, no
    referrer, no framing."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _formatted(error: Any, request_id: str) -> dict:
    out = error.formatted
    if out.get("message") == "Internal error":  # masked: the request id lets an operator find it in the logs
        out = {**out, "extensions": {**(out.get("extensions") or {}), "code": "INTERNAL", "requestId": request_id}}
    return out


def _executed(result: Any) -> bool:
    """Whether execution started (errors then are field errors), as opposed to parse/validation errors."""
    return any(e.path for e in (result.errors or []))
