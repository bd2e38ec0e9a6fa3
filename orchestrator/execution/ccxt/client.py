"""Create the ccxt async clients for one venue account.

One REST client per account, with ccxt's rate limiter on, and where the
order stream is used a ccxt.pro client built the same way. Credentials come
from the environment only; a missing variable is a clear ``ConfigError``
when the daemon starts (not at ``check-config``). Sandbox mode switches the
client to the venue's testnet URLs before any ``api_urls`` override is
applied (a dotted key such as ``ws.spot`` overrides one nested entry).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.execution.ccxt.config import CcxtVenueConfig
from orchestrator.execution.ccxt.quirks import VenueQuirks


def read_credentials(venue: str, config: CcxtVenueConfig, env: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if env is None else env
    key_var, secret_var, password_var = config.env_names(venue)
    missing = [name for name in (key_var, secret_var, password_var) if name and not env.get(name)]
    if missing:
        raise ConfigError(
            [
                f"execution.venues.{venue}: set the environment variable(s) {', '.join(missing)} (API credentials "
                f"for {config.exchange}{' testnet' if config.sandbox else ''}; never put them in the file)"
            ]
        )
    credentials = {"apiKey": env[key_var], "secret": env[secret_var]}
    if password_var:
        credentials["password"] = env[password_var]
    return credentials


def create_client(
    venue: str, config: CcxtVenueConfig, quirks: VenueQuirks, credentials: Mapping[str, str], *, pro: bool = False
) -> Any:
    """The ``ccxt.async_support`` client, or with ``pro`` the ``ccxt.pro``
    one (its websocket streams); untyped: ccxt ships no stubs. Both are set
    up alike, so a stream reaches the same account as the REST calls."""
    if pro:
        import ccxt.pro as module
    else:
        import ccxt.async_support as module

    factory = getattr(module, config.exchange, None)
    if factory is None:
        flavour = "ccxt.pro" if pro else "ccxt"
        raise ConfigError([f"execution.venues.{venue}.exchange: {flavour} has no exchange {config.exchange!r}"])
    options: dict[str, Any] = {"defaultType": config.market_type}
    options.update(quirks.options)
    options.update(config.options)
    client = factory(
        {
            **credentials,
            "enableRateLimit": True,
            "timeout": config.timeout_ms,
            "options": options,
        }
    )
    if config.sandbox:
        client.set_sandbox_mode(True)
    if config.api_urls:
        client.urls["api"] = with_url_overrides(client.urls.get("api"), config.api_urls)
    return client


def with_url_overrides(api: Any, overrides: Mapping[str, str]) -> dict[str, Any]:
    """A client's ``urls['api']`` with ``overrides`` applied. A dotted key
    replaces one nested entry and keeps its siblings (``ws.spot``: Binance's
    spot websocket streams)."""
    merged: dict[str, Any] = dict(api) if isinstance(api, dict) else {}
    for key, url in overrides.items():
        *parents, leaf = key.split(".")
        table = merged
        for parent in parents:
            child = table.get(parent)
            table[parent] = child = dict(child) if isinstance(child, dict) else {}
            table = child
        table[leaf] = url
    return merged
