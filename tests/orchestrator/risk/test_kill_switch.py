"""The kill switch and the persisted trading state (a halted daemon restarts halted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config.loader import LoadedConfig, load_config, validate_config
from orchestrator.daemon import Daemon
from orchestrator.orders import OrderDenied, OrderStatus, OrderUpdate, Side
from orchestrator.risk.config import KillSwitchConfig
from orchestrator.risk.engine import AccountView
from orchestrator.risk.kill_switch import KillSwitch
from orchestrator.risk.state import TradingState
from orchestrator.risk.store import RiskStateStore
from orchestrator.signals import Decision

DAY = 86_400_000


def test_drawdown_from_peak_trips() -> None:
    switch = KillSwitch(KillSwitchConfig(max_drawdown=0.1, max_daily_loss=None))
    assert switch.observe_equity(100.0, 0) is None
    assert switch.observe_equity(120.0, 1) is None
    assert switch.observe_equity(108.5, 2) is None
    reason = switch.observe_equity(107.0, 3)
    assert reason is not None
    assert reason.startswith("kill switch: drawdown 10.83% from peak 120.00")


def test_daily_loss_is_measured_from_the_utc_day_start() -> None:
    switch = KillSwitch(KillSwitchConfig(max_drawdown=None, max_daily_loss=0.05))
    assert switch.observe_equity(100.0, DAY + 10) is None
    assert switch.observe_equity(96.0, DAY + 20) is None
    assert switch.observe_equity(94.0, DAY + 30) is not None
    # a new day starts from its first equity
    assert switch.observe_equity(94.0, 2 * DAY + 1) is None
    assert switch.day_start_equity == 94.0


def test_error_rate_trips_within_the_window_only() -> None:
    switch = KillSwitch(KillSwitchConfig(max_errors=3, error_window_s=10.0))
    assert switch.observe_error(0) is None
    assert switch.observe_error(1_000) is None
    assert switch.observe_error(20_000) is None  # the first two aged out
    assert switch.observe_error(21_000) is None
    assert switch.observe_error(22_000) == "kill switch: 3 order errors within 10 s > max_errors"


def paper_profile(tmp_path: Path) -> LoadedConfig:
    loaded = load_config(Path(__file__).parents[3] / "config" / "default.yaml")
    raw = dict(loaded.raw)
    raw["state_dir"] = str(tmp_path / "state")
    return LoadedConfig(validate_config(raw, label="test"), None, raw)


def test_restart_while_halted_stays_halted(tmp_path: Path) -> None:
    daemon = Daemon(paper_profile(tmp_path))
    assert daemon.engine.risk.state is TradingState.ACTIVE
    result = daemon.control.halt("operator test")
    assert result.ok
    saved = RiskStateStore(tmp_path / "state").load()
    assert saved is not None
    assert saved.state is TradingState.HALTED
    assert saved.reason == "operator test"

    restarted = Daemon(paper_profile(tmp_path))
    assert restarted.engine.risk.state is TradingState.HALTED
    decision = Decision("x-1", 0, "BTC/USDT", "default", 1.0, 1.0, 0.0, 0.0, "test", {})
    denied = restarted.engine.risk.evaluate(decision, AccountView(100.0, 100_000.0, 0.0, 0.0))
    assert isinstance(denied, OrderDenied)
    assert denied.reason == "trading state HALTED: no new orders"
    restarted.control.resume("operator resumes")
    assert Daemon(paper_profile(tmp_path)).engine.risk.state is TradingState.ACTIVE


def test_rejections_trip_the_kill_switch_and_persist(tmp_path: Path) -> None:
    loaded = paper_profile(tmp_path)
    raw = dict(loaded.raw)
    raw["risk"] = {**raw["risk"], "kill_switch": {"max_errors": 2}}
    daemon = Daemon(LoadedConfig(validate_config(raw, label="test"), None, raw))
    rejected = OrderUpdate("o1", "t-1", 0, "paper", "BTC/USDT", Side.BUY, 1.0, OrderStatus.REJECTED, reason="no")
    daemon.engine.on_order_update(rejected)
    assert daemon.engine.risk.state is TradingState.ACTIVE
    daemon.engine.on_order_update(rejected)
    assert daemon.engine.risk.state is TradingState.HALTED
    saved = RiskStateStore(tmp_path / "state").load()
    assert saved is not None
    assert saved.reason.startswith("kill switch: 2 order errors")


def test_unreadable_state_file_halts(tmp_path: Path) -> None:
    store = RiskStateStore(tmp_path)
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{not json")
    saved = store.load()
    assert saved is not None
    assert saved.state is TradingState.HALTED


@pytest.mark.parametrize("drawdown", [0.0, 1.0])
def test_kill_switch_config_rejects_nonsense(drawdown: float) -> None:
    with pytest.raises(ValueError, match="max_drawdown"):
        KillSwitchConfig(max_drawdown=drawdown)
