"""The GraphQL schema of one configuration snapshot: static types plus the catalog's typed objects.

Every resolver of a disclosure calls one entrance of the door (disclose.Door: screen, search,
record_consent, reuse_consent, access_history; typed.py calls `subject`) and shapes its answer. `Schema.run` executes
a request: the query limits (limits.py, invariant 10) before validation, then graphql-core, or the
compiled plan of fast.py; anything unexpected leaves as "Internal error", never its text."""
from __future__ import annotations

import logging
import re
from bisect import bisect_left
from datetime import datetime
from inspect import isawaitable
from typing import Any, Optional

import strawberry
from cachetools import LRUCache
from graphql import (DocumentNode, ExecutionResult as GraphQLExecutionResult, GraphQLError, GraphQLObjectType,
                     GraphQLSchema, Source, SourceLocation, execute, parse, specified_rules, validate, validate_schema)
from graphql.validation import NoSchemaIntrospectionCustomRule
from graphql.validation.validate import ValidationAbortedError
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types import Info

from ..audit.store import HistoryFilter
from ..receipts import sealed_until
from ..catalog import Catalog
from ..disclose import SEARCH_LIMIT
from ..errors import BadRequest, OneScreenError
from . import admin as admin_api, catalog_api, fast, receipts_api, typed as typed_mod
from .limits import Check, Limits, too_complex
from .redact import redacted
from .types import (AccessHistory, AccessRecord, Consent, FieldDecision as FieldDecisionType, FieldStatus, FieldValue,
                    Me, Screen, SubjectMatch, SubjectSearch, Task, gql_error)

log = logging.getLogger("onescreen.graphql")


async def resolve_tasks(info: Info) -> list[Task]:
    ctx = info.context
    return [Task.of(t) for t in ctx.snapshot.policies.tasks_for(ctx.caller)]


async def resolve_me(info: Info) -> Me:
    c = info.context.caller
    return Me(user=c.user, name=c.name, organisation=c.org, region=c.region, roles=sorted(c.roles),
              actions=info.context.snapshot.policies.permissions.actions_for(c))


async def resolve_screen(info: Info, task: strawberry.ID, subject: strawberry.ID, case_ref: str,
                         fields: Optional[list[strawberry.ID]] = None) -> Screen:
    """Every field of the task's set for one subject, in the task's sections, each with value or status.

    `fields` narrows the screen to some of the task's fields (e.g. to retry one ledger's fields)."""
    door = info.context
    try:
        t, sections = await door.screen(str(task), str(subject), case_ref,
                                        None if fields is None else [str(f) for f in fields])
        gated = [f.result for s in sections for f in s.fields if t.fields[f.id].consent]
        consent = await door.screen_consents(t, str(subject), case_ref, gated, reusable=False) if gated else None
    except OneScreenError as err:
        raise gql_error(err) from None
    return Screen.of(t, str(subject), case_ref, door.request_id, sections, consent)


async def resolve_subject_search(info: Info, type: str, query: str, task: strawberry.ID) -> SubjectSearch:
    """Find subjects for a task: a citizen by RRN or name + birth date, a building by address or register number.

    Only subjects within the caller's jurisdiction for the task match: an unknown key and a subject of another
    district both give no match (and no audit record). Each match shows only the search fields the task may
    see. At most `limit` matches, sorted; `total` says how many matched (`totalExact` false: at least that
    many) and `truncated` that the list was cut (the search text should be narrower)."""
    try:
        t, found = await info.context.search(type, query, str(task))
    except OneScreenError as err:
        raise gql_error(err) from None
    out = []
    for handle, results in found.matches:
        fields = [FieldValue.of(t.fields[pid], r, t) if pid in t.fields else None for pid, r in results.items()]
        out.append(SubjectMatch(id=strawberry.ID(handle), subject_type=type, fields=[f for f in fields if f]))
    return SubjectSearch(matches=out, truncated=found.truncated, limit=SEARCH_LIMIT, total=found.total,
                         total_exact=found.exact)


async def resolve_subjects(info: Info, type: str, query: str, task: strawberry.ID) -> list[SubjectMatch]:
    """Find subjects for a task: `subjectSearch`'s matches alone (which does not say whether the list was cut)."""
    return (await resolve_subject_search(info, type, query, task)).matches


