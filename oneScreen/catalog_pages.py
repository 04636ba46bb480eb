"""Paged search over the running catalog and tasks, for the admin pages at national scale (405 tasks, 25,000 fields).

The admin pages used to load the whole catalog at once (7.2 s at 25,000 fields); they now ask admin_http.py's
GET /admin/catalog/fields, /admin/catalog/picker and /admin/catalog/tasks for one bounded page of search results
(by id, Korean or English label, ledger, agency, sensitivity, use). An index per snapshot (built once, on the
first search) keeps a search one pass over prepared lower-case text. Nothing here reads a ledger: only catalog
and policy definitions, never a value.
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Iterable

from .catalog import Catalog, Field
from .policy import Policies

MAX_LIMIT = 200  # results one request may ask for; more is refused (400) before any search runs
DEFAULT_LIMIT = 50
MAX_QUERY = 200  # characters of search text
MAX_DEPTH = 3  # links the picker follows from a task's subject (citizen > building > parcel), as the editor does


class QueryRefused(ValueError):
    """A search request out of bounds (limit, offset or text): answered 400 before any work."""


def bounds(params: Any) -> tuple[int, int, str]:
    """(offset, limit, lower-case search text) of a request's query parameters, checked before any search."""
    raw_limit = params.get("limit") or str(DEFAULT_LIMIT)
    raw_offset = params.get("offset") or "0"
    if not raw_limit.isdigit() or not raw_offset.isdigit():
        raise QueryRefused("limit and offset are whole numbers")
    limit, offset = int(raw_limit), int(raw_offset)
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryRefused(f"limit must be 1..{MAX_LIMIT} (ask for the next page with offset)")
    text = (params.get("q") or "").strip()
    if len(text) > MAX_QUERY:
        raise QueryRefused(f"the search text is longer than {MAX_QUERY} characters")
    return offset, limit, text.lower()


@dataclass
class _Index:
    catalog: Catalog
    policies: Policies
    fields: list[tuple[Field, str]]  # each field with its searchable text
    used_by: dict[str, list[str]]  # field id -> task codes naming it (on any path)
    tasks: list[tuple[str, str]]  # (code, searchable text) in code order


_lock = threading.Lock()
_last: list[_Index] = []


def index(cat: Catalog, pol: Policies) -> _Index:
    """The search index of one snapshot (the last one is kept: a snapshot changes only on a new version)."""
    with _lock:
        if _last and _last[0].catalog is cat and _last[0].policies is pol:
            return _last[0]
    used: dict[str, set[str]] = {}
    task_text = []
    for code, t in sorted(pol.tasks.items()):
        agencies = set()
        for tf in t.fields.values():
            for f in tf.path:
                used.setdefault(f.id, set()).add(code)
                agencies.add(f.ledger.agency.id)
                agencies.add(f.ledger.id)
        task_text.append((code, "\n".join([code, t.name, t.name_en or "", t.legal_basis or "", *sorted(agencies)])
                          .lower()))
    fields = [(f, "\n".join([f.id, f.label, f.label_en or "", f.ledger.id, f.ledger.name, f.ledger.name_en or "",
                             f.ledger.agency.id, f.ledger.agency.name, f.ledger.agency.name_en or "",
                             *f.source_columns]).lower()) for f in cat.fields.values()]
    built = _Index(cat, pol, fields, {k: sorted(v) for k, v in used.items()}, task_text)
    with _lock:
        _last[:] = [built]
    return built


def entry(f: Field, used_by: Iterable[str]) -> dict[str, Any]:
    """A field as the admin pages show it (the shape of the GraphQL catalog's CatalogEntry)."""
    return {"id": f.id, "label": f.label, "labelEn": f.label_en, "type": f.type, "sensitivity": f.sensitivity,
            "ledger": f.ledger.id, "agency": f.ledger.agency.id, "cardinality": f.cardinality,
            "mask": dict(f.mask) if isinstance(f.mask, dict) else f.mask, "target": f.target,
            "sourceColumns": list(f.source_columns), "usedBy": list(used_by),
            "columns": [{"name": c.name, "label": c.label, "labelEn": c.label_en, "type": c.type}
                        for c in f.columns] if f.type == "record" else []}


