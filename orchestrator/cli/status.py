"""``orchestrator status``: a daemon's retained status and module health, from the broker.

Exit codes: 0 the daemon is online; 1 it is offline or nothing is retained
under the prefix; 2 bad configuration or arguments; 3 the broker cannot be
reached.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.cli.common import EXIT_USAGE, ConfigOption, config_path, print_problems
from orchestrator.config.loader import load_config
from orchestrator.errors import ConfigError
from orchestrator.mqtt.config import MqttConfig, parse_broker_url

EXIT_NOT_ONLINE = 1
EXIT_UNREACHABLE = 3


def _resolve(config: Path | None, url: str | None, prefix: str | None) -> tuple[MqttConfig, str]:
    """The MQTT settings and topic prefix: from the profile, ``--url`` winning."""
    path = config_path(config)
    if config is None and url is not None and not path.exists():
        mqtt, instance = MqttConfig(url=url), "default"
    else:
        loaded = load_config(path)
        instance = loaded.config.instance
        if loaded.config.mqtt is None:
            if url is None:
                raise ConfigError([f"{path}: no 'mqtt' section: pass --url mqtt://host:port"])
            mqtt = MqttConfig(url=url)
        else:
            # An explicit URL wins over the profile's broker (as ORCHESTRATOR__MQTT__URL does).
            mqtt = loaded.config.mqtt if url is None else loaded.config.mqtt.model_copy(update={"url": url})
    return mqtt, prefix or mqtt.prefix_for(instance)


def _when(ms: Any) -> str:
    if not isinstance(ms, int | float) or ms <= 0:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _micros(value: Any) -> str:
    """A latency, or '-' for a module that has not been called yet (null)."""
    return f"{value:.1f}" if isinstance(value, int | float) else "-"


def _status_table(online: str | None, status: Mapping[str, Any] | None, prefix: str) -> Table:
    table = Table(title=f"{prefix}", show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    colour = "green" if online == "online" else "red"
    table.add_row("online", f"[{colour}]{online or 'unknown'}[/{colour}]")
    if status is None:
        table.add_row("status", "[yellow]none retained[/yellow]")
        return table
    state = str(status.get("state", "?"))
    state_colour = {"ACTIVE": "green", "PAUSED": "yellow", "REDUCING": "yellow"}.get(state, "red")
    counters = status.get("counters") or {}
    positions = status.get("positions") or {}
    rows = [
        ("state", f"[{state_colour}]{state}[/{state_colour}]"),
        ("as of", _when(status.get("ts"))),
        ("uptime", f"{status.get('uptime_s', 0):,.0f} s"),
        ("feed", str(status.get("feed", "-"))),
        ("symbols", ", ".join(status.get("symbols") or []) or "-"),
        ("equity", f"{status.get('equity', 0):,.2f}"),
        ("realized / unrealized PnL", f"{status.get('realized_pnl', 0):,.2f} / {status.get('unrealized_pnl', 0):,.2f}"),
        ("fees", f"{status.get('fees', 0):,.2f}"),
        ("positions", ", ".join(f"{k} {v:g}" for k, v in positions.items()) or "none"),
        ("open orders", str(status.get("open_orders", 0))),
        (
            "events / decisions / orders / fills",
            " / ".join(f"{counters.get(k, 0):,}" for k in ("events", "decisions", "orders", "fills")),
        ),
        ("last decision", _when(status.get("last_decision_ts"))),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _modules_table(modules: Mapping[str, Mapping[str, Any]]) -> Table:
    table = Table(title="modules")
    for column in ("module", "version", "source", "state", "swaps", "errors", "p50 µs", "p99 µs", "last error"):
        table.add_column(column, overflow="fold")
    for key in sorted(modules):
        health = modules[key]
        latency = health.get("latency_us") or {}
        state = str(health.get("state", "?"))
        colour = {"active": "green", "degraded": "yellow", "loading": "yellow"}.get(state, "red")
        table.add_row(
            key,
            str(health.get("version", "-")),
            str(health.get("source_hash", "-")),
            f"[{colour}]{state}[/{colour}]",
            str(health.get("swaps", 0)),
            str(health.get("errors", 0)),
            _micros(latency.get("p50")),
            _micros(latency.get("p99")),
            str(health.get("last_error") or ""),
        )
    return table


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status_command(
        config: ConfigOption = None,
        url: Annotated[
            str | None, typer.Option("--url", help="broker URL (default: the profile's mqtt.url or embedded broker)")
        ] = None,
        prefix: Annotated[
            str | None, typer.Option("--prefix", help="topic prefix (default: orchestrator/<instance>)")
        ] = None,
        wait: Annotated[float, typer.Option("--wait", min=0.1, help="seconds to wait for retained messages")] = 3.0,
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    ) -> None:
        """Print a daemon's retained status and module health from the MQTT broker."""
        import aiomqtt

        from orchestrator.mqtt.reader import read_retained

        if url is not None:
            try:
                parse_broker_url(url)
            except ValueError as exc:
                print_problems([f"--url: {exc}"])
                sys.exit(EXIT_USAGE)
        mqtt, topic_prefix = _resolve(config, url, prefix)
        address = mqtt.broker()
        try:
            state = asyncio.run(read_retained(mqtt, address, topic_prefix, wait_s=wait))
        except aiomqtt.MqttError as exc:
            print_problems([f"cannot reach the MQTT broker at {address.url}: {exc}"])
            sys.exit(EXIT_UNREACHABLE)
        if as_json:
            print(json.dumps({"online": state.online, "status": state.status, "modules": state.modules}, indent=2))
        if state.empty:
            print_problems(
                [f"nothing retained under {topic_prefix}/ at {address.url}: is the daemon running with MQTT?"]
            )
            sys.exit(EXIT_NOT_ONLINE)
        if not as_json:
            console = Console(width=160)
            console.print(_status_table(state.online, state.status, topic_prefix))
            if state.modules:
                console.print(_modules_table(state.modules))
        if state.online != "online":
            print_problems([f"{topic_prefix}: the daemon is {state.online or 'not reporting online'}"])
            sys.exit(EXIT_NOT_ONLINE)
