"""Replay feed, hostile files: each loads as documented or is refused with one line naming the
file and the line (or row); none raises anything but ``DataError`` / ``ConfigError``."""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import lzma
import os
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.errors import ConfigError, DataError
from orchestrator.events import Bar
from orchestrator.feeds.replay import ReplayFeed, load_bars, load_books, load_trades

MINUTE = 60_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
HEADER = "timestamp,open,high,low,close,volume"
ROWS = [f"{T0 + i * MINUTE},1,2,0.5,1.5,{i + 1}" for i in range(3)]
BARS = [Bar("btc", T0 + (i + 1) * MINUTE, 1.0, 2.0, 0.5, 1.5, float(i + 1), MINUTE) for i in range(3)]
GOOD = "\n".join([HEADER, *ROWS]) + "\n"


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def refused(path: Path, message: str, load=ReplayFeed) -> None:
    """Loading ``path`` raises exactly ``<path>: <message>``, on one line."""
    with pytest.raises(DataError) as raised:
        load(path)
    text = str(raised.value)
    assert text == f"{path}: {message}"
    assert len(text.splitlines()) == 1


# --- files that load -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "\ufeff" + GOOD,
        GOOD.replace(",", ";"),
        "\ufeff" + GOOD.replace(",", ";"),
        GOOD.replace(",", "\t"),
        GOOD.replace(",", "|"),
        GOOD.replace("\n", "\r\n"),
        "\n\n" + GOOD,
        ("\n\n" + GOOD).replace("\n", "\r"),
    ],
    ids=["bom", "semicolon", "bom-semicolon", "tab", "pipe", "crlf", "blank-lines-before-the-header", "cr-only"],
)
def test_common_csv_variants_load_the_same_bars(tmp_path: Path, text: str) -> None:
    assert load_bars(write(tmp_path / "btc.csv", text)) == BARS


@pytest.mark.parametrize(
    ("suffix", "pack"),
    [(".csv.gz", gzip.compress), (".csv.bz2", bz2.compress), (".csv.xz", lzma.compress)],
)
def test_compressed_csv_loads(tmp_path: Path, suffix: str, pack) -> None:
    assert load_bars(write(tmp_path / f"btc{suffix}", pack(GOOD.encode()))) == BARS


def test_zip_with_one_file_loads(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "btc.csv.zip", "w") as archive:
        archive.writestr("inner.csv", GOOD)
    assert load_bars(tmp_path / "btc.csv.zip") == BARS


def test_symbols_are_read_as_written(tmp_path: Path) -> None:
    text = f"timestamp,symbol,price,size\n{T0},000001,1,1\n{T0 + 1},NA,1,1\n{T0 + 2}, 000001 ,1,1\n"
    trades = load_trades(write(tmp_path / "t.csv", text))
    assert [trade.symbol for trade in trades] == ["000001", "NA", "000001"]
    assert ReplayFeed(tmp_path / "t.csv").symbols == ("000001", "NA")


def test_naive_times_may_mix_with_utc_ones(tmp_path: Path) -> None:
    text = f"{HEADER}\n2024-01-01 00:00:00,1,2,0.5,1.5,1\n2024-01-01T00:01:00Z,1,2,0.5,1.5,2\n"
    text += "2024-01-01T00:02:00+00:00,1,2,0.5,1.5,3\n"
    assert load_bars(write(tmp_path / "btc.csv", text)) == BARS


def test_books_may_have_more_levels_on_one_side(tmp_path: Path) -> None:
    text = f"timestamp,bid_price_1,bid_size_1,bid_price_2,bid_size_2,ask_price_1,ask_size_1\n{T0},9,1,8,2,10,3\n"
    (book,) = load_books(write(tmp_path / "b.csv", text))
    assert (book.bid_prices, book.ask_prices) == ((9.0, 8.0), (10.0,))


