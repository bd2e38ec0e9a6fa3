"""Recovery at start: the daemon reconciles its journal with the venue (the loopback double)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from orchestrator.config.loader import load_config
from orchestrator.daemon import Daemon
from orchestrator.errors import ConfigError
from orchestrator.execution.ccxt.double import BinanceDouble, Fault
from orchestrator.execution.recovery import RecoveryError
from orchestrator.journal.store import OrderJournal
from orchestrator.orders import OrderIntent, OrderStatus, OrderType, Side
from orchestrator.risk.state import TradingState
from orchestrator.risk.store import RiskStateStore, SavedRiskState


def journal_intent(path: Path, client_order_id: str, **kwargs: object) -> None:
    fields: dict[str, object] = {
        "client_order_id": client_order_id,
        "trace_id": client_order_id + "-trace",
        "ts": int(time.time() * 1000) - 5_000,
        "venue": "binance",
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "quantity": 0.1,
    }
    fields.update(kwargs)
    journal = OrderJournal(path)
    journal.apply([OrderIntent(**fields)])  # type: ignore[arg-type]
    journal.close()


async def start(daemon: Daemon) -> asyncio.Task[int]:
    task = asyncio.create_task(daemon.run())
    ready = asyncio.create_task(daemon.ready.wait())
    await asyncio.wait({task, ready}, timeout=30.0, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if task.done():
        task.result()  # raises what stopped the daemon
    assert daemon.ready.is_set()
    return task


async def stop(daemon: Daemon, task: asyncio.Task[int]) -> None:
    daemon.request_stop("test")
    await asyncio.wait_for(task, 30.0)


async def test_recovery_resumes_closes_loses_and_flags_external(
    binance_double: BinanceDouble, live_profile, venue_keys
) -> None:
    profile = live_profile(target=0.0)
    loaded = load_config(profile)
    journal_path = loaded.config.state_dir / "journal.sqlite"
    double = binance_double
    # A previous run: three intents journaled; the venue took two of them, and someone else placed one.
    double.create(
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.1", "newClientOrderId": "ofilled1n0"}
    )
    double.create(
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "0.1",
            "price": "40000",
            "newClientOrderId": "oresting1n0",
        }
    )
    double.create(
        {
            "symbol": "BTCUSDT",
            "side": "SELL",
            "type": "LIMIT",
            "quantity": "0.05",
            "price": "60000",
            "newClientOrderId": "byhand",
        }
    )
    journal_intent(journal_path, "ofilled1n0")
    journal_intent(journal_path, "oresting1n0", order_type=OrderType.LIMIT, limit_price=40_000.0)
    journal_intent(journal_path, "onever1n0")

    daemon = Daemon(loaded)
    task = await start(daemon)
    try:
        report = daemon.execution.recovery.report  # type: ignore[union-attr]
        assert report is not None
        assert report.closed == ["ofilled1n0"]
        assert report.resumed == ["oresting1n0"]
        assert report.lost == ["onever1n0"]
        assert report.external == ["byhand"]
        engine = daemon.engine
        assert engine.pending_quantity("BTC/USDT") == pytest.approx(0.1)  # the resting buy
        assert engine.portfolio.cash == pytest.approx(double.balances["USDT"])
        assert engine.portfolio.position("BTC/USDT") == pytest.approx(0.1)
        # The resumed order is followed again: cancel it through the core.
        assert engine.cancel_all_orders() == 1
        deadline = time.monotonic() + 10
        while engine.open_order_count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await stop(daemon, task)
    journal = OrderJournal(journal_path)
    orders = {o.client_order_id: o for o in journal.orders(limit=10)}
    assert orders["ofilled1n0"].status is OrderStatus.FILLED
    assert orders["ofilled1n0"].filled_quantity == pytest.approx(0.1)
    assert [f.quantity for f in journal.fills(client_order_id="ofilled1n0")] == [pytest.approx(0.1)]
    assert orders["oresting1n0"].status is OrderStatus.CANCELED
    assert orders["onever1n0"].status is OrderStatus.LOST
    assert orders["onever1n0"].checks == 2
    assert orders["byhand"].external
    assert len(double.orders) == 3  # recovery never sends an order


async def test_recovery_counts_checks_across_restarts(binance_double, live_profile, venue_keys) -> None:
    loaded = load_config(live_profile(target=0.0))
    journal_path = loaded.config.state_dir / "journal.sqlite"
    journal_intent(journal_path, "olate1n0")
    journal = OrderJournal(journal_path)
    from orchestrator.journal.store import OrderCheck

    journal.apply([OrderCheck("olate1n0", 1, lost=False, reason="checked before the crash")])
    journal.close()
    daemon = Daemon(loaded)
    task = await start(daemon)
    try:
        assert daemon.execution.recovery.report.lost == ["olate1n0"]  # type: ignore[union-attr]
    finally:
        await stop(daemon, task)
    assert OrderJournal(journal_path).order("olate1n0").checks == 2  # type: ignore[union-attr]


async def test_daemon_refuses_to_start_when_recovery_fails(binance_double, live_profile, venue_keys) -> None:
    loaded = load_config(live_profile(target=1.0))
    journal_intent(loaded.config.state_dir / "journal.sqlite", "oopen1n0")
    binance_double.inject(Fault("GET", "/api/v3/order", "http", status=503, count=1000))
    daemon = Daemon(loaded)
    with pytest.raises(RecoveryError, match="recovery: venue binance"):
        await daemon.run()
    assert not daemon.ready.is_set()
    assert binance_double.count("POST", "/api/v3/order") == 0


def test_live_venue_needs_keys_only_at_run_time(live_profile, monkeypatch) -> None:
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("BINANCE_SECRET", raising=False)
    loaded = load_config(live_profile())  # the profile itself is valid without keys
    with pytest.raises(ConfigError) as raised:
        Daemon(loaded)
    assert "BINANCE_API_KEY" in str(raised.value)
    assert "BINANCE_SECRET" in str(raised.value)


async def test_restart_while_halted_stays_halted_and_cancels_resumed_orders(
    binance_double: BinanceDouble, live_profile, venue_keys
) -> None:
    # Halted, then killed before the halt's cancel reached the venue: the order still rests there.
    loaded = load_config(live_profile(target=1.0))
    state_dir = loaded.config.state_dir
    RiskStateStore(state_dir).save(SavedRiskState(TradingState.HALTED, "kill switch: drawdown", 1))
    binance_double.create(
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "0.1",
            "price": "40000",
            "newClientOrderId": "oresting1n0",
        }
    )
    journal_intent(state_dir / "journal.sqlite", "oresting1n0", order_type=OrderType.LIMIT, limit_price=40_000.0)
    daemon = Daemon(loaded)
    task = await start(daemon)
    try:
        assert daemon.engine.risk.state is TradingState.HALTED
        assert daemon.execution.recovery.report.resumed == ["oresting1n0"]  # type: ignore[union-attr]
        deadline = time.monotonic() + 10
        while binance_double.orders_with("oresting1n0")[0].status != "CANCELED" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        # Canceled at start, not by the shutdown (which cancels open orders too).
        assert binance_double.orders_with("oresting1n0")[0].status == "CANCELED"
        # Target 1.0 wants a position, but a halted daemon sends nothing.
        await asyncio.sleep(0.5)
    finally:
        await stop(daemon, task)
    assert binance_double.count("POST", "/api/v3/order") == 0
    assert RiskStateStore(state_dir).load().state is TradingState.HALTED  # type: ignore[union-attr]
    journal = OrderJournal(state_dir / "journal.sqlite")
    assert journal.order("oresting1n0").status is OrderStatus.CANCELED  # type: ignore[union-attr]
    assert journal.denials(limit=5)  # the decisions it did make were denied, with reasons
    assert journal.denials(limit=1)[0].reason == "trading state HALTED: no new orders"
