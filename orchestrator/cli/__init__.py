"""The ``orchestrator`` command line.

Each sub-command lives in its own file and registers itself on ``app``.
Expected failures (bad config, bad data, a module that does not load) print
their one-line reasons and exit non-zero; they never print a traceback.
"""

from __future__ import annotations

import sys

import typer

from orchestrator.cli import backtest, configuration, journal, modules, record, reload, run, status, trading
from orchestrator.cli.common import EXIT_USAGE, print_problems
from orchestrator.errors import ConfigError, OrchestratorError

app = typer.Typer(
    name="orchestrator",
    help="Trading orchestrator: hot-swappable analysis modules, fused decisions, paper and live execution.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for command_module in (run, backtest, record, configuration, modules, reload, trading, journal, status):
    command_module.register(app)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        print_problems(exc.problems)
        sys.exit(EXIT_USAGE)
    except OrchestratorError as exc:
        print_problems([str(exc)])
        sys.exit(EXIT_USAGE)
