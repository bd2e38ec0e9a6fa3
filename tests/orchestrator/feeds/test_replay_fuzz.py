"""Replay feed, property: whatever bytes a data file holds, loading it either gives valid events or
raises ``DataError`` with a one-line message naming the file; never another exception."""

from __future__ import annotations

import bz2
import gzip
import io
import math
import uuid
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import DataError
from orchestrator.events import Bar, BookUpdate, MarketEvent, Trade
from orchestrator.feeds.replay import ReplayFeed
from orchestrator.feeds.replay_files import MAX_MS, MIN_MS

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

COLUMNS = [
    "timestamp", "time", "date", "Date", "ts", "open_time", "", "symbol", "ticker", "open", "high", "low",
    "close", "Close", "volume", "vol", "price", "size", "amount", "qty", "side", "bid_price_1", "bid_size_1",
    "ask_price_1", "ask_size_1", "bid_px_0", "bid_sz_0", "bids[0].price", "bids[0].amount", "asks[0].price",
    "asks[0].amount", "bid_price_2", "bid_size_2", "ask_price_2", "ask_size_2", "junk",
]  # fmt: skip
CELLS = st.one_of(
    st.sampled_from([
        "", "nan", "NaN", "NA", "inf", "-inf", "0", "-1", "1e308", "1e-300", "abc", "true", "False", "buy",
        "sell", "BTC", " ", "\"", "\"a,b\"", "\"x\ny\"", "2024-01-01", "2024-01-01T00:00:00Z",
        "2024-01-01 00:00:00+02:00", "2024-13-45", "9999-12-31T23:59:59", "0001-01-01", "1704067200",
        "1704067200000", "1704067200000000", "1704067200000000000", "18446744073709551615", "01/02/2024",
        "13/01/2024", "01/13/2024", "1.2.24 10:00", "Jan 3 2024",
        "-9223372036854775808", "99999999999999999999999", "1,5", "0x10", "\x00", "é", "\u2028",
    ]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=8),
)  # fmt: skip


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    delimiter = draw(st.sampled_from([",", ",", ",", ";", "\t", "|"]))
    header = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=9))
    ragged = draw(st.booleans())  # rows of any length, or as many fields as the header has
    width = (
        st.integers(min_value=max(0, len(header) - 2), max_value=len(header) + 1) if ragged else st.just(len(header))
    )
    rows = [draw(st.lists(CELLS, min_size=size, max_size=size)) for size in draw(st.lists(width, max_size=8))]
    lines = [delimiter.join(header)] + [delimiter.join(row) for row in rows]
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    prefix = draw(st.sampled_from(["", "", "\ufeff", "\n"]))
    return prefix + newline.join(lines) + draw(st.sampled_from(["", newline]))


