"""The MQTT service against a real Mosquitto: retained state, streams, clean stop, broker restarts."""

from __future__ import annotations

import asyncio
import contextlib
import time

import yaml

from orchestrator.config.loader import load_config
from orchestrator.daemon import Daemon

PREFIX = "orchestrator/t1"


async def test_late_subscriber_sees_retained_online_status_and_module_health(mosquitto, kit, subscribe):
    async with kit.run(kit.config(kit.mqtt(mosquitto))) as daemon:
        # Once an early subscriber has them, the broker holds them: no guessing with sleeps.
        async with subscribe(mosquitto.port, f"{PREFIX}/status", f"{PREFIX}/modules/#") as early:
            await early.wait_for(lambda m: m.topic == f"{PREFIX}/status")
            await early.wait_for(lambda m: m.topic == f"{PREFIX}/modules/ma_crossover")
        async with subscribe(mosquitto.port, f"{PREFIX}/#") as late:
            online = await late.wait_for(lambda m: m.topic == f"{PREFIX}/online")
            status = await late.wait_for(lambda m: m.topic == f"{PREFIX}/status")
            module = await late.wait_for(lambda m: m.topic == f"{PREFIX}/modules/ma_crossover")
        slot = daemon.engine.pipelines["default"].slots["ma_crossover"]
    assert online.retain
    assert online.payload == b"online"
    assert status.retain
    body = status.json()
    assert body["schema"] == 1
    assert body["kind"] == "status"
    assert body["instance"] == "t1"
    assert body["state"] == "ACTIVE"
    assert body["symbols"] == ["BTC/USDT", "ETH/USDT"]
    assert body["feed"] == "simulated"
    for key in ("uptime_s", "equity", "realized_pnl", "unrealized_pnl", "positions", "counters", "last_decision_ts"):
        assert key in body
    assert body["mqtt"]["connected"] is True
    health = module.json()
    assert module.retain
    assert health["name"] == "ma_crossover"
    assert health["version"] == slot.loaded.contract.version
    assert health["source_hash"] == slot.loaded.source_hash
    assert health["state"] == "active"
    assert {"loaded_at", "swaps", "errors", "last_error", "latency_us"} <= set(health)
    assert set(health["latency_us"]) == {"p50", "p99", "budget"}


async def test_decisions_orders_fills_and_heartbeats_stream_unretained(mosquitto, kit, subscribe):
    async with (
        subscribe(mosquitto.port, f"{PREFIX}/#") as watcher,
        kit.run(kit.config(kit.mqtt(mosquitto))) as daemon,
    ):
        decision = await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/decisions")
        order = await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/orders")
        fill = await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/fills")
        heartbeat = await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/heartbeat")
        assert daemon.engine.counters.fills > 0
    assert not any(m.retain for m in (decision, order, fill, heartbeat))
    d = decision.json()
    assert d["kind"] == "decision"
    assert d["schema"] == 1
    assert d["symbol"] in ("BTC/USDT", "ETH/USDT")
    assert -1.0 <= d["target"] <= 1.0
    assert d["trace_id"]
    o = order.json()
    assert o["event"] in ("intent", "update", "denied")
    f = fill.json()
    assert f["quantity"] > 0
    assert f["price"] > 0
    assert f["client_order_id"]
    assert heartbeat.json()["seq"] >= 1


async def test_decisions_are_rate_limited_on_the_event_path(mosquitto, kit, subscribe):
    mqtt = kit.mqtt(mosquitto, decisions={"max_per_s": 1.0, "burst": 2})
    async with subscribe(mosquitto.port, f"{PREFIX}/decisions") as watcher:
        started = time.monotonic()
        async with kit.run(kit.config(mqtt, speed=2000.0)) as daemon:
            await kit.until(lambda: daemon.engine.counters.decisions >= 40, "decisions >= 40")
            await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/decisions")
            made = daemon.engine.counters.decisions
            passed = made - kit.service(daemon).listener.decisions_skipped
            elapsed = time.monotonic() - started
    # A bucket of 2 refilled at 1 per second lets through at most 2 + elapsed
    # decisions; the rest are skipped on the event path, never queued.
    assert passed <= 2 + elapsed + 1
    assert passed < made / 2
    assert 1 <= len(watcher.on(f"{PREFIX}/decisions")) <= passed


async def test_clean_shutdown_leaves_a_retained_offline(mosquitto, kit, subscribe):
    async with kit.run(kit.config(kit.mqtt(mosquitto))):
        pass
    async with subscribe(mosquitto.port, f"{PREFIX}/online") as later:
        online = await later.wait_for(lambda m: m.topic == f"{PREFIX}/online")
    assert online.retain
    assert online.payload == b"offline"


