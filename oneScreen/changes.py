"""Change control for the catalog and the tasks: versioned proposals, four-eyes for widening, atomic apply.

Owns invariant 8 on the admin side: every change is validated exactly as the
loader validates (and against the live source for new mappings), and must pass
`onescreen policy lint` (lint.py), before it is stored; a change that widens
access (a task gains a field, role or unmasked value; a field in use is
re-mapped) waits for a second, different admin;
narrowing changes apply at once. Applying makes a new configuration version
active in the store (configstore.py: in one transaction with the change's
status) or, when the files are the configuration, writes each file atomically
(temp file, fsync, rename); then the running snapshot reloads and the diff is
audited.
"""
from __future__ import annotations

import difflib
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import sqlalchemy as sa
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from . import agreements as agreements_mod, catalog as catalog_mod, configstore, policy as policy_mod
from .errors import ConfigError, ConfigErrors, OneScreenError, counted

_meta = sa.MetaData()
changes_table = sa.Table(
    "onescreen_change", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # catalog | task | agreement
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("proposer", sa.String(128), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | applied | rejected | stale
    sa.Column("files", sa.Text, nullable=False),  # JSON [{path, old, new}]
    sa.Column("diff", sa.Text, nullable=False),
    sa.Column("widening", sa.Text, nullable=False),  # JSON list of reasons
    sa.Column("approver", sa.String(128)),
    sa.Column("decided_at", sa.String(40)),
    sa.Column("comment", sa.Text),  # the approver's comment, given with the approval (added later: see open())
    sa.Column("proposer_org", sa.Text),  # the proposer's organisation: the side an agreement's proposer signs for
)
COMMENT_MAX = 1000  # characters of an approval's comment


class ChangeRefused(OneScreenError):
    code = "CHANGE_REFUSED"


class FourEyes(ChangeRefused):
    """An admin's approval of their own proposal: refused, and nothing was rejected or changed."""


class ChangeInvalid(OneScreenError):
    code = "CHANGE_INVALID"

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("the change is invalid; nothing was changed:\n" + "\n".join(errors))


@dataclass(frozen=True)
class FileChange:
    path: Path | str  # `field_catalog.yaml` or `policies/...` (Config.key); a real file only when writing files
    old: str | None  # None: the file is new
    new: str | None  # None: the file is removed


@dataclass(frozen=True)
class Proposal:
    id: int
    kind: str
    summary: str
    proposer: str
    created_at: str
    status: str
    files: tuple[FileChange, ...]
    diff: str
    widening: tuple[str, ...]
    approver: str | None
    decided_at: str | None
    comment: str | None = None  # the approver's comment
    proposer_org: str | None = None  # the proposer's organisation (agreements: the side they signed for)


# ---------------------------------------------------------------- YAML editing that keeps comments


def _yaml() -> YAML:
    y = YAML()
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _dump(data: Any) -> str:
    out = io.StringIO()
    _yaml().dump(data, out)
    return out.getvalue()


def _flow(d: dict) -> CommentedMap:
    m = CommentedMap((k, v) for k, v in d.items() if v is not None)
    m.fa.set_flow_style()
    return m


def edit_catalog(text: str, edit: Callable[[Any], None]) -> str:
    data = _yaml().load(text)
    edit(data)
    return _dump(data)


# ---------------------------------------------------------------- validation and classification


@dataclass(frozen=True)
class Config:
    """Where the configuration files are, when the files are the configuration (no configuration store)."""
    catalog_path: Path
    policies_dir: Path

    def key(self, path: Path | str) -> str:
        """A file's path as a change names it: `field_catalog.yaml` or `policies/...` (relative, the same in
        every pod and in the store's versions); absolute paths (changes proposed before) are converted."""
        text = str(path)
        if not os.path.isabs(text):
            return Path(text).as_posix()
        real = Path(text).resolve()
        if real == Path(self.catalog_path).resolve():
            return configstore.CATALOG
        try:
            return f"{configstore.POLICIES}/{real.relative_to(Path(self.policies_dir).resolve()).as_posix()}"
        except ValueError:
            raise ChangeRefused("a change may only touch the catalog and the policies directory") from None

    def path(self, key: str) -> Path:
        """The file a key names."""
        if key == configstore.CATALOG:
            return Path(self.catalog_path)
        return Path(self.policies_dir) / key.split("/", 1)[1]


def candidate(base: Mapping[str, str], files: Iterable[FileChange], *, shown: Mapping[str, str] | None = None,
              lint_errors: bool = True, catalog: catalog_mod.Catalog | None = None
              ) -> tuple[catalog_mod.Catalog, policy_mod.Policies]:
    """Load the configuration `base` ({path: text}, a version's layout) as it would be after `files` (their
    paths as `Config.key` gives them), with the loader's own checks and, with `lint_errors`, the policy lint's
    (its errors refuse the change; its warnings do not).

    Errors name the files as `shown` says ({"field_catalog.yaml": ..., "policies": ...}: the real files, when
    the files are the configuration), else by their paths in the version, with their lines.

    `catalog`: `base`'s catalog as already loaded (the running snapshot's), used when no file of the change is
    the catalog: a national catalog (25,000 fields) takes seconds to load, a task change does not touch it."""
    from .lint import errors as lint_errors_of

    files = list(files)
    if catalog is not None and any(str(f.path) == configstore.CATALOG for f in files):
        catalog = None
    try:
        new = configstore.changed(base, [(str(f.path), f.new) for f in files])
    except ValueError:
        raise ChangeRefused("a change may only touch the catalog and the policies directory") from None
    with tempfile.TemporaryDirectory(prefix="onescreen-change-") as tmp:
        cat_path, pol_dir = configstore.write_tree(new, Path(tmp) / "config")
        try:
            cat = catalog if catalog is not None else catalog_mod.load(cat_path)
            pol = policy_mod.load(pol_dir, cat)
            problems = [str(f) for f in lint_errors_of(cat, pol)] if lint_errors else []
        except (ConfigError, ConfigErrors) as exc:
            problems = [e.message for e in (exc.errors if isinstance(exc, ConfigErrors) else [exc])]
        if not problems:
            return cat, pol
        shown = shown or {configstore.CATALOG: configstore.CATALOG, configstore.POLICIES: configstore.POLICIES}
        real = {str(cat_path): shown[configstore.CATALOG], str(pol_dir): shown[configstore.POLICIES]}
        messages = []
        for m in problems:
            for fake, true in real.items():
                m = m.replace(fake, true)
            messages.append(m)
        raise ChangeInvalid(messages)


def _held_longer(a: policy_mod.Deferred, b: policy_mod.Deferred) -> bool:
    """Whether deferral `b` may keep a receipt sealed longer than `a` (a fixed day against a period: yes)."""
    if a.until is not None and b.until is not None:
        return b.until > a.until
    if a.period_days is not None and b.period_days is not None:
        return b.period_days > a.period_days
    return True


def widening(old_cat: catalog_mod.Catalog, old: policy_mod.Policies,
             new_cat: catalog_mod.Catalog, new: policy_mod.Policies) -> list[str]:
    """What in the new configuration discloses more than the old: each reason needs a second admin."""
    reasons: list[str] = []
    for code, t in new.tasks.items():
        o = old.tasks.get(code)
        if o is None:
            reasons.append(f"new task {code} discloses {counted(len(t.fields), 'field')}")
            continue
        for role in sorted(t.roles - o.roles):
            reasons.append(f"task {code}: role {role} may now perform it")
        for fid in sorted(set(t.fields) - set(o.fields)):
            reasons.append(f"task {code}: gains field {fid}")
        for fid in sorted(set(t.fields) & set(o.fields)):
            a, b = o.fields[fid], t.fields[fid]
            if (a.mask is not None and a.full_value_basis is None) and (b.mask is None or b.full_value_basis):
                reasons.append(f"task {code}: {fid} is no longer masked")
            elif a.mask != b.mask and b.mask is not None and a.mask is not None:
                reasons.append(f"task {code}: {fid} changes its mask from {a.mask} to {b.mask}")
            if a.consent and not b.consent:
                reasons.append(f"task {code}: {fid} no longer needs consent")
        if o.consent_valid_days is not None and (t.consent_valid_days is None
                                                 or t.consent_valid_days > o.consent_valid_days):
            reasons.append(f"task {code}: a consent stays valid longer ({o.consent_valid_days} days -> "
                           f"{t.consent_valid_days or 'no end'})")
        if o.jurisdiction == "own_region" and t.jurisdiction != "own_region":
            reasons.append(f"task {code}: no longer limited to the caseworker's region")
        # what the subject is told is part of the disclosure: telling them later, or less, needs a second admin
        if t.deferred is not None and (o.deferred is None or _held_longer(o.deferred, t.deferred)):
            reasons.append(f"task {code}: its receipts are withheld from the subject "
                           f"{'longer' if o.deferred is not None else 'for a time'} (deferred_disclosure)")
        if t.receipt_case_ref == "hidden" and o.receipt_case_ref != "hidden":
            reasons.append(f"task {code}: its receipts no longer show the case reference")
    used = {f.id for t in old.tasks.values() for tf in t.fields.values() for f in tf.path}
    for fid in sorted(used & set(new_cat.fields)):
        a, b = old_cat.fields.get(fid), new_cat.fields[fid]
        if a is not None and (a.ledger.id != b.ledger.id or a.source_columns != b.source_columns):
            reasons.append(f"field {fid}, used by tasks, is re-mapped to {b.ledger.id}:{','.join(b.source_columns)}")
        if a is not None and a.mask is not None and b.mask is None:
            reasons.append(f"field {fid}, used by tasks, loses its default mask")
    reasons.extend(why for _aid, why in agreements_mod.widening(old.agreements, new.agreements))
    return reasons


def tasks_using(pol: policy_mod.Policies, field_id: str) -> list[str]:
    return sorted(code for code, t in pol.tasks.items()
                  if any(f.id == field_id for tf in t.fields.values() for f in tf.path))


def unified_diff(files: Iterable[FileChange]) -> str:
    out = []
    for f in files:
        out.extend(difflib.unified_diff((f.old or "").splitlines(True), (f.new or "").splitlines(True),
                                        f"a/{Path(f.path).name}", f"b/{Path(f.path).name}"))
    return "".join(out)


# ---------------------------------------------------------------- atomic apply


def write_atomically(files: Iterable[FileChange]) -> None:
    """Write every file to a temp file beside it (fsynced) first, then rename each over its target.

    A crash before the renames leaves every old file intact; the temp files are removed on error."""
    staged: list[tuple[Path, Path | None]] = []
    try:
        for f in files:
            path = Path(f.path)
            if f.new is None:
                staged.append((path, None))
                continue
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(f.new)
                fh.flush()
                os.fsync(fh.fileno())
            staged.append((path, Path(tmp)))
        for path, tmp in staged:
            if tmp is None:
                path.unlink(missing_ok=True)
            else:
                os.replace(tmp, path)
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        for _path, tmp in staged:
            if tmp is not None and tmp.exists():
                tmp.unlink()


# ---------------------------------------------------------------- the store of proposals


class ChangeStore:
    def __init__(self, url: str) -> None:
        self.engine: AsyncEngine = create_async_engine(url)

    async def open(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(_meta.create_all)
            await conn.run_sync(_add_missing_columns)

    async def add(self, kind: str, summary: str, proposer: str, files: list[FileChange], widening: list[str],
                  proposer_org: str | None = None) -> Proposal:
        now = _now()
        row = dict(kind=kind, summary=summary, proposer=proposer, proposer_org=proposer_org, created_at=now,
                   status="pending",
                   files=json.dumps([{"path": str(f.path), "old": f.old, "new": f.new} for f in files],
                                    ensure_ascii=False),
                   diff=unified_diff(files), widening=json.dumps(widening, ensure_ascii=False))
        async with self.engine.begin() as conn:
            result = await conn.execute(changes_table.insert().values(**row))
            pid = result.inserted_primary_key[0]
        return await self.get(pid)

    async def get(self, pid: int) -> Proposal:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(changes_table).where(changes_table.c.id == pid))).mappings().first()
        if row is None:
            raise ChangeRefused("there is no change with that id")
        return _proposal(row)

    async def list(self, status: str | None = None, limit: int = 100) -> list[Proposal]:
        q = sa.select(changes_table).order_by(changes_table.c.id.desc()).limit(limit)
        if status:
            q = q.where(changes_table.c.status == status)
        async with self.engine.connect() as conn:
            return [_proposal(r) for r in (await conn.execute(q)).mappings()]

    async def decide(self, pid: int, status: str, approver: str | None, comment: str | None = None) -> Proposal:
        async with self.engine.begin() as conn:
            await decide_in(conn, pid, status, approver, comment)
        return await self.get(pid)

    async def close(self) -> None:
        await self.engine.dispose()


