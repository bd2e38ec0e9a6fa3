"""Configuration of the live ccxt market-data feed (``feed.kind: ccxt``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Stream = Literal["book", "trades", "bars"]


class CcxtFeedConfig(BaseModel):
    """Public market data from one venue: no API keys needed."""

    model_config = ConfigDict(extra="forbid")

    exchange: str = Field(pattern=r"^[a-z0-9]+$", description="ccxt exchange id")
    sandbox: bool = False
    market_type: Literal["spot", "swap", "future"] = "spot"
    streams: list[Stream] = Field(default_factory=lambda: list[Stream](["bars"]), min_length=1)
    timeframe: str = Field("1m", description="bar length, a ccxt timeframe (1m, 5m, 1h, ...)")
    book_depth: int = Field(10, ge=1, le=500)
    transport: Literal["auto", "websocket", "rest"] = Field(
        "auto", description="auto: ccxt.pro watch_* streams where the venue has them, else REST polling"
    )
    poll_interval_s: float = Field(1.0, gt=0.0, description="REST polling period per symbol and stream")
    timeout_ms: int = Field(10_000, ge=100, le=120_000)
    backoff_initial_s: float = Field(0.5, gt=0.0)
    backoff_max_s: float = Field(30.0, gt=0.0)
    options: dict[str, Any] = Field(default_factory=dict)
    api_urls: dict[str, str] = Field(default_factory=dict, description="override entries of urls['api']")
