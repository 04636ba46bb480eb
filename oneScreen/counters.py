"""Counters every pod must agree on: rate limits and lookup budgets, in Redis (or in one process, for a demo).

Owns invariant 11 for rate limits and lookup budgets: with ONESCREEN_REDIS_URL they are counted in Redis, so a
limit of N a minute is N for the whole service, not N per pod. Each check is one round trip (one EVALSHA of a
short Lua script: GCRA for the rate limits, sorted-set sliding windows for the lookup budget), bounded by
ONESCREEN_REDIS_TIMEOUT (invariant 10). When Redis cannot answer, rate limits fail OPEN (requests go on,
counted in onescreen_shared_counter_failures_total) and the lookup budget fails CLOSED (lookups by identifier
are refused, LOOKUP_BUDGET_UNAVAILABLE, before anything is read). A small breaker keeps a dead Redis from
costing every request a timeout: after a failure Redis is not asked again for `cooldown` seconds, and one log
line says so.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Callable, Protocol

from .errors import OneScreenError
from .http import RateLimiter
from .lookups import InProcessLookupBudget, LookupBudget, LookupBudgetExceeded, Spent

log = logging.getLogger("onescreen.counters")


class SharedCountersUnavailable(OneScreenError):
    """Redis did not answer within its bound (or the breaker is open after it did not)."""

    code = "SHARED_COUNTERS_UNAVAILABLE"


class LookupBudgetUnavailable(OneScreenError):
    """The shared lookup budget cannot be read: lookups by identifier are refused (fail closed), nothing read."""

    code = "LOOKUP_BUDGET_UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__("lookups by identifier are unavailable for a moment (the lookup budget cannot be "
                         "checked); nothing was read. Try again shortly, or use a search result")


class RateLimits(Protocol):
    async def check(self, user: str, org: str) -> tuple[str, float] | None:
        """None if the request may go on (it is counted), else (scope, seconds until one would be admitted)."""


class InProcessRateLimits:
    """Token buckets in this process's memory (http.RateLimiter): a limit holds per process."""

    def __init__(self, user_per_min: int, org_per_min: int) -> None:
        self.user, self.org = RateLimiter(user_per_min), RateLimiter(org_per_min)

    async def check(self, user: str, org: str) -> tuple[str, float] | None:
        for scope, limiter, key in (("user", self.user, user), ("organisation", self.org, org)):
            wait = limiter.check(key)
            if wait is not None:
                return scope, wait
        return None


# GCRA (generic cell rate algorithm) over every key at once: each key holds its theoretical arrival time (TAT,
# ms). A request is admitted when no key's TAT is more than its tolerance ahead of now; then every key moves on
# by its interval. KEYS: the keys; ARGV[1]: now in ms (-1: the server's clock); then per key: interval, tolerance.
GCRA = """
local now = tonumber(ARGV[1])
if now < 0 then local t = redis.call('TIME'); now = t[1] * 1000 + math.floor(t[2] / 1000) end
local tats = {}
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local late = tat - tonumber(ARGV[2 * i + 1]) - now
  if late > 0 then return {i, math.ceil(late)} end
  tats[i] = tat + tonumber(ARGV[2 * i])
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, tats[i], 'PX', math.ceil(tats[i] - now) + 1000)
end
return {0, 0}
"""

# The lookup budget: per scope a sorted set of misses (score: when) and one of lookups in flight (score: when
# they started; one that never settles leaves after `flight`). KEYS: misses and flight key per scope; ARGV: now
# (ms, -1: the server's clock), window ms, flight ms, checked (1/0), token, then the limit per scope.
SPEND = """
local now = tonumber(ARGV[1])
if now < 0 then local t = redis.call('TIME'); now = t[1] * 1000 + math.floor(t[2] / 1000) end
local window, flight = tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, #KEYS / 2 do
  local misses, going = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('ZREMRANGEBYSCORE', misses, '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', going, '-inf', now - flight)
  if ARGV[4] == '1' then
    local limit = tonumber(ARGV[5 + i])
    local missed = redis.call('ZCARD', misses)
    if missed + redis.call('ZCARD', going) >= limit then
      if missed >= limit then
        local oldest = redis.call('ZRANGE', misses, 0, 0, 'WITHSCORES')
        return {i, math.ceil(tonumber(oldest[2]) + window - now), 1}
      end
      return {i, 1000, 0}
    end
  end
end
for i = 1, #KEYS / 2 do
  redis.call('ZADD', KEYS[2 * i], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[2 * i], flight)
end
return {0, 0, 0}
"""

