"""The embedded broker (amqtt): on by config, off when mqtt.url names another broker."""

from __future__ import annotations

import asyncio

from orchestrator.mqtt.config import EmbeddedBrokerConfig
from orchestrator.mqtt.embedded import EmbeddedBroker
from orchestrator.risk.state import TradingState

PREFIX = "orchestrator/t1"


def embedded_section(port: int) -> dict:
    return {
        "embedded_broker": {"enabled": True, "port": port},
        "keepalive_s": 5,
        "status_interval_s": 1.0,
        "heartbeat_interval_s": 0.5,
    }


async def test_the_daemon_hosts_its_own_broker_on_loopback(kit, subscribe):
    port = kit.free_port()
    async with kit.run(kit.config(embedded_section(port))) as daemon:
        service = kit.service(daemon)
        assert service.embedded is not None
        assert service.embedded.running
        async with subscribe(port, f"{PREFIX}/#") as watcher:
            await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/online" and m.payload == b"online")
            await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/status")
            await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/modules/ma_crossover")
            await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/decisions")
            async with subscribe(port, f"{PREFIX}/status") as late:
                retained = await late.wait_for(lambda m: m.topic == f"{PREFIX}/status")
            assert retained.retain
            # MQTT 3.1.1 here: the daemon receives its own replies and must ignore them.
            halted = await watcher.command(PREFIX, "halt", {"id": "e-1"})
            assert daemon.engine.risk.state is TradingState.HALTED
            resumed = await watcher.command(PREFIX, "resume", {"id": "e-2"})
            await asyncio.sleep(0.3)
            replies = watcher.on(f"{PREFIX}/cmd/reply")
        assert service.commands.executed == 2
        assert service.commands.refused == 0
    assert halted["ok"] is True
    assert resumed["ok"] is True
    assert len(replies) == 2
    assert not kit.port_open(port)  # stopped with the daemon


async def test_a_retained_command_is_ignored_on_the_embedded_broker_after_a_reconnect(kit, subscribe):
    port = kit.free_port()
    async with kit.run(kit.config(embedded_section(port))) as daemon:
        async with subscribe(port, f"{PREFIX}/cmd/reply") as operator:
            await operator.publish(f"{PREFIX}/cmd/halt", {"id": "ret-e"}, retain=True)
            await operator.command(PREFIX, "resume", {"id": "e-resume"})  # 3.1.1: the live one ran
            assert daemon.engine.risk.state is TradingState.ACTIVE
        service = kit.service(daemon)
        # A new subscription (as after a reconnect) receives it flagged retained: ignored.
        before = service.commands.executed
        await service.commands.handle("halt", b'{"id": "ret-e2"}', retained=True)
        assert service.commands.executed == before
        assert daemon.engine.risk.state is TradingState.ACTIVE


async def test_an_explicit_url_uses_that_broker_and_starts_none(mosquitto, kit, subscribe):
    port = kit.free_port()
    env = {"ORCHESTRATOR__MQTT__URL": mosquitto.url}
    async with kit.run(kit.config(embedded_section(port)), env) as daemon:
        assert kit.service(daemon).embedded is None
        assert not kit.port_open(port)
        async with subscribe(mosquitto.port, f"{PREFIX}/status") as watcher:
            await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/status")


async def test_a_taken_port_does_not_stop_trading(kit):
    port = kit.free_port()
    async with kit.run(kit.config(embedded_section(port))) as first:
        async with kit.run(kit.config(embedded_section(port), name="second"), connected=False) as second:
            assert not kit.service(second).embedded.running
            start = second.engine.counters.events
            await kit.until(lambda: second.engine.counters.events >= start + 300, "events >= start + 300")
        assert kit.service(first).embedded.running


async def test_a_subscriber_gets_the_retained_messages_of_its_own_filters_only(kit, subscribe):
    # amqtt 0.12 alone also hands a new client what matches other clients' filters.
    port = kit.free_port()
    broker = EmbeddedBroker(EmbeddedBrokerConfig(enabled=True, port=port))
    await broker.start()
    try:
        async with subscribe(port, "box/#") as everything:
            await everything.publish("box/online", b"online", retain=True)
            await everything.publish("box/status", b"{}", retain=True)
            await everything.wait_for(lambda m: m.topic == "box/status")
            async with subscribe(port, "box/online") as narrow:
                await narrow.wait_for(lambda m: m.topic == "box/online")
                await everything.publish("box/online", b"marker")  # live, after whatever came on connect
                await narrow.wait_for(lambda m: m.payload == b"marker")
                received = [(m.topic, m.payload, m.retain) for m in narrow.messages]
    finally:
        await broker.stop()
    assert received == [("box/online", b"online", True), ("box/online", b"marker", False)]
