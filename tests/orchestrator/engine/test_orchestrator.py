"""The core cycle: market event -> modules -> fused decision -> risk -> order -> fill -> portfolio."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator import Bar
from orchestrator.engine.listener import EngineListener
from orchestrator.engine.orchestrator import MAX_LEGS_PER_DECISION, TradingOrchestrator
from orchestrator.execution.paper import PaperExchange
from orchestrator.orders import Fill, OrderDenied, OrderIntent, OrderStatus, OrderUpdate
from orchestrator.risk.state import TradingState
from orchestrator.signals import Decision

SYMBOL = "BTC/USDT"


class Journal(EngineListener):
    """Everything the engine reports, in order."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.intents: list[OrderIntent] = []
        self.denied: list[OrderDenied] = []
        self.updates: list[OrderUpdate] = []
        self.fills: list[Fill] = []
        self.states: list[tuple[TradingState, str]] = []

    def on_decision(self, decision: Decision) -> None:
        self.decisions.append(decision)

    def on_order_intent(self, intent: OrderIntent) -> None:
        self.intents.append(intent)

    def on_order_denied(self, denied: OrderDenied) -> None:
        self.denied.append(denied)

    def on_order_update(self, update: OrderUpdate) -> None:
        self.updates.append(update)

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)

    def on_trading_state(self, state: TradingState, reason: str) -> None:
        self.states.append((state, reason))


@pytest.fixture
def signal_engine(
    scripted_module: Callable[..., Path], build_engine: Callable[..., Any], make_config: Callable[..., Any]
) -> Callable[..., tuple[TradingOrchestrator, Journal]]:
    """An engine whose only module follows the script ``{ts: (alpha, confidence)}``
    (``default`` for other bars); weighted fusion of one module, so target = alpha."""

    def build(
        script: dict[int, Any] | None = None, *, default: Any = None, **sections: Any
    ) -> tuple[TradingOrchestrator, Journal]:
        engine = build_engine(make_config({"signal": scripted_module("signal", script, default=default)}, **sections))
        journal = Journal()
        engine.listeners.append(journal)
        return engine, journal

    return build


def paper(engine: TradingOrchestrator) -> PaperExchange:
    venue = engine.router.adapters["paper"]
    assert isinstance(venue, PaperExchange)
    return venue


def test_a_decision_moves_the_position_to_its_target_through_orders(
    signal_engine: Callable[..., Any], make_bar: Callable[..., Bar]
) -> None:
    engine, journal = signal_engine({1000: (0.5, 1.0), 2000: (-0.2, 1.0)})
    engine.on_event(make_bar(1000, 100.0))
    # target 0.5 x allocation 1.0 x equity 100 000 at 100 = 500 units
    assert engine.portfolio.position(SYMBOL) == pytest.approx(500.0)
    engine.on_event(make_bar(2000, 125.0))
    # equity 100 000 + 500 x 25 = 112 500; -0.2 of it at 125 = -180 units
    assert engine.portfolio.position(SYMBOL) == pytest.approx(-180.0)
    assert engine.portfolio.realized_pnl == pytest.approx(500 * 25.0)
    assert [d.target for d in journal.decisions] == [0.5, -0.2]
    assert engine.open_order_count == 0
    assert engine.pending_quantity(SYMBOL) == 0.0


def test_orders_are_clipped_to_max_order_notional_and_worked_in_legs(
    signal_engine: Callable[..., Any], make_bar: Callable[..., Bar]
) -> None:
    engine, journal = signal_engine({1000: (0.5, 1.0)}, risk={"max_order_notional": 20_000.0})
    engine.on_event(make_bar(1000, 100.0))
    assert [i.quantity * 100.0 for i in journal.intents] == pytest.approx([20_000.0, 20_000.0, 10_000.0])
    (decision,) = journal.decisions
    assert [i.client_order_id for i in journal.intents] == ["ot1n0", "ot1n1", "ot1n2"]
    assert decision.trace_id == "t-1"
    assert engine.portfolio.position(SYMBOL) == pytest.approx(500.0)


def test_max_position_notional_caps_the_target(signal_engine: Callable[..., Any], make_bar: Callable[..., Bar]) -> None:
    engine, _ = signal_engine({1000: (1.0, 1.0), 2000: (-1.0, 1.0)}, risk={"max_position_notional": 30_000.0})
    engine.on_event(make_bar(1000, 100.0))
    assert engine.portfolio.position(SYMBOL) == pytest.approx(300.0)
    engine.on_event(make_bar(2000, 100.0))
    assert engine.portfolio.position(SYMBOL) == pytest.approx(-300.0)


