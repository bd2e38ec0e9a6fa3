"""The notify service in process: READY only once every service started and market data
flows, reloads between RELOADING and READY, none announced before READY or run while stopping."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from orchestrator.config.loader import load_config
from orchestrator.control import CommandResult
from orchestrator.daemon import Daemon
from orchestrator.events import Bar, MarketEvent
from orchestrator.feeds.base import MarketFeed
from orchestrator.feeds.config import FeedConfig
from orchestrator.hotswap.control_client import send
from orchestrator.mqtt.commands import CommandHandler
from orchestrator.mqtt.topics import Topics
from orchestrator.service.systemd import FIRST_EVENT_MARGIN_S, SystemdNotifyService, first_event_wait_s

CONFIG = """\
instance: notify-test
state_dir: {state}
feed: {{kind: simulated, simulated: {{speed: 0, prices: {{BTC/USDT: 100.0}}}}}}
symbols: [BTC/USDT]
modules: {{ma_crossover: {{params: {{fast: 3, slow: 8}}}}}}
"""
STATUS = re.compile(
    r"^(ACTIVE|REDUCING|PAUSED|HALTED) \| \d+\.\d events/s \| equity -?\d+\.\d\d"
    r" \| modules (\d+ \w+(, )?)+ \| \d+ open orders$"
)


class ConfigReloads:
    """Stands in for the hot-swap machinery's module operations."""

    def __init__(self, outcome: CommandResult | Exception) -> None:
        self.outcome = outcome
        self.calls = 0

    async def reload_config(self) -> CommandResult:
        self.calls += 1
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome

    async def enable(self, name: str) -> CommandResult:
        raise NotImplementedError

    async def disable(self, name: str) -> CommandResult:
        raise NotImplementedError

    async def reload(self, name: str | None) -> CommandResult:
        raise NotImplementedError

    async def set_param(self, name: str, key: str, value: Any) -> CommandResult:
        raise NotImplementedError


@pytest.fixture
def daemon(tmp_path: Path, notify_path, monkeypatch) -> Daemon:
    monkeypatch.setenv("NOTIFY_SOCKET", notify_path.address)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(state=tmp_path / "state"))
    return Daemon(load_config(path, env={}))


def notify_service(daemon: Daemon) -> SystemdNotifyService:
    service = daemon.services[0]
    assert isinstance(service, SystemdNotifyService)
    return service


async def test_ready_follows_every_service_start_then_status_and_watchdog(daemon, notify_path):
    seen: list[bool] = []

    class SlowToConnect:
        name = "slow"

        async def start(self) -> None:
            await asyncio.sleep(0.2)  # a broker or venue handshake
            seen.append(notify_service(daemon)._ready_sent.is_set())

        async def run(self) -> None:
            await asyncio.Event().wait()

        async def stop(self) -> None:
            return None

    daemon.services.append(SlowToConnect())
    task = asyncio.create_task(daemon.run())
    ready = await asyncio.to_thread(notify_path.wait_for, lambda m: list(m) != ["STATUS"])
    assert ready["READY"] == "1"
    # Before READY, STATUS named each start-up step as the daemon reached it.
    steps = [message["STATUS"] for message in notify_path.received[:-1]]
    expected = ["starting: exchange adapters", *(f"starting: {service.name}" for service in daemon.services)]
    assert steps[: len(expected)] == expected
    assert expected[-1] == "starting: slow"
    assert steps[len(expected) :] in ([], ["starting: waiting for market data (simulated)"])
    assert STATUS.match(ready["STATUS"]), ready["STATUS"]
    assert seen == [False]
    status = await asyncio.to_thread(notify_path.next, 30)
    assert status is not None
    assert list(status) == ["STATUS"]
    assert STATUS.match(status["STATUS"]), status["STATUS"]
    assert await asyncio.to_thread(notify_path.next, 30) == {"WATCHDOG": "1"}
    daemon.request_stop("test")
    assert await task == 0
    rest = notify_path.drain()
    assert rest[-1] == {"STOPPING": "1", "STATUS": "stopping: test", "EXTEND_TIMEOUT_USEC": "45000000"}
    assert all(message == {"WATCHDOG": "1"} or "STATUS" in message for message in rest)


class HeldFeed(MarketFeed):
    """A live feed stand-in: connected only when the test says so."""

    name = "held"

    def __init__(self, symbol: str) -> None:
        self.release = asyncio.Event()
        self.symbol = symbol

    @property
    def symbols(self) -> tuple[str, ...]:
        return (self.symbol,)

    def events(self) -> Iterator[MarketEvent]:
        raise NotImplementedError

    async def stream(self) -> AsyncIterator[MarketEvent]:
        await self.release.wait()
        for minute in range(1, 1_000_000):
            yield Bar(self.symbol, minute * 60_000, 100.0, 101.0, 99.0, 100.0, 1.0, 60_000)
            await asyncio.sleep(0.001)


