"""Configuration of one ccxt venue account (``execution.venues.<name>``).

Credentials never live here: the section names the environment variables
that hold them, and they are read only when the daemon starts the venue, so
``check-config`` passes on a machine without keys.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class CcxtVenueConfig(BaseModel):
    """A live venue through ccxt: one client per account, keys from the environment only.

    Its orders are checked against the venue's markets (precision, minimum
    amount and notional) before they leave, and followed by REST polling and,
    where the venue has it, ccxt.pro's order stream."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["ccxt"] = "ccxt"
    exchange: str = Field(pattern=r"^[a-z0-9]+$", description="ccxt exchange id, e.g. binance, okx, bybit")
    sandbox: bool = Field(False, description="use the venue's testnet/sandbox (ccxt set_sandbox_mode)")
    market_type: Literal["spot", "swap", "future"] = "spot"
    quote_currency: str = Field("USDT", min_length=1, description="the account currency of the portfolio")
    api_key_env: str | None = Field(None, description="variable holding the API key (default <NAME>_API_KEY)")
    secret_env: str | None = Field(None, description="variable holding the secret (default <NAME>_SECRET)")
    password_env: str | None = Field(None, description="variable holding a passphrase, for venues that need one")
    options: dict[str, Any] = Field(default_factory=dict, description="extra ccxt options for this venue")
    api_urls: dict[str, str] = Field(
        default_factory=dict, description="override entries of the client's urls['api'] (proxies, test doubles)"
    )
    timeout_ms: int = Field(10_000, ge=100, le=120_000, description="HTTP timeout of one request")
    poll_interval_s: float = Field(1.0, gt=0.0, description="how often working orders are polled")
    transport: Literal["auto", "websocket", "rest"] = Field(
        "auto",
        description=(
            "order updates. auto: also ccxt.pro's watch_orders stream where the venue has it (a push polls the "
            "order at once); websocket: the same, and refuse to start without it; rest: polling only"
        ),
    )
    poll_interval_stream_s: float = Field(
        10.0,
        gt=0.0,
        description="how often working orders are polled while the order stream delivers (never below poll_interval_s)",
    )
    read_retries: int = Field(4, ge=0, le=20, description="retries of a failed read (network, rate limit)")
    backoff_initial_s: float = Field(0.25, gt=0.0)
    backoff_max_s: float = Field(8.0, gt=0.0)
    submit_lookups: int = Field(3, ge=1, le=20, description="lookups by client id after an unanswered create")
    max_submit_attempts: int = Field(3, ge=1, le=10, description="sends of one order (always with the same id)")

    def env_names(self, venue: str) -> tuple[str, str, str | None]:
        prefix = venue.upper().replace("-", "_")
        return (
            self.api_key_env or f"{prefix}_API_KEY",
            self.secret_env or f"{prefix}_SECRET",
            self.password_env,
        )