def test_the_trace_id_flows_from_decision_to_intent_to_fill(
    signal_engine: Callable[..., Any], make_bar: Callable[..., Bar]
) -> None:
    engine, journal = signal_engine({1000: (0.3, 1.0), 3000: (0.0, 1.0)})
    for second in (1, 2, 3):
        engine.on_event(make_bar(second * 1000, 100.0))
    assert [d.trace_id for d in journal.decisions] == ["t-1", "t-2"]
    for decision in journal.decisions:
        (intent,) = [i for i in journal.intents if i.trace_id == decision.trace_id]
        assert intent.client_order_id == f"o{decision.trace_id.replace('-', '')}n0"
        assert intent.client_order_id.isalnum()
        assert len(intent.client_order_id) <= 32
        assert (intent.ts, intent.symbol, intent.venue) == (decision.ts, decision.symbol, "paper")
        (fill,) = [f for f in journal.fills if f.client_order_id == intent.client_order_id]
        assert fill.trace_id == decision.trace_id
        updates = [u for u in journal.updates if u.client_order_id == intent.client_order_id]
        assert [u.status for u in updates] == [OrderStatus.OPEN, OrderStatus.FILLED]
        assert {u.trace_id for u in updates} == {decision.trace_id}
    assert journal.intents[1].reduce_only
    assert engine.portfolio.position(SYMBOL) == 0.0


def test_decision_gating_by_min_change_and_min_interval(
    signal_engine: Callable[..., Any], make_bar: Callable[..., Bar]
) -> None:
    script = {1000: (0.5, 1.0), 2000: (0.52, 1.0), 3000: (0.7, 1.0), 4000: (0.0, 1.0), 9000: (0.0, 1.0)}
    engine, journal = signal_engine(script, decision={"min_change": 0.1, "min_interval_ms": 2500})
    for second in range(1, 10):
        engine.on_event(make_bar(second * 1000, 100.0))
    # 0.52 moves too little; 0.7 comes too soon after 0.5; going flat is always a change.
    assert [(d.ts, d.target) for d in journal.decisions] == [(1000, 0.5), (4000, 0.0)]


def test_pending_orders_prevent_a_repeated_decision_from_ordering_twice(
    signal_engine: Callable[..., Any], make_bar: Callable[..., Bar]
) -> None:
    # Passive limit orders rest below the market until a bar trades through them;
    # min_order_notional keeps the small re-sizings after the fill from trading.
    engine, journal = signal_engine(
        default=(0.5, 1.0),
        execution={"order_type": "limit", "limit_offset_bps": -100.0},
        risk={"min_order_notional": 1_000.0},
    )
    for second in (1, 2, 3):
        engine.on_event(make_bar(second * 1000, 100.0))
    assert len(journal.decisions) == 3
    (intent,) = journal.intents
    assert intent.limit_price == pytest.approx(99.0)
    assert engine.open_order_count == 1
    assert engine.pending_quantity(SYMBOL) == pytest.approx(intent.quantity)
    engine.on_event(make_bar(4000, 100.0, spread=2.0))  # low 98: fills the resting buy as maker
    (fill,) = journal.fills
    assert (fill.client_order_id, fill.liquidity, fill.price) == (intent.client_order_id, "maker", intent.limit_price)
    assert engine.pending_quantity(SYMBOL) == 0.0
    assert engine.open_order_count == 0
    for second in (5, 6):
        engine.on_event(make_bar(second * 1000, 100.0))
    assert len(journal.decisions) == 6
    assert journal.intents == [intent]


def test_reducing_lets_only_reducing_orders_through(
    signal_engine: Callable[..., Any], make_bar: Callable[..., Bar]
) -> None:
    engine, journal = signal_engine({1000: (0.5, 1.0), 2000: (0.8, 1.0), 3000: (-0.5, 1.0), 4000: (0.2, 1.0)})
    engine.on_event(make_bar(1000, 100.0))
    engine.set_trading_state(TradingState.REDUCING, reason="drawdown")
    engine.on_event(make_bar(2000, 100.0))
    (denied,) = journal.denied
    assert denied.reason.startswith("trading state REDUCING")
    assert (denied.trace_id, denied.quantity) == ("t-2", pytest.approx(300.0))
    engine.on_event(make_bar(3000, 100.0))  # a flip to short: only the reducing part, down to flat
    assert engine.portfolio.position(SYMBOL) == pytest.approx(0.0)
    assert journal.intents[-1].reduce_only
    engine.on_event(make_bar(4000, 100.0))  # flat: any new long is new risk
    assert engine.portfolio.position(SYMBOL) == pytest.approx(0.0)
    assert len(journal.denied) == 3
    assert journal.states == [(TradingState.REDUCING, "drawdown")]


