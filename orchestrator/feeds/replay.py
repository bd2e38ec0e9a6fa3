"""Replay recorded bars, trades and level-2 book snapshots as one finite, time-ordered feed.

Inputs: CSV or Parquet files (how files are opened is in ``replay_read.py``,
how times, symbols and bad cells are read in ``replay_files.py``), each
holding one kind of data; one file may not be given twice:

- bars: open/high/low/close and an optional volume (or vol) column. Files
  stamp a bar with its OPEN time (exchange exports and Yahoo do); the event is
  stamped with its close, open + interval_ms, so a replay never shows a bar
  before it could have been known. Unless given, the interval is the median
  positive step between one symbol's timestamps.
- trades: price, size (or amount / qty / quantity / volume), an optional side
  (buy/b/1 → +1, sell/s/-1 → -1, anything else → 0).
- books: wide snapshots, ``bid_price_1.. bid_size_1.. ask_price_1.. ask_size_1..``
  (also ``bid_px_``/``bid_sz_``, 0- or 1-based) or Tardis ``bids[0].price`` /
  ``bids[0].amount``; levels without a price are dropped (a positive size
  without its price is an error, as are two columns for one level's field).
  The sides may have different depths; a crossed book is an error.

Outputs: ``ReplayFeed.events()``, every file's events merged by ``ts`` with
``heapq.merge`` (on equal times the earlier file first, and within a file the
earlier row), and the ``load_*`` functions for one file. A file is validated
whole when the feed is built, so a bad row stops the daemon at start-up, not
mid-replay; its rows are kept as numpy columns and become event objects only
while they are replayed.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np

from orchestrator.errors import ConfigError, DataError
from orchestrator.events import Bar, BookUpdate, MarketEvent, Trade
from orchestrator.feeds.base import MarketFeed
from orchestrator.feeds.replay_files import MAX_MS, MIN_MS, FloatArray, IntArray, SourceFrame
from orchestrator.feeds.replay_read import normalize_column, show_columns, single_line

if TYPE_CHECKING:
    import pandas as pd

    from orchestrator.feeds.config import ReplayConfig

DataKind: TypeAlias = Literal["bars", "trades", "books"]

OHLC_COLUMNS = ("open", "high", "low", "close")
VOLUME_COLUMNS = ("volume", "vol")
TRADE_SIZE_COLUMNS = ("size", "amount", "qty", "quantity", "volume")
_WIDE_BOOK_COLUMN = re.compile(r"^(bid|ask)s?[_ .]?(price|px|size|sz|amount|qty|quantity)[_ .]?(\d+)$")
_TARDIS_BOOK_COLUMN = re.compile(r"^(bid|ask)s\[(\d+)\]\.(price|amount|size)$")
_SIDE_WORDS = {"buy": 1, "b": 1, "1": 1, "1.0": 1, "+1": 1, "sell": -1, "s": -1, "-1": -1, "-1.0": -1}
# Rows turned into Python objects at a time: large enough to amortize numpy
# calls, small enough that a paced replay holds little memory ahead.
_ROWS_PER_BATCH = 65_536


@dataclass(frozen=True, slots=True, eq=False)
class BarTable:
    """Validated bars of one file, ordered by close time."""

    source: str
    symbols: tuple[str, ...]  # the symbol of each code
    codes: IntArray
    ts: IntArray  # close time, epoch ms
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    interval_ms: IntArray

    def __len__(self) -> int:
        return len(self.ts)

    def events(self) -> Iterator[Bar]:
        names = np.asarray(self.symbols, dtype=object)
        for start in range(0, len(self), _ROWS_PER_BATCH):
            rows = slice(start, start + _ROWS_PER_BATCH)
            columns = (self.ts, self.open, self.high, self.low, self.close, self.volume, self.interval_ms)
            yield from map(Bar, names[self.codes[rows]].tolist(), *(column[rows].tolist() for column in columns))


@dataclass(frozen=True, slots=True, eq=False)
class TradeTable:
    """Validated trades of one file, ordered by time."""

    source: str
    symbols: tuple[str, ...]
    codes: IntArray
    ts: IntArray
    price: FloatArray
    size: FloatArray
    side: IntArray

    def __len__(self) -> int:
        return len(self.ts)

    def events(self) -> Iterator[Trade]:
        names = np.asarray(self.symbols, dtype=object)
        for start in range(0, len(self), _ROWS_PER_BATCH):
            rows = slice(start, start + _ROWS_PER_BATCH)
            columns = (self.ts, self.price, self.size, self.side)
            yield from map(Trade, names[self.codes[rows]].tolist(), *(column[rows].tolist() for column in columns))


@dataclass(frozen=True, slots=True, eq=False)
class BookTable:
    """Validated book snapshots of one file, ordered by time; one column per level, NaN = no level."""

    source: str
    symbols: tuple[str, ...]
    codes: IntArray
    ts: IntArray
    bid_prices: FloatArray  # (rows, levels), best first
    bid_sizes: FloatArray
    ask_prices: FloatArray
    ask_sizes: FloatArray

    def __len__(self) -> int:
        return len(self.ts)

    def events(self) -> Iterator[BookUpdate]:
        names = np.asarray(self.symbols, dtype=object)
        for start in range(0, len(self), _ROWS_PER_BATCH):
            rows = slice(start, start + _ROWS_PER_BATCH)
            bid_prices, ask_prices = self.bid_prices[rows], self.ask_prices[rows]
            gaps = np.isnan(bid_prices).any(axis=1) | np.isnan(ask_prices).any(axis=1)
            complete: list[bool] = np.logical_not(gaps).tolist()
            for symbol, ts, full, bid_p, bid_s, ask_p, ask_s in zip(
                names[self.codes[rows]].tolist(),
                self.ts[rows].tolist(),
                complete,
                bid_prices.tolist(),
                self.bid_sizes[rows].tolist(),
                ask_prices.tolist(),
                self.ask_sizes[rows].tolist(),
                strict=True,
            ):
                if full:
                    yield BookUpdate(symbol, ts, tuple(bid_p), tuple(bid_s), tuple(ask_p), tuple(ask_s))
                else:
                    yield BookUpdate(symbol, ts, *_present_levels(bid_p, bid_s), *_present_levels(ask_p, ask_s))


EventTable: TypeAlias = BarTable | TradeTable | BookTable


def _present_levels(prices: list[float], sizes: list[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    kept = [index for index, price in enumerate(prices) if not math.isnan(price)]
    return tuple(prices[index] for index in kept), tuple(sizes[index] for index in kept)


class ReplayFeed(MarketFeed):
    """Recorded files replayed in time order; finite. Pacing (``speed``) is done by ``stream()``."""

    name = "replay"

    def __init__(
        self,
        paths: Sequence[str | Path] | str | Path,
        *,
        kind: DataKind | Literal["auto"] = "auto",
        symbol: str | None = None,
        interval_ms: int | None = None,
        speed: float = 0.0,
    ) -> None:
        if isinstance(paths, str | Path):
            paths = [paths]
        if not paths:
            raise ConfigError(["feed.replay.paths: no files given"])
        _refuse_repeated_files(paths)
        self.speed = speed
        self.tables: tuple[EventTable, ...] = tuple(
            read_table(path, kind=kind, symbol=symbol, interval_ms=interval_ms) for path in paths
        )
        self._symbols = tuple(dict.fromkeys(name for table in self.tables for name in table.symbols))

    @classmethod
    def from_config(cls, config: ReplayConfig) -> ReplayFeed:
        return cls(
            config.paths, kind=config.kind, symbol=config.symbol, interval_ms=config.interval_ms, speed=config.speed
        )

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    def __len__(self) -> int:
        """The number of events a full replay yields."""
        return sum(len(table) for table in self.tables)

    def events(self) -> Iterator[MarketEvent]:
        streams: list[Iterator[MarketEvent]] = [table.events() for table in self.tables]
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=attrgetter("ts"))


def _refuse_repeated_files(paths: Sequence[str | Path]) -> None:
    """One file given twice would replay every one of its events twice."""
    seen: dict[Path, str | Path] = {}
    for path in paths:
        try:
            key = Path(path).resolve()
        except (OSError, RuntimeError, ValueError):  # unreadable names are reported when the file is read
            continue
        if key in seen:
            also = "" if str(seen[key]) == str(path) else f" (also as {seen[key]})"
            raise ConfigError([single_line(f"feed.replay.paths: {path} is given twice{also}")])
        seen[key] = path


def load_bars(path: str | Path, *, symbol: str | None = None, interval_ms: int | None = None) -> list[Bar]:
    """Every bar of one file, stamped with its close time, in time order."""
    _check_interval(interval_ms)
    return list(_parse_bars(SourceFrame.read(Path(path)), _default_symbol(symbol), interval_ms).events())


def load_trades(path: str | Path, *, symbol: str | None = None) -> list[Trade]:
    return list(_parse_trades(SourceFrame.read(Path(path)), _default_symbol(symbol)).events())


def load_books(path: str | Path, *, symbol: str | None = None) -> list[BookUpdate]:
    return list(_parse_books(SourceFrame.read(Path(path)), _default_symbol(symbol)).events())


def read_table(
    path: str | Path,
    *,
    kind: DataKind | Literal["auto"] = "auto",
    symbol: str | None = None,
    interval_ms: int | None = None,
) -> EventTable:
    """Read and validate one file; ``auto`` tells its kind from its columns."""
    if kind not in ("auto", "bars", "trades", "books"):
        raise ConfigError([f"feed.replay.kind: {kind!r} is not auto, bars, trades or books"])
    _check_interval(interval_ms)
    symbol = _default_symbol(symbol)
    source = SourceFrame.read(Path(path))
    if kind == "auto":
        kind = detect_kind(source.frame.columns, source=source.label)
    if kind == "bars":
        return _parse_bars(source, symbol, interval_ms)
    if kind == "trades":
        return _parse_trades(source, symbol)
    return _parse_books(source, symbol)


def _default_symbol(symbol: str | None) -> str | None:
    """The symbol for files without a symbol column, stripped of spaces as the files' own are."""
    if symbol is None:
        return None
    if not isinstance(symbol, str) or not symbol.strip():
        raise ConfigError([single_line(f"feed.replay.symbol: {symbol!r} is not a symbol name")])
    return symbol.strip()


