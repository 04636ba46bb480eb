"""The door: every disclosure of the service goes through here, read straight down.

decide (policy.py) -> plan (planner.py, screen.one_stage) -> read (batch.py, gateway.py) -> recombine
(screen.py) -> mask (masking.py) -> the audit events (`Door.events()`, written by the endpoint before any
byte of the response leaves). GraphQL parses, validates, calls an entrance of the door (`screen`,
`subject`, `search`, `record_consent`, `reuse_consent`, `access_history`) and shapes its result; it never
decides, reads or masks.

Owns invariants 1 (deny by default: a field no rule allows is DENIED), 2 (a denied field is never read:
only allowed paths reach the planner), 6 (a masked field leaves masked) and, with batch.py, 3 across a
request's root fields. Before anything is read it holds the request to its tasks' subjects per request,
and spends the caller's lookup budget for subjects named by identifier.
"""
from __future__ import annotations

import logging
import re
from datetime import date
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from cachetools import LRUCache
from cryptography.fernet import InvalidToken

from . import masking
from .agreements import require_read
from .audit import AuditEvent, FieldDecision, pseudonymise
from .audit.store import HistoryFilter
from .batch import Batcher
from .catalog import Field, path_id
from .consent import ConsentUnavailable, today as consent_today
from .counters import LookupBudgetUnavailable
from .errors import BadRequest, LedgerUnavailable, OneScreenError, OutsideJurisdiction, TaskForbidden, TooManySubjects
from .lookups import LookupBudgetExceeded, Spent
from .permissions import TASK_USE
from .policy import PROVIDER_MASK, CASE_REF_PATTERN, Caller, Status, Subject, Task, decide, may_record_consent
from .screen import (FieldResult, OneStage, ScreenSection, SubjectRequest, assemble, denied as denied_result,
                     one_stage)

if TYPE_CHECKING:
    from .runtime import Snapshot

log = logging.getLogger("onescreen.disclose")
HANDLE_PREFIX = "h:"
HANDLE_TTL = 8 * 3600
SEARCH_LIMIT = 20  # matches a subject search returns at most
CASE_REF_RE = re.compile(CASE_REF_PATTERN)
# A case reference is kept forever in the append-only audit trail, so it must not be a person's identifier:
# refused when it holds an RRN's shape (6 + 7 digits, any separator or none, any check digit) or a Korean
# phone number's (mobile, landline or 070/050x, with or without separators, or with the 82 country code).
_SEP = "[-._:/]?"
PERSONAL_IN_CASE_REF = re.compile(
    rf"(?<![0-9])[0-9]{{6}}{_SEP}[0-9]{{7}}(?![0-9])"
    rf"|(?<![0-9])(?:82{_SEP}0?|0)(?:2|[3-6][1-5]|70|1[016789]|50[0-9]){_SEP}[0-9]{{3,4}}{_SEP}[0-9]{{4}}(?![0-9])")


