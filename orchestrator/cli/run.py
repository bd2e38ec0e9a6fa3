"""``orchestrator run``: the daemon."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import typer

from orchestrator.cli.common import EXIT_USAGE, ConfigOption, load
from orchestrator.config.loader import LoadedConfig
from orchestrator.errors import ConfigError, OrchestratorError

EXIT_CRASHED = 1


def _under(path: Path, directory: Path) -> bool:
    path, directory = path.absolute(), directory.absolute()
    return path == directory or directory in path.parents


def os_problem(loaded: LoadedConfig, exc: OSError) -> str:
    """A file-system failure at start as one line naming the setting behind
    it (``state_dir`` cannot be created, is a file, is not writable...)."""
    config = loaded.config
    target = Path(str(exc.filename)) if exc.filename is not None else None
    journal = config.journal.resolve_path(config.state_dir)
    if target is not None and config.journal.path is not None and _under(journal, target):
        key = "journal.path"
    elif target is None or _under(target, config.state_dir) or _under(config.state_dir, target):
        key = "state_dir"
    else:
        key = "(start-up)"
    if isinstance(exc, FileExistsError):
        reason = "a file is in the way of the directory"
    elif isinstance(exc, NotADirectoryError):
        reason = "a part of the path is a file, not a directory"
    else:
        reason = exc.strerror or str(exc)
    return f"{loaded.label}: {key}: {reason}" + (f": {str(target)!r}" if target is not None else "")


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
        except OSError as exc:  # the state directory cannot be created, ...
            log.error("startup_failed", problems=[os_problem(loaded, exc)])
            sys.exit(EXIT_USAGE)
        from orchestrator.journal.store import JournalError

        try:
            code = asyncio.run(daemon.run())
        except OrchestratorError as exc:  # e.g. recovery could not reconcile a venue
            problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
            log.error("daemon_failed" if daemon.ready.is_set() else "startup_failed", problems=problems)
            sys.exit(EXIT_USAGE)
        except JournalError as exc:  # the journal file cannot be opened: a setting to fix
            key = "journal.path" if settings.journal.path is not None else "state_dir"
            log.error("startup_failed", problems=[f"{loaded.label}: {key}: {exc}"])
            sys.exit(EXIT_USAGE)
        except Exception:  # logged with its traceback as one line, then a failure status
            log.exception("daemon_crashed")
            sys.exit(EXIT_CRASHED)
        sys.exit(code)
