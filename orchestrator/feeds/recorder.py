"""Record market events into the CSV files the replay feed reads.

One file per kind of event in a directory: ``bars.csv``, ``trades.csv`` and
``books.csv``, every symbol in one file with a ``symbol`` column, times in
epoch milliseconds. Replaying the directory (``orchestrator backtest --data
DIR/*.csv``, or ``feed.replay.paths``) gives back the very same events:

- bars are written with their OPEN time (ts - interval_ms), as exchange
  exports are and as the replay expects; the replay stamps them with the close;
- trades carry ``side`` as 1 / -1 / 0;
- books are wide snapshots ``bid_price_1, bid_size_1, ..., ask_size_N`` with N
  the depth of the first book seen (deeper levels are cut, shallower books
  leave cells empty, which the replay reads as "no level");
- floats are written with ``repr``, the shortest text that reads back to the
  same float, so a round trip is exact.

``record`` only keeps the event; ``flush`` formats and appends what was
kept, so a caller on an event loop can flush off its hot path, e.g. once a
second.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, TextIO

from orchestrator.errors import DataError
from orchestrator.events import Bar, BookUpdate, MarketEvent, Trade

FILES = {"bars": "bars.csv", "trades": "trades.csv", "books": "books.csv"}
_BAR_HEADER = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
_TRADE_HEADER = ["timestamp", "symbol", "price", "size", "side"]


def _book_header(levels: int) -> list[str]:
    header = ["timestamp", "symbol"]
    for side in ("bid", "ask"):
        for level in range(1, levels + 1):
            header += [f"{side}_price_{level}", f"{side}_size_{level}"]
    return header


def _levels(prices: tuple[float, ...], sizes: tuple[float, ...], depth: int) -> list[object]:
    cells: list[object] = []
    for level in range(depth):
        cells += [prices[level], sizes[level]] if level < len(prices) else ["", ""]
    return cells


class MarketRecorder:
    """Keeps events and appends them to the directory's CSV files on ``flush``."""

    def __init__(self, directory: Path, *, book_levels: int | None = None) -> None:
        self.directory = directory
        self.book_levels = book_levels
        self.counts = dict.fromkeys(FILES, 0)
        self._pending: list[MarketEvent] = []
        # kind -> (open file, csv writer); csv's writer type is not public.
        self._writers: dict[str, tuple[TextIO, Any]] = {}
        existing = [name for name in FILES.values() if (directory / name).exists()]
        if existing:
            raise DataError(f"{directory}: already holds {', '.join(existing)}: record into an empty directory")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"{directory}: cannot create the directory ({exc.strerror or exc})") from exc

    def record(self, event: MarketEvent) -> None:
        self._pending.append(event)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for event in pending:
            if isinstance(event, BookUpdate):
                self._book(event)
            elif isinstance(event, Trade):
                self._row("trades", _TRADE_HEADER, [event.ts, event.symbol, event.price, event.size, event.side])
            elif isinstance(event, Bar):
                row = [event.ts - event.interval_ms, event.symbol, event.open, event.high, event.low, event.close]
                self._row("bars", _BAR_HEADER, [*row, event.volume])
        for handle in self._handles():
            handle.flush()

    def close(self) -> None:
        self.flush()
        for handle in self._handles():
            handle.close()
        self._writers.clear()

    def paths(self) -> list[Path]:
        """The files written so far."""
        return [self.directory / FILES[kind] for kind in FILES if self.counts[kind]]

    def _book(self, book: BookUpdate) -> None:
        if self.book_levels is None:
            self.book_levels = max(len(book.bid_prices), len(book.ask_prices), 1)
        depth = self.book_levels
        cells = _levels(book.bid_prices, book.bid_sizes, depth) + _levels(book.ask_prices, book.ask_sizes, depth)
        self._row("books", _book_header(depth), [book.ts, book.symbol, *cells])

    def _row(self, kind: str, header: list[str], row: list[object]) -> None:
        entry = self._writers.get(kind)
        if entry is None:
            path = self.directory / FILES[kind]
            try:
                handle = path.open("w", newline="", encoding="utf-8")
            except OSError as exc:
                raise DataError(f"{path}: cannot write ({exc.strerror or exc})") from exc
            entry = self._writers[kind] = (handle, csv.writer(handle))
            entry[1].writerow(header)
        entry[1].writerow([repr(cell) if isinstance(cell, float) else cell for cell in row])
        self.counts[kind] += 1

    def _handles(self) -> list[TextIO]:
        return [handle for handle, _ in self._writers.values()]