async def resolve_access_history(info: Info, subject: Optional[strawberry.ID] = None, first: int = 20,
                                 after: Optional[str] = None, subject_type: str = "citizen",
                                 user: Optional[str] = None, task: Optional[strawberry.ID] = None,
                                 case_ref: Optional[str] = None, since: Optional[datetime] = None,
                                 until: Optional[datetime] = None) -> AccessHistory:
    """Who saw a subject's data, when, for which task and legal basis: for auditors (a citizen, a building, a
    parcel: `subjectType`), and for a citizen about themselves (`subject` left out: the one they signed in as).
    Narrowed by officer (`user` id), `task`, `caseRef` and the period [since, until); send the same filters
    with every page."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise gql_error(BadRequest(f"{name} must carry a time zone offset, e.g. 2026-12-01T00:00:00+09:00"))
    filters = HistoryFilter(user or None, str(task) if task else None, case_ref or None, since, until)
    ctx = info.context
    try:
        records, cursor = await ctx.access_history(None if subject is None else str(subject), first, after,
                                                   subject_type, filters)
    except OneScreenError as err:
        raise gql_error(err) from None
    except ValueError:
        raise gql_error(BadRequest("after is not a cursor this service gave out")) from None
    catalog, tasks = ctx.snapshot.catalog, ctx.snapshot.policies.tasks
    entries = []
    for r in records:
        e = r.event
        t = tasks.get(e.task)
        detail = e.detail if isinstance(e.detail, dict) else {}
        consent = detail.get("consent_based") is True or (  # records before it was recorded: the task's rules
            "consent_based" not in detail and "user_name" not in detail and e.user_name is None and t is not None
            and any(f.status in ("OK", "MASKED", "PARTIAL") and f.id in t.fields and t.fields[f.id].consent
                    for f in e.fields))
        name = e.user_name if e.user_name is not None else detail.get("user_name")  # before schema 4: in detail
        entries.append(AccessRecord(
            at=r.at, user=e.user, user_name=name if isinstance(name, str) and name else None,
            organisation=e.organisation, role=e.role, task=strawberry.ID(e.task),
            task_name=t.name if t else None, task_name_en=t.name_en if t else None, legal_basis=e.legal_basis,
            case_ref=e.case_ref, consent_based=consent, seq=r.seq, sealed_until=_day(sealed_until(e)),
            fields=[FieldDecisionType(id=strawberry.ID(f.id), status=FieldStatus[f.status],
                                      **dict(zip(("label", "label_en"), path_labels(catalog, f.id))))
                    for f in e.fields]))
    return AccessHistory(entries=entries, next_cursor=cursor)


def _day(d: Any) -> str | None:
    return None if d is None else d.isoformat()


def path_labels(catalog: Catalog, path: str) -> tuple[str, str]:
    """`citizen.residence>building.parcel>parcel.pnu` as people read it, in Korean and English: each field's label
    joined with ›; a field the catalog no longer has is shown by its id."""
    parts = [catalog.fields.get(p) for p in path.split(">")]
    ko = " › ".join(f.label if f is not None else p for f, p in zip(parts, path.split(">")))
    en = " › ".join(f.label_en if f is not None else p for f, p in zip(parts, path.split(">")))
    return ko, en


async def resolve_record_consent(info: Info, task: strawberry.ID, subject: strawberry.ID, case_ref: str,
                                 method: str, exception: Optional[str] = None) -> Consent:
    """Record that the subject consented (or that an exception applies) for a consent-gated task.

    Only a caller who could read the consent-gated fields once consent is recorded may record it: the task's
    roles and the caller's jurisdiction over the subject, as for reading."""
    try:
        c = await info.context.record_consent(str(task), str(subject), case_ref, method, exception)
    except OneScreenError as err:
        raise gql_error(err) from None
    return Consent.of(c)


async def resolve_reuse_consent(info: Info, task: strawberry.ID, subject: strawberry.ID, from_case: str,
                                to_case: str) -> Consent:
    """Reuse the consent in force for case `fromCase` for case `toCase`, of the same task and subject.

    A consent opens the fields of its own case only; carrying it to another case is this explicit act, allowed
    while it is valid (never extending it), for a caller who may record consent for the subject, and audited
    as a consent event of its own (with reused_from)."""
    try:
        c = await info.context.reuse_consent(str(task), str(subject), from_case, to_case)
    except OneScreenError as err:
        raise gql_error(err) from None
    return Consent.of(c)


