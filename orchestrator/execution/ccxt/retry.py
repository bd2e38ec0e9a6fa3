"""Bounded, jittered exponential backoff for venue requests.

"Full jitter" (AWS architecture blog, Brooker 2015): each delay is uniform
in ``[0, min(cap, base * 2^attempt)]``, so many clients retrying after one
outage spread out instead of hammering together. Rate-limit errors wait at
least ``base`` and grow four times faster.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from orchestrator.execution.ccxt.errors import ErrorKind, VenueError, classify, describe

log = structlog.get_logger("orchestrator.ccxt")

T = TypeVar("T")


class Backoff:
    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.rng = rng or random.Random()

    def delay(self, attempt: int, kind: ErrorKind = ErrorKind.TRANSIENT) -> float:
        if kind is ErrorKind.RATE_LIMITED:
            ceiling = min(self.cap_s, self.base_s * 2.0 ** (attempt + 2))
            return max(self.base_s, self.rng.uniform(0.0, ceiling))
        return self.rng.uniform(0.0, min(self.cap_s, self.base_s * 2.0**attempt))


async def read_with_retry(
    venue: str, action: str, call: Callable[[], Awaitable[T]], *, retries: int, backoff: Backoff
) -> T:
    """Run a read; retry rate-limit and transient errors ``retries`` times, then raise ``VenueError``."""
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            kind = classify(exc)
            if not kind.retryable or attempt >= retries:
                raise VenueError(venue, action, exc) from exc
            delay = backoff.delay(attempt, kind)
            log.warning(
                "venue_retry",
                venue=venue,
                action=action,
                attempt=attempt + 1,
                delay_s=round(delay, 3),
                error=describe(exc),
            )
            attempt += 1
            await asyncio.sleep(delay)
