"""Per-module health: call counts, errors, budget overruns and latency.

Recording is O(1) per call (a counter bump and a ring-buffer write);
percentiles are computed only when someone asks for a snapshot.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

RING_SIZE = 2048  # latencies kept for percentiles: the last ~2k calls
_RING_MASK = RING_SIZE - 1


class ModuleStatus(enum.Enum):
    """Where a module stands. Transitions are explicit, never ``hasattr`` checks."""

    LOADING = "loading"
    ACTIVE = "active"
    DEGRADED = "degraded"  # serving, but has recently raised or overrun its budget
    ISOLATED = "isolated"  # skipped after repeated failures; retried later
    DISABLED = "disabled"
    FAILED = "failed"  # could not be loaded or started


class ModuleHealth:
    """Mutable counters owned by one module slot; written on the event path."""

    __slots__ = (
        "calls",
        "consecutive_errors",
        "consecutive_overruns",
        "errors",
        "isolations",
        "last_error",
        "last_error_at",
        "overruns",
        "ring",
        "ring_count",
        "total_ns",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.overruns = 0
        self.consecutive_errors = 0
        self.consecutive_overruns = 0
        self.isolations = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.ring = [0] * RING_SIZE
        self.ring_count = 0
        self.total_ns = 0

    def record_error(self, message: str) -> None:
        self.calls += 1
        self.errors += 1
        self.consecutive_errors += 1
        self.last_error = message
        self.last_error_at = time.time()

    def latency_percentiles_us(self) -> tuple[float, float]:
        """(p50, p99) over the recorded window, in microseconds."""
        count = min(self.ring_count, RING_SIZE)
        if count == 0:
            return 0.0, 0.0
        window = sorted(self.ring[:count])
        p50 = window[(count - 1) // 2]
        p99 = window[min(count - 1, int(0.99 * (count - 1) + 0.5))]
        return p50 / 1000.0, p99 / 1000.0


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """A module's health at one moment, for status pages and MQTT."""

    name: str
    bucket: str
    implementation: str
    version: str
    source_hash: str
    status: ModuleStatus
    loaded_at: float
    swaps: int
    calls: int
    errors: int
    overruns: int
    isolations: int
    last_error: str | None
    latency_p50_us: float
    latency_p99_us: float
    latency_budget_us: float
    # Why the latest hot swap of this module was refused (the version above
    # keeps serving); cleared when a later version swaps in.
    reload_error: str | None = None


def ring_index(count: int) -> int:
    return count & _RING_MASK
