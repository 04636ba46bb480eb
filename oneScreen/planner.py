"""Turns the allowed fields of a request into one fetch per ledger per stage.

Owns invariants 2 and 3: a denied field never reaches a fetch (the planner
only ever sees allowed paths), and each ledger is asked once per stage for
all the subjects that need the same columns, for exactly those columns (and
the ledger's last-modified column, where the catalog names one: the date
of the record shown as the source's lastUpdated, never a field).
A path `citizen.residence > building.parcel > parcel.area` takes three
stages: segment i of every path is read in stage i.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from .catalog import Field, Ledger

Path = tuple[Field, ...]
SubjectRef = tuple[str, str]  # (subject type, key)
Demand = Mapping[SubjectRef, Iterable[Path]]


@dataclass(frozen=True)
class Fetch:
    """One read of one ledger: these keys, these columns (the key column is implied)."""

    ledger: Ledger
    keys: tuple[str, ...]
    columns: tuple[str, ...]


def plan_stage(demand: Demand) -> list[Fetch]:
    """The fetches of one stage: the first segment of every path, grouped by ledger.

    Subjects that need the same columns of a ledger share one fetch. (Only
    differently shaped selections of one ledger in one request, e.g. two
    aliased typed queries asking for different fields, make a second fetch:
    merging them would read columns a subject did not ask for.)
    """
    need: dict[str, dict[str, set[str]]] = {}
    ledgers: dict[str, Ledger] = {}
    for (_subject, key), paths in demand.items():
        for path in paths:
            f = path[0]
            ledgers[f.ledger.id] = f.ledger
            need.setdefault(f.ledger.id, {}).setdefault(key, set()).update(f.read_columns)
    fetches: list[Fetch] = []
    for ledger_id, by_key in need.items():
        groups: dict[tuple[str, ...], list[str]] = {}
        for key, columns in by_key.items():
            groups.setdefault(tuple(sorted(columns)), []).append(key)
        for columns, keys in groups.items():
            fetches.append(Fetch(ledgers[ledger_id], tuple(sorted(keys)), columns))
    return fetches


def next_demand(demand: Demand, link_value) -> dict[SubjectRef, set[Path]]:
    """The demand of the next stage: for every path that goes on, the linked subject and the rest.

    `link_value(link_field, key)` gives the key the link points to, or None.
    """
    out: dict[SubjectRef, set[Path]] = {}
    for (_subject, key), paths in demand.items():
        for path in paths:
            if len(path) < 2:
                continue
            target_key = link_value(path[0], key)
            if target_key is not None:
                out.setdefault((path[0].target, target_key), set()).add(path[1:])
    return out
