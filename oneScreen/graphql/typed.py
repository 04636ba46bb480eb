"""Typed GraphQL objects generated from the catalog: Citizen, Building, Parcel, ...

One GraphQL field per catalog field of a subject type (the last segment of
its id in camelCase), nested objects for links, so an API client selects
exactly the attributes it needs. Every selected path goes through the door
(disclose.py, `Door.subject`); a path outside the task's set resolves to null
with a FIELD_DENIED error.

These types are built directly as graphql-core types with plain resolvers,
not as strawberry classes: a national catalog has tens of thousands of
fields, and strawberry's per-field machinery (annotation evaluation at
build time, a resolver wrapper per field at run time) cost seconds of
start-up and most of a screen's execution time. The root resolver decides
and fetches the whole selection in one step; each leaf only looks its
result up. A typed query of the common shape does not even go through
graphql-core's executor: fast.py runs it on a compiled plan with these same
resolvers (the root's `extensions["disclose"]`, called without resolve info; leaves
and links are called with info=None, so they must not use it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field as dc_field
from datetime import date
from typing import Any, Callable, Sequence

from graphql import (FieldNode, FragmentSpreadNode, GraphQLArgument, GraphQLError, GraphQLBoolean, GraphQLField, GraphQLFloat,
                     GraphQLID, GraphQLInt, GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLOutputType,
                     GraphQLResolveInfo, GraphQLScalarType, GraphQLString, InlineFragmentNode)

from ..catalog import Catalog, Field, SubjectType
from ..errors import ConsentRequired, FieldDenied, LedgerUnavailable, OneScreenError
from ..policy import Status
from ..screen import FieldResult
from .types import gql_error


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def pascal(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_"))


@dataclass(frozen=True, slots=True)
class Node:
    """A typed object being resolved: the request's results and where in the path this object sits."""

    results: dict[str, FieldResult]
    prefix: str


@dataclass(frozen=True)
class TypedSchema:
    roots: dict[str, GraphQLField]  # root field name (camelCase subject type) -> field
    types: dict[str, GraphQLObjectType]  # subject type -> GraphQL object type
    fields_by_gql: dict[str, dict[str, Field]]  # subject type -> GraphQL name -> field
    _paths: dict = dc_field(default_factory=dict, repr=False)  # ids of the field nodes -> (nodes, paths)

    def paths_of(self, nodes: Sequence[FieldNode], fragments: dict, subject: str) -> list[tuple[Field, ...]]:
        """The catalog paths a root field's selection asks for: every node of the field (two root fields with
        one response key are merged), memoised per parsed query (the parser cache hands back the same nodes
        for the same query text, so a repeated query is walked once, and its paths are the same object: the
        door's decisions for it are computed once, see disclose.py `_remembered`)."""
        key = tuple(map(id, nodes))
        hit = self._paths.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], nodes)):
            return hit[1]
        paths = list(dict.fromkeys(p for node in nodes
                                   for p in _ast_paths(node.selection_set, fragments, subject, self, (), ())))
        if len(self._paths) > 4096:
            self._paths.clear()
        self._paths[key] = (tuple(nodes), paths)
        return paths


def _ast_paths(selection_set, fragments: dict, subject: str, typed: "TypedSchema", prefix: tuple,
               seen: tuple) -> list[tuple[Field, ...]]:
    out: list[tuple[Field, ...]] = []
    for sel in (selection_set.selections if selection_set else ()):
        if isinstance(sel, FieldNode):
            f = typed.fields_by_gql[subject].get(sel.name.value)
            if f is None:
                continue  # __typename
            if f.is_link:
                out.extend(_ast_paths(sel.selection_set, fragments, f.target, typed, prefix + (f,), seen))
            else:
                out.append(prefix + (f,))
        elif isinstance(sel, InlineFragmentNode):
            out.extend(_ast_paths(sel.selection_set, fragments, subject, typed, prefix, seen))
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen and sel.name.value in fragments:
            out.extend(_ast_paths(fragments[sel.name.value].selection_set, fragments, subject, typed, prefix,
                                  seen + (sel.name.value,)))
    return list(dict.fromkeys(out))


_ISO_DATE_OR_YEAR = re.compile(r"[0-9]{4}(-[0-9]{2}-[0-9]{2})?")


