"""Configuration versions: the approved catalog and policies as versioned records in PostgreSQL (or SQLite).

Owns invariant 11 for the configuration: every pod runs the store's one active version. A version is
{relative path: text} in the layout of the files (field_catalog.yaml, policies/roles.yaml,
policies/tasks/*.yaml), is never changed once written, and becomes active in ONE transaction with whatever
made it (an approved change's status) and its NOTIFY, which PostgreSQL delivers at commit: a writer killed at
any point leaves the old version active or the new one, never a mix. Files are the seed (`onescreen config
import`) and the export (`onescreen config export DIR`), in the same layout.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from connectors.base import async_url

from .errors import OneScreenError

log = logging.getLogger("onescreen.configstore")

CHANNEL = "onescreen_config"  # NOTIFY channel; the payload is the id of the newly active version
CATALOG = "field_catalog.yaml"  # a version's paths: this one, and policies/... (the files' own layout)
POLICIES = "policies"
TIMEOUT = 5.0  # seconds any one exchange with the store may take (connect, query, lock wait)
CHECK_INTERVAL = 2.0  # seconds between two looks at the active version (the fallback when a NOTIFY is missed)
RECONNECT_MAX = 30.0  # seconds: the longest pause between two attempts to LISTEN again

# versions are only ever inserted (the service role gets SELECT, INSERT); the one-row pointer is updated
versions_meta = sa.MetaData()
versions = sa.Table(
    "onescreen_config_version", versions_meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("source", sa.String(200), nullable=False),  # "import", "change 12", ...
    sa.Column("digest", sa.String(64), nullable=False),  # sha256 over the paths and texts (`digest`)
    sa.Column("files", sa.Text, nullable=False),  # JSON {relative path: text}
)
active_meta = sa.MetaData()
active = sa.Table(
    "onescreen_config_active", active_meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # always 1: one row
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("activated_at", sa.String(40), nullable=False),
    sa.Column("activated_by", sa.String(128), nullable=False),
)
COMPANIONS = ((versions_meta, "SELECT, INSERT"), (active_meta, "SELECT, INSERT, UPDATE"))  # `audit init` grants


class ConfigStoreUnavailable(OneScreenError):
    code = "CONFIG_STORE_UNAVAILABLE"


class VersionConflict(OneScreenError):
    """Another version became active since the one a change was made against: nothing was written."""
    code = "CHANGE_REFUSED"


class NotStarted(ValueError):
    """The service cannot start on this store (empty, unreachable): the message says what to run."""


@dataclass(frozen=True)
class Version:
    id: int
    files: Mapping[str, str]
    digest: str
    created_at: str = ""
    created_by: str = ""
    source: str = ""


# ---------------------------------------------------------------- the files' layout


def read_files(catalog_path: Path, policies_dir: Path) -> dict[str, str]:
    """The configuration files as a version holds them: {"field_catalog.yaml": text, "policies/...": text}."""
    out = {CATALOG: Path(catalog_path).read_text(encoding="utf-8")}
    for f in sorted(Path(policies_dir).rglob("*.yaml")):
        out[f"{POLICIES}/{f.relative_to(policies_dir).as_posix()}"] = f.read_text(encoding="utf-8")
    return out


def check_paths(files: Iterable[str]) -> None:
    """Only the catalog and YAML files below policies/, as plain relative paths (nothing can point elsewhere)."""
    for p in files:
        parts = p.split("/")
        if p != CATALOG and not (parts[0] == POLICIES and len(parts) > 1 and p.endswith(".yaml")
                                 and all(x and x not in (".", "..") and "\\" not in x for x in parts)):
            raise ValueError(f"a configuration version holds {CATALOG} and policies/**/*.yaml only, not {p!r}")


def write_tree(files: Mapping[str, str], directory: Path) -> tuple[Path, Path]:
    """Lay `files` out below `directory` (which must not exist yet); returns (catalog path, policies dir)."""
    check_paths(files)
    directory.mkdir(parents=True)
    (directory / POLICIES).mkdir()
    for rel, text in files.items():
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return directory / CATALOG, directory / POLICIES


def export(files: Mapping[str, str], directory: Path) -> list[Path]:
    """Write a version's files below `directory` (field_catalog.yaml, policies/...), each that differs atomically;
    YAML files below directory/policies that the version lacks are removed. Returns the files written or removed."""
    from .changes import FileChange, write_atomically

    check_paths(files)
    directory = Path(directory)
    present = {f"{POLICIES}/{p.relative_to(directory / POLICIES).as_posix()}"
               for p in (directory / POLICIES).rglob("*.yaml")} if (directory / POLICIES).is_dir() else set()
    changes = []
    for rel in sorted(set(files) | present):
        target = directory / rel
        old = target.read_text(encoding="utf-8") if target.is_file() else None
        if old != files.get(rel):
            target.parent.mkdir(parents=True, exist_ok=True)
            changes.append(FileChange(target, old, files.get(rel)))
    write_atomically(changes)
    return [Path(c.path) for c in changes]


def digest(files: Mapping[str, str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + files[rel].encode("utf-8") + b"\0")
    return h.hexdigest()


def changed(files: Mapping[str, str], changes: Iterable[tuple[str, str | None]]) -> dict[str, str]:
    """`files` with each (path, new text) applied; None removes the file."""
    out = dict(files)
    for rel, new in changes:
        if new is None:
            out.pop(rel, None)
        else:
            out[rel] = new
    check_paths(out)
    return out


class Materialised:
    """A process's private, read-only copies of versions on disk, for the loaders (which read files): one
    directory per content, removed when no longer wanted. Errors name paths relative to it (`relative`)."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="onescreen-config-"))

    def lay_out(self, files: Mapping[str, str]) -> tuple[Path, Path]:
        where = self.home / digest(files)[:16]
        if (where / CATALOG).exists():
            return where / CATALOG, where / POLICIES
        staged = Path(tempfile.mkdtemp(prefix=".staged-", dir=self.home))
        shutil.rmtree(staged)
        write_tree(files, staged)
        for f in staged.rglob("*"):
            if f.is_file():
                f.chmod(0o400)
        os.replace(staged, where)
        return where / CATALOG, where / POLICIES

    def relative(self, message: str) -> str:
        """A loader's message with the private directory taken out: `policies/tasks/x.yaml:4: reason`."""
        return re.sub(re.escape(str(self.home)) + r"/[0-9a-f]{16}/", "", message)

    def keep(self, wanted: Iterable[Path]) -> None:
        """Remove every copy but those holding `wanted` files."""
        keep = {Path(p).relative_to(self.home).parts[0] for p in wanted}
        for d in self.home.iterdir():
            if d.name not in keep:
                shutil.rmtree(d, ignore_errors=True)

    def remove(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)


