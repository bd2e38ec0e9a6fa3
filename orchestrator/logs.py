"""Logging with structlog: readable on a terminal, JSON lines elsewhere.

Under systemd stdout/stderr go to journald, so ``journalctl -u orchestrator
-o cat | jq`` works line by line: every line is one JSON object with
``event``, ``level``, ``timestamp`` (ISO 8601, UTC) and ``logger``, plus
``trace_id`` on events that concern a decision or an order. Records of the
standard ``logging`` module (asyncio, libraries) and Python warnings go
through the same renderer, and so do uncaught exceptions (a worker thread's
or one escaping the CLI's own handlers), so no plain-text traceback slips in
between: one would stop ``jq`` at that line.

"auto" means JSON when the stream is not a terminal or when
``$JOURNAL_STREAM`` says we run under systemd. When the stream is the
journal itself, each line starts with a ``<N>`` syslog priority, which
journald strips and stores as the entry's PRIORITY, so ``journalctl -p
warning`` filters by level while ``-o cat`` still shows bare JSON.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
from collections.abc import Mapping, MutableMapping
from types import TracebackType
from typing import Any, Literal, TextIO

import structlog

Level = Literal["debug", "info", "warning", "error"]
Format = Literal["auto", "console", "json"]

JOURNAL_STREAM_ENV = "JOURNAL_STREAM"
# sd-daemon(3) priorities: journald reads a leading "<N>" as the line's level.
LEADING_KEYS = ("timestamp", "level", "logger", "event")
SYSLOG_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2, "exception": 3}


def is_journal_stream(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` is the journald connection systemd gave us
    (``$JOURNAL_STREAM`` holds its ``device:inode``)."""
    value = (os.environ if env is None else env).get(JOURNAL_STREAM_ENV, "")
    device, _, inode = value.partition(":")
    try:
        stat = os.fstat(stream.fileno())
        return bool(value) and (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (OSError, ValueError, AttributeError):
        return False


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf": JSON has no literal for them and jq would reject the line
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


CONSOLE_SIGNIFICANT_DIGITS = 8


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.{CONSOLE_SIGNIFICANT_DIGITS}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_rounded(v) for v in value)
    return value


def console_floats(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Floats to 8 significant digits on a terminal: a fill quantity reads
    ``0.033333333``, not ``0.03333333333333333``. JSON keeps every digit."""
    return {key: _rounded(value) for key, value in event_dict.items()}


def json_ready(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Strict JSON (NaN and infinities become strings) with the keys a
    reader scans for first: timestamp, level, logger, event."""
    ordered = {key: event_dict.pop(key) for key in LEADING_KEYS if key in event_dict}
    ordered.update(event_dict)
    return {key: _finite(value) for key, value in ordered.items()}


class _PriorityPrefix:
    """Wraps a renderer to put journald's ``<N>`` priority in front of each line."""

    def __init__(self, renderer: structlog.typing.Processor) -> None:
        self.renderer = renderer

    def __call__(self, logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> str:
        priority = SYSLOG_PRIORITY.get(str(event_dict.get("level", "info")), 6)
        rendered = self.renderer(logger, name, event_dict)
        text = rendered.decode() if isinstance(rendered, bytes) else str(rendered)
        return f"<{priority}>{text}"


def _log_uncaught(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None, thread: str | None = None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    structlog.get_logger("orchestrator.uncaught").critical(
        "uncaught_exception", thread=thread, exc_info=(kind, value, traceback)
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return  # what threading's own hook ignores too
    name = args.thread.name if args.thread is not None else None
    _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback, name)


def configure_logging(level: Level = "info", fmt: Format = "auto", stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    under_systemd = bool(os.environ.get(JOURNAL_STREAM_ENV))
    use_console = fmt == "console" or (fmt == "auto" and stream.isatty() and not under_systemd)
    renderer: structlog.typing.Processor
    if use_console:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
        if is_journal_stream(stream):
            renderer = _PriorityPrefix(renderer)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    final: list[structlog.typing.Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if use_console:
        final.append(console_floats)
    else:
        final += [structlog.processors.format_exc_info, json_ready]
    final.append(renderer)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=final, foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()]
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    # watchfiles says "N changes detected" at INFO on every save; the hot-swap
    # watcher logs what it does about a change itself.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    if not use_console:  # a terminal keeps Python's readable tracebacks
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread
