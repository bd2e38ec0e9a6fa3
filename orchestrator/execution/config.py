"""Configuration of order execution: venues, routes, recovery, order style.

The venue ``paper`` always exists (configured by ``paper:``); more venues,
paper or ccxt, are named under ``venues:``. Symbols go to ``venue`` unless
``routes`` (by symbol) or ``bucket_routes`` (by bucket) say otherwise;
``shadow`` names live venues whose orders are also traded on a paper copy.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.execution.ccxt.config import CcxtVenueConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PaperExchangeConfig(_Strict):
    """A simulated venue filling against the current book or bar."""

    initial_cash: float = Field(100_000.0, gt=0.0)
    quote_currency: str = Field("USDT", min_length=1)
    taker_fee_bps: float = Field(7.5, ge=0.0, le=1_000.0)
    maker_fee_bps: float = Field(2.0, ge=-100.0, le=1_000.0)
    slippage_bps: float = Field(1.0, ge=0.0, le=1_000.0, description="extra adverse price move on market fills")
    latency_ms: int = Field(0, ge=0, description="event-time delay before an order reaches the book")
    allow_short: bool = True
    allow_leverage: bool = Field(False, description="let buys spend more cash than the account holds")


class PaperVenueConfig(PaperExchangeConfig):
    """A further paper venue under ``venues:``."""

    kind: Literal["paper"] = "paper"


VenueConfig = Annotated[PaperVenueConfig | CcxtVenueConfig, Field(discriminator="kind")]


class RecoveryConfig(_Strict):
    """Reconciliation of the journal with live venues at start."""

    unconfirmed_checks: int = Field(
        3, ge=1, le=50, description="lookups of a journaled order the venue does not know before it is LOST"
    )
    check_interval_s: float = Field(1.0, ge=0.0, le=60.0, description="pause between two such lookups")


class ExecutionConfig(_Strict):
    venue: str = Field("paper", description="venue of every symbol unless routed elsewhere")
    venues: dict[str, VenueConfig] = Field(default_factory=dict, description="venues besides 'paper'")
    routes: dict[str, str] = Field(default_factory=dict, description="symbol -> venue")
    bucket_routes: dict[str, str] = Field(default_factory=dict, description="bucket -> venue (symbol routes win)")
    shadow: list[str] = Field(default_factory=list, description="live venues also traded on a paper shadow")
    recovery: RecoveryConfig = Field(default_factory=RecoveryConfig)
    order_type: Literal["market", "limit"] = "market"
    limit_offset_bps: float = Field(
        0.0, ge=-1_000.0, le=1_000.0, description="limit price offset from the touch; > 0 is more aggressive"
    )
    paper: PaperExchangeConfig = Field(default_factory=PaperExchangeConfig)

    def venue_names(self) -> list[str]:
        return ["paper", *[name for name in self.venues if name != "paper"]]

    def live_venues(self) -> dict[str, CcxtVenueConfig]:
        return {name: venue for name, venue in self.venues.items() if isinstance(venue, CcxtVenueConfig)}

    @model_validator(mode="after")
    def _venues_exist(self) -> ExecutionConfig:
        known = set(self.venue_names())
        problems = []
        if self.venue not in known:
            problems.append(f"venue {self.venue!r} is not configured (known: {', '.join(sorted(known))})")
        for kind, table in (("routes", self.routes), ("bucket_routes", self.bucket_routes)):
            problems.extend(
                f"{kind}.{key}: unknown venue {venue!r}" for key, venue in table.items() if venue not in known
            )
        live = self.live_venues()
        problems.extend(f"shadow: {name!r} is not a ccxt venue" for name in self.shadow if name not in live)
        if problems:
            raise ValueError("; ".join(problems))
        return self