def test_thousands_of_columns_load_and_a_message_lists_only_some(tmp_path: Path) -> None:
    extra = [f"c{i}" for i in range(5000)]
    text = ",".join([HEADER, *extra]) + "\n" + "\n".join(",".join([row, *["1"] * 5000]) for row in ROWS) + "\n"
    assert load_bars(write(tmp_path / "btc.csv", text)) == BARS
    no_close = text.replace(",close,", ",shut,", 1)
    path = write(tmp_path / "wide.csv", no_close)
    listed = "timestamp, open, high, low, shut, volume, " + ", ".join(extra[:14]) + ", ... (4986 more)"
    refused(path, f"no close column (found: {listed})", load=load_bars)


# --- the file itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("  \n\n", "the file is empty"),
        (HEADER + "\n", "no data rows (only a header)"),
        (HEADER.encode("utf-16"), "UTF-16 text; save the file as UTF-8"),
        (
            f"timestamp,symbol,open,high,low,close\n{T0},caf\xe9,1,2,0.5,1.5\n".encode("latin-1"),
            "line 2, column 18: not UTF-8 text (byte 0xe9); save the file as UTF-8",
        ),
        (b"PAR1" + b"\x00" * 20 + b"PAR1", "a Parquet file, not CSV: name it .parquet"),
        (GOOD + f"{T0 + 5 * MINUTE},1,2,0.5,1.5,1,7\n", "line 5: 7 fields, but the header names 6 columns"),
        ("timestamp,open,high,low,close\n" + ROWS[0] + "\n", "line 2: 6 fields, but the header names 5 columns"),
        (GOOD + f'{T0 + 5 * MINUTE},"1,2,0.5,1.5,1\n', 'line 5: a quote (") opened here is never closed'),
        (
            GOOD.replace(",", ";").replace("1.5", "1,5"),
            "line 2: close is not a number ('1,5'; write decimals with a point)",
        ),
        ('"clo\nse",open\n1,2\n', "no high column (found: 'clo\\nse', open)"),
    ],
    ids=["empty", "blank", "header-only", "utf-16", "latin-1", "parquet-named-csv", "long-row", "short-header",
         "unclosed-quote", "decimal-comma", "line-break-in-a-name"],
)  # fmt: skip
def test_unreadable_csv_files(tmp_path: Path, content: str | bytes, message: str) -> None:
    refused(write(tmp_path / "btc.csv", content), message)


@pytest.mark.parametrize(
    ("last_row", "message"),
    [
        (f"{T0 + 2 * MINUTE},1,2,0.5,abc,1", "line 7: close is not a number ('abc')"),
        (f"{T0 + 2 * MINUTE},1,2,0.5,1.5,1,1", "line 7: 7 fields, but the header names 6 columns"),
        (f'{T0 + 2 * MINUTE},1,2,0.5,1.5,"1', 'line 7: a quote (") opened here is never closed'),
    ],
    ids=["bad-cell", "long-row", "unclosed-quote"],
)
def test_line_numbers_count_blank_lines_and_quoted_line_breaks(tmp_path: Path, last_row: str, message: str) -> None:
    text = f'\n{HEADER}\n{ROWS[0]}\n\n{T0 + MINUTE},1,2,0.5,1.5,"1\n"\n{last_row}\n'
    refused(write(tmp_path / "btc.csv", text), message)


@pytest.mark.parametrize(
    ("suffix", "content", "message"),
    [
        (".csv.gz", GOOD, "a damaged or truncated compressed file (Not a gzipped file (b'ti'))"),
        (
            ".csv.gz",
            gzip.compress(GOOD.encode() * 50)[:60],
            "a damaged or truncated compressed file (Compressed file ended before the end-of-stream marker "
            "was reached)",
        ),
        (".csv.bz2", b"BZh9garbage", "a damaged or truncated compressed file (Invalid data stream)"),
        (".csv.xz", b"\xfd7zXZ\x00garbage", "a damaged or truncated compressed file (Corrupt input data)"),
        (".csv.zip", GOOD, "a damaged or truncated compressed file (File is not a zip file)"),
        (
            ".csv.gz",
            gzip.compress(f"timestamp,symbol,price,size\n{T0},caf\xe9,1,1\n".encode("latin-1")),
            "line 2, column 18: not UTF-8 text (byte 0xe9); save the file as UTF-8",
        ),
    ],
    ids=["not-gzip", "truncated-gzip", "bad-bz2", "bad-xz", "not-zip", "latin-1-gzip"],
)
def test_damaged_compressed_files(tmp_path: Path, suffix: str, content: str | bytes, message: str) -> None:
    refused(write(tmp_path / f"btc{suffix}", content), message)


