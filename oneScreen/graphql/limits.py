"""Query limits: a hostile query is refused during validation, before anything executes.

Depth, aliases and tokens use strawberry's own limiters; this module adds
what they do not cover: the number of subjects one request may ask for, a
cost (selected fields, summed over subjects), the number of fields overall,
and directive overloading. Fragments are expanded with a guard, so repeated
or circular fragments cost their expansion and cannot loop.
"""
from __future__ import annotations

from dataclasses import dataclass

from graphql import (FieldNode, FragmentDefinitionNode, FragmentSpreadNode, GraphQLError, InlineFragmentNode,
                     OperationDefinitionNode, SelectionSetNode, ValidationRule)

from ..errors import counted

# root fields that read subjects' data; the generic screen costs as many fields as the largest task
SUBJECT_ROOTS_FIXED = {"screen": 60, "subjects": 20, "subjectSearch": 20}


@dataclass(frozen=True)
class Limits:
    max_depth: int = 12
    max_aliases: int = 200
    max_tokens: int = 20_000
    max_subjects: int = 100
    max_cost: int = 6_000
    max_fields: int = 5_000
    max_directives: int = 50


def cost_rule(limits: Limits, subject_roots: frozenset[str]) -> type[ValidationRule]:
    class RequestCost(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_args) -> None:
            fragments = {d.name.value: d for d in self.context.document.definitions
                         if isinstance(d, FragmentDefinitionNode)}
            counter = _Counter(fragments, limits)
            subjects = cost = 0
            try:
                for root in counter.fields(node.selection_set, ()):
                    name = root.name.value
                    if name in subject_roots or name in SUBJECT_ROOTS_FIXED:
                        subjects += 1
                        cost += SUBJECT_ROOTS_FIXED.get(name) or max(1, counter.leaves(root.selection_set, ()))
                    else:
                        counter.leaves(root.selection_set, ())
            except _TooBig as exc:
                self.report_error(GraphQLError(str(exc), node, extensions={"code": "QUERY_TOO_COMPLEX"}))
                return
            for what, value, limit in (("subject", subjects, limits.max_subjects), ("unit of cost", cost, limits.max_cost)):
                if value > limit:
                    self.report_error(GraphQLError(
                        f"the request asks for {counted(value, what, what.replace('unit', 'units'))}; at most {limit} "
                        f"{'is' if limit == 1 else 'are'} allowed in one request",
                        node, extensions={"code": "QUERY_TOO_COMPLEX"}))
                    return
    return RequestCost


class _TooBig(Exception):
    pass


class _Counter:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode], limits: Limits) -> None:
        self.fragments, self.limits = fragments, limits
        self.seen_fields = 0
        self.directives = 0

    def fields(self, selection_set: SelectionSetNode | None, stack: tuple[str, ...]) -> list[FieldNode]:
        """The field nodes of a selection set, fragments expanded (a fragment inside itself expands to nothing)."""
        out: list[FieldNode] = []
        if selection_set is None:
            return out
        for sel in selection_set.selections:
            self.directives += len(sel.directives or ())
            if self.directives > self.limits.max_directives:
                raise _TooBig(f"more than {self.limits.max_directives} directives in one request")
            if isinstance(sel, FieldNode):
                self.seen_fields += 1
                if self.seen_fields > self.limits.max_fields:
                    raise _TooBig(f"more than {self.limits.max_fields} fields in one request")
                out.append(sel)
            elif isinstance(sel, InlineFragmentNode):
                out.extend(self.fields(sel.selection_set, stack))
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                if name in stack or name not in self.fragments:
                    continue  # cycles and unknown fragments are reported by the standard rules
                out.extend(self.fields(self.fragments[name].selection_set, stack + (name,)))
        return out

    def leaves(self, selection_set: SelectionSetNode | None, stack: tuple[str, ...]) -> int:
        total = 0
        for f in self.fields(selection_set, stack):
            total += self.leaves(f.selection_set, stack) if f.selection_set else 1
        return total
