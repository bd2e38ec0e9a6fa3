"""Sizing methods, limits, trading states and the order rate of the risk engine."""

from __future__ import annotations

import math

import pytest

from orchestrator.execution.config import ExecutionConfig
from orchestrator.execution.ids import IdSequence
from orchestrator.execution.planner import OrderPlanner
from orchestrator.orders import OrderDenied, OrderIntent, Side
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.engine import AccountView, RiskEngine
from orchestrator.risk.state import TradingState
from orchestrator.signals import Decision


def engine(**config: object) -> RiskEngine:
    settings: dict[str, object] = {"max_orders_per_minute": None}
    settings.update(config)
    planner = OrderPlanner(ExecutionConfig(), IdSequence("t"), lambda symbol: "paper")
    return RiskEngine(RiskConfig.model_validate(settings), planner)


def decision(target: float, ts: int = 0, symbol: str = "BTC/USDT", mu: float = 0.0, sigma: float = 0.0) -> Decision:
    return Decision(f"t-{ts}", ts, symbol, "default", target, 1.0, mu, sigma, "test", {})


def account(
    position: float = 0.0, pending: float = 0.0, price: float = 100.0, equity: float = 100_000.0, **others: float
) -> AccountView:
    return AccountView(price, equity, position, pending, **others)


def notional(outcome: object) -> float:
    assert isinstance(outcome, OrderIntent), outcome
    return outcome.signed_quantity * 100.0


def test_allocation_sizing_counts_pending_orders() -> None:
    risk = engine(allocation=0.1)
    assert notional(risk.evaluate(decision(0.5), account())) == pytest.approx(5_000.0)
    # 30 units already on their way: only the rest is ordered
    assert notional(risk.evaluate(decision(0.5), account(pending=30.0))) == pytest.approx(2_000.0)
    assert risk.evaluate(decision(0.5), account(position=50.0)) is None


def test_fixed_fraction_risks_the_same_equity_at_the_stop() -> None:
    risk = engine(
        sizing="fixed_fraction",
        risk_per_trade=0.01,
        stop_distance=0.05,
        max_position_notional=1e9,
        max_order_notional=1e9,
    )
    order = notional(risk.evaluate(decision(1.0), account()))
    assert order == pytest.approx(20_000.0)  # 1 % of 100k lost on a 5 % stop
    assert order * 0.05 == pytest.approx(1_000.0)
    sigma_stop = engine(
        sizing="fixed_fraction", risk_per_trade=0.01, stop_sigmas=2.0, max_order_notional=1e9, max_position_notional=1e9
    )
    assert notional(sigma_stop.evaluate(decision(1.0, sigma=0.02), account())) == pytest.approx(25_000.0)


def test_volatility_target_scales_inversely_with_volatility() -> None:
    risk = engine(
        sizing="volatility_target",
        volatility_target=0.2,
        volatility_sample_ms=60_000,
        volatility_min_samples=5,
        max_position_notional=1e9,
        max_order_notional=1e9,
    )
    denied = risk.evaluate(decision(1.0), account())
    assert isinstance(denied, OrderDenied)
    assert "not yet estimated" in denied.reason
    price = 100.0
    for i in range(200):
        price *= math.exp(0.002 if i % 2 else -0.002)  # |log return| 0.002 per minute
        risk.observe_price("BTC/USDT", i * 60_000, price)
    vol = risk.sizer.volatility.volatility("BTC/USDT")
    assert vol == pytest.approx(0.002 * math.sqrt(365.25 * 24 * 60), rel=1e-6)
    assert notional(risk.evaluate(decision(1.0), account())) == pytest.approx(100_000.0 * 0.2 / vol)


def test_kelly_is_fractional_and_capped() -> None:
    risk = engine(sizing="kelly", kelly_fraction=0.5, kelly_cap=0.25, max_position_notional=1e9, max_order_notional=1e9)
    # full Kelly mu / sigma^2 = 0.001 / 0.0001 = 10 -> half 5 -> capped at 0.25 of equity
    assert notional(risk.evaluate(decision(1.0, mu=0.001, sigma=0.01), account())) == pytest.approx(25_000.0)
    assert notional(risk.evaluate(decision(1.0, mu=0.00001, sigma=0.01), account())) == pytest.approx(5_000.0)
    assert notional(risk.evaluate(decision(-1.0, mu=-0.001, sigma=0.01), account())) == pytest.approx(-25_000.0)
    assert risk.evaluate(decision(1.0, mu=0.001, sigma=0.0), account()) is None


