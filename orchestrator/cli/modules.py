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
    described = {p.name: (params or {}).get(p.name, p.default) for p in contract.params()}
    return {
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
        for column in ("name", "version", "consumes", "depends on", "parameters (default)"):
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
                escape(", ".join(f"{k}={v}" for k, v in row["params"].items())) or "-",
            )
        Console(width=160).print(table)
