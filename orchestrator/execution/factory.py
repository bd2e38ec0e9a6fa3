"""Build the exchange adapters and routes a configuration names.

``paper_adapters``: every venue simulated on paper (backtests, benchmarks:
a profile written for a live venue backtests unchanged). ``live_adapters``:
paper venues on paper, ccxt venues through ``CcxtExchange`` (credentials
read from the environment here, so a missing key stops the daemon at start
with the variable's name).
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.config.models import OrchestratorConfig
from orchestrator.execution.adapter import ExchangeAdapter
from orchestrator.execution.ccxt.config import CcxtVenueConfig
from orchestrator.execution.config import ExecutionConfig, PaperExchangeConfig, PaperVenueConfig
from orchestrator.execution.paper import PaperExchange

SHADOW_SUFFIX = ".shadow"


def resolve_routes(config: OrchestratorConfig) -> dict[str, str]:
    """symbol -> venue for every routed symbol: bucket routes, then symbol routes over them."""
    execution = config.execution
    routes: dict[str, str] = {}
    for bucket, bucket_config in config.bucket_map().items():
        venue = execution.bucket_routes.get(bucket)
        if venue is not None:
            routes.update(dict.fromkeys(bucket_config.symbols, venue))
    routes.update(execution.routes)
    return routes


def _paper_config(execution: ExecutionConfig, name: str) -> PaperExchangeConfig:
    venue = execution.venues.get(name)
    if isinstance(venue, PaperVenueConfig):
        return PaperExchangeConfig(**venue.model_dump(exclude={"kind"}))
    return execution.paper


def paper_adapters(execution: ExecutionConfig) -> dict[str, ExchangeAdapter]:
    return {name: PaperExchange(_paper_config(execution, name), name=name) for name in execution.venue_names()}


def live_adapters(
    execution: ExecutionConfig, credentials: Mapping[str, dict[str, str]] | None = None
) -> dict[str, ExchangeAdapter]:
    """``credentials`` (venue -> ccxt credentials) replace the environment (tests)."""
    from orchestrator.execution.ccxt.adapter import CcxtExchange

    adapters: dict[str, ExchangeAdapter] = {}
    for name in execution.venue_names():
        venue = execution.venues.get(name)
        if isinstance(venue, CcxtVenueConfig):
            adapters[name] = CcxtExchange(name, venue, credentials=(credentials or {}).get(name))
        else:
            adapters[name] = PaperExchange(_paper_config(execution, name), name=name)
    return adapters


def shadow_adapter(execution: ExecutionConfig, venue: str) -> PaperExchange:
    return PaperExchange(execution.paper, name=venue + SHADOW_SUFFIX)