def build_schema(catalog: Catalog, *, production: bool = False, limits: Limits = Limits(),
                 introspection: bool | None = None) -> "Schema":
    ns: dict = {
        "tasks": strawberry.field(resolver=resolve_tasks, description="The tasks the caller may perform"),
        "me": strawberry.field(resolver=resolve_me, description="The caller, as the service sees them"),
        "screen": strawberry.field(resolver=resolve_screen, description="The one screen of a task for a subject"),
        "subjects": strawberry.field(resolver=resolve_subjects, description="Find subjects for a task (the first "
                                     f"{SEARCH_LIMIT} matches; subjectSearch also says whether there were more)"),
        "subject_search": strawberry.field(resolver=resolve_subject_search, description=(
            f"Find subjects for a task: the first {SEARCH_LIMIT} matches, and whether more subjects matched")),
        "access_history": strawberry.field(resolver=resolve_access_history,
                                           description="A citizen's access history (auditors; the citizen themselves)"),
    }
    for name, fn in (*admin_api.QUERIES.items(), *receipts_api.QUERIES.items()):
        ns[name] = strawberry.field(resolver=fn, description=fn.__doc__)
    ns.update((n, strawberry.field(resolver=fn, description=fn.__doc__)) for n, fn in catalog_api.QUERIES.items())
    query = strawberry.type(type("Query", (), ns))
    mutation = strawberry.type(type("Mutation", (), {
        "record_consent": strawberry.field(resolver=resolve_record_consent, description=resolve_record_consent.__doc__),
        "reuse_consent": strawberry.field(resolver=resolve_reuse_consent, description=resolve_reuse_consent.__doc__),
        **{name: strawberry.field(resolver=fn, description=fn.__doc__)
           for name, fn in (*admin_api.MUTATIONS.items(), *receipts_api.MUTATIONS.items())}}))
    rules = []
    if not (introspection if introspection is not None else not production):
        rules.append(NoSchemaIntrospectionCustomRule)
    schema = Schema(query=query, mutation=mutation, config=StrawberryConfig(disable_field_suggestions=production),
                    rules=rules, limits=limits)
    schema.add_typed(typed_mod.build(catalog))
    return schema


