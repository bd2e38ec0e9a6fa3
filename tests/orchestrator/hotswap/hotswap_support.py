"""Helpers of the hot-swap tests: module sources written to a temporary
modules directory, configs, an engine and manager built from them.

Imported by the tests as ``hotswap_support`` (``conftest.py`` puts this
directory on ``sys.path``; with ``--import-mode=importlib`` test files
cannot import their neighbours otherwise)."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from orchestrator.config.loader import LoadedConfig, load_config
from orchestrator.engine.orchestrator import TradingOrchestrator
from orchestrator.events import MarketEvent
from orchestrator.hotswap.manager import ModuleManager
from orchestrator.hotswap.recorder import RecentEvents

SYMBOLS = ["BTC/USDT", "ETH/USDT"]


def counter_source(
    version: str = "1.0.0",
    generation: float = 1.0,
    *,
    module_name: str = "counter",
    state_version: int = 1,
    top: str = "",
    init: str = "pass",
    handler: str = "pass",
    depends_on: tuple[str, ...] = (),
    self_check: str | None = None,
    extra_params: str = "",
) -> str:
    """A module counting every event it sees; the count is its state, so
    after any number of swaps ``count`` equals the events it was fed.
    ``top``, ``init``, ``handler`` and ``self_check`` are single lines of
    code put at module level, in ``__init__``, in the event handler and as
    the body of ``self_check``."""
    check = f"    def self_check(self, sample):\n        {self_check}\n" if self_check is not None else ""
    return f'''"""Counts events (test module)."""
from orchestrator import AnalysisModule, EventKind, ModuleOutput, ModuleParams, ModuleState
{top}
GENERATION = {generation!r}


class CounterParams(ModuleParams):
    scale: float = 1.0
    {extra_params}


class Counter(AnalysisModule[CounterParams]):
    name = {module_name!r}
    version = {version!r}
    consumes = frozenset({{EventKind.BAR, EventKind.TRADE, EventKind.BOOK}})
    depends_on = {depends_on!r}
    Params = CounterParams
    latency_budget_us = 1e9
    state_version = {state_version}

    def __init__(self, params):
        super().__init__(params)
        self.count = 0
        {init}

    def _seen(self, event, ctx):
        {handler}
        self.count += 1
        return ModuleOutput(
            prediction=None,
            features={{"count": float(self.count), "generation": GENERATION, "scale": self.params.scale}},
        )

    def on_bar(self, bar, ctx):
        return self._seen(bar, ctx)

    def on_trade(self, trade, ctx):
        return self._seen(trade, ctx)

    def on_book(self, book, ctx):
        return self._seen(book, ctx)

    def export_state(self):
        return ModuleState(self.name, self.version, self.state_version, {{"count": self.count}})

    def import_state(self, state):
        if state.state_version != self.state_version:
            return False
        self.count = int(state.data["count"])
        return True

{check}

MODULE = Counter
'''


def reader_source(feature: str = "count") -> str:
    """A module that depends on ``counter`` and reads one of its features."""
    return textwrap.dedent(
        f'''\
        """Reads the counter's output (test module)."""
        from orchestrator import AnalysisModule, EventKind, ModuleOutput, ModuleParams


        class Reader(AnalysisModule[ModuleParams]):
            name = "reader"
            version = "1.0.0"
            consumes = frozenset({{EventKind.BOOK}})
            depends_on = ("counter",)
            latency_budget_us = 1e9

            def on_book(self, book, ctx):
                seen = ctx.output("counter", book.symbol)
                if seen is None:
                    return None
                return ModuleOutput(prediction=None, features={{"seen": seen.features[{feature!r}]}})


        MODULE = Reader
        '''
    )


@dataclass
class Workspace:
    root: Path
    modules: Path
    config: Path
    state: Path

    def write_module(self, name: str, source: str) -> Path:
        path = self.modules / f"{name}.py"
        path.write_text(source)
        return path

    def write_config(self, document: dict[str, object]) -> None:
        self.config.write_text(yaml.safe_dump(document, sort_keys=False))

    def base_config(self, modules: dict[str, object], **sections: object) -> dict[str, object]:
        document: dict[str, object] = {
            "state_dir": str(self.state),
            "feed": {"kind": "simulated", "simulated": {"speed": 0}},
            "symbols": list(SYMBOLS),
            "modules_path": [str(self.modules)],
            "modules": modules,
        }
        document.update(sections)
        return document

    def load(self) -> LoadedConfig:
        return load_config(self.config, env={})


@dataclass
class Rig:
    """An engine and its manager, fed by hand."""

    engine: TradingOrchestrator
    manager: ModuleManager
    recorder: RecentEvents
    events: list[MarketEvent]
    fed: int = 0

    def feed(self, count: int) -> None:
        for _ in range(count):
            event = self.events[self.fed % len(self.events)]
            self.recorder.record(event)
            self.engine.on_event(event)
            self.fed += 1

    def slot(self, name: str, bucket: str = "default"):
        return self.engine.pipelines[bucket].slots[name]

    def feature(self, module: str, key: str, symbol: str = SYMBOLS[0], bucket: str = "default") -> float:
        output = self.engine.pipelines[bucket].latest[symbol][module]
        return output.features[key]


async def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``condition`` (a deadline, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
