"""The GraphQL schema of one configuration snapshot: static types plus the catalog's typed objects."""
from __future__ import annotations

import logging
from functools import partial
from typing import Any, Optional

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, ParserCache, ValidationCache
from strawberry.types import Info

from ..catalog import Catalog
from ..errors import BadRequest, OneScreenError
from ..screen import assemble
from . import typed as typed_mod
from .types import FieldValue, Me, Screen, SubjectMatch, Task, gql_error

SEARCH_LIMIT = 20
log = logging.getLogger("onescreen.graphql")


async def resolve_tasks(info: Info) -> list[Task]:
    ctx = info.context
    return [Task.of(t) for t in ctx.snapshot.policies.tasks_for(ctx.caller)]


async def resolve_me(info: Info) -> Me:
    c = info.context.caller
    return Me(user=c.user, name=c.name, organisation=c.org, region=c.region, roles=sorted(c.roles))


async def resolve_screen(info: Info, task: strawberry.ID, subject: strawberry.ID, case_ref: str) -> Screen:
    """Every field of the task's set for one subject, in the task's sections, each with value or status."""
    ctx = info.context
    try:
        t = ctx.snapshot.policies.task_for(ctx.caller, str(task))
        ctx.check_subject(t.subject, str(subject))
        ctx.check_case_ref(case_ref)
    except OneScreenError as err:
        raise gql_error(err) from None
    results = await ctx.disclose(t, t.subject, str(subject), [tf.path for tf in t.fields.values()])
    return Screen.of(t, str(subject), case_ref, ctx.request_id, assemble(t, results))


async def resolve_subjects(info: Info, type: str, query: str, task: strawberry.ID) -> list[SubjectMatch]:
    """Find subjects for a task: a citizen by RRN or name + birth date, a building by address or register number.

    Each match shows only the search fields the task may see.
    """
    from ..search import search  # local: keeps the schema module about types

    ctx = info.context
    try:
        t = ctx.snapshot.policies.task_for(ctx.caller, str(task))
        if t.subject != type:
            raise BadRequest(f"task {t.code} is about {t.subject}, not {type}")
        matches = await search(ctx, t, type, query, SEARCH_LIMIT)
    except OneScreenError as err:
        raise gql_error(err) from None
    out = []
    for key, results in matches:
        fields = [FieldValue.of(t.fields[pid], r) if pid in t.fields else None for pid, r in results.items()]
        out.append(SubjectMatch(id=strawberry.ID(key), subject_type=type, fields=[f for f in fields if f]))
    return out


def build_schema(catalog: Catalog, *, production: bool = False) -> strawberry.Schema:
    typed = typed_mod.build(catalog)
    ns: dict = {
        "tasks": strawberry.field(resolver=resolve_tasks, description="The tasks the caller may perform"),
        "me": strawberry.field(resolver=resolve_me, description="The caller, as the service sees them"),
        "screen": strawberry.field(resolver=resolve_screen, description="The one screen of a task for a subject"),
        "subjects": strawberry.field(resolver=resolve_subjects, description="Find subjects for a task"),
    }
    for st in catalog.subject_types.values():
        ns[st.id] = typed_mod.root_field(st, typed)
    query = strawberry.type(type("Query", (), ns))
    return Schema(
        query=query,
        types=list(typed.classes.values()),
        extensions=[partial(ParserCache, maxsize=512), partial(ValidationCache, maxsize=512),
                    partial(MaskErrors, should_mask_error=_should_mask, error_message="Internal error")],
    )


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Log errors without their messages: an unexpected error's text may hold a value or SQL."""
        for error in errors:
            original = error.original_error
            if original is None or isinstance(original, (OneScreenError, GraphQLError)):
                continue  # client errors are the client's business, and already in the response
            log.error("unexpected error while resolving", extra={"path": error.path},
                      exc_info=(type(original), original, None))


def _should_mask(error: GraphQLError) -> bool:
    """Hide everything that is not one of our errors or a GraphQL validation error (no stack traces, no SQL)."""
    original = error.original_error
    if original is None:
        return False
    return not isinstance(original, (OneScreenError, GraphQLError))
