"""Per-ledger resilience: a circuit breaker and a bounded, jittered retry schedule.

Owns part of invariant 5: a ledger that keeps failing is not called again
until its half-open probe, so a dead agency costs its fields nothing but a
fast UNAVAILABLE, and a flaky one gets a bounded number of retries within
its own timeout budget.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


@dataclass
class CircuitBreaker:
    """Opens after `threshold` consecutive failed attempts; after `reset_after` s lets one probe through."""

    threshold: int = 5
    reset_after: float = 30.0
    clock: "callable" = time.monotonic
    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = field(default=False)

    def allow(self) -> bool:
        """Whether a call may go out now (in half-open, exactly one probe at a time)."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN and self.clock() - self.opened_at >= self.reset_after:
            self.state = HALF_OPEN
            self.probing = False
        if self.state == HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def success(self) -> None:
        self.state, self.failures, self.probing = CLOSED, 0, False

    def failure(self) -> None:
        self.failures += 1
        self.probing = False
        if self.state == HALF_OPEN or self.failures >= self.threshold:
            self.state, self.opened_at = OPEN, self.clock()

    def retry_in(self) -> float:
        return max(0.0, self.reset_after - (self.clock() - self.opened_at))


def backoff(attempt: int, base: float = 0.05, cap: float = 1.0, rng: random.Random = random.Random()) -> float:
    """Full-jitter exponential backoff before retry number `attempt` (1-based)."""
    return rng.uniform(0, min(cap, base * (2 ** (attempt - 1))))
