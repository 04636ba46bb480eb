"""Per-request context: the caller, the configuration snapshot, and the batcher.

`Context.disclose()` is the one door to data for every GraphQL path: it
decides every requested field (deny by default), passes only allowed paths
on, and batches every subject of the request (aliases, several root fields)
into one resolve() so each ledger is read once per stage (invariant 3).
Before anything is read it also holds the request to its tasks' subjects per
request, and spends the caller's lookup budget for subjects named by identifier.
"""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from cachetools import LRUCache
from cryptography.fernet import InvalidToken

from .. import masking
from ..audit import AuditEvent, pseudonymise
from ..catalog import Field, path_id
from ..consent import ConsentUnavailable
from ..errors import BadRequest, OneScreenError, TooManySubjects
from ..lookups import LookupBudgetExceeded, Spent
from ..policy import CASE_REF_PATTERN, Caller, Status, Subject, Task, decide
from ..screen import FieldResult, OneStage, SubjectRequest, denied as denied_result, one_stage, resolve

if TYPE_CHECKING:
    from ..app import Snapshot

log = logging.getLogger("onescreen.context")
HANDLE_PREFIX = "h:"
HANDLE_TTL = 8 * 3600
CASE_REF_RE = re.compile(CASE_REF_PATTERN)
# A case reference is kept forever in the append-only audit trail, so it must not be a person's identifier:
# refused when it holds an RRN's shape (6 + 7 digits, any separator or none, any check digit) or a Korean
# phone number's (mobile, landline or 070/050x, with or without separators, or with the 82 country code).
_SEP = "[-._:/]?"
PERSONAL_IN_CASE_REF = re.compile(
    rf"(?<![0-9])[0-9]{{6}}{_SEP}[0-9]{{7}}(?![0-9])"
    rf"|(?<![0-9])(?:82{_SEP}0?|0)(?:2|[3-6][1-5]|70|1[016789]|50[0-9]){_SEP}[0-9]{{3,4}}{_SEP}[0-9]{{4}}(?![0-9])")


