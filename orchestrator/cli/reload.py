"""``orchestrator reload``, ``enable``, ``disable``, ``set-param``: change a running daemon.

Each reaches the daemon over its control socket (``<state_dir>/control.sock``,
owner-only), found from the same config the daemon runs with, or given
with ``--socket``. Only modules named in the daemon's configuration can be
touched. Exit status: 0 done, 1 refused by the daemon (the reason is
printed), 3 no daemon reachable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from orchestrator.cli.common import ConfigOption, config_path, print_problems
from orchestrator.hotswap.control_client import ControlUnavailable, send, socket_for

EXIT_REFUSED = 1
EXIT_UNREACHABLE = 3

SocketOption = Annotated[
    Path | None,
    typer.Option("--socket", help="the daemon's control socket (default: <state_dir>/control.sock of the config)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the daemon's whole answer as JSON")]


def call(config: Path | None, socket: Path | None, request: dict[str, Any]) -> dict[str, Any]:
    """Send ``request`` to the daemon; exit 3 with the reason if there is none."""
    path = socket if socket is not None else socket_for(config_path(config))
    try:
        return send(path, request)
    except ControlUnavailable as exc:
        print_problems([str(exc)])
        sys.exit(EXIT_UNREACHABLE)


def finish(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(answer, indent=2, default=str))
    else:
        print(answer.get("message", ""), file=sys.stdout if answer.get("ok") else sys.stderr)
        message = str(answer.get("message", ""))
        for problem in (answer.get("data") or {}).get("problems") or []:
            if str(problem) not in message:
                print(f"  {problem}", file=sys.stderr)
    if not answer.get("ok"):
        sys.exit(EXIT_REFUSED)


def parse_value(text: str) -> Any:
    """A parameter value as YAML, like environment overrides: ``5``, ``0.2``,
    ``true``, ``[a, b]``; text that is not YAML stays a string."""
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def register(app: typer.Typer) -> None:
    @app.command("reload")
    def reload_command(
        module: Annotated[
            str | None, typer.Argument(help="module to reload (default: config, then changed code)")
        ] = None,
        config_only: Annotated[
            bool, typer.Option("--config-only", help="only re-read the config file (= SIGHUP)")
        ] = False,
        config: ConfigOption = None,
        socket: SocketOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Swap in a module's current code, or re-read the config and swap in changed modules."""
        if config_only and module is not None:
            print_problems(["--config-only reloads the config, not a module: drop one of them"])
            sys.exit(2)
        request: dict[str, Any] = (
            {"command": "reload_config"} if config_only else {"command": "reload", "module": module}
        )
        finish(call(config, socket, request), as_json)

    @app.command("enable")
    def enable_command(
        module: Annotated[str, typer.Argument(help="a disabled module of the daemon's config")],
        config: ConfigOption = None,
        socket: SocketOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Start a module the running daemon's config names but has disabled."""
        finish(call(config, socket, {"command": "enable", "module": module}), as_json)

    @app.command("disable")
    def disable_command(
        module: Annotated[str, typer.Argument(help="a running module")],
        config: ConfigOption = None,
        socket: SocketOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Stop a module in the running daemon (its state is saved)."""
        finish(call(config, socket, {"command": "disable", "module": module}), as_json)

    @app.command("set-param")
    def set_param_command(
        *,
        module: Annotated[str, typer.Argument(help="a module of the daemon's config")],
        key: Annotated[str, typer.Argument(help="parameter name")],
        value: Annotated[str, typer.Argument(help="new value, read as YAML: 5, 0.2, true, a list")],
        config: ConfigOption = None,
        socket: SocketOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Change a module parameter live: validated, then the module is rebuilt and offered its state."""
        request = {"command": "set_param", "module": module, "key": key, "value": parse_value(value)}
        finish(call(config, socket, request), as_json)
