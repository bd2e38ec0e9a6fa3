"""Replays a feed through the very same core the daemon runs, synchronously.

No event loop, no pacing: events go straight into ``on_event``. The run id
is fixed and modules start cold, so the same input always gives the same
numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.backtest.metrics import max_drawdown, sharpe_ratio
from orchestrator.engine.builder import build_orchestrator
from orchestrator.engine.listener import EngineListener
from orchestrator.engine.orchestrator import TradingOrchestrator
from orchestrator.engine.plan import RunPlan
from orchestrator.events import MarketEvent
from orchestrator.orders import Fill

BACKTEST_RUN_ID = "bt"


@dataclass(frozen=True, slots=True)
class BacktestResult:
    events: int
    decisions: int
    orders: int
    denied: int
    fills: int
    traded_notional: float
    fees: float
    initial_equity: float
    final_equity: float
    total_return: float
    max_drawdown: float
    sharpe: float
    first_ts: int
    last_ts: int
    sample_ms: int
    elapsed_s: float = field(compare=False)
    equity_curve: tuple[tuple[int, float], ...] = field(default=(), repr=False)

    def summary(self) -> dict[str, Any]:
        """Everything but the curve and the wall time: identical across runs."""
        data = asdict(self)
        data.pop("equity_curve")
        data.pop("elapsed_s")
        return data


class _Turnover(EngineListener):
    def __init__(self) -> None:
        self.notional = 0.0

    def on_fill(self, fill: Fill) -> None:
        self.notional += fill.notional


def run_backtest(
    plan: RunPlan,
    events: Iterable[MarketEvent],
    *,
    sample_ms: int = 60_000,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 10_000,
    engine: TradingOrchestrator | None = None,
) -> BacktestResult:
    engine = engine or build_orchestrator(plan, run_id=BACKTEST_RUN_ID)
    turnover = _Turnover()
    engine.listeners.append(turnover)
    portfolio = engine.portfolio
    initial = portfolio.equity
    curve: list[tuple[int, float]] = []
    next_sample = None
    first_ts = last_ts = 0
    count = 0
    on_event = engine.on_event
    started = time.perf_counter()
    for event in events:
        ts = event.ts
        if next_sample is None:
            first_ts = ts
            next_sample = ts
        if ts >= next_sample:
            curve.append((ts, portfolio.equity))
            next_sample = ts - ts % sample_ms + sample_ms
        on_event(event)
        last_ts = ts
        count += 1
        if progress is not None and count % progress_every == 0:
            progress(count)
    elapsed = time.perf_counter() - started
    final = portfolio.equity
    curve.append((last_ts, final))
    engine.stop_modules()
    values = [value for _, value in curve]
    counters = engine.counters
    return BacktestResult(
        events=count,
        decisions=counters.decisions,
        orders=counters.intents,
        denied=counters.denied,
        fills=counters.fills,
        traded_notional=turnover.notional,
        fees=portfolio.fees,
        initial_equity=initial,
        final_equity=final,
        total_return=final / initial - 1.0 if initial > 0.0 else 0.0,
        max_drawdown=max_drawdown(values),
        sharpe=sharpe_ratio(values, sample_ms),
        first_ts=first_ts,
        last_ts=last_ts,
        sample_ms=sample_ms,
        elapsed_s=elapsed,
        equity_curve=tuple(curve),
    )
