"""Open one recorded-data file (CSV or Parquet) as a DataFrame, or say in one line why it cannot be read.

``read_frame`` is the first step of ``SourceFrame.read`` (``replay_files.py``).
It gives the frame, the line in the file of each data row (CSV; header =
line 1, blank lines count, as in an editor) and the header as written.

CSV: UTF-8 (a byte-order mark is skipped), optionally gzip / bz2 / xz / zip /
zstd compressed (zstd needs the ``zstandard`` package). The delimiter is told
from the header line: a comma if it has one, else a semicolon, tab or ``|``.
Blank lines before the header are skipped. Symbol columns are read as text as
written (``000001`` stays ``000001``, ``NA`` is a symbol; only an empty cell
is missing). A header with fewer names than the data rows have fields is an
error rather than a silent shift of every column.

Parquet: anything pyarrow reads; a file without the ``PAR1`` magic at both
ends (a CSV under a Parquet name, a truncated copy) is named as such.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib
import io
import lzma
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt

from orchestrator.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".pq")
SYMBOL_COLUMNS = ("symbol", "ticker")
DELIMITERS = (",", ";", "\t", "|")
PARQUET_MAGIC = b"PAR1"
# pandas' default missing-value spellings, applied to every column but the symbol ones.
NA_STRINGS = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)  # fmt: skip
_HEAD_BYTES = 1 << 20
_LINE_END = re.compile(rb"[\r\n]")
BinaryStream: TypeAlias = IO[bytes] | io.BufferedIOBase  # a file, or gzip's, bz2's, ... reader
_EXPECTED_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_UNCLOSED_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")
# What a broken compressed stream raises, beyond OSError (gzip's BadGzipFile and bz2's are ones).
_STREAM_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile, zlib.error)


@dataclass(frozen=True, slots=True)
class ReadFrame:
    frame: pd.DataFrame
    lines: npt.NDArray[np.int64] | None  # each row's line in the file; None for Parquet
    header: list[str] | None  # the column names as written (CSV), position by position
    # A row's true line from its line in ``lines``, which counts one line per row: it is
    # later when a quoted cell above spans lines. Looked up only for an error message.
    locate: Callable[[int], int] | None = None


def normalize_column(column: object) -> str:
    return str(column).strip().lower()


# What ``str.splitlines`` breaks at: a cell or a column name may hold any of them.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def single_line(message: str) -> str:
    """``message`` with the line breaks it quotes (from a cell, a name, a path) shown escaped."""
    return _LINE_BREAKS.sub(lambda found: repr(found.group())[1:-1], message)


def one_line(text: object) -> str:
    """An exception's text on one line (pyarrow's span several)."""
    return " ".join(str(text).split())


def read_frame(path: Path) -> ReadFrame:
    try:
        return _read_frame(path)
    except DataError as exc:
        raise DataError(single_line(str(exc))) from exc.__cause__


def _read_frame(path: Path) -> ReadFrame:
    try:
        exists, is_dir, is_file = path.exists(), path.is_dir(), path.is_file()
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte
        raise DataError(f"{path}: cannot open ({one_line(exc)})") from exc
    if not exists:
        raise DataError(f"{path}: file not found")
    if is_dir:
        raise DataError(f"{path}: is a directory, not a data file")
    if not is_file:
        raise DataError(f"{path}: not a regular file")
    lowered = path.name.lower()
    if lowered.endswith(PARQUET_SUFFIXES):
        return _read_parquet(path)
    if lowered.endswith(CSV_SUFFIXES):
        return _read_csv(path)
    suffix = "".join(path.suffixes) or "(none)"
    raise DataError(f"{path}: unknown file type {suffix!r} (expected .csv, optionally compressed, or .parquet)")


def _read_parquet(path: Path) -> ReadFrame:
    import pandas as pd

    try:
        with path.open("rb") as stream:
            start = stream.read(len(PARQUET_MAGIC))
            stream.seek(0, io.SEEK_END)
            size = stream.tell()
            stream.seek(max(size - len(PARQUET_MAGIC), 0))
            end = stream.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({one_line(exc)})") from exc
    if size == 0:
        raise DataError(f"{path}: the file is empty")
    if start != PARQUET_MAGIC:
        looks_like_text = all(32 <= byte < 127 or byte in b"\t\r\n" for byte in start)
        hint = "; a CSV file needs a .csv name" if looks_like_text else ""
        raise DataError(f"{path}: not a Parquet file (it does not start with PAR1{hint})")
    if end != PARQUET_MAGIC or size < 3 * len(PARQUET_MAGIC):
        raise DataError(f"{path}: a truncated Parquet file (it does not end with PAR1)")
    try:
        frame = pd.read_parquet(path)
    except ImportError as exc:
        raise DataError(f"{path}: reading Parquet needs pyarrow ({one_line(exc)})") from exc
    except Exception as exc:  # pyarrow's errors span ValueError, OSError, TypeError, NotImplementedError, ...
        raise DataError(f"{path}: not a readable Parquet file ({one_line(exc)})") from exc
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()  # a DatetimeIndex (or any real index) becomes a column
    return ReadFrame(frame, None, None)


def _open_binary(path: Path) -> BinaryStream:
    """The file's bytes, decompressed by its suffix."""
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")
    if name.endswith(".xz"):
        return lzma.open(path, "rb")
    if name.endswith(".zip"):
        archive = zipfile.ZipFile(path)
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) != 1:
            archive.close()
            listed = ", ".join(info.filename for info in members[:5]) + (", ..." if len(members) > 5 else "")
            holds = f"{len(members)}: {listed}" if members else "none"
            raise DataError(f"{path}: a zip archive must hold exactly one file (it holds {holds})")
        member = archive.open(members[0])
        archive.close()  # the member keeps the file open until it is closed itself
        return member
    if name.endswith(".zst"):
        stream: BinaryStream = _zstandard(path).open(path, "rb")
        return stream
    return path.open("rb")


