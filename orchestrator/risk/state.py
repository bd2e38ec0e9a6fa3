"""Trading states, after NautilusTrader's: what kind of order may go out."""

from __future__ import annotations

import enum


class TradingState(enum.Enum):
    ACTIVE = "ACTIVE"  # everything allowed
    REDUCING = "REDUCING"  # only orders that shrink a position
    PAUSED = "PAUSED"  # operator pause: decisions go on, no new orders
    HALTED = "HALTED"  # kill switch: no new orders until resumed; cancels allowed

    @property
    def allows_new_risk(self) -> bool:
        return self is TradingState.ACTIVE

    @property
    def allows_reducing(self) -> bool:
        return self in (TradingState.ACTIVE, TradingState.REDUCING)
