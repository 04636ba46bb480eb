"""The catalog admins' and task configurers' operations: introspect, map, retire, edit tasks, approve.

Plain Python over changes.py; the GraphQL mutations and the CLI are skins over
it. Every operation asks permissions.py first (which roles may is data in
roles.yaml), and every step is audited.
"""
from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, get_args

from connectors.base import ConnectorError

from . import masking
from .audit import AuditEvent
from .catalog import Field, FieldType, propose_type
from .changes import (COMMENT_MAX, ChangeInvalid, ChangeRefused, ChangeStore, Config, FileChange, FourEyes, Proposal,
                      candidate, decide_in, edit_catalog, tasks_using, widening, write_atomically, _flow)
from .configstore import CATALOG, POLICIES, read_files
from .errors import AdminForbidden, ConfigError, ConfigErrors, counted  # noqa: F401 - AdminForbidden: importable here
from .permissions import Permissions
from .policy import Caller
from .screen import convert

if TYPE_CHECKING:
    from .app import Runtime
    from .taskbook import Plan


VERSIONS_BACK = 500  # applied changes a version comparison can reach back over

# The address the admin's request came from (the workstation, behind the trusted proxies: app.ForwardedClient), set
# by the HTTP and GraphQL entrances for the request's task, so that a configuration change's records name it as a
# disclosure's do. A change made from the command line names none.
CLIENT: contextvars.ContextVar[str] = contextvars.ContextVar("onescreen_admin_client", default="")


