"""Position sizing: how much notional a decision asks for.

Each method turns a decision (target exposure in [-1, 1], fused mu and
sigma) and the account's equity into a signed target position value:

- ``allocation``: ``target * allocation * equity``.
- ``fixed_fraction``: lose ``risk_per_trade`` of equity if the stop is hit:
  ``target * risk_per_trade * equity / stop``, the stop being
  ``stop_sigmas * sigma`` when configured and the decision has a sigma,
  else ``stop_distance`` (Van Tharp's fixed-fractional sizing).
- ``volatility_target``: ``target * equity * volatility_target / vol``,
  ``vol`` the symbol's annualised EWMA volatility of sampled log returns
  (RiskMetrics' exponentially weighted estimator).
- ``kelly``: ``clip(kelly_fraction * mu / sigma^2, +-kelly_cap) * equity``,
  the continuous-return Kelly fraction (Thorp), scaled down and capped;
  flat when the decision is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from orchestrator.risk.config import RiskConfig
from orchestrator.signals import Decision

YEAR_MS = 365.25 * 24 * 3600 * 1000


@dataclass(slots=True)
class _VolState:
    last_ts: int
    last_price: float
    variance: float = 0.0
    samples: int = 0


class VolatilityEstimator:
    """Annualised EWMA volatility per symbol, O(1) per price."""

    def __init__(self, sample_ms: int, halflife: float, min_samples: int) -> None:
        self.sample_ms = sample_ms
        self.decay = 0.5 ** (1.0 / halflife)
        self.min_samples = min_samples
        self._annualise = YEAR_MS / sample_ms
        self._state: dict[str, _VolState] = {}

    def observe(self, symbol: str, ts: int, price: float) -> None:
        state = self._state.get(symbol)
        if state is None:
            if price > 0.0:
                self._state[symbol] = _VolState(ts, price)
            return
        if ts - state.last_ts < self.sample_ms or not price > 0.0:
            return
        r = math.log(price / state.last_price)
        state.variance = self.decay * state.variance + (1.0 - self.decay) * r * r if state.samples else r * r
        state.samples += 1
        state.last_ts = ts
        state.last_price = price

    def volatility(self, symbol: str) -> float | None:
        """Annualised volatility, or ``None`` until ``min_samples`` returns were seen."""
        state = self._state.get(symbol)
        if state is None or state.samples < self.min_samples:
            return None
        return math.sqrt(state.variance * self._annualise)


class Sizer:
    """The configured sizing method."""

    def __init__(self, config: RiskConfig) -> None:
        self.config = config
        self.volatility = VolatilityEstimator(
            config.volatility_sample_ms, config.volatility_halflife, config.volatility_min_samples
        )

    def target_value(self, decision: Decision, equity: float) -> float | str:
        """The signed position value the decision asks for, or why it cannot be sized."""
        config = self.config
        method = config.sizing
        if method == "allocation":
            return decision.target * config.allocation * equity
        if method == "fixed_fraction":
            stop = config.stop_distance
            if config.stop_sigmas is not None and decision.sigma > 0.0:
                stop = config.stop_sigmas * decision.sigma
            return decision.target * config.risk_per_trade * equity / max(stop, 1e-6)
        if method == "volatility_target":
            if decision.target == 0.0:
                return 0.0
            vol = self.volatility.volatility(decision.symbol)
            if vol is None:
                return f"volatility of {decision.symbol} not yet estimated"
            return decision.target * equity * config.volatility_target / max(vol, 1e-6)
        # kelly
        if decision.target == 0.0 or not decision.sigma > 0.0:
            return 0.0
        fraction = config.kelly_fraction * decision.mu / (decision.sigma * decision.sigma)
        return max(-config.kelly_cap, min(config.kelly_cap, fraction)) * equity