def search_fields(cat: Catalog, pol: Policies, params: Any, offset: int, limit: int, text: str) -> dict[str, Any]:
    """One page of the catalog's fields matching the text and the filters (ledger, agency, sensitivity, usage,
    ids: a comma-separated list of field ids, for the fields a task already names)."""
    ix = index(cat, pol)
    ids = [i for i in (params.get("ids") or "").split(",") if i]
    if ids:
        if len(ids) > MAX_LIMIT:
            raise QueryRefused(f"ask for at most {MAX_LIMIT} ids at once")
        found = [cat.fields[i] for i in dict.fromkeys(ids) if i in cat.fields]
        return {"total": len(found), "offset": 0, "limit": limit, "all": len(ix.fields),
                "fields": [entry(f, ix.used_by.get(f.id, ())) for f in found]}
    ledger, agency = params.get("ledger") or "", params.get("agency") or ""
    sensitivity, usage = params.get("sensitivity") or "", params.get("usage") or ""
    hits = []
    for f, hay in ix.fields:
        if ledger and f.ledger.id != ledger or agency and f.ledger.agency.id != agency:
            continue
        if sensitivity and f.sensitivity != sensitivity:
            continue
        if usage == "used" and f.id not in ix.used_by or usage == "unused" and f.id in ix.used_by:
            continue
        if text and text not in hay:
            continue
        hits.append(f)
    return {"total": len(hits), "offset": offset, "limit": limit, "all": len(ix.fields),
            "fields": [entry(f, ix.used_by.get(f.id, ())) for f in hits[offset:offset + limit]]}


def ledger_counts(cat: Catalog) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in cat.fields.values():
        out[f.ledger.id] = out.get(f.ledger.id, 0) + 1
    return out


def search_picker(cat: Catalog, pol: Policies, subject: str, offset: int, limit: int, text: str) -> dict[str, Any]:
    """One page of the fields a task about `subject` can name: its own and those its links reach (MAX_DEPTH),
    each as the path id the task file names ("citizen.residence>building.main_purpose") with the path's labels."""
    if subject not in cat.subject_types:
        raise QueryRefused(f"unknown subject type {subject!r}")
    ix = index(cat, pol)
    hay = {f.id: h for f, h in ix.fields}
    total = 0
    page: list[dict[str, Any]] = []

    def walk(subj: str, links: list[Field], seen: set[str]) -> None:
        nonlocal total
        own = [f for f in cat.fields_by_subject.get(subj, ()) if not f.is_link]
        for f in own:
            path_text = "\n".join([*(hay[x.id] for x in links), hay[f.id]])
            if text and text not in path_text:
                continue
            if offset <= total < offset + limit:
                page.append({"id": ">".join([*(x.id for x in links), f.id]),
                             "labels": [[x.label, x.label_en] for x in [*links, f]], "subject": subj,
                             "links": [entry(x, ix.used_by.get(x.id, ())) for x in links],
                             "field": entry(f, ix.used_by.get(f.id, ()))})
            total += 1
        if len(links) >= MAX_DEPTH:
            return
        for link in cat.fields_by_subject.get(subj, ()):
            if link.is_link and link.target not in seen:
                walk(link.target, [*links, link], seen | {link.target})

    walk(subject, [], {subject})
    return {"total": total, "offset": offset, "limit": limit, "items": page}


def search_tasks(cat: Catalog, pol: Policies, params: Any, offset: int, limit: int, text: str) -> dict[str, Any]:
    """One page of the tasks matching the text (code, Korean or English name, legal basis, a ledger or agency
    one of its fields is read from); `code` gives one task's full definition, as the editor opens it."""
    from .graphql.catalog_api import _definition  # the definition as its file writes it (the editor's base)

    ix = index(cat, pol)
    code = params.get("code") or ""
    if code:
        t = pol.tasks.get(code)
        return {"total": int(t is not None), "offset": 0, "limit": limit,
                "tasks": [] if t is None else [_camel(dataclasses.asdict(_definition(t, cat)))]}
    hits = [c for c, hay in ix.tasks if not text or text in hay]
    return {"total": len(hits), "offset": offset, "limit": limit, "all": len(ix.tasks),
            "tasks": [{"code": c, "name": pol.tasks[c].name, "nameEn": pol.tasks[c].name_en,
                       "subject": pol.tasks[c].subject, "fieldCount": len(pol.tasks[c].fields)}
                      for c in hits[offset:offset + limit]]}


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel_key(k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _camel_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p.title() for p in rest)
