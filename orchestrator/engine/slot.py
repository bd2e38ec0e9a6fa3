"""One module instance in service inside a bucket's pipeline."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.contract import AnalysisModule, ModuleContext, ModuleParams
from orchestrator.engine.health import HealthSnapshot, ModuleHealth, ModuleStatus
from orchestrator.events import EventKind, MarketEvent
from orchestrator.plugins.loader import LoadedModule
from orchestrator.signals import ModuleOutput

Handler = Callable[[Any, ModuleContext], ModuleOutput | None]

HOOK_OF_KIND: Mapping[EventKind, str] = {
    EventKind.BAR: "on_bar",
    EventKind.TRADE: "on_trade",
    EventKind.BOOK: "on_book",
}


class ModuleSlot:
    """A module instance plus everything the core tracks about it.

    ``handlers`` are the instance's hook implementations as registered with
    pluggy; the pipeline calls them directly, one module at a time, so one
    raising module never aborts the others (a plain ``pm.hook.on_bar()``
    call would stop at the first exception).
    """

    __slots__ = (
        "bucket",
        "budget_ns",
        "ctx",
        "handlers",
        "health",
        "instance",
        "isolation_backoff_ms",
        "loaded",
        "loaded_at",
        "name",
        "params",
        "reload_error",
        "retry_at_ts",
        "status",
        "swaps",
        "weight",
    )

    def __init__(
        self,
        *,
        name: str,
        bucket: str,
        instance: AnalysisModule[Any],
        loaded: LoadedModule,
        params: ModuleParams,
        weight: float,
        budget_us: float,
        ctx: ModuleContext,
    ) -> None:
        self.name = name
        self.bucket = bucket
        self.instance = instance
        self.loaded = loaded
        self.params = params
        self.weight = weight
        self.budget_ns = int(budget_us * 1000.0)
        self.ctx = ctx
        self.handlers: dict[EventKind, Handler] = {}
        self.health = ModuleHealth()
        self.status = ModuleStatus.LOADING
        self.loaded_at = time.time()
        self.swaps = 0
        self.retry_at_ts = 0
        self.isolation_backoff_ms = 0
        self.reload_error: str | None = None  # set by a refused hot swap; this instance keeps serving

    @property
    def depends_on(self) -> tuple[str, ...]:
        return self.loaded.contract.depends_on

    @property
    def consumes(self) -> frozenset[EventKind]:
        return self.loaded.contract.consumes

    def handler_for(self, event: MarketEvent) -> Handler | None:
        return self.handlers.get(event.kind)

    def snapshot(self) -> HealthSnapshot:
        p50, p99 = self.health.latency_percentiles_us()
        return HealthSnapshot(
            name=self.name,
            bucket=self.bucket,
            implementation=self.loaded.contract.name,
            version=self.loaded.contract.version,
            source_hash=self.loaded.source_hash,
            status=self.status,
            loaded_at=self.loaded_at,
            swaps=self.swaps,
            calls=self.health.calls,
            errors=self.health.errors,
            overruns=self.health.overruns,
            isolations=self.health.isolations,
            last_error=self.health.last_error,
            latency_p50_us=p50,
            latency_p99_us=p99,
            latency_budget_us=self.budget_ns / 1000.0,
            reload_error=self.reload_error,
        )