async def test_ready_waits_for_the_first_market_event(daemon, notify_path):
    feed = HeldFeed("BTC/USDT")
    daemon.feed = feed
    task = asyncio.create_task(daemon.run())
    waiting = await asyncio.to_thread(notify_path.wait_for, lambda m: "waiting" in m.get("STATUS", ""))
    assert waiting == {"STATUS": "starting: waiting for market data (held)"}
    assert daemon.ready.is_set()  # every service is up; only the data is missing
    assert notify_path.drain() == []  # and the start timeout is not extended: events come at once
    feed.release.set()
    ready = await asyncio.to_thread(notify_path.next, 30)
    assert ready is not None
    assert ready["READY"] == "1"
    assert daemon.engine.counters.events > 0
    daemon.request_stop("test")
    assert await task == 0


@pytest.mark.parametrize(
    ("outcome", "status_prefix", "logged"),
    [
        (CommandResult(True, "2 modules changed"), "ACTIVE |", "config_reloaded"),
        (CommandResult(False, "config.yaml: risk: too big"), "reload failed: config.yaml", "config_reload_failed"),
        (RuntimeError("boom"), "reload failed: RuntimeError: boom", "config_reload_failed"),
    ],
)
async def test_a_reload_is_wrapped_in_reloading_and_ready(daemon, notify_path, outcome, status_prefix, logged):
    daemon.control.modules = ConfigReloads(outcome)
    task = asyncio.create_task(daemon.run())
    await asyncio.to_thread(notify_path.wait_for, lambda m: m.get("READY") == "1")
    with capture_logs() as logs:
        result = await daemon.reload_config()  # what SIGHUP runs
    assert result.ok is (isinstance(outcome, CommandResult) and outcome.ok)
    reloading = await asyncio.to_thread(notify_path.wait_for, lambda m: "RELOADING" in m or "READY" in m)
    assert reloading["RELOADING"] == "1"
    assert int(reloading["MONOTONIC_USEC"]) > 0
    ready = await asyncio.to_thread(notify_path.wait_for, lambda m: "READY" in m)
    assert ready["STATUS"].startswith(status_prefix)
    assert logged in [entry["event"] for entry in logs]
    daemon.request_stop("test")
    assert await task == 0


async def test_a_reload_before_ready_is_unannounced_and_one_while_stopping_is_refused(daemon, notify_path):
    reloads = ConfigReloads(CommandResult(True, "ok"))
    daemon.control.modules = reloads
    feed = HeldFeed("BTC/USDT")
    daemon.feed = feed
    task = asyncio.create_task(daemon.run())
    await asyncio.to_thread(notify_path.wait_for, lambda m: "waiting" in m.get("STATUS", ""))
    assert (await daemon.reload_config()).ok  # applied, but READY=1 now would be a lie
    assert reloads.calls == 1
    assert notify_path.drain() == []
    feed.release.set()
    await asyncio.to_thread(notify_path.wait_for, lambda m: m.get("READY") == "1")
    daemon.request_stop("test")
    with capture_logs() as logs:
        refused = await daemon.reload_config()
        assert await task == 0
    assert not refused.ok
    assert reloads.calls == 1
    assert {"event": "config_reload_skipped", "reason": "stopping", "log_level": "info"} in logs
    assert not any("RELOADING" in message for message in notify_path.drain())


def reload_notifications(notify_path, count: int) -> list[str]:
    """The next ``count`` RELOADING=1 / READY=1 notifications, by name, in order."""
    seen: list[str] = []
    while len(seen) < count:
        message = notify_path.wait_for(lambda m: "RELOADING" in m or "READY" in m)
        seen.append("RELOADING" if "RELOADING" in message else "READY")
    return seen


def fast_param(daemon: Daemon) -> int:
    return int(daemon.engine.pipelines["default"].slots["ma_crossover"].params.fast)


async def test_the_control_socket_and_mqtt_reload_on_the_same_path_as_sighup(daemon, notify_path):
    path = daemon.loaded.path
    assert path is not None
    task = asyncio.create_task(daemon.run())
    await asyncio.to_thread(notify_path.wait_for, lambda m: m.get("READY") == "1")
    assert fast_param(daemon) == 3

    path.write_text(path.read_text().replace("fast: 3", "fast: 4"))
    socket = daemon.hot_swap.control_socket.path
    answer = await asyncio.to_thread(send, socket, {"command": "reload_config"}, timeout=30)
    assert answer["ok"], answer
    assert await asyncio.to_thread(reload_notifications, notify_path, 2) == ["RELOADING", "READY"]
    assert fast_param(daemon) == 4

    path.write_text(path.read_text().replace("fast: 4", "fast: 5"))
    handler = CommandHandler(daemon.control, Topics("orchestrator/notify-test"), max_payload_bytes=4096, remember_ids=8)
    reply = await handler.handle("module", b'{"id": "r-1", "action": "reload"}', retained=False)  # config, then code
    assert reply is not None
    assert reply.ok, reply.message
    assert await asyncio.to_thread(reload_notifications, notify_path, 2) == ["RELOADING", "READY"]
    assert fast_param(daemon) == 5
    daemon.request_stop("test")
    assert await task == 0


