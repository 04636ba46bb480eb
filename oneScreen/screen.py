"""Recombines ledger rows into field values, and field values into the one screen.

`resolve()` runs the stages of a request (planner -> gateway, following
links) and walks every requested path through what was read. A ledger that
failed makes only its own fields UNAVAILABLE (invariant 5); a subject a
ledger does not know makes its fields NOT_FOUND; a ledger read only in part
(a page limit) makes its many-row fields PARTIAL, never OK.

Values are shown as they are or honestly absent: text is trimmed, and a
blank is no value (None) whatever the type; a value that cannot be shown as
its catalog type (a date that is no date, an integer beyond what JSON
clients hold exactly, a number that would be rounded) is a bad value of its
own cell, with a reason that never repeats it, and costs nothing else.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from .catalog import Column, Field, Ledger, path_id
from .gateway import Gateway, KeyResult, KeyRows, LedgerFailure
from .planner import Fetch, Path, next_demand, plan_stage
from .policy import Decision, Status, Task

# The integers every JSON client holds exactly (JavaScript's Number.MAX_SAFE_INTEGER): beyond them a browser
# rounds a number without a word, and orjson refuses one beyond 64 bits outright.
SAFE_INTEGER = 2 ** 53 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+(?:\.0*)?")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")


# Source and FieldResult are made for every field of every screen: named tuples, which are as immutable as a
# frozen dataclass and cost a sixth to build (1.86 -> 0.3 us each; a frozen dataclass sets each attribute
# through object.__setattr__).
class Source(NamedTuple):
    agency: str
    agency_name: str
    agency_name_en: str
    ledger: str
    ledger_name: str
    ledger_name_en: str
    read_at: datetime | None  # when the service read the ledger (or the cache entry's read)
    cached: bool
    last_updated: str | None = None  # the record's own last-modified date (ISO), where the ledger keeps one


class BadCell(NamedTuple):
    """One value of a field that cannot be shown as its catalog type: where it is and why (never the value)."""

    row: int | None  # the row of a many-row field (None: the field's one value)
    column: str | None  # the record column's name (None: a scalar field)
    reason: str
    reason_en: str


class FieldResult(NamedTuple):
    status: Status
    value: Any = None
    reason: str | None = None
    reason_en: str | None = None
    source: Source | None = None
    bad: tuple[BadCell, ...] = ()  # cells shown as None because their value cannot be shown (see convert)
    partial: tuple[int, int] | None = None  # (rows read, rows the ledger has) when it was read only in part
    rule: str | None = None  # the policy rule that denied it without a read (explain.py); None for a read field
    # a record field with `person:` (catalog.py): the key of the person each row shown is about, row by row (None
    # where the column is blank), for their own audit record (disclose.py); never shown, never in a response
    persons: tuple[str | None, ...] = ()


class NotConvertible(ValueError):
    """A source value cannot be shown as its column's catalog type. The reasons never repeat the value."""

    def __init__(self, reason: str, reason_en: str) -> None:
        super().__init__(reason_en)
        self.reason, self.reason_en = reason, reason_en


@dataclass(frozen=True, slots=True)
class OneStage:
    """Paths without links, planned once: what each ledger is asked for, and which fields its rows answer."""

    groups: tuple[tuple[Ledger, tuple[str, ...], tuple[tuple[str, Field], ...]], ...]  # ledger, columns, fields
    order: tuple[str, ...]  # the path ids, in the request's order


def one_stage(paths: Sequence[Path]) -> OneStage | None:
    """The plan of `paths` when none of them follows a link (what plan_stage would make for one subject), else None."""
    if any(len(p) != 1 for p in paths):
        return None
    by_ledger: dict[str, tuple[Ledger, set[str], list[tuple[str, Field]]]] = {}
    for (f,) in paths:
        _, columns, fields = by_ledger.setdefault(f.ledger.id, (f.ledger, set(), []))
        columns.update(f.read_columns)
        fields.append((path_id((f,)), f))
    return OneStage(tuple((l, tuple(sorted(c)), tuple(fs)) for l, c, fs in by_ledger.values()),
                    tuple(path_id(p) for p in paths))


@dataclass(frozen=True)
class SubjectRequest:
    """One subject of a request and the allowed paths to read for it (denied paths never get here)."""

    subject_type: str
    key: str
    paths: tuple[Path, ...]
    plan: OneStage | None = None  # one_stage(paths), when the caller planned it once for many requests


