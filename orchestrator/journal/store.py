"""``OrderJournal``: the SQLite file that remembers every order.

One table per kind of record (decisions, orders, order events, fills,
denials, trading states), keyed so that replaying a record is harmless:
fills are unique per (venue, fill id), an order row is created by its
intent and only moved forward afterwards (a terminal status never changes,
so a late poll cannot reopen a filled order). WAL mode lets the CLI read
while the daemon writes; ``synchronous=FULL`` makes a commit durable before
it returns, which is what lets an intent be recorded *before* it is sent.

The class is synchronous and not thread-safe: the daemon gives it to one
writer thread (``JournalWriter``); readers open their own instance.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from orchestrator.journal.records import (
    ExternalOrder,
    JournalFill,
    JournalOrder,
    JournalRecord,
    OrderCheck,
    TradingStateRecord,
)
from orchestrator.orders import Fill, OrderDenied, OrderIntent, OrderStatus, OrderUpdate, Side
from orchestrator.risk.state import TradingState
from orchestrator.signals import Decision

__all__ = [
    "ExternalOrder",
    "JournalError",
    "JournalFill",
    "JournalOrder",
    "JournalRecord",
    "OrderCheck",
    "OrderJournal",
    "TradingStateRecord",
]

SCHEMA_VERSION = 1
OPEN_STATUSES = (OrderStatus.PENDING.value, OrderStatus.OPEN.value, OrderStatus.PARTIALLY_FILLED.value)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    trace_id TEXT PRIMARY KEY, ts INTEGER NOT NULL, symbol TEXT NOT NULL, bucket TEXT NOT NULL,
    target REAL NOT NULL, confidence REAL NOT NULL, mu REAL NOT NULL, sigma REAL NOT NULL,
    method TEXT NOT NULL, regime TEXT, contributions TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, venue TEXT NOT NULL, symbol TEXT NOT NULL,
    side TEXT NOT NULL, quantity REAL NOT NULL, order_type TEXT NOT NULL, limit_price REAL,
    reduce_only INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL, filled_quantity REAL NOT NULL DEFAULT 0,
    average_price REAL, venue_order_id TEXT, reason TEXT, created_ts INTEGER NOT NULL, updated_ts INTEGER NOT NULL,
    external INTEGER NOT NULL DEFAULT 0, checks INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS orders_trace ON orders (trace_id);
CREATE INDEX IF NOT EXISTS orders_symbol ON orders (symbol, created_ts);
CREATE INDEX IF NOT EXISTS orders_status ON orders (status);
CREATE TABLE IF NOT EXISTS order_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, client_order_id TEXT NOT NULL, trace_id TEXT NOT NULL,
    ts INTEGER NOT NULL, status TEXT NOT NULL, filled_quantity REAL NOT NULL, average_price REAL, reason TEXT
);
CREATE INDEX IF NOT EXISTS order_events_order ON order_events (client_order_id);
CREATE TABLE IF NOT EXISTS fills (
    venue TEXT NOT NULL, fill_id TEXT NOT NULL, client_order_id TEXT NOT NULL, trace_id TEXT NOT NULL,
    ts INTEGER NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, quantity REAL NOT NULL, price REAL NOT NULL,
    fee REAL NOT NULL, fee_currency TEXT NOT NULL, liquidity TEXT NOT NULL, PRIMARY KEY (venue, fill_id)
);
CREATE INDEX IF NOT EXISTS fills_trace ON fills (trace_id);
CREATE INDEX IF NOT EXISTS fills_order ON fills (client_order_id);
CREATE INDEX IF NOT EXISTS fills_symbol ON fills (symbol, ts);
CREATE TABLE IF NOT EXISTS denials (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, trace_id TEXT NOT NULL, ts INTEGER NOT NULL, symbol TEXT NOT NULL,
    side TEXT NOT NULL, quantity REAL NOT NULL, reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS denials_trace ON denials (trace_id);
CREATE TABLE IF NOT EXISTS trading_states (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL
);
"""


class JournalError(Exception):
    """The journal file cannot be opened or written."""


