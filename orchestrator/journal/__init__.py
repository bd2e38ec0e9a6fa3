"""The order journal: every decision, intent, order state change and fill
in an embedded SQLite database (WAL) in the state directory.

The names below are imported on first use: the configuration models import
``orchestrator.journal.config`` (and so this package) for every command,
``orchestrator --help`` included, which has no use for the writer, the
store or structlog.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.journal.config import JournalConfig
    from orchestrator.journal.store import JournalFill, JournalOrder, OrderJournal
    from orchestrator.journal.writer import JournalListener, JournalWriter

_HOME = {
    "JournalConfig": "orchestrator.journal.config",
    "JournalFill": "orchestrator.journal.store",
    "JournalOrder": "orchestrator.journal.store",
    "OrderJournal": "orchestrator.journal.store",
    "JournalListener": "orchestrator.journal.writer",
    "JournalWriter": "orchestrator.journal.writer",
}

__all__ = ["JournalConfig", "JournalFill", "JournalListener", "JournalOrder", "JournalWriter", "OrderJournal"]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once: later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
