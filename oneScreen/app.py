"""create_app(): the ASGI application: /graphql, /healthz, /readyz, /metrics, /admin/ (admin_http.py), the demo's
sign-in and the frontend.

The factory only: the running service is runtime.py, the request walk is endpoint.py (and the door,
disclose.py). Every response carries the security headers, applied once by one middleware.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
from typing import Any, Mapping

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from . import admin_http
from .audit import AuditSchemaError, AuditUnavailable
from .endpoint import GRAPHIQL, error, graphql_endpoints, json_response
from .http import PEER, HttpError, read_body
from .runtime import Runtime, settle_heap
from .settings import FRONTEND, Settings, load as load_settings

log = logging.getLogger("onescreen.app")

# Allocations between collections of the cyclic collector's young generation (CPython: 700). At 700 the reads in
# flight set off a young collection every few reads, each walking the other requests' live objects again.
# Set once the service has started: 5.656 vs 6.179 M instructions per distinct-subject screen, -8.5% (mean of 2
# rounds, `python -m bench.icount HEAD --screens 600 --rounds 2`, 2026-12-04); garbage cycles still go within ms.
GC_YOUNG = 10_000


def worker_app() -> Starlette:
    """The app of one `onescreen serve --workers N` process (uvicorn factory): settings from the environment."""
    from . import logs
    settings = load_settings()
    logs.setup(settings.log_level)
    return create_app(settings)


def create_app(settings: Settings | None = None, env: Mapping[str, str] | None = None) -> Starlette:
    settings = settings or load_settings(env)
    runtime = Runtime(settings, env)

    graphql_post, graphql_get = graphql_endpoints(runtime)

    async def demo_users_endpoint(_request: Request) -> Response:
        """Demo mode only: the demo users, for the sign-in picker."""
        from .identity import demo_users
        pol = runtime.snapshot.policies
        return json_response([{"user": u.user, "name": u.name, "org": u.org, "region": u.region,
                               "roles": list(u.roles), "tasks": sorted(t.code for t in pol.tasks_for(u.caller))}
                              for u in demo_users()])

    async def demo_token_endpoint(request: Request) -> Response:
        """Demo mode only: a token for a demo user (what `onescreen token` prints), for the sign-in picker."""
        from .identity import mint_demo_token
        try:
            body = orjson.loads(await read_body(request, 4096, settings.body_timeout))
            token = mint_demo_token(settings.data_dir, str(body["user"]), settings.token_ttl)
        except HttpError as exc:
            return error(exc.status, exc.code, exc.message, exc.headers)
        except (ValueError, KeyError, TypeError):
            return error(400, "BAD_REQUEST", 'send {"user": "<a demo user id>"}')
        return json_response({"token": token}, headers={"Cache-Control": "no-store"})

    async def healthz(_request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        """Ready when the audit store takes writes (fail closed otherwise). A refused configuration is a warning:
        the pod serves its running one fine, and a version every pod refuses must not take them all out. Each
        ledger's circuit is reported but an open one does not take the service out (its fields degrade)."""
        s = runtime.snapshot
        problems, warnings = [], []
        if runtime.config_error:
            warnings.append(f"configuration: {runtime.config_error}")
        warnings += [f"{what}: {why}" for what, why in runtime.file_errors.items()]
        try:
            await runtime.ready()
            await runtime.audit.check_writable()
        except AuditUnavailable as exc:
            problems.append(f"audit store: {exc.message}")
        body = {"status": "not ready" if problems else "ready", "mode": settings.mode, "problems": problems,
                "warnings": warnings, "configVersion": s.source.version if s.source else None,
                "tasks": len(s.policies.tasks), "loadedAt": s.loaded_at.isoformat(), "ledgers": s.gateway.circuits()}
        return json_response(body, 503 if problems else 200)

    async def metrics(_request: Request) -> Response:
        return PlainTextResponse(runtime.metrics.render(), media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette):
        if settings.demo:
            log.warning("DEMO MODE: synthetic demo ledgers and demo users; never use with real data",
                        extra={"mode": "demo"})
        if runtime.shared_counters is None:  # said once, at start
            log.warning("rate limits and lookup budgets are counted in this process only (no ONESCREEN_REDIS_URL, "
                        "or ONESCREEN_COUNTERS=per-process): each limit holds per process, not for the service",
                        extra={"mode": settings.mode, "operation": "counters"})
        try:  # a store that is missing or of another schema version stops the start (invariant 7)
            await runtime.ready()
        except AuditSchemaError as exc:
            log.error(f"cannot start: {exc.message}", extra={"operation": "audit.open", "outcome": "failed"})
            raise
        except AuditUnavailable:
            pass  # unreachable now: requests get 503 and /readyz says why until it is back
        runtime.loop = asyncio.get_running_loop()
        watcher = asyncio.ensure_future(runtime.watch_config())
        following = asyncio.ensure_future(runtime.follow_files())
        deliverer = runtime.notify_deliverer() if settings.notify_in_process else None
        delivering = asyncio.ensure_future(deliverer.run(settings.notify_interval)) if deliverer else None
        gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
        settle_heap()  # the configuration, made at start, out of every later collection (runtime.py)
        try:
            yield
        finally:
            gc.unfreeze()  # a process that goes on (tests, a script) collects as before
        watcher.cancel()
        following.cancel()
        if delivering is not None:
            delivering.cancel()
            await asyncio.gather(delivering, return_exceptions=True)
        await runtime.close()

    routes = [
        Route("/graphql", graphql_post, methods=["POST"]),
        Route("/graphql", graphql_get, methods=["GET"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        *admin_http.routes(runtime),
    ]
    if settings.demo:
        routes += [Route("/demo/users", demo_users_endpoint), Route("/demo/token", demo_token_endpoint, methods=["POST"]),
                   Mount("/graphiql", StaticFiles(directory=GRAPHIQL))]
    if FRONTEND.is_dir():
        routes.append(Mount("/", StaticFiles(directory=FRONTEND, html=True)))
    app = App(routes=routes, lifespan=lifespan, proxies=settings.trusted_proxies)
    app.state.runtime = runtime
    return app


class App(Starlette):
    """Starlette, with the security headers outside even its error handler: a 500 carries them too, and with
    the client a trusted proxy forwarded for as the request's client."""

    def __init__(self, *args: Any, proxies: tuple = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.proxies = proxies

    def build_middleware_stack(self) -> Any:
        stack = super().build_middleware_stack()
        return SecurityHeaders(ForwardedClient(stack, self.proxies) if self.proxies else stack)


class ForwardedClient:
    """Behind ONESCREEN_TRUSTED_PROXIES (the API gateway), the request's client is the workstation the proxy
    names in X-Forwarded-For (uvicorn's ProxyHeadersMiddleware: the rightmost address no trusted proxy
    added), so that an audit record names where a caseworker read, not the gateway. The socket's peer stays
    in the scope (http.peer) for the decisions that trust the proxy itself; a forwarded value that is not an
    IP address is not believed (the peer stands, as if no proxy had named anyone)."""

    def __init__(self, app: Any, proxies: tuple) -> None:
        self.app = app
        self.proxied = ProxyHeadersMiddleware(self._checked, trusted_hosts=[str(n) for n in proxies])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        scope[PEER] = scope.get("client")
        await self.proxied(scope, receive, send)

    async def _checked(self, scope: Any, receive: Any, send: Any) -> None:
        client = scope.get("client")
        if client is not None and client is not scope[PEER]:
            try:
                ipaddress.ip_address(client[0])
            except ValueError:
                scope["client"] = scope[PEER]
        await self.app(scope, receive, send)


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
