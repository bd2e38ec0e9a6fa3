"""Backtests: recorded data through the daemon's own core."""

from orchestrator.backtest.runner import BacktestResult, run_backtest

__all__ = ["BacktestResult", "run_backtest"]
