"""Our own book of cash, positions and PnL, kept from fills."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.execution.portfolio import Portfolio
from orchestrator.orders import Fill, Side


def fill(side: Side, quantity: float, price: float, fee: float = 0.0, symbol: str = "BTC/USDT") -> Fill:
    return Fill("f", "c", "t", 0, "paper", symbol, side, quantity, price, fee, "USDT")


def test_open_add_reduce_flip_and_close() -> None:
    book = Portfolio(10_000.0)
    book.apply_fill(fill(Side.BUY, 2.0, 100.0, fee=1.0))
    book.apply_fill(fill(Side.BUY, 2.0, 110.0, fee=1.0))
    assert book.position("BTC/USDT") == 4.0
    assert book.average_prices["BTC/USDT"] == pytest.approx(105.0)
    book.apply_fill(fill(Side.SELL, 1.0, 125.0))
    assert book.realized_pnl == pytest.approx(20.0)
    assert book.average_prices["BTC/USDT"] == pytest.approx(105.0), "reducing keeps the entry price"
    book.apply_fill(fill(Side.SELL, 5.0, 100.0))  # closes 3 at -5 each, opens -2 at 100
    assert book.realized_pnl == pytest.approx(20.0 - 15.0)
    assert book.position("BTC/USDT") == -2.0
    assert book.average_prices["BTC/USDT"] == 100.0
    book.mark("BTC/USDT", 90.0)
    snapshot = book.snapshot()
    (position,) = snapshot.positions
    assert position.unrealized_pnl == pytest.approx(20.0)
    assert snapshot.cash == pytest.approx(10_000.0 - 200 - 220 + 125 + 500 - 2.0)
    assert snapshot.equity == pytest.approx(snapshot.cash - 2 * 90.0)
    assert snapshot.fees == 2.0
    assert book.gross_exposure == pytest.approx(180.0)
    book.apply_fill(fill(Side.BUY, 2.0, 95.0))
    assert book.quantities == {}
    assert book.average_prices == {}
    assert book.realized_pnl == pytest.approx(5.0 + 10.0)
    assert book.equity == pytest.approx(10_000.0 + 15.0 - 2.0)


def test_marks_ignore_prices_that_are_not_positive() -> None:
    book = Portfolio(1.0)
    book.mark("X", 5.0)
    book.mark("X", math.nan)
    book.mark("X", 0.0)
    assert book.marks["X"] == 5.0


fills = st.lists(
    st.tuples(
        st.sampled_from(Side),
        st.floats(min_value=0.001, max_value=100.0),
        st.floats(min_value=1.0, max_value=1e4),
        st.floats(min_value=0.0, max_value=10.0),
        st.sampled_from(["A/USDT", "B/USDT"]),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(fills, st.floats(min_value=1.0, max_value=1e4))
def test_equity_is_cash_plus_marked_positions_and_initial_plus_pnl(
    sequence: list[tuple[Side, float, float, float, str]], mark: float
) -> None:
    book = Portfolio(1e6)
    for side, quantity, price, fee, symbol in sequence:
        book.apply_fill(fill(side, quantity, price, fee, symbol))
    for symbol in ("A/USDT", "B/USDT"):
        book.mark(symbol, mark)
    snapshot = book.snapshot()
    unrealized = sum(p.unrealized_pnl for p in snapshot.positions)
    scale = 1e6 + sum(q * p for _, q, p, _, _ in sequence)
    assert math.isclose(
        snapshot.equity, book.initial_cash + book.realized_pnl + unrealized - book.fees, abs_tol=1e-9 * scale
    )
    marked = book.cash + sum(q * mark for q in book.quantities.values())
    assert math.isclose(snapshot.equity, marked, abs_tol=1e-9 * scale)
    assert book.fees == pytest.approx(sum(f for *_, f, _ in sequence))