def _date_out(value: Any) -> str:
    """A date field's value as the screen has it: an ISO date, or its year alone where the task masks it
    (masking.date_year, the one mask that applies to dates: masking.APPLIES_TO)."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and _ISO_DATE_OR_YEAR.fullmatch(value):
        return value
    raise GraphQLError("Date cannot represent this value: it is neither an ISO date nor a year")  # never the value


def _date_in(value: Any) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise GraphQLError("Date takes an ISO date such as 2000-01-31")


DATE = GraphQLScalarType(
    "Date", serialize=_date_out, parse_value=_date_in,
    parse_literal=lambda node, _variables=None: _date_in(getattr(node, "value", None)),
    description="An ISO date (2000-01-31), or the year alone (2000) where the task masks the date to its year")


def build(catalog: Catalog) -> TypedSchema:
    """The typed objects and root fields of a catalog."""
    scalars: dict[str, GraphQLScalarType] = {"string": GraphQLString, "integer": GraphQLInt, "number": GraphQLFloat,
                                             "boolean": GraphQLBoolean, "date": DATE}
    by_gql: dict[str, dict[str, Field]] = {s: {camel(f.name): f for f in catalog.fields_by_subject.get(s, ())}
                                           for s in catalog.subject_types}
    types: dict[str, GraphQLObjectType] = {}

    def fields_of(s: str) -> Callable[[], dict[str, GraphQLField]]:
        def thunk() -> dict[str, GraphQLField]:
            out = {}
            for name, f in by_gql[s].items():
                item = None
                if f.is_link:
                    gtype: GraphQLOutputType = types[f.target]
                elif f.type == "record":
                    gtype = item = _record_type(s, f, scalars)
                else:
                    gtype = scalars[f.type]
                if not f.is_link and f.cardinality == "many":
                    gtype = GraphQLList(GraphQLNonNull(gtype))
                out[name] = GraphQLField(gtype, resolve=_resolver(f, item is not None),
                                         description=f"{f.label} / {f.label_en}")
            return out
        return thunk

    for s, st in catalog.subject_types.items():
        types[s] = GraphQLObjectType(pascal(s), fields_of(s), description=st.label_en)
    typed = TypedSchema({}, types, by_gql)
    typed.roots.update((camel(s), _root_field(st, typed)) for s, st in catalog.subject_types.items())
    return typed


def _record_type(subject: str, f: Field, scalars: dict[str, GraphQLScalarType]) -> GraphQLObjectType:
    # Items are dicts keyed by the GraphQL names, read by graphql-core's default resolver.
    return GraphQLObjectType(pascal(subject) + pascal(f.name) + "Item",
                             {camel(c.name): GraphQLField(scalars[c.type]) for c in f.columns},
                             description=f"{f.label_en} ({f.label})")


def _resolver(f: Field, is_record: bool) -> Callable[..., Any]:
    if f.is_link:
        fid = f.id + ">"

        def resolve_link(root: Node, _info: GraphQLResolveInfo) -> Node:
            return Node(root.results, root.prefix + fid)
        return resolve_link

    fid, many = f.id, f.cardinality == "many"
    if is_record:
        names = [(c, camel(c.name)) for c in f.columns]

        def convert(value: Any) -> Any:
            items = [{name: row.get(c.name) for c, name in names} for row in _as_list(value)]
            return items if many else items[0]
    else:
        convert = None  # type: ignore[assignment]  # dates are ISO strings already (screen.convert)

    def resolve(root: Node, _info: GraphQLResolveInfo) -> Any:
        r = root.results.get(root.prefix + fid)
        if r is None:  # cannot happen: every selected path was decided
            raise gql_error(FieldDenied(root.prefix + fid, "not decided"))
        status = r.status
        if status is Status.OK or status is Status.MASKED:
            value = r.value
            return value if convert is None or value is None else convert(value)
        if status is Status.DENIED:
            raise gql_error(FieldDenied(root.prefix + fid, r.reason_en or "denied"))
        if status is Status.CONSENT_REQUIRED:
            raise gql_error(ConsentRequired(root.prefix + fid, r.reason_en or "consent required"))
        if status is Status.UNAVAILABLE:
            raise gql_error(LedgerUnavailable(r.source.ledger if r.source else "?", r.reason_en or "unavailable"))
        return None  # NOT_FOUND
    return resolve


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _root_field(st: SubjectType, typed: TypedSchema) -> GraphQLField:
    """The typed root query of a subject type, e.g. citizen(rrn:, task:, caseRef:)."""

    async def disclose(door: Any, nodes: Sequence[FieldNode], fragments: dict, key: str, task: str,
                       case_ref: str) -> Node:
        paths = typed.paths_of(nodes, fragments, st.id)
        try:
            return Node(await door.subject(task, st.id, key, case_ref, paths), "")
        except OneScreenError as err:
            raise gql_error(err) from None

    async def resolve(_root: Any, info: GraphQLResolveInfo, key: str, task: str, case_ref: str) -> Node:
        return await disclose(info.context, info.field_nodes, info.fragments, key, task, case_ref)

    # The key argument is named per subject type: citizen(rrn:), parcel(pnu:).
    return GraphQLField(typed.types[st.id], resolve=resolve, extensions={"disclose": disclose}, args={
        st.key_arg: GraphQLArgument(GraphQLNonNull(GraphQLID), out_name="key"),
        "task": GraphQLArgument(GraphQLNonNull(GraphQLID)),
        "caseRef": GraphQLArgument(GraphQLNonNull(GraphQLString), out_name="case_ref"),
    }, description=f"{st.label_en} ({st.label}) by {st.key_label_en}, for a task")
