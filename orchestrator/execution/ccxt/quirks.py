"""Venue quirks as data, not as branches in the adapter.

Each entry says how a venue spells and limits client order ids and how an
order is found again by its client id:

- ``create_param``: the parameter ``create_order`` takes the client id in
  (ccxt's unified ``clientOrderId`` maps it to the venue's own name, e.g.
  Binance's ``newClientOrderId``, OKX's ``clOrdId``, Bybit's ``orderLinkId``);
- ``lookup``: ``"param"`` when ``fetch_order`` finds an order by client id
  alone through ``lookup_param`` (Binance's ``origClientOrderId``), or
  ``"scan"`` to search open and recent closed orders for it;
- ``max_length`` and ``alphanumeric``: what the venue accepts (our ids are
  alphanumeric and at most 32 characters, OKX's rule);
- ``trades_by_order_param``: how ``fetch_my_trades`` asks for one order's
  executions (Binance's ``orderId``; its time windows are at most 24 h);
- ``options``: ccxt options the adapter needs on that venue (Binance: load
  only the configured market type, no private currency call at start).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class VenueQuirks:
    create_param: str = "clientOrderId"
    lookup: Literal["param", "scan"] = "scan"
    lookup_param: str = "clientOrderId"
    max_length: int = 32
    alphanumeric: bool = True
    trades_by_order_param: str | None = None  # fetch_my_trades filter by venue order id, if the venue has one
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def check_client_id(self, client_order_id: str) -> str | None:
        """Why the venue would refuse this id, or ``None``."""
        if len(client_order_id) > self.max_length:
            return f"client order id {client_order_id!r} longer than the venue's {self.max_length} characters"
        if self.alphanumeric and not client_order_id.isalnum():
            return f"client order id {client_order_id!r} must be alphanumeric on this venue"
        return None


def _binance_options(market_type: str) -> dict[str, Any]:
    types = {"spot": ["spot"], "swap": ["linear"], "future": ["linear", "inverse"]}[market_type]
    return {"fetchMarkets": {"types": types}, "fetchCurrencies": False, "fetchMargins": False}


_QUIRKS: dict[str, VenueQuirks] = {
    "binance": VenueQuirks(
        lookup="param", lookup_param="origClientOrderId", max_length=36, trades_by_order_param="orderId"
    ),
    "binanceusdm": VenueQuirks(
        lookup="param", lookup_param="origClientOrderId", max_length=36, trades_by_order_param="orderId"
    ),
    "okx": VenueQuirks(lookup="param", lookup_param="clOrdId", max_length=32),
    "bybit": VenueQuirks(lookup="scan", max_length=36),
    "kucoin": VenueQuirks(lookup="param", lookup_param="clientOid", max_length=40),
    "bitget": VenueQuirks(lookup="param", lookup_param="clientOid", max_length=50),
}

_OPTIONS = {"binance": _binance_options, "binanceusdm": _binance_options}


def quirks_for(exchange: str, market_type: str = "spot") -> VenueQuirks:
    """The quirks of a ccxt exchange id; unknown venues get the safe defaults (scan lookups)."""
    base = _QUIRKS.get(exchange, VenueQuirks())
    options = _OPTIONS.get(exchange)
    if options is None:
        return base
    return VenueQuirks(
        create_param=base.create_param,
        lookup=base.lookup,
        lookup_param=base.lookup_param,
        max_length=base.max_length,
        alphanumeric=base.alphanumeric,
        trades_by_order_param=base.trades_by_order_param,
        options=MappingProxyType(options(market_type)),
    )


def known_venues() -> tuple[str, ...]:
    return tuple(sorted(_QUIRKS))
