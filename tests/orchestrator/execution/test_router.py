"""Routing by symbol and bucket, several adapters at once, and paper shadows of a live venue."""

from __future__ import annotations

import pytest

from orchestrator.config.models import OrchestratorConfig
from orchestrator.events import Bar
from orchestrator.execution.config import PaperExchangeConfig
from orchestrator.execution.factory import paper_adapters, resolve_routes
from orchestrator.execution.paper import PaperExchange
from orchestrator.execution.router import Router
from orchestrator.orders import Fill, OrderIntent, OrderUpdate, Side


class Recorder:
    def __init__(self) -> None:
        self.fills: list[Fill] = []
        self.updates: list[OrderUpdate] = []

    def on_order_update(self, update: OrderUpdate) -> None:
        self.updates.append(update)

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)


def config(**execution: object) -> OrchestratorConfig:
    return OrchestratorConfig.model_validate(
        {
            "buckets": {"majors": {"symbols": ["BTC/USDT", "ETH/USDT"]}, "alts": {"symbols": ["SOL/USDT"]}},
            "execution": execution,
        }
    )


def test_bucket_routes_then_symbol_routes() -> None:
    profile = config(
        venues={"alt": {"kind": "paper", "initial_cash": 5_000}, "eth": {"kind": "paper"}},
        bucket_routes={"alts": "alt", "majors": "eth"},
        routes={"BTC/USDT": "paper"},
    )
    assert resolve_routes(profile) == {"SOL/USDT": "alt", "ETH/USDT": "eth", "BTC/USDT": "paper"}
    adapters = paper_adapters(profile.execution)
    assert sorted(adapters) == ["alt", "eth", "paper"]
    assert adapters["alt"].cash == 5_000  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("execution", "message"),
    [
        ({"venue": "nowhere"}, "venue 'nowhere' is not configured"),
        ({"routes": {"BTC/USDT": "nowhere"}}, "routes.BTC/USDT: unknown venue 'nowhere'"),
        ({"venues": {"alt": {"kind": "paper"}}, "shadow": ["alt"]}, "shadow: 'alt' is not a ccxt venue"),
        ({"venues": {"x": {"kind": "ccxt", "exchange": "binance", "api_key": "k"}}}, "api_key"),
    ],
)
def test_bad_routing_is_refused(execution: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**execution)


def test_shadow_gets_a_copy_and_reports_aside() -> None:
    live = PaperExchange(PaperExchangeConfig(), name="live")
    other = PaperExchange(PaperExchangeConfig(), name="paper")
    router = Router({"live": live, "paper": other}, default_venue="paper", routes={"BTC/USDT": "live"})
    core, aside = Recorder(), Recorder()
    router.bind(core)
    router.add_shadow("live", PaperExchange(PaperExchangeConfig(slippage_bps=50.0), name="live.shadow"), aside)
    router.on_market(Bar("BTC/USDT", 60_000, 100.0, 100.0, 100.0, 100.0, 1.0, 60_000))
    assert router.venue_of("BTC/USDT") == "live"
    assert router.venue_of("ETH/USDT") == "paper"
    router.submit(OrderIntent("ob1n0", "b-1", 60_000, "live", "BTC/USDT", Side.BUY, 1.0))
    assert [(f.venue, f.client_order_id) for f in core.fills] == [("live", "ob1n0")]
    assert [(f.venue, f.client_order_id) for f in aside.fills] == [("live.shadow", "ob1n0")]
    assert aside.fills[0].price > core.fills[0].price  # the shadow's own simulation (more slippage)
    assert other.holdings == {}