# The lookup is over: out of flight; a miss (ARGV[4] == '1') stays for the window. ARGV: now, window, token, miss.
SETTLE = """
local now = tonumber(ARGV[1])
if now < 0 then local t = redis.call('TIME'); now = t[1] * 1000 + math.floor(t[2] / 1000) end
for i = 1, #KEYS / 2 do
  redis.call('ZREM', KEYS[2 * i], ARGV[3])
  if ARGV[4] == '1' then
    redis.call('ZADD', KEYS[2 * i - 1], now, ARGV[3])
    redis.call('PEXPIRE', KEYS[2 * i - 1], tonumber(ARGV[2]))
  end
end
return 0
"""


class SharedRedis:
    """One Redis client with a bound on every call and a breaker; scripts run by EVALSHA (loaded once, loaded
    again on NOSCRIPT, as redis-py's registered scripts do)."""

    def __init__(self, url: str, timeout: float, prefix: str, metrics: Any = None, *, cooldown: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError
        self._errors = (RedisError, OSError, TimeoutError)
        self.client = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                              health_check_interval=0, client_name="onescreen-counters")
        self.timeout, self.prefix, self.metrics = timeout, prefix, metrics
        self.cooldown, self.clock = cooldown, clock
        self.scripts = {name: self.client.register_script(text)
                        for name, text in (("gcra", GCRA), ("spend", SPEND), ("settle", SETTLE))}
        self._closed_until = 0.0  # the breaker: Redis is not asked before this time after a failure
        self._down = False

    async def run(self, counter: str, script: str, keys: list[str], args: list[Any]) -> Any:
        """The script's answer, or SharedCountersUnavailable (counted, and logged once per outage and cooldown)."""
        if self._down and self.clock() < self._closed_until:
            self._count(counter)
            raise SharedCountersUnavailable("Redis did not answer a moment ago")
        try:
            async with asyncio.timeout(self.timeout):
                answer = await self.scripts[script](keys=keys, args=args)
        except self._errors as exc:
            self._closed_until = self.clock() + self.cooldown
            self._down = True
            self._count(counter)
            log.error("shared counters unreachable: rate limits let requests through, lookups by identifier are "
                      "refused; Redis is asked again in a few seconds",
                      extra={"operation": "counters." + counter, "outcome": "failed",
                             "reason": type(exc).__name__})
            raise SharedCountersUnavailable(f"Redis did not answer ({type(exc).__name__})") from None
        if self._down:
            self._down = False
            log.warning("shared counters answer again", extra={"operation": "counters." + counter, "outcome": "ok"})
        return answer

    def _count(self, counter: str) -> None:
        if self.metrics is not None:
            m = self.metrics
            m.bound(m.shared_counter_failures, counter).inc()

    async def close(self) -> None:
        try:
            await self.client.aclose()
        except Exception:  # a client made on another event loop (a multi-worker parent): nothing of ours to keep
            pass


class RedisRateLimits:
    """Rate limits per user and per organisation, shared by every pod: GCRA, both keys in one EVALSHA.

    Same figures as the in-process buckets: `per_minute` a minute, in bursts of a sixth of a minute's worth."""

    def __init__(self, redis: SharedRedis, user_per_min: int, org_per_min: int, *,
                 clock: Callable[[], float] | None = None) -> None:
        self.redis, self.clock = redis, clock
        self.limits = [(scope, _gcra(n)) for scope, n in (("user", user_per_min), ("org", org_per_min)) if n > 0]

    async def check(self, user: str, org: str) -> tuple[str, float] | None:
        if not self.limits:
            return None
        who = {"user": user, "org": org}
        keys = [f"{self.redis.prefix}rate:{scope}:{who[scope]}" for scope, _ in self.limits]
        args: list[Any] = [-1 if self.clock is None else int(self.clock() * 1000)]
        for _, (interval, tolerance) in self.limits:
            args += [interval, tolerance]
        try:
            index, wait_ms = await self.redis.run("rate_limit", "gcra", keys, args)
        except SharedCountersUnavailable:
            return None  # fail open: a dead Redis must not stop the service (counted and logged)
        if not index:
            return None
        scope = self.limits[int(index) - 1][0]
        return ("user" if scope == "user" else "organisation"), int(wait_ms) / 1000