@dataclass
class Context:
    caller: Caller
    snapshot: "Snapshot"
    request_id: str
    client: str = ""
    batcher: "Batcher" = field(init=False)
    disclosures: list["Disclosure"] = field(default_factory=list)
    extra_events: list = field(default_factory=list)  # audit events of mutations (consent) and security events
    named: set = field(default_factory=set)  # (subject type, key) of every subject the request names for a task
    by_identifier: set = field(default_factory=set)  # those of them named by identifier, not by a search's handle
    subject_cap: tuple[int, str] | None = None  # the smallest subjects_per_request of the request's tasks, and which
    refused: OneScreenError | None = None  # the whole request is refused: nothing more is read
    retry_after: float | None = None  # set when a lookup by identifier was refused for the lookup budget (429)
    budgeted: bool = False  # the request's first lookup by identifier passed the budget check

    def __post_init__(self) -> None:
        self.batcher = Batcher(self)

    def check_subject(self, subject_type: str, key: str, task: Task | None = None) -> str:
        """The subject key a caller gave, or the key behind a handle from `subjects`; BadRequest if neither.

        With `task`, the subject counts against the task's subjects per request: one subject too many refuses
        the whole request (TooManySubjects) before anything of it is read, whatever aliases it uses."""
        st = self.snapshot.catalog.subject_types[subject_type]
        if isinstance(key, str) and key.startswith(HANDLE_PREFIX):
            try:
                kind, _, raw = self.snapshot.handles.decrypt(key[len(HANDLE_PREFIX):].encode(),
                                                             ttl=HANDLE_TTL).decode().partition(":")
            except (InvalidToken, UnicodeDecodeError, ValueError):
                raise BadRequest("the subject handle is invalid or expired; search for the subject again") from None
            if kind != subject_type:
                raise BadRequest(f"the subject handle is not for a {st.label_en}")
            key, identifier = raw, False
        elif not isinstance(key, str) or not st.key_pattern.match(key):
            raise BadRequest(f"the subject is not a valid {st.key_label_en} ({st.key_label})")
        else:
            identifier = True
        if task is not None:
            self._count(task, subject_type, key, identifier)
        return key

    def _count(self, task: Task, subject_type: str, key: str, identifier: bool) -> None:
        """Count a subject the request names. Root fields start together and each names its subject before
        its first read is dispatched (Batcher), so a refusal here stops the reads of the others as well."""
        if self.refused is not None:
            raise self.refused
        self.named.add((subject_type, key))
        if identifier:
            self.by_identifier.add((subject_type, key))
        if self.subject_cap is None or task.subjects_per_request < self.subject_cap[0]:
            self.subject_cap = (task.subjects_per_request, task.code)
        cap, code = self.subject_cap
        if len(self.named) > cap:
            self.refused = TooManySubjects(
                f"task {code} lets one request look up at most {cap} subject{'s' if cap > 1 else ''}; this request "
                f"names {len(self.named)}, so none of them was read (send one request per subject)")
            raise self.refused

    def handle(self, subject_type: str, key: str) -> str:
        """An opaque, expiring reference to a subject: search results never reveal the key itself."""
        return HANDLE_PREFIX + self.snapshot.handles.encrypt(f"{subject_type}:{key}".encode()).decode()

    @staticmethod
    def check_case_ref(case_ref: str) -> None:
        """The one check of every case reference a client gives (screen, typed roots, recordConsent), before
        any work; the messages never repeat it."""
        if not isinstance(case_ref, str) or not CASE_REF_RE.match(case_ref):
            raise BadRequest("caseRef must be 1-64 letters, digits or . _ : / - (the 민원 접수번호 or case id)")
        if PERSONAL_IN_CASE_REF.search(case_ref):
            raise BadRequest("caseRef must not hold a resident registration number or a phone number: it is kept "
                             "in the audit trail for good; give the 민원 접수번호 or case id")

    async def disclose(self, task: Task, subject_type: str, key: str, paths: Iterable[tuple[Field, ...]],
                       case_ref: str, *, stable: bool = False) -> dict[str, FieldResult]:
        """Results for `paths` of one subject: denied ones decided here and never fetched, masked ones masked here.

        `stable`: `paths` is an object that stays the same for every request of one query (typed.py's
        memoised selection), so its decisions for one set of roles and facts are computed once."""
        if self.refused is not None:
            raise self.refused
        if not stable:
            paths = list(paths)
        spent = await self._spend(task, subject_type, key)
        found: bool | None = None
        try:
            region = await self._region(task, subject_type, key)
            facts = await self._facts(task, subject_type, key, paths, stable, region)
            memo = self.snapshot.decided if stable else None
            d = _decide(self.caller, task, paths, facts, memo)
            for status, n in d.counts:
                self.snapshot.metrics.bound(self.snapshot.metrics.decisions, status).inc(n)
            results = dict(d.denied)
            if d.allowed:
                fetched = await self.batcher.load(SubjectRequest(subject_type, key, d.allowed, d.plan))
                masks = d.masks
                for pid, r in fetched.items():
                    if pid in masks and r.status is Status.OK:
                        r = r._replace(status=Status.MASKED, value=masking.apply(masks[pid], r.value))
                    results[pid] = r
            if spent is not None:
                found = _found(results.values(), region)
        finally:
            if spent is not None:
                await self._settle(spent, found)
        self.disclosures.append(Disclosure(task, subject_type, key, case_ref, results))
        return results

    async def in_region(self, task: Task, subject_type: str, key: str) -> bool | None:
        """Whether the subject is in the caller's jurisdiction for `task` (None: the task needs no lookup, or the
        caller has no valid region), read as disclose() reads it: a lookup by identifier spends budget."""
        if self.refused is not None:
            raise self.refused
        spent = await self._spend(task, subject_type, key)
        region = None
        try:
            region = await self._region(task, subject_type, key)
        finally:
            if spent is not None:
                await self._settle(spent, _found((), region))
        return None if region is None else region.status is Status.OK and self.caller.covers(region.value)

    async def _region(self, task: Task, subject_type: str, key: str) -> FieldResult | None:
        """The subject's region field, read when the task is limited to the caller's region (and the caller
        has a valid one: else decide() denies without it)."""
        if task.jurisdiction != "own_region" or self.caller.scope != "region":
            return None
        region_field = self.snapshot.catalog.subject_types[subject_type].region_field
        path = (self.snapshot.catalog.fields[region_field],)
        return (await self.batcher.load(SubjectRequest(subject_type, key, (path,))))[region_field]

    async def _spend(self, task: Task, subject_type: str, key: str) -> Spent | None:
        """The lookup, counted in flight against the caller's budget when the subject was named by identifier
        (else None); LookupBudgetExceeded, a security event, a metric and a warning when none is left."""
        if (subject_type, key) not in self.by_identifier:
            return None
        try:
            # the request's first lookup is checked; its others (a batch task's) go with it (lookups.py)
            spent = await self.snapshot.lookups.spend(self.caller.user, self.caller.org, checked=not self.budgeted)
            self.budgeted = True
            return spent
        except LookupBudgetExceeded as exc:
            if self.retry_after is None:  # once per request: what was refused, never the identifiers
                self._budget_refused(task, exc)
            self.retry_after = max(self.retry_after or 0.0, exc.retry_after)
            raise

    def _budget_refused(self, task: Task, exc: LookupBudgetExceeded) -> None:
        m = self.snapshot.metrics
        m.bound(m.lookup_refusals, exc.scope).inc()
        granting = sorted(self.caller.roles & task.roles)
        self.extra_events.append(AuditEvent(
            kind="security", request_id=self.request_id, user=self.caller.user, organisation=self.caller.org,
            role=granting[0] if granting else "", task=task.code, legal_basis=task.legal_basis, case_ref="",
            subject_type="", subject="", fields=(), ledgers=(), client=self.client,
            detail={"event": "lookup_budget_exceeded", "scope": exc.scope, "limit": exc.limit,
                    "window_seconds": exc.window}))
        log.warning("lookups by identifier refused: the lookup budget is spent",
                    extra={"request_id": self.request_id, "user": self.caller.user, "org": self.caller.org,
                           "task": task.code, "reason": f"{exc.scope} budget: {exc.limit} lookups that found "
                                                        f"nothing in {exc.window:g} s"})

    async def _settle(self, spent: Spent, found: bool | None) -> None:
        """A lookup that found nothing stays a miss for the window; one that found its subject or learnt nothing
        (every field denied before a read, ledgers unavailable, the request refused) does not."""
        if found is False:
            self.snapshot.metrics.lookup_misses.inc()
        await self.snapshot.lookups.settle(spent, found)

    async def _facts(self, task: Task, subject_type: str, key: str, paths: list, stable: bool,
                     region: FieldResult | None) -> Subject:
        """What the policy needs to know of the subject: region (jurisdiction) and consent, only when a rule asks."""
        in_region = consented = None
        if region is not None:
            in_region = region.status is Status.OK and self.caller.covers(region.value)
        if _asks_consent(task, paths, self.snapshot.decided if stable else None):
            try:
                consented = await self.snapshot.consents.has(task.code, self.pseudonym(subject_type, key))
            except ConsentUnavailable:
                log.warning("consent store unreadable; consent-gated fields stay closed", extra={"task": task.code})
                consented = False
        return Subject(in_region, consented)

    def pseudonym(self, subject_type: str, key: str) -> str:
        return pseudonymise(self.snapshot.pseudonym_key, subject_type, key)