async def resolve(requests: Sequence[SubjectRequest], gateway: Gateway) -> list[dict[str, FieldResult]]:
    """Read everything `requests` need, stage by stage; one dict of results (by path id) per request."""
    if len(requests) == 1 and requests[0].plan is not None:
        return [await _resolve_one_stage(requests[0].key, requests[0].plan, gateway)]
    store: dict[tuple[int, str, str], KeyResult] = {}
    demand: dict[tuple[str, str], set[Path]] = {}
    for req in requests:
        demand.setdefault((req.subject_type, req.key), set()).update(req.paths)
    stage = 0
    while demand:
        results = await gateway.run(plan_stage(demand))
        for (ledger_id, key), result in results.items():
            store[(stage, ledger_id, key)] = result
        s = stage

        def link_value(link: Field, key: str, s: int = s) -> str | None:
            result = store.get((s, link.ledger.id, key))
            if isinstance(result, KeyRows) and result.rows:
                return link_key(result.rows[0].get(link.columns[0].column))
            return None

        demand = next_demand(demand, link_value)
        stage += 1
    sources: dict = {}
    return [{path_id(p): _walk(store, p, req.key, sources) for p in req.paths} for req in requests]


def link_key(raw: Any) -> str | None:
    """The subject key a link column holds: its text, trimmed; blank or absent: no key (NOT_FOUND)."""
    if raw is None:
        return None
    key = raw.strip() if isinstance(raw, str) else str(raw)
    return key or None


async def _resolve_one_stage(key: str, plan: OneStage, gateway: Gateway) -> dict[str, FieldResult]:
    """`resolve` of one subject whose paths need no link: the same reads and results, without planning
    stages or walking paths (an all-cached screen spent a quarter of its CPU there)."""
    results = await gateway.run([Fetch(ledger, (key,), columns) for ledger, columns, _ in plan.groups])
    out: dict[str, FieldResult] = {}
    for ledger, _, fields in plan.groups:
        result = results.get((ledger.id, key))
        if isinstance(result, LedgerFailure) or result is None or not result.rows:
            for pid, f in fields:
                out[pid] = _walk_failed(f, result)
            continue
        source = _source(fields[0][1], result)
        for pid, f in fields:
            out[pid] = _read(f, result, source)
    return {pid: out[pid] for pid in plan.order}


def _walk(store: Mapping[tuple[int, str, str], KeyResult], path: Path, key: str, sources: dict) -> FieldResult:
    for depth, f in enumerate(path):
        result = store.get((depth, f.ledger.id, key))
        if isinstance(result, LedgerFailure) or result is None or not result.rows:
            return _walk_failed(f, result)
        if f.is_link:
            target = link_key(result.rows[0].get(f.columns[0].column))
            if target is None:
                return FieldResult(Status.NOT_FOUND, None, f"{f.label} 정보가 없습니다", f"no {f.label_en}",
                                   _source(f, result))
            key = target
            continue
        source = sources.get((f.ledger.id, id(result)))  # one per ledger read, shared by its fields
        if source is None:
            source = sources[(f.ledger.id, id(result))] = _source(f, result)
        return _read(f, result, source)
    raise AssertionError("a path ends in a field, never in a link")  # the policy loader guarantees it


def _read(f: Field, result: KeyRows, source: Source) -> FieldResult:
    """Field `f` from its ledger's rows: OK, or PARTIAL when it shows rows and the ledger was read only in part.
    A value that cannot be shown is a bad value of its own cell (`bad`), never of the field or the ledger."""
    value, bad = extract(f, result.rows)
    total = result.total
    persons = () if f.person is None else \
        tuple(link_key(r.get(f.person[0])) for r in (result.rows if f.cardinality == "many" else result.rows[:1]))
    if total is not None and f.cardinality == "many" and total > len(result.rows):
        n = len(result.rows)
        return FieldResult(Status.PARTIAL, value,
                           f"{f.ledger.name}에 {total:,}건이 있으나 {n:,}건만 읽었습니다 "
                           f"(나머지는 연계 설정의 쪽 수 한도 밖입니다)",
                           f"{n:,} of {total:,} rows read from {f.ledger.name_en} "
                           f"(the rest lies beyond the connector's page limit)", source, bad, (n, total),
                           persons=persons)
    return FieldResult(Status.OK, value, None, None, source, bad, persons=persons)


def _walk_failed(f: Field, result: KeyResult | None) -> FieldResult:
    """The result of a field whose ledger read failed, or found nothing for the subject."""
    if isinstance(result, LedgerFailure):
        return FieldResult(Status.UNAVAILABLE, None,
                           f"{f.ledger.agency.name} {f.ledger.name} 조회 실패: {result.reason_ko}",
                           f"{f.ledger.agency.name_en} {f.ledger.name_en} unavailable: {result.reason}",
                           _source(f, None))
    return FieldResult(Status.NOT_FOUND, None, f"{f.ledger.name}에 해당 자료가 없습니다",
                       f"no record in {f.ledger.name_en}", _source(f, result))


