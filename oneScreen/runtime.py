"""The running service: settings, identity, stores, metrics and the current configuration snapshot.

Owns invariant 8 on the running side: the configuration is an immutable Snapshot; reload() builds and
validates a new one (off the event loop, in reload_async) and swaps it in one assignment, so requests in
flight keep the snapshot they started with, and a configuration that fails validation never replaces
the running one (it is logged with FILE:LINE: reason, counted, and reported by /readyz as a warning).
With a configuration store (configstore.py) the snapshot is built from the store's active version and
follows it (NOTIFY, and a look every 2 s); otherwise from the files, reloaded when they change.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import gc
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import strawberry
from cachetools import LRUCache
from cryptography.fernet import Fernet

from connectors import base as connectors_base
from connectors.base import async_url

from . import catalog as catalog_mod, configstore, counters, policy as policy_mod
from .audit import AuditStore, AuditUnavailable
from .audit import setup as audit_setup
from .catalog import Catalog
from .consent import ConsentStore
from .errors import ConfigError, ConfigErrors
from .gateway import Gateway
from .graphql import build_schema
from .http import PersistedQueries, read_registered
from .identity import Verifier, demo_key, read_key_file
from .keyfile import local_key
from .lookups import LookupBudget
from .metrics import Metrics
from .policy import Policies
from .settings import Settings

log = logging.getLogger("onescreen.runtime")

# The configuration (catalog, policies, GraphQL schema: most of the heap, hundreds of thousands of objects at
# national scale) is made at start and by a reload, and lives until the next reload. A full collection of the
# cyclic collector walks every object the process holds, the event loop stalled meanwhile: 61-78 ms on the
# peer screen's configuration, 7-9 ms with the start-up heap frozen (gc.freeze); gc.callbacks timing the
# collections of a served worker under 450 screens/s open-loop load, 70 s runs, 2026-12-05. So the heap is
# frozen once the service has started (app.py), and after a reload, once the requests begun on the old snapshot
# have ended, unfrozen, collected once (the old snapshot's reference cycles go) and frozen again. A request still holding the old snapshot then keeps it
# frozen until the next reload settles the heap: one snapshot at most, never one per reload.
SETTLE_AFTER_RELOAD = 60.0  # seconds from a reload to settling the heap: longer than requests run


def file_stamp(path: Path) -> tuple:
    """What tells that a file changed: its identity, size and modification time (a Kubernetes Secret or
    ConfigMap is updated by swapping a symlink, which stat follows)."""
    st = Path(path).stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _stamp_or_none(path: Path) -> tuple | None:
    try:
        return file_stamp(path)
    except OSError:
        return None


def settle_heap() -> None:
    """Collect what is garbage now, then leave every object that lives on out of later collections."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    log.info("heap settled: %d objects alive now are left out of later collections", gc.get_freeze_count(),
             extra={"operation": "gc.freeze", "duration_ms": round((time.perf_counter() - started) * 1000, 1)})


@dataclass(frozen=True)
class Source:
    """What a snapshot is built from: the files, or a store's version laid out in a private directory."""
    catalog_path: Path
    policies_dir: Path
    files: Mapping[str, str] | None = None  # the version's {path: text} (None: the files are the configuration)
    version: int | None = None  # the version's id in the store
    stamp: Any = None  # what the catalog was when it was read (the build keeps the catalog while this holds)


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
    # the audit's FieldDecision of each (field id, status) disclosed (Door.events): at most fields x statuses
    field_decisions: dict = field(default_factory=dict)
    source: Source | None = None  # where the configuration came from (the store's version, or the files)
    outbox: Any = None  # notify.Outbox: receipt subscriptions and the push's outbox (None: not available)


