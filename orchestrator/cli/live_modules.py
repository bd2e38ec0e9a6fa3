"""``orchestrator modules --live``: what a running daemon is serving.

Asks the daemon over its control socket: each module's version, source
hash, state, load time, swap count and errors (a refused hot swap shows as
``reload error`` while the listed version keeps serving), and whether the
config file on disk was refused or has changes waiting for a restart.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.reload import call


def show_live(config: Path | None, socket: Path | None, as_json: bool) -> None:
    answer = call(config, socket, {"command": "modules"})
    if not answer.get("ok"):
        print(answer.get("message", "refused"), file=sys.stderr)
        sys.exit(1)
    data: dict[str, Any] = answer.get("data") or {}
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    console = Console(width=160)
    table = Table(title="modules serving now")
    for column in ("name", "version", "source", "state", "loaded", "swaps", "calls", "errors"):
        table.add_column(column, overflow="fold")
    for row in data.get("modules", []):
        loaded = datetime.fromtimestamp(row["loaded_at"]).strftime("%Y-%m-%d %H:%M:%S")
        problems = []
        if row.get("reload_error"):
            problems.append(f"[red]reload error: {escape(row['reload_error'])}[/red]")
        if row.get("last_error"):
            problems.append(f"last error: {escape(row['last_error'])}")
        errors = str(row["errors"]) + ("\n" + "\n".join(problems) if problems else "")
        table.add_row(
            escape(f"{row['name']} [{row['bucket']}]"),
            row["version"],
            row["source_hash"],
            row["state"],
            loaded,
            str(row["swaps"]),
            str(row["calls"]),
            errors,
        )
    console.print(table)
    if data.get("disabled"):
        console.print(escape(f"disabled: {', '.join(data['disabled'])}"))
    standing = data.get("config") or {}
    console.print(escape(f"config: {standing.get('path')} (watching: {'on' if data.get('watching') else 'off'})"))
    for problem in standing.get("problems") or []:
        console.print(f"[red]config on disk refused: {escape(problem)}[/red]")
    for change in standing.get("restart_required") or []:
        console.print(f"[yellow]waiting for a restart: {escape(change)}[/yellow]")
    for change in standing.get("operator_overrides") or []:
        console.print(escape(f"operator change (until the config is reloaded): {change}"))