@dataclass(frozen=True, slots=True)
class Decided:
    """The policy's answer for a list of paths, for one caller's roles and jurisdiction and one subject's facts."""

    denied: tuple[tuple[str, FieldResult], ...]
    allowed: tuple[tuple[Field, ...], ...]
    plan: OneStage | None  # how to read `allowed`, when no link is followed
    masks: dict[str, object]
    counts: tuple[tuple[str, int], ...]  # decisions per status, for the metrics


def _remembered(memo: LRUCache | None, key: tuple, task: Task, paths: list, make):
    """`make()`, kept in `memo` (the snapshot's, for a `stable` paths object) under `key`. The key holds ids;
    the entry holds the task and paths themselves and a hit must find the same objects, so an id reused by
    another object never matches. A reload brings a new snapshot, and so an empty memo."""
    hit = memo.get(key) if memo is not None else None
    if hit is not None and hit[0] is task and hit[1] is paths:
        return hit[2]
    value = make()
    if memo is not None:
        memo[key] = (task, paths, value)
    return value


def _found(results: Iterable[FieldResult], region: FieldResult | None) -> bool | None:
    """Whether a lookup found its subject (True), was told by a ledger that it has no such record (False), or
    learnt neither (None: every field denied before a read, or the ledgers unavailable)."""
    statuses = {r.status for r in results}
    if region is not None:
        statuses.add(region.status)
    if Status.OK in statuses or Status.MASKED in statuses:
        return True
    return False if Status.NOT_FOUND in statuses else None


