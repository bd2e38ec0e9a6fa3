"""Configuration of sizing, pre-trade limits and the kill switch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KillSwitchConfig(_Strict):
    """Conditions that halt trading (state HALTED) until an operator resumes."""

    enabled: bool = True
    max_drawdown: float | None = Field(0.25, gt=0.0, lt=1.0, description="fraction below the peak equity")
    max_daily_loss: float | None = Field(0.1, gt=0.0, lt=1.0, description="fraction of the equity at UTC midnight")
    max_errors: int | None = Field(5, ge=1, description="rejected or lost orders within error_window_s")
    error_window_s: float = Field(300.0, gt=0.0)
    check_interval_s: float = Field(1.0, gt=0.0, description="how often the daemon re-checks marked equity")


class RiskConfig(_Strict):
    sizing: Literal["allocation", "fixed_fraction", "volatility_target", "kelly"] = Field(
        "allocation",
        description=(
            "allocation: target x allocation x equity; fixed_fraction: risk_per_trade of equity lost at the stop; "
            "volatility_target: position scaled to an annualised volatility; kelly: capped fractional Kelly"
        ),
    )
    allocation: float = Field(
        0.1, gt=0.0, le=10.0, description="fraction of equity held in a symbol at target exposure 1.0"
    )
    risk_per_trade: float = Field(0.01, gt=0.0, le=0.2, description="fixed_fraction: equity fraction lost at the stop")
    stop_distance: float = Field(0.02, gt=0.0, lt=1.0, description="fixed_fraction: stop distance, fraction of price")
    stop_sigmas: float | None = Field(
        None, gt=0.0, description="fixed_fraction: stop at this many decision sigmas when the decision has one"
    )
    volatility_target: float = Field(0.2, gt=0.0, le=5.0, description="annualised volatility of each position")
    volatility_sample_ms: int = Field(60_000, gt=0, description="price sampling for the volatility estimate")
    volatility_halflife: float = Field(30.0, gt=0.0, description="EWMA half-life, in samples")
    volatility_min_samples: int = Field(20, ge=2, description="samples before volatility targeting trades")
    kelly_fraction: float = Field(0.5, gt=0.0, le=1.0, description="fraction of the full Kelly bet mu / sigma^2")
    kelly_cap: float = Field(0.25, gt=0.0, le=10.0, description="largest position as a fraction of equity")
    max_position_notional: float = Field(50_000.0, gt=0.0, description="largest absolute position per symbol")
    max_position_notional_by_symbol: dict[str, float] = Field(
        default_factory=dict, description="per-symbol overrides of max_position_notional"
    )
    max_gross_notional: float | None = Field(None, gt=0.0, description="sum of absolute positions")
    max_net_notional: float | None = Field(None, gt=0.0, description="absolute sum of signed positions")
    max_bucket_notional: dict[str, float] = Field(default_factory=dict, description="gross exposure per bucket")
    max_order_notional: float = Field(10_000.0, gt=0.0, description="largest single order")
    min_order_notional: float = Field(10.0, ge=0.0, description="smaller rebalances are not worth an order")
    max_orders_per_minute: int | None = Field(60, ge=1, description="orders sent in any 60 s of event time")
    kill_switch: KillSwitchConfig = Field(default_factory=KillSwitchConfig)

    @model_validator(mode="after")
    def _orders_can_be_sent(self) -> RiskConfig:
        # Otherwise every order would be too small to send or too large to allow.
        if self.min_order_notional > self.max_order_notional:
            raise ValueError(
                f"min_order_notional ({self.min_order_notional:g}) exceeds max_order_notional "
                f"({self.max_order_notional:g}): no order could ever be sent"
            )
        return self

    def position_limit(self, symbol: str) -> float:
        return self.max_position_notional_by_symbol.get(symbol, self.max_position_notional)