# ---------------------------------------------------------------- the store


def store_url(url: str) -> str:
    return async_url(url).render_as_string(hide_password=False)


class ConfigStore:
    """The versions and the active pointer, at one database URL (SQLAlchemy async; asyncpg or aiosqlite)."""

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        self.url = store_url(url)
        self.timeout = timeout
        self.postgres = make_url(self.url).get_backend_name() == "postgresql"
        args: dict[str, Any] = {}
        if self.postgres:
            ms = int(timeout * 1000)
            args = {"timeout": timeout, "command_timeout": timeout,
                    "server_settings": {"application_name": "onescreen-config", "lock_timeout": f"{2 * ms}ms",
                                        "idle_in_transaction_session_timeout": f"{4 * ms}ms"}}
        self.connect_args = args
        self.engine: AsyncEngine = create_async_engine(self.url, connect_args=args, pool_pre_ping=True,
                                                       pool_timeout=timeout, pool_size=2, max_overflow=2) \
            if self.postgres else create_async_engine(self.url, connect_args={"timeout": timeout})

    async def create(self, *others: sa.MetaData) -> None:
        """Create the tables where they are missing, and those of `others` (the change proposals, which live
        beside the versions): the owner's `audit init`, or `config import`, does it."""
        async with self.engine.begin() as conn:
            if self.postgres:  # several init containers at once: one creates, the others find the tables
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('onescreen_config_version'))"))
            for meta in [*(m for m, _ in COMPANIONS), *others]:
                await conn.run_sync(meta.create_all)

    async def active_id(self) -> int | None:
        """The id of the active version (None: the store is empty). Bounded by the store's timeout."""
        async def read() -> int | None:
            async with self.engine.connect() as conn:
                return await conn.scalar(sa.select(active.c.version).where(active.c.id == 1))
        return await self._bounded(read(), "read the active configuration version")

    async def get(self, version_id: int) -> Version:
        async def read() -> Version:
            async with self.engine.connect() as conn:
                row = (await conn.execute(sa.select(versions).where(versions.c.id == version_id))).mappings().first()
            if row is None:
                raise ConfigStoreUnavailable(f"there is no configuration version {version_id}")
            return _version(row)
        return await self._bounded(read(), f"read configuration version {version_id}")

    async def active(self) -> Version | None:
        vid = await self.active_id()
        return None if vid is None else await self.get(vid)

    async def history(self, limit: int = 50) -> list[Version]:
        """The newest versions, without their files."""
        q = sa.select(versions.c.id, versions.c.created_at, versions.c.created_by, versions.c.source,
                      versions.c.digest).order_by(versions.c.id.desc()).limit(limit)
        async def read() -> list[Version]:
            async with self.engine.connect() as conn:
                return [Version(r.id, {}, r.digest, r.created_at, r.created_by, r.source)
                        for r in await conn.execute(q)]
        return await self._bounded(read(), "list the configuration versions")

    async def seed(self, files: Mapping[str, str], by: str) -> Version | None:
        """Make `files` the first version, if the store has none; None if it already had one (nothing written).
        Several pods seeding at once: one wins (the pointer's one row), the others find it there."""
        check_paths(files)
        try:
            async with self.engine.begin() as conn:
                if await conn.scalar(sa.select(active.c.version).where(active.c.id == 1)) is not None:
                    return None
                version = await self._insert(conn, files, by, "import")
                await conn.execute(active.insert().values(id=1, version=version.id, activated_at=version.created_at,
                                                          activated_by=by))
                await self._notify(conn, version.id)
        except sa.exc.IntegrityError:
            return None  # another pod seeded it first
        return version

    async def activate(self, files: Mapping[str, str], *, base: int, by: str, source: str,
                       also: Callable[[AsyncConnection], Awaitable[None]] | None = None) -> Version:
        """Write `files` as a new version and make it the active one, if `base` still is; `also` runs in the same
        transaction (a change's status). One transaction: killed anywhere, it leaves `base` active and nothing
        else written; a NOTIFY tells every pod at commit. VersionConflict if another version is active now."""
        check_paths(files)
        async with self.engine.begin() as conn:
            version = await self._insert(conn, files, by, source)
            moved = await conn.execute(active.update().where(active.c.id == 1, active.c.version == base).values(
                version=version.id, activated_at=version.created_at, activated_by=by))
            if moved.rowcount != 1:
                raise VersionConflict(f"the configuration changed since version {base} (another admin's change was "
                                      "applied first); nothing was written: look at the change again")
            if also is not None:
                await also(conn)
            await self._notify(conn, version.id)
        return version

    async def _insert(self, conn: AsyncConnection, files: Mapping[str, str], by: str, source: str) -> Version:
        now = datetime.now(timezone.utc).isoformat()
        row = dict(created_at=now, created_by=by, source=source[:200], digest=digest(files),
                   files=json.dumps(dict(sorted(files.items())), ensure_ascii=False))
        vid = (await conn.execute(versions.insert().values(**row))).inserted_primary_key[0]
        return Version(vid, dict(files), row["digest"], now, by, row["source"])

    async def _notify(self, conn: AsyncConnection, version_id: int) -> None:
        if self.postgres:  # delivered when (and only if) the transaction commits
            await conn.execute(sa.text("SELECT pg_notify(:channel, :payload)"),
                               {"channel": CHANNEL, "payload": str(version_id)})

    async def _bounded(self, coro: Awaitable[Any], what: str) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                return await coro
        except sa.exc.ProgrammingError:
            raise ConfigStoreUnavailable(f"cannot {what}: the configuration store has no such table here, or this "
                                         "role may not read it (`onescreen audit init` or `onescreen config import` "
                                         "makes the tables)") from None
        except (TimeoutError, OSError, sa.exc.SQLAlchemyError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else type(getattr(exc, "orig", exc)).__name__
            raise ConfigStoreUnavailable(f"cannot {what}: the configuration store did not answer ({reason})") from None

    async def listen(self, wake: asyncio.Event) -> None:
        """Set `wake` at every NOTIFY of a newly active version, for as long as it runs (cancel it to stop).

        One dedicated connection (LISTEN holds it); lost, it is opened again after 1, 2, 4 ... 30 s, and `wake`
        is set on every new LISTEN (a version made while it was away is found by the look that follows).
        SQLite has no NOTIFY: the periodic look alone finds new versions there."""
        if not self.postgres:
            return
        import asyncpg
        cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
        cparams = {**cparams, **self.connect_args}
        pause = 1.0
        while True:
            conn = None
            lost = asyncio.Event()
            try:
                conn = await asyncio.wait_for(asyncpg.connect(*cargs, **cparams), self.timeout)
                conn.add_termination_listener(lambda _c: lost.set())
                await asyncio.wait_for(conn.add_listener(CHANNEL, lambda *_a: wake.set()), self.timeout)
                wake.set()
                pause = 1.0
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), CHECK_INTERVAL * 5)
                    if not lost.is_set():  # a connection the network dropped silently: a query finds out
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), self.timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # unreachable, refused, dropped: LISTEN again after a pause
                log.warning("configuration notifications lost; listening again", extra={
                    "operation": "config.listen", "reason": type(exc).__name__})
            finally:
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(pause)
            pause = min(RECONNECT_MAX, pause * 2)

    async def close(self) -> None:
        await self.engine.dispose()


def _version(row: Any) -> Version:
    return Version(row["id"], json.loads(row["files"]), row["digest"], row["created_at"], row["created_by"],
                   row["source"])


def read_active_blocking(url: str, timeout: float = TIMEOUT) -> Version | None:
    """The active version, read on a loop of its own in a thread (callers may be inside a running loop, and
    their engines must not be bound to this one). NotStarted when the store cannot be read."""
    result: dict[str, Any] = {}

    async def read() -> None:
        store = ConfigStore(url, timeout)
        try:
            result["version"] = await store.active()
        finally:
            await store.close()

    def main() -> None:
        try:
            asyncio.run(read())
        except ConfigStoreUnavailable as exc:
            result["error"] = exc.message
        except sa.exc.SQLAlchemyError as exc:
            result["error"] = type(getattr(exc, "orig", exc)).__name__

    t = threading.Thread(target=main, name="onescreen-config-read")
    t.start()
    t.join()
    if "error" in result:
        where = make_url(url).render_as_string(hide_password=True)
        raise NotStarted(f"the configuration store at {where} cannot be read ({result['error']}); its tables are made "
                         "by `onescreen audit init` (the owner role) or `onescreen config import`")
    return result["version"]
