"""What the hot-swap machinery tells the world: change notices and module rows.

``ModuleChange`` is handed to every observer (logs; the MQTT status
publisher subscribes through ``ModuleManager.observers``). ``module_rows``
is what ``orchestrator modules --live`` shows and MQTT publishes: each
serving module's version, source hash, state, load time, swap count and
last errors.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

from orchestrator.engine.health import HealthSnapshot


class ChangeKind(enum.Enum):
    SWAPPED = "swapped"  # a new instance replaced the old one (new code or parameters)
    STARTED = "started"
    STOPPED = "stopped"
    RELOAD_FAILED = "reload_failed"  # new code refused; the old version keeps serving
    CONFIG_APPLIED = "config_applied"
    CONFIG_REJECTED = "config_rejected"  # invalid configuration; the running one is kept


@dataclass(frozen=True, slots=True)
class ModuleChange:
    """One outcome of a hot change."""

    kind: ChangeKind
    message: str
    module: str | None = None
    bucket: str | None = None
    version: str | None = None
    source_hash: str | None = None
    file: str | None = None
    line: int | None = None
    state_adopted: bool | None = None
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "message": self.message,
            "module": self.module,
            "bucket": self.bucket,
            "version": self.version,
            "source_hash": self.source_hash,
            "file": self.file,
            "line": self.line,
            "state_adopted": self.state_adopted,
            "at": self.at,
        }


def module_row(snapshot: HealthSnapshot) -> dict[str, Any]:
    """One serving module as plain JSON-ready data."""
    return {
        "name": snapshot.name,
        "bucket": snapshot.bucket,
        "implementation": snapshot.implementation,
        "version": snapshot.version,
        "source_hash": snapshot.source_hash,
        "state": snapshot.status.value,
        "loaded_at": round(snapshot.loaded_at, 3),
        "swaps": snapshot.swaps,
        "calls": snapshot.calls,
        "errors": snapshot.errors,
        "last_error": snapshot.last_error,
        "reload_error": snapshot.reload_error,
        "latency_p50_us": round(snapshot.latency_p50_us, 2),
        "latency_p99_us": round(snapshot.latency_p99_us, 2),
        "latency_budget_us": snapshot.latency_budget_us,
    }