async def test_a_saved_config_file_is_announced_like_sighup(daemon, notify_path):
    path = daemon.loaded.path
    assert path is not None
    task = asyncio.create_task(daemon.run())
    await asyncio.to_thread(notify_path.wait_for, lambda m: m.get("READY") == "1")
    path.write_text(path.read_text().replace("fast: 3", "fast: 6"))  # the watcher sees the save
    assert await asyncio.to_thread(reload_notifications, notify_path, 2) == ["RELOADING", "READY"]
    assert fast_param(daemon) == 6
    daemon.request_stop("test")
    assert await task == 0


class SlowReloads(ConfigReloads):
    """Counts how many reloads run at once."""

    def __init__(self) -> None:
        super().__init__(CommandResult(True, "ok"))
        self.running = 0
        self.most = 0
        self.reloads: list[str | None] = []

    async def _one(self) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0.05)
        self.running -= 1

    async def reload_config(self) -> CommandResult:
        await self._one()
        return await super().reload_config()

    async def reload(self, name: str | None) -> CommandResult:
        self.reloads.append(name)
        await self._one()
        return CommandResult(True, f"reloaded {name}")


async def test_reloads_from_every_channel_take_turns_under_one_lock(daemon, notify_path):
    reloads = SlowReloads()
    daemon.control.modules = reloads
    task = asyncio.create_task(daemon.run())
    await asyncio.to_thread(notify_path.wait_for, lambda m: m.get("READY") == "1")
    results = await asyncio.gather(
        daemon.reload_config(),  # SIGHUP
        daemon.control.reload_config(),  # the control socket's reload_config, MQTT's
        daemon.control.module_reload(),  # reload of every module: config, then changed code
    )
    assert [r.ok for r in results] == [True, True, True]
    assert results[2].message == "reloaded None"
    assert reloads.most == 1  # one at a time
    assert (reloads.calls, reloads.reloads) == (2, [None])  # each ran once: no recursion, no double reload
    assert await asyncio.to_thread(reload_notifications, notify_path, 6) == ["RELOADING", "READY"] * 3
    one = await daemon.control.module_reload("ma_crossover")  # one module's code: not a config reload
    assert one.message == "reloaded ma_crossover"
    assert not any("RELOADING" in message for message in notify_path.drain())
    daemon.request_stop("test")
    assert await task == 0


@pytest.mark.parametrize(
    ("feed", "expected"),
    [
        ({"kind": "ccxt", "ccxt": {"exchange": "binance", "timeframe": "1h"}}, 3600.0),
        ({"kind": "ccxt", "ccxt": {"exchange": "binance", "streams": ["bars"], "timeframe": "5m"}}, 300.0),
        ({"kind": "ccxt", "ccxt": {"exchange": "binance", "streams": ["bars", "trades"], "timeframe": "1h"}}, None),
        ({"kind": "ccxt", "ccxt": {"exchange": "binance", "streams": ["book"]}}, None),
        ({"kind": "simulated"}, None),
    ],
)
def test_only_a_live_feed_of_bars_alone_may_be_slow_to_deliver(feed, expected):
    assert first_event_wait_s(FeedConfig.model_validate(feed)) == expected


async def test_a_live_feed_of_hourly_bars_extends_the_start_timeout(tmp_path, notify_path, monkeypatch):
    """Its first closed bar may be an hour away: without more time, TimeoutStartSec= would kill a healthy start."""
    monkeypatch.setenv("NOTIFY_SOCKET", notify_path.address)
    path = tmp_path / "config.yaml"
    path.write_text(
        CONFIG.format(state=tmp_path / "state").replace(
            "feed: {kind: simulated, simulated: {speed: 0, prices: {BTC/USDT: 100.0}}}",
            "feed: {kind: ccxt, ccxt: {exchange: binance, timeframe: 1h}}",
        )
    )
    daemon = Daemon(load_config(path, env={}))
    assert daemon.feed.name == "ccxt"
    feed = HeldFeed("BTC/USDT")  # the venue cannot be reached from here; the config is what counts
    daemon.feed = feed
    task = asyncio.create_task(daemon.run())
    await asyncio.to_thread(notify_path.wait_for, lambda m: "waiting" in m.get("STATUS", ""))
    extend = await asyncio.to_thread(notify_path.next, 30)
    assert extend == {"EXTEND_TIMEOUT_USEC": str(int((3600 + FIRST_EVENT_MARGIN_S) * 1_000_000))}
    feed.release.set()
    ready = await asyncio.to_thread(notify_path.next, 30)
    assert ready is not None
    assert ready["READY"] == "1"
    daemon.request_stop("test")
    assert await task == 0
