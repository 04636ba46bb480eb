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

from ..catalog import Catalog, Column, Field, SubjectType
from ..errors import BadValue, ConsentRequired, FieldDenied, LedgerPartial, LedgerUnavailable, OneScreenError
from ..policy import Status
from ..screen import BadCell, FieldResult
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
    # Items are dicts keyed by the GraphQL names; a cell holding a _Bad is a BAD_VALUE error at that cell.
    return GraphQLObjectType(pascal(subject) + pascal(f.name) + "Item",
                             {camel(c.name): GraphQLField(scalars[c.type], resolve=_cell(camel(c.name)))
                              for c in f.columns},
                             description=f"{f.label_en} ({f.label})")


class _Bad:
    """A record cell the typed API cannot give: its error, raised when (and only if) the cell is selected."""

    __slots__ = ("error",)

    def __init__(self, error: OneScreenError) -> None:
        self.error = error


def _cell(name: str) -> Callable[..., Any]:
    def resolve(item: dict, _info: GraphQLResolveInfo) -> Any:
        value = item.get(name)
        if type(value) is _Bad:
            raise gql_error(value.error)
        return value
    return resolve


INT32 = 2 ** 31  # GraphQL's Int is 32-bit: a wider integer is a bad value of its cell here (the screen query has it)


def _resolver(f: Field, is_record: bool) -> Callable[..., Any]:
    if f.is_link:
        fid = f.id + ">"

        def resolve_link(root: Node, _info: GraphQLResolveInfo) -> Node:
            return Node(root.results, root.prefix + fid)
        return resolve_link

    fid, many = f.id, f.cardinality == "many"
    if is_record:
        names = [(c, camel(c.name)) for c in f.columns]
        gql_names = {c.name: camel(c.name) for c in f.columns}

        def convert(value: Any, pid: str, bad: tuple[BadCell, ...]) -> Any:
            items = [{name: _scalar(c, row.get(c.name), pid, True) for c, name in names} for row in _as_list(value)]
            for b in bad:
                items[b.row or 0][gql_names[b.column]] = _Bad(BadValue(f"{pid}[{b.row or 0}].{b.column}", b.reason_en))
            return items if many else items[0]
    else:
        col = f.columns[0]
        if col.type == "integer":  # dates are ISO strings already (screen.convert)
            def convert(value: Any, pid: str, bad: tuple[BadCell, ...]) -> Any:
                out = [_scalar(col, v, pid) for v in value] if many else _scalar(col, value, pid)
                for v in (out if many else (out,)):
                    if type(v) is _Bad:
                        raise gql_error(v.error)
                return out
        else:
            convert = None  # type: ignore[assignment]

    def resolve(root: Node, _info: GraphQLResolveInfo) -> Any:
        pid = root.prefix + fid
        r = root.results.get(pid)
        if r is None:  # cannot happen: every selected path was decided
            raise gql_error(FieldDenied(pid, "not decided"))
        status = r.status
        if status is Status.OK or status is Status.MASKED or status is Status.PARTIAL:
            if r.partial is not None:  # a masked field keeps it: given whole, or not at all
                raise gql_error(LedgerPartial(r.source.ledger if r.source else "?", r.reason_en or "read in part"))
            if r.bad and not is_record:  # a list of non-null items cannot hold the bad one's null
                b = r.bad[0]
                raise gql_error(BadValue(pid if b.row is None else f"{pid}[{b.row}]", b.reason_en))
            value = r.value
            return value if convert is None or value is None else convert(value, pid, r.bad)
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


def _scalar(col: Column, v: Any, pid: str, column: bool = False) -> Any:
    """A value as the typed scalar holds it: an integer beyond GraphQL's 32 bits is a _Bad."""
    if col.type == "integer" and type(v) is int and not -INT32 <= v < INT32:
        return _Bad(BadValue(f"{pid}.{col.name}" if column else pid, "an integer beyond GraphQL's 32-bit Int: "
                             "read it with the screen query, or map the column as type string"))
    return v


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
