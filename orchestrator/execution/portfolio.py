"""The orchestrator's own book of cash, positions and PnL, built from fills.

This is our view, kept from the fills the adapters report; the venue's view
is what recovery reconciles against. Quantities are signed (short < 0), and
everything is valued in one account currency.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.orders import Fill


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    symbol: str
    quantity: float
    average_price: float
    mark: float
    unrealized_pnl: float


@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    cash: float
    equity: float
    realized_pnl: float
    fees: float
    positions: tuple[PositionSnapshot, ...] = field(default_factory=tuple)


class Portfolio:
    """Cash and positions; ``mark`` keeps the latest price of each symbol."""

    def __init__(self, cash: float) -> None:
        self.initial_cash = cash
        self.cash = cash
        self.quantities: dict[str, float] = {}
        self.average_prices: dict[str, float] = {}
        self.marks: dict[str, float] = {}
        self.realized_pnl = 0.0
        self.fees = 0.0

    def mark(self, symbol: str, price: float) -> None:
        if price > 0.0:
            self.marks[symbol] = price

    def position(self, symbol: str) -> float:
        return self.quantities.get(symbol, 0.0)

    def apply_fill(self, fill: Fill) -> None:
        signed = fill.signed_quantity
        before = self.quantities.get(fill.symbol, 0.0)
        after = before + signed
        average = self.average_prices.get(fill.symbol, 0.0)
        self.cash -= signed * fill.price
        self.cash -= fill.fee
        self.fees += fill.fee
        if before == 0.0 or (before > 0.0) == (signed > 0.0):
            # Opening or adding: the average entry moves toward the fill price.
            total = abs(before) + abs(signed)
            self.average_prices[fill.symbol] = (abs(before) * average + abs(signed) * fill.price) / total
        else:
            closed = min(abs(signed), abs(before))
            direction = 1.0 if before > 0.0 else -1.0
            self.realized_pnl += closed * (fill.price - average) * direction
            if abs(signed) > abs(before):
                self.average_prices[fill.symbol] = fill.price  # flipped: the remainder opens anew
        if abs(after) < 1e-12:
            self.quantities.pop(fill.symbol, None)
            self.average_prices.pop(fill.symbol, None)
        else:
            self.quantities[fill.symbol] = after
        self.mark(fill.symbol, fill.price)

    def adopt(self, cash: float, positions: dict[str, tuple[float, float]]) -> None:
        """Take the venue's word for cash and positions (symbol -> (quantity,
        price)) after a restart; entry prices are unknown, so the current
        price stands in for them and realized PnL starts again at zero."""
        self.cash = cash
        for symbol, (quantity, price) in positions.items():
            if abs(quantity) < 1e-12:
                self.quantities.pop(symbol, None)
                self.average_prices.pop(symbol, None)
                continue
            self.quantities[symbol] = quantity
            self.average_prices[symbol] = price
            self.mark(symbol, price)

    def position_value(self, symbol: str) -> float:
        quantity = self.quantities.get(symbol, 0.0)
        if quantity == 0.0:
            return 0.0
        return quantity * self.marks.get(symbol, self.average_prices.get(symbol, 0.0))

    @property
    def equity(self) -> float:
        equity = self.cash
        for symbol, quantity in self.quantities.items():
            equity += quantity * self.marks.get(symbol, self.average_prices[symbol])
        return equity

    @property
    def gross_exposure(self) -> float:
        return sum(abs(self.position_value(symbol)) for symbol in self.quantities)

    def snapshot(self) -> PortfolioSnapshot:
        positions = []
        for symbol, quantity in sorted(self.quantities.items()):
            average = self.average_prices[symbol]
            mark = self.marks.get(symbol, average)
            positions.append(PositionSnapshot(symbol, quantity, average, mark, quantity * (mark - average)))
        return PortfolioSnapshot(self.cash, self.equity, self.realized_pnl, self.fees, tuple(positions))
