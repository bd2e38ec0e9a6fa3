"""``orchestrator journal``: recent orders, fills and denials from the order journal."""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.cli.common import EXIT_USAGE, ConfigOption, load, print_problems


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def register(app: typer.Typer) -> None:
    @app.command("journal")
    def journal_command(
        *,
        config: ConfigOption = None,
        symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="only this symbol")] = None,
        trace: Annotated[str | None, typer.Option("--trace", "-t", help="only this decision's trace id")] = None,
        limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="rows per table")] = 20,
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
        path: Annotated[Path | None, typer.Option("--path", help="journal file (default: from the profile)")] = None,
    ) -> None:
        """List recent orders and fills (newest first), by symbol or trace id."""
        from orchestrator.journal.store import JournalError, OrderJournal

        if path is None:
            loaded = load(config)
            path = loaded.config.journal.resolve_path(loaded.config.state_dir)
        try:
            journal = OrderJournal(path, create=False)
        except JournalError as exc:
            print_problems([str(exc)])
            sys.exit(EXIT_USAGE)
        try:
            orders = journal.orders(symbol=symbol, trace_id=trace, limit=limit)
            fills = journal.fills(symbol=symbol, trace_id=trace, limit=limit)
            denials = journal.denials(symbol=symbol, trace_id=trace, limit=limit)
        except sqlite3.Error as exc:
            print_problems([f"{path}: not an order journal ({exc})"])
            sys.exit(EXIT_USAGE)
        finally:
            journal.close()
        if as_json:
            payload = {
                "orders": [o.to_json() for o in orders],
                "fills": [f.to_json() for f in fills],
                "denials": [
                    {
                        "trace_id": d.trace_id,
                        "ts": d.ts,
                        "symbol": d.symbol,
                        "side": d.side.value,
                        "quantity": d.quantity,
                        "reason": d.reason,
                    }
                    for d in denials
                ],
            }
            print(json.dumps(payload, indent=2))
            return
        console = Console(width=180)
        table = Table(title=f"orders ({path})")
        for column in (
            "created",
            "client order id",
            "trace",
            "venue",
            "symbol",
            "side",
            "qty",
            "filled",
            "avg",
            "status",
            "note",
        ):
            table.add_column(column, overflow="fold")
        for o in orders:
            note = "external" if o.external else (o.reason or "")
            table.add_row(
                _when(o.created_ts),
                o.client_order_id,
                o.trace_id,
                o.venue,
                o.symbol,
                o.side.value,
                f"{o.quantity:g}",
                f"{o.filled_quantity:g}",
                "" if o.average_price is None else f"{o.average_price:g}",
                o.status.value,
                note,
            )
        console.print(table)
        table = Table(title="fills")
        for column in ("time", "fill id", "client order id", "trace", "symbol", "side", "qty", "price", "fee"):
            table.add_column(column, overflow="fold")
        for f in fills:
            table.add_row(
                _when(f.ts),
                f.fill_id,
                f.client_order_id,
                f.trace_id,
                f.symbol,
                f.side.value,
                f"{f.quantity:g}",
                f"{f.price:g}",
                f"{f.fee:g} {f.fee_currency}",
            )
        console.print(table)
        if denials:
            table = Table(title="denied")
            for column in ("time", "trace", "symbol", "side", "qty", "reason"):
                table.add_column(column, overflow="fold")
            for d in denials:
                table.add_row(_when(d.ts), d.trace_id, d.symbol, d.side.value, f"{d.quantity:g}", d.reason)
            console.print(table)
