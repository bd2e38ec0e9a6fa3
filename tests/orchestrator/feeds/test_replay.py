"""Replay feed: the accepted file layouts, bar stamping, merging, and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import DataError
from orchestrator.events import Bar, BookUpdate, Trade
from orchestrator.feeds.config import FeedConfig, ReplayConfig
from orchestrator.feeds.factory import build_feed
from orchestrator.feeds.replay import ReplayFeed, detect_kind, load_bars, load_books, load_trades

MINUTE = 60_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC

THREE_BARS = [  # (open time ms, open, high, low, close, volume)
    (T0, 100.0, 101.0, 99.5, 100.5, 10.0),
    (T0 + MINUTE, 100.5, 102.0, 100.0, 101.5, 12.5),
    (T0 + 2 * MINUTE, 101.5, 101.75, 100.25, 100.75, 0.0),
]


def expected_bars(symbol: str, rows=THREE_BARS, interval: int = MINUTE) -> list[Bar]:
    return [Bar(symbol, ts + interval, o, h, low, c, v, interval) for ts, o, h, low, c, v in rows]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms").strftime("%Y-%m-%d %H:%M:%S")


def ohlcv_lines(time_of, header: str = "timestamp,open,high,low,close,volume") -> str:
    rows = [f"{time_of(ts)},{o},{h},{low},{c},{v}" for ts, o, h, low, c, v in THREE_BARS]
    return "\n".join([header, *rows]) + "\n"


@pytest.mark.parametrize(
    ("header", "time_of"),
    [
        ("timestamp,open,high,low,close,volume", iso),
        ("Date,Open,High,Low,Close,Volume", lambda ms: iso(ms).replace(" ", "T") + "Z"),
        ("open_time,open,high,low,close,volume", lambda ms: ms),
        ("time,open,high,low,close,volume", lambda ms: ms // 1000),
        ("ts,open,high,low,close,volume", lambda ms: ms * 1000),
        ("unix,open,high,low,close,volume", lambda ms: ms * 1_000_000),
        ("Open Time,OPEN,High,low,Close,VOL", lambda ms: f"{ms / 1000:.3f}"),
        (",open,high,low,close,volume", iso),
        ("datetime,open,high,low,close,volume", lambda ms: iso(ms) + "+00:00"),
    ],
    ids=["iso", "yahoo-date", "epoch-ms", "epoch-s", "epoch-us", "epoch-ns", "mixed-case-float-s", "unnamed", "tz"],
)
def test_csv_bar_layouts_load_the_same_bars(tmp_path, header, time_of):
    path = write(tmp_path / "btc.csv", ohlcv_lines(time_of, header))
    assert load_bars(path) == expected_bars("btc")


def test_yahoo_daily_dates_with_extra_columns_and_weekend_gaps(tmp_path):
    text = (
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2024-01-04,10,11,9,10.5,10.4,1000\n"
        "2024-01-05,10.5,12,10,11,10.9,1100\n"
        "2024-01-08,11,11.5,10.5,11.2,11.1,900\n"
        "2024-01-09,11.2,11.4,11,11.3,11.2,800\n"
    )
    bars = load_bars(write(tmp_path / "AAPL.csv", text))
    day = 86_400_000
    assert [bar.interval_ms for bar in bars] == [day] * 4  # the median step, not the weekend gap
    assert bars[0].ts == pd.Timestamp("2024-01-05", tz="UTC").value // 1_000_000
    assert bars[0].open_ts == pd.Timestamp("2024-01-04", tz="UTC").value // 1_000_000
    assert bars[2].symbol == "AAPL"
    assert bars[2].close == 11.2


def test_to_csv_with_an_unnamed_datetime_index(tmp_path):
    frame = pd.DataFrame(
        [row[1:] for row in THREE_BARS],
        columns=["open", "high", "low", "close", "volume"],
        index=pd.to_datetime([row[0] for row in THREE_BARS], unit="ms"),
    )
    frame.to_csv(tmp_path / "eth.csv")
    assert load_bars(tmp_path / "eth.csv", symbol="ETH/USDT") == expected_bars("ETH/USDT")


@pytest.mark.parametrize("tz", [None, "UTC", "Europe/Berlin"])
def test_parquet_with_a_datetime_index(tmp_path, tz):
    index = pd.to_datetime([row[0] for row in THREE_BARS], unit="ms").tz_localize("UTC")
    if tz != "UTC":
        index = index.tz_convert(tz) if tz else index.tz_localize(None)
    frame = pd.DataFrame(
        [row[1:] for row in THREE_BARS], columns=["Open", "High", "Low", "Close", "Volume"], index=index
    )
    frame.to_parquet(tmp_path / "sol.parquet")
    assert load_bars(tmp_path / "sol.parquet") == expected_bars("sol")


def test_parquet_with_an_epoch_column_and_no_volume(tmp_path):
    frame = pd.DataFrame(THREE_BARS, columns=["timestamp", "open", "high", "low", "close", "volume"])
    frame.drop(columns="volume").to_parquet(tmp_path / "x.parquet")
    bars = load_bars(tmp_path / "x.parquet", interval_ms=MINUTE)
    assert [bar.volume for bar in bars] == [0.0, 0.0, 0.0]
    assert [bar.close for bar in bars] == [row[4] for row in THREE_BARS]


def test_multi_symbol_file_infers_intervals_per_symbol_and_orders_by_close(tmp_path):
    text = (
        "timestamp,symbol,open,high,low,close,volume\n"
        f"{T0},BTC,1,1,1,1,1\n"
        f"{T0},ETH,2,2,2,2,2\n"
        f"{T0 + MINUTE},BTC,1,1,1,1,1\n"
        f"{T0 + 5 * MINUTE},ETH,2,2,2,2,2\n"
        f"{T0 + 2 * MINUTE},BTC,1,1,1,1,1\n"
    )
    bars = load_bars(write(tmp_path / "mixed.csv", text))
    assert [(bar.symbol, bar.ts, bar.interval_ms) for bar in bars] == [
        ("BTC", T0 + MINUTE, MINUTE),
        ("BTC", T0 + 2 * MINUTE, MINUTE),
        ("BTC", T0 + 3 * MINUTE, MINUTE),
        ("ETH", T0 + 5 * MINUTE, 5 * MINUTE),
        ("ETH", T0 + 10 * MINUTE, 5 * MINUTE),
    ]
    assert ReplayFeed(tmp_path / "mixed.csv").symbols == ("BTC", "ETH")


def test_interval_is_the_given_one_or_the_median_step(tmp_path):
    text = ohlcv_lines(lambda ms: ms).replace(str(T0 + 2 * MINUTE), str(T0 + 10 * MINUTE))
    path = write(tmp_path / "gappy.csv", text)
    assert {bar.interval_ms for bar in load_bars(path)} == {5 * MINUTE}  # median of 1 and 9 minutes
    assert [bar.ts for bar in load_bars(path, interval_ms=MINUTE)] == [T0 + MINUTE, T0 + 2 * MINUTE, T0 + 11 * MINUTE]


def test_one_row_needs_an_interval(tmp_path):
    path = write(tmp_path / "one.csv", f"timestamp,open,high,low,close\n{T0},1,2,0.5,1.5\n")
    with pytest.raises(DataError, match=r"one\.csv: cannot infer the bar length of one from a single row"):
        load_bars(path)
    assert load_bars(path, interval_ms=MINUTE) == [Bar("one", T0 + MINUTE, 1.0, 2.0, 0.5, 1.5, 0.0, MINUTE)]


def test_trades_tardis_layout(tmp_path):
    text = (
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        f"binance,BTCUSDT,{T0 * 1000},{T0 * 1000 + 5},1,buy,42000.5,0.01\n"
        f"binance,BTCUSDT,{T0 * 1000},{T0 * 1000 + 7},2,SELL,42000.0,0.5\n"
        f"binance,BTCUSDT,{T0 * 1000 + 1500},{T0 * 1000 + 1600},3,unknown,42001.0,0.2\n"
    )
    assert load_trades(write(tmp_path / "trades.csv", text)) == [
        Trade("BTCUSDT", T0, 42000.5, 0.01, 1),
        Trade("BTCUSDT", T0, 42000.0, 0.5, -1),
        Trade("BTCUSDT", T0 + 1, 42001.0, 0.2, 0),
    ]


def test_trades_with_numeric_sides_qty_and_no_side(tmp_path):
    numeric = write(tmp_path / "n.csv", f"time,price,qty,side\n{T0},10,1,1\n{T0 + 1},11,2,-1\n{T0 + 2},12,3,0\n")
    assert [trade.side for trade in load_trades(numeric)] == [1, -1, 0]
    plain = write(tmp_path / "p.csv", f"Time,Price,Size\n{iso(T0)},10,1\n")
    assert load_trades(plain, symbol="X") == [Trade("X", T0, 10.0, 1.0, 0)]


def test_books_wide_layout_one_based_drops_empty_levels(tmp_path):
    text = (
        "timestamp,bid_price_1,bid_size_1,bid_price_2,bid_size_2,ask_price_1,ask_size_1,ask_price_2,ask_size_2\n"
        f"{T0},99.5,1,99.0,2,100.0,3,100.5,4\n"
        f"{T0 + 250},99.5,1,,,100.0,3,100.5,4\n"
    )
    books = load_books(write(tmp_path / "book.csv", text), symbol="BTC")
    assert books == [
        BookUpdate("BTC", T0, (99.5, 99.0), (1.0, 2.0), (100.0, 100.5), (3.0, 4.0)),
        BookUpdate("BTC", T0 + 250, (99.5,), (1.0,), (100.0, 100.5), (3.0, 4.0)),
    ]


def test_books_px_sz_zero_based(tmp_path):
    text = f"ts,bid_px_0,bid_sz_0,ask_px_0,ask_sz_0,bid_px_1,bid_sz_1,ask_px_1,ask_sz_1\n{T0},9,1,10,2,8,3,11,4\n"
    assert load_books(write(tmp_path / "b.csv", text)) == [
        BookUpdate("b", T0, (9.0, 8.0), (1.0, 3.0), (10.0, 11.0), (2.0, 4.0))
    ]


def test_books_tardis_snapshot_layout(tmp_path):
    columns = ["exchange", "symbol", "timestamp", "local_timestamp"]
    for level in range(3):
        columns += [f"asks[{level}].price", f"asks[{level}].amount", f"bids[{level}].price", f"bids[{level}].amount"]
    row = ["deribit", "BTC-PERPETUAL", T0 * 1000, T0 * 1000 + 3]
    row += [100.5, 1, 100.0, 2, 101.0, 3, 99.5, 4, 101.5, 5, 99.0, 6]
    pd.DataFrame([row], columns=columns).to_csv(tmp_path / "snap.csv", index=False)
    assert load_books(tmp_path / "snap.csv") == [
        BookUpdate("BTC-PERPETUAL", T0, (100.0, 99.5, 99.0), (2.0, 4.0, 6.0), (100.5, 101.0, 101.5), (1.0, 3.0, 5.0))
    ]


def test_detect_kind():
    assert detect_kind(["Date", "Open", "High", "Low", "Close"]) == "bars"
    assert detect_kind(["timestamp", "price", "amount", "side"]) == "trades"
    assert detect_kind(["timestamp", "bid_price_1", "bid_size_1"]) == "books"
    assert detect_kind(["timestamp", "bids[0].price"]) == "books"
    with pytest.raises(DataError, match=r"cannot tell bars, trades or books .*found: a, b"):
        detect_kind(["a", "b"])


def test_several_files_merge_by_time_and_ties_keep_file_order(tmp_path):
    bars = write(tmp_path / "bars.csv", ohlcv_lines(lambda ms: ms))  # closes at T0+1m, +2m, +3m
    trades = write(tmp_path / "trades.csv", f"timestamp,price,size\n{T0 + MINUTE},1,1\n{T0 + 90_000},2,1\n")
    books = write(
        tmp_path / "books.csv", f"timestamp,bid_price_1,bid_size_1,ask_price_1,ask_size_1\n{T0 + MINUTE},1,1,2,1\n"
    )
    feed = ReplayFeed([bars, trades, books], symbol="BTC")
    events = list(feed.events())
    assert [(type(event).__name__, event.ts) for event in events] == [
        ("Bar", T0 + MINUTE),
        ("Trade", T0 + MINUTE),
        ("BookUpdate", T0 + MINUTE),
        ("Trade", T0 + 90_000),
        ("Bar", T0 + 2 * MINUTE),
        ("Bar", T0 + 3 * MINUTE),
    ]
    assert len(feed) == 6
    assert feed.symbols == ("BTC",)
    reversed_order = list(ReplayFeed([books, trades, bars], symbol="BTC").events())
    assert [type(event).__name__ for event in reversed_order[:3]] == ["BookUpdate", "Trade", "Bar"]


def test_two_loads_give_identical_events_and_a_feed_replays_from_the_start(tmp_path):
    path = write(tmp_path / "btc.csv", ohlcv_lines(iso))
    feed = ReplayFeed(path)
    assert list(feed.events()) == list(feed.events()) == list(ReplayFeed(path).events())


def test_build_feed_replay_carries_speed(tmp_path):
    path = write(tmp_path / "btc.csv", ohlcv_lines(iso))
    config = FeedConfig(kind="replay", replay=ReplayConfig(paths=[path], symbol="BTC/USDT", speed=5.0))
    feed = build_feed(config, ["ETH/USDT"])
    assert isinstance(feed, ReplayFeed)
    assert feed.speed == 5.0
    assert feed.symbols == ("BTC/USDT",)


async def test_stream_yields_every_event(tmp_path):
    feed = ReplayFeed(write(tmp_path / "btc.csv", ohlcv_lines(iso)), speed=1e9)
    assert [event async for event in feed.stream()] == expected_bars("btc")


HEADER = "timestamp,open,high,low,close,volume\n"
GOOD = f"{T0},1,2,0.5,1.5,10\n"


def bar_rows(*rows: str, start: int = 0) -> str:
    """Data rows after one good row, with increasing minutes."""
    lines = [GOOD]
    for offset, row in enumerate(rows, start=start + 1):
        lines.append(f"{T0 + offset * MINUTE},{row}\n" if row else "\n")
    return HEADER + "".join(lines)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (bar_rows("1,2,0.5,abc,1"), "line 3: close is not a number ('abc')"),
        (bar_rows("1,2,0.5,1.5,1", "", "1,10.0,11.0,1,1"), "line 5: high 10.0 is below low 11.0"),
        (bar_rows("1,2,0.5,,1"), "line 3: close is missing"),
        (bar_rows("1,2,0.5,inf,1"), "line 3: close is not finite (inf)"),
        (bar_rows("1,2,0.5,1.5,-1"), "line 3: volume -1.0 is negative"),
        (bar_rows("3,2,0.5,1.5,1"), "line 3: high 2.0 is below open 3.0"),
        (bar_rows("1.3,2,1.2,1.1,1"), "line 3: low 1.2 is above close 1.1"),
        (bar_rows("0,2,0,1,1"), "line 3: open 0.0 is not positive"),
        (HEADER + GOOD + "yesterday,1,2,0.5,1.5,1\n", "line 3: unreadable time 'yesterday'"),
        (
            HEADER + f"{T0 + 5 * MINUTE},1,2,0.5,1.5,1\n{T0 + 5 * MINUTE},1,2,0.5,1.5,1\n",
            "line 3: timestamp 2024-01-01 00:05 is not after the previous row (timestamps must increase per symbol)",
        ),
        ("a,b,c\n1,2,3\n", "no open column (found: a, b, c)"),
        ("open,high,low,close\n1,2,0.5,1\n", "no time column (found: open, high, low, close)"),
        ("", "the file is empty"),
        (HEADER, "no data rows (only a header)"),
        (HEADER + GOOD + "1,2,3\n1,2,3,4,5,6,7,8\n", "line 4: 8 fields, but the header names 6 columns"),
    ],
    ids=[
        "not-a-number",
        "high-below-low-after-blank-line",
        "missing",
        "infinite",
        "negative-volume",
        "high-below-open",
        "low-above-close",
        "zero-price",
        "unreadable-time",
        "repeated-time",
        "no-open-column",
        "no-time-column",
        "empty-file",
        "header-only",
        "malformed-csv",
    ],
)
def test_bar_file_errors_name_the_file_and_line(tmp_path, text, message):
    path = write(tmp_path / "btc.csv", text)
    with pytest.raises(DataError) as raised:
        load_bars(path)
    assert str(raised.value).startswith(f"{path}: {message}")


def test_the_first_bad_line_in_the_file_is_reported(tmp_path):
    text = bar_rows("1,2,0.5,1.5,1", "1,2,0.5,1.5,-5", "1,2,0.5,abc,1")
    with pytest.raises(DataError, match=r"line 4: volume -5.0 is negative"):
        load_bars(write(tmp_path / "b.csv", text))


def test_multi_symbol_order_error_names_the_symbol(tmp_path):
    text = f"timestamp,symbol,open,high,low,close\n{T0},A,1,1,1,1\n{T0},B,1,1,1,1\n{T0 - MINUTE},A,1,1,1,1\n"
    with pytest.raises(DataError, match=r"line 4: timestamp 2023-12-31 23:59 is not after the previous A row"):
        load_bars(write(tmp_path / "m.csv", text))


def test_trade_and_book_errors(tmp_path):
    trades = write(tmp_path / "t.csv", f"timestamp,price,size\n{T0},1,1\n{T0},1,-2\n")
    with pytest.raises(DataError, match=r"t\.csv: line 3: size -2.0 is negative"):
        load_trades(trades)
    backwards = write(tmp_path / "t2.csv", f"timestamp,price,size\n{T0},1,1\n{T0 - 1},1,1\n")
    with pytest.raises(DataError, match=r"line 3: timestamp .* is before the previous row"):
        load_trades(backwards)
    header = "timestamp,bid_price_1,bid_size_1,bid_price_2,bid_size_2,ask_price_1,ask_size_1\n"
    crossed = write(tmp_path / "c.csv", header + f"{T0},9,1,8,1,10,1\n{T0 + 1},10,1,9,1,10,1\n")
    with pytest.raises(DataError, match=r"c\.csv: line 3: best bid 10.0 is not below best ask 10.0"):
        load_books(crossed)
    unordered = write(tmp_path / "u.csv", header + f"{T0},9,1,9.5,1,10,1\n")
    with pytest.raises(DataError, match=r"line 2: bid_price_2 9.5 is not below the better bid levels \(9.0\)"):
        load_books(unordered)
    no_size = write(tmp_path / "s.csv", header + f"{T0},9,1,8,,10,1\n")
    with pytest.raises(DataError, match=r"line 2: bid_size_2 is missing"):
        load_books(no_size)
    one_sided = write(tmp_path / "o.csv", "timestamp,bid_price_1,bid_size_1\n1,2,3\n")
    with pytest.raises(DataError, match=r"o\.csv: no ask price column"):
        load_books(one_sided)


def test_parquet_errors_name_the_row(tmp_path):
    frame = pd.DataFrame(THREE_BARS, columns=["timestamp", "open", "high", "low", "close", "volume"])
    frame.loc[2, "low"] = 200.0
    frame.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"bad\.parquet: row 3: high 101.75 is below low 200.0"):
        load_bars(tmp_path / "bad.parquet")


def test_file_level_errors(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        ReplayFeed(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"data\.json: unknown file type '\.json'"):
        load_bars(write(tmp_path / "data.json", "{}"))
    with pytest.raises(DataError, match=r"junk\.parquet: not a Parquet file \(it does not start with PAR1"):
        load_bars(write(tmp_path / "junk.parquet", "not parquet"))
    with pytest.raises(DataError, match=r"what\.csv: cannot tell bars, trades or books"):
        ReplayFeed(write(tmp_path / "what.csv", "a,b\n1,2\n"))


bar_values = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)


@st.composite
def ohlcv_frames(draw):
    rows = draw(st.integers(min_value=2, max_value=30))
    steps = draw(st.lists(st.integers(min_value=1, max_value=10**9), min_size=rows, max_size=rows))
    opens_ms = (T0 + np.cumsum(steps)).tolist()
    records = []
    for open_ms in opens_ms:
        prices = sorted(draw(st.lists(bar_values, min_size=4, max_size=4)))
        low, high = prices[0], prices[3]
        open_, close = draw(st.permutations(prices[1:3]))
        volume = draw(st.floats(min_value=0, max_value=1e12, allow_nan=False))
        records.append((open_ms, open_, high, low, close, volume))
    return records


@given(records=ohlcv_frames(), time_format=st.sampled_from(["ms", "iso"]))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_valid_ohlcv_frame_round_trips_through_csv(tmp_path, records, time_format):
    frame = pd.DataFrame(records, columns=["timestamp", "open", "high", "low", "close", "volume"])
    if time_format == "iso":
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms")
    frame.to_csv(tmp_path / "prop.csv", index=False)
    bars = load_bars(tmp_path / "prop.csv", symbol="P")
    steps = np.diff([record[0] for record in records])
    interval = int(np.rint(np.median(steps)))
    assert bars == [Bar("P", ts + interval, o, h, low, c, v, interval) for ts, o, h, low, c, v in records]