def _asks_consent(task: Task, paths: list, memo: LRUCache | None) -> bool:
    """Whether any of `paths` is a consent-gated field of `task`."""
    def make() -> bool:
        wanted = {path_id(p) for p in paths}
        return any(tf.consent for pid, tf in task.fields.items() if pid in wanted)
    return _remembered(memo, ("consent", id(task), id(paths)), task, paths, make)


def _decide(caller: Caller, task: Task, paths: list, facts: Subject, memo: LRUCache | None) -> Decided:
    """`decide` for every path, remembered per (task, paths object, roles, jurisdiction scope, facts):
    everything `decide` reads."""
    def make() -> Decided:
        denied: list[tuple[str, FieldResult]] = []
        allowed: list[tuple[Field, ...]] = []
        masks: dict[str, object] = {}
        counts: dict[str, int] = {}
        for path in paths:
            pid = path_id(path)
            decision = decide(caller, task, pid, facts)
            counts[decision.status.value] = counts.get(decision.status.value, 0) + 1
            if decision.allowed:
                allowed.append(path)
                if decision.mask is not None:
                    masks[pid] = decision.mask
            else:
                denied.append((pid, denied_result(decision)))
        return Decided(tuple(denied), tuple(allowed), one_stage(allowed), masks, tuple(counts.items()))
    return _remembered(memo, (id(task), id(paths), caller.roles, caller.scope, facts), task, paths, make)


@dataclass(frozen=True)
class Disclosure:
    """What one subject's part of a request decided and read: the material of its audit record."""

    task: Task
    subject_type: str
    key: str
    case_ref: str  # "" for a subject search
    results: dict[str, FieldResult]


class Batcher:
    """Collects the subject requests of one GraphQL request and resolves them together.

    Dispatch waits until a loop tick passes with no new request, so every root
    field of the operation (they start together) joins the same batch.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.pending: list[tuple[SubjectRequest, asyncio.Future]] = []
        self.scheduled = False
        self.fresh = False

    def load(self, request: SubjectRequest) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((request, future))
        self.fresh = True
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._settle)
        return future

    def _settle(self) -> None:
        if self.fresh:
            self.fresh = False
            asyncio.get_running_loop().call_soon(self._settle)
            return
        self.scheduled = False
        batch, self.pending = self.pending, []
        asyncio.ensure_future(self._dispatch(batch))

    async def _dispatch(self, batch: list[tuple[SubjectRequest, asyncio.Future]]) -> None:
        if self.ctx.refused is not None:  # a root field named one subject too many: nothing of the request is read
            for _, future in batch:
                if not future.done():
                    future.set_exception(self.ctx.refused)
            return
        try:
            results = await resolve([r for r, _ in batch], self.ctx.snapshot.gateway)
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else OneScreenError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)

