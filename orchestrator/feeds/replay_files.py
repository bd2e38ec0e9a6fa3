"""Read one recorded-data file (CSV or Parquet) and turn its cells into validated numpy columns.

This is the file layer of the replay feed: ``SourceFrame.read`` loads a file
with pandas (imported on first use, so the daemon starts without it) and
remembers, for each data row, its line in the file (header = line 1; blank
lines count, as in an editor) or, for Parquet, its 1-based row. The column
readers then convert whole columns at once and note bad cells; the first
problem in file order is raised as one ``DataError`` naming the file and the
line, e.g. ``data/btc.csv: line 17: close is not a number ('abc')``.

- Times: the column named timestamp / time / datetime / date / open_time /
  open time / ts / unix (any case), else the unnamed first column of
  ``DataFrame.to_csv`` output or the column a Parquet index becomes. Values
  are ISO strings or dates (naive = UTC), datetimes, or epoch seconds / ms /
  µs / ns, the unit told by the magnitude of the column's median.
- Symbols: a symbol (or ticker) column, else the caller's default, else the
  file name without its suffixes.

What the columns mean (bars, trades, books) is decided in ``replay.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt

from orchestrator.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]

TIME_COLUMNS = ("timestamp", "time", "datetime", "date", "open_time", "open time", "ts", "unix")
# Used only when no named time column exists: the header-less first column of
# ``to_csv`` output and the column a Parquet index becomes.
INDEX_TIME_COLUMNS = ("unnamed: 0", "index", "")
SYMBOL_COLUMNS = ("symbol", "ticker")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".pq")
NAT = int(np.iinfo(np.int64).min)  # an unreadable time as int64; sorts before every real time


def normalize_column(column: object) -> str:
    return str(column).strip().lower()


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
    moment = np.datetime64(ms, "ms").astype(object)
    text: str = moment.strftime("%Y-%m-%d %H:%M")
    if moment.second or moment.microsecond:
        text += moment.strftime(":%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text


class SourceFrame:
    """A file read into a DataFrame, with each row's place in the file for messages."""

    def __init__(self, path: Path, frame: pd.DataFrame, lines: IntArray | None) -> None:
        self.path = path
        self.label = str(path)
        self.frame = frame
        self._lines = lines  # None for Parquet, which has rows rather than lines
        self._first_problem: tuple[int, str] | None = None
        frame.columns = [str(column) for column in frame.columns]
        self.by_name: dict[str, str] = {}
        for column in frame.columns:
            self.by_name.setdefault(normalize_column(column), column)

    @classmethod
    def read(cls, path: Path) -> SourceFrame:
        import pandas as pd

        if not path.exists():
            raise DataError(f"{path}: file not found")
        if path.is_dir():
            raise DataError(f"{path}: is a directory, not a data file")
        lowered = path.name.lower()
        lines: IntArray | None = None
        if lowered.endswith(PARQUET_SUFFIXES):
            try:
                frame = pd.read_parquet(path)
            except (OSError, ValueError, TypeError) as exc:
                raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
            if not isinstance(frame.index, pd.RangeIndex):
                frame = frame.reset_index()  # a DatetimeIndex (or any real index) becomes a column
        elif lowered.endswith(CSV_SUFFIXES):
            try:
                # Blank lines are kept as empty rows (dropped below) so that line numbers stay true.
                frame = pd.read_csv(path, skip_blank_lines=False, low_memory=False)
            except pd.errors.EmptyDataError as exc:
                raise DataError(f"{path}: the file is empty") from exc
            except pd.errors.ParserError as exc:
                raise DataError(f"{path}: not a well-formed CSV file ({str(exc).strip()})") from exc
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}: not a text CSV file ({exc.reason})") from exc
            except (OSError, ValueError) as exc:
                raise DataError(f"{path}: cannot read the file ({exc})") from exc
            blank = frame.isna().all(axis=1).to_numpy()
            lines = np.arange(2, len(frame) + 2, dtype=np.int64)
            if blank.any():
                frame = frame.loc[~blank].reset_index(drop=True)
                lines = lines[~blank]
        else:
            suffix = "".join(path.suffixes) or "(none)"
            raise DataError(f"{path}: unknown file type {suffix!r} (expected .csv, optionally compressed, or .parquet)")
        if len(frame) == 0:
            raise DataError(f"{path}: no data rows" + (" (only a header)" if lines is not None else ""))
        return cls(path, frame, lines)

    def __len__(self) -> int:
        return len(self.frame)

    def where(self, row: int) -> str:
        return f"line {int(self._lines[row])}" if self._lines is not None else f"row {row + 1}"

    def error(self, message: str) -> DataError:
        return DataError(f"{self.label}: {message}")

    def column(self, *names: str) -> str | None:
        """The file's spelling of the first of ``names`` it has (any letter case)."""
        for name in names:
            if name in self.by_name:
                return self.by_name[name]
        return None

    def require(self, what: str, *names: str) -> str:
        found = self.column(*names)
        if found is None:
            raise self.error(f"no {what} column (found: {', '.join(map(str, self.frame.columns))})")
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
        if is_numeric_dtype(values) and not is_bool_dtype(values):
            numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        missing = values.isna().to_numpy()
        if not allow_missing:
            self.check(missing, lambda row: f"{column} is missing")
        self.check(np.isnan(numbers) & ~missing, lambda row: f"{column} is not a number ({values.iloc[row]!r})")
        self.check(np.isinf(numbers), lambda row: f"{column} is not finite ({numbers[row]})")
        return numbers

    def check_positive(self, column: str, values: FloatArray) -> None:
        self.check(values <= 0.0, lambda row: f"{column} {float(values[row])!r} is not positive")

    def check_non_negative(self, column: str, values: FloatArray) -> None:
        self.check(values < 0.0, lambda row: f"{column} {float(values[row])!r} is negative")

    def epoch_ms(self, column: str) -> IntArray:
        """The time column as epoch milliseconds (UTC); unreadable cells become ``NAT``."""
        import pandas as pd
        from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype

        values = self.frame[column]
        missing = values.isna().to_numpy()
        self.check(missing, lambda row: f"{column} is missing")
        if is_bool_dtype(values):
            raise self.error(f"the time column {column!r} holds true/false values, not times")
        if is_datetime64_any_dtype(values):
            return _datetimes_to_ms(values)
        if is_numeric_dtype(values):
            return _epoch_numbers_to_ms(values.to_numpy())
        # Text holds epoch numbers or date strings, perhaps with bad cells: the reading
        # that understands more cells wins, and the cells it cannot read are the errors.
        numbers = pd.to_numeric(values, errors="coerce")
        numeric = numbers.notna().to_numpy()
        parsed = None
        if not (numeric | missing).all():
            parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
            if (parsed.isna().to_numpy() & ~missing).any():
                # Not all ISO 8601: let pandas guess each cell (slow, but only for such files).
                parsed = pd.to_datetime(values, utc=True, format="mixed", errors="coerce")
        if parsed is None or numeric.sum() > parsed.notna().sum():
            self.check(~numeric & ~missing, lambda row: f"unreadable time {values.iloc[row]!r}")
            return _epoch_numbers_to_ms(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
        self.check(parsed.isna().to_numpy() & ~missing, lambda row: f"unreadable time {values.iloc[row]!r}")
        return _datetimes_to_ms(parsed)

    def symbols(self, default: str | None) -> tuple[IntArray, tuple[str, ...], bool]:
        """(symbol code per row, symbol per code, whether the file has a symbol column)."""
        import pandas as pd

        column = self.column(*SYMBOL_COLUMNS)
        if column is None:
            name = default if default is not None else file_stem(self.path)
            return np.zeros(len(self.frame), dtype=np.int64), (name,), False
        codes, uniques = pd.factorize(self.frame[column], sort=False)
        self.check(codes < 0, lambda row: f"{column} is missing")
        return codes.astype(np.int64), tuple(str(value).strip() for value in uniques), True

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


def _epoch_numbers_to_ms(values: npt.NDArray[Any]) -> IntArray:
    """Epoch seconds / ms / µs / ns to ms, the unit told by the median magnitude; NaN → ``NAT``."""
    if np.issubdtype(values.dtype, np.integer):
        integers = values.astype(np.int64)
        magnitude = float(np.median(np.abs(integers)))
        if magnitude < 1e11:
            return integers * 1000
        if magnitude < 1e14:
            return integers
        return integers // (1000 if magnitude < 1e17 else 1_000_000)  # integer maths keeps ns exact
    floats = values.astype(np.float64)
    finite = np.isfinite(floats)
    magnitude = float(np.median(np.abs(floats[finite]))) if finite.any() else 0.0
    scale = 1000.0 if magnitude < 1e11 else 1.0 if magnitude < 1e14 else 1e-3 if magnitude < 1e17 else 1e-6
    ms = np.full(len(floats), NAT, dtype=np.int64)
    ms[finite] = np.rint(floats[finite] * scale).astype(np.int64)
    return ms
