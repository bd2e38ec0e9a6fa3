"""The recorder writes what the replay reads back: the very same events, kind by kind."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from orchestrator.cli.record import record_feed
from orchestrator.errors import DataError
from orchestrator.events import Bar, BookUpdate, MarketEvent, Trade
from orchestrator.feeds.config import ReplayConfig, SimulatedMarketConfig
from orchestrator.feeds.recorder import MarketRecorder
from orchestrator.feeds.replay import ReplayFeed
from orchestrator.feeds.simulated import SimulatedMarket

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
T0 = 1_735_689_600_000  # epoch ms: the replay tells the unit by the magnitude
REPO = Path(__file__).resolve().parents[3]


def by_kind(events: list[MarketEvent]) -> dict[type, list[MarketEvent]]:
    return {kind: [e for e in events if isinstance(e, kind)] for kind in (Bar, Trade, BookUpdate)}


def test_a_recorded_simulated_market_replays_as_the_same_events(tmp_path: Path) -> None:
    market = SimulatedMarket(SimulatedMarketConfig(seed=3, speed=0.0, bar_ms=10_000), SYMBOLS)
    recorded = list(itertools.islice(market.events(), 6_000))
    recorder = MarketRecorder(tmp_path)
    for event in recorded:
        recorder.record(event)
    recorder.close()
    assert sorted(p.name for p in recorder.paths()) == ["bars.csv", "books.csv", "trades.csv"]
    replayed = list(ReplayFeed.from_config(ReplayConfig(paths=recorder.paths())).events())
    assert by_kind(replayed) == by_kind(recorded)
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(replayed))
    assert sum(recorder.counts.values()) == len(recorded)


def test_record_feed_stops_at_the_count_and_flushes_everything(tmp_path: Path) -> None:
    market = SimulatedMarket(SimulatedMarketConfig(seed=4, speed=0.0, bar_ms=5_000), SYMBOLS)
    recorder = MarketRecorder(tmp_path / "new" / "dir")
    count = asyncio.run(record_feed(market, recorder, max_events=1_500, seconds=None))
    assert count == 1_500
    replayed = list(ReplayFeed.from_config(ReplayConfig(paths=recorder.paths())).events())
    assert len(replayed) == 1_500


def test_shallow_books_leave_levels_empty_and_come_back_shallow(tmp_path: Path) -> None:
    deep = BookUpdate("X", T0, (99.0, 98.0, 97.0), (1.0, 2.0, 3.0), (101.0, 102.0, 103.0), (1.5, 2.5, 3.5))
    shallow = BookUpdate("X", T0 + 250, (99.5,), (4.0,), (100.5, 101.5), (0.25, 0.5))
    deeper = BookUpdate("X", T0 + 500, (99.0, 98.0, 97.0, 96.0), (1.0,) * 4, (101.0, 102.0, 103.0, 104.0), (1.0,) * 4)
    recorder = MarketRecorder(tmp_path)
    for book in (deep, shallow, deeper):
        recorder.record(book)
    recorder.close()
    replayed = list(ReplayFeed.from_config(ReplayConfig(paths=recorder.paths())).events())
    cut = BookUpdate("X", T0 + 500, (99.0, 98.0, 97.0), (1.0,) * 3, (101.0, 102.0, 103.0), (1.0,) * 3)
    assert replayed == [deep, shallow, cut]  # the first book's depth holds for the file


def test_a_directory_with_a_recording_is_refused(tmp_path: Path) -> None:
    (tmp_path / "trades.csv").write_text("timestamp,symbol,price,size,side\n")
    with pytest.raises(DataError, match=r"already holds trades\.csv: record into an empty directory"):
        MarketRecorder(tmp_path)


def test_record_then_backtest_through_the_cli(tmp_path: Path, run_cli) -> None:
    out = tmp_path / "rec"
    done = run_cli("record", "-c", REPO / "config/default.yaml", "--out", out, "--events", "3000", "--speed", "0")
    assert done.returncode == 0, done.stderr
    assert f"recorded 3,000 events from the simulated feed into {out}" in done.stdout
    assert "replay: orchestrator backtest" in done.stdout
    again = run_cli("record", "-c", REPO / "config/default.yaml", "--out", out, "--events", "10")
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"{out}: already holds bars.csv, trades.csv, books.csv: record into an empty directory"
    ]
    replay = run_cli(
        "backtest", "-c", REPO / "config/backtest.yaml", "--data", out / "bars.csv", "--data", out / "trades.csv"
    )
    assert replay.returncode == 0, replay.stderr
