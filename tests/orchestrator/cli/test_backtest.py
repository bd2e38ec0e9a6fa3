"""``orchestrator backtest``: recorded bars in the common CSV layouts through the
daemon's core, a printed summary, identical JSON on every run, and one-line
errors for bad data."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator import Bar
from orchestrator.backtest.runner import run_backtest
from orchestrator.cli.backtest import json_destination_problem, progress_every
from orchestrator.config.loader import LoadedConfig, load_config, validate_config
from orchestrator.engine.plan import plan_run
from orchestrator.feeds.replay import ReplayFeed

REPO = Path(__file__).resolve().parents[3]
PROFILE = REPO / "config" / "backtest.yaml"
BARS = 300
RunBatch = Callable[..., list[subprocess.CompletedProcess[str]]]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


# Each layout writes the same one-minute bars: its header, and how a bar's open time is written.
LAYOUTS: dict[str, tuple[str, Callable[[int], str]]] = {
    "timestamp-ms": ("timestamp,open,high,low,close,volume", str),
    "date-titlecase": ("Date,Open,High,Low,Close,Adj Close,Volume", iso),
    "unnamed-index": (",open,high,low,close,volume", iso),
    "upper-epoch-s": ("TIMESTAMP,OPEN,HIGH,LOW,CLOSE,VOLUME", lambda ms: str(ms // 1000)),
}


def write_csv(path: Path, bars: list[Bar], layout: str) -> Path:
    header, when = LAYOUTS[layout]
    lines = [header]
    for bar in bars:
        prices = [bar.open, bar.high, bar.low, bar.close] + ([bar.close] if "Adj Close" in header else [])
        lines.append(",".join([when(bar.open_ts), *map(repr, prices), repr(bar.volume)]))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_parquet(path: Path, bars: list[Bar]) -> Path:
    """The same bars as a pandas DataFrame with a UTC DatetimeIndex, as ``df.to_parquet()`` writes it."""
    import pandas as pd

    index = pd.to_datetime([bar.open_ts for bar in bars], unit="ms", utc=True)
    columns = {name: [getattr(bar, name) for bar in bars] for name in ("open", "high", "low", "close", "volume")}
    pd.DataFrame(columns, index=index).to_parquet(path)
    return path


Runs = tuple[Path, list[Bar], dict[str, subprocess.CompletedProcess[str]]]


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, run_cli_batch: RunBatch, make_bars: Callable[..., list[Bar]]
) -> Runs:
    """Every layout backtested once, the first one twice, plus two bad inputs: one batch."""
    folder = tmp_path_factory.mktemp("backtest")
    bars = make_bars(BARS, seed=21, start_ts=1_735_689_600_000)  # 2025-01-01, on whole minutes
    names = [*LAYOUTS, "timestamp-ms-again"]
    commands: list[Any] = []
    for name in names:
        layout = name.removesuffix("-again")
        data = write_csv(folder / f"{layout}.csv", bars, layout)
        commands.append(("backtest", "-c", PROFILE, "--data", data, "--json", folder / f"{name}.json"))
    parquet = folder / "bars.parquet"
    write_parquet(parquet, bars)
    commands.append(("backtest", "-c", PROFILE, "--data", parquet, "--json", folder / "parquet.json"))
    bad = folder / "bad.csv"
    rows = [f"{b.open_ts},{b.open},{b.high},{b.low},{b.close},{b.volume}" for b in bars[:20]]
    rows[15] = rows[15].rsplit(",", 2)[0] + ",abc," + rows[15].rsplit(",", 1)[1]  # line 17: close is text
    bad.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    commands.append(("backtest", "-c", PROFILE, "--data", bad))
    commands.append(("backtest", "-c", PROFILE, "--data", folder / "absent.csv"))
    commands.append(("backtest", "-c", PROFILE, "--data", parquet, "--json", folder / "no-such-dir" / "out.json"))
    results = run_cli_batch(commands, cwd=folder)
    return folder, bars, dict(zip([*names, "parquet", "bad", "absent", "json-nowhere"], results, strict=True))


def test_every_layout_backtests_to_the_same_summary(runs: Runs) -> None:
    folder, bars, results = runs
    summaries = {}
    for name in [*LAYOUTS, "parquet"]:
        done = results[name]
        assert done.returncode == 0, (name, done.stderr)
        assert "Traceback" not in done.stderr
        summaries[name] = json.loads((folder / f"{name}.json").read_text())
    first = summaries["timestamp-ms"]
    assert all(summary == first for summary in summaries.values()), summaries
    assert first["events"] == BARS
    assert first["first_ts"] == bars[0].ts
    assert first["last_ts"] == bars[-1].ts
    assert first["decisions"] > 0
    assert first["fills"] > 0
    assert first["initial_equity"] == 100_000.0


def test_the_summary_is_printed(runs: Runs) -> None:
    _, _, results = runs
    out = results["timestamp-ms"].stdout
    for label in ("backtest", "period", "events", "decisions", "fills", "fees", "final equity", "return", "sharpe"):
        assert label in out
    assert "2025-01-01 00:01:00 .. 2025-01-01 05:00:00" in out
    events_row = next(line for line in out.splitlines() if "events" in line and "wall" not in line)
    assert f"{BARS:,}" in events_row


def test_two_runs_write_identical_json(runs: Runs) -> None:
    folder, _, _ = runs
    assert (folder / "timestamp-ms.json").read_bytes() == (folder / "timestamp-ms-again.json").read_bytes()


def test_the_cli_reports_what_an_in_process_backtest_computes(runs: Runs) -> None:
    """The command line adds nothing of its own to the numbers."""
    folder, _, _ = runs
    data = folder / "timestamp-ms.csv"
    feed = ReplayFeed([data])
    loaded = load_config(PROFILE, env={})
    raw = {**loaded.raw, "symbols": list(feed.symbols)}
    plan = plan_run(LoadedConfig(validate_config(raw, label=str(PROFILE)), PROFILE, raw))
    summary = run_backtest(plan, feed.events()).summary()
    assert summary == json.loads((folder / "timestamp-ms.json").read_text())


def test_malformed_data_is_a_one_line_error_naming_file_and_line(runs: Runs) -> None:
    folder, _, results = runs
    done = results["bad"]
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr == f"{folder / 'bad.csv'}: line 17: close is not a number ('abc')\n"
    assert done.stdout == ""
    absent = results["absent"]
    assert absent.returncode == 2
    assert absent.stderr == f"{folder / 'absent.csv'}: file not found\n"


def test_an_unwritable_json_path_is_refused_before_the_replay(runs: Runs) -> None:
    folder, _, results = runs
    done = results["json-nowhere"]
    assert done.returncode == 2
    target = folder / "no-such-dir" / "out.json"
    assert done.stderr == f"{target}: --json: the directory {target.parent} does not exist\n"
    assert done.stdout == "", "refused before replaying, not after"


@pytest.mark.parametrize(
    ("total", "every"), [(0, 1), (150, 1), (3_000, 15), (200_000, 1_000), (2_000_000, 10_000), (10**9, 10_000)]
)
def test_the_progress_bar_moves_for_small_and_large_files(total: int, every: int) -> None:
    assert progress_every(total) == every


def test_json_destination_problems(tmp_path: Path) -> None:
    assert json_destination_problem(tmp_path / "out.json") is None
    assert json_destination_problem(tmp_path) == f"{tmp_path}: --json: is a directory, not a file"


def test_a_terminal_shows_a_progress_bar_and_a_pipe_does_not(
    runs: Runs, cli_env: Callable[..., dict[str, str]]
) -> None:
    folder, _, results = runs
    assert results["timestamp-ms"].stderr == ""  # captured (not a terminal): no bar
    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "backtest", "-c", str(PROFILE), "--data", "timestamp-ms.csv"],
            cwd=folder,
            env=cli_env(TERM="xterm", COLUMNS="100"),
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
        )
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=120) == 0
    finally:
        os.close(primary)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "replaying" in screen
    assert f"/{BARS}" in screen
    assert "final equity" in screen