def _zstandard(path: Path) -> Any:
    try:
        return importlib.import_module("zstandard")
    except ImportError as exc:
        raise DataError(f"{path}: reading .zst files needs the zstandard package") from exc


def _stream_errors(path: Path) -> tuple[type[BaseException], ...]:
    if path.name.lower().endswith(".zst"):
        return (*_STREAM_ERRORS, _zstandard(path).ZstdError)
    return _STREAM_ERRORS


def _stream_error(path: Path, exc: BaseException) -> DataError:
    what = "a damaged or truncated compressed file" if path.suffix.lower() != ".csv" else "cannot read the file"
    return DataError(f"{path}: {what} ({one_line(exc) or type(exc).__name__})")


@dataclass(frozen=True, slots=True)
class _CsvHead:
    blank_lines: int  # empty lines before the header
    delimiter: str
    line_end: str | None  # "\r" for old Mac files (pandas miscounts their skipped lines), else None: any
    header: list[str] | None  # as written; None when the header could not be parsed here


def _csv_head(path: Path) -> _CsvHead:
    try:
        with _open_binary(path) as stream:
            head = stream.read(_HEAD_BYTES)
            while head and not _LINE_END.search(head.lstrip(b"\xef\xbb\xbf\r\n")):
                more = stream.read(_HEAD_BYTES)
                if not more:
                    break
                head += more
    except _stream_errors(path) as exc:
        raise _stream_error(path, exc) from exc
    if not head.strip():
        raise DataError(f"{path}: the file is empty")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{path}: UTF-16 text; save the file as UTF-8")
    if head.startswith(PARQUET_MAGIC):
        raise DataError(f"{path}: a Parquet file, not CSV: name it .parquet")
    text = head.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
    lines = text.splitlines(keepends=True)
    blank = 0
    while blank < len(lines) and not lines[blank].strip("\r\n"):
        blank += 1
    header_line = lines[blank] if blank < len(lines) else ""
    delimiter = next((d for d in DELIMITERS if d in header_line), ",")
    try:
        header: list[str] | None = next(csv.reader(io.StringIO("".join(lines[blank:])), delimiter=delimiter), None)
    except csv.Error:
        header = None
    line_end = "\r" if "\r" in text and "\n" not in text else None
    return _CsvHead(blank, delimiter, line_end, header)