def _check_interval(interval_ms: int | None) -> None:
    if interval_ms is None:
        return
    if isinstance(interval_ms, bool) or not isinstance(interval_ms, int) or not 0 < interval_ms <= MAX_MS - MIN_MS:
        raise ConfigError([f"feed.replay.interval_ms: {interval_ms!r} is not a bar length in milliseconds"])


def detect_kind(columns: Sequence[object] | pd.Index, *, source: str | None = None) -> DataKind:
    """Whether a file's columns hold bars, trades or book snapshots."""
    names = [normalize_column(column) for column in columns]
    if any(_book_column(name) for name in names):
        return "books"
    if any(name in OHLC_COLUMNS for name in names):
        return "bars"
    if "price" in names:
        return "trades"
    prefix = f"{source}: " if source else ""
    raise DataError(
        single_line(
            f"{prefix}cannot tell bars, trades or books from the columns (found: {show_columns(columns)}); "
            "bars need open/high/low/close, trades price and size, books bid_price_1/ask_price_1 or bids[0].price"
        )
    )


def _book_column(name: str) -> tuple[str, str, int] | None:
    """(side, "price" | "size", level) of a wide book column name, else None."""
    wide = _WIDE_BOOK_COLUMN.match(name)
    if wide:
        side, field, level = wide.groups()
    else:
        tardis = _TARDIS_BOOK_COLUMN.match(name)
        if not tardis:
            return None
        side, level, field = tardis.groups()
    return side, "price" if field in ("price", "px") else "size", int(level)


