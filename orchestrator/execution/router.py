"""Routes order intents to the adapter of each symbol's venue.

Several adapters at once (paper and ccxt): a symbol goes to its routed venue
or the default one. A *shadow* is a paper venue that receives a copy of
every order sent to a live venue (renamed ``<venue>.shadow``) and fills it
against the same market data, so live and simulated fills can be compared
in the journal; its reports go to ``shadow_listener``, never to the core's
portfolio.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from orchestrator.events import MarketEvent
from orchestrator.execution.adapter import ExchangeAdapter, ExecutionListener
from orchestrator.orders import OrderIntent


class Router:
    """Symbol -> venue -> adapter. Unrouted symbols go to ``default_venue``."""

    def __init__(
        self,
        adapters: Mapping[str, ExchangeAdapter],
        *,
        default_venue: str,
        routes: Mapping[str, str] | None = None,
    ) -> None:
        if default_venue not in adapters:
            raise ValueError(f"default venue {default_venue!r} has no adapter (have: {', '.join(adapters)})")
        self.adapters = dict(adapters)
        self.default_venue = default_venue
        self.routes = dict(routes or {})
        for symbol, venue in self.routes.items():
            if venue not in self.adapters:
                raise ValueError(f"symbol {symbol!r} is routed to unknown venue {venue!r}")
        self.shadows: dict[str, ExchangeAdapter] = {}
        self._market_takers: tuple[ExchangeAdapter, ...] = ()
        self._find_market_takers()

    def _find_market_takers(self) -> None:
        # Only adapters that use market data (simulated fills, notional checks) get every event.
        adapters = (*self.adapters.values(), *self.shadows.values())
        self._market_takers = tuple(a for a in adapters if type(a).on_market is not ExchangeAdapter.on_market)

    def bind(self, listener: ExecutionListener) -> None:
        for adapter in self.adapters.values():
            adapter.bind(listener)

    def add_shadow(self, venue: str, shadow: ExchangeAdapter, listener: ExecutionListener) -> None:
        """Trade a paper copy of every order sent to ``venue``."""
        if venue not in self.adapters:
            raise ValueError(f"cannot shadow unknown venue {venue!r}")
        shadow.bind(listener)
        self.shadows[venue] = shadow
        self._find_market_takers()

    def venue_of(self, symbol: str) -> str:
        return self.routes.get(symbol, self.default_venue)

    def on_market(self, event: MarketEvent) -> None:
        for adapter in self._market_takers:
            adapter.on_market(event)

    def submit(self, intent: OrderIntent) -> None:
        self.adapters[intent.venue].submit(intent)
        shadow = self.shadows.get(intent.venue)
        if shadow is not None:
            shadow.submit(dataclasses.replace(intent, venue=shadow.name))

    def cancel(self, venue: str, client_order_id: str) -> None:
        self.adapters[venue].cancel(client_order_id)
        shadow = self.shadows.get(venue)
        if shadow is not None:
            shadow.cancel(client_order_id)

    async def start(self) -> None:
        for adapter in (*self.adapters.values(), *self.shadows.values()):
            await adapter.start()

    async def stop(self) -> None:
        for adapter in (*self.adapters.values(), *self.shadows.values()):
            await adapter.stop()
