"""``orchestrator pause``, ``reduce``, ``resume``, ``halt``: a running daemon's trading state.

- ``pause``: decisions go on, no new orders (refused while HALTED);
- ``reduce``: only orders that shrink a position (works from HALTED too);
- ``resume``: ACTIVE, everything within the risk limits;
- ``halt``: no new orders and every open order cancelled.

Each reaches the daemon over its control socket, like ``orchestrator
reload``; the state is persisted by the daemon, so a restart keeps it.
Exit status: 0 done, 1 refused by the daemon, 3 no daemon reachable.
"""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.common import ConfigOption
from orchestrator.cli.reload import JsonOption, SocketOption, call, finish

ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="recorded with the state change")]

_HELP = {
    "pause": "Stop sending new orders; decisions go on (refused while halted: resume first).",
    "reduce": "Only orders that shrink a position pass (a flip is cut at flat); works from halted too.",
    "resume": "Trade normally again (ACTIVE), also after a halt.",
    "halt": "Stop sending new orders and cancel every open one (what the kill switch does).",
}


def _add(app: typer.Typer, command: str) -> None:
    def state_command(
        reason: ReasonOption = "operator (command line)",
        config: ConfigOption = None,
        socket: SocketOption = None,
        as_json: JsonOption = False,
    ) -> None:
        finish(call(config, socket, {"command": command, "reason": reason}), as_json)

    state_command.__doc__ = _HELP[command]
    app.command(command)(state_command)


def register(app: typer.Typer) -> None:
    for command in ("pause", "reduce", "resume", "halt"):
        _add(app, command)
