"""Finding subjects for a task: by key, by a group of exact fields, or by substring.

A search reads only the search ledger's search and `show` columns, and a match shows only the `show` fields
the task's policy allows: the door (disclose.Door.search) calls it, and it reads those fields through the door.
A search finds only subjects within the caller's jurisdiction for the task: a key that does not exist and a
subject of another district are the same miss (no match, no disclosure, no audit record, the same lookup
budget spent), so a search never tells whether someone exists outside the caller's district.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from connectors.base import ConnectorError

from .agreements import read_verdict, require_read
from .catalog import Field, SubjectType
from .errors import BadRequest, LedgerUnavailable
from .policy import Status, Task
from .screen import FieldResult

if TYPE_CHECKING:
    from .disclose import Door

SCAN_LIMIT = 200  # keys a search reads at most to count its matches; beyond, the total is "at least"
_SEPARATORS = str.maketrans("", "", " -.")


@dataclass(frozen=True)
class Found:
    """A search's answer: the first matches (key, shown fields) in a stable order, and how many matched in all
    within the caller's jurisdiction (`exact` False: at least `total`, more were not counted)."""

    matches: list[tuple[str, dict[str, FieldResult]]]
    total: int
    exact: bool

    @property
    def truncated(self) -> bool:
        return self.total > len(self.matches) or not self.exact


def as_key(st: SubjectType, text: str) -> str | None:
    """The subject key the text is, as caseworkers type it: with or without the hyphen or spaces
    (`9001011234567`, `900101 1234567` and `900101-1234567` are one RRN); None if it is no key."""
    if st.key_pattern.match(text):
        return text
    digits = text.translate(_SEPARATORS)
    if not digits.isascii() or not digits.isdigit():
        return None
    for candidate in (digits, f"{digits[:6]}-{digits[6:]}"):
        if st.key_pattern.match(candidate):
            return candidate
    return None


def _normalise(f: Field, text: str) -> str:
    """Accept what caseworkers type: dates as 1990-01-01, 19900101 or 1990.01.01."""
    if f.type != "date":
        return text
    digits = "".join(ch for ch in text if ch.isdigit())
    try:
        parsed = datetime.strptime(digits, "%Y%m%d").date()
    except ValueError:
        raise BadRequest(f"{f.label_en} must be a date like 1990-01-01") from None
    if f.format:
        return parsed.strftime(f.format)
    return parsed.isoformat()


async def search(ctx: "Door", task: Task, subject_type: str, query: str, limit: int) -> Found:
    """The first `limit` matches within the caller's jurisdiction, sorted, and their total. Keys read only to
    count or to find that a subject is outside the jurisdiction are neither disclosed nor audited."""
    catalog = ctx.snapshot.catalog
    st = catalog.subject_types.get(subject_type)
    if st is None:
        raise BadRequest(f"the subject type must be one of {', '.join(sorted(catalog.subject_types))}")
    query = " ".join((query or "").split())
    if not query or len(query) > 200:
        raise BadRequest("the search text must be 1-200 characters")
    key = as_key(st, query)
    if key is not None:  # searched by key: a lookup by identifier (a subject named, budget spent)
        key = ctx.check_subject(subject_type, key, task)
        # outside the jurisdiction or unknown: the same miss (the budget counts both as a lookup that found nothing)
        keys, exact = ([key] if await ctx.in_region(task, subject_type, key, outside_is_miss=True) is not False
                       else []), True
    else:
        digits = query.translate(_SEPARATORS)
        if len(digits) >= 10 and digits.isascii() and digits.isdigit():
            raise BadRequest(f"the search text is not a valid {st.key_label_en} ({len(digits)} digits)")
        if st.search is None:
            raise BadRequest(f"{st.label_en} can only be found by {st.key_label_en}")
        found = await _find_keys(ctx, task, st.search, query, SCAN_LIMIT + 1)
        exact = len(found) <= SCAN_LIMIT
        found = found[:SCAN_LIMIT]
        inside = await asyncio.gather(*(ctx.in_region(task, subject_type, k, outside_is_miss=True) for k in found))
        keys = [k for k, ok in zip(found, inside) if ok is not False]
    show = [catalog.path(fid) for fid in (st.search.show if st.search else [])]
    if not show:
        return Found([(k, {}) for k in keys[:limit]], len(keys), exact)
    # gathered, so every match shown joins one batched read per ledger
    shown = keys[:limit]
    all_results = await asyncio.gather(*(ctx.disclose(task, subject_type, k, show, "") for k in shown))
    matches, missing = [], set()
    for k, results in zip(shown, all_results):
        if all(r.status is Status.NOT_FOUND for r in results.values()):
            missing.add(k)  # an unknown key: no match, and no record of a disclosure that disclosed nothing
        else:
            matches.append((k, results))
    if missing:
        ctx.forget_search(subject_type, missing)
    return Found(matches, len(keys) - len(missing), exact)


async def _find_keys(ctx: "Door", task: Task, spec, query: str, limit: int) -> list[str]:
    """The keys whose fields match: the fields matched and those sorted by are read only under a sharing agreement
    in force for the task and the caller, as a field shown is (a search by a field no agreement covers is
    ReadNotAgreed, nothing read; a sort field no agreement covers is left out of the order)."""
    catalog = ctx.snapshot.catalog
    ledger = catalog.ledgers[spec.ledger]
    tokens = query.split()
    equals: dict[str, str] | None = None
    matched: list[Field] = []
    for group in spec.by:
        if len(group) == len(tokens) and len(group) > 1:
            matched = [catalog.fields[fid] for fid in group]
            equals = {f.columns[0].column: _normalise(f, tok) for f, tok in zip(matched, tokens)}
            break
    contains: dict[str, str] = {}
    if equals is None:
        if not spec.contains:
            raise BadRequest("search by " + " or ".join(" + ".join(g) for g in spec.by))
        if len(query) < 2:
            raise BadRequest("search text must have at least 2 characters")
        matched = [catalog.fields[fid] for fid in spec.contains]
        contains = {f.columns[0].column: query for f in matched}
    agreements = ctx.snapshot.policies.agreements
    require_read(agreements, matched, task.code, ctx.caller, ctx.day, "a search")
    # sorted by what a match shows (the search ledger's own `show` columns) that may be read, then by key
    order = [f.columns[0].column for f in (catalog.fields[fid] for fid in spec.show)
             if f.ledger.id == ledger.id and len(f.columns) == 1
             and read_verdict(agreements, f, task.code, ctx.caller, ctx.day).ok]
    try:
        rows = await ctx.snapshot.gateway.search(ledger, equals or {}, contains, [], limit, order)
    except ConnectorError as exc:
        raise LedgerUnavailable(ledger.id, exc.reason) from None
    return [str(r[ledger.key_column]) for r in rows]
