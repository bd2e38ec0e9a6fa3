"""Graceful stop, in process: the order of the steps, open orders cancelled or kept, and a stop
forced by its deadline or by a second signal."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from orchestrator.config.loader import load_config
from orchestrator.daemon import Daemon
from orchestrator.errors import ConfigError
from orchestrator.service import shutdown
from orchestrator.service.shutdown import EXIT_FORCED_STOP

# Passive limit orders (3 % away from the market) rest at the paper venue,
# so a stop finds open orders to cancel or keep.
CONFIG = """\
instance: stop-test
state_dir: {state}
feed:
  kind: simulated
  simulated: {{seed: 3, tick_ms: 1000, bar_ms: 1000, speed: 0, prices: {{BTC/USDT: 100.0, ETH/USDT: 50.0}}}}
symbols: [BTC/USDT, ETH/USDT]
modules:
  ma_crossover: {{params: {{fast: 3, slow: 8}}}}
execution: {{order_type: limit, limit_offset_bps: -300}}
shutdown: {shutdown}
"""


@pytest.fixture(autouse=True)
def no_service_manager(monkeypatch):
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)


def make_daemon(tmp_path: Path, shutdown: str = "{}") -> Daemon:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(state=tmp_path / "state", shutdown=shutdown))
    return Daemon(load_config(path, env={}))


class RecordingService:
    def __init__(self, name: str, calls: list[str], *, hang: bool = False, fail: bool = False) -> None:
        self.name = name
        self.calls = calls
        self.hang = hang
        self.fail = fail
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        self.calls.append(f"start:{self.name}")

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.calls.append(f"stop:{self.name}")
        self.stopping.set()
        if self.fail:
            raise RuntimeError("broker gone")
        if self.hang:
            await asyncio.Event().wait()


async def start(daemon: Daemon) -> asyncio.Task[int]:
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(daemon.ready.wait(), 30)
    return task


async def until(condition, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def events(logs: list[dict]) -> list[str]:
    return [entry["event"] for entry in logs]


async def test_steps_run_in_order_and_nothing_trades_after_the_feed_stops(tmp_path):
    daemon = make_daemon(tmp_path)
    calls: list[str] = []
    daemon.services += [RecordingService("early", calls), RecordingService("late", calls)]

    async def announce() -> None:
        calls.append("stopping_callback")

    daemon.stopping_callbacks.append(announce)
    feed_close, router_stop, save = daemon.feed.aclose, daemon.engine.router.stop, daemon.save_module_states

    async def record_feed() -> None:
        calls.append("feed")
        await feed_close()

    async def record_router() -> None:
        calls.append(f"router (open orders: {daemon.engine.open_order_count})")
        await router_stop()

    def record_save() -> None:
        calls.append("module_states")
        save()

    daemon.feed.aclose = record_feed  # type: ignore[method-assign]
    daemon.engine.router.stop = record_router  # type: ignore[method-assign]
    daemon.save_module_states = record_save  # type: ignore[method-assign]
    task = await start(daemon)
    await until(lambda: daemon.engine.open_order_count > 0)
    daemon.request_stop("test")
    with capture_logs() as logs:
        assert await task == 0
    # STOPPING first; services stop in reverse start order, after the router.
    assert calls == [
        "start:early",
        "start:late",
        "stopping_callback",
        "feed",
        "module_states",
        "router (open orders: 0)",
        "stop:late",
        "stop:early",
    ]
    names = events(logs)
    assert names.index("feed_stopped") < names.index("open_orders_canceled") < names.index("stopped")
    stopped = logs[names.index("stopped")]
    assert stopped["open_orders"] == 0
    assert stopped["forced"] is None
    assert (tmp_path / "state" / "modules" / "default" / "ma_crossover.json").is_file()


async def test_open_orders_can_be_kept_for_the_next_start(tmp_path):
    daemon = make_daemon(tmp_path, "{cancel_open_orders: false}")
    task = await start(daemon)
    await until(lambda: daemon.engine.open_order_count > 0)
    daemon.request_stop("test")
    with capture_logs() as logs:
        assert await task == 0
    kept = next(entry for entry in logs if entry["event"] == "open_orders_kept")
    assert kept["count"] == daemon.engine.open_order_count > 0
    assert "open_orders_canceled" not in events(logs)


async def test_a_failing_service_stop_does_not_stop_the_others(tmp_path):
    daemon = make_daemon(tmp_path)
    calls: list[str] = []
    daemon.services += [RecordingService("early", calls), RecordingService("late", calls, fail=True)]
    task = await start(daemon)
    daemon.request_stop("test")
    with capture_logs() as logs:
        assert await task == 0
    assert calls[-2:] == ["stop:late", "stop:early"]
    failed = next(entry for entry in logs if entry["event"] == "service_stop_failed")
    assert failed["service"] == "late"
    assert "broker gone" in failed["error"]


async def test_the_deadline_forces_the_stop_and_exit_status_1(tmp_path):
    daemon = make_daemon(tmp_path, "{timeout_s: 0.5, cancel_wait_s: 0.1}")
    calls: list[str] = []
    daemon.services += [RecordingService("early", calls), RecordingService("stuck", calls, hang=True)]
    task = await start(daemon)
    daemon.request_stop("test")
    with capture_logs() as logs:
        assert await asyncio.wait_for(task, 30) == EXIT_FORCED_STOP
    forced = next(entry for entry in logs if entry["event"] == "shutdown_forced")
    assert forced["reason"].startswith("timeout")
    abandoned = [entry["step"] for entry in logs if entry["event"] == "shutdown_step_abandoned"]
    assert abandoned == ["service:stuck"]
    # The steps after the stuck one still ran: the journal was flushed and closed.
    assert calls[-1] == "stop:early"
    assert not daemon.execution.writer.running
    assert logs[-1]["event"] == "stopped"
    assert logs[-1]["forced"] == forced["reason"]
    # Module state is saved before anything that can hang.
    assert (tmp_path / "state" / "modules" / "default" / "ma_crossover.json").is_file()


async def test_a_second_signal_forces_the_stop_and_hurries_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(shutdown, "FORCED_STEP_GRACE_S", 0.2)
    daemon = make_daemon(tmp_path)  # default deadline: 30 s, far away
    calls: list[str] = []
    also_stuck = RecordingService("also-stuck", calls, hang=True)
    stuck = RecordingService("stuck", calls, hang=True)
    daemon.services += [also_stuck, stuck]
    task = await start(daemon)
    with capture_logs() as logs:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stuck.stopping.wait(), 30)
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(task, 30) == EXIT_FORCED_STOP
    assert daemon.stop_reason == "SIGTERM"
    forced = next(entry for entry in logs if entry["event"] == "shutdown_forced")
    assert forced["reason"] == "second SIGTERM"
    abandoned = [entry["step"] for entry in logs if entry["event"] == "shutdown_step_abandoned"]
    assert abandoned == ["service:stuck", "service:also-stuck"]  # the second after its short grace
    assert not daemon.execution.writer.running


def test_the_cancel_wait_must_leave_time_for_the_rest(tmp_path):
    with pytest.raises(ConfigError) as caught:
        make_daemon(tmp_path, "{timeout_s: 5, cancel_wait_s: 5}")
    assert any("shutdown: cancel_wait_s (5.0) must be shorter than timeout_s (5.0)" in p for p in caught.value.problems)