async def decide_in(conn: Any, pid: int, status: str, approver: str | None, comment: str | None = None) -> None:
    """Decide a pending change within the transaction of `conn` (with the version it activates, configstore.py)."""
    result = await conn.execute(changes_table.update().where(
        changes_table.c.id == pid, changes_table.c.status == "pending").values(
        status=status, approver=approver, decided_at=_now(), comment=comment))
    if result.rowcount != 1:
        raise ChangeRefused(f"change {pid} is not pending")


def _proposal(r: Any) -> Proposal:
    files = tuple(FileChange(Path(f["path"]), f["old"], f["new"]) for f in json.loads(r["files"]))
    return Proposal(r["id"], r["kind"], r["summary"], r["proposer"], r["created_at"], r["status"], files, r["diff"],
                    tuple(json.loads(r["widening"])), r["approver"], r["decided_at"], r.get("comment"),
                    r.get("proposer_org"))


def _add_missing_columns(sync_conn: Any) -> None:
    """A store made before the approval comment (or the proposer's organisation) existed gains its column
    (nullable: older rows have none)."""
    have = {c["name"] for c in sa.inspect(sync_conn).get_columns(changes_table.name)}
    for column in ("comment", "proposer_org"):
        if column in have:
            continue
        alter = f"ALTER TABLE {changes_table.name} ADD COLUMN {column} TEXT"
        try:
            sync_conn.execute(sa.text(alter))
        except sa.exc.DBAPIError:
            raise ChangeRefused(f"the change store's table {changes_table.name} has no column {column} and this "
                                f"role may not add it: run `{alter}` as the table's owner") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def digest(text: str | None) -> str:
    return hashlib.sha256((text or "").encode()).hexdigest()