def _source(f: Field, result: KeyResult | None) -> Source:
    l = f.ledger
    if not isinstance(result, KeyRows):
        return Source(l.agency.id, l.agency.name, l.agency.name_en, l.id, l.name, l.name_en, None, False)
    updated = last_updated(l, result.rows) if l.last_modified_column else None
    return Source(l.agency.id, l.agency.name, l.agency.name_en, l.id, l.name, l.name_en, result.as_of,
                  result.cached, updated)


def last_updated(ledger: Ledger, rows: Iterable[Mapping[str, Any]]) -> str | None:
    """The latest last-modified date (ISO date, or date and time) among `rows`, from the ledger's
    `last_modified_column`; None when no row holds one that reads as a date."""
    fmt = ledger.last_modified_format
    timed = fmt is not None and any(d in fmt for d in ("%H", "%I", "%M", "%S", "%T", "%X", "%c"))
    latest: str | None = None
    for row in rows:
        raw = row.get(ledger.last_modified_column)
        try:
            if isinstance(raw, (datetime, date)):
                text = raw.isoformat()
            elif isinstance(raw, str) and raw.strip():
                when = raw.strip()
                if fmt:
                    parsed = datetime.strptime(when, fmt)
                    text = parsed.isoformat() if timed else parsed.date().isoformat()
                else:
                    try:
                        text = date.fromisoformat(when).isoformat()
                    except ValueError:
                        text = datetime.fromisoformat(when).isoformat()
            else:
                continue
        except ValueError:
            continue  # metadata, not a field: a last-modified value that is no date is left out
        if latest is None or text > latest:
            latest = text
    return latest


def extract(f: Field, rows: Sequence[Mapping[str, Any]]) -> tuple[Any, tuple[BadCell, ...]]:
    """The catalog value of field `f` from its ledger rows (a list for cardinality many), and its bad cells:
    a value that cannot be shown is None in its own cell, and named (row, column, reason) in the second part."""
    many = f.cardinality == "many"
    if not many:
        rows = rows[:1]  # one value: the first row's (30 of them on a typical screen: no list made)
        if f.type != "record":
            col = f.columns[0]
            try:
                return convert(col, rows[0].get(col.column)), ()
            except _UNCONVERTIBLE as exc:
                return None, (_bad_cell(None, None, exc),)
    bad: list[BadCell] = []
    if f.type == "record":
        values: list[Any] = []
        for i, r in enumerate(rows):
            item = {}
            for c in f.columns:
                try:
                    item[c.name] = convert(c, r.get(c.column))
                except _UNCONVERTIBLE as exc:
                    item[c.name] = None
                    bad.append(_bad_cell(i if many else None, c.name, exc))
            values.append(item)
        return (values if many else values[0]), tuple(bad)
    col = f.columns[0]
    values = []
    for i, r in enumerate(rows):
        try:
            values.append(convert(col, r.get(col.column)))
        except _UNCONVERTIBLE as exc:
            values.append(None)
            bad.append(_bad_cell(i, None, exc))
    return values, tuple(bad)


# what converting a value may raise: each is a bad value of its cell, never an error of the screen
_UNCONVERTIBLE = (TypeError, ValueError, ArithmeticError)


def _bad_cell(row: int | None, column: str | None, exc: Exception) -> BadCell:
    if isinstance(exc, NotConvertible):
        return BadCell(row, column, exc.reason, exc.reason_en)
    return BadCell(row, column, "값 형식이 카탈로그와 다릅니다", "the value does not have the catalog's type")