def test_a_zip_must_hold_one_file(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "two.csv.zip", "w") as archive:
        archive.writestr("a.csv", GOOD)
        archive.writestr("b.csv", GOOD)
    refused(tmp_path / "two.csv.zip", "a zip archive must hold exactly one file (it holds 2: a.csv, b.csv)")
    zipfile.ZipFile(tmp_path / "none.csv.zip", "w").close()
    refused(tmp_path / "none.csv.zip", "a zip archive must hold exactly one file (it holds none)")


@pytest.mark.skipif(importlib.util.find_spec("zstandard") is not None, reason="zstandard is installed")
def test_zstd_without_the_package_is_named(tmp_path: Path) -> None:
    refused(write(tmp_path / "btc.csv.zst", b"\x28\xb5\x2f\xfd"), "reading .zst files needs the zstandard package")


def parquet(path: Path, table: pa.Table | pd.DataFrame) -> Path:
    if isinstance(table, pd.DataFrame):
        table.to_parquet(path)
    else:
        pq.write_table(table, path)
    return path


def test_damaged_and_misnamed_parquet_files(tmp_path: Path) -> None:
    good = parquet(tmp_path / "good.parquet", pd.DataFrame({"timestamp": [T0], "price": [1.0], "size": [1.0]}))
    data = good.read_bytes()
    refused(
        write(tmp_path / "csv.parquet", GOOD),
        "not a Parquet file (it does not start with PAR1; a CSV file needs a .csv name)",
    )
    refused(
        write(tmp_path / "cut.parquet", data[: len(data) // 2]), "a truncated Parquet file (it does not end with PAR1)"
    )
    refused(write(tmp_path / "empty.parquet", b""), "the file is empty")
    damaged = write(tmp_path / "damaged.parquet", data[:8] + b"\xff" * 40 + data[48:])
    with pytest.raises(DataError, match=r"^\S+damaged\.parquet: not a readable Parquet file \(") as raised:
        ReplayFeed(damaged)
    assert len(str(raised.value).splitlines()) == 1  # pyarrow's own message spans lines


def test_paths_that_are_not_data_files(tmp_path: Path) -> None:
    refused(tmp_path, "is a directory, not a data file")
    refused(tmp_path / "absent.csv", "file not found")
    os.mkfifo(tmp_path / "pipe.csv")
    refused(tmp_path / "pipe.csv", "not a regular file")  # reading it would wait forever
    refused(
        write(tmp_path / "notes.txt", GOOD),
        "unknown file type '.txt' (expected .csv, optionally compressed, or .parquet)",
    )


# --- columns, cells, times and symbols -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("volume", "close"), "2 columns read as 'close' ('close', 'close'); keep one"),
        (GOOD.replace("volume", "Close"), "2 columns read as 'close' ('close', 'Close'); keep one"),
        (f"{HEADER}\n{T0},1,2,0.5,1.5,1\n{T0 + MINUTE},1,0.5,2,1.5,1\n", "line 3: high 0.5 is below low 2.0"),
        (f"{HEADER}\n{T0},1,2,0.5,nan,1\n", "line 2: close is missing"),
        (f"{HEADER}\n{T0},1,2,0.5,1.5,-inf\n", "line 2: volume is not finite (-inf)"),
        (f"{HEADER}\n{T0},-1,2,0.5,1.5,1\n", "line 2: open -1.0 is not positive"),
        (
            f"{HEADER}\n{T0 // 1000},1,2,0.5,1.5,1\n{T0 + MINUTE},1,2,0.5,1.5,1\n{T0 + 2 * MINUTE},1,2,0.5,1.5,1\n",
            "line 2: time 1704067200 reads as epoch seconds, but the column's times are epoch milliseconds "
            "(write every time in one unit)",
        ),
        (f"{HEADER}\n{T0},1,2,0.5,1.5,1\ninf,1,2,0.5,1.5,1\n", "line 3: unreadable time inf"),
        (f"{HEADER}\n1e30,1,2,0.5,1.5,1\n2e30,1,2,0.5,1.5,1\n", "line 2: time 1e+30 is out of range (years 1 to 9999)"),
        (
            f"{HEADER}\n2024-01-01T00:00:00+02:00,1,2,0.5,1.5,1\n2024-01-01 00:01:00,1,2,0.5,1.5,1\n",
            "line 3: time '2024-01-01 00:01:00' has no UTC offset, unlike line 2 ('2024-01-01T00:00:00+02:00'); "
            "give every time its offset, or none (naive times are read as UTC)",
        ),
        (f"{HEADER}\n9999-99-99,1,2,0.5,1.5,1\n", "line 2: unreadable time '9999-99-99'"),
        (
            f"{HEADER}\n{T0 + MINUTE},1,2,0.5,1.5,1\n{T0},1,2,0.5,1.5,1\n",
            "line 3: timestamp 2024-01-01 00:00 is not after the previous row (timestamps must increase per symbol)",
        ),
        (
            f"timestamp,symbol,open,high,low,close\n{T0},A,1,2,0.5,1.5\n{T0}, A ,1,2,0.5,1.5\n",
            "line 3: timestamp 2024-01-01 00:00 is not after the previous A row (timestamps must increase per symbol)",
        ),
        (
            f"timestamp,symbol,open,high,low,close\n{T0},A,1,2,0.5,1.5\n{T0 + MINUTE},  ,1,2,0.5,1.5\n",
            "line 3: symbol is missing",
        ),
    ],
    ids=["same-name", "same-name-other-case", "high-below-low", "nan", "infinite", "negative", "seconds-among-ms",
         "infinite-time", "time-out-of-range", "naive-among-shifted", "unparseable-date", "backwards",
         "spaces-around-a-symbol", "blank-symbol"],
)  # fmt: skip
def test_bad_bar_cells(tmp_path: Path, text: str, message: str) -> None:
    refused(write(tmp_path / "btc.csv", text), message)