@dataclass
class Door:
    """One request's way to data: the caller, the configuration snapshot it started with, and what it disclosed."""

    caller: Caller
    snapshot: "Snapshot"
    request_id: str
    client: str = ""
    batcher: Batcher = field(init=False)
    disclosures: list["Disclosure"] = field(default_factory=list)
    extra_events: list = field(default_factory=list)  # audit events of mutations (consent) and security events
    named: set = field(default_factory=set)  # (subject type, key) of every subject the request names for a task
    by_identifier: set = field(default_factory=set)  # those of them named by identifier, not by a search's handle
    subject_cap: tuple[int, str] | None = None  # the smallest subjects_per_request of the request's tasks, and which
    refused: OneScreenError | None = None  # the whole request is refused: nothing more is read
    retry_after: float | None = None  # set when a lookup by identifier was refused for the lookup budget (429)
    budget_unavailable: bool = False  # the shared lookup budget could not be checked (503, nothing read)
    budgeted: bool = False  # the request's first lookup by identifier passed the budget check
    _in_force: dict = field(default_factory=dict)  # (task, pseudonym, case) -> the consent in force, or None
    day: date = field(init=False)  # the request's day (KST): which sharing agreements and consents are in force

    def __post_init__(self) -> None:
        self.batcher = Batcher(self.snapshot.gateway, lambda: self.refused)
        # one clock decides the day for agreements and consents alike (the consent store's; tests move it)
        self.day = consent_today(self.snapshot.consents.clock())

    # ------------------------------------------------------------------ the entrances

    async def screen(self, task_code: str, subject: str, case_ref: str, fields: Sequence[str] | None
                     ) -> tuple[Task, tuple[ScreenSection, ...]]:
        """Every field of the task's set (or of `fields`, some of them) for one subject, in the task's sections."""
        t = self.snapshot.policies.task_for(self.caller, task_code)
        key = self.check_subject(t.subject, subject, t)
        self.check_case_ref(case_ref)
        wanted = list(t.fields) if fields is None else list(fields)
        if not wanted or any(f not in t.fields for f in wanted):
            raise BadRequest(f"fields must be field ids of task {t.code}")
        results = await self.disclose(t, t.subject, key, [t.fields[f].path for f in wanted], case_ref)
        return t, assemble(t, results)

    async def subject(self, task_code: str, subject_type: str, key: str, case_ref: str,
                      paths: Sequence[tuple[Field, ...]]) -> dict[str, FieldResult]:
        """A typed query's subject: `paths` is the query's selection, an object that stays the same for every
        request of one query text (typed.py memoises it), so its decisions are computed once per roles and facts."""
        t = self.snapshot.policies.task_for(self.caller, task_code)
        if t.subject != subject_type:
            raise BadRequest(f"task {t.code} is about {t.subject}, not {subject_type}")
        subject_key = self.check_subject(subject_type, key, t)
        self.check_case_ref(case_ref)
        return await self.disclose(t, subject_type, subject_key, paths, case_ref, stable=True)

    async def search(self, subject_type: str, query: str, task_code: str) -> tuple[Task, Any]:
        """The task and its search.Found: the first SEARCH_LIMIT matches within the caller's jurisdiction as
        (handle, the `show` fields the task may see), sorted, and their total. A match is named by an opaque
        handle, never by its key."""
        from .search import Found, search  # the search step: finding keys in the search ledger

        t = self.snapshot.policies.task_for(self.caller, task_code)
        if t.subject != subject_type:  # the message never repeats `subject_type`: it may be anything, an identifier
            raise BadRequest(f"task {t.code} finds subjects of type {t.subject}: send type: \"{t.subject}\"")
        found = await search(self, t, subject_type, query, SEARCH_LIMIT)
        return t, Found([(self.handle(subject_type, key), results) for key, results in found.matches],
                        found.total, found.exact)

    async def record_consent(self, task_code: str, subject: str, case_ref: str, method: str,
                             exception: str | None) -> Any:
        """Record that the subject consented (or that an exception applies) for a consent-gated task and ONE case:
        it opens the consent-gated fields of that case alone, for the task's `consent_valid_days`. Only a caller
        who could read those fields once it is recorded may (the task's roles and the caller's jurisdiction over
        the subject, as for reading). Audited as a `consent` event."""
        from .consent import validate

        t, key, pseudonym = await self._consent_subject(task_code, subject, (case_ref,))
        validate(method, exception)
        consent = await self.snapshot.consents.record(
            task=t.code, subject=pseudonym, case_ref=case_ref, method=method, exception=exception,
            recorded_by=self.caller.user, organisation=self.caller.org, valid_days=t.consent_valid_days)
        self._in_force[(t.code, pseudonym, case_ref)] = consent
        self.extra_events.append(self._event(
            "consent", t, case_ref, t.subject, pseudonym,
            tuple(FieldDecision(tf.id, "CONSENT_RECORDED") for tf in t.fields.values() if tf.consent), (),
            {"method": method, "exception": exception, "consent_id": consent.id,
             "valid_until": _day(consent.valid_until)}))
        return consent

    async def reuse_consent(self, task_code: str, subject: str, from_case: str, to_case: str) -> Any:
        """Reuse the consent in force for case `from_case` for case `to_case`: the same task and the same subject
        only (the consent is looked up by both), while it is valid, by a caller who may record consent for the
        subject. An explicit act: a record of its own (`reused_from`, the original's validity, never longer), and
        a `consent` audit event of its own with `reused_from`. A consent is never carried to another case silently."""
        t, key, pseudonym = await self._consent_subject(task_code, subject, (from_case, to_case))
        if from_case == to_case:
            raise BadRequest("fromCase and toCase are the same case: a consent already serves its own case")
        consents = self.snapshot.consents
        source = await consents.find(t.code, pseudonym, from_case)
        if source is None:
            raise BadRequest(f"no consent for task {t.code} is in force for fromCase for this subject (none was "
                             "recorded, or it expired): record the subject's consent for this case instead")
        if await consents.find(t.code, pseudonym, to_case) is not None:
            raise BadRequest("toCase has a consent in force already: there is nothing to reuse")
        consent = await consents.record(
            task=t.code, subject=pseudonym, case_ref=to_case, method=source.method, exception=source.exception,
            recorded_by=self.caller.user, organisation=self.caller.org, reused=source)
        self._in_force[(t.code, pseudonym, to_case)] = consent
        self.extra_events.append(self._event(
            "consent", t, to_case, t.subject, pseudonym,
            tuple(FieldDecision(tf.id, "CONSENT_REUSED") for tf in t.fields.values() if tf.consent), (),
            {"act": "reuse", "method": source.method, "exception": source.exception, "consent_id": consent.id,
             "reused_from": source.id, "from_case": from_case, "valid_until": _day(consent.valid_until)}))
        return consent

    async def _consent_subject(self, task_code: str, subject: str, case_refs: Sequence[str]) -> tuple[Task, str, str]:
        """The task, subject key and pseudonym of a consent act, after its checks: a consent-gated task the caller
        may perform, valid case references, and the caller's right to read the gated fields once consented."""
        t = self.snapshot.policies.task_for(self.caller, task_code)
        key = self.check_subject(t.subject, subject, t)
        for case_ref in case_refs:
            self.check_case_ref(case_ref)
        if not t.needs_consent:
            raise BadRequest(f"task {t.code} has no consent-gated field")
        allowed = may_record_consent(self.caller, t, Subject(in_region=await self.in_region(t, t.subject, key)),
                                     self.day)
        if not allowed.allowed:
            raise OutsideJurisdiction(f"you may not record consent for this subject: {allowed.reason_en}")
        return t, key, self.pseudonym(t.subject, key)

    async def screen_consents(self, task: Task, subject: str, case_ref: str, results: Iterable[FieldResult],
                              reusable: bool) -> Any:
        """For a screen already disclosed: the consent in force for its case (or None) and, with `reusable`, the
        valid consents of the subject's other cases of the task that could be reused for it. Nothing when the
        task has no consent-gated field or the caller may not read them for this subject (`results`, those of the
        screen's consent-gated fields, hold a DENIED one)."""
        if not task.needs_consent or any(r.status is Status.DENIED for r in results):
            return None if not reusable else []
        key = self.check_subject(task.subject, subject)
        pseudonym = self.pseudonym(task.subject, key)
        try:
            if not reusable:
                return await self._consent_in_force(task, pseudonym, case_ref)
            return await self.snapshot.consents.reusable(task.code, pseudonym, case_ref)
        except ConsentUnavailable:  # the screen is served; its consent-gated fields stayed closed (_facts)
            log.warning("consent store unreadable; no consent shown on the screen", extra={"task": task.code})
            return None if not reusable else []

    async def _consent_in_force(self, task: Task, pseudonym: str, case_ref: str) -> Any:
        """The consent that opens the consent-gated fields of this task, subject and case today (or None), read
        once per request."""
        k = (task.code, pseudonym, case_ref)
        if k not in self._in_force:
            self._in_force[k] = await self.snapshot.consents.find(task.code, pseudonym, case_ref)
        return self._in_force[k]

    async def access_history(self, subject: str | None, first: int, after: str | None, subject_type: str = "citizen",
                             filters: HistoryFilter | None = None) -> tuple[list, str | None]:
        """Who saw a subject's data: for auditors (a citizen, a building, a parcel, ...), and for a citizen about
        themselves (`subject` None: the key they signed in as). ValueError: `after` is not a cursor this service
        gave out."""
        if subject_type not in self.snapshot.catalog.subject_types:
            raise BadRequest("subjectType must be one of: " + ", ".join(sorted(self.snapshot.catalog.subject_types)))
        st = self.snapshot.catalog.subject_types[subject_type]
        if subject is None:
            if self.caller.subject is None or subject_type != "citizen":
                raise BadRequest(f"subject: give the {st.key_label_en} ({st.key_label}) whose history to read")
            subject = self.caller.subject
        key = self.check_subject(st.id, subject)
        may = self.snapshot.policies.permissions.allowed
        if not may(self.caller, "access_history.read", key if subject_type == "citizen" else None):
            if self.caller.subject is not None:  # a citizen signed in as themselves, asking for someone else
                raise TaskForbidden("you may read only your own access history (the one of the resident "
                                    "registration number you signed in with)")
            raise TaskForbidden("access history is for auditors, and for citizens about themselves")
        if not 1 <= first <= 100:
            raise BadRequest("first must be between 1 and 100")
        records, cursor = await self.snapshot.audit.history(self.pseudonym(st.id, key), first, after, filters=filters)
        if self.caller.subject is not None and self.caller.subject == key:  # a citizen: not what is still sealed
            from .receipts import visible
            records = await visible(self, records, self.pseudonym(st.id, key))
        return records, cursor

    def events(self) -> list[AuditEvent]:
        """The request's audit events: one per subject disclosed (or searched), then consent and security events."""
        out = []
        made = self.snapshot.field_decisions  # one FieldDecision per (field, status), made once per snapshot
        for d in self.disclosures:
            fields, ledgers, linked = [], set(), []
            for pid, r in sorted(d.results.items()):
                decision = made.get((pid, r.status))
                if decision is None:
                    decision = made[(pid, r.status)] = FieldDecision(pid, r.status.value)
                fields.append(decision)
                if r.source is not None:
                    ledgers.add(r.source.ledger)
                if r.persons and r.status in _SHOWN:
                    linked.append((pid, decision, r))
            event = self._event("search" if d.case_ref == "" else "disclosure", d.task, d.case_ref,
                                d.subject_type, self.pseudonym(d.subject_type, d.key), tuple(fields),
                                tuple(sorted(ledgers)), self._reader(d))
            out.append(event)
            if linked and d.case_ref != "":
                out += self._linked(d, event, linked)
        return out + self.extra_events

    def _linked(self, d: "Disclosure", event: AuditEvent, linked: list) -> list[AuditEvent]:
        """The same access seen from the side of each person the subject's record fields showed rows about
        (catalog `person:`: a household member, a relative, an owner), the subject themself aside: a record of
        its own, about that person, naming only the fields that showed their rows. It holds nothing of the
        subject's (neither key nor pseudonym, other fields, or the case reference: an auditor finds the subject's
        record by the same request id), so the person's receipts and proofs show nothing of another person's.
        A deferred task's sealing holds for them as for the subject."""
        catalog = self.snapshot.catalog
        people: dict[tuple[str, str], list] = {}
        for pid, decision, r in linked:
            subject_type = catalog.path(pid)[-1].person[1]
            pattern = catalog.subject_types[subject_type].key_pattern
            for key in dict.fromkeys(r.persons):
                if key is not None and pattern.match(key) and (subject_type, key) != (d.subject_type, d.key):
                    people.setdefault((subject_type, key), []).append((decision, r.source.ledger))
        detail = {k: v for k, v in event.detail.items() if k in _LINKED_DETAIL}
        detail["linked"] = True
        events = [self._event(event.kind, d.task, "", subject_type, self.pseudonym(subject_type, key),
                              tuple(f for f, _ in shown), tuple(sorted({ledger for _, ledger in shown})), detail)
                  for (subject_type, key), shown in people.items()]
        return sorted(events, key=lambda e: e.subject)  # in no order of the persons' keys

    def _reader(self, d: "Disclosure") -> dict:
        """What an access history shows of a disclosure beyond ids and the officer's name (a private member of the
        record, `_event`): whether consent-gated fields were disclosed because the subject's consent was recorded,
        and until when a deferred task's receipt is sealed."""
        detail: dict = {}
        gated = d.task.fields
        if d.task.needs_consent and any(r.status in _SHOWN and pid in gated and gated[pid].consent
                                        for pid, r in d.results.items()):
            detail["consent_based"] = True
            used = self._in_force.get((d.task.code, self.pseudonym(d.subject_type, d.key), d.case_ref))
            if used is not None:  # the consent record of this case the disclosure rests on
                detail["consent_id"] = used.id
                detail["consent_method"] = used.method
                if used.exception:
                    detail["consent_exception"] = used.exception
        deferred = d.task.deferred
        if deferred is not None and d.case_ref != "":  # the subject's receipt is sealed until this day (receipts.py)
            detail["deferred_until"] = deferred.sealed_until(datetime.now(timezone.utc)).isoformat()
            detail["deferred_basis"] = deferred.legal_basis
        return detail

    def _event(self, kind: str, task: Task, case_ref: str, subject_type: str, subject: str,
               fields: tuple[FieldDecision, ...], ledgers: tuple[str, ...], detail: dict | None = None) -> AuditEvent:
        granting = self.snapshot.policies.permissions.granting(self.caller, TASK_USE, task)  # the role acted in
        return AuditEvent(kind=kind, request_id=self.request_id, user=self.caller.user, organisation=self.caller.org,
                          role=granting[0] if granting else "", task=task.code, legal_basis=task.legal_basis,
                          case_ref=case_ref, subject_type=subject_type, subject=subject, fields=fields,
                          ledgers=ledgers, client=self.client, detail=detail or {}, user_name=self.caller.name or "")

    # ------------------------------------------------------------------ the walk

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
            facts = await self._facts(task, subject_type, key, paths, stable, region, case_ref)
            memo = self.snapshot.decided if stable else None
            d = _decide(self.caller, task, paths, facts, memo, self.day)
            for status, n in d.counts:
                self.snapshot.metrics.bound(self.snapshot.metrics.decisions, status).inc(n)
            results = dict(d.denied)
            if d.allowed:
                fetched = await self.batcher.load(SubjectRequest(subject_type, key, d.allowed, d.plan))
                masks = d.masks
                for pid, r in fetched.items():
                    if pid in masks and (r.status is Status.OK or r.status is Status.PARTIAL):  # PARTIAL: reason kept
                        r = r._replace(status=Status.MASKED, value=masking.apply(masks[pid], r.value),
                                       rule=d.mask_rules.get(pid))  # a provider's mask says so (explain.py)
                    results[pid] = r
            if spent is not None:
                found = _found(results.values(), region)
        finally:
            if spent is not None:
                await self._settle(spent, found)
        self.disclosures.append(Disclosure(task, subject_type, key, case_ref, results))
        return results

    async def in_region(self, task: Task, subject_type: str, key: str, *, outside_is_miss: bool = False
                        ) -> bool | None:
        """Whether the subject is in the caller's jurisdiction for `task` (None: the task needs no lookup, or the
        caller has no valid region), read as disclose() reads it: a lookup by identifier spends budget.

        `outside_is_miss` (a search): a subject outside the jurisdiction spends the budget as an unknown one does,
        a lookup that found nothing, so the budget never tells one from the other. LedgerUnavailable when the
        region cannot be read (a search cannot then tell a match from a miss)."""
        if self.refused is not None:
            raise self.refused
        spent = await self._spend(task, subject_type, key)
        region = None
        inside: bool | None = None
        try:
            region = await self._region(task, subject_type, key)
            if region is not None:
                inside = region.status is Status.OK and self.caller.covers(region.value)
        finally:
            if spent is not None:
                found = _found((), region)
                await self._settle(spent, False if outside_is_miss and found and not inside else found)
        if outside_is_miss and region is not None and region.status is Status.UNAVAILABLE:
            raise LedgerUnavailable(region.source.ledger if region.source else subject_type, region.reason or "")
        return inside

    def forget_search(self, subject_type: str, keys: set) -> None:
        """A search's reads of keys that matched nothing disclosed nothing: no audit record of them."""
        self.disclosures = [d for d in self.disclosures
                            if not (d.case_ref == "" and d.subject_type == subject_type and d.key in keys)]

    async def _region(self, task: Task, subject_type: str, key: str) -> FieldResult | None:
        """The subject's region field, read when the task is limited to the caller's region (and the caller
        has a valid one: else decide() denies without it)."""
        if task.jurisdiction != "own_region" or self.caller.scope != "region":
            return None
        region_field = self.snapshot.catalog.subject_types[subject_type].region_field
        path = (self.snapshot.catalog.fields[region_field],)
        require_read(self.snapshot.policies.agreements, path, task.code, self.caller, self.day,
                     "the jurisdiction check")
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
        except LookupBudgetUnavailable:
            self.budget_unavailable = True  # fail closed: no lookup by identifier without its budget
            raise

    def _budget_refused(self, task: Task, exc: LookupBudgetExceeded) -> None:
        m = self.snapshot.metrics
        m.bound(m.lookup_refusals, exc.scope).inc()
        self.extra_events.append(self._event("security", task, "", "", "", (), (), {
            "event": "lookup_budget_exceeded", "scope": exc.scope, "limit": exc.limit, "window_seconds": exc.window}))
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
                     region: FieldResult | None, case_ref: str) -> Subject:
        """What the policy needs to know of the subject: region (jurisdiction) and consent, only when a rule asks.
        Consent is that of this task, subject AND case, valid today: another case's consent opens nothing."""
        in_region = consented = None
        if region is not None:
            in_region = region.status is Status.OK and self.caller.covers(region.value)
        if _asks_consent(task, paths, self.snapshot.decided if stable else None):
            pseudonym = self.pseudonym(subject_type, key)
            try:
                consented = await self._consent_in_force(task, pseudonym, case_ref) is not None
            except ConsentUnavailable:
                log.warning("consent store unreadable; consent-gated fields stay closed", extra={"task": task.code})
                self._in_force[(task.code, pseudonym, case_ref)] = None  # the screen then shows none either
                consented = False
        return Subject(in_region, consented)

    def pseudonym(self, subject_type: str, key: str) -> str:
        return pseudonymise(self.snapshot.pseudonym_key, subject_type, key)


