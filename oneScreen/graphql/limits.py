"""Query limits: one linear pass over the parsed document refuses a query that asks for too much work, before any
validation rule runs. Owns invariant 10: nothing a client sends can hold the event loop for long.

What bounds each kind of work a client can cause, in the order a request meets it:
- the body: http.py reads at most MAX_BODY bytes (variables at most MAX_VARIABLES) and stops reading there;
- the query text: `Schema.prepare` refuses more than `max_chars` characters before the lexer sees them, and
  graphql-core's parser stops at `max_tokens` tokens and at 200 levels of nesting;
- this pass (`Check`): every selection of every definition is looked at twice (once for the fragments it
  spreads, once for its figures); a fragment's figures are computed once and added wherever it is spread, so a
  fragment spreading another twice, 40 levels deep, costs 40 fragments' work, not 2^40; a fragment that spreads
  itself is refused. Only then, and only when the expanded document has at most `max_fields` selections, is it
  expanded into the places of its response (for repeats and copies): at most `max_fields` selections more;
- validation (graphql-core's rules, after this pass): linear in the document and in its expansion, which
  `max_fields` bounds; OverlappingFieldsCanBeMergedRule also compares every pair of fields that meet at one
  place of the response: `max_repeats` bounds those pairs to about max_repeats^2 / 2, and graphql-core meters the
  rest of that rule's work itself (MERGE_BUDGET below: pairs of fragments, which this pass does not model);
- execution: a field with a selection is asked once per parent (an alias copy would repeat its work; the
  subject roots excepted, whose copies ask for other subjects), so a response holds each datum once, plus at
  most `max_subjects` subject lookups of at most `max_cost` fields in all; each error is located by bisection
  (`schema.Text`), not by scanning the text again; every wait has its own timeout;
- error messages: redact.py lexes the text once more (at most `max_chars`) when graphql-core made an error.
`python -m bench hostile` measures the CPU of the worst cases at the default limits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from graphql import (DocumentNode, FieldNode, FragmentDefinitionNode, FragmentSpreadNode, GraphQLError,
                     InlineFragmentNode, OperationDefinitionNode, SelectionSetNode)
from graphql.validation.rules import overlapping_fields_can_be_merged

from ..settings import Limits  # noqa: F401 - the limits are settings (read once there); checked here

# root fields that read subjects' data; the generic screen costs as many fields as the largest task
SUBJECT_ROOTS_FIXED = {"screen": 60, "subjects": 20, "subjectSearch": 20}
QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"

# OverlappingFieldsCanBeMergedRule counts its comparisons against this budget and aborts the validation when it
# is spent ("can be raised or lowered by assigning to this module attribute", graphql-core's own words). Its
# default, 500,000 units, is seconds of CPU; a unit is about 5 us here. The GraphiQL introspection query and a
# 100-subject batch spend none, max_repeats (30) repeated fields 600; 40 fragments spread side by side in one
# selection set spend 2,420 and a chain of 50 fragments 2,600 (pairs of fragments: quadratic, and not modelled
# by `Check`). A process-wide setting of graphql-core, so a constant here rather than a per-app limit.
MERGE_BUDGET = 2_500
overlapping_fields_can_be_merged.MAX_COMPLEXITY_BUDGET = MERGE_BUDGET


def too_complex(message: str, nodes: object = None) -> GraphQLError:
    return GraphQLError(message, nodes, extensions={"code": QUERY_TOO_COMPLEX})


@dataclass(slots=True)
class Figures:
    """What a selection set asks for, its fragments expanded."""

    fields: int = 0  # selections
    aliases: int = 0
    directives: int = 0
    depth: int = 0
    leaves: int = 0  # fields without a selection: the cost of a subject root
    subjects: int = 0  # subject root fields at this level, when it is the operation's root
    cost: int = 0

    def add(self, other: "Figures") -> None:
        """Add a selection set of the same level (an inline fragment, a fragment spread)."""
        self.fields += other.fields
        self.aliases += other.aliases
        self.directives += other.directives
        self.depth = max(self.depth, other.depth)
        self.leaves += other.leaves
        self.subjects += other.subjects
        self.cost += other.cost


# (figure, limit, what the message calls it), checked in this order
CHECKS = (("depth", "max_depth", "levels of fields nested below a root field"),
          ("fields", "max_fields", "selections (fields, fragment spreads and inline fragments)"),
          ("aliases", "max_aliases", "aliases"), ("directives", "max_directives", "directives"),
          ("subjects", "max_subjects", "subjects"), ("cost", "max_cost", "fields of subjects"))


class Check:
    """One request's document against the limits: `refusal()` is the error to answer with, or None."""

    def __init__(self, document: DocumentNode, limits: Limits, subject_roots: Iterable[str]) -> None:
        self.document, self.limits = document, limits
        self.subject_roots = frozenset(subject_roots).union(SUBJECT_ROOTS_FIXED)
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.memo: dict[str, Figures] = {}
        self.used: set[str] = set()  # fragments some definition spreads
        self.spreads: dict[str, list[str]] = {}

    def refusal(self) -> GraphQLError | None:
        order = self._fragment_order()
        if isinstance(order, GraphQLError):
            return order
        for name in order:
            self.memo[name] = self._definition(self.fragments[name])
        # every operation, and every fragment definition no spread reaches (unused, or a duplicate name): the
        # validation rules look at those too
        roots, total = [], Figures()
        for d in self.document.definitions:
            if isinstance(d, OperationDefinitionNode) or (
                    isinstance(d, FragmentDefinitionNode) and self.fragments[d.name.value] is not d):
                roots.append(d)
                total.add(self._definition(d))
        for name, d in self.fragments.items():
            if name not in self.used:
                roots.append(d)
                total.add(self.memo[name])
        for figure, limit_name, what in CHECKS:
            value, limit = getattr(total, figure), getattr(self.limits, limit_name)
            if value > limit:
                shown = value if value < 10**9 else "over a billion"
                return too_complex(f"the request asks for {shown} {what}; at most {limit} are allowed in one request "
                                   "(fragments counted wherever they are spread)")
        return self._places(roots)

    def _definition(self, d: OperationDefinitionNode | FragmentDefinitionNode) -> Figures:
        out = self._figures(d.selection_set)
        out.directives += len(d.directives or ()) + sum(len(v.directives or ()) for v in
                                                       getattr(d, "variable_definitions", None) or ())
        return out

    def _figures(self, selection_set: SelectionSetNode) -> Figures:
        """Figures of one selection set; spreads add their fragment's memoised figures (recursion: the parser's
        200 levels of nesting at most)."""
        out = Figures()
        roots = self.subject_roots
        for sel in selection_set.selections:
            out.fields += 1
            out.directives += len(sel.directives or ())
            if isinstance(sel, FieldNode):
                out.aliases += sel.alias is not None
                name = sel.name.value
                sub = None
                if sel.selection_set is None:
                    out.leaves += 1
                else:
                    sub = self._figures(sel.selection_set)
                    out.fields += sub.fields
                    out.aliases += sub.aliases
                    out.directives += sub.directives
                    out.leaves += sub.leaves
                    if not name.startswith("__"):  # introspection's depth is MaxIntrospectionDepthRule's
                        out.depth = max(out.depth, sub.depth + 1)
                if name in roots:
                    out.subjects += 1
                    out.cost += SUBJECT_ROOTS_FIXED.get(name) or max(1, sub.leaves if sub else 0)
            elif isinstance(sel, InlineFragmentNode):
                out.add(self._figures(sel.selection_set))
            else:
                known = self.memo.get(sel.name.value)  # unknown fragments: KnownFragmentNamesRule reports them
                if known is not None:
                    self.used.add(sel.name.value)
                    out.add(known)
        return out

    def _fragment_order(self) -> list[str] | GraphQLError:
        """The fragments, each after every fragment it spreads; a fragment that spreads itself is refused."""
        self.spreads = {name: self._spreads(f.selection_set) for name, f in self.fragments.items()}
        done: set[str] = set()
        order: list[str] = []
        for start in self.spreads:
            if start in done:
                continue
            path, on_path, todo = [start], {start}, [iter(self.spreads[start])]
            while todo:
                for name in todo[-1]:
                    if name not in self.spreads or name in done:
                        continue
                    if name in on_path:
                        cycle = " -> ".join([*path[path.index(name):], name])
                        return too_complex(f"Cannot spread fragment '{name}' within itself ({cycle}): its expansion "
                                           "would never end", [self.fragments[name]])
                    path.append(name)
                    on_path.add(name)
                    todo.append(iter(self.spreads[name]))
                    break
                else:
                    finished = path.pop()
                    on_path.discard(finished)
                    done.add(finished)
                    order.append(finished)
                    todo.pop()
        return order

    def _spreads(self, selection_set: SelectionSetNode) -> list[str]:
        out, stack = [], [selection_set]
        while stack:
            for sel in stack.pop().selections:
                if isinstance(sel, FragmentSpreadNode):
                    out.append(sel.name.value)
                elif sel.selection_set is not None:
                    stack.append(sel.selection_set)
        return out

    def _places(self, roots: list) -> GraphQLError | None:
        """Expand the document (within max_fields selections: checked before) into the places of its response.

        A selection of a place already selected merges into it: graphql-core's OverlappingFieldsCanBeMergedRule
        compares every pair of them, so their number is limited. A field with a selection asked again under
        another response key in the same parent (an alias copy) would run its resolvers and lists again: refused,
        except for the subject roots, whose copies ask for other subjects."""
        places: dict[tuple[int, str], int] = {}
        first_key: dict[tuple[int, str], str] = {}
        repeats = 0
        stack = [(d.selection_set, i, True) for i, d in enumerate(roots)]
        next_place = len(roots)
        while stack:
            selection_set, parent, at_root = stack.pop()
            for sel in selection_set.selections:
                if isinstance(sel, FieldNode):
                    name = sel.name.value
                    key = sel.alias.value if sel.alias else name
                    place = places.get((parent, key))
                    if place is None:
                        place = places[parent, key] = next_place
                        next_place += 1
                    else:
                        repeats += 1
                        if repeats > self.limits.max_repeats:
                            return too_complex(
                                f"the request selects places of its response again more than "
                                f"{self.limits.max_repeats} times (e.g. '{key}'); at most {self.limits.max_repeats} "
                                "repeated selections are allowed in one request", [sel])
                    if sel.selection_set is not None:
                        if not (at_root and name in self.subject_roots) \
                                and first_key.setdefault((parent, name), key) != key:
                            return too_complex(
                                f"'{name}' is asked for under two response keys in one selection; a field with a "
                                "selection is asked for once per parent (an alias copy repeats all its work)", [sel])
                        stack.append((sel.selection_set, place, False))
                elif isinstance(sel, InlineFragmentNode):
                    stack.append((sel.selection_set, parent, at_root))
                else:
                    fragment = self.fragments.get(sel.name.value)
                    if fragment is not None:
                        stack.append((fragment.selection_set, parent, at_root))
        return None

