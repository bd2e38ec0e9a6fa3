"""Market events: frozen value objects, stamped with the time they became known."""

from __future__ import annotations

import dataclasses
import math

import pytest

from orchestrator import Bar, BookUpdate, EventKind, Trade, event_price


def test_bar_is_stamped_at_close_and_knows_its_open() -> None:
    bar = Bar("BTC/USDT", 120_000, 1.0, 2.0, 0.5, 1.5, 10.0, 60_000)
    assert bar.kind is EventKind.BAR
    assert bar.open_ts == 60_000
    assert event_price(bar) == 1.5


def test_trade_price_is_its_event_price() -> None:
    trade = Trade("BTC/USDT", 5, 101.5, 0.2, -1)
    assert trade.kind is EventKind.TRADE
    assert event_price(trade) == 101.5


def test_book_mid_and_touch() -> None:
    book = BookUpdate("BTC/USDT", 5, (99.0, 98.0), (1.0, 2.0), (101.0, 102.0), (1.0, 3.0))
    assert book.kind is EventKind.BOOK
    assert (book.best_bid, book.best_ask, book.mid) == (99.0, 101.0, 100.0)
    assert event_price(book) == 100.0


@pytest.mark.parametrize(
    ("bids", "asks"),
    [((), (101.0,)), ((99.0,), ()), ((), ())],
)
def test_one_sided_book_has_no_mid(bids: tuple[float, ...], asks: tuple[float, ...]) -> None:
    book = BookUpdate("X", 1, bids, tuple(1.0 for _ in bids), asks, tuple(1.0 for _ in asks))
    assert math.isnan(book.mid)
    assert math.isnan(event_price(book))
    assert math.isnan(book.best_bid) == (not bids)
    assert math.isnan(book.best_ask) == (not asks)


@pytest.mark.parametrize(
    "event",
    [
        Bar("X", 1, 1.0, 1.0, 1.0, 1.0, 1.0, 1),
        Trade("X", 1, 1.0, 1.0, 0),
        BookUpdate("X", 1, (1.0,), (1.0,), (2.0,), (1.0,)),
    ],
)
def test_events_are_frozen_and_slotted(event: object) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.ts = 2  # type: ignore[attr-defined]
    assert not hasattr(event, "__dict__")
