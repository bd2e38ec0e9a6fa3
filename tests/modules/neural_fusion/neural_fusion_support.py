"""Helpers of the neural fusion tests: small parameters, seeded bars and market
events, a module harness and a fusion trace over a stream.

Imported by the tests as ``neural_fusion_support`` (``conftest.py`` puts this
directory on ``sys.path``; with ``--import-mode=importlib`` test files
cannot import their neighbours otherwise)."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.contract import ModuleState
from orchestrator.events import Bar, MarketEvent
from orchestrator.feeds.config import SimulatedMarketConfig
from orchestrator.feeds.simulated import SimulatedMarket
from orchestrator.fusion.config import FusionConfig
from orchestrator.signals import FusionResult
from orchestrator.testing import ModuleHarness, load_named

SYMBOLS = ("BTC/USDT", "ETH/USDT")
MINUTE = 60_000
START = 1_735_689_600_000
# Small enough to train within a few hundred bars: horizon two bars, one sample per bar.
SMALL: dict[str, Any] = {
    "horizon_ms": 2 * MINUTE,
    "refresh_ms": 0,
    "sample_ms": 0,
    "warmup_samples": 48,
    "train_batch": 16,
    "minibatch": 8,
    "hidden_layers": [8],
    "min_skill": -1.0,  # these tests are about the mechanics: answer whatever the skill
}
MA: dict[str, Any] = {"fast": 3, "slow": 8}

FusionTrace = list[tuple[FusionResult, str] | None]


def part(name: str) -> Any:
    """A submodule of the package as the daemon loads it (not an import of ``modules``)."""
    return getattr(load_named("neural_fusion").module, name)


def walk_bars(count: int, *, seed: int, symbols: Sequence[str] = SYMBOLS) -> list[Bar]:
    """Interleaved one-minute bars of random walks with short trends."""
    rng = random.Random(seed)
    prices = dict.fromkeys(symbols, 100.0)
    drift = dict.fromkeys(symbols, 0.0)
    bars = []
    for index in range(count):
        for symbol in symbols:
            if index % 25 == 0:
                drift[symbol] = rng.choice((-0.002, 0.0, 0.002))
            open_ = prices[symbol]
            close = open_ * math.exp(drift[symbol] + rng.gauss(0.0, 0.003))
            prices[symbol] = close
            ts = START + (index + 1) * MINUTE
            bars.append(Bar(symbol, ts, open_, max(open_, close), min(open_, close), close, 1.0, MINUTE))
    return bars


def market_events(count: int, seed: int = 11) -> list[MarketEvent]:
    config = SimulatedMarketConfig(seed=seed, book_levels=3, trades_per_tick=0.3)
    return SimulatedMarket(config, SYMBOLS).take(count)


def harness(
    neural: Mapping[str, Any],
    modules: Mapping[str, Mapping[str, Any]] | None = None,
    states: Mapping[str, ModuleState] | None = None,
) -> ModuleHarness:
    others = {"ma_crossover": MA} if modules is None else modules
    return ModuleHarness(
        {**others, "neural_fusion": dict(neural)},
        symbols=list(SYMBOLS),
        fusion=FusionConfig(method="weighted"),
        states=states,
    )


def fuse_trace(h: ModuleHarness, events: Sequence[MarketEvent], *, always: bool = False) -> FusionTrace:
    """Fusion after each event, as the daemon does (only when an output changed) or ``always``."""
    trace: FusionTrace = []
    for event in events:
        changed = h.push(event)
        trace.append(h.pipeline.fuse(event.symbol, event.ts) if changed or always else None)
    return trace


def trained(events: Sequence[MarketEvent], neural: Mapping[str, Any] = SMALL) -> ModuleHarness:
    h = harness(neural)
    fuse_trace(h, events)
    return h