class Runtime:
    """The running service: settings, identity, metrics and the current configuration snapshot."""

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.env = dict(os.environ if env is None else env)
        # taken before they are read: a change between the two is read again by follow_files
        self._start_stamps = {what: _stamp_or_none(path) for what, path in
                              (("JWT keys", settings.jwt_keys), ("persisted queries", settings.persisted_queries))
                              if path is not None}
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
        if not settings.demo and not _is_postgresql(self.env.get("ONESCREEN_AUDIT_URL") or ""):
            raise ValueError("production mode needs ONESCREEN_AUDIT_URL to point at PostgreSQL (postgresql://user@"
                             "host/db): the audit trail, consent records and configuration must be shared by every "
                             "pod and worker; a local file (SQLite) would be private to one of them, nor backed up")
        self.pseudonym_key = _pseudonym_key(settings, self.env)
        handle_key = hashlib.sha256(b"onescreen subject handles\0" + self.pseudonym_key).digest()
        self.handles = Fernet(base64.urlsafe_b64encode(handle_key))
        self.audit = audit_setup.service_store(settings, self.env)
        self.metrics.watch_last_commit(lambda: self.audit.last_commit or 0.0)
        self.consents = ConsentStore(async_url(settings.audit_url).render_as_string(hide_password=False))
        from .notify import Outbox
        self.outbox = Outbox(async_url(settings.audit_url).render_as_string(hide_password=False))  # opened: _open
        self.deliverer: Any = None  # notify.Deliverer, with ONESCREEN_NOTIFY_IN_PROCESS
        # the configuration store, and the change proposals beside it (one transaction activates both)
        self.config_store = configstore.ConfigStore(settings.config_url, settings.audit_timeout) \
            if settings.config_url else None
        self._laid_out = configstore.Materialised() if self.config_store else None
        self._switching = asyncio.Lock()  # one version switch at a time (follower, SIGHUP, admin apply)
        self._refused: int | None = None  # the store's version this process refused (tried again when it changes)
        from .admin import Admin
        self.admin = Admin(self, async_url(settings.config_url or settings.audit_url).render_as_string(
            hide_password=False))
        self._opened: asyncio.Task | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the serving loop, once the app has started
        self._settling: asyncio.TimerHandle | None = None  # settle_heap, due after the last reload
        self.config_error: str | None = None
        self.file_errors: dict[str, str] = {}  # a followed file that cannot be used: why (follow_files)
        self._operations: set[str] = set()
        self._catalog_stamp: tuple | None = None
        self.persisted = PersistedQueries(settings.persisted_queries, settings.persisted_only,
                                          settings.limits.max_chars)
        # rate limits and lookup budgets: in Redis, shared by every pod, or counted in this process (counters.py)
        self.rate_limits, self.lookups, self.shared_counters = counters.build(settings, self.metrics)
        try:
            self.snapshot = self._build(None, self._first_source())
        except BaseException:
            if self._laid_out is not None:
                self._laid_out.remove()
            raise
        self._catalog_stamp = self.snapshot.source.stamp
        self._loaded_stamp = self.config_stamp()
        self.metrics.config_version.set(self.snapshot.source.version or 0)

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

    def files_unchanged(self) -> bool:
        """When the files are the configuration: whether they are as the running snapshot read them (their
        modification times and sizes), so that what it loaded can stand for them (admin.py's validations)."""
        return self.config_store is None and self.config_stamp() == self._loaded_stamp

    def _followed(self) -> list[tuple[str, Path, Any, Any]]:
        """The files read at start that the service follows while it runs: (what, path, read, use)."""
        out = []
        if self.verifier.keys_path is not None:
            out.append(("JWT keys", self.verifier.keys_path, read_key_file, self.verifier.use_keys))
        if self.settings.persisted_queries is not None:
            out.append(("persisted queries", Path(self.settings.persisted_queries), read_registered,
                        self.persisted.use))
        return out

    async def follow_files(self, interval: float = configstore.CHECK_INTERVAL) -> None:
        """Follow the JWT key file (the identity provider rotates or revokes a key) and the persisted-query file
        (a new frontend's queries): a changed file is read off the loop and used within `interval`, no restart.
        A file that cannot be used is logged once, shown by /readyz as a warning (`file_errors`), and what is
        in use stays until a good one comes."""
        files = self._followed()
        in_use = {what: self._start_stamps.get(what) for what, *_ in files}
        refused: dict[str, tuple | None] = {}
        while files:
            await asyncio.sleep(interval)
            for what, path, read, use in files:
                try:
                    stamp = await asyncio.to_thread(file_stamp, path)
                except OSError:
                    stamp = None  # gone for a moment (a swap in progress): `read` says so if it stays
                if stamp is not None and stamp == refused.get(what):
                    continue  # the file already refused, unchanged
                if stamp is None or stamp != in_use[what]:
                    try:
                        use(await asyncio.to_thread(read, path))
                    except ValueError as exc:
                        message = str(exc)[:500]
                        if (message, stamp) != (self.file_errors.get(what), refused.get(what, ())):  # once per file
                            log.error(f"the {what} file cannot be used, what was read before stays",
                                      extra={"operation": "files.follow", "outcome": "refused", "reason": message})
                        self.file_errors[what], refused[what] = message, stamp
                        continue
                    in_use[what] = stamp
                    log.info(f"{what} reloaded", extra={"operation": "files.follow", "outcome": "ok"})
                self.file_errors.pop(what, None)  # the file in use is good (again)
                refused.pop(what, None)

    async def watch_config(self, interval: float = configstore.CHECK_INTERVAL) -> None:
        """Follow the store's active version (NOTIFY, else a look every `interval`), or reload when the files
        change on disk; validated either way (a refused one is logged, counted and reported by /readyz)."""
        if self.config_store is not None:
            return await self._follow_store(interval)
        stamp = self._loaded_stamp  # what the running snapshot was built from: a change before the first look counts
        while True:
            await asyncio.sleep(interval)
            current = self.config_stamp()
            if current != stamp:
                stamp = current
                with contextlib.suppress(ConfigError, ConfigErrors):  # reported by _checked_build
                    await self.reload_async()

    async def _follow_store(self, interval: float) -> None:
        assert self.config_store is not None
        wake = asyncio.Event()
        listener = asyncio.ensure_future(self.config_store.listen(wake))
        unreachable = False
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), interval)
                wake.clear()
                try:
                    await self.reload_async()
                except (ConfigError, ConfigErrors):
                    pass  # reported by _checked_build; the running version stays
                except configstore.ConfigStoreUnavailable as exc:
                    if not unreachable:  # once per outage: the running version stays meanwhile
                        log.warning("configuration store unreachable; the running configuration stays",
                                    extra={"operation": "config.check", "reason": exc.message[:200]})
                    unreachable = True
                except Exception as exc:  # never expected: the follower must outlive it, and says what it was
                    log.error("configuration switch failed; the running configuration stays",
                              extra={"operation": "config.switch", "reason": type(exc).__name__})
                else:
                    unreachable = False
        finally:
            listener.cancel()

    def _first_source(self) -> Source:
        """The files, or the store's active version (start refused when the store is empty or unreadable)."""
        if self.config_store is None:
            return Source(self.settings.catalog_path, self.settings.policies_dir)
        version = configstore.read_active_blocking(self.settings.config_url, self.settings.audit_timeout)
        if version is None:
            raise configstore.NotStarted(
                "the configuration store holds no version yet: seed it from the files with `onescreen config "
                "import` (ONESCREEN_CATALOG and ONESCREEN_POLICIES; in Kubernetes the init container does)")
        return self._lay_out(version.files, version.id)

    def _lay_out(self, files: Mapping[str, str], version: int | None) -> Source:
        assert self._laid_out is not None
        cat, pol = self._laid_out.lay_out(files)
        return Source(cat, pol, dict(files), version)

    async def ready(self) -> None:
        """Open the audit and consent stores once (lazily: the first request waits for it)."""
        if self._opened is None:
            self._opened = asyncio.ensure_future(self._open())
        await asyncio.shield(self._opened)

    async def _open(self) -> None:
        try:
            await self.audit.open()
            await self.consents.open()
            await self._open_outbox()
            await self.admin.store.open()
        except BaseException:
            self._opened = None  # try again on the next request
            raise

    async def _open_outbox(self) -> None:
        """The receipts' outbox, after the trail (its trigger is on the trail). Missing on a PostgreSQL store made
        before it (the owner has not run `onescreen audit init` again): the service runs, receipts are not pushed."""
        from .notify import NotifySchemaError
        try:
            await self.outbox.open()
        except NotifySchemaError as exc:
            log.error(exc.message, extra={"operation": "notify.open", "outcome": "failed"})
            return

    def notify_deliverer(self) -> Any:
        """The delivery worker of this service's outbox (None without ONESCREEN_NOTIFY_SMTP_HOST)."""
        from . import notify, receipts
        s = self.settings
        if s.notify_smtp_host is None:
            return None
        smtp = notify.Smtp(s.notify_smtp_host, s.notify_smtp_port, s.notify_from, s.notify_smtp_user,
                           self.env.get("ONESCREEN_NOTIFY_SMTP_PASSWORD") or None, s.notify_smtp_starttls)
        return notify.Deliverer(self.outbox, self.audit, smtp, lambda r: receipts.receipt(self.snapshot, r),
                                max_attempts=s.notify_max_attempts, backoff=s.notify_backoff, metrics=self.metrics)

    def _build(self, previous: Snapshot | None, source: Source | None = None) -> Snapshot:
        # The snapshot is hundreds of thousands of objects at national scale, none of them garbage: the cyclic
        # collector would walk them again and again while they are made (measured 13.0 -> 7.6 s at 500 ledgers).
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._build_snapshot(previous, source or Source(self.settings.catalog_path,
                                                                   self.settings.policies_dir))
        except (ConfigError, ConfigErrors) as exc:
            if self._laid_out is None:
                raise
            # a version's errors name its files as the version does (policies/tasks/x.yaml:4: reason)
            errors = getattr(exc, "errors", [exc])
            raise ConfigErrors([ConfigError(self._laid_out.relative(e.file), e.line, e.reason)
                                for e in errors]) from None
        finally:
            if enabled:
                gc.enable()

    def _build_snapshot(self, previous: Snapshot | None, source: Source) -> Snapshot:
        path = source.catalog_path
        if source.files is not None:  # a version: its catalog's text says whether the catalog changed
            stamp = ("text", hashlib.sha256(source.files[configstore.CATALOG].encode()).hexdigest())
        else:
            stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() else None
        if previous is not None and stamp is not None and stamp == self._catalog_stamp:
            # only tasks changed: the catalog and its GraphQL schema (most of a reload at national scale) stay
            cat, schema = previous.catalog, previous.schema
        else:
            cat = catalog_mod.load(path)
            schema = build_schema(cat, production=not self.settings.demo, limits=self.settings.limits,
                                  introspection=self.settings.introspection)
        pol = policy_mod.load(source.policies_dir, cat)
        old = previous.gateway if previous else None
        connectors: dict[str, Any] = {}
        for lid, ledger in cat.ledgers.items():
            prev = old.ledgers.get(lid) if old else None
            if prev is not None and (prev.connector, prev.key_column, prev.timeout, prev.max_concurrency) \
                    == (ledger.connector, ledger.key_column, ledger.timeout, ledger.max_concurrency):
                connectors[lid] = old.connectors[lid]  # unchanged: keep its pool
            else:
                # as many connections as the gateway lets reads be in flight to the ledger: a pool of its own
                # size (10) held reads of a ledger raised to more waiting for a connection until their timeout
                spec = connectors_base.SourceSpec(lid, ledger.key_column, ledger.connector, self.env,
                                                  str(self.demo_dir) if self.demo_dir else None,
                                                  max_connections=ledger.max_concurrency,
                                                  budget=ledger.timeout)  # the gateway's bound on every fetch
                try:
                    connectors[lid] = connectors_base.create(spec)
                except connectors_base.ConnectorConfigError as exc:
                    raise ConfigErrors([ConfigError(str(path), None, str(exc))]) from None
        gateway = Gateway(cat.ledgers, connectors, self.metrics, cache_mb=self.settings.cache_mb)
        if old is not None:
            gateway.adopt(old)
        return Snapshot(cat, pol, schema, gateway, self.metrics, datetime.now(timezone.utc), self.audit,
                        self.consents, self.pseudonym_key, self.handles, self.admin, self.lookups,
                        source=dataclasses.replace(source, stamp=stamp), outbox=self.outbox)

    def reload(self) -> Snapshot:
        """Validate the files on disk (or the store's active version) and swap them in; on any error the running
        snapshot stays."""
        if self.config_store is not None:
            version = configstore.read_active_blocking(self.settings.config_url, self.settings.audit_timeout)
            if version is None or version.id == self.snapshot.source.version:
                return self.snapshot
            return self._swap(self.snapshot, self._checked_build(self.snapshot, self._lay_out(version.files,
                                                                                              version.id)), None)
        stamp = self.config_stamp()
        if stamp == self._loaded_stamp:
            return self.snapshot  # nothing changed on disk (e.g. the watcher after an in-process apply)
        return self._swap(self.snapshot, self._checked_build(self.snapshot), stamp)

    async def reload_async(self) -> Snapshot:
        """reload(), with the snapshot built in a thread: at national scale a build takes seconds, which the
        event loop (every request in flight) must not wait for. The swap itself happens on the loop."""
        if self.config_store is not None:
            async with self._switching:
                vid = await self.config_store.active_id()
                if vid is None or vid == self.snapshot.source.version or vid == self._refused:
                    return self.snapshot
                version = await self.config_store.get(vid)
                old = self.snapshot
                source = self._lay_out(version.files, version.id)
                return self._swap(old, await asyncio.to_thread(self._checked_build, old, source), None)
        stamp = self.config_stamp()
        if stamp == self._loaded_stamp:
            return self.snapshot
        old = self.snapshot
        return self._swap(old, await asyncio.to_thread(self._checked_build, old), stamp)

    async def activate(self, changes: list[tuple[str, str | None, str | None]], *, by: str, source: str,
                       also: Any = None) -> Snapshot:
        """The running version with `changes` ((path, text it was made against, new text); None: no file) as a
        new version: built and validated here first (connectors included), then made the store's active version
        in one transaction with `also` (configstore.ConfigStore.activate), then swapped in. Any failure leaves
        the running version, here and in the store; ConfigErrors for a version this process cannot run,
        VersionConflict if the files it changes, or the active version, changed meanwhile."""
        assert self.config_store is not None
        async with self._switching:
            old = self.snapshot
            for path, before, _after in changes:  # the running version may have moved on since the check
                if old.source.files.get(path) != before:
                    raise configstore.VersionConflict(f"{path} changed since this change was made (version "
                                                      f"{old.source.version} is running now): look at it again")
            files = configstore.changed(old.source.files, [(path, after) for path, _before, after in changes])
            staged = self._lay_out(files, None)
            new = await asyncio.to_thread(self._build, old, staged)
            try:
                version = await self.config_store.activate(files, base=old.source.version, by=by, source=source,
                                                           also=also)
            except BaseException:
                stale = [c for lid, c in new.gateway.connectors.items() if old.gateway.connectors.get(lid) is not c]
                await _close_all(stale)
                raise
            return self._swap(old, dataclasses.replace(new, source=dataclasses.replace(new.source, version=version.id)),
                              None)

    def _checked_build(self, old: Snapshot, source: Source | None = None) -> Snapshot:
        try:
            return self._build(old) if source is None else self._build(old, source)  # None: the files
        except (ConfigError, ConfigErrors) as exc:
            self._refuse(old, source, exc)
            raise

    def _refuse(self, old: Snapshot, source: Source | None, exc: ConfigError | ConfigErrors) -> None:
        """A configuration that failed validation: one JSON log line with its FILE:LINE: reasons, the metric,
        and /readyz's warning, until a later one is taken."""
        errors = [e.message for e in getattr(exc, "errors", [exc])]
        if source is not None and source.version is not None:
            self._refused = source.version
            what = (f"configuration version {source.version} refused, the running configuration (version "
                    f"{old.source.version}) stays")
        else:
            what = "the files on disk are invalid, the running configuration stays"
        self.metrics.config_reload_failures.inc()
        log.error(what, extra={"outcome": "refused", "version": source.version if source else None,
                               "errors": errors[:50]})
        # last: this runs in the build's thread, and whoever sees the error (/readyz, a test waiting for it) must
        # find the log line and the metric already written (set first, a loaded machine showed the gap)
        self.config_error = f"{what}: {exc}"[:2000]

    def _swap(self, old: Snapshot, new: Snapshot, stamp: tuple | None) -> Snapshot:
        self.config_error = None
        self._refused = None
        if stamp is not None:
            self._loaded_stamp = stamp
        self._catalog_stamp = new.source.stamp  # only now: a build that is refused or discarded marks nothing
        self.snapshot = new  # one assignment: requests already running keep `old`
        self.metrics.config_version.set(new.source.version or 0)
        if self._laid_out is not None:
            self._laid_out.keep([new.source.catalog_path])
        stale = [c for lid, c in old.gateway.connectors.items() if new.gateway.connectors.get(lid) is not c]
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: a reload from a script, which closes what it opens
            loop = None
        if loop is not None and stale:
            loop.call_later(60, lambda: asyncio.ensure_future(_close_all(stale)))
        if loop is not None and gc.get_freeze_count():  # the serving process froze its heap at start
            if self._settling is not None:
                self._settling.cancel()
            self._settling = loop.call_later(SETTLE_AFTER_RELOAD, settle_heap)
        log.info("configuration reloaded", extra={"status": "ok", "version": new.source.version})
        return new

    async def close(self) -> None:
        if self._settling is not None:
            self._settling.cancel()
        await self.snapshot.gateway.close()
        await self.audit.close()
        await self.consents.close()
        await self.outbox.close()
        await self.admin.close()
        if self.config_store is not None:
            await self.config_store.close()
            self._laid_out.remove()
        if self.shared_counters is not None:
            await self.shared_counters.close()
        if self._stop_agency is not None:
            self._stop_agency()

    def refused(self, exc: AuditUnavailable) -> None:
        """Count a request refused because the audit trail could not be written (invariant 7 failing closed)."""
        self.metrics.audit_refused.labels(exc.reason).inc()


def _is_postgresql(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


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
