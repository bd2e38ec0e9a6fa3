"""The order journal: every decision, intent, order state change and fill
in an embedded SQLite database (WAL) in the state directory."""

from orchestrator.journal.config import JournalConfig
from orchestrator.journal.store import JournalFill, JournalOrder, OrderJournal
from orchestrator.journal.writer import JournalListener, JournalWriter

__all__ = ["JournalConfig", "JournalFill", "JournalListener", "JournalOrder", "JournalWriter", "OrderJournal"]
