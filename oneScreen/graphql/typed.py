"""Typed GraphQL objects generated from the catalog: Citizen, Building, Parcel, ...

One GraphQL field per catalog field of a subject type (the last segment of
its id in camelCase), nested objects for links, so an API client selects
exactly the attributes it needs. Every selected path goes through
Context.disclose(); a path outside the task's set resolves to null with a
FIELD_DENIED error.
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from datetime import date
from typing import Annotated, Any, Callable, Optional

import strawberry
from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode
from strawberry.types import Info

from ..catalog import Catalog, Column, Field, SubjectType
from ..errors import BadRequest, ConsentRequired, FieldDenied, LedgerUnavailable, OneScreenError
from ..policy import Status
from ..screen import FieldResult
from .types import gql_error

SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "date": date}


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
    classes: dict[str, type]  # subject type -> strawberry type
    fields_by_gql: dict[str, dict[str, Field]]  # subject type -> GraphQL name -> field
    _paths: dict = dc_field(default_factory=dict, repr=False)  # id(FieldNode) -> (node, paths)

    def paths_of(self, node: FieldNode, fragments: dict, subject: str) -> list[tuple[Field, ...]]:
        """The catalog paths a root field's selection asks for, memoised per parsed query (the parser cache
        hands back the same nodes for the same query text, so a repeated query is walked once)."""
        hit = self._paths.get(id(node))
        if hit is not None and hit[0] is node:
            return hit[1]
        paths = _ast_paths(node.selection_set, fragments, subject, self, (), ())
        if len(self._paths) > 4096:
            self._paths.clear()
        self._paths[id(node)] = (node, paths)
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


def build(catalog: Catalog) -> TypedSchema:
    classes = {s: type(pascal(s), (), {"__doc__": st.label_en, "__annotations__": {}})
               for s, st in catalog.subject_types.items()}
    by_gql: dict[str, dict[str, Field]] = {s: {} for s in catalog.subject_types}
    for s, fields in catalog.fields_by_subject.items():
        cls = classes[s]
        for f in fields:
            name = camel(f.name)
            by_gql[s][name] = f
            item_cls = None
            if f.is_link:
                gtype: Any = Optional[classes[f.target]]
            elif f.type == "record":
                gtype = item_cls = _record_type(s, f)
            else:
                gtype = SCALARS[f.type]
            if not f.is_link and f.cardinality == "many":
                gtype = list[gtype]  # type: ignore[valid-type]
            if not f.is_link:
                gtype = Optional[gtype]
            setattr(cls, f.name, strawberry.field(resolver=_resolver(f, item_cls), graphql_type=gtype, name=name,
                                                  description=f"{f.label} / {f.label_en}"))
    for cls in classes.values():
        strawberry.type(cls)
    return TypedSchema(classes, by_gql)


def _record_type(subject: str, f: Field) -> type:
    cls = type(pascal(subject) + pascal(f.name) + "Item", (), {
        "__annotations__": {c.name: Optional[SCALARS[c.type]] for c in f.columns}})
    return strawberry.type(cls, description=f"{f.label_en} ({f.label})")


def _resolver(f: Field, item_cls: type | None) -> Callable[..., Any]:
    if f.is_link:
        def resolve_link(root: Node) -> Any:
            return Node(root.results, f"{root.prefix}{f.id}>")
        return resolve_link

    def resolve(root: Node) -> Any:
        pid = root.prefix + f.id
        r = root.results.get(pid)
        if r is None:  # cannot happen: every selected path was decided
            raise gql_error(FieldDenied(pid, "not decided"))
        if r.status is Status.DENIED:
            raise gql_error(FieldDenied(pid, r.reason_en or "denied"))
        if r.status is Status.CONSENT_REQUIRED:
            raise gql_error(ConsentRequired(pid, r.reason_en or "consent required"))
        if r.status is Status.UNAVAILABLE:
            raise gql_error(LedgerUnavailable(r.source.ledger if r.source else "?", r.reason_en or "unavailable"))
        if r.status is Status.NOT_FOUND or r.value is None:
            return None
        return _typed_value(f, r.value, item_cls)
    return resolve


def _typed_value(f: Field, value: Any, item_cls: type | None) -> Any:
    if item_cls is not None:
        items = [item_cls(**{c.name: _scalar(c, row.get(c.name)) for c in f.columns}) for row in _as_list(value)]
        return items if f.cardinality == "many" else items[0]
    col = f.columns[0]
    if f.cardinality == "many":
        return [_scalar(col, v) for v in value]
    return _scalar(col, value)


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _scalar(col: Column, v: Any) -> Any:
    if v is not None and col.type == "date":
        return date.fromisoformat(v)
    return v


def root_field(st: SubjectType, typed: TypedSchema) -> Any:
    """The typed root query of a subject type, e.g. citizen(rrn:, task:, caseRef:)."""
    cls = typed.classes[st.id]

    async def resolve(info: Info, key: strawberry.ID, task: strawberry.ID, case_ref: str) -> Optional[Any]:
        ctx = info.context
        try:
            t = ctx.snapshot.policies.task_for(ctx.caller, str(task))
            if t.subject != st.id:
                raise BadRequest(f"task {t.code} is about {t.subject}, not {st.id}")
            subject_key = ctx.check_subject(st.id, str(key))
            ctx.check_case_ref(case_ref)
        except OneScreenError as err:
            raise gql_error(err) from None
        paths = typed.paths_of(info._raw_info.field_nodes[0], info._raw_info.fragments, st.id)
        results = await ctx.disclose(t, st.id, subject_key, paths, case_ref)
        return Node(results, "")

    # The key argument is named per subject type: citizen(rrn:), parcel(pnu:).
    resolve.__annotations__ = {**resolve.__annotations__,
                               "key": Annotated[strawberry.ID, strawberry.argument(name=st.key_arg)]}
    return strawberry.field(resolver=resolve, graphql_type=Optional[cls],
                            description=f"{st.label_en} ({st.label}) by {st.key_label_en}, for a task")
