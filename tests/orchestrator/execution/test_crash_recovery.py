"""kill -9 between the journaled intent and the venue's acknowledgement, then restart.

A real daemon subprocess trades on the loopback Binance double (served by a
thread of this test process). The double accepts the order and then stalls
instead of answering; the test checks that the intent is on disk, kills the
daemon with SIGKILL, restarts it and expects exactly one order at the venue
and a journal that agrees.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from orchestrator.execution.ccxt.double import BinanceDouble, Fault
from orchestrator.journal.store import OrderJournal
from orchestrator.orders import OrderStatus

pytestmark = pytest.mark.slow


class DaemonProcess:
    """``orchestrator run`` in a subprocess, its JSON log lines collected."""

    def __init__(self, profile: Path, env: dict[str, str]) -> None:
        self.lines: list[dict[str, object]] = []
        self.raw: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "run", "-c", str(profile)],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.raw.append(line)
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                continue

    def wait_for(self, event: str, timeout: float = 30.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if line.get("event") == event:
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no {event!r} from the daemon; output:\n{''.join(self.raw)[-4000:]}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self._reader.join(5)
        return code


def decisions(path: Path) -> int:
    journal = OrderJournal(path, create=False)
    try:
        return journal.counts()["decisions"]
    finally:
        journal.close()


def test_kill_between_intent_and_ack_leaves_exactly_one_order(
    binance_double: BinanceDouble, live_profile, venue_keys, tmp_path: Path
) -> None:
    double = binance_double
    profile = live_profile(target=1.0)
    journal_path = tmp_path / "state" / "journal.sqlite"
    double.inject(Fault("POST", "/api/v3/order", "stall_after_accept"))

    first = DaemonProcess(profile, venue_keys)
    try:
        first.wait_for("ready")
        assert double.accepted.wait(30.0), "the daemon never sent its order"
        # The venue holds the order; the daemon has not heard back. The intent is on disk already.
        journal = OrderJournal(journal_path, create=False)
        pending = journal.orders(limit=10)
        journal.close()
        assert [o.status for o in pending] == [OrderStatus.PENDING]
        client_order_id = pending[0].client_order_id
        assert [o.client_order_id for o in double.orders] == [client_order_id]
        first.process.send_signal(signal.SIGKILL)
        assert first.process.wait(30) == -signal.SIGKILL
    finally:
        if first.process.poll() is None:
            first.process.kill()
        double.release.set()

    second = DaemonProcess(profile, venue_keys)
    try:
        recovered = second.wait_for("recovered")
        assert recovered["closed"] == 1
        assert recovered["lost"] == 0
        second.wait_for("ready")
        # Let it trade on (about five bars a second): the target is already held, so no order may go out.
        deadline = time.monotonic() + 30
        while decisions(journal_path) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        code = second.stop()
    assert code == 0, "".join(second.raw)[-3000:]
    assert [o.client_order_id for o in double.orders] == [client_order_id]
    assert double.count("POST", "/api/v3/order") == 1
    journal = OrderJournal(journal_path, create=False)
    orders = journal.orders(limit=10)
    fills = journal.fills(limit=10)
    journal.close()
    assert [(o.client_order_id, o.status) for o in orders] == [(client_order_id, OrderStatus.FILLED)]
    venue_order = double.orders[0]
    assert orders[0].filled_quantity == pytest.approx(venue_order.executed)
    assert orders[0].venue_order_id == str(venue_order.order_id)
    assert len(fills) == 1
    assert fills[0].quantity == pytest.approx(venue_order.executed)
    assert not any(line.get("event") == "order_intent" for line in second.lines)
    assert decisions(journal_path) >= 2  # the restarted daemon did decide, and held its position


def test_daemon_that_cannot_reconcile_exits_with_one_line(
    binance_double: BinanceDouble, live_profile, venue_keys, tmp_path: Path
) -> None:
    profile = live_profile(target=1.0)
    journal = OrderJournal(tmp_path / "state" / "journal.sqlite")
    from orchestrator.orders import OrderIntent, Side

    journal.apply([OrderIntent("oopen1n0", "open-1", 1, "binance", "BTC/USDT", Side.BUY, 0.1)])
    journal.close()
    binance_double.inject(
        Fault(
            "GET",
            "/api/v3/order",
            "http",
            status=401,
            count=100,
            body={"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
        )
    )
    daemon = DaemonProcess(profile, venue_keys)
    code = daemon.process.wait(60)
    daemon._reader.join(5)
    assert code == 2
    last = daemon.lines[-1]  # one JSON line (journald): the reason, at error level
    assert last["event"] == "startup_failed"
    assert last["level"] == "error"
    (problem,) = last["problems"]
    assert problem.startswith("recovery: venue binance: ")
    assert "AuthenticationError" in problem
    assert daemon.raw[-1].startswith("{")
    assert not any(line.get("event") == "ready" for line in daemon.lines)
    assert binance_double.count("POST", "/api/v3/order") == 0


def test_testnet_profile_passes_check_config_without_keys(monkeypatch) -> None:
    from orchestrator.config.loader import load_config
    from orchestrator.engine.plan import plan_run

    for variable in ("BINANCE_TESTNET_API_KEY", "BINANCE_TESTNET_SECRET"):
        monkeypatch.delenv(variable, raising=False)
    plan = plan_run(load_config(Path(__file__).parents[3] / "config" / "testnet.yaml"))
    venue = plan.config.execution.live_venues()["binance"]
    assert venue.sandbox
    assert venue.env_names("binance")[:2] == ("BINANCE_TESTNET_API_KEY", "BINANCE_TESTNET_SECRET")
