"""Read one recorded-data file (CSV or Parquet) and turn its cells into validated numpy columns.

This is the file layer of the replay feed: ``SourceFrame.read`` loads a file
with pandas (imported on first use, so the daemon starts without it; how a
file is opened, its delimiter and encoding, is in ``replay_read.py``) and
remembers, for each data row, its line in the file (header = line 1; blank
lines count, as in an editor) or, for Parquet, its 1-based row. The column
readers then convert whole columns at once and note bad cells; the first
problem in file order is raised as one ``DataError`` naming the file and the
line, e.g. ``data/btc.csv: line 17: close is not a number ('abc')``.

- Columns: names are matched in any letter case, around spaces; two columns
  that read as the same wanted name (``Close`` and ``close``) are an error.
- Times: the column named timestamp / time / datetime / date / open_time /
  open time / ts / unix (any case), else the unnamed first column of
  ``DataFrame.to_csv`` output or the column a Parquet index becomes. Values
  are ISO strings or dates (naive = UTC), datetimes, or epoch seconds / ms /
  µs / ns, the unit told by the magnitude of the column's median; a cell
  whose magnitude says another unit, a time outside the years 1 to 9999, and
  a column mixing naive times with times at a non-zero UTC offset are errors.
- Symbols: a symbol (or ticker) column, read as written and stripped of
  spaces, else the caller's default, else the file name without its suffixes.

What the columns mean (bars, trades, books) is decided in ``replay.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt

from orchestrator.errors import DataError
from orchestrator.feeds.replay_read import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    SYMBOL_COLUMNS,
    normalize_column,
    read_frame,
    show_columns,
    single_line,
)

if TYPE_CHECKING:
    import pandas as pd

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]

TIME_COLUMNS = ("timestamp", "time", "datetime", "date", "open_time", "open time", "ts", "unix")
# Used only when no named time column exists: the header-less first column of
# ``to_csv`` output and the column a Parquet index becomes.
INDEX_TIME_COLUMNS = ("unnamed: 0", "index", "")
NAT = int(np.iinfo(np.int64).min)  # an unreadable time as int64; sorts before every real time
MIN_MS = -62_135_596_800_000  # 0001-01-01 00:00 UTC
MAX_MS = 253_402_300_799_999  # 9999-12-31 23:59:59.999 UTC
# An epoch number's unit by its magnitude: below 1e11 seconds, below 1e14 ms, below 1e17 µs, else ns.
_UNIT_BOUNDS = np.array([1e11, 1e14, 1e17])
_UNIT_NAMES = ("seconds", "milliseconds", "microseconds", "nanoseconds")
# A time of day followed by a UTC offset (or Z), and the same with a zero offset (RE2 syntax: pyarrow).
_TIME_OF_DAY = r"\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*"
_OFFSET = _TIME_OF_DAY + r"(?:[zZ]|UTC|GMT|[+-]\d\d(?::?\d\d)?)\s*$"
_ZERO_OFFSET = _TIME_OF_DAY + r"(?:[zZ]|UTC|GMT|[+-]00(?::?00)?)\s*$"
# A date written with its day and month first, in either order: 01/02/2024, 1.2.24, 01-02-2024.
_NUMERIC_DATE = r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{2,4})(?!\d)"
_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d*,\d+\s*")


def file_stem(path: Path) -> str:
    """The file name without data suffixes: ``btc.csv.gz`` → ``btc``."""
    name = path.name
    for suffix in CSV_SUFFIXES + PARQUET_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def format_ms(ms: int) -> str:
    """An epoch-ms time as an operator reads it: ``2024-01-01 00:05`` (seconds and ms only when set)."""
    if ms == NAT:
        return "(missing)"
    if not MIN_MS <= ms <= MAX_MS:
        return f"{ms} ms"
    moment = np.datetime64(ms, "ms").astype(object)
    text: str = moment.strftime("%Y-%m-%d %H:%M")
    if moment.second or moment.microsecond:
        text += moment.strftime(":%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text


class SourceFrame:
    """A file read into a DataFrame, with each row's place in the file for messages."""

    def __init__(
        self,
        path: Path,
        frame: pd.DataFrame,
        lines: IntArray | None,
        header: list[str] | None = None,
        locate: Callable[[int], int] | None = None,
    ) -> None:
        self.path = path
        self.label = str(path)
        self.frame = frame
        self._lines = lines  # None for Parquet, which has rows rather than lines
        self._locate = locate
        self._first_problem: tuple[int, str] | None = None
        frame.columns = [str(column) for column in frame.columns]
        # The header as written, when known: pandas renames a repeated "close" to "close.1".
        written = header if header is not None and len(header) == len(frame.columns) else frame.columns
        self.by_name: dict[str, str] = {}
        self._spellings: dict[str, list[str]] = {}
        for spelling, column in zip(written, frame.columns, strict=True):
            self.by_name.setdefault(normalize_column(spelling), column)
            self._spellings.setdefault(normalize_column(spelling), []).append(str(spelling))

    @classmethod
    def read(cls, path: Path) -> SourceFrame:
        read = read_frame(path)
        if len(read.frame) == 0:
            header_only = " (only a header)" if read.lines is not None else ""
            raise DataError(single_line(f"{path}: no data rows{header_only}"))
        return cls(path, read.frame, read.lines, read.header, read.locate)

    def __len__(self) -> int:
        return len(self.frame)

    def where(self, row: int) -> str:
        if self._lines is None:
            return f"row {row + 1}"
        line = int(self._lines[row])
        return f"line {self._locate(line) if self._locate else line}"

    def error(self, message: str) -> DataError:
        return DataError(single_line(f"{self.label}: {message}"))

    def column(self, *names: str) -> str | None:
        """The file's spelling of the first of ``names`` it has (any letter case)."""
        for name in names:
            if name in self.by_name:
                spellings = self._spellings[name]
                if len(spellings) > 1:
                    listed = ", ".join(map(repr, spellings))
                    raise self.error(f"{len(spellings)} columns read as {name!r} ({listed}); keep one")
                return self.by_name[name]
        return None

    def require(self, what: str, *names: str) -> str:
        found = self.column(*names)
        if found is None:
            raise self.error(f"no {what} column (found: {show_columns(self.frame.columns)})")
        return found

    def time_column(self) -> str:
        found = self.column(*TIME_COLUMNS)
        if found is not None:
            return found
        first = str(self.frame.columns[0])
        if normalize_column(first) in INDEX_TIME_COLUMNS:
            return first
        return self.require("time", *TIME_COLUMNS)  # raises, listing the columns the file has

    def check(self, bad: BoolArray, describe: Callable[[int], str]) -> None:
        """Note the first row where ``bad`` holds; on the same row an earlier check wins."""
        rows = np.flatnonzero(bad)
        if rows.size and (self._first_problem is None or rows[0] < self._first_problem[0]):
            row = int(rows[0])
            self._first_problem = (row, describe(row))

    def raise_first_problem(self) -> None:
        if self._first_problem is not None:
            row, message = self._first_problem
            raise self.error(f"{self.where(row)}: {message}")

    def numbers(self, column: str, *, allow_missing: bool = False) -> FloatArray:
        """A column as float64 (missing → NaN), noting missing, non-numeric and infinite cells."""
        import pandas as pd
        from pandas.api.types import is_bool_dtype, is_numeric_dtype

        values = self.frame[column]
        missing = values.isna().to_numpy()
        if is_bool_dtype(values):
            self.check(~missing, lambda row: f"{column} holds true/false, not numbers ({_show(values.iloc[row])})")
            return np.where(missing, np.nan, 1.0)
        if is_numeric_dtype(values):
            numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if not allow_missing:
            self.check(missing, lambda row: f"{column} is missing")
        self.check(np.isnan(numbers) & ~missing, partial(_not_a_number, column, values))
        self.check(np.isinf(numbers), lambda row: f"{column} is not finite ({numbers[row]})")
        return numbers

    def check_positive(self, column: str, values: FloatArray) -> None:
        self.check(values <= 0.0, lambda row: f"{column} {float(values[row])!r} is not positive")

    def check_non_negative(self, column: str, values: FloatArray) -> None:
        self.check(values < 0.0, lambda row: f"{column} {float(values[row])!r} is negative")

    def epoch_ms(self, column: str) -> IntArray:
        """The time column as epoch milliseconds (UTC); unreadable cells become ``NAT``."""
        import pandas as pd
        from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype, is_timedelta64_dtype

        values = self.frame[column]
        missing = values.isna().to_numpy()
        self.check(missing, lambda row: f"{column} is missing")
        if is_bool_dtype(values):
            raise self.error(f"the time column {column!r} holds true/false values, not times")
        if is_timedelta64_dtype(values):
            raise self.error(f"the time column {column!r} holds durations, not times")
        if is_datetime64_any_dtype(values):
            ms = _datetimes_to_ms(values)
        elif is_numeric_dtype(values):
            ms = self._epoch_numbers_to_ms(values, values.to_numpy())
        else:
            # Text holds epoch numbers or date strings, perhaps with bad cells: the reading
            # that understands more cells wins, and the cells it cannot read are the errors.
            numbers = pd.to_numeric(values, errors="coerce")
            numeric = numbers.notna().to_numpy()
            parsed = None
            day_month: tuple[BoolArray, BoolArray, BoolArray] | None = None
            if not (numeric | missing).all():
                parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
                if (parsed.isna().to_numpy() & ~missing).any():
                    # Not all ISO 8601: let pandas guess each cell (slow, but only for such files).
                    parsed, day_month = _guess_dates(values)
            if parsed is None or numeric.sum() > parsed.notna().sum():
                self.check(~numeric & ~missing, partial(_unreadable_time, values))
                ms = self._epoch_numbers_to_ms(values, numbers.to_numpy(dtype=np.float64, na_value=np.nan))
            else:
                readable = parsed.notna().to_numpy()
                self.check(~readable & ~missing, partial(_unreadable_time, values))
                self._check_offsets(values, readable)
                if day_month is not None:
                    self._check_day_month(values, *day_month)
                ms = _datetimes_to_ms(parsed)
        present = ms != NAT
        self.check(present & ((ms < MIN_MS) | (ms > MAX_MS)), partial(_out_of_range, values))
        return ms

    def _epoch_numbers_to_ms(self, values: pd.Series[Any], numbers: npt.NDArray[Any]) -> IntArray:
        """Epoch seconds / ms / µs / ns to ms, the unit told by the median magnitude; a cell whose
        own magnitude tells another unit, and a non-finite one, are noted (and become ``NAT``)."""
        integers = np.issubdtype(numbers.dtype, np.integer)
        magnitudes = np.abs(numbers.astype(np.float64))
        finite = np.isfinite(magnitudes)
        self.check(np.isinf(magnitudes), partial(_unreadable_time, values))
        units = np.searchsorted(_UNIT_BOUNDS, magnitudes, side="right")
        unit = int(np.searchsorted(_UNIT_BOUNDS, np.median(magnitudes[finite]), side="right")) if finite.any() else 1
        usable = finite & (units == unit)
        self.check(finite & ~usable, partial(_other_unit, values, units, unit))
        ms = np.full(len(numbers), NAT, dtype=np.int64)
        if integers:  # integer maths keeps µs and ns exact
            kept = numbers[usable]
            ms[usable] = kept.astype(np.int64) * 1000 if unit == 0 else (kept // (1, 1, 1000, 1_000_000)[unit])
        else:
            scaled = numbers[usable].astype(np.float64) * (1000.0, 1.0, 1e-3, 1e-6)[unit]
            in_range = (scaled >= MIN_MS) & (scaled <= MAX_MS)
            self.check(_spread(usable, ~in_range), partial(_out_of_range, values))
            ms[_spread(usable, in_range)] = np.rint(scaled[in_range]).astype(np.int64)
        return ms

    def _check_day_month(self, values: pd.Series[Any], dated: BoolArray, day: BoolArray, month: BoolArray) -> None:
        """``01/02/2024`` is read day-first only when another date of the column cannot be month-first
        (``13/01/2024``), month-first only in the opposite case; never both, never a guess."""
        hint = "write ISO dates (2024-02-01)"
        if not day.any() and not month.any():
            self.check(dated, lambda row: f"date {values.iloc[row]!r} may be day-first or month-first; {hint}")
            return
        if day.any() and month.any():
            first = int(np.flatnonzero(day | month)[0])
            other = month if day[first] else day
            reference = f"{self.where(first)} ({values.iloc[first]!r})"

            def describe(row: int) -> str:
                order = "day" if day[row] else "month"
                return f"date {values.iloc[row]!r} is {order}-first, unlike {reference}; {hint}"

            self.check(other, describe)

    def _check_offsets(self, values: pd.Series[Any], readable: BoolArray) -> None:
        """Naive times are read as UTC: a column that also has times at another offset mixes two clocks."""
        aware = _matches(values, _OFFSET)
        naive = readable & ~aware
        if not naive.any() or naive[readable].all():
            return
        shifted = aware & ~_matches(values, _ZERO_OFFSET)
        if not shifted.any():
            return
        kinds = naive | shifted
        first = int(np.flatnonzero(kinds)[0])
        reference = f"{self.where(first)} ({values.iloc[first]!r})"

        def describe(row: int) -> str:
            has = "no UTC offset" if naive[row] else "a UTC offset"
            return (
                f"time {values.iloc[row]!r} has {has}, unlike {reference}; give every time its offset, "
                "or none (naive times are read as UTC)"
            )

        self.check(kinds & (naive != naive[first]), describe)

    def symbols(self, default: str | None) -> tuple[IntArray, tuple[str, ...], bool]:
        """(symbol code per row, symbol per code, whether the file has a symbol column)."""
        import pandas as pd

        column = self.column(*SYMBOL_COLUMNS)
        if column is None:
            name = default if default is not None else file_stem(self.path).strip()
            if not name:
                raise self.error("no symbol column, and the file name gives no symbol; set the symbol (--symbol)")
            return np.zeros(len(self.frame), dtype=np.int64), (name,), False
        values = self.frame[column]
        try:
            codes, uniques = pd.factorize(values, sort=False)
        except TypeError:  # lists or arrays in a Parquet column
            odd = np.fromiter((not isinstance(value, Hashable) for value in values), dtype=bool, count=len(values))
            self.check(odd, lambda row: f"{column} is not a name ({values.iloc[row]!r})")
            self.raise_first_problem()
            raise
        # " BTC" and "BTC" are one symbol; a cell of spaces is a missing one.
        names: dict[str, int] = {}
        recode = np.array([names.setdefault(name, len(names)) if name else -1 for name in map(_name, uniques)])
        codes = np.where(codes >= 0, recode[codes] if recode.size else codes, -1).astype(np.int64)
        self.check(codes < 0, lambda row: f"{column} is missing")
        return codes, tuple(names), True

    def check_time_order(
        self, ms: IntArray, codes: IntArray, names: tuple[str, ...], named_symbols: bool, *, strict: bool
    ) -> None:
        """Times must increase (``strict``) or not decrease within each symbol."""
        if len(names) > 1:
            order = np.argsort(codes, kind="stable")
            ordered = ms[order]
            same_symbol = codes[order][1:] == codes[order][:-1]
        else:
            order = np.arange(len(ms))
            ordered = ms
            same_symbol = np.ones(max(len(ms) - 1, 0), dtype=bool)
        out_of_order = ordered[1:] <= ordered[:-1] if strict else ordered[1:] < ordered[:-1]
        bad = np.zeros(len(ms), dtype=bool)
        bad[order[1:][same_symbol & out_of_order]] = True

        def describe(row: int) -> str:
            previous = f"previous {names[codes[row]]} row" if named_symbols else "previous row"
            relation, rule = ("not after", "increase") if strict else ("before", "not decrease")
            return (
                f"timestamp {format_ms(int(ms[row]))} is {relation} the {previous} (timestamps must {rule} per symbol)"
            )

        self.check(bad, describe)


def _datetimes_to_ms(values: pd.Series[Any]) -> IntArray:
    from pandas.api.types import DatetimeTZDtype

    if isinstance(values.dtype, DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.to_numpy(dtype="datetime64[ms]").view(np.int64)


def _guess_dates(values: pd.Series[Any]) -> tuple[pd.Series[Any], tuple[BoolArray, BoolArray, BoolArray]]:
    """Each cell read as a date by pandas; cells such as ``01/02/2024`` day-first when another
    such cell cannot be month-first. Also (numeric dates, day-first ones, month-first ones)."""
    import pandas as pd

    parsed = pd.to_datetime(values, utc=True, format="mixed", errors="coerce")
    parts = values.astype("string").str.extract(_NUMERIC_DATE)
    dated = parts[0].notna().to_numpy(dtype=bool)
    first = parts[0].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    second = parts[1].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    day, month = dated & (first > 12), dated & (second > 12)
    if day.any() and not month.any():
        day_first = pd.to_datetime(values.where(dated), utc=True, format="mixed", dayfirst=True, errors="coerce")
        parsed = day_first.where(dated, parsed)
    return parsed, (dated, day, month)


def _matches(values: pd.Series[Any], pattern: str) -> BoolArray:
    """Which cells are text matching ``pattern``; with pyarrow's regex engine, for speed."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        array = None
    if array is None or not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pa.array(values.map(lambda value: value if isinstance(value, str) else None), type=pa.string())
    found: BoolArray = pc.match_substring_regex(array, pattern).fill_null(False).to_numpy(zero_copy_only=False)
    return found


def _spread(mask: BoolArray, values: BoolArray) -> BoolArray:
    """``values`` (one per set cell of ``mask``) back at their rows; False elsewhere."""
    spread = np.zeros(len(mask), dtype=bool)
    spread[mask] = values
    return spread


def _name(value: object) -> str:
    return str(value).strip()


def _show(value: object) -> str:
    """A cell for a message: text quoted, numbers as written (``5``, not ``np.int64(5)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _unreadable_time(values: pd.Series[Any], row: int) -> str:
    return f"unreadable time {_show(values.iloc[row])}"


def _out_of_range(values: pd.Series[Any], row: int) -> str:
    return f"time {_show(values.iloc[row])} is out of range (years 1 to 9999)"


def _other_unit(values: pd.Series[Any], units: IntArray, unit: int, row: int) -> str:
    return (
        f"time {_show(values.iloc[row])} reads as epoch {_UNIT_NAMES[units[row]]}, but the column's times are "
        f"epoch {_UNIT_NAMES[unit]} (write every time in one unit)"
    )


def _not_a_number(column: str, values: pd.Series[Any], row: int) -> str:
    cell = values.iloc[row]
    hint = "; write decimals with a point" if isinstance(cell, str) and _DECIMAL_COMMA.fullmatch(cell) else ""
    return f"{column} is not a number ({_show(cell)}{hint})"