# A valid row of each kind (after the time and symbol), and its header.
LAYOUTS = {
    "bars": ("open,high,low,close,volume", "1,2,0.5,1.5,10"),
    "trades": ("price,size,side", "100.5,0.25,buy"),
    "books": ("bid_price_1,bid_size_1,bid_price_2,bid_size_2,ask_price_1,ask_size_1", "99,1,98,2,101,1"),
    "tardis": ("bids[0].price,bids[0].amount,asks[0].price,asks[0].amount", "99,1,101,1"),
}
TIME_FORMATS = {
    "s": lambda ms: str(ms // 1000),
    "ms": str,
    "us": lambda ms: str(ms * 1000),
    "iso": lambda ms: pd.Timestamp(ms, unit="ms").strftime("%Y-%m-%d %H:%M:%S"),
    "iso-z": lambda ms: pd.Timestamp(ms, unit="ms").strftime("%Y-%m-%dT%H:%M:%SZ"),
    "day-first": lambda ms: pd.Timestamp(ms, unit="ms").strftime("%d/%m/%Y %H:%M:%S"),
}


@st.composite
def plausible_texts(draw: st.DrawFn) -> str:
    """Mostly well-formed files of each kind with a few hostile cells, order or layout changes:
    these get past the parser to the checks on values, times and symbols."""
    header, good = LAYOUTS[draw(st.sampled_from(sorted(LAYOUTS)))]
    with_symbol = draw(st.booleans())
    names = ["timestamp", *(["symbol"] if with_symbol else []), *header.split(",")]
    if draw(st.booleans()):
        names = [name.upper() if draw(st.booleans()) else name for name in names]
    delimiter = draw(st.sampled_from([",", ",", ";", "\t"]))
    time_of = TIME_FORMATS[draw(st.sampled_from(sorted(TIME_FORMATS)))]
    step = draw(st.sampled_from([-60_000, 0, 1, 1000, 60_000, 86_400_000]))
    start = 1_704_067_200_000
    lines = [delimiter.join(names)]
    for index in range(draw(st.integers(min_value=1, max_value=8))):
        cells = [time_of(start + index * step)]
        if with_symbol:
            cells.append(draw(st.sampled_from(["A", "A", "B", " A", "", "NA", "000001"])))
        cells += good.split(",")
        for _ in range(draw(st.integers(min_value=0, max_value=2))):
            cells[draw(st.integers(0, len(cells) - 1))] = draw(CELLS).replace(delimiter, "")
        lines.append(delimiter.join(cells))
    if draw(st.booleans()):
        lines.insert(draw(st.integers(1, len(lines))), "")
    return draw(st.sampled_from(["", "\ufeff"])) + "\n".join(lines) + "\n"


def check_events(events: list[MarketEvent]) -> None:
    """What every loaded event promises the engine."""
    previous = None
    for event in events:
        assert isinstance(event.ts, int)
        assert MIN_MS <= event.ts <= MAX_MS
        assert isinstance(event.symbol, str)
        assert event.symbol.strip() == event.symbol
        assert event.symbol
        if previous is not None:
            assert event.ts >= previous
        previous = event.ts
        if isinstance(event, Bar):
            assert all(math.isfinite(v) and v > 0 for v in (event.open, event.high, event.low, event.close))
            assert event.low <= min(event.open, event.close) <= max(event.open, event.close) <= event.high
            assert math.isfinite(event.volume)
            assert event.volume >= 0
            assert event.interval_ms > 0
        elif isinstance(event, Trade):
            assert math.isfinite(event.price)
            assert event.price > 0
            assert math.isfinite(event.size)
            assert event.size >= 0
            assert event.side in (-1, 0, 1)
        else:
            assert isinstance(event, BookUpdate)
            assert len(event.bid_prices) == len(event.bid_sizes)
            assert len(event.ask_prices) == len(event.ask_sizes)
            assert list(event.bid_prices) == sorted(event.bid_prices, reverse=True)
            assert list(event.ask_prices) == sorted(event.ask_prices)
            assert all(math.isfinite(p) and p > 0 for p in (*event.bid_prices, *event.ask_prices))
            assert all(math.isfinite(s) and s >= 0 for s in (*event.bid_sizes, *event.ask_sizes))
            if event.bid_prices and event.ask_prices:
                assert event.bid_prices[0] < event.ask_prices[0]


def load_or_refuse(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas may warn about a guessed date format; not the point here
        try:
            feed = ReplayFeed(path)
        except DataError as error:
            message = str(error)
            assert message.startswith(f"{path}: ") or message.startswith(str(path)), message
            assert len(message.splitlines()) == 1, message
            return
    events = list(feed.events())
    assert len(events) == len(feed)
    check_events(events)


def fresh(folder: Path, suffix: str) -> Path:
    return folder / f"f{uuid.uuid4().hex[:8]}{suffix}"


@FUZZ
@given(text=csv_texts())
def test_csv_like_text_loads_or_is_refused_with_a_data_error(tmp_path: Path, text: str) -> None:
    path = fresh(tmp_path, ".csv")
    path.write_text(text, encoding="utf-8", newline="")
    load_or_refuse(path)


@FUZZ
@given(text=plausible_texts())
def test_nearly_valid_files_load_or_are_refused_with_a_data_error(tmp_path: Path, text: str) -> None:
    path = fresh(tmp_path, ".csv")
    path.write_text(text, encoding="utf-8")
    load_or_refuse(path)


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=300), csv_texts().map(lambda text: text.encode("utf-8", "surrogatepass"))),
    suffix=st.sampled_from([".csv", ".parquet", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip", ".pq"]),
    compress=st.booleans(),
    cut=st.none() | st.integers(min_value=0, max_value=300),
)
def test_any_bytes_under_any_data_name_load_or_are_refused(
    tmp_path: Path, data: bytes, suffix: str, compress: bool, cut: int | None
) -> None:
    """Random bytes, and CSV text compressed (or not, or cut short) under each accepted name."""
    if compress and suffix == ".csv.gz":
        data = gzip.compress(data)
    elif compress and suffix == ".csv.bz2":
        data = bz2.compress(data)
    if cut is not None:
        data = data[:cut]
    path = fresh(tmp_path, suffix)
    path.write_bytes(data)
    load_or_refuse(path)


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


GOOD_PARQUET = parquet_bytes(
    pd.DataFrame({"timestamp": [1_704_067_200_000, 1_704_067_260_000], "price": [1.0, 2.0], "size": [1.0, 1.0]})
)


@FUZZ
@given(
    position=st.integers(min_value=0, max_value=len(GOOD_PARQUET) - 1),
    junk=st.binary(min_size=1, max_size=16),
    truncate=st.booleans(),
)
def test_a_damaged_parquet_file_loads_or_is_refused(tmp_path: Path, position: int, junk: bytes, truncate: bool) -> None:
    data = (
        GOOD_PARQUET[:position] if truncate else GOOD_PARQUET[:position] + junk + GOOD_PARQUET[position + len(junk) :]
    )
    path = fresh(tmp_path, ".parquet")
    path.write_bytes(data)
    load_or_refuse(path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_property_harness_accepts_a_good_file(tmp_path: Path, suffix: str) -> None:
    """The harness itself: a valid file passes through ``check_events`` (so the properties are not vacuous)."""
    path = tmp_path / f"good{suffix}"
    if suffix == ".csv":
        path.write_text("timestamp,price,size,side\n1704067200000,1,1,buy\n1704067200001,2,0,sell\n")
    else:
        path.write_bytes(GOOD_PARQUET)
    load_or_refuse(path)
    assert len(ReplayFeed(path)) == 2
