"""Market-data feeds: the sources of the ``Bar`` / ``Trade`` / ``BookUpdate`` events the core consumes.

- ``feeds.base.MarketFeed``: the interface (``events()`` as fast as possible, ``stream()`` paced by ``speed``).
- ``feeds.simulated.SimulatedMarket``: a seeded, endless market with changing regimes, books, trades and bars.
- ``feeds.replay.ReplayFeed``: recorded CSV / Parquet bars, trades and book snapshots merged by time.
- ``feeds.factory.build_feed``: the feed a ``FeedConfig`` asks for.

Nothing is imported here: configuration models import ``feeds.config``, and
loading numpy or pandas for that would slow every command's start-up.
"""