def _day(d: Any) -> str | None:
    return None if d is None else d.isoformat()


_SHOWN = frozenset({Status.OK, Status.MASKED, Status.PARTIAL})  # a field whose value was disclosed
# what a linked person's record keeps of the subject's record's detail: the deferral (not the subject's consent:
# it is about the subject)
_LINKED_DETAIL = ("deferred_until", "deferred_basis")


@dataclass(frozen=True, slots=True)
class Decided:
    """The policy's answer for a list of paths, for one caller's roles and jurisdiction and one subject's facts."""

    denied: tuple[tuple[str, FieldResult], ...]
    allowed: tuple[tuple[Field, ...], ...]
    plan: OneStage | None  # how to read `allowed`, when no link is followed
    masks: dict[str, object]
    counts: tuple[tuple[str, int], ...]  # decisions per status, for the metrics
    mask_rules: dict[str, str]  # the rule of a mask a sharing agreement requires (the task's own: absent)


def _remembered(memo: LRUCache | None, key: tuple, task: Task, paths: list, make):
    """`make()`, kept in `memo` (the snapshot's, for a `stable` paths object) under `key`. The key holds ids;
    the entry holds the task and paths themselves and a hit must find the same objects, so an id reused by
    another object never matches. A reload brings a new snapshot, and so an empty memo.

    Pays for itself: a distinct-subject typed screen costs 5.375 M instructions with it, 6.291 M with every
    decision made afresh (-14.6%; `python -m bench.icount REF --screens 200`, callgrind, c=16, 2026-12-04)."""
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
    if Status.OK in statuses or Status.MASKED in statuses or Status.PARTIAL in statuses:
        return True
    return False if Status.NOT_FOUND in statuses else None


