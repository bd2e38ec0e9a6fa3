"""The order journal on a real SQLite file: records, queries, the writer thread, the CLI."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.journal.store import ExternalOrder, OrderCheck, OrderJournal, TradingStateRecord
from orchestrator.journal.writer import JournalListener, JournalWriteError, JournalWriter
from orchestrator.orders import Fill, OrderDenied, OrderIntent, OrderStatus, OrderUpdate, Side
from orchestrator.risk.state import TradingState
from orchestrator.signals import Decision


def intent(cid: str, trace: str, symbol: str = "BTC/USDT", ts: int = 1_000) -> OrderIntent:
    return OrderIntent(cid, trace, ts, "paper", symbol, Side.BUY, 1.5)


def update(cid: str, trace: str, status: OrderStatus, filled: float = 0.0, ts: int = 2_000) -> OrderUpdate:
    return OrderUpdate(cid, trace, ts, "paper", "BTC/USDT", Side.BUY, 1.5, status, filled, 100.0 if filled else None)


def fill(cid: str, trace: str, fill_id: str, quantity: float) -> Fill:
    return Fill(fill_id, cid, trace, 3_000, "paper", "BTC/USDT", Side.BUY, quantity, 100.0, 0.1, "USDT")


def test_records_and_queries(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "j.sqlite")
    decision = Decision("r-1", 900, "BTC/USDT", "default", 0.5, 0.8, 0.001, 0.01, "confidence", {"m": 0.5})
    journal.apply([decision, intent("or1n0", "r-1"), intent("or2n0", "r-2", symbol="ETH/USDT", ts=1_100)])
    journal.apply([update("or1n0", "r-1", OrderStatus.OPEN), fill("or1n0", "r-1", "f1", 1.0)])
    journal.apply([fill("or1n0", "r-1", "f1", 1.0), fill("or1n0", "r-1", "f2", 0.5)])  # f1 again: ignored
    journal.apply([update("or1n0", "r-1", OrderStatus.FILLED, 1.5, ts=4_000)])
    journal.apply([update("or1n0", "r-1", OrderStatus.OPEN, 0.5, ts=5_000)])  # late poll: must not reopen
    journal.apply([OrderDenied("r-3", 1_200, "BTC/USDT", Side.SELL, 2.0, "position limit")])
    journal.apply([TradingStateRecord(1_300, TradingState.HALTED, "kill switch")])

    order = journal.order("or1n0")
    assert order is not None
    assert order.status is OrderStatus.FILLED
    assert order.filled_quantity == 1.5
    assert order.intent() == intent("or1n0", "r-1")
    assert [f.fill_id for f in journal.fills(trace_id="r-1")] == ["f2", "f1"]
    assert [o.client_order_id for o in journal.orders()] == ["or2n0", "or1n0"]
    assert [o.client_order_id for o in journal.orders(symbol="ETH/USDT")] == ["or2n0"]
    assert [o.client_order_id for o in journal.orders(open_only=True)] == ["or2n0"]
    assert [d.reason for d in journal.denials(symbol="BTC/USDT")] == ["position limit"]
    assert journal.trading_states()[0].state is TradingState.HALTED
    assert journal.counts() == {
        "decisions": 1,
        "orders": 2,
        "order_events": 4,
        "fills": 2,
        "denials": 1,
        "trading_states": 1,
    }
    journal.close()


def test_lost_and_external_orders(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "j.sqlite")
    journal.apply([intent("ox1n0", "x-1")])
    journal.apply([OrderCheck("ox1n0", 10, lost=False, reason="not found")])
    journal.apply([OrderCheck("ox1n0", 20, lost=True, reason="gave up")])
    lost = journal.order("ox1n0")
    assert lost is not None
    assert lost.status is OrderStatus.LOST
    assert lost.checks == 2
    external = update("manual", "external", OrderStatus.OPEN)
    journal.apply([ExternalOrder(external, 30)])
    row = journal.order("manual")
    assert row is not None
    assert row.external
    journal.close()


def test_a_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "j.sqlite")
    with pytest.raises(AttributeError):
        journal.apply([intent("oa1n0", "a-1"), object()])  # type: ignore[list-item]
    assert journal.order("oa1n0") is None
    journal.close()


async def test_intent_is_on_disk_when_wait_durable_returns(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    writer = JournalWriter(path)
    writer.start()
    try:
        listener = JournalListener(writer, now_ms=lambda: 0)
        order = intent("od1n0", "d-1")
        listener.on_order_intent(order)
        await writer.wait_durable(order)
        # another connection (another process would do the same) sees it committed
        row = sqlite3.connect(path).execute("SELECT status FROM orders WHERE client_order_id='od1n0'").fetchone()
        assert row == ("pending",)
        listener.on_fill(fill("od1n0", "d-1", "f1", 1.5))
        listener.on_order_update(update("od1n0", "d-1", OrderStatus.FILLED, 1.5))
        await asyncio.to_thread(writer.flush)
        assert OrderJournal(path).order("od1n0").status is OrderStatus.FILLED  # type: ignore[union-attr]
    finally:
        writer.stop()


async def test_intent_that_cannot_be_written_is_reported(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path / "j.sqlite")
    writer.start()
    try:
        assert writer._journal is not None
        writer._journal.close()  # the disk goes away under the writer
        order = intent("oe1n0", "e-1")
        writer.put(order)
        with pytest.raises(JournalWriteError):
            await asyncio.wait_for(writer.wait_durable(order), 10.0)
        assert writer.failures == 1
    finally:
        writer.stop()


def test_cli_lists_and_filters(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = OrderJournal(path)
    journal.apply([intent("oc1n0", "c-1"), intent("oc2n0", "c-2", symbol="ETH/USDT"), fill("oc1n0", "c-1", "f", 1.0)])
    journal.close()
    runner = CliRunner()
    result = runner.invoke(app, ["journal", "--path", str(path), "--json", "--trace", "c-1"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert [o["client_order_id"] for o in payload["orders"]] == ["oc1n0"]
    assert [f["fill_id"] for f in payload["fills"]] == ["f"]
    result = runner.invoke(app, ["journal", "--path", str(path), "--symbol", "ETH/USDT"])
    assert result.exit_code == 0
    assert "oc2n0" in result.output
    assert "oc1n0" not in result.output


def test_cli_without_a_journal_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["journal", "--path", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 2
    assert "no journal here" in result.output


def test_journal_is_sqlite_in_wal_mode_and_readable_while_written(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    writer = JournalWriter(path)
    writer.start()
    try:
        writer.put(intent("ow1n0", "w-1"))
        writer.flush()
        outside = sqlite3.connect(path)
        assert outside.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # A write transaction held open (the daemon mid-batch) does not block a reader (the CLI).
        outside.execute("BEGIN IMMEDIATE")
        outside.execute("UPDATE orders SET status = 'open'")
        result = CliRunner().invoke(app, ["journal", "--path", str(path), "--json"])
        outside.execute("ROLLBACK")
        outside.close()
    finally:
        writer.stop()
    assert result.exit_code == 0, result.output
    assert [o["status"] for o in json.loads(result.output)["orders"]] == ["pending"]


def test_cli_on_a_database_that_is_no_journal_says_so(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    result = CliRunner().invoke(app, ["journal", "--path", str(path)])
    assert result.exit_code == 2
    assert "not an order journal" in result.output
    assert "Traceback" not in result.output


def test_the_journal_package_loads_its_writer_and_store_on_first_use() -> None:
    probe = (
        "import sys, orchestrator.cli, orchestrator.config.models\n"
        "print(sorted(m for m in ('orchestrator.journal.writer', 'orchestrator.journal.store') if m in sys.modules))\n"
        "from orchestrator.journal import JournalWriter, OrderJournal\n"
        "import orchestrator.journal.writer as writer\n"
        "print(JournalWriter is writer.JournalWriter, OrderJournal.__module__)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.splitlines() == ["[]", "True orchestrator.journal.store"]
