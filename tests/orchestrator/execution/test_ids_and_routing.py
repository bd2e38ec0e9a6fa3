"""Routing intents to venues, and the ids that make orders idempotent and traceable."""

from __future__ import annotations

import pytest

from orchestrator import Bar
from orchestrator.execution.config import PaperExchangeConfig
from orchestrator.execution.ids import IdSequence, new_run_id
from orchestrator.execution.paper import PaperExchange
from orchestrator.execution.router import Router
from orchestrator.orders import Fill, OrderIntent, OrderUpdate, Side


class Reports:
    def __init__(self) -> None:
        self.fills: list[Fill] = []

    def on_order_update(self, update: OrderUpdate) -> None:
        return None

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)


def test_routes_by_symbol_with_a_default_venue() -> None:
    alpha = PaperExchange(PaperExchangeConfig(), name="alpha")
    beta = PaperExchange(PaperExchangeConfig(), name="beta")
    router = Router({"alpha": alpha, "beta": beta}, default_venue="alpha", routes={"ETH/USDT": "beta"})
    reports = Reports()
    router.bind(reports)
    assert (router.venue_of("BTC/USDT"), router.venue_of("ETH/USDT")) == ("alpha", "beta")
    for symbol in ("BTC/USDT", "ETH/USDT"):
        router.on_market(Bar(symbol, 1, 10.0, 10.0, 10.0, 10.0, 1.0, 1))
    router.submit(OrderIntent("o1", "t", 1, "beta", "ETH/USDT", Side.BUY, 1.0))
    assert [f.venue for f in reports.fills] == ["beta"]
    assert beta.holdings == {"ETH/USDT": 1.0}
    assert alpha.holdings == {}


def test_refuses_venues_without_an_adapter() -> None:
    paper = PaperExchange(PaperExchangeConfig())
    with pytest.raises(ValueError, match="default venue 'ccxt' has no adapter"):
        Router({"paper": paper}, default_venue="ccxt")
    with pytest.raises(ValueError, match="routed to unknown venue 'ccxt'"):
        Router({"paper": paper}, default_venue="paper", routes={"X": "ccxt"})


def test_ids_are_traceable_short_and_alphanumeric() -> None:
    ids = IdSequence("run7")
    assert [ids.next_trace_id() for _ in range(3)] == ["run7-1", "run7-2", "run7-3"]
    assert ids.client_order_id("run7-2", 3) == "orun72n3"
    generated = IdSequence()
    assert generated.run_id.isalnum()
    assert len(generated.run_id) == 8
    assert new_run_id() != new_run_id()
    with pytest.raises(ValueError, match="alphanumeric"):
        IdSequence("no-dashes")
    assert len(IdSequence("abcdefgh").client_order_id("abcdefgh-999999999", 31)) <= 32
