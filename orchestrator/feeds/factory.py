"""Build the market feed a configuration asks for.

Input: the ``feed:`` section (``FeedConfig``) and the symbols the
configuration trades. Output: a ``MarketFeed`` carrying the section's
``speed``: the simulated market makes events for exactly those symbols; a
replay yields whatever its files hold.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.errors import ConfigError
from orchestrator.feeds.base import MarketFeed
from orchestrator.feeds.config import FeedConfig


def build_feed(config: FeedConfig, symbols: Sequence[str]) -> MarketFeed:
    """The feed for ``config``; a replay reads and validates its files here (``DataError`` on a bad row)."""
    # Each feed is imported when chosen: a replay pulls in numpy and pandas, ccxt its client.
    if config.kind == "simulated":
        from orchestrator.feeds.simulated import SimulatedMarket

        return SimulatedMarket(config.simulated, symbols)
    if config.kind == "ccxt":
        if config.ccxt is None:  # FeedConfig's validator already refuses this
            raise ConfigError(["feed.ccxt: kind 'ccxt' needs a 'ccxt:' section"])
        from orchestrator.feeds.ccxt_live import CcxtFeed

        return CcxtFeed(config.ccxt, symbols)
    if config.replay is None:  # FeedConfig's validator already refuses this; kept for direct construction
        raise ConfigError(["feed.replay: kind 'replay' needs a 'replay:' section with paths"])
    from orchestrator.feeds.replay import ReplayFeed

    return ReplayFeed.from_config(config.replay)