def test_order_and_position_limits_shrink_then_deny_with_reason() -> None:
    risk = engine(allocation=1.0, max_order_notional=1_000.0, max_position_notional=5_000.0)
    assert notional(risk.evaluate(decision(1.0), account())) == pytest.approx(1_000.0)
    assert notional(risk.evaluate(decision(1.0), account(position=45.0))) == pytest.approx(500.0)
    denied = risk.evaluate(decision(1.0), account(position=50.0))
    assert isinstance(denied, OrderDenied)
    assert denied.reason == "position limit 5000 for BTC/USDT leaves no room"
    assert denied.side is Side.BUY


def test_gross_net_and_bucket_limits() -> None:
    risk = engine(
        allocation=1.0,
        max_order_notional=1e9,
        max_position_notional=1e9,
        max_gross_notional=10_000.0,
        max_net_notional=6_000.0,
        max_bucket_notional={"default": 8_000.0},
    )
    assert notional(risk.evaluate(decision(1.0), account(gross_other=7_000.0))) == pytest.approx(3_000.0)
    assert notional(risk.evaluate(decision(1.0), account(net_other=5_000.0, gross_other=5_000.0))) == (
        pytest.approx(1_000.0)
    )
    assert notional(risk.evaluate(decision(1.0), account(bucket_other=7_500.0, gross_other=7_500.0))) == (
        pytest.approx(500.0)
    )
    denied = risk.evaluate(decision(1.0), account(gross_other=12_000.0))
    assert isinstance(denied, OrderDenied)
    assert denied.reason == "max_gross_notional 10000 leaves no room"
    # a short against a long book reduces net exposure: allowed although net is at its limit
    assert notional(risk.evaluate(decision(-0.02), account(net_other=6_000.0, gross_other=6_000.0))) == (
        pytest.approx(-2_000.0)
    )


def test_order_rate_limit_denies_with_reason() -> None:
    risk = engine(max_orders_per_minute=2)
    outcomes = [risk.evaluate(decision(0.5 if i % 2 else -0.5, ts=i * 1_000), account()) for i in range(3)]
    assert isinstance(outcomes[0], OrderIntent)
    assert isinstance(outcomes[1], OrderIntent)
    assert isinstance(outcomes[2], OrderDenied)
    assert outcomes[2].reason.startswith("order rate limit: 2 orders in the last 60 s")
    assert isinstance(risk.evaluate(decision(0.5, ts=61_000), account()), OrderIntent)


def test_reducing_lets_only_reducing_orders_through() -> None:
    risk = engine(allocation=0.1)
    risk.state = TradingState.REDUCING
    denied = risk.evaluate(decision(0.5), account(position=10.0))
    assert isinstance(denied, OrderDenied)
    assert "REDUCING" in denied.reason
    reduce = risk.evaluate(decision(0.05), account(position=80.0))
    assert isinstance(reduce, OrderIntent)
    assert reduce.reduce_only
    assert notional(reduce) == pytest.approx(-7_500.0)
    # a flip is cut at flat
    flip = risk.evaluate(decision(-1.0), account(position=30.0))
    assert notional(flip) == pytest.approx(-3_000.0)
    assert isinstance(risk.evaluate(decision(-0.5), account()), OrderDenied)


@pytest.mark.parametrize("state", [TradingState.HALTED, TradingState.PAUSED])
def test_halted_and_paused_deny_everything(state: TradingState) -> None:
    risk = engine()
    risk.state = state
    for target, position in ((1.0, 0.0), (0.0, 50.0)):
        denied = risk.evaluate(decision(target), account(position=position))
        assert isinstance(denied, OrderDenied)
        assert denied.reason == f"trading state {state.value}: no new orders"
