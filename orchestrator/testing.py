"""Run modules outside the daemon, through the real loader and pipeline.

For module authors' tests and research notebooks::

    harness = ModuleHarness({"ma_crossover": {"fast": 5, "slow": 20}}, symbols=["BTC/USDT"])
    for event in events:
        harness.push(event)
    harness.output("ma_crossover", "BTC/USDT")

Modules are resolved by name exactly as the daemon resolves them (built-in
``modules/``, then entry points) or loaded from an explicit ``path``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.config.models import EngineConfig
from orchestrator.contract import EventClock, ModuleState
from orchestrator.engine.pipeline import BucketPipeline, dependency_order
from orchestrator.engine.slot import ModuleSlot
from orchestrator.events import MarketEvent
from orchestrator.fusion.config import FusionConfig
from orchestrator.plugins.loader import LoadedModule, instantiate, load_module, validate_params
from orchestrator.plugins.sources import resolve_source
from orchestrator.signals import FusionResult, ModuleOutput


def load_named(name: str, *, path: Path | None = None) -> LoadedModule:
    """Load a module implementation the way the daemon does."""
    return load_module(resolve_source(name, path=path), label=name)


class ModuleHarness:
    """A single-bucket pipeline of the named modules (with their parameters)."""

    def __init__(
        self,
        modules: Mapping[str, Mapping[str, Any]],
        *,
        symbols: Sequence[str],
        fusion: FusionConfig | None = None,
        engine: EngineConfig | None = None,
        paths: Mapping[str, Path] | None = None,
        states: Mapping[str, ModuleState] | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.clock = EventClock()
        self.pipeline = BucketPipeline(
            name="harness",
            symbols=symbols,
            fusion=fusion or FusionConfig(),
            engine=engine or EngineConfig(),
            clock=self.clock,
        )
        paths = paths or {}
        loaded = {name: load_named(name, path=paths.get(name)) for name in modules}
        order = dependency_order({name: loaded[name].contract.depends_on for name in modules})
        self.adopted: dict[str, bool] = {}
        for name in order:
            params = validate_params(loaded[name], modules[name], key_path=f"modules.{name}.params")
            slot = ModuleSlot(
                name=name,
                bucket="harness",
                instance=instantiate(loaded[name], params),
                loaded=loaded[name],
                params=params,
                weight=1.0,
                budget_us=1e9,  # tests must not isolate a module for being slow on a busy machine
                ctx=self.pipeline.make_context(name, loaded[name].contract.depends_on, state_dir),
            )
            self.adopted[name] = self.pipeline.add(slot, state=(states or {}).get(name))

    def push(self, event: MarketEvent) -> bool:
        """Process one event; True if any module produced output."""
        self.clock.now = event.ts
        return self.pipeline.process(event)

    def run(self, events: Iterable[MarketEvent], module: str | None = None) -> list[ModuleOutput | None]:
        """Push every event; return ``module``'s output for the event's symbol
        after each one (``None`` until it first produces)."""
        trace: list[ModuleOutput | None] = []
        for event in events:
            self.push(event)
            if module is not None:
                trace.append(self.output(module, event.symbol))
        return trace

    def output(self, module: str, symbol: str) -> ModuleOutput | None:
        return self.pipeline.latest[symbol].get(module)

    def fuse(self, symbol: str) -> FusionResult | None:
        fused = self.pipeline.fuse(symbol, self.clock.now)
        return None if fused is None else fused[0]

    def instance(self, module: str) -> Any:
        return self.pipeline.slots[module].instance

    def export_states(self) -> dict[str, ModuleState]:
        states = {}
        for name, slot in self.pipeline.slots.items():
            state = slot.instance.export_state()
            if state is not None:
                states[name] = state
        return states

    def errors(self, module: str) -> int:
        return self.pipeline.slots[module].health.errors