class Admin:
    def __init__(self, runtime: "Runtime", store_url: str) -> None:
        self.runtime = runtime
        self.store = ChangeStore(store_url)
        self.config = Config(runtime.settings.catalog_path, runtime.settings.policies_dir)
        self.lock = asyncio.Lock()

    # ------------------------------------------------------------ reading

    async def introspect(self, caller: Caller, ledger_id: str) -> list[tuple[str, str, list[str], str]]:
        """The source's real columns (or item paths), each with its type there, the catalog fields mapped to it
        and the catalog type proposed for it (string for identifiers and too-wide integers: catalog.propose_type)."""
        self._require(caller, "catalog.introspect", "introspect ledgers")
        cat = self.runtime.snapshot.catalog
        if ledger_id not in cat.ledgers:
            raise ChangeRefused("unknown ledger: give the id of one of the catalog's ledgers")
        connector = self.runtime.snapshot.gateway.connectors[ledger_id]
        try:
            columns = await connector.columns()
        except ConnectorError as exc:
            raise ChangeRefused(f"cannot read the columns of {ledger_id}: {exc.reason}") from None
        mapped: dict[str, list[str]] = {}
        for f in cat.fields.values():
            if f.ledger.id == ledger_id:
                for c in f.source_columns:
                    mapped.setdefault(c, []).append(f.id)
        return [(name, typ, sorted(mapped.get(name, [])), propose_type(name, typ)) for name, typ in columns.items()]

    async def samples(self, caller: Caller, ledger_id: str, columns: list[str]) -> dict[str, list[str]]:
        """Up to SAMPLES values of each column, to map by: shown as they are only where every field mapped to the
        column is public or internal and carries no personal data; masked otherwise, and always for a column no
        field maps yet (nobody has said what it holds). Empty where the source cannot be sampled (a lookup-only
        REST ledger). The values go to the admin's response only: never to a log, an error or the audit trail."""
        self._require(caller, "catalog.introspect", "introspect ledgers")
        cat = self.runtime.snapshot.catalog
        if ledger_id not in cat.ledgers or not columns:
            return {}
        by_column: dict[str, list[Field]] = {}
        for f in cat.fields.values():
            if f.ledger.id == ledger_id:
                for c in f.source_columns:
                    by_column.setdefault(c, []).append(f)
        connector = self.runtime.snapshot.gateway.connectors[ledger_id]
        try:
            rows = await connector.search({}, {}, list(columns), SAMPLES)
        except ConnectorError:
            return {}
        out: dict[str, list[str]] = {}
        for name in columns:
            fields = by_column.get(name, [])
            values = [row.get(name) for row in rows if isinstance(row, Mapping)]
            out[name] = [_sample(v, fields, name) for v in values if v not in (None, "") and not isinstance(v, (dict, list))]
        return out

    async def list(self, caller: Caller, status: str | None = None) -> list[Proposal]:
        self._require(caller, "changes.read", "see configuration changes")
        await self.runtime.ready()
        return await self.store.list(status)

    async def get(self, caller: Caller, change_id: int) -> Proposal:
        self._require(caller, "changes.read", "see configuration changes")
        await self.runtime.ready()
        return await self.store.get(change_id)

    async def compare(self, caller: Caller, old: str, new: str) -> tuple[list[str], list[Any]]:
        """The diff of two configuration versions (reports.version_diff, what `catalog report diff` prints), each
        named "current" (the running one) or "before-N" / "after-N" (around applied change N): the running files
        with the applied changes after that point undone, newest first."""
        self._require(caller, "changes.read", "compare configuration versions")
        await self.runtime.ready()
        points = {}
        for name in (old, new):
            kind, _, num = name.partition("-")
            if name != "current" and (kind not in ("before", "after") or not num.isdigit()):
                raise ChangeInvalid([f"{name!r}: name a version as current, before-N or after-N (N: an applied change)"])
            points[name] = None if name == "current" else (int(num) + (kind == "after"))  # undo ids >= this
        applied = await self.store.list("applied", limit=VERSIONS_BACK)
        running = self.files()

        def at(first_undone: int | None) -> dict[str, str]:
            files = dict(running)
            if first_undone is None:
                return files
            for p in applied:  # newest first
                if p.id < first_undone:
                    break
                for f in self._keyed(p.files):
                    if f.old is None:
                        files.pop(str(f.path), None)
                    else:
                        files[str(f.path)] = f.old
            return files

        for name, point in points.items():
            if point is not None and not any(p.id == point - (name.startswith("after")) for p in applied):
                raise ChangeInvalid([f"{name}: there is no applied change {point - name.startswith('after')} "
                                     f"among the last {VERSIONS_BACK}"])
        from .reports import version_diff
        snap = self.runtime.snapshot
        base = running if self._is_running(snap, running) else None
        return await asyncio.to_thread(version_diff, at(points[old]), at(points[new]),
                                       None if base is None else (base, snap.catalog, snap.policies))

    # ------------------------------------------------------------ proposing

    async def map_field(self, caller: Caller, spec: dict[str, Any]) -> Proposal:
        """Map a source column to a new or existing catalog field (validated against the live source too)."""
        self._require(caller, "catalog.propose", "map fields")
        cat = self.runtime.snapshot.catalog
        ledger = cat.ledgers.get(spec.get("ledger", ""))
        if ledger is None:
            raise ChangeInvalid(["unknown ledger: give the id of one of the catalog's ledgers"])
        await self._check_source(ledger.id, spec["column"], spec["type"], spec.get("format"))
        entry = {k: spec.get(k) for k in ("id", "ledger", "column", "type", "format", "sensitivity", "mask",
                                          "cardinality", "label", "label_en", "personal_data")}

        def edit(data: Any) -> None:
            fields = data["fields"]
            for i, f in enumerate(fields):
                if f.get("id") == entry["id"]:
                    if entry["personal_data"] is None:  # a re-mapping keeps what the field carries
                        entry["personal_data"] = f.get("personal_data")
                    fields[i] = _flow(entry)
                    return
            fields.append(_flow(entry))

        old = self.files()[CATALOG]
        verb = "re-map" if entry["id"] in cat.fields else "map"
        change = FileChange(CATALOG, old, edit_catalog(old, edit))
        return await self.propose(caller, "catalog", f"{verb} {ledger.id}:{spec['column']} to {entry['id']}", [change])

    async def retire_field(self, caller: Caller, field_id: str) -> Proposal:
        self._require(caller, "catalog.propose", "retire fields")
        users = tasks_using(self.runtime.snapshot.policies, field_id)
        if users:
            raise ChangeRefused(f"field {field_id} is still used by tasks {', '.join(users)}; "
                                "take it out of those tasks first")
        if field_id not in self.runtime.snapshot.catalog.fields:
            raise ChangeInvalid(["unknown field: give the id of one of the catalog's fields"])

        def edit(data: Any) -> None:
            for section in ("fields", "links"):
                items = data.get(section) or []
                for i, f in enumerate(items):
                    if f.get("id") == field_id:
                        del items[i]
                        return

        old = self.files()[CATALOG]
        return await self.propose(caller, "catalog", f"retire {field_id}",
                                  [FileChange(CATALOG, old, edit_catalog(old, edit))])

    async def save_task(self, caller: Caller, code: str, text: str) -> Proposal:
        """Create or replace a task file (policies/tasks/<code>.yaml) from its YAML."""
        self._require(caller, "task.propose", "edit tasks")
        key = self._task_key(code)
        old = self.files().get(key)
        verb = "edit" if old is not None else "create"
        return await self.propose(caller, "task", f"{verb} task {code}", [FileChange(key, old, text)])

    async def import_tasks(self, caller: Caller, path: Path, *, name: str | None = None, dry_run: bool = False,
                           remove_missing: bool = False) -> "tuple[Plan, Proposal | None]":
        """A task spreadsheet (taskbook.py) as ONE change: validated row by row (ImportInvalid lists every
        problem), then proposed like any other change unless `dry_run` or nothing changes."""
        from .taskbook import plan

        self._require(caller, "task.propose", "import tasks")
        snap = self.runtime.snapshot
        base = self.files()
        loaded = (snap.catalog, snap.policies) if self._is_running(snap, base) else None
        the_plan = await asyncio.to_thread(plan, path, base, name=name, remove_missing=remove_missing, loaded=loaded)
        if dry_run or not the_plan.files:
            return the_plan, None
        p = await self.propose(caller, "task", f"import {Path(name or path).name}: {the_plan.summary}",
                               list(the_plan.files))
        return the_plan, p

    async def preview_task(self, caller: Caller, code: str, text: str) -> tuple[list[str], list[str]]:
        """For a draft: the ledgers it touches and what it would newly disclose compared with the running version."""
        self._require(caller, "task.propose", "preview tasks")
        key = self._task_key(code)
        base = self.files()
        # a draft may still be inconsistent: the preview says what it discloses; proposing it lints it
        new_cat, new_pol = candidate(base, [FileChange(key, base.get(key), text)], shown=self._shown(),
                                     lint_errors=False)
        snap = self.runtime.snapshot
        task = new_pol.tasks.get(code)
        if task is None:
            raise ChangeInvalid([f"the draft does not define task {code!r}"])
        ledgers = sorted({f.ledger.id for tf in task.fields.values() for f in tf.path})
        return ledgers, widening(snap.catalog, snap.policies, new_cat, new_pol)

    async def preview_agreements(self, caller: Caller, code: str, text: str) -> list[tuple[str, str, str]]:
        """For a draft: (field path, reason, reason in English) of each field no sharing agreement in force today
        covers for the task's roles, i.e. that every caseworker of the task would see DENIED."""
        from .agreements import judge
        from .policy import today
        self._require(caller, "task.propose", "preview tasks")
        key = self._task_key(code)
        base = self.files()
        _cat, new_pol = candidate(base, [FileChange(key, base.get(key), text)], shown=self._shown(),
                                  lint_errors=False, catalog=self._running_catalog(base))
        task = new_pol.tasks.get(code)
        if task is None:
            raise ChangeInvalid([f"the draft does not define task {code!r}"])
        who = Caller("", "", "", None, task.roles)  # the task's caseworkers, whatever their organisation
        out = []
        for tf in task.fields.values():
            if tf.coverage is None:
                continue
            v = judge(tf.coverage, who, today())
            if not v.ok:
                out.append((tf.id, v.reason or "", v.reason_en or ""))
        return out

    async def save_agreement(self, caller: Caller, agreement_id: str, text: str | None) -> Proposal:
        """Create, change or remove (text None) a sharing agreement (policies/agreements/<id>.yaml) for the
        caller's own side of it. Narrowing or revoking applies at once; a new or widened agreement waits for an
        admin of the other side (approve())."""
        self._require(caller, "agreement.propose", "propose sharing agreements")
        key = self._agreement_key(agreement_id)
        base = self.files()
        old = base.get(key)
        if old is None and text is None:
            raise ChangeInvalid([f"there is no agreement {agreement_id!r}"])
        new_cat, new_pol = candidate(base, [FileChange(key, old, text)], shown=self._shown(), lint_errors=False,
                                     catalog=self._running_catalog(base))
        mine = [a for a in (_agreement(self.runtime.snapshot.policies, agreement_id), _agreement(new_pol, agreement_id))
                if a is not None]
        if not mine or not all(_sides(caller.org, a) for a in mine):
            raise AdminForbidden("you may not propose this agreement: your organisation is neither its providing "
                                 "agency nor its using side's signer")
        verb = "revoke" if text is None else "edit" if old is not None else "create"
        return await self.propose(caller, "agreement", f"{verb} agreement {agreement_id}",
                                  [FileChange(key, old, text)])

    def _agreement_key(self, agreement_id: str) -> str:
        if not agreement_id or not all(c.isascii() and (c.isalnum() or c in "-_") for c in agreement_id) \
                or agreement_id != agreement_id.lower():
            raise ChangeInvalid(["agreement id must be lower-case letters, digits, - and _"])
        return f"{POLICIES}/agreements/{agreement_id}.yaml"

    def _both_sides(self, caller: Caller, p: Proposal, new_pol: Any) -> None:
        """An agreement change that widens sharing needs an admin of the providing agency AND one of the using
        side: the proposer signed for theirs, the approver must sign for the other (four eyes across agencies)."""
        from .agreements import widening as agreement_widening
        old_pol = self.runtime.snapshot.policies
        for aid, _why in agreement_widening(old_pol.agreements, new_pol.agreements):
            a = _agreement(new_pol, aid) or _agreement(old_pol, aid)
            if a is None:
                continue
            signed = _sides(p.proposer_org or "", a) | _sides(caller.org, a)
            if not _sides(caller.org, a):
                raise FourEyes(f"agreement {aid}: you are an admin of neither its providing agency ({a.agency_name}) "
                               f"nor its using side ({a.signer}); nothing was changed (it is still pending)")
            missing = {"provider": a.agency_name, "using": a.signer}.keys() - signed
            if missing:
                who = " and ".join(f"{side} side ({a.agency_name if side == 'provider' else a.signer})"
                                   for side in sorted(missing))
                raise FourEyes(f"agreement {aid} widens sharing: it must be signed by an admin of the {who} as "
                               "well; nothing was changed (it is still pending)")

    def _task_key(self, code: str) -> str:
        """The file of task `code`; a code that is not a plain name (a path, or any other text) is refused."""
        if not code.replace("_", "").isalnum() or not code[:1].isalpha() or code != code.lower() or not code.isascii():
            raise ChangeInvalid(["task code must be lower-case letters, digits and _"])
        return f"{POLICIES}/tasks/{code}.yaml"

    def files(self) -> dict[str, str]:
        """The running configuration as {path: text}: the store's version the snapshot was built from, or the
        files on disk (read now: another process may have changed them)."""
        source = getattr(self.runtime.snapshot, "source", None)
        if source is not None and source.files is not None:
            return dict(source.files)
        return read_files(self.config.catalog_path, self.config.policies_dir)

    def _is_running(self, snap: Any, base: dict[str, str], only: str | None = None) -> bool:
        """Whether snapshot `snap` was loaded from `base` (or from its file `only`): a store's version carries
        its text; files count when none changed on disk since the snapshot read them."""
        source = getattr(snap, "source", None)
        if source is None:
            return False
        if source.files is not None:
            return source.files == base if only is None else source.files.get(only) == base.get(only)
        return self.runtime.files_unchanged()

    def _running_catalog(self, base: dict[str, str]) -> Any:
        """The snapshot's catalog when it is the one `base` holds, else None: candidate() loads it."""
        snap = self.runtime.snapshot
        return snap.catalog if self._is_running(snap, base, CATALOG) else None

    def _keyed(self, files: "list[FileChange] | tuple[FileChange, ...]") -> list[FileChange]:
        return [FileChange(self.config.key(f.path), f.old, f.new) for f in files]

    def _shown(self) -> dict[str, str] | None:
        """How errors name the files: the real ones when the files are the configuration, else the version's."""
        if self.runtime.config_store is not None:
            return None
        return {CATALOG: str(self.config.catalog_path), POLICIES: str(self.config.policies_dir)}

    async def restore(self, caller: Caller, change_id: int) -> Proposal:
        """Propose putting back the files as they were before an applied change (the same four-eyes rules apply)."""
        self._require(caller, ("catalog.propose", "task.propose", "agreement.propose"), "restore versions")
        await self.runtime.ready()
        p = await self.store.get(change_id)
        self._require(caller, _action(p, "propose"), "restore versions")
        if p.status != "applied":
            raise ChangeRefused(f"change {change_id} was never applied")
        files = []
        running = self.files()
        for f in self._keyed(p.files):
            files.append(FileChange(f.path, running.get(str(f.path)), f.old))
        return await self.propose(caller, p.kind, f"restore the version before change {change_id}", files)

    async def propose(self, caller: Caller, kind: str, summary: str, files: list[FileChange]) -> Proposal:
        await self.runtime.ready()
        files = self._keyed(files)
        async with self.lock:
            base = self._check_base(files)
            new_cat, new_pol = candidate(base, files, shown=self._shown(),  # ChangeInvalid: nothing stored or changed
                                         catalog=self._running_catalog(base))
            snap = self.runtime.snapshot
            reasons = widening(snap.catalog, snap.policies, new_cat, new_pol)
            p = await self.store.add(kind, summary, caller.user, files, reasons, caller.org)
            await self._audit(caller, "proposed", p)
            if not reasons:  # narrowing or neutral: applies at once
                p = await self._apply(p, caller, None)
            return p

    # ------------------------------------------------------------ deciding

    async def approve(self, caller: Caller, change_id: int, comment: str | None = None) -> Proposal:
        """Apply a pending change that widens access: only an admin other than its proposer may, with an
        optional comment kept with the approval (in the change and in its audit event)."""
        self._require(caller, DECIDE, "approve changes")  # before the lookup: no probing of ids
        comment = (comment or "").strip() or None
        if comment is not None and len(comment) > COMMENT_MAX:
            raise ChangeInvalid([f"comment: at most {COMMENT_MAX} characters (it has {len(comment)})"])
        await self.runtime.ready()
        async with self.lock:
            p = await self.store.get(change_id)
            self._require(caller, _action(p, "approve"), "approve this change")
            if p.proposer == caller.user:
                raise FourEyes(f"four eyes: you proposed change {change_id}, and a change that widens access must "
                               "be approved by a different admin; nothing was changed (it is still pending)")
            if p.status != "pending":
                raise ChangeRefused(f"change {change_id} is {p.status}, not pending")
            try:
                base = self._check_base(self._keyed(p.files))
                _cat, new_pol = candidate(base, self._keyed(p.files), shown=self._shown(),
                                          catalog=self._running_catalog(base))
            except (ChangeRefused, ChangeInvalid):
                await self.store.decide(change_id, "stale", caller.user)
                raise
            self._both_sides(caller, p, new_pol)
            return await self._apply(p, caller, caller.user, comment)

    async def reject(self, caller: Caller, change_id: int) -> Proposal:
        self._require(caller, DECIDE, "reject changes")
        await self.runtime.ready()
        p = await self.store.get(change_id)
        self._require(caller, _action(p, "approve"), "reject this change")
        if p.status != "pending":
            raise ChangeRefused(f"change {change_id} is {p.status}, not pending")
        p = await self.store.decide(change_id, "rejected", caller.user)
        await self._audit(caller, "rejected", p)
        return p

    async def _apply(self, p: Proposal, caller: Caller, approver: str | None, comment: str | None = None) -> Proposal:
        files = self._keyed(p.files)
        if approver is not None:
            # the approval is in the trail before the change takes effect: a pod that dies between the activation
            # and the "applied" record, or a store that fails then, leaves no active version that no record names
            # (a change applied without approval had its "proposed" record written just before)
            # (an attempt of its own: one that died or failed to activate leaves its record, and the next is another)
            await self._audit(caller, "approved", dataclasses.replace(p, approver=approver, comment=comment),
                              attempt=secrets.token_hex(8))
        if self.runtime.config_store is not None:
            # a new version, active in one transaction with this change's status; every pod follows it
            async def decided(conn: Any) -> None:
                await decide_in(conn, p.id, "applied", approver, comment)
            try:
                await self.runtime.activate([(str(f.path), f.old, f.new) for f in files], by=approver or p.proposer,
                                            source=f"change {p.id}", also=decided)
            except (ConfigError, ConfigErrors) as exc:  # e.g. a new ledger whose DSN variable this pod lacks
                raise ChangeInvalid([e.message for e in getattr(exc, "errors", [exc])]) from None
            p = await self.store.get(p.id)
        else:
            real = [FileChange(self.config.path(str(f.path)), f.old, f.new) for f in files]
            write_atomically(real)
            try:
                await self.runtime.reload_async()
            except Exception:
                write_atomically([FileChange(f.path, f.new, f.old) for f in real])  # validated before; never expected
                raise
            p = await self.store.decide(p.id, "applied", approver, comment)
        await self._audit(caller, "applied", p)
        return p

    def _check_base(self, files: list[FileChange]) -> dict[str, str]:
        """The running configuration, if every file of `files` still reads as the change found it."""
        running = self.files()
        for f in files:
            if running.get(str(f.path)) != f.old:
                raise ChangeRefused(f"{Path(f.path).name} changed since this change was proposed; propose it again")
        return running

    async def _check_source(self, ledger_id: str, column: str, type_: str, fmt: str | None) -> None:
        """The column exists in the live source and a sample of its values converts to the declared type."""
        if type_ not in get_args(FieldType):
            raise ChangeInvalid([f"type must be one of {', '.join(get_args(FieldType))}"])
        connector = self.runtime.snapshot.gateway.connectors[ledger_id]
        try:
            columns = await connector.columns()
        except ConnectorError as exc:
            raise ChangeInvalid([f"ledger {ledger_id}: cannot read its columns ({exc.reason})"]) from None
        if column not in columns:
            raise ChangeInvalid([f"ledger {ledger_id} has no such column (it has: {', '.join(columns)})"])
        if type_ in ("record", "link"):
            return
        try:
            rows = await connector.search({}, {}, [column], 20)
        except ConnectorError:
            return  # lookup-only sources (REST) cannot be sampled without a key; the type is checked on use
        from .catalog import Column
        col = Column(column, column, "", "", type_, fmt)
        for row in rows:
            try:
                convert(col, row.get(column))
            except (TypeError, ValueError):
                raise ChangeInvalid([f"ledger {ledger_id}: values of column {column} do not convert to "
                                     f"{type_} (checked on a sample of {counted(len(rows), 'row')})"]) from None

    async def _audit(self, caller: Caller, action: str, p: Proposal, attempt: str = "") -> None:
        await self.runtime.audit.append(AuditEvent(
            kind="config_change", request_id=f"change-{p.id}-{action}" + (f"-{attempt}" if attempt else ""),
            user=caller.user,
            organisation=caller.org, role=",".join(self._permissions.granting(caller, CHANGE_ACTIONS)), task="",
            legal_basis="", case_ref="", subject_type="", subject="", fields=(), ledgers=(), client=CLIENT.get(),
            detail={"change": p.id, "action": action, "summary": p.summary, "proposer": p.proposer,
                    "approver": p.approver, "comment": p.comment, "widening": list(p.widening),
                    "diff": p.diff[:50_000]}))

    async def close(self) -> None:
        await self.store.close()

    @property
    def _permissions(self) -> Permissions:
        return self.runtime.snapshot.policies.permissions

    def _require(self, caller: Caller, action: str | tuple[str, ...], what: str) -> None:
        self._permissions.require(caller, action, what=what)


