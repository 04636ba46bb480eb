"""Finding subjects for a task: by key, by a group of exact fields, or by substring.

A search reads only the search ledger's search and `show` columns, and a
match shows only the `show` fields the task's policy allows: the door
(disclose.Door.search) calls it, and it reads those fields through the door.
"""
from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING

from connectors.base import ConnectorError

from .catalog import Field
from .errors import BadRequest, LedgerUnavailable
from .policy import Status, Task
from .screen import FieldResult

if TYPE_CHECKING:
    from .disclose import Door


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


async def search(ctx: "Door", task: Task, subject_type: str, query: str, limit: int
                 ) -> tuple[list[tuple[str, dict[str, FieldResult]]], bool]:
    """The first `limit` matches, and whether more subjects matched (the list was cut: the text should be
    narrower). The ledger is asked for one more row than `limit`, which is neither disclosed nor audited."""
    catalog = ctx.snapshot.catalog
    st = catalog.subject_types.get(subject_type)
    if st is None:
        raise BadRequest(f"the subject type must be one of {', '.join(sorted(catalog.subject_types))}")
    query = (query or "").strip()
    if not query or len(query) > 200:
        raise BadRequest("the search text must be 1-200 characters")
    if st.key_pattern.match(query):  # searched by key: a lookup by identifier (a subject named, budget spent)
        keys = [ctx.check_subject(subject_type, query, task)]
    else:
        if st.search is None:
            raise BadRequest(f"{st.label_en} can only be found by {st.key_label_en}")
        keys = await _find_keys(ctx, st.search, query, limit + 1)
    truncated, keys = len(keys) > limit, keys[:limit]
    show = [catalog.path(fid) for fid in (st.search.show if st.search else [])]
    if not show:
        return [(key, {}) for key in keys], truncated
    # gathered, so every match joins one batched read per ledger
    all_results = await asyncio.gather(*(ctx.disclose(task, subject_type, key, show, "") for key in keys))
    return [(key, results) for key, results in zip(keys, all_results)
            if not all(r.status is Status.NOT_FOUND for r in results.values())], truncated  # unknown key: no match


async def _find_keys(ctx: "Door", spec, query: str, limit: int) -> list[str]:
    catalog = ctx.snapshot.catalog
    ledger = catalog.ledgers[spec.ledger]
    tokens = query.split()
    equals: dict[str, str] | None = None
    for group in spec.by:
        if len(group) == len(tokens) and len(group) > 1:
            fields = [catalog.fields[fid] for fid in group]
            equals = {f.columns[0].column: _normalise(f, tok) for f, tok in zip(fields, tokens)}
            break
    contains: dict[str, str] = {}
    if equals is None:
        if not spec.contains:
            raise BadRequest("search by " + " or ".join(" + ".join(g) for g in spec.by))
        if len(query) < 2:
            raise BadRequest("search text must have at least 2 characters")
        contains = {catalog.fields[fid].columns[0].column: query for fid in spec.contains}
    try:
        rows = await ctx.snapshot.gateway.search(ledger, equals or {}, contains, [], limit)
    except ConnectorError as exc:
        raise LedgerUnavailable(ledger.id, exc.reason) from None
    return [str(r[ledger.key_column]) for r in rows]
