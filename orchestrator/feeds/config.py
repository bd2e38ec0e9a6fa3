"""Configuration of the market-data feeds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.feeds.ccxt_config import CcxtFeedConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SimulatedMarketConfig(_Strict):
    """A deterministic, seeded, endless market with changing regimes."""

    seed: int = 7
    start: datetime = Field(datetime(2025, 1, 1, tzinfo=UTC), description="simulated time of the first event")
    tick_ms: int = Field(250, gt=0, description="simulated milliseconds between book updates")
    bar_ms: int = Field(60_000, gt=0, description="bar length in simulated milliseconds")
    book_levels: int = Field(10, ge=1, le=50)
    trades_per_tick: float = Field(0.6, ge=0.0, le=20.0, description="mean number of trades per tick")
    prices: dict[str, float] = Field(default_factory=dict, description="start price per symbol (default 100)")
    annual_volatility: float = Field(0.6, gt=0.0, le=5.0)
    regime_mean_ticks: int = Field(4000, gt=0, description="mean length of a regime, in ticks")
    speed: float = Field(1.0, ge=0.0, description="simulated seconds per wall second; 0 = as fast as possible")


class ReplayConfig(_Strict):
    """Recorded bars, trades or book snapshots (CSV or Parquet), merged by time."""

    paths: list[Path] = Field(min_length=1)
    kind: Literal["auto", "bars", "trades", "books"] = "auto"
    symbol: str | None = Field(None, description="symbol of files without a symbol column (default: file stem)")
    interval_ms: int | None = Field(None, gt=0, description="bar length; inferred from timestamps when omitted")
    speed: float = Field(0.0, ge=0.0, description="0 = as fast as possible; 1 = recorded pace; 10 = ten times faster")


class FeedConfig(_Strict):
    kind: Literal["simulated", "replay", "ccxt"] = "simulated"
    simulated: SimulatedMarketConfig = Field(default_factory=SimulatedMarketConfig)
    replay: ReplayConfig | None = None
    ccxt: CcxtFeedConfig | None = None

    @model_validator(mode="after")
    def _replay_needs_files(self) -> FeedConfig:
        if self.kind == "replay" and self.replay is None:
            raise ValueError("kind 'replay' needs a 'replay:' section with paths")
        if self.kind == "ccxt" and self.ccxt is None:
            raise ValueError("kind 'ccxt' needs a 'ccxt:' section naming the exchange")
        return self
