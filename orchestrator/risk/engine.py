"""The risk engine: sizes a decision into an order and gates it.

Sizing (``orchestrator.risk.sizing``) gives the position value the decision
asks for; the order is the difference from the symbol's committed position
(held plus still on its way in open orders), so a decision repeated before
a fill does not double the order.

Limits shrink the order to the room they leave, each measured on the
exposure after the order: the symbol's position, the bucket's and the
account's gross exposure, the net exposure, and the order's own notional.
An order that reduces an exposure is always within that limit, so a limit
breached by price moves can still be worked back down. What is left below
``min_order_notional`` is denied, naming the limit that left no room. The
trading state then decides: ACTIVE lets everything through, REDUCING only
what shrinks the position (a flip is cut at flat), PAUSED and HALTED
nothing. Last, at most ``max_orders_per_minute`` orders go out in any 60 s
of event time. Every refusal is an ``OrderDenied`` with its reason; it is
journaled and never reaches an adapter.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.execution.planner import OrderPlanner
from orchestrator.orders import OrderDenied, OrderIntent, Side
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.sizing import Sizer
from orchestrator.risk.state import TradingState
from orchestrator.signals import Decision

_EPSILON = 1e-9
RATE_WINDOW_MS = 60_000


@dataclass(frozen=True, slots=True)
class AccountView:
    """What the risk engine knows of the account when a decision arrives.

    The ``*_other`` exposures are notional values of every *other* symbol's
    committed position (held plus pending), at their latest marks.
    """

    price: float
    equity: float
    position: float  # signed, base units
    pending: float  # signed quantity of open orders not yet filled
    gross_other: float = 0.0
    net_other: float = 0.0
    bucket_other: float = 0.0


def _room(current: float, limit: float) -> tuple[float, float]:
    """Bounds on an order value ``v`` so that ``|current + v| <= limit``, or
    ``|current + v|`` shrinks when the limit is already exceeded."""
    room = max(limit, 0.0)
    return min(0.0, -room - current), max(0.0, room - current)


class RiskEngine:
    """Sizing, pre-trade limits and the trading state."""

    def __init__(self, config: RiskConfig, planner: OrderPlanner) -> None:
        self.config = config
        self.planner = planner
        self.state = TradingState.ACTIVE
        self.sizer = Sizer(config)
        self._sent: deque[int] = deque()

    def observe_price(self, symbol: str, ts: int, price: float) -> None:
        """A market price (O(1)); feeds the volatility estimate."""
        self.sizer.volatility.observe(symbol, ts, price)

    def price_observer(self) -> Callable[[str, int, float], None] | None:
        """What the core calls with every price, or ``None`` when sizing needs no prices."""
        return self.sizer.volatility.observe if self.config.sizing == "volatility_target" else None

    def evaluate(self, decision: Decision, account: AccountView, leg: int = 0) -> OrderIntent | OrderDenied | None:
        """The order that moves the position toward the decision's target,
        a denial saying why it may not go, or ``None`` when none is needed."""
        price = account.price
        if not price > 0.0 or not account.equity > 0.0:
            return None
        config = self.config
        sized = self.sizer.target_value(decision, account.equity)
        if isinstance(sized, str):
            side = Side.BUY if decision.target > 0.0 else Side.SELL
            return OrderDenied(decision.trace_id, decision.ts, decision.symbol, side, 0.0, sized)
        committed = (account.position + account.pending) * price
        wanted = sized - committed
        minimum = max(config.min_order_notional, _EPSILON)
        if abs(wanted) < minimum:
            return None
        if self.state in (TradingState.HALTED, TradingState.PAUSED):
            return self._deny(decision, wanted, price, f"trading state {self.state.value}: no new orders")
        value, binding = self._within_limits(decision, account, committed, wanted)
        if abs(value) < minimum:
            return self._deny(decision, wanted, price, f"{binding} leaves no room")
        reducing = abs(committed + value) < abs(committed) and (committed + value) * committed >= 0.0
        sent = self._sent
        while sent and decision.ts - sent[0] >= RATE_WINDOW_MS:
            sent.popleft()
        if config.max_orders_per_minute is not None and len(sent) >= config.max_orders_per_minute:
            return self._deny(
                decision, value, price, f"order rate limit: {len(sent)} orders in the last 60 s (max_orders_per_minute)"
            )
        sent.append(decision.ts)
        return self.planner.intent(decision, value / price, price, reduce_only=reducing, leg=leg)

    def _within_limits(
        self, decision: Decision, account: AccountView, committed: float, wanted: float
    ) -> tuple[float, str]:
        """The order value clipped to every limit, and the limit that bound it."""
        config = self.config
        largest = config.max_order_notional
        # (low, high, limit name, limit value): only the binding limit's name is formatted.
        bounds: list[tuple[float, float, str, float]] = [(-largest, largest, "max_order_notional {}", largest)]
        limit = config.position_limit(decision.symbol)
        bounds.append((*_room(committed, limit), "position limit {} for " + decision.symbol, limit))
        if config.max_gross_notional is not None:
            room = config.max_gross_notional - account.gross_other
            bounds.append((*_room(committed, room), "max_gross_notional {}", config.max_gross_notional))
        bucket_limit = config.max_bucket_notional.get(decision.bucket)
        if bucket_limit is not None:
            room = bucket_limit - account.bucket_other
            bounds.append((*_room(committed, room), "bucket limit {} for " + decision.bucket, bucket_limit))
        if config.max_net_notional is not None:
            net = account.net_other + committed
            bounds.append((*_room(net, config.max_net_notional), "max_net_notional {}", config.max_net_notional))
        if self.state is TradingState.REDUCING:
            bounds.append((min(0.0, -committed), max(0.0, -committed), "trading state REDUCING", math.nan))
        value = wanted
        binding = ("limits", math.nan)
        for low, high, name, size in bounds:
            if value > high:
                value, binding = high, (name, size)
            elif value < low:
                value, binding = low, (name, size)
        name, size = binding
        if math.isnan(size):
            return value, name + (": only reducing orders" if name.startswith("trading state") else "")
        return value, name.format(f"{size:g}")

    @staticmethod
    def _deny(decision: Decision, value: float, price: float, reason: str) -> OrderDenied:
        return OrderDenied(decision.trace_id, decision.ts, decision.symbol, Side.of(value), abs(value) / price, reason)