SAMPLES = 3  # sample values per column on the mapping page
_OPEN = frozenset({"public", "internal"})


def _sample(value: Any, fields: "list[Field]", column: str) -> str:
    """One sample value as the mapping page shows it: as is for a column that only feeds open fields, else masked
    with the field's own strategy (masking.py) or, lacking one, to its shape (first character, separators)."""
    text = str(value)[:60]
    is_open = bool(fields) and all(
        f.sensitivity in _OPEN and not any(c.personal_data for c in f.columns if c.column == column) for f in fields)
    if is_open:
        return text
    for f in fields:
        strategy = f.mask if isinstance(f.mask, str) else next(
            (f.mask.get(c.name) for c in f.columns if c.column == column), None) if f.mask else None
        if strategy in masking.STRATEGIES:
            return str(masking.apply(strategy, text))
    return "".join(ch if i == 0 or not ch.isalnum() else "*" for i, ch in enumerate(text))


DECIDE = ("catalog.approve", "task.approve", "agreement.approve")  # approve or reject a change of some kind: checked before its lookup
CHANGE_ACTIONS = ("catalog.propose", "catalog.approve", "task.propose", "task.approve", "agreement.propose",
                  "agreement.approve")


def _action(p: Proposal, verb: str) -> str:
    """The action that proposing (a restore) or deciding change `p` needs: of the catalog, the tasks or the
    sharing agreements."""
    return f"{p.kind if p.kind in ('catalog', 'agreement') else 'task'}.{verb}"


def _agreement(pol: Any, agreement_id: str) -> Any:
    return None if pol.agreements is None else pol.agreements.by_id.get(agreement_id)


def _sides(org: str, a: Any) -> set[str]:
    """The sides of agreement `a` organisation `org` signs for: "provider" (the agency's), "using" (the signer's)."""
    from .permissions import belongs
    return ({"provider"} if belongs(org, a.agency_name) else set()) | ({"using"} if belongs(org, a.signer) else set())

