"""The running service: settings, identity, stores, metrics and the current configuration snapshot.

Owns invariant 8 on the running side: the configuration is an immutable Snapshot; reload() builds and
validates a new one (off the event loop, in reload_async) and swaps it in one assignment, so requests in
flight keep the snapshot they started with, and a configuration that fails validation never replaces
the running one.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import hashlib
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import strawberry
from cachetools import LRUCache
from cryptography.fernet import Fernet

from connectors import base as connectors_base
from connectors.base import async_url

from . import catalog as catalog_mod, policy as policy_mod
from .audit import AuditStore, AuditUnavailable
from .audit import setup as audit_setup
from .catalog import Catalog
from .consent import ConsentStore
from .errors import ConfigError, ConfigErrors
from .gateway import Gateway
from .graphql import build_schema
from .http import PersistedQueries, RateLimiter
from .identity import Verifier, demo_key
from .keyfile import local_key
from .lookups import InProcessLookupBudget, LookupBudget
from .metrics import Metrics
from .policy import Policies
from .settings import Settings

log = logging.getLogger("onescreen.runtime")


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
    # policy decisions of typed queries, per task, selection, roles and facts (disclose.py `_decide`)
    decided: LRUCache = field(default_factory=lambda: LRUCache(maxsize=4096))


class Runtime:
    """The running service: settings, identity, metrics and the current configuration snapshot."""

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.env = dict(os.environ if env is None else env)
        self.metrics = Metrics()
        proxy = {"trusted_proxy_header": settings.trusted_proxy_header, "trusted_proxies": settings.trusted_proxies}
        if settings.demo:
            from .demo import agency_api, config as demo_config, ledgers as demo_ledgers
            demo_config.ensure(settings)  # the demo's own copy of the configuration, before anything reads it
            self.demo_dir: Path | None = settings.data_dir / "demo"
            demo_ledgers.ensure(self.demo_dir)
            self._stop_agency = agency_api.start_for_demo(settings.catalog_path, self.env, self.demo_dir)
            self.verifier = Verifier(demo_key=demo_key(settings.data_dir), **proxy)
        else:
            self.demo_dir = None
            self._stop_agency = None
            self.verifier = Verifier(keys_path=settings.jwt_keys, issuer=settings.jwt_issuer,
                                     audience=settings.jwt_audience, **proxy)
        if not settings.demo and not self.env.get("ONESCREEN_AUDIT_URL"):
            raise ValueError("production mode needs ONESCREEN_AUDIT_URL (the shared PostgreSQL audit store): "
                             "a local file would not be shared by the workers, nor backed up")
        self.pseudonym_key = _pseudonym_key(settings, self.env)
        handle_key = hashlib.sha256(b"onescreen subject handles\0" + self.pseudonym_key).digest()
        self.handles = Fernet(base64.urlsafe_b64encode(handle_key))
        self.audit = audit_setup.service_store(settings, self.env)
        self.metrics.audit_last_commit.set_function(lambda: self.audit.last_commit or 0.0)
        self.consents = ConsentStore(async_url(settings.audit_url).render_as_string(hide_password=False))
        from .admin import Admin
        self.admin = Admin(self, async_url(settings.audit_url).render_as_string(hide_password=False))
        self._opened: asyncio.Task | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the serving loop, once the app has started
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
                    await self.reload_async()
                except (ConfigError, ConfigErrors):
                    log.error("configuration on disk is invalid; the running configuration stays")

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
        stamp = self.config_stamp()
        if stamp == self._loaded_stamp:
            return self.snapshot  # nothing changed on disk (e.g. the watcher after an in-process apply)
        return self._swap(self.snapshot, self._checked_build(self.snapshot), stamp)

    async def reload_async(self) -> Snapshot:
        """reload(), with the snapshot built in a thread: at national scale a build takes seconds, which the
        event loop (every request in flight) must not wait for. The swap itself happens on the loop."""
        stamp = self.config_stamp()
        if stamp == self._loaded_stamp:
            return self.snapshot
        old = self.snapshot
        return self._swap(old, await asyncio.to_thread(self._checked_build, old), stamp)

    def _checked_build(self, old: Snapshot) -> Snapshot:
        try:
            return self._build(old)
        except (ConfigError, ConfigErrors) as exc:
            self.config_error = f"the files on disk are invalid, the running configuration stays: {exc}"[:2000]
            raise

    def _swap(self, old: Snapshot, new: Snapshot, stamp: tuple) -> Snapshot:
        self.config_error = None
        self._loaded_stamp = stamp
        self.snapshot = new  # one assignment: requests already running keep `old`
        stale = [c for lid, c in old.gateway.connectors.items() if new.gateway.connectors.get(lid) is not c]
        if stale:
            with contextlib.suppress(RuntimeError):  # no loop: a reload from a script, which closes what it opens
                asyncio.get_running_loop().call_later(60, lambda: asyncio.ensure_future(_close_all(stale)))
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
    return local_key(settings.data_dir / "audit-pseudonym.key")


async def _close_all(connectors: list[Any]) -> None:
    await asyncio.gather(*(c.close() for c in connectors), return_exceptions=True)
