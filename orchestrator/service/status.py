"""The one-line summary ``systemctl status`` shows as "Status:".

Example: ``ACTIVE | 41.7 events/s | equity 100012.34 | modules 3 active, 1 degraded | 0 open orders``.
The trading state leads because it is what an operator looks for first;
module counts name only the statuses present, so a healthy daemon reads short.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from orchestrator.engine.health import ModuleStatus

if TYPE_CHECKING:
    from orchestrator.engine.orchestrator import TradingOrchestrator


def module_counts(engine: TradingOrchestrator) -> str:
    """``3 active, 1 degraded`` in the order statuses are declared."""
    counts = Counter(slot.status for pipeline in engine.pipelines.values() for slot in pipeline.slots.values())
    if not counts:
        return "none"
    return ", ".join(f"{counts[status]} {status.value}" for status in ModuleStatus if counts[status])


class StatusLine:
    """Builds the summary, measuring events/s between two calls."""

    def __init__(self, engine: TradingOrchestrator) -> None:
        self.engine = engine
        self._last_events = engine.counters.events
        self._last_time = time.monotonic()

    def summary(self) -> str:
        engine = self.engine
        now = time.monotonic()
        events = engine.counters.events
        elapsed = now - self._last_time
        rate = (events - self._last_events) / elapsed if elapsed > 0.0 else 0.0
        self._last_events, self._last_time = events, now
        return (
            f"{engine.risk.state.value} | {rate:.1f} events/s | equity {engine.portfolio.equity:.2f}"
            f" | modules {module_counts(engine)} | {engine.open_order_count} open orders"
        )