@pytest.mark.parametrize(
    ("columns", "row", "message"),
    [
        ("bid_price_2,bid_size_2", "9,1,,5,10,1", "line 2: bid_size_2 is 5.0 but bid_price_2 is missing"),
        ("bid_px_1,bid_sz_1", "9,1,9,1,10,1", "bid_price_1 and bid_px_1 are both the bid price of one level; keep one"),
        ("", "11,1,10,1", "line 2: best bid 11.0 is not below best ask 10.0"),
        ("bid_price_2", "9,1,8,10,1", "bid_price_2 has no matching bid size column"),
    ],
    ids=["size-without-price", "one-level-twice", "crossed", "level-without-size-column"],
)
def test_bad_books(tmp_path: Path, columns: str, row: str, message: str) -> None:
    """Level 1 of each side, with ``columns`` between the bid and the ask."""
    header = ",".join(filter(None, ["timestamp,bid_price_1,bid_size_1", columns, "ask_price_1,ask_size_1"]))
    refused(write(tmp_path / "b.csv", f"{header}\n{T0},{row}\n"), message)


def test_parquet_columns_of_the_wrong_kind(tmp_path: Path) -> None:
    base = {"timestamp": [T0, T0 + MINUTE], "open": [1.0, 1.0], "high": [2.0, 2.0], "low": [0.5, 0.5]}
    bools = parquet(tmp_path / "bools.parquet", pd.DataFrame({**base, "close": [True, True]}))
    refused(bools, "row 1: close holds true/false, not numbers (True)")
    durations = {**base, "timestamp": pd.to_timedelta([1, 2], unit="min"), "close": [1.5, 1.5]}
    refused(
        parquet(tmp_path / "td.parquet", pd.DataFrame(durations)),
        "the time column 'timestamp' holds durations, not times",
    )
    lists = pa.table({"timestamp": [T0, T0 + 1], "price": [1.0, 1.0], "size": [1.0, 1.0], "symbol": [[1], [2]]})
    refused(parquet(tmp_path / "lists.parquet", lists), "row 1: symbol is not a name (array([1]))")
    huge = pa.table({"timestamp": pa.array([2**64 - 1, 5], type=pa.uint64()), "price": [1.0, 1.0], "size": [1.0, 1.0]})
    other_unit = "reads as epoch seconds, but the column's times are epoch nanoseconds (write every time in one unit)"
    refused(parquet(tmp_path / "huge.parquet", huge), f"row 2: time 5 {other_unit}")