def convert(col: Column, raw: Any) -> Any:
    """A source value as the catalog type says (JSON-ready: dates as ISO strings, integers within the range JSON
    clients hold exactly). Text is trimmed; blank text is no value (None) for every type. NotConvertible when the
    value cannot be shown as the type without changing it."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.strip()
        if not raw:
            return None
    t = col.type
    if t == "string":
        if isinstance(raw, str):
            if not raw.isascii():
                _check_text(raw)
            return raw
        if isinstance(raw, (dict, list, tuple, bytes, bytearray, memoryview)):
            raise NotConvertible("글자가 아닌 값(목록이나 구조)입니다", "not text (a list or a structure)")
        return str(raw)
    if t == "integer":
        return _integer(raw)
    if t == "number":
        return _number(raw)
    if t == "boolean":
        if isinstance(raw, str):
            if raw.lower() in ("1", "true", "y", "yes"):
                return True
            if raw.lower() in ("0", "false", "n", "no"):
                return False
            raise NotConvertible("참/거짓 값이 아닙니다", "not a yes/no value")
        if isinstance(raw, (bool, int)):
            return bool(raw)
        raise NotConvertible("참/거짓 값이 아닙니다", "not a yes/no value")
    if t == "date":
        if isinstance(raw, datetime):
            return raw.date().isoformat()
        if isinstance(raw, date):
            return raw.isoformat()
        text = str(raw)
        try:
            if col.format:
                return datetime.strptime(text, col.format).date().isoformat()
            return date.fromisoformat(text).isoformat()
        except ValueError:
            expected = col.format or "ISO 8601 (YYYY-MM-DD)"
            raise NotConvertible(f"날짜가 아닙니다 (카탈로그의 형식: {expected})",
                                 f"not a date (the catalog's format: {expected})") from None
    raise ValueError(f"unknown type {t}")


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (from a JSON "\ud800" escape): no JSON encoder sends them
        raise NotConvertible("글자로 읽을 수 없는 문자가 섞여 있습니다",
                             "holds characters that are not valid text") from None


_TOO_LONG_INTEGER = ("자릿수가 많아 화면이 정확히 나타낼 수 없는 정수입니다 (±9,007,199,254,740,991 초과). 식별자라면 "
                     "카탈로그에서 string으로 정의해야 합니다",
                     "an integer with more digits than a screen shows exactly (beyond ±9,007,199,254,740,991); "
                     "an identifier must be mapped as type string in the catalog")


def _integer(raw: Any) -> int:
    if isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str):
        if not _INTEGER.fullmatch(raw):
            raise NotConvertible("정수가 아닙니다", "not an integer")
        digits = raw.split(".", 1)[0].lstrip("+-").lstrip("0")
        if len(digits) > 16:  # beyond the safe range whatever they say (and int() of thousands of digits is slow)
            raise NotConvertible(*_TOO_LONG_INTEGER)
        value = int(raw.split(".", 1)[0])
    elif isinstance(raw, (float, Decimal)):
        if not math.isfinite(raw) or raw != int(raw):
            raise NotConvertible("정수가 아닙니다", "not an integer")
        value = int(raw)
    else:
        raise NotConvertible("정수가 아닙니다", "not an integer")
    if not -SAFE_INTEGER <= value <= SAFE_INTEGER:
        raise NotConvertible(*_TOO_LONG_INTEGER)
    return value


def _number(raw: Any) -> float:
    if isinstance(raw, float):
        value = raw
    elif isinstance(raw, bool):
        return float(raw)
    elif isinstance(raw, (int, Decimal)):
        try:
            value = float(raw)
        except OverflowError:  # an int beyond any float
            raise NotConvertible(*_ROUNDED) from None
        if math.isfinite(value) and Decimal(repr(value)) != raw:
            raise NotConvertible(*_ROUNDED)
    elif isinstance(raw, str):
        if len(raw) > 64 or not _NUMBER.fullmatch(raw):
            raise NotConvertible("숫자가 아닙니다", "not a number")
        value = float(raw)
        try:
            if math.isfinite(value) and Decimal(repr(value)) != Decimal(raw):
                raise NotConvertible(*_ROUNDED)
        except InvalidOperation:
            raise NotConvertible("숫자가 아닙니다", "not a number") from None
    else:
        raise NotConvertible("숫자가 아닙니다", "not a number")
    if not math.isfinite(value):
        raise NotConvertible("유한한 숫자가 아닙니다", "not a finite number")
    return value


_ROUNDED = ("자릿수가 많아 그대로 보이면 반올림되는 숫자입니다. 식별자라면 카탈로그에서 string으로 정의해야 합니다",
            "a number with more digits than a screen keeps: shown, it would be rounded; an identifier must be "
            "mapped as type string in the catalog")


def display(value: Any) -> str | None:
    """A plain-text rendering for screens and print (records are rendered as tables by clients)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "예" if value else "아니오"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, list):
        if any(isinstance(v, dict) for v in value):
            return None
        return ", ".join(display(v) or "" for v in value)
    return str(value)


# ---------------------------------------------------------------- the screen


@dataclass(frozen=True)
class ScreenField:
    id: str
    label: str
    label_en: str
    result: FieldResult


@dataclass(frozen=True)
class ScreenSection:
    title: str
    title_en: str
    fields: tuple[ScreenField, ...]


def denied(decision: Decision) -> FieldResult:
    return FieldResult(decision.status, None, decision.reason, decision.reason_en, None, rule=decision.rule)


def assemble(task: Task, results: Mapping[str, FieldResult]) -> tuple[ScreenSection, ...]:
    """The task's sections in order, every requested field with its value or status (empty sections dropped)."""
    sections = (
        ScreenSection(sec.title, sec.title_en, tuple(
            ScreenField(tf.id, tf.target.label, tf.target.label_en, results[tf.id]) for tf in sec.fields
            if tf.id in results))
        for sec in task.sections)
    return tuple(s for s in sections if s.fields)