def _gcra(per_minute: int) -> tuple[float, float]:
    """(emission interval, tolerance) in ms for `per_minute` requests a minute in bursts of a sixth of them."""
    interval = 60_000 / per_minute
    burst = max(1, per_minute // 6)
    return interval, (burst - 1) * interval


class RedisLookupBudget:
    """The lookup budget (lookups.LookupBudget) in Redis: the same sliding windows, spent and settled atomically
    by Lua, shared by every pod. Fails closed: LookupBudgetUnavailable when Redis cannot answer."""

    def __init__(self, redis: SharedRedis, per_user: int, per_org: int, window: float, *, flight: float = 120.0,
                 clock: Callable[[], float] | None = None) -> None:
        self.redis, self.clock = redis, clock
        self.limits = {"user": per_user, "organisation": per_org}
        self.window, self.flight = float(window), float(flight)

    def _now(self) -> int:
        return -1 if self.clock is None else int(self.clock() * 1000)

    def _keys(self, keys: tuple[tuple[str, str], ...]) -> list[str]:
        out = []
        for scope, who in keys:
            base = f"{self.redis.prefix}lookup:{'user' if scope == 'user' else 'org'}:{who}"
            out += [base + ":miss", base + ":flight"]
        return out

    async def spend(self, user: str, org: str, *, checked: bool = True) -> Spent:
        keys = tuple((scope, who) for scope, who in (("user", user), ("organisation", org))
                     if who and self.limits[scope] > 0)
        token = uuid.uuid4().hex
        if not keys:
            return Spent(keys)
        args = [self._now(), int(self.window * 1000), int(self.flight * 1000), 1 if checked else 0, token,
                *(self.limits[scope] for scope, _ in keys)]
        try:
            index, wait_ms, spent = await self.redis.run("lookup_budget", "spend", self._keys(keys), args)
        except SharedCountersUnavailable:
            raise LookupBudgetUnavailable() from None
        if index:
            scope = keys[int(index) - 1][0]
            raise LookupBudgetExceeded(scope, self.limits[scope], self.window, max(1.0, int(wait_ms) / 1000),
                                       in_flight=not spent)
        return Spent(keys, token)

    async def settle(self, spent: Spent, found: bool | None) -> None:
        if not spent.keys:
            return
        args = [self._now(), int(self.window * 1000), spent.token, 1 if found is False else 0]
        try:
            await self.redis.run("lookup_budget", "settle", self._keys(spent.keys), args)
        except SharedCountersUnavailable:
            pass  # counted and logged; the lookup leaves the flight set by itself after `flight` seconds

    async def misses(self, scope: str, who: str) -> int:
        """Lookups that found nothing within the window (for tests and operators)."""
        key = f"{self.redis.prefix}lookup:{'user' if scope == 'user' else 'org'}:{who}:miss"
        async with asyncio.timeout(self.redis.timeout):
            now_s, now_us = await self.redis.client.time()
        now = self._now() if self.clock is not None else now_s * 1000 + now_us // 1000
        async with asyncio.timeout(self.redis.timeout):
            return await self.redis.client.zcount(key, f"({now - int(self.window * 1000)}", "+inf")


def build(settings: Any, metrics: Any) -> tuple[RateLimits, LookupBudget, SharedRedis | None]:
    """The rate limits and the lookup budget the settings ask for: shared in Redis, or in this process.

    Refuses (ValueError, the start stops) production mode without Redis unless ONESCREEN_COUNTERS=per-process
    was set explicitly, and ONESCREEN_COUNTERS=shared without ONESCREEN_REDIS_URL."""
    if settings.counters == "shared":
        if not settings.redis_url:
            raise ValueError("ONESCREEN_COUNTERS=shared needs ONESCREEN_REDIS_URL (redis://host:6379/0): the Redis "
                             "every pod counts rate limits and lookup budgets in")
        redis = SharedRedis(settings.redis_url, settings.redis_timeout, settings.redis_prefix, metrics)
        flight = max(60.0, 2 * settings.request_timeout)  # a lookup in flight settles within its request's time
        return (RedisRateLimits(redis, settings.rate_user_per_min, settings.rate_org_per_min),
                RedisLookupBudget(redis, settings.lookup_misses_per_user, settings.lookup_misses_per_org,
                                  settings.lookup_window, flight=flight),
                redis)
    if not settings.demo and not settings.counters_explicit:
        raise ValueError("production mode needs ONESCREEN_REDIS_URL (redis://host:6379/0): rate limits and lookup "
                         "budgets must hold across pods. To count them in each process instead (a limit then "
                         "holds per pod and worker), set ONESCREEN_COUNTERS=per-process explicitly")
    return (InProcessRateLimits(settings.rate_user_per_min, settings.rate_org_per_min),
            InProcessLookupBudget(settings.lookup_misses_per_user, settings.lookup_misses_per_org,
                                  settings.lookup_window),
            None)
