"""The risk engine: sizing toward the target, limits, trading states.

The properties check every order the engine lets out, alone and inside the
full core over random decision sequences and prices: no order is larger
than ``max_order_notional``, and none takes a position beyond
``max_position_notional`` (an order may only shrink a position that price
moves have already pushed past it).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import Bar
from orchestrator.config.loader import load_config
from orchestrator.engine.builder import build_orchestrator
from orchestrator.engine.listener import EngineListener
from orchestrator.engine.orchestrator import TradingOrchestrator
from orchestrator.engine.plan import RunPlan, plan_run
from orchestrator.execution.config import ExecutionConfig
from orchestrator.execution.ids import IdSequence
from orchestrator.execution.planner import OrderPlanner
from orchestrator.orders import OrderDenied, OrderIntent, OrderType, Side
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.engine import AccountView, RiskEngine
from orchestrator.risk.state import TradingState
from orchestrator.signals import Decision

LIMITS = {
    "allocation": 1.0,
    "max_position_notional": 50_000.0,
    "max_order_notional": 10_000.0,
    "min_order_notional": 10.0,
}


def decision(target: float, trace_id: str = "r-1") -> Decision:
    return Decision(trace_id, 5, "BTC/USDT", "default", target, 1.0, 0.0, 0.0, "weighted", {})


def risk_engine(execution: ExecutionConfig | None = None, **limits: float) -> RiskEngine:
    planner = OrderPlanner(execution or ExecutionConfig(), IdSequence("r"), lambda symbol: "paper")
    return RiskEngine(RiskConfig(**{**LIMITS, **limits}), planner)


def account(
    position: float = 0.0, pending: float = 0.0, price: float = 100.0, equity: float = 100_000.0
) -> AccountView:
    return AccountView(price=price, equity=equity, position=position, pending=pending)


def intent_of(outcome: object) -> OrderIntent:
    assert isinstance(outcome, OrderIntent), outcome
    return outcome


def test_sizes_the_difference_to_the_target() -> None:
    engine = risk_engine(allocation=0.2)
    order = intent_of(engine.evaluate(decision(0.25), account(position=10.0)))
    # 0.25 x 0.2 x 100 000 = 5 000 at 100 = 50 units, 10 held
    assert (order.side, order.quantity, order.reduce_only) == (Side.BUY, pytest.approx(40.0), False)
    assert (order.client_order_id, order.trace_id, order.ts) == ("or1n0", "r-1", 5)
    assert order.order_type is OrderType.MARKET


def test_clips_orders_and_caps_the_position() -> None:
    engine = risk_engine()
    assert intent_of(engine.evaluate(decision(1.0), account())).quantity == pytest.approx(100.0)
    assert intent_of(engine.evaluate(decision(1.0), account(position=450.0))).quantity == pytest.approx(50.0)
    at_limit = engine.evaluate(decision(1.0), account(position=500.0))
    assert isinstance(at_limit, OrderDenied)
    assert at_limit.reason == "position limit 50000 for BTC/USDT leaves no room"
    assert intent_of(engine.evaluate(decision(-1.0), account(position=-420.0))).quantity == pytest.approx(80.0)


def test_open_orders_count_so_a_repeated_decision_orders_nothing_more() -> None:
    engine = risk_engine()
    first = intent_of(engine.evaluate(decision(0.05), account()))
    assert first.quantity == pytest.approx(50.0)
    assert engine.evaluate(decision(0.05), account(pending=50.0)) is None
    assert intent_of(engine.evaluate(decision(0.05), account(pending=30.0))).quantity == pytest.approx(20.0)


def test_orders_below_the_minimum_are_not_worth_sending() -> None:
    engine = risk_engine(min_order_notional=500.0)
    assert engine.evaluate(decision(0.05), account(position=46.0)) is None  # 4 units = 400
    assert intent_of(engine.evaluate(decision(0.05), account(position=45.0))).quantity == pytest.approx(5.0)


@pytest.mark.parametrize(
    "view", [account(price=0.0), account(price=math.nan), account(equity=0.0), account(equity=-5.0)]
)
def test_no_order_without_a_price_or_equity(view: AccountView) -> None:
    assert risk_engine().evaluate(decision(1.0), view) is None


def test_reduce_only_marks_orders_that_shrink_the_position() -> None:
    engine = risk_engine()
    assert intent_of(engine.evaluate(decision(0.0), account(position=50.0))).reduce_only
    assert intent_of(engine.evaluate(decision(0.0), account(position=-50.0))).reduce_only
    flip = intent_of(engine.evaluate(decision(-0.5), account(position=80.0)))
    # clipped to 100 units: 80 -> -20 crosses zero, so it is not reduce-only
    assert (flip.side, flip.quantity, flip.reduce_only) == (Side.SELL, pytest.approx(100.0), False)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (TradingState.PAUSED, "trading state PAUSED: no new orders"),
        (TradingState.HALTED, "trading state HALTED: no new orders"),
    ],
)
def test_paused_and_halted_deny_everything(state: TradingState, reason: str) -> None:
    engine = risk_engine()
    engine.state = state
    for view in (account(), account(position=50.0)):
        denied = engine.evaluate(decision(0.0 if view.position else 0.3, "r-9"), view)
        assert isinstance(denied, OrderDenied)
        assert denied.reason == reason
        assert (denied.trace_id, denied.symbol) == ("r-9", "BTC/USDT")


def test_reducing_allows_only_reductions() -> None:
    engine = risk_engine()
    engine.state = TradingState.REDUCING
    denied = engine.evaluate(decision(0.3), account(position=10.0))
    assert isinstance(denied, OrderDenied)
    assert denied.reason == "trading state REDUCING: only reducing orders leaves no room"
    assert (denied.side, denied.quantity) == (Side.BUY, pytest.approx(290.0))  # what the decision wanted
    assert intent_of(engine.evaluate(decision(0.0), account(position=10.0))).reduce_only
    assert isinstance(engine.evaluate(decision(0.0), account(position=0.0, pending=5.0)), OrderIntent)
    flip = engine.evaluate(decision(-0.3), account(position=10.0))  # a flip is cut at flat
    assert isinstance(flip, OrderIntent)
    assert (flip.side, flip.quantity, flip.reduce_only) == (Side.SELL, pytest.approx(10.0), True)
    assert TradingState.REDUCING.allows_reducing
    assert not TradingState.REDUCING.allows_new_risk


def test_limit_orders_are_priced_from_the_reference_with_the_offset() -> None:
    engine = risk_engine(ExecutionConfig(order_type="limit", limit_offset_bps=25.0))
    buy = intent_of(engine.evaluate(decision(0.05), account()))
    sell = intent_of(engine.evaluate(decision(-0.05), account()))
    assert (buy.order_type, buy.limit_price) == (OrderType.LIMIT, pytest.approx(100.25))
    assert sell.limit_price == pytest.approx(99.75)


def test_legs_get_their_own_client_order_ids() -> None:
    engine = risk_engine()
    ids = {intent_of(engine.evaluate(decision(0.5, "abc-12"), account(), leg)).client_order_id for leg in range(3)}
    assert ids == {"oabc12n0", "oabc12n1", "oabc12n2"}


# ------------------------------------------------------------ properties


def assert_within_limits(order: OrderIntent, committed: float, price: float, config: RiskConfig) -> None:
    tolerance = 1e-9
    assert order.quantity * price <= config.max_order_notional * (1 + tolerance)
    after = committed + order.signed_quantity
    within = abs(after) * price <= config.max_position_notional * (1 + tolerance)
    shrinking = abs(after) <= abs(committed) * (1 + tolerance)
    assert within or shrinking, (committed, after, price)


configs = st.builds(
    RiskConfig,
    allocation=st.floats(min_value=0.01, max_value=10.0),
    max_position_notional=st.floats(min_value=100.0, max_value=1e6),
    max_order_notional=st.floats(min_value=100.0, max_value=1e6),  # never below the minimum order
    min_order_notional=st.floats(min_value=0.0, max_value=100.0),
)


@settings(max_examples=400, deadline=None)
@given(
    config=configs,
    target=st.floats(min_value=-1.0, max_value=1.0),
    price=st.floats(min_value=1e-3, max_value=1e6),
    equity=st.floats(min_value=1.0, max_value=1e8),
    position=st.floats(min_value=-1e5, max_value=1e5),
    pending=st.floats(min_value=-1e4, max_value=1e4),
    state=st.sampled_from(TradingState),
)
def test_no_intent_breaks_a_limit(
    config: RiskConfig, target: float, price: float, equity: float, position: float, pending: float, state: TradingState
) -> None:
    engine = RiskEngine(config, OrderPlanner(ExecutionConfig(), IdSequence("p"), lambda symbol: "paper"))
    engine.state = state
    outcome = engine.evaluate(decision(target), AccountView(price, equity, position, pending))
    if isinstance(outcome, OrderIntent):
        assert_within_limits(outcome, position + pending, price, config)
        assert outcome.quantity * price >= config.min_order_notional * (1 - 1e-9)
        assert state in (TradingState.ACTIVE, TradingState.REDUCING)
        if state is TradingState.REDUCING:
            assert abs(position + pending + outcome.signed_quantity) < abs(position + pending)
    elif isinstance(outcome, OrderDenied):
        # ACTIVE denies only when a limit leaves no room for a worthwhile order.
        assert state is not TradingState.ACTIVE or outcome.reason.endswith("leaves no room")


SIGNAL = '''\
from orchestrator import AnalysisModule, EventKind, ModuleOutput, ModuleParams, Prediction


class Signal(AnalysisModule[ModuleParams]):
    """alpha = the bar's volume (the test's way of scripting decisions)."""

    name = "signal"
    version = "1"
    consumes = frozenset({EventKind.BAR})

    def on_bar(self, bar, ctx):
        return ModuleOutput(Prediction(mu=0.0, sigma=0.01, horizon=1.0, confidence=1.0, alpha=bar.volume))


MODULE = Signal
'''


class LimitChecker(EngineListener):
    def __init__(self, engine: TradingOrchestrator, config: RiskConfig) -> None:
        self.engine = engine
        self.config = config
        self.intents = 0

    def on_order_intent(self, intent: OrderIntent) -> None:
        # The engine counts the intent as pending before telling listeners.
        portfolio = self.engine.portfolio
        committed = (
            portfolio.position(intent.symbol) + self.engine.pending_quantity(intent.symbol) - intent.signed_quantity
        )
        assert_within_limits(intent, committed, portfolio.marks[intent.symbol], self.config)
        self.intents += 1


@pytest.fixture(scope="module")
def property_plan() -> RunPlan:
    with tempfile.TemporaryDirectory() as folder:
        module = Path(folder) / "signal.py"
        module.write_text(SIGNAL)
        config = Path(folder) / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "symbols": ["BTC/USDT"],
                    "modules": {"signal": {"path": str(module)}},
                    "fusion": {"method": "weighted"},
                    "decision": {"min_change": 0.0},
                    "execution": {"paper": {"taker_fee_bps": 7.5, "slippage_bps": 3.0, "allow_leverage": True}},
                    "risk": {
                        "allocation": 2.0,
                        "max_position_notional": 25_000.0,
                        "max_order_notional": 7_000.0,
                        "min_order_notional": 10.0,
                    },
                }
            )
        )
        return plan_run(load_config(config, env={}))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.floats(min_value=-1.0, max_value=1.0), st.floats(min_value=0.5, max_value=2.0), st.booleans()),
        min_size=1,
        max_size=40,
    )
)
def test_no_intent_from_the_core_breaks_a_limit(property_plan: RunPlan, steps: list[tuple[float, float, bool]]) -> None:
    engine = build_orchestrator(property_plan, run_id="p")
    checker = LimitChecker(engine, property_plan.config.risk)
    engine.listeners.append(checker)
    price = 100.0
    for index, (alpha, move, reducing) in enumerate(steps):
        price *= move
        engine.set_trading_state(TradingState.REDUCING if reducing else TradingState.ACTIVE, reason="test")
        engine.on_event(Bar("BTC/USDT", (index + 1) * 1000, price, price, price, price, alpha, 1000))
    assert engine.counters.intents == checker.intents


def test_the_core_property_can_fail(property_plan: RunPlan, make_bar: Callable[..., Any]) -> None:
    """The checker is not vacuous: a looser engine trips it."""
    engine = build_orchestrator(property_plan, run_id="p")
    strict = RiskConfig(allocation=2.0, max_position_notional=1_000.0, max_order_notional=7_000.0)
    engine.listeners.append(LimitChecker(engine, strict))
    with pytest.raises(AssertionError):
        engine.on_event(Bar("BTC/USDT", 1000, 100.0, 100.0, 100.0, 100.0, 1.0, 1000))