async def test_broker_restart_reconnects_and_republishes_the_current_state(mosquitto, kit, subscribe):
    async with kit.run(kit.config(kit.mqtt(mosquitto))) as daemon:
        service = kit.service(daemon)
        first = service.connections
        mosquitto.restart()  # persistence off: the broker comes back with nothing retained
        events_while_down = daemon.engine.counters.events
        async with subscribe(mosquitto.port, f"{PREFIX}/#") as after:
            online = await after.wait_for(lambda m: m.topic == f"{PREFIX}/online" and m.payload == b"online")
            status = await after.wait_for(lambda m: m.topic == f"{PREFIX}/status")
            await after.wait_for(lambda m: m.topic == f"{PREFIX}/modules/ma_crossover")
        assert service.connections > first
        assert daemon.engine.counters.events > events_while_down  # it kept trading
    assert online.payload == b"online"
    assert status.json()["mqtt"]["connections"] >= 2


async def test_the_daemon_trades_while_the_broker_is_away_and_connects_when_it_comes(mosquitto, kit, subscribe):
    mosquitto.stop()
    async with kit.run(kit.config(kit.mqtt(mosquitto)), connected=False) as daemon:
        service = kit.service(daemon)
        start = daemon.engine.counters.events
        await kit.until(lambda: daemon.engine.counters.events >= start + 500, "events >= start + 500")
        assert not service.connected.is_set()
        mosquitto.start()
        await asyncio.wait_for(service.connected.wait(), kit.timeout)
        async with subscribe(mosquitto.port, f"{PREFIX}/status") as watcher:
            status = await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/status")
    assert status.json()["counters"]["events"] >= start + 500


async def test_a_module_that_leaves_has_its_retained_health_cleared(mosquitto, kit, subscribe):
    async with (
        kit.run(kit.config(kit.mqtt(mosquitto))) as daemon,
        subscribe(mosquitto.port, f"{PREFIX}/modules/#") as watcher,
    ):
        await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/modules/ma_crossover" and bool(m.payload))
        daemon.engine.pipelines["default"].remove("ma_crossover")
        await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/modules/ma_crossover" and not m.payload)
    async with subscribe(mosquitto.port, f"{PREFIX}/modules/#", f"{PREFIX}/online") as later:
        await later.wait_for(lambda m: m.topic == f"{PREFIX}/online")
        await asyncio.sleep(0.2)
    assert later.on(f"{PREFIX}/modules/ma_crossover") == []


async def test_the_connection_outlives_run_and_stop_says_offline(mosquitto, kit, subscribe):
    # The daemon cancels run() as soon as it starts stopping; the connection
    # must last until stop(), the services' step at the end of the shutdown.
    daemon = Daemon(load_config(kit.config(kit.mqtt(mosquitto)), env={}))
    service = kit.service(daemon)
    await service.start()
    task = asyncio.create_task(service.run())
    await kit.until(service.connected.is_set, "connected")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    async with subscribe(mosquitto.port, f"{PREFIX}/online", f"{PREFIX}/heartbeat") as watcher:
        await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/heartbeat")  # still publishing
        assert service.connected.is_set()
        await service.stop()
        await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/online" and m.payload == b"offline")
    daemon.engine.stop_modules()
    assert not service.connected.is_set()


async def test_a_clean_stop_publishes_its_cancels_and_final_status_before_offline(mosquitto, kit, subscribe):
    mqtt = kit.mqtt(mosquitto, orders={"max_per_s": 10000, "burst": 10000})
    path = kit.config(mqtt, speed=20.0)
    document = yaml.safe_load(path.read_text())
    document["execution"].update(order_type="limit", limit_offset_bps=-300)  # passive: orders rest at the venue
    path.write_text(yaml.safe_dump(document))
    async with subscribe(mosquitto.port, f"{PREFIX}/#") as watcher:
        async with kit.run(path) as daemon:
            await kit.until(lambda: daemon.engine.open_order_count > 0, "an open order")
        offline = await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/online" and m.payload == b"offline")
    before = watcher.messages[: watcher.messages.index(offline)]
    updates = [m.json() for m in before if m.topic == f"{PREFIX}/orders" and m.json()["event"] == "update"]
    assert any(u["status"] == "canceled" for u in updates)
    last_status = [m for m in before if m.topic == f"{PREFIX}/status"][-1].json()
    assert last_status["open_orders"] == 0
    assert daemon.engine.open_order_count == 0
