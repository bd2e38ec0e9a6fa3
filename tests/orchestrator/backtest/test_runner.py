"""Backtests: recorded data through the daemon's own core, deterministically."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from orchestrator import Bar
from orchestrator.backtest.metrics import MS_PER_YEAR, max_drawdown, sharpe_ratio
from orchestrator.backtest.runner import BACKTEST_RUN_ID, run_backtest
from orchestrator.engine.builder import build_orchestrator
from orchestrator.engine.listener import EngineListener
from orchestrator.engine.plan import RunPlan
from orchestrator.signals import Decision


@pytest.fixture
def plan(make_plan: Callable[..., RunPlan], make_config: Callable[..., Any]) -> RunPlan:
    return make_plan(
        make_config(
            {"ma": {"module": "ma_crossover", "params": {"fast": 5, "slow": 20}}},
            fusion={"method": "confidence"},
            decision={"min_change": 0.05},
            execution={"paper": {"taker_fee_bps": 7.5, "slippage_bps": 2.0}},
            risk={
                "allocation": 0.5,
                "max_position_notional": 100_000.0,
                "max_order_notional": 50_000.0,
                "min_order_notional": 10.0,
            },
        )
    )


def test_the_same_data_gives_the_same_summary(plan: RunPlan, make_bars: Callable[..., list[Bar]]) -> None:
    bars = make_bars(600, seed=11)
    first = run_backtest(plan, bars)
    second = run_backtest(plan, iter(bars))
    assert first.summary() == second.summary()
    assert first.equity_curve == second.equity_curve
    summary = first.summary()
    assert "elapsed_s" not in summary
    assert "equity_curve" not in summary
    assert summary["events"] == 600
    assert summary["decisions"] > 5
    assert summary["fills"] >= summary["decisions"] > 0
    assert summary["orders"] == summary["fills"]
    assert summary["fees"] > 0.0
    assert summary["first_ts"] == bars[0].ts
    assert summary["last_ts"] == bars[-1].ts
    assert summary["total_return"] == pytest.approx(summary["final_equity"] / summary["initial_equity"] - 1.0)
    assert summary["initial_equity"] == 100_000.0
    assert 0.0 <= summary["max_drawdown"] < 1.0


def test_the_equity_curve_is_sampled_on_the_grid(plan: RunPlan, make_bars: Callable[..., list[Bar]]) -> None:
    bars = make_bars(120, seed=2, interval_ms=60_000, start_ts=1_700_000_400_000)  # on the 10-minute grid
    result = run_backtest(plan, bars, sample_ms=600_000)
    times = [ts for ts, _ in result.equity_curve]
    assert times[0] == bars[0].ts
    assert times[-1] == bars[-1].ts
    assert all(ts % 600_000 == 0 for ts in times[1:-1])
    assert len(times) == 1 + 120 // 10 + 1
    assert result.equity_curve[-1][1] == result.final_equity


def test_progress_is_reported(plan: RunPlan, make_bars: Callable[..., list[Bar]]) -> None:
    seen: list[int] = []
    run_backtest(plan, make_bars(50), progress=seen.append, progress_every=20)
    assert seen == [20, 40]


class Decisions(EngineListener):
    def __init__(self) -> None:
        self.decisions: list[tuple[int, float]] = []

    def on_decision(self, decision: Decision) -> None:
        self.decisions.append((decision.ts, decision.target))


def test_no_look_ahead_appending_future_bars_changes_no_past_decision(
    plan: RunPlan, make_bars: Callable[..., list[Bar]]
) -> None:
    bars = make_bars(500, seed=5)
    runs = []
    for count in (300, 500):
        engine = build_orchestrator(plan, run_id=BACKTEST_RUN_ID)
        journal = Decisions()
        engine.listeners.append(journal)
        run_backtest(plan, bars[:count], engine=engine)
        runs.append(journal.decisions)
    short, long = runs
    cutoff = bars[299].ts
    assert short
    assert [d for d in long if d[0] <= cutoff] == short


def test_max_drawdown() -> None:
    assert max_drawdown([100.0, 120.0, 90.0, 130.0, 65.0]) == pytest.approx(0.5)
    assert max_drawdown([1.0, 2.0, 3.0]) == 0.0
    assert max_drawdown([]) == 0.0


def test_sharpe_ratio() -> None:
    year = int(MS_PER_YEAR)
    # returns 0.1, 0.1, 0.2: mean 0.1333, sample std 0.05774
    assert sharpe_ratio([100.0, 110.0, 121.0, 145.2], year) == pytest.approx((0.4 / 3) / (0.1 / 3**0.5), rel=1e-6)
    assert sharpe_ratio([100.0, 110.0, 121.0, 145.2], year // 4) == pytest.approx(
        2 * sharpe_ratio([100.0, 110.0, 121.0, 145.2], year)
    )
    assert sharpe_ratio([100.0, 110.0, 121.0], year) == 0.0  # constant returns: no variance
    assert sharpe_ratio([100.0, 110.0], year) == 0.0