class OrderJournal:
    """One connection to the journal file."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        if not create and not path.exists():
            raise JournalError(f"{path}: no journal here (has the daemon run with this state_dir?)")
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are explicit (BEGIN/COMMIT in ``apply``).
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            if create:
                self._db.executescript(_SCHEMA)
                self._db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(f"{path}: cannot open the journal: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------ writing

    def apply(self, records: Iterable[JournalRecord]) -> None:
        """Write records in one transaction: all of them or, on error, none."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for record in records:
                self._apply_one(record)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _apply_one(self, record: JournalRecord) -> None:
        db = self._db
        if isinstance(record, OrderUpdate):
            self._update(record)
        elif isinstance(record, Fill):
            db.execute(
                "INSERT OR IGNORE INTO fills VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.venue,
                    record.fill_id,
                    record.client_order_id,
                    record.trace_id,
                    record.ts,
                    record.symbol,
                    record.side.value,
                    record.quantity,
                    record.price,
                    record.fee,
                    record.fee_currency,
                    record.liquidity,
                ),
            )
        elif isinstance(record, OrderIntent):
            db.execute(
                "INSERT OR IGNORE INTO orders (client_order_id, trace_id, venue, symbol, side, quantity, order_type,"
                " limit_price, reduce_only, status, created_ts, updated_ts) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.client_order_id,
                    record.trace_id,
                    record.venue,
                    record.symbol,
                    record.side.value,
                    record.quantity,
                    record.order_type.value,
                    record.limit_price,
                    int(record.reduce_only),
                    OrderStatus.PENDING.value,
                    record.ts,
                    record.ts,
                ),
            )
            self._event(
                record.client_order_id, record.trace_id, record.ts, (OrderStatus.PENDING.value, 0.0, None, None)
            )
        elif isinstance(record, Decision):
            db.execute(
                "INSERT OR IGNORE INTO decisions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.trace_id,
                    record.ts,
                    record.symbol,
                    record.bucket,
                    record.target,
                    record.confidence,
                    record.mu,
                    record.sigma,
                    record.method,
                    record.regime,
                    json.dumps(dict(record.contributions), allow_nan=True),
                ),
            )
        elif isinstance(record, OrderDenied):
            db.execute(
                "INSERT INTO denials (trace_id, ts, symbol, side, quantity, reason) VALUES (?,?,?,?,?,?)",
                (record.trace_id, record.ts, record.symbol, record.side.value, record.quantity, record.reason),
            )
        elif isinstance(record, TradingStateRecord):
            db.execute(
                "INSERT INTO trading_states (ts, state, reason) VALUES (?,?,?)",
                (record.ts, record.state.value, record.reason),
            )
        elif isinstance(record, ExternalOrder):
            update = record.update
            db.execute(
                "INSERT OR IGNORE INTO orders (client_order_id, trace_id, venue, symbol, side, quantity, order_type,"
                " status, filled_quantity, average_price, venue_order_id, reason, created_ts, updated_ts, external)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,1)",
                (
                    update.client_order_id,
                    update.trace_id,
                    update.venue,
                    update.symbol,
                    update.side.value,
                    update.quantity,
                    "unknown",
                    update.status.value,
                    update.filled_quantity,
                    update.average_price,
                    update.venue_order_id,
                    update.reason or "external: not placed by this daemon",
                    record.ts,
                    record.ts,
                ),
            )
        else:
            status = OrderStatus.LOST.value if record.lost else None
            db.execute(
                "UPDATE orders SET checks = checks + 1, updated_ts = ?, status = COALESCE(?, status),"
                " reason = ? WHERE client_order_id = ? AND status IN (?,?,?)",
                (record.ts, status, record.reason, record.client_order_id, *OPEN_STATUSES),
            )
            if record.lost:
                row = db.execute(
                    "SELECT trace_id, filled_quantity FROM orders WHERE client_order_id = ?", (record.client_order_id,)
                ).fetchone()
                if row is not None:
                    self._event(record.client_order_id, row[0], record.ts, (status or "", row[1], None, record.reason))

    def _update(self, update: OrderUpdate) -> None:
        # Only an open order moves; a terminal one keeps its final state.
        cursor = self._db.execute(
            "UPDATE orders SET status = ?, filled_quantity = MAX(filled_quantity, ?),"
            " average_price = COALESCE(?, average_price), venue_order_id = COALESCE(?, venue_order_id),"
            " reason = COALESCE(?, reason), updated_ts = ? WHERE client_order_id = ? AND status IN (?,?,?)",
            (
                update.status.value,
                update.filled_quantity,
                update.average_price,
                update.venue_order_id,
                update.reason,
                update.ts,
                update.client_order_id,
                *OPEN_STATUSES,
            ),
        )
        if cursor.rowcount:
            self._event(
                update.client_order_id,
                update.trace_id,
                update.ts,
                (update.status.value, update.filled_quantity, update.average_price, update.reason),
            )

    def _event(
        self,
        client_order_id: str,
        trace_id: str,
        ts: int,
        state: tuple[str, float, float | None, str | None],
    ) -> None:
        status, filled, average, reason = state
        self._db.execute(
            "INSERT INTO order_events (client_order_id, trace_id, ts, status, filled_quantity, average_price, reason)"
            " VALUES (?,?,?,?,?,?,?)",
            (client_order_id, trace_id, ts, status, filled, average, reason),
        )

    # ------------------------------------------------------------ reading

    def orders(
        self,
        *,
        symbol: str | None = None,
        trace_id: str | None = None,
        venue: str | None = None,
        open_only: bool = False,
        since_ms: int | None = None,
        limit: int = 50,
    ) -> list[JournalOrder]:
        """Most recent first."""
        where, args = _filters(symbol=symbol, trace_id=trace_id, venue=venue)
        if open_only:
            where.append("status IN (?,?,?)")
            args.extend(OPEN_STATUSES)
        if since_ms is not None:
            where.append("created_ts >= ?")
            args.append(since_ms)
        sql = "SELECT * FROM orders" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created_ts DESC, rowid DESC LIMIT ?"
        return [_order(row) for row in self._db.execute(sql, (*args, limit))]

    def order(self, client_order_id: str) -> JournalOrder | None:
        row = self._db.execute("SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)).fetchone()
        return None if row is None else _order(row)

    def fills(
        self,
        *,
        symbol: str | None = None,
        trace_id: str | None = None,
        client_order_id: str | None = None,
        venue: str | None = None,
        limit: int = 50,
    ) -> list[JournalFill]:
        """Most recent first."""
        where, args = _filters(symbol=symbol, trace_id=trace_id, venue=venue, client_order_id=client_order_id)
        sql = "SELECT * FROM fills" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY ts DESC, rowid DESC LIMIT ?"
        return [_fill(row) for row in self._db.execute(sql, (*args, limit))]

    def fill_ids(self, venue: str, client_order_id: str) -> set[str]:
        rows = self._db.execute(
            "SELECT fill_id FROM fills WHERE venue = ? AND client_order_id = ?", (venue, client_order_id)
        )
        return {row[0] for row in rows}

    def denials(self, *, symbol: str | None = None, trace_id: str | None = None, limit: int = 50) -> list[OrderDenied]:
        where, args = _filters(symbol=symbol, trace_id=trace_id)
        sql = "SELECT trace_id, ts, symbol, side, quantity, reason FROM denials"
        sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq DESC LIMIT ?"
        return [
            OrderDenied(row[0], row[1], row[2], Side(row[3]), row[4], row[5])
            for row in self._db.execute(sql, (*args, limit))
        ]

    def trading_states(self, limit: int = 20) -> list[TradingStateRecord]:
        rows = self._db.execute("SELECT ts, state, reason FROM trading_states ORDER BY seq DESC LIMIT ?", (limit,))
        return [TradingStateRecord(row[0], TradingState(row[1]), row[2]) for row in rows]

    def counts(self) -> dict[str, int]:
        tables = ("decisions", "orders", "order_events", "fills", "denials", "trading_states")
        return {table: int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]) for table in tables}


def _filters(**columns: str | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    for column, value in columns.items():
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    return where, args


def _order(row: Sequence[Any]) -> JournalOrder:
    return JournalOrder(
        client_order_id=row[0],
        trace_id=row[1],
        venue=row[2],
        symbol=row[3],
        side=Side(row[4]),
        quantity=row[5],
        order_type=row[6],
        limit_price=row[7],
        reduce_only=bool(row[8]),
        status=OrderStatus(row[9]),
        filled_quantity=row[10],
        average_price=row[11],
        venue_order_id=row[12],
        reason=row[13],
        created_ts=row[14],
        updated_ts=row[15],
        external=bool(row[16]),
        checks=row[17],
    )


def _fill(row: Sequence[Any]) -> JournalFill:
    return JournalFill(
        venue=row[0],
        fill_id=row[1],
        client_order_id=row[2],
        trace_id=row[3],
        ts=row[4],
        symbol=row[5],
        side=Side(row[6]),
        quantity=row[7],
        price=row[8],
        fee=row[9],
        fee_currency=row[10],
        liquidity=row[11],
    )