def _parse_bars(source: SourceFrame, default_symbol: str | None, interval_ms: int | None) -> BarTable:
    open_, high, low, close = (source.require(field, field) for field in OHLC_COLUMNS)
    time_column = source.time_column()
    volume_column = source.column(*VOLUME_COLUMNS)
    opens, highs, lows, closes = (source.numbers(column) for column in (open_, high, low, close))
    volumes = source.numbers(volume_column) if volume_column else np.zeros(len(source))
    open_ms = source.epoch_ms(time_column)
    codes, names, named_symbols = source.symbols(default_symbol)
    for column, values in ((open_, opens), (high, highs), (low, lows), (close, closes)):
        source.check_positive(column, values)
    if volume_column:
        source.check_non_negative(volume_column, volumes)
    source.check(highs < lows, lambda row: f"{high} {float(highs[row])!r} is below {low} {float(lows[row])!r}")
    source.check(highs < opens, lambda row: f"{high} {float(highs[row])!r} is below {open_} {float(opens[row])!r}")
    source.check(highs < closes, lambda row: f"{high} {float(highs[row])!r} is below {close} {float(closes[row])!r}")
    source.check(lows > opens, lambda row: f"{low} {float(lows[row])!r} is above {open_} {float(opens[row])!r}")
    source.check(lows > closes, lambda row: f"{low} {float(lows[row])!r} is above {close} {float(closes[row])!r}")
    source.check_time_order(open_ms, codes, names, named_symbols, strict=True)
    source.raise_first_problem()
    intervals = _bar_intervals(source, open_ms, codes, names, interval_ms)[codes]
    close_ms = open_ms + intervals
    source.check(close_ms > MAX_MS, lambda row: f"the bar closes after the year 9999 ({int(intervals[row])} ms long)")
    source.raise_first_problem()
    order = np.argsort(close_ms, kind="stable")
    return BarTable(
        source.label, names, codes[order], close_ms[order], opens[order], highs[order], lows[order],
        closes[order], volumes[order], intervals[order],
    )  # fmt: skip


