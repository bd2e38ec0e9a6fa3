"""``orchestrator run``: the daemon."""

from __future__ import annotations

import asyncio
import sys

import structlog
import typer

from orchestrator.cli.common import EXIT_USAGE, ConfigOption, load
from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.logs import configure_logging

EXIT_CRASHED = 1


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_command(config: ConfigOption = None) -> None:
        """Run the daemon until SIGINT or SIGTERM (a second one forces the stop)."""
        loaded = load(config)
        configure_logging(loaded.config.log.level, loaded.config.log.format)
        from orchestrator.daemon import Daemon

        # From here on everything goes through the logger, so under journald
        # even a failure to start or a crash is one JSON line, not a traceback.
        log = structlog.get_logger("orchestrator.cli")
        try:
            daemon = Daemon(loaded)
        except ConfigError as exc:
            log.error("startup_failed", problems=list(exc.problems))
            sys.exit(EXIT_USAGE)
        except OrchestratorError as exc:
            log.error("startup_failed", problems=[str(exc)])
            sys.exit(EXIT_USAGE)
        try:
            code = asyncio.run(daemon.run())
        except OrchestratorError as exc:  # e.g. recovery could not reconcile a venue
            problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
            log.error("daemon_failed" if daemon.ready.is_set() else "startup_failed", problems=problems)
            sys.exit(EXIT_USAGE)
        except Exception:  # logged with its traceback as one line, then a failure status
            log.exception("daemon_crashed")
            sys.exit(EXIT_CRASHED)
        sys.exit(code)
