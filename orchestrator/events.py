"""Market events: the only things that flow into the core.

Every event is a frozen, slotted dataclass stamped with ``ts``, the time in
milliseconds since the Unix epoch (UTC) at which the event became *known*.
For a bar that is its close time, not its open time: a bar cannot be acted on
before it has closed, and stamping it with its close is what keeps replays
free of look-ahead.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, TypeAlias


class EventKind(enum.Enum):
    """The kinds of market event a module can consume."""

    BAR = "bar"
    TRADE = "trade"
    BOOK = "book"


@dataclass(frozen=True, slots=True)
class Bar:
    """An OHLCV bar. ``ts`` is the close time; ``interval_ms`` its length."""

    kind: ClassVar[EventKind] = EventKind.BAR

    symbol: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    interval_ms: int

    @property
    def open_ts(self) -> int:
        return self.ts - self.interval_ms


@dataclass(frozen=True, slots=True)
class Trade:
    """A public trade (print). ``side`` is the aggressor: +1 buy, -1 sell, 0 unknown."""

    kind: ClassVar[EventKind] = EventKind.TRADE

    symbol: str
    ts: int
    price: float
    size: float
    side: int


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """A level-2 order book snapshot, best level first on each side.

    Prices and sizes are kept as parallel tuples rather than tuples of pairs:
    prefix sums over sizes (imbalance at 1/5/10 levels) are then plain
    ``sum(sizes[:n])`` calls, which is what the book modules do per event.
    """

    kind: ClassVar[EventKind] = EventKind.BOOK

    symbol: str
    ts: int
    bid_prices: tuple[float, ...]
    bid_sizes: tuple[float, ...]
    ask_prices: tuple[float, ...]
    ask_sizes: tuple[float, ...]

    @property
    def best_bid(self) -> float:
        return self.bid_prices[0] if self.bid_prices else float("nan")

    @property
    def best_ask(self) -> float:
        return self.ask_prices[0] if self.ask_prices else float("nan")

    @property
    def mid(self) -> float:
        if not self.bid_prices or not self.ask_prices:
            return float("nan")
        return 0.5 * (self.bid_prices[0] + self.ask_prices[0])


MarketEvent: TypeAlias = Bar | Trade | BookUpdate
"""Any market event. Dispatch on ``event.kind``."""


def event_price(event: MarketEvent) -> float:
    """The price an event implies: bar close, trade price or book mid."""
    if isinstance(event, Bar):
        return event.close
    if isinstance(event, Trade):
        return event.price
    return event.mid
