"""Keeps the journal off the event path.

``JournalListener`` is an engine listener: on the event path it only puts
records on a queue. ``JournalWriter`` owns the SQLite connection in a
thread of its own and commits whatever has queued up in one transaction
(one fsync for many records). An order intent gets a future that resolves
when the transaction holding it has committed: a live adapter awaits it in
its own sending task before the HTTP call, so an intent is on disk before
the venue can hear of it, and the event path never waits for a disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from orchestrator.engine.listener import EngineListener
from orchestrator.journal.store import JournalRecord, OrderJournal, TradingStateRecord
from orchestrator.orders import Fill, OrderDenied, OrderIntent, OrderUpdate
from orchestrator.risk.state import TradingState
from orchestrator.signals import Decision

log = structlog.get_logger("orchestrator.journal")

_STOP = object()


class JournalWriteError(Exception):
    """A record could not be committed; an intent waiting on it must not be sent."""


class JournalWriter:
    """A thread that commits queued records to ``OrderJournal`` in batches."""

    def __init__(self, path: Path, *, batch_max: int = 512) -> None:
        self.path = path
        self.batch_max = batch_max
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._durable: dict[str, concurrent.futures.Future[None]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._journal: OrderJournal | None = None
        self.failures = 0
        self.committed = 0

    def start(self) -> None:
        """Open the file (raising ``JournalError`` if it cannot be) and start the thread."""
        if self._thread is not None:
            return
        self._journal = OrderJournal(self.path)
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then close."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(_STOP)
        thread.join(timeout)
        self._thread = None
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def put(self, record: JournalRecord) -> None:
        """Queue a record (cheap; called on the event path)."""
        if isinstance(record, OrderIntent):
            future: concurrent.futures.Future[None] = concurrent.futures.Future()
            with self._lock:
                self._durable[record.client_order_id] = future
            self._queue.put((record, future))
            return
        self._queue.put(record)

    async def wait_durable(self, intent: OrderIntent) -> None:
        """Return once ``intent`` is committed; raise ``JournalWriteError`` if it cannot be."""
        with self._lock:
            future = self._durable.get(intent.client_order_id)
        if future is None:
            # Queued before this writer existed or already committed and collected.
            if self._journal is None:
                raise JournalWriteError("the journal is not running")
            return
        try:
            await asyncio.wrap_future(future)
        finally:
            with self._lock:
                self._durable.pop(intent.client_order_id, None)

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything queued so far is committed (tests, shutdown, recovery)."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.put(done)
        done.result(timeout)

    def _run(self) -> None:
        journal = self._journal
        assert journal is not None
        stopping = False
        while not stopping:
            batch: list[object] = [self._queue.get()]
            while len(batch) < self.batch_max:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records: list[JournalRecord] = []
            intents: list[concurrent.futures.Future[None]] = []
            barriers: list[concurrent.futures.Future[None]] = []
            for item in batch:
                if item is _STOP:
                    stopping = True
                elif isinstance(item, tuple):
                    records.append(item[0])
                    intents.append(item[1])
                elif isinstance(item, concurrent.futures.Future):
                    barriers.append(item)
                else:
                    records.append(item)  # type: ignore[arg-type]
            error: Exception | None = None
            if records:
                error = self._commit(journal, records)
            for future in intents:
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(JournalWriteError(f"journal write failed: {error}"))
            for future in barriers:
                future.set_result(None)

    def _commit(self, journal: OrderJournal, records: list[JournalRecord]) -> Exception | None:
        for attempt in range(3):
            try:
                journal.apply(records)
                self.committed += len(records)
                return None
            except Exception as exc:  # noqa: BLE001 - a disk problem must not kill the writer thread
                if attempt == 2:
                    self.failures += 1
                    log.error("journal_write_failed", records=len(records), error=f"{type(exc).__name__}: {exc}")
                    return exc
                time.sleep(0.05 * (attempt + 1))
        return None  # pragma: no cover - the loop always returns


class JournalListener(EngineListener):
    """Feeds the engine's decisions, orders and fills to a ``JournalWriter``."""

    def __init__(self, writer: JournalWriter, *, record_decisions: bool = True, now_ms: Callable[[], int]) -> None:
        self.writer = writer
        self.record_decisions = record_decisions
        self.now_ms = now_ms

    def on_decision(self, decision: Decision) -> None:
        if self.record_decisions:
            self.writer.put(decision)

    def on_order_intent(self, intent: OrderIntent) -> None:
        self.writer.put(intent)

    def on_order_denied(self, denied: OrderDenied) -> None:
        self.writer.put(denied)

    def on_order_update(self, update: OrderUpdate) -> None:
        self.writer.put(update)

    def on_fill(self, fill: Fill) -> None:
        self.writer.put(fill)

    def on_trading_state(self, state: TradingState, reason: str) -> None:
        self.writer.put(TradingStateRecord(self.now_ms(), state, reason))
