"""``orchestrator backtest`` on hostile data files: each is refused with exit 2 and one line on
stderr naming the file (never a traceback, never click's bare "Aborted."), or backtests as documented."""

from __future__ import annotations

import gzip
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator import Bar

REPO = Path(__file__).resolve().parents[3]
PROFILE = REPO / "config" / "backtest.yaml"
RunBatch = Callable[..., list[subprocess.CompletedProcess[str]]]
Runs = tuple[Path, dict[str, subprocess.CompletedProcess[str]]]


def bar_lines(bars: list[Bar], delimiter: str = ",") -> str:
    rows = [[str(b.open_ts), repr(b.open), repr(b.high), repr(b.low), repr(b.close), repr(b.volume)] for b in bars]
    header = ["timestamp", "open", "high", "low", "close", "volume"]
    return "\n".join(delimiter.join(cells) for cells in [header, *rows]) + "\n"


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, run_cli_batch: RunBatch, make_bars: Callable[..., list[Bar]]
) -> Runs:
    """Every case in one batch of CLI runs."""
    folder = tmp_path_factory.mktemp("backtest-inputs")
    bars = make_bars(120, seed=5, start_ts=1_735_689_600_000)
    text = bar_lines(bars)
    (folder / "good.csv").write_text(text)
    (folder / "semicolon.csv").write_text(bar_lines(bars, ";"))
    (folder / "cut.csv.gz").write_bytes(gzip.compress(text.encode())[:200])
    (folder / "fake.csv.zip").write_text(text)
    (folder / "fake.parquet").write_text(text)
    lists = pa.table({"timestamp": [1, 2], "price": [1.0, 1.0], "size": [1.0, 1.0], "symbol": [[1], [2]]})
    pq.write_table(lists, folder / "lists.parquet")
    good_parquet = folder / "good.parquet"
    pq.write_table(pa.table({"timestamp": [1, 2], "price": [1.0, 1.0], "size": [1.0, 1.0]}), good_parquet)
    data = good_parquet.read_bytes()
    (folder / "damaged.parquet").write_bytes(data[:8] + b"\xff" * 40 + data[48:])
    (folder / "seconds-among-ms.csv").write_text(text.replace(f"\n{bars[3].open_ts},", f"\n{bars[3].open_ts // 1000},"))
    cases: dict[str, list[Any]] = {
        "semicolon": ["--data", "semicolon.csv", "--json", folder / "semicolon.json"],
        "good": ["--data", "good.csv", "--json", folder / "good.json"],
        "truncated-gzip": ["--data", "cut.csv.gz"],
        "not-a-zip": ["--data", "fake.csv.zip"],
        "csv-named-parquet": ["--data", "fake.parquet"],
        "list-symbols": ["--data", "lists.parquet"],
        "damaged-parquet": ["--data", "damaged.parquet"],
        "seconds-among-ms": ["--data", "seconds-among-ms.csv"],
        "directory": ["--data", "."],
        "twice": ["--data", "good.csv", "--data", folder / "good.csv"],
    }
    commands = [("backtest", "-c", PROFILE, *arguments) for arguments in cases.values()]
    return folder, dict(zip(cases, run_cli_batch(commands, cwd=folder), strict=True))


def test_a_semicolon_file_backtests_like_the_comma_one(runs: Runs) -> None:
    folder, results = runs
    for name in ("good", "semicolon"):
        assert results[name].returncode == 0, results[name].stderr
    good = json.loads((folder / "good.json").read_text())
    assert json.loads((folder / "semicolon.json").read_text()) == good
    assert good["events"] == 120


@pytest.mark.parametrize(
    ("case", "line"),
    [
        (
            "truncated-gzip",
            "cut.csv.gz: a damaged or truncated compressed file (Compressed file ended before the "
            "end-of-stream marker was reached)",
        ),
        ("not-a-zip", "fake.csv.zip: a damaged or truncated compressed file (File is not a zip file)"),
        ("csv-named-parquet", "fake.parquet: not a Parquet file (it does not start with PAR1; a CSV file needs a .csv "
         "name)"),
        ("list-symbols", "lists.parquet: row 1: symbol is not a name (array([1]))"),
        ("damaged-parquet", "damaged.parquet: not a readable Parquet file ("),
        ("seconds-among-ms", "seconds-among-ms.csv: line 5: time 1735689780 reads as epoch seconds, but the column's "
         "times are epoch milliseconds (write every time in one unit)"),
        ("directory", ".: is a directory, not a data file"),
        ("twice", "feed.replay.paths: {folder}/good.csv is given twice (also as good.csv)"),
    ],
)  # fmt: skip
def test_bad_data_is_one_line_and_exit_2(runs: Runs, case: str, line: str) -> None:
    folder, results = runs
    done = results[case]
    assert "Traceback" not in done.stderr
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(line.format(folder=folder)), done.stderr
