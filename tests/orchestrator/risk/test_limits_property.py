"""Property: no sequence of decisions makes the risk engine emit an order that breaks a limit.

A random walk of decisions, price moves, partial fills and trading-state
changes drives the engine; every order it emits is checked against every
limit on the exposure *after* the order (an order may always shrink an
exposure that price moves pushed over its limit), the trading state and the
order rate.
"""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.execution.config import ExecutionConfig
from orchestrator.execution.ids import IdSequence
from orchestrator.execution.planner import OrderPlanner
from orchestrator.orders import OrderIntent
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.engine import AccountView, RiskEngine
from orchestrator.risk.state import TradingState
from orchestrator.signals import Decision

BUCKET = {"A": "majors", "B": "majors", "C": "alts"}
TOLERANCE = 1e-6

config_strategy = st.builds(
    RiskConfig,
    sizing=st.sampled_from(["allocation", "fixed_fraction", "kelly"]),
    allocation=st.floats(0.05, 3.0),
    max_order_notional=st.floats(100.0, 50_000.0),
    max_position_notional=st.floats(500.0, 80_000.0),
    max_gross_notional=st.one_of(st.none(), st.floats(1_000.0, 150_000.0)),
    max_net_notional=st.one_of(st.none(), st.floats(500.0, 100_000.0)),
    max_bucket_notional=st.fixed_dictionaries({}, optional={"majors": st.floats(500.0, 90_000.0)}),
    min_order_notional=st.floats(0.0, 100.0),  # never above max_order_notional
    max_orders_per_minute=st.one_of(st.none(), st.integers(1, 10)),
)

step_strategy = st.one_of(
    st.tuples(st.just("decide"), st.sampled_from("ABC"), st.floats(-1.0, 1.0), st.integers(0, 30_000)),
    st.tuples(st.just("price"), st.sampled_from("ABC"), st.floats(0.5, 2.0), st.just(0)),
    st.tuples(st.just("fill"), st.sampled_from("ABC"), st.floats(0.0, 1.0), st.just(0)),
    st.tuples(st.just("state"), st.sampled_from(list(TradingState)), st.just(0.0), st.just(0)),
)


def within(before: float, after: float, limit: float) -> bool:
    """After the order the exposure is within its limit, or it shrank without flipping past it."""
    return abs(after) <= limit * (1 + TOLERANCE) + TOLERANCE or abs(after) <= abs(before) + TOLERANCE


@settings(max_examples=300, deadline=None)
@given(config=config_strategy, steps=st.lists(step_strategy, min_size=1, max_size=60))
def test_no_decision_sequence_breaks_a_limit(config: RiskConfig, steps: list[tuple[object, ...]]) -> None:
    planner = OrderPlanner(ExecutionConfig(), IdSequence("p"), lambda symbol: "paper")
    risk = RiskEngine(config, planner)
    prices = {"A": 100.0, "B": 20.0, "C": 3.0}
    position = dict.fromkeys(prices, 0.0)
    pending = dict.fromkeys(prices, 0.0)
    equity = 100_000.0
    now = 0
    sent: deque[int] = deque()

    def value(symbol: str) -> float:
        return (position[symbol] + pending[symbol]) * prices[symbol]

    for kind, a, b, c in steps:
        if kind == "price":
            prices[a] *= b  # type: ignore[index,operator]
            continue
        if kind == "fill":
            filled = pending[a] * b  # type: ignore[index,operator]
            position[a] += filled  # type: ignore[index]
            pending[a] -= filled  # type: ignore[index]
            continue
        if kind == "state":
            risk.state = a  # type: ignore[assignment]
            continue
        symbol, target = str(a), float(b)  # type: ignore[arg-type]
        now += int(c)  # type: ignore[call-overload]
        others = [s for s in prices if s != symbol]
        view = AccountView(
            price=prices[symbol],
            equity=equity,
            position=position[symbol],
            pending=pending[symbol],
            gross_other=sum(abs(value(s)) for s in others),
            net_other=sum(value(s) for s in others),
            bucket_other=sum(abs(value(s)) for s in others if BUCKET[s] == BUCKET[symbol]),
        )
        decision = Decision(f"p-{now}", now, symbol, BUCKET[symbol], target, 1.0, 0.001 * target, 0.02, "test", {})
        outcome = risk.evaluate(decision, view)
        if not isinstance(outcome, OrderIntent):
            continue
        order = outcome.signed_quantity * prices[symbol]
        before = value(symbol)
        after = before + order
        assert abs(order) <= config.max_order_notional * (1 + TOLERANCE)
        assert abs(order) >= config.min_order_notional * (1 - TOLERANCE)
        assert within(before, after, config.position_limit(symbol))
        gross_other, net_other, bucket_other = view.gross_other, view.net_other, view.bucket_other
        if config.max_gross_notional is not None:
            assert within(gross_other + abs(before), gross_other + abs(after), config.max_gross_notional)
        if config.max_net_notional is not None:
            assert within(net_other + before, net_other + after, config.max_net_notional)
        bucket_limit = config.max_bucket_notional.get(BUCKET[symbol])
        if bucket_limit is not None:
            assert within(bucket_other + abs(before), bucket_other + abs(after), bucket_limit)
        assert risk.state in (TradingState.ACTIVE, TradingState.REDUCING)
        if risk.state is TradingState.REDUCING:
            assert abs(after) <= abs(before) + TOLERANCE
            assert after * before >= -TOLERANCE
            assert outcome.reduce_only or abs(after) >= abs(before) - TOLERANCE
        sent.append(now)
        while sent and now - sent[0] >= 60_000:
            sent.popleft()
        if config.max_orders_per_minute is not None:
            assert len(sent) <= config.max_orders_per_minute
        pending[symbol] += outcome.signed_quantity
