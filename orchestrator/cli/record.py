"""``orchestrator record``: the profile's market feed into CSV files a backtest replays."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.common import ConfigOption, load
from orchestrator.feeds.base import MarketFeed
from orchestrator.feeds.config import FeedConfig
from orchestrator.feeds.factory import build_feed
from orchestrator.feeds.recorder import MarketRecorder

FLUSH_EVERY_S = 1.0  # a crash or a kill loses at most this much of the recording


async def record_feed(
    feed: MarketFeed, recorder: MarketRecorder, *, max_events: int | None, seconds: float | None
) -> int:
    """Events from ``feed`` into ``recorder`` until ``max_events`` or ``seconds``
    (or cancellation); the recorder is flushed every second and closed at the end."""
    loop = asyncio.get_running_loop()
    count = 0
    last_flush = loop.time()
    stream = feed.stream()
    try:
        async with asyncio.timeout(seconds):
            async for event in stream:
                recorder.record(event)
                count += 1
                if max_events is not None and count >= max_events:
                    break
                now = loop.time()
                if now - last_flush >= FLUSH_EVERY_S:
                    recorder.flush()
                    last_flush = now
    except TimeoutError:
        pass  # --seconds reached
    finally:
        closer = getattr(stream, "aclose", None)  # an async generator: end it before its feed
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()
        await feed.aclose()
        recorder.close()
    return count


def _book_levels(feed: FeedConfig) -> int | None:
    """The depth the feed's books have, when the profile says it."""
    if feed.kind == "simulated":
        return feed.simulated.book_levels
    if feed.kind == "ccxt" and feed.ccxt is not None:
        return feed.ccxt.book_depth
    return None  # a replay: the depth of its first book


def register(app: typer.Typer) -> None:
    @app.command("record")
    def record_command(
        out: Annotated[Path, typer.Option("--out", "-o", help="directory for bars.csv, trades.csv, books.csv")],
        config: ConfigOption = None,
        events: Annotated[int | None, typer.Option("--events", "-n", min=1, help="stop after this many")] = None,
        seconds: Annotated[
            float | None, typer.Option("--seconds", "-s", min=0.001, help="stop after this long (wall time)")
        ] = None,
        speed: Annotated[
            float | None,
            typer.Option("--speed", min=0.0, help="simulated/replayed seconds per wall second; 0: as fast as possible"),
        ] = None,
    ) -> None:
        """Record the profile's market feed (simulated, live ccxt or a replay) into CSV files that
        `orchestrator backtest --data` and `feed.replay` read back as the very same events."""
        loaded = load(config)
        settings = loaded.config.feed
        feed = build_feed(settings, loaded.config.all_symbols())
        if speed is not None:
            feed.speed = speed
        recorder = MarketRecorder(out, book_levels=_book_levels(settings))
        interrupted = False
        try:
            count = asyncio.run(record_feed(feed, recorder, max_events=events, seconds=seconds))
        except KeyboardInterrupt:  # Ctrl-C ends a recording; what was kept is flushed above
            interrupted = True
            count = sum(recorder.counts.values())
        kinds = ", ".join(f"{recorder.counts[kind]:,} {kind}" for kind in recorder.counts if recorder.counts[kind])
        stopped = " (interrupted)" if interrupted else ""
        typer.echo(f"recorded {count:,} events{stopped} from the {settings.kind} feed into {out}: {kinds or 'none'}")
        paths = recorder.paths()
        if paths:
            data = " ".join(f"--data {shlex.quote(str(path))}" for path in paths)
            typer.echo(f"replay: orchestrator backtest -c config/backtest.yaml {data}")
