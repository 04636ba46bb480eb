"""Per-ledger resilience: a circuit breaker and a bounded, jittered retry schedule.

Owns part of invariant 5: a ledger that keeps failing is not called again
until its half-open probe, so a dead agency costs its fields nothing but a
fast UNAVAILABLE, and a flaky one gets a bounded number of retries within
its own timeout budget. An open circuit remembers the last real failure and
when it happened, so its fields' reason names the cause, and every change of
a circuit's state is logged with its cause (reasons are connectors' operator
texts: no values, no secrets).
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
KST = timezone(timedelta(hours=9), "KST")  # the time in a reason is the caseworkers' (Korea has no DST)
log = logging.getLogger("onescreen.resilience")


def _wall() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class CircuitBreaker:
    """Opens after `threshold` consecutive failed attempts; after `reset_after` s lets one probe through.

    `clock` (monotonic) times the reset; `wall` stamps the last failure for the reason a caseworker reads."""

    threshold: int = 5
    reset_after: float = 30.0
    clock: Callable[[], float] = time.monotonic
    ledger: str = ""  # for the log lines of its transitions
    wall: Callable[[], datetime] = _wall
    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = field(default=False)
    last_failure: tuple[str, str, datetime] | None = None  # (reason, reason in Korean, when) of the last failure
    opened_after: int = 0  # the consecutive failures that opened the circuit

    def allow(self) -> bool:
        """Whether a call may go out now (in half-open, exactly one probe at a time)."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN and self.clock() - self.opened_at >= self.reset_after:
            self.state = HALF_OPEN
            self.probing = False
            log.info("circuit half-open: one probe may go through",
                     extra={"ledger": self.ledger, "status": HALF_OPEN, "reason": self._cause()})
        if self.state == HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def success(self) -> None:
        if self.state != CLOSED:
            log.info("circuit closed: the ledger answered again",
                     extra={"ledger": self.ledger, "status": CLOSED, "reason": f"was open: {self._cause()}"})
        self.state, self.failures, self.probing = CLOSED, 0, False

    def failure(self, reason: str = "failed", reason_ko: str = "실패") -> None:
        """A failed attempt, and why (an operator's reason: no values)."""
        self.failures += 1
        self.probing = False
        self.last_failure = (reason, reason_ko, self.wall())
        if self.state == HALF_OPEN or (self.state == CLOSED and self.failures >= self.threshold):
            probe = self.state == HALF_OPEN
            self.state, self.opened_at = OPEN, self.clock()
            self.opened_after = self.failures
            log.warning("circuit re-opened: the probe failed" if probe else "circuit opened",
                        extra={"ledger": self.ledger, "status": OPEN,
                               "reason": f"{self._cause()}; next try in {self.reset_after:g} s"})

    def retry_in(self) -> float:
        return max(0.0, self.reset_after - (self.clock() - self.opened_at))

    def _cause(self) -> str:
        if self.last_failure is None:
            return "no failure recorded"
        reason, _, at = self.last_failure
        return f"{self.opened_after or self.failures} consecutive failures, last: {reason} at {_hms(at)}"

    def open_reason(self) -> tuple[str, str]:
        """Why a call is not let through now, in English and Korean: the failures and the last real cause."""
        wait = self.retry_in()
        if self.last_failure is None:
            return (f"circuit open; next try in {wait:.0f} s", f"연결 차단 중: {wait:.0f}초 뒤 다시 시도합니다")
        reason, reason_ko, at = self.last_failure
        n = self.opened_after or self.failures
        if self.state == HALF_OPEN:
            return (f"circuit half-open after {n} failures, last: {reason} at {_hms(at)}; a probe is under way",
                    f"연속 {n}회 실패로 연결 차단 중, 마지막 실패: {reason_ko} ({_hms(at)}); 확인 조회 중입니다")
        return (f"circuit open after {n} failures, last: {reason} at {_hms(at)}; next try in {wait:.0f} s",
                f"연속 {n}회 실패로 연결 차단 중, 마지막 실패: {reason_ko} ({_hms(at)}); {wait:.0f}초 뒤 다시 시도합니다")


def _hms(at: datetime) -> str:
    return at.astimezone(KST).strftime("%H:%M:%S KST")


def backoff(attempt: int, base: float = 0.05, cap: float = 1.0, rng: random.Random = random.Random()) -> float:
    """Full-jitter exponential backoff before retry number `attempt` (1-based)."""
    return rng.uniform(0, min(cap, base * (2 ** (attempt - 1))))
