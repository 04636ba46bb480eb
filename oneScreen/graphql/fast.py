"""Compiled execution of typed queries: the common case without graphql-core's per-field machinery.

A typed query (`{ citizen(rrn:, task:, caseRef:) { name address { ... } } }`) is one async root
resolver that decides and fetches the whole selection (typed.py), then plain lookups for every leaf.
graphql-core executes those leaves through its general machinery (resolve info, paths, field
collection per object, incremental delivery bookkeeping): about a fifth of an all-cached screen's CPU.

`compile_query()` turns a validated document into a plan when it has exactly that shape, and
`Plan.run()` executes it with the same resolvers, the same argument and variable coercion
(graphql-core's own functions), the same scalar serialisation, the same null rules and the same errors,
located the same way and in the same order. Anything else (fragments, directives, several operations,
introspection, mutations, the static queries) returns None from `compile_query()` and is executed by
graphql-core. tests/test_fast.py runs generated queries both ways and requires identical responses and
audit material.

Only public graphql-core APIs (pinned to 3.3 in setup.cfg): the root is called through its field's
`extensions["disclose"]` (typed.py) without resolve info, leaves are serialised by their scalar's
`coerce_output_value` as graphql-core does, and the leaf and link resolvers in typed.py are called with
`info=None`: they must not use it.

Pays for itself: 5.371 M instructions per distinct-subject screen with it, 6.376 M without (Schema.compiled
= False): -15.8% (`python -m bench.icount REF --screens 200`, callgrind, c=16, 2026-12-04).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from graphql import (ExecutionResult, FieldNode, GraphQLError, GraphQLList, GraphQLNonNull, GraphQLObjectType,
                     GraphQLSchema, OperationDefinitionNode, OperationType, Undefined, get_argument_values,
                     get_variable_values, is_leaf_type, located_error)
from graphql.pyutils import inspect, is_iterable


def _complete_leaf(leaf: Any, value: Any) -> Any:
    """A leaf's value as graphql-core completes it (its executor's complete_leaf_value, same error text)."""
    coerced = leaf.coerce_output_value(value)
    if coerced is Undefined or coerced is None:
        raise TypeError(f"Expected `{inspect(leaf)}.coerce_output_value({inspect(value)})` to return non-nullable "
                        f"value, returned: {inspect(coerced)}")
    return coerced


@dataclass(frozen=True, slots=True)
class _Field:
    key: str  # response key (alias or name)
    name: str
    node: FieldNode
    resolve: Callable[..., Any] | None  # None: a record item's attribute (graphql-core's default resolver)
    is_list: bool
    item_non_null: bool
    leaf: Any  # the scalar type, or None for an object
    object_name: str | None  # the object type of an object field
    fields: tuple["_Field", ...] | None  # the object's selection (None for leaves)
    typename: bool = False  # __typename


@dataclass(frozen=True, slots=True)
class _Root:
    key: str
    node: FieldNode
    field: Any  # GraphQLField
    type_name: str
    fields: tuple[_Field, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    schema: GraphQLSchema
    operation: OperationDefinitionNode
    roots: tuple[_Root, ...]

    async def run(self, variables: dict | None, context: Any, hide_suggestions: bool = False) -> ExecutionResult:
        coerced = get_variable_values(self.schema, self.operation.variable_definitions or (), variables or {},
                                      hide_suggestions=hide_suggestions)
        if isinstance(coerced, list):
            return ExecutionResult(None, coerced)
        errors: list[GraphQLError] = []
        if len(self.roots) == 1:
            results = [await self._root(self.roots[0], coerced, context, errors, hide_suggestions)]
        else:
            results = await asyncio.gather(*(self._root(r, coerced, context, errors, hide_suggestions)
                                             for r in self.roots))
        return ExecutionResult({r.key: v for r, v in zip(self.roots, results)}, errors or None)

    async def _root(self, root: _Root, variables: Any, context: Any, errors: list[GraphQLError],
                    hide_suggestions: bool) -> Any:
        try:
            args = get_argument_values(root.field, root.node, variables, hide_suggestions=hide_suggestions)
            source = await root.field.extensions["disclose"](context, (root.node,), {}, **args)
            if source is None:
                return None
            return _object(root.fields, root.type_name, source, [root.key], errors)
        except Exception as raw:
            errors.append(located_error(raw, [root.node], [root.key]))
            return None


def _object(fields: tuple[_Field, ...], type_name: str, source: Any, path: list, errors: list[GraphQLError]) -> dict:
    out: dict[str, Any] = {}
    for f in fields:
        if f.typename:
            out[f.key] = type_name
            continue
        try:
            if f.resolve is not None:
                value = f.resolve(source, None)
            elif isinstance(source, Mapping):
                value = source.get(f.name)
            else:
                value = getattr(source, f.name, None)
            out[f.key] = None if value is None else _complete(f, type_name, value, path, errors)
        except Exception as raw:
            errors.append(located_error(raw, [f.node], [*path, f.key]))
            out[f.key] = None
    return out


def _complete(f: _Field, type_name: str, value: Any, parent: list, errors: list[GraphQLError]) -> Any:
    """`value` of field `f` completed. Its path (`parent` + its key) is made only where it is used: a single
    leaf's only for an error (_object), so a screen's 30 leaves make no list each."""
    if not f.is_list and f.leaf is not None:
        return _complete_leaf(f.leaf, value)
    path = [*parent, f.key]
    if not f.is_list:
        return _object(f.fields, f.object_name, value, path, errors)
    if not is_iterable(value):
        raise GraphQLError(f"Expected Iterable, but did not find one for field '{type_name}.{f.name}'.")
    out = []
    for i, item in enumerate(value):
        at = [*path, i]
        try:
            done = None if item is None else _named(f, item, at, errors)
            if done is None and f.item_non_null:
                raise TypeError(f"Cannot return null for non-nullable field {type_name}.{f.name}.")
        except Exception as raw:
            error = located_error(raw, [f.node], at)
            if f.item_non_null:
                raise error from None  # nulls the whole list, reported at the item (graphql-core's rule)
            errors.append(error)
            done = None
        out.append(done)
    return out


def _named(f: _Field, value: Any, path: list, errors: list[GraphQLError]) -> Any:
    if f.leaf is not None:
        return _complete_leaf(f.leaf, value)
    return _object(f.fields, f.object_name, value, path, errors)


def compile_query(schema: GraphQLSchema, roots: frozenset[str], document: Any) -> Plan | None:
    """A plan for a validated document that is one query of typed root fields only, else None."""
    if len(document.definitions) != 1:
        return None
    op = document.definitions[0]
    if (not isinstance(op, OperationDefinitionNode) or op.operation != OperationType.QUERY or op.directives
            or any(v.directives for v in op.variable_definitions or ())):
        return None
    query = schema.query_type
    out: list[_Root] = []
    keys: set[str] = set()
    for sel in op.selection_set.selections:
        if not isinstance(sel, FieldNode) or sel.directives or sel.name.value not in roots:
            return None
        key = (sel.alias or sel.name).value
        field = query.fields[sel.name.value]
        if key in keys or not isinstance(field.type, GraphQLObjectType):
            return None
        keys.add(key)
        fields = _compile_object(field.type, sel)
        if fields is None:
            return None
        out.append(_Root(key, sel, field, field.type.name, fields))
    return Plan(schema, op, tuple(out)) if out else None


def _compile_object(obj: GraphQLObjectType, node: FieldNode) -> tuple[_Field, ...] | None:
    if node.selection_set is None:
        return None
    out: list[_Field] = []
    keys: set[str] = set()
    for sel in node.selection_set.selections:
        if not isinstance(sel, FieldNode) or sel.directives or sel.arguments:
            return None
        name, key = sel.name.value, (sel.alias or sel.name).value
        if key in keys:
            return None  # merged fields: graphql-core's business
        keys.add(key)
        if name == "__typename":
            out.append(_Field(key, name, sel, None, False, False, None, None, None, typename=True))
            continue
        field = obj.fields.get(name)
        if field is None or field.args:
            return None
        t, is_list, item_non_null = field.type, False, False
        if isinstance(t, GraphQLNonNull):
            return None  # typed fields are nullable; anything else is not this plan's shape
        if isinstance(t, GraphQLList):
            is_list, t = True, t.of_type
            if isinstance(t, GraphQLNonNull):
                item_non_null, t = True, t.of_type
            if isinstance(t, (GraphQLList, GraphQLNonNull)):
                return None
        if isinstance(t, GraphQLObjectType):
            sub = _compile_object(t, sel)
            if sub is None:
                return None
            out.append(_Field(key, name, sel, field.resolve, is_list, item_non_null, None, t.name, sub))
        elif sel.selection_set is None and is_leaf_type(t):
            out.append(_Field(key, name, sel, field.resolve, is_list, item_non_null, t, None, None))
        else:
            return None
    return tuple(out)