def _bar_intervals(
    source: SourceFrame, open_ms: IntArray, codes: IntArray, names: tuple[str, ...], interval_ms: int | None
) -> IntArray:
    """Bar length per symbol code: the given one, or the median positive step of its timestamps."""
    if interval_ms is not None:
        return np.full(len(names), interval_ms, dtype=np.int64)
    intervals = np.empty(len(names), dtype=np.int64)
    for code, name in enumerate(names):
        steps = np.diff(open_ms[codes == code] if len(names) > 1 else open_ms)
        steps = steps[steps > 0]
        if steps.size == 0:
            raise source.error(f"cannot infer the bar length of {name} from a single row; set interval_ms")
        intervals[code] = int(np.rint(np.median(steps)))
    return intervals


def _parse_trades(source: SourceFrame, default_symbol: str | None) -> TradeTable:
    price_column = source.require("price", "price")
    size_column = source.require("size (or amount, qty, quantity, volume)", *TRADE_SIZE_COLUMNS)
    time_column = source.time_column()
    side_column = source.column("side")
    prices = source.numbers(price_column)
    sizes = source.numbers(size_column)
    ms = source.epoch_ms(time_column)
    codes, names, named_symbols = source.symbols(default_symbol)
    source.check_positive(price_column, prices)
    source.check_non_negative(size_column, sizes)
    source.check_time_order(ms, codes, names, named_symbols, strict=False)
    source.raise_first_problem()
    sides = _sides(source.frame[side_column]) if side_column else np.zeros(len(ms), dtype=np.int64)
    order = np.argsort(ms, kind="stable")
    return TradeTable(source.label, names, codes[order], ms[order], prices[order], sizes[order], sides[order])


def _sides(values: pd.Series[Any]) -> IntArray:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if is_bool_dtype(values):
        return np.zeros(len(values), dtype=np.int64)  # a flag such as is_buyer_maker, not a side
    if is_numeric_dtype(values):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.asarray(numbers == 1.0, dtype=np.int64) - np.asarray(numbers == -1.0, dtype=np.int64)
    words = values.astype("string").str.strip().str.lower()
    return np.asarray(words.map(_SIDE_WORDS).fillna(0).to_numpy(), dtype=np.int64)


