"""``orchestrator run``: the daemon."""

from __future__ import annotations

import asyncio
import sys

import typer

from orchestrator.cli.common import EXIT_USAGE, ConfigOption, load
from orchestrator.errors import ConfigError, OrchestratorError

EXIT_CRASHED = 1


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_command(config: ConfigOption = None) -> None:
        """Run the daemon until SIGINT or SIGTERM (a second one forces the stop)."""
        import structlog

        from orchestrator.logs import configure_logging

        loaded = load(config)
        configure_logging(loaded.config.log.level, loaded.config.log.format)
        # From here on everything goes through the logger, so under journald
        # even a failure to start or a crash is one JSON line, not a traceback.
        log = structlog.get_logger("orchestrator.cli")
        # Said before the slow part (importing the modules' libraries, loading and
        # checking them, recovery), so the first seconds are not silent.
        settings = loaded.config
        log.info(
            "starting",
            config=loaded.label,
            instance=settings.instance,
            feed=settings.feed.kind,
            venue=settings.execution.venue,
            symbols=settings.all_symbols(),
            modules=len(settings.enabled_modules()),
            state_dir=str(settings.state_dir),
        )
        from orchestrator.daemon import Daemon

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
