"""``orchestrator backtest``: recorded data through the daemon's own core."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from orchestrator.cli.common import EXIT_USAGE, ConfigOption, load, print_problems
from orchestrator.config.loader import LoadedConfig, validate_config
from orchestrator.errors import ConfigError


def _with_symbols(loaded: LoadedConfig, symbols: tuple[str, ...]) -> LoadedConfig:
    """Trade the data's symbols: a single-bucket profile adopts them; a profile
    with buckets must already place every one of them in a bucket."""
    config = loaded.config
    if config.buckets is not None:
        missing = [s for s in symbols if s not in config.all_symbols()]
        if missing:
            raise ConfigError([f"{loaded.label}: buckets: the data's symbols {missing} are in no bucket"])
        return loaded
    raw = dict(loaded.raw)
    raw["symbols"] = list(symbols)
    # The profile's own per-symbol routes and limits were checked against its
    # own symbols; trading the data's symbols instead leaves them unused.
    config = validate_config(raw, label=loaded.label, check_references=False)
    return LoadedConfig(config, loaded.path, raw, loaded.env_overrides)


def progress_every(total: int) -> int:
    """Events between progress-bar updates: about 200 over a replay, so a small
    file's bar moves too, and at most 10,000 so a large one's never stalls."""
    return max(1, min(10_000, total // 200))


def json_destination_problem(path: Path) -> str | None:
    """Why ``--json PATH`` could not be written, checked before the replay so
    a long backtest's result is not lost to a typo in the path."""
    if path.is_dir():
        return f"{path}: --json: is a directory, not a file"
    parent = path.parent
    if not parent.is_dir():
        return f"{path}: --json: the directory {parent} does not exist"
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"{path}: --json: not writable"
    return None


def _print_summary(summary: dict[str, Any], elapsed: float, console: Console) -> None:
    table = Table(title="backtest", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")

    def when(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")

    rows = [
        ("period", f"{when(summary['first_ts'])} .. {when(summary['last_ts'])}"),
        ("events", f"{summary['events']:,}"),
        ("decisions", f"{summary['decisions']:,}"),
        ("orders", f"{summary['orders']:,}"),
        ("denied", f"{summary['denied']:,}"),
        ("fills", f"{summary['fills']:,}"),
        ("traded notional", f"{summary['traded_notional']:,.2f}"),
        ("fees", f"{summary['fees']:,.2f}"),
        ("initial equity", f"{summary['initial_equity']:,.2f}"),
        ("final equity", f"{summary['final_equity']:,.2f}"),
        ("return", f"{summary['total_return']:+.4%}"),
        ("max drawdown", f"{summary['max_drawdown']:.4%}"),
        ("sharpe (annualised)", f"{summary['sharpe']:.3f}"),
        ("wall time", f"{elapsed:.2f} s ({summary['events'] / max(elapsed, 1e-9):,.0f} events/s)"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command("backtest")
    def backtest_command(
        data: Annotated[list[Path], typer.Option("--data", "-d", help="CSV or Parquet file(s): bars, trades or books")],
        config: ConfigOption = None,
        symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="symbol of files without one")] = None,
        json_out: Annotated[Path | None, typer.Option("--json", help="also write the results as JSON here")] = None,
        sample_ms: Annotated[
            int, typer.Option("--sample-ms", min=1, help="equity sampling for drawdown/Sharpe")
        ] = 60_000,
    ) -> None:
        """Replay recorded data through the same core as the daemon, as fast as possible."""
        from orchestrator.backtest.runner import run_backtest
        from orchestrator.engine.plan import plan_run
        from orchestrator.feeds.replay import ReplayFeed
        from orchestrator.logs import configure_logging

        if json_out is not None and (problem := json_destination_problem(json_out)) is not None:
            print_problems([problem])
            sys.exit(EXIT_USAGE)
        loaded = load(config)
        configure_logging("warning", loaded.config.log.format)
        feed = ReplayFeed(data, symbol=symbol)
        plan = plan_run(_with_symbols(loaded, feed.symbols))
        console = Console(stderr=True)
        total = len(feed)
        if console.is_terminal:
            columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, console=console, transient=True) as progress:
                task = progress.add_task("replay", total=total)
                result = run_backtest(
                    plan,
                    feed.events(),
                    sample_ms=sample_ms,
                    progress=lambda n: progress.update(task, completed=n),
                    progress_every=progress_every(total),
                )
                progress.update(task, completed=result.events)
        else:
            result = run_backtest(plan, feed.events(), sample_ms=sample_ms)
        summary = result.summary()
        _print_summary(summary, result.elapsed_s, Console())
        if json_out is not None:
            try:
                json_out.write_text(json.dumps(summary, indent=2) + "\n")
            except OSError as exc:
                print_problems([f"{json_out}: cannot write: {exc}"])
                sys.exit(1)