def _parse_books(source: SourceFrame, default_symbol: str | None) -> BookTable:
    columns: dict[str, dict[int, dict[str, str]]] = {"bid": {}, "ask": {}}  # side → level → field → column
    for normalized in list(source.by_name):
        parsed = _book_column(normalized)
        if parsed:
            side, field, level = parsed
            column = source.column(normalized) or normalized  # column() refuses two spellings of one name
            fields = columns[side].setdefault(level, {})
            if field in fields:
                raise source.error(f"{fields[field]} and {column} are both the {side} {field} of one level; keep one")
            fields[field] = column
    sides: dict[str, tuple[FloatArray, FloatArray]] = {}
    for side, by_level in columns.items():
        if not by_level:
            source.require(f"{side} price", f"{side}_price_1", f"{side}s[0].price")  # raises, listing the columns
        for fields in by_level.values():
            for needed, present in (("price", "size"), ("size", "price")):
                if needed not in fields:
                    raise source.error(f"{fields[present]} has no matching {side} {needed} column")
        levels = [by_level[level] for level in sorted(by_level)]
        prices = np.column_stack([source.numbers(fields["price"], allow_missing=True) for fields in levels])
        sizes = np.column_stack([source.numbers(fields["size"], allow_missing=True) for fields in levels])
        _check_book_side(source, side, levels, prices, sizes)
        sides[side] = (prices, sizes)
    ms = source.epoch_ms(source.time_column())
    codes, names, named_symbols = source.symbols(default_symbol)
    best_bid = np.fmax.reduce(sides["bid"][0], axis=1)  # fmax/fmin skip empty (NaN) levels
    best_ask = np.fmin.reduce(sides["ask"][0], axis=1)
    crossed = best_bid >= best_ask
    source.check(
        crossed, lambda row: f"best bid {float(best_bid[row])!r} is not below best ask {float(best_ask[row])!r}"
    )
    source.check(np.isnan(best_bid) & np.isnan(best_ask), lambda row: "the book has no level on either side")
    source.check_time_order(ms, codes, names, named_symbols, strict=False)
    source.raise_first_problem()
    order = np.argsort(ms, kind="stable")
    return BookTable(
        source.label, names, codes[order], ms[order],
        sides["bid"][0][order], sides["bid"][1][order], sides["ask"][0][order], sides["ask"][1][order],
    )  # fmt: skip


def _check_book_side(
    source: SourceFrame, side: str, levels: list[dict[str, str]], prices: FloatArray, sizes: FloatArray
) -> None:
    """Positive prices, a size wherever there is a price, and strictly worse prices deeper in the book."""
    best_so_far = (np.fmin if side == "bid" else np.fmax).accumulate(prices, axis=1)
    for level, fields in enumerate(levels):
        price_column, size_column = fields["price"], fields["size"]
        price, size = prices[:, level], sizes[:, level]
        source.check_positive(price_column, price)
        source.check(~np.isnan(price) & np.isnan(size), partial(_missing_message, size_column))
        source.check(np.isnan(price) & (size > 0.0), partial(_size_without_price, size_column, size, price_column))
        source.check_non_negative(size_column, size)
        if level == 0:
            continue
        better = best_so_far[:, level - 1]
        worse = price >= better if side == "bid" else price <= better
        source.check(worse, partial(_worse_level_message, price_column, price, better, side))


def _missing_message(column: str, row: int) -> str:
    return f"{column} is missing"


def _size_without_price(column: str, sizes: FloatArray, price_column: str, row: int) -> str:
    return f"{column} is {float(sizes[row])!r} but {price_column} is missing"


def _worse_level_message(column: str, prices: FloatArray, better: FloatArray, side: str, row: int) -> str:
    direction = "below" if side == "bid" else "above"
    return f"{column} {float(prices[row])!r} is not {direction} the better {side} levels ({float(better[row])!r})"