class Schema(strawberry.Schema):
    """Strawberry's schema, run by `run()`: parse and validate once per query text, execute on graphql-core.

    strawberry's `execute()` runs the hooks of every extension per request (a parser cache, a validation
    cache, a token limit, extra rules, error masking: ~10% of a screen's CPU in the benchmark profile). The
    same steps are plain code here, cached per distinct query text. Execution is graphql-core's public
    `execute()`, or, for a typed query of the common shape, its compiled plan (fast.py, which pays for itself:
    see there); strawberry's resolvers need nothing of strawberry's own execution context.
    """

    def __init__(self, *, rules: list, limits: Limits, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rules = (*specified_rules, *rules, MaybeNullValidationRule, OneOfInputValidationRule)
        self.limits = limits
        # production: no "Did you mean ...?" for fields, arguments, types, enum values or input fields, in
        # validation and in the coercion of variables and arguments (graphql-core's own switch)
        self.hide_suggestions = self.config.disable_field_suggestions
        # query text -> (document, errors, plan); every text kept is at most limits.max_chars long
        self._prepared: LRUCache = LRUCache(maxsize=512)
        self._typed_roots: frozenset[str] = frozenset()
        self.compiled = True  # typed queries run on their compiled plan (fast.py); tests compare both ways

    def prepare(self, query: str) -> tuple[DocumentNode | None, list[GraphQLError], fast.Plan | None]:
        """The parsed document of a query, its parse or validation errors, and the compiled plan of a typed
        query (fast.py), cached per text. The limits (limits.py) are checked before any validation rule."""
        if len(query) > self.limits.max_chars:
            return None, [too_complex(f"the query text is longer than {self.limits.max_chars} characters, the "
                                      "most one request may send")], None
        hit = self._prepared.get(query)
        if hit is None:
            hit = self._prepare(query)
            self._prepared[query] = hit
        return hit

    def _prepare(self, query: str) -> tuple[DocumentNode | None, list[GraphQLError], fast.Plan | None]:
        try:
            document = parse(Text(query), max_lexical_tokens=self.limits.max_tokens)
            refused = Check(document, self.limits, self._typed_roots).refusal()
            if refused is not None:
                return None, [refused], None
            errors = [too_complex("validation stopped: the query needs more work to validate than one request may "
                                  "cause") if isinstance(e, ValidationAbortedError) else e  # error limit, merge budget
                      for e in validate(self._schema, document, self.rules, hide_suggestions=self.hide_suggestions)]
            plan = None if errors else fast.compile_query(self._schema, self._typed_roots, document)
        except GraphQLError as err:
            if "Document contains more than" in err.message:  # the parser's max_tokens
                err = too_complex(f"the query has more than {self.limits.max_tokens} tokens, the most one request "
                                  "may send", err.nodes)
            return None, [err], None
        except RecursionError:
            return None, [too_complex("the query is nested too deeply")], None
        return document, errors, plan

    async def run(self, query: str, variables: dict | None, context: Any,
                  operation_name: str | None = None) -> GraphQLExecutionResult:
        """Execute one request. Errors that are not ours (or GraphQL's) are logged and sent as "Internal error"."""
        document, errors, plan = self.prepare(query)
        if errors:
            result = GraphQLExecutionResult(None, list(errors))
        elif plan is not None and self.compiled and (operation_name is None or (
                plan.operation.name is not None and plan.operation.name.value == operation_name)):
            result = await plan.run(variables, context, self.hide_suggestions)
        else:
            result = execute(self._schema, document, context_value=context, variable_values=variables,
                             operation_name=operation_name, is_awaitable=optimized_is_awaitable,
                             hide_suggestions=self.hide_suggestions)
            if isawaitable(result):
                result = await result
        if result.errors:
            self._process_errors(result.errors)
            errors = redacted(result.errors, query, variables, operation_name)
            result.errors = [_masked(e) if _should_mask(e) else e for e in errors]
        return result

    def add_typed(self, typed: typed_mod.TypedSchema) -> None:
        """Add the catalog's typed root fields (graphql-core types, see typed.py) to strawberry's Query."""
        core = self._schema
        query = core.query_type
        clash = query.fields.keys() & typed.roots.keys()
        if clash:
            raise ValueError(f"subject type names clash with static root fields: {sorted(clash)}")
        self._schema = GraphQLSchema(
            query=GraphQLObjectType(query.name, {**query.fields, **typed.roots}, description=query.description,
                                    extensions=query.extensions),
            mutation=core.mutation_type,
            types=[t for name, t in core.type_map.items() if not name.startswith("__") and t is not query],
            directives=core.directives,
            extensions=core.extensions,
        )
        self._schema._strawberry_schema = self  # type: ignore[attr-defined]
        self._typed_roots = frozenset(typed.roots)
        self._prepared.clear()
        errors = validate_schema(self._schema)
        if errors:
            raise ValueError("invalid schema: " + "; ".join(e.message for e in errors))

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Log errors without their messages: an unexpected error's text may hold a value or SQL."""
        for error in errors:
            original = error.original_error
            if original is None or isinstance(original, (OneScreenError, GraphQLError)):
                continue  # client errors are the client's business, and already in the response
            log.error("unexpected error while resolving", extra={"path": error.path},
                      exc_info=(type(original), original, None))


class Text(Source):
    """A query text that finds the line of a position by bisection over its line breaks.

    graphql-core locates every error it makes (each denied field of a screen is one) by scanning the text from
    its start to the error's position: errors x text length, quadratic in a request asking a hundred subjects
    for every field (3,300 field errors of a 9 KB batch took 8 of its 18 profiled seconds). Same results as
    `Source.get_location`: the line after the last line break that starts before the position."""

    def __init__(self, body: str) -> None:
        super().__init__(body)
        breaks = [(m.start(), m.end()) for m in re.finditer(r"\r\n|[\n\r]", body)]
        self._break_starts = [b[0] for b in breaks]
        self._break_ends = [b[1] for b in breaks]

    def get_location(self, position: int) -> SourceLocation:
        before = bisect_left(self._break_starts, position)  # line breaks starting before the position
        return SourceLocation(before + 1, position + 1 - (self._break_ends[before - 1] if before else 0))


def _masked(error: GraphQLError) -> GraphQLError:
    return GraphQLError("Internal error", nodes=error.nodes, source=error.source, positions=error.positions,
                        path=error.path)


def _should_mask(error: GraphQLError) -> bool:
    """Hide everything that is not one of our errors or a GraphQL validation error (no stack traces, no SQL)."""
    original = error.original_error
    if original is None:
        return False
    return not isinstance(original, (OneScreenError, GraphQLError))