@pytest.mark.parametrize("state", [TradingState.PAUSED, TradingState.HALTED])
def test_paused_and_halted_deny_every_order_with_a_reason(
    signal_engine: Callable[..., Any], make_bar: Callable[..., Bar], state: TradingState
) -> None:
    engine, journal = signal_engine({1000: (0.5, 1.0), 2000: (0.0, 1.0)})
    engine.on_event(make_bar(1000, 100.0))
    engine.set_trading_state(state, reason="operator")
    engine.on_event(make_bar(2000, 100.0))
    assert len(journal.decisions) == 2, "decisions go on"
    (denied,) = journal.denied
    assert denied.reason == f"trading state {state.value}: no new orders"
    assert engine.counters.denied == 1
    assert engine.portfolio.position(SYMBOL) == pytest.approx(500.0)
    engine.set_trading_state(TradingState.ACTIVE, reason="operator")
    engine.on_event(make_bar(3000, 100.0))  # the scripted module is silent now: nothing happens by itself
    assert engine.portfolio.position(SYMBOL) == pytest.approx(500.0)
    assert [s for s, _ in journal.states] == [state, TradingState.ACTIVE]


async def test_halting_cancels_open_orders(signal_engine: Callable[..., Any], make_bar: Callable[..., Bar]) -> None:
    engine, journal = signal_engine({1000: (0.5, 1.0)}, execution={"order_type": "limit", "limit_offset_bps": -100.0})
    engine.on_event(make_bar(1000, 100.0))
    assert engine.open_order_count == 1
    assert len(await paper(engine).open_orders()) == 1
    engine.set_trading_state(TradingState.HALTED, reason="kill switch")
    assert engine.open_order_count == 0
    assert engine.pending_quantity(SYMBOL) == 0.0
    assert await paper(engine).open_orders() == []
    assert journal.updates[-1].status is OrderStatus.CANCELED
    engine.on_event(make_bar(2000, 100.0, spread=5.0))
    assert journal.fills == []
    assert journal.states == [(TradingState.HALTED, "kill switch")]


def test_a_rejected_order_is_not_retried_leg_after_leg(
    signal_engine: Callable[..., Any], make_bar: Callable[..., Bar]
) -> None:
    # Allocation 2 without leverage asks for twice the cash: the venue refuses.
    engine, journal = signal_engine({1000: (1.0, 1.0)}, risk={"allocation": 2.0})
    engine.on_event(make_bar(1000, 100.0))
    assert len(journal.intents) == 1
    assert journal.updates[-1].reason == "insufficient funds"
    assert engine.open_order_count == 0
    assert MAX_LEGS_PER_DECISION > 1


def test_the_portfolio_agrees_with_the_venue_and_its_own_pnl(
    build_engine: Callable[..., Any], make_config: Callable[..., Any], make_bars: Callable[..., list[Bar]]
) -> None:
    engine = build_engine(
        make_config(
            {"ma": {"module": "ma_crossover", "params": {"fast": 3, "slow": 8}}},
            fusion={"method": "confidence"},
            execution={"paper": {"taker_fee_bps": 7.5, "slippage_bps": 2.0}},
            risk={"allocation": 0.8, "max_order_notional": 30_000.0, "min_order_notional": 10.0},
        )
    )
    journal = Journal()
    engine.listeners.append(journal)
    for bar in make_bars(400, seed=3):
        engine.on_event(bar)
    portfolio = engine.portfolio
    venue = paper(engine)
    assert len(journal.fills) > 10
    assert portfolio.cash == pytest.approx(venue.cash)
    assert portfolio.position(SYMBOL) == pytest.approx(venue.holdings.get(SYMBOL, 0.0))
    assert portfolio.fees == pytest.approx(sum(f.fee for f in journal.fills))
    assert portfolio.fees > 0.0
    snapshot = portfolio.snapshot()
    unrealized = sum(p.unrealized_pnl for p in snapshot.positions)
    assert snapshot.equity == pytest.approx(
        portfolio.initial_cash + portfolio.realized_pnl + unrealized - portfolio.fees
    )
    mark = portfolio.marks[SYMBOL]
    assert snapshot.equity == pytest.approx(portfolio.cash + portfolio.position(SYMBOL) * mark)