# --- feed arguments --------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [0, -5, 10**20, True])
def test_a_bar_length_must_be_a_positive_number_of_ms(tmp_path: Path, interval: int) -> None:
    path = write(tmp_path / "btc.csv", GOOD)
    with pytest.raises(ConfigError, match=r"^feed\.replay\.interval_ms: .* is not a bar length in milliseconds$"):
        ReplayFeed(path, interval_ms=interval)


def test_an_unknown_kind_and_a_file_given_twice_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "btc.csv", GOOD)
    with pytest.raises(ConfigError, match=r"^feed\.replay\.kind: 'nope' is not auto, bars, trades or books$"):
        ReplayFeed(path, kind="nope")  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as raised:
        ReplayFeed([path, path])
    assert raised.value.problems == [f"feed.replay.paths: {path} is given twice"]
    (tmp_path / "link.csv").symlink_to(path)
    with pytest.raises(ConfigError) as raised:
        ReplayFeed([path, tmp_path / "link.csv"])
    assert raised.value.problems == [f"feed.replay.paths: {tmp_path / 'link.csv'} is given twice (also as {path})"]


def test_the_default_symbol_must_name_something(tmp_path: Path) -> None:
    path = write(tmp_path / "btc.csv", GOOD)
    assert {bar.symbol for bar in load_bars(path, symbol=" BTC/USDT ")} == {"BTC/USDT"}
    with pytest.raises(ConfigError, match=r"^feed\.replay\.symbol: ' ' is not a symbol name$"):
        ReplayFeed(path, symbol=" ")
    refused(
        write(tmp_path / ".csv", GOOD),
        "no symbol column, and the file name gives no symbol; set the symbol (--symbol)",
        load=load_bars,
    )


@pytest.mark.parametrize(
    ("dates", "outcome"),
    [
        (["01/01/2024", "02/01/2024", "13/01/2024"], ["2024-01-01", "2024-01-02", "2024-01-13"]),
        (["01/01/2024", "01/02/2024", "01/13/2024"], ["2024-01-01", "2024-01-02", "2024-01-13"]),
        (["1.1.2024", "2.1.2024", "14.1.2024"], ["2024-01-01", "2024-01-02", "2024-01-14"]),
        (
            ["2024-01-01", "01/02/2024", "2024-01-03"],
            "line 3: date '01/02/2024' may be day-first or month-first; write ISO dates (2024-02-01)",
        ),
        (
            ["01/01/2024", "13/01/2024", "01/13/2024"],
            "line 4: date '01/13/2024' is month-first, unlike line 3 ('13/01/2024'); write ISO dates (2024-02-01)",
        ),
    ],
    ids=["day-first", "month-first", "dotted-day-first", "ambiguous", "both-orders"],
)
def test_numeric_dates_are_read_in_the_order_the_column_proves(
    tmp_path: Path, dates: list[str], outcome: list[str] | str
) -> None:
    """``01/02/2024`` is 1 February only if another date of the column cannot be month-first."""
    path = write(tmp_path / "d.csv", "Date,Open,High,Low,Close\n" + "".join(f"{d},1,2,0.5,1.5\n" for d in dates))
    if isinstance(outcome, str):
        refused(path, outcome, load=load_bars)
        return
    opened = [bar.open_ts for bar in load_bars(path, interval_ms=MINUTE)]
    assert opened == [pd.Timestamp(day, tz="UTC").value // 1_000_000 for day in outcome]


def test_a_bar_may_not_close_after_the_year_9999(tmp_path: Path) -> None:
    text = "Date,Open,High,Low,Close\n9999-12-30,1,2,0.5,1.5\n9999-12-31,1,2,0.5,1.5\n"
    refused(write(tmp_path / "end.csv", text), "line 3: the bar closes after the year 9999 (86400000 ms long)")
