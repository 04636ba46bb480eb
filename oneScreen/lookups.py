"""The lookup budget: identifier lookups that find nothing, counted per caller and per organisation.

A subject named by its identifier (a key the caller typed, not a handle from a search) is a guess until a
ledger confirms it: a caller may confirm an RRN their task denies by guessing it. Each such lookup spends
one unit of a sliding-window budget before anything is read, and gets it back when the subject is found (or
nothing was learnt); past the budget, lookups by identifier are refused (`LOOKUP_BUDGET_EXCEEDED`, 429).
Owns the lookup-budget part of invariant 11 behind `LookupBudget`; `InProcessLookupBudget` counts in one
process only (a demo, or ONESCREEN_COUNTERS=per-process); counters.RedisLookupBudget is the shared one.
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

from cachetools import TTLCache

from .errors import OneScreenError


class LookupBudgetExceeded(OneScreenError):
    """Too many lookups by identifier found nothing lately: further ones wait `retry_after` seconds."""

    code = "LOOKUP_BUDGET_EXCEEDED"

    def __init__(self, scope: str, limit: int, window: float, retry_after: float, *, in_flight: bool = False) -> None:
        self.scope, self.limit, self.window, self.retry_after = scope, limit, window, retry_after
        whose = "your" if scope == "user" else "your organisation's"
        if in_flight:
            what = f"{limit} of {whose} lookups by identifier are in flight or found nobody lately"
        else:
            what = f"{limit} of {whose} lookups by identifier found nobody within {window / 60:g} minutes"
        super().__init__(f"{what}; lookups by identifier are refused for {math.ceil(retry_after)} s (search by "
                         "name and birth date, or use a search result)")


@dataclass(frozen=True, slots=True)
class Spent:
    """One lookup by identifier in flight, counted against each of `keys` until it is settled."""

    keys: tuple[tuple[str, str], ...]
    token: str = ""  # a shared store's name for this lookup (counters.RedisLookupBudget)


class LookupBudget(Protocol):
    async def spend(self, user: str, org: str, *, checked: bool = True) -> Spent:
        """Count one lookup by identifier as in flight, before it is read. `checked`: LookupBudgetExceeded when
        the lookups that found nothing plus those in flight reach a limit; a request checks its first lookup
        and counts the others of the same request (a batch task's) unchecked, so a batch proceeds whole."""

    async def settle(self, spent: Spent, found: bool | None) -> None:
        """The lookup is over: `found` False (a ledger has no such subject) keeps it as a miss for the window;
        True (found) or None (nothing learnt: denied before a read, ledger unavailable) lets it go."""


class _Log:
    """One user's or organisation's lookups: the times of misses within the window, and those in flight."""

    __slots__ = ("misses", "in_flight")

    def __init__(self) -> None:
        self.misses: deque[float] = deque()
        self.in_flight = 0


class InProcessLookupBudget:
    """Sliding-window logs per user and per organisation, in this process's memory.

    `per_user` / `per_org`: lookups that may find nothing within `window` seconds (0: no limit of that kind).
    Memory is bounded: at most `max_keys` users and organisations, each holding at most its limit of times
    (plus a batch request's size). Time comes from `clock`.
    """

    def __init__(self, per_user: int, per_org: int, window: float, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.limits = {"user": per_user, "organisation": per_org}
        self.window, self.clock = float(window), clock
        self._logs: TTLCache = TTLCache(maxsize=max_keys, ttl=self.window, timer=clock)

    async def spend(self, user: str, org: str, *, checked: bool = True) -> Spent:
        now = self.clock()
        keys = tuple((scope, who) for scope, who in (("user", user), ("organisation", org))
                     if who and self.limits[scope] > 0)
        logs = []
        for scope, who in keys:  # every scope is checked before any is counted
            log = self._logs.get((scope, who)) or _Log()
            while log.misses and log.misses[0] <= now - self.window:
                log.misses.popleft()
            limit = self.limits[scope]
            if checked and len(log.misses) + log.in_flight >= limit:
                # the oldest miss leaves the window then; lookups in flight settle within a request's time
                spent = len(log.misses) >= limit
                wait = log.misses[0] + self.window - now if spent else 1.0
                raise LookupBudgetExceeded(scope, limit, self.window, max(1.0, wait), in_flight=not spent)
            logs.append(log)
        for key, log in zip(keys, logs):
            log.in_flight += 1
            self._logs[key] = log  # (re)starts the key's expiry: an idle key goes after one window
        return Spent(keys)

    async def settle(self, spent: Spent, found: bool | None) -> None:
        now = self.clock()
        for key in spent.keys:
            log = self._logs.get(key)
            if log is None:  # expired or evicted meanwhile
                continue
            log.in_flight = max(0, log.in_flight - 1)
            if found is False:
                log.misses.append(now)

    def misses(self, scope: str, who: str) -> int:
        """Lookups that found nothing within the window (for tests and operators)."""
        now = self.clock()
        log = self._logs.get((scope, who))
        return 0 if log is None else sum(1 for at in log.misses if at > now - self.window)