def _read_csv(path: Path) -> ReadFrame:
    import pandas as pd

    head = _csv_head(path)
    first_line = head.blank_lines + 2 + sum(name.count("\n") for name in head.header or ())
    locate = partial(_physical_line, path, head, first_line)
    options: dict[str, Any] = {}
    symbols = [name for name in head.header or () if normalize_column(name) in SYMBOL_COLUMNS]
    if symbols and head.header is not None:
        # Symbols as written: no numbers ("000001"), and "NA" or "null" are names, not gaps.
        options["dtype"] = dict.fromkeys(symbols, str)
        options["keep_default_na"] = False
        options["na_values"] = {name: [""] if name in symbols else list(NA_STRINGS) for name in head.header}
    try:
        with _open_binary(path) as stream:
            # Blank lines are kept as empty rows (dropped below) so that line numbers stay true.
            frame = pd.read_csv(
                stream,
                sep=head.delimiter,
                skiprows=head.blank_lines,
                lineterminator=head.line_end,
                skip_blank_lines=False,
                low_memory=False,
                encoding="utf-8",
                **options,
            )
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: {_parser_problem(str(exc), locate)}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: {_encoding_problem(path, exc)}") from exc
    except _stream_errors(path) as exc:
        raise _stream_error(path, exc) from exc
    if not isinstance(frame.index, pd.RangeIndex):  # pandas took the extra first field(s) as an index
        fields = frame.index.nlevels + len(frame.columns)
        raise DataError(
            f"{path}: line {first_line}: {fields} fields, but the header names {_columns(len(frame.columns))}"
        )
    header = head.header if head.header is not None and len(head.header) == len(frame.columns) else None
    blank = frame.isna().all(axis=1).to_numpy()
    lines = first_line + np.arange(len(frame), dtype=np.int64)
    if blank.any():
        frame = frame.loc[~blank].reset_index(drop=True)
        lines = lines[~blank]
    return ReadFrame(frame, lines, header, locate)


def _physical_line(path: Path, head: _CsvHead, first_line: int, line: int) -> int:
    """Where the row counted at ``line`` starts, reading the file again with the csv module."""
    record = line - first_line
    failures: tuple[type[BaseException], ...] = (UnicodeDecodeError, csv.Error, *_stream_errors(path))
    try:
        with _open_binary(path) as stream:
            data = stream.read()
        if b'"' not in data:
            return line  # no quoted cells, so none spans lines
        text = io.StringIO(data.decode("utf-8-sig"), newline="")
        for _ in range(head.blank_lines):
            text.readline()
        reader = csv.reader(text, delimiter=head.delimiter)
        next(reader, None)
        start = reader.line_num + 1
        for index, _ in enumerate(reader):
            if index == record:
                return head.blank_lines + start
            start = reader.line_num + 1
    except failures:
        pass
    return line


def _parser_problem(message: str, locate: Callable[[int], int]) -> str:
    """pandas' tokenizer message as a line and a reason. pandas counts lines as this module
    does before ``locate``: one per row, blank or skipped lines included."""
    fields = _EXPECTED_FIELDS.search(message)
    if fields:
        expected, line, saw = map(int, fields.groups())
        return f"line {locate(line)}: {saw} fields, but the header names {_columns(expected)}"
    quote = _UNCLOSED_QUOTE.search(message)
    if quote:  # pandas' row here counts from 0
        return f'line {locate(int(quote.group(1)) + 1)}: a quote (") opened here is never closed'
    return f"not a well-formed CSV file ({one_line(message)})"


def _columns(count: int) -> str:
    return f"{count} column" + ("" if count == 1 else "s")


def _encoding_problem(path: Path, exc: UnicodeDecodeError) -> str:
    """Where the first byte that is not UTF-8 is, as a line and column."""
    try:
        with _open_binary(path) as stream:
            data = stream.read()
        data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as found:
        body = data.removeprefix(b"\xef\xbb\xbf")
        offset = found.start
        end = b"\n" if b"\n" in body else b"\r"
        line = body.count(end, 0, offset) + 1
        column = offset - (body.rfind(end, 0, offset) + 1) + 1
        return f"line {line}, column {column}: not UTF-8 text (byte 0x{body[offset]:02x}); save the file as UTF-8"
    except _stream_errors(path):
        pass
    return f"not UTF-8 text ({exc.reason}); save the file as UTF-8"


def show_columns(columns: Iterable[object], limit: int = 20) -> str:
    """Column names for a message: on one line, and not all of a file with thousands of them."""
    names = [str(column) for column in columns]
    shown = [_show_name(name) for name in names[:limit]]
    more = len(names) - limit
    return ", ".join(shown) + (f", ... ({more} more)" if more > 0 else "")


def _show_name(name: str) -> str:
    return name if name.isprintable() else repr(name)
