"""``orchestrator modules``: what can be loaded, or what a profile loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.common import config_path
from orchestrator.config.loader import load_config
from orchestrator.errors import ModuleLoadError
from orchestrator.plugins.contract import ModuleContract


def _contract_row(name: str, contract: ModuleContract, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A module's contract; with ``params`` (a profile's), its values and, under
    ``defaults``, what each would be unconfigured."""
    defaults = {p.name: p.default for p in contract.params()}
    described = {key: (params or {}).get(key, default) for key, default in defaults.items()}
    row: dict[str, Any] = {
        "name": name,
        "implementation": contract.name,
        "version": contract.version,
        "consumes": sorted(k.value for k in contract.consumes),
        "depends_on": list(contract.depends_on),
        "fusion": contract.provides_fusion,
        "latency_budget_us": contract.latency_budget_us,
        "params": described,
        "summary": contract.summary,
    }
    if params is not None:
        row["defaults"] = defaults
    return row


def _params_cell(row: dict[str, Any]) -> str:
    """``fast=4 (default 10), slow=30``: a configured value shows its default when it differs."""
    defaults = row.get("defaults", {})
    return ", ".join(
        f"{key}={value}" + (f" (default {defaults[key]})" if key in defaults and defaults[key] != value else "")
        for key, value in row["params"].items()
    )


def _rows(config: Path | None) -> list[dict[str, Any]]:
    from orchestrator.engine.plan import plan_run
    from orchestrator.plugins.loader import load_module
    from orchestrator.plugins.sources import available_sources

    if config is not None:
        plan = plan_run(load_config(config_path(config)))
        rows = []
        for bucket in plan.buckets:
            for module in bucket.modules:
                row = _contract_row(module.name, module.loaded.contract, module.params.model_dump())
                row["bucket"] = bucket.name
                row["latency_budget_us"] = module.latency_budget_us
                rows.append(row)
        return rows
    rows = []
    for name, source in available_sources().items():
        try:
            loaded = load_module(source)
        except ModuleLoadError as exc:
            rows.append({"name": name, "error": str(exc)})
            continue
        rows.append(_contract_row(name, loaded.contract))
        loaded.unload()
    return rows


def register(app: typer.Typer) -> None:
    @app.command("modules")
    def modules_command(
        config: Annotated[Path | None, typer.Option("--config", "-c", help="the modules this profile loads")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
        live: Annotated[
            bool, typer.Option("--live", help="ask the running daemon (of --config) what it serves now")
        ] = False,
        socket: Annotated[
            Path | None, typer.Option("--socket", help="with --live: the daemon's control socket")
        ] = None,
    ) -> None:
        """List modules with their contracts: version, event kinds, dependencies, parameters."""
        if live or socket is not None:
            from orchestrator.cli.live_modules import show_live

            show_live(config, socket, as_json)
            return
        rows = _rows(config)
        if as_json:
            print(json.dumps(rows, indent=2, default=str))
            return
        table = Table(title="modules" if config is None else f"modules of {config}")
        parameters = "parameters (default)" if config is None else "parameters (configured)"
        for column in ("name", "version", "consumes", "depends on", parameters):
            table.add_column(column, overflow="fold")
        for row in rows:
            if "error" in row:
                table.add_row(escape(row["name"]), "-", "-", "-", f"[red]{escape(row['error'])}[/red]")
                continue
            label = row["name"] if "bucket" not in row else f"{row['name']} [{row['bucket']}]"
            if row["fusion"]:
                label += " (fusion)"
            table.add_row(
                escape(label),
                escape(row["version"]),
                ", ".join(row["consumes"]) or "-",
                escape(", ".join(row["depends_on"])) or "-",
                escape(_params_cell(row)) or "-",
            )
        Console(width=160).print(table)
