"""The one interface every market-data source implements.

A feed yields events in time order. ``events()`` is the synchronous,
as-fast-as-possible form used by backtests and benchmarks; ``stream()`` is
the asynchronous form the daemon consumes, paced by a speed factor for
recorded and simulated data (live feeds override it).
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncIterator, Iterator

from orchestrator.events import MarketEvent

# How many events may pass between two yields to the event loop, so MQTT,
# the watcher and the systemd watchdog keep running during a fast replay.
YIELD_EVERY = 256


class MarketFeed(abc.ABC):
    """A source of market events for a fixed set of symbols."""

    name: str = "feed"
    speed: float = 0.0  # simulated seconds per wall second; 0 = as fast as possible

    @property
    @abc.abstractmethod
    def symbols(self) -> tuple[str, ...]:
        """The symbols this feed produces events for."""

    @abc.abstractmethod
    def events(self) -> Iterator[MarketEvent]:
        """Every event in time order, as fast as possible."""

    async def stream(self) -> AsyncIterator[MarketEvent]:
        """Events paced to ``speed``; yields to the loop at least every
        ``YIELD_EVERY`` events even when running behind or unpaced."""
        first_ts: int | None = None
        started = time.monotonic()
        since_yield = 0
        for event in self.events():
            if self.speed > 0.0:
                if first_ts is None:
                    first_ts = event.ts
                due = started + (event.ts - first_ts) / 1000.0 / self.speed
                delay = due - time.monotonic()
                if delay > 0.0:
                    await asyncio.sleep(delay)
                    since_yield = 0
            since_yield += 1
            if since_yield >= YIELD_EVERY:
                await asyncio.sleep(0)
                since_yield = 0
            yield event

    async def aclose(self) -> None:
        """Release connections or files; the default has nothing to release."""
        return None