def _asks_consent(task: Task, paths: list, memo: LRUCache | None) -> bool:
    """Whether any of `paths` is a consent-gated field of `task`."""
    def make() -> bool:
        wanted = {path_id(p) for p in paths}
        return any(tf.consent for pid, tf in task.fields.items() if pid in wanted)
    return _remembered(memo, ("consent", id(task), id(paths)), task, paths, make)


def _decide(caller: Caller, task: Task, paths: list, facts: Subject, memo: LRUCache | None, day: date) -> Decided:
    """`decide` for every path, remembered per (task, paths object, roles, organisation, jurisdiction scope, facts,
    day): everything `decide` reads."""
    def make() -> Decided:
        denied: list[tuple[str, FieldResult]] = []
        allowed: list[tuple[Field, ...]] = []
        masks: dict[str, object] = {}
        mask_rules: dict[str, str] = {}
        counts: dict[str, int] = {}
        for path in paths:
            pid = path_id(path)
            decision = decide(caller, task, pid, facts, day)
            counts[decision.status.value] = counts.get(decision.status.value, 0) + 1
            if decision.allowed:
                allowed.append(path)
                if decision.mask is not None:
                    masks[pid] = decision.mask
                    if decision.rule.startswith(PROVIDER_MASK):
                        mask_rules[pid] = decision.rule
            else:
                denied.append((pid, denied_result(decision)))
        return Decided(tuple(denied), tuple(allowed), one_stage(allowed), masks, tuple(counts.items()), mask_rules)
    return _remembered(memo, (id(task), id(paths), caller.roles, caller.org, caller.scope, facts, day), task, paths,
                      make)


@dataclass(frozen=True)
class Disclosure:
    """What one subject's part of a request decided and read: the material of its audit record."""

    task: Task
    subject_type: str
    key: str
    case_ref: str  # "" for a subject search
    results: dict[str, FieldResult]
