"""The repository's Mosquitto ACL (config/mosquitto/acl) on a real broker with a password file."""

from __future__ import annotations

import aiomqtt
import pytest

from orchestrator.risk.state import TradingState

PREFIX = "orchestrator/t1"
REPLY = f"{PREFIX}/cmd/reply"


@pytest.fixture
def daemon_env(monkeypatch, kit):
    monkeypatch.setenv("ORCHESTRATOR_MQTT_PASSWORD", kit.users["orchestrator"])


def secured_config(kit, broker):
    return kit.config(kit.mqtt(broker, url=f"mqtt://orchestrator@127.0.0.1:{broker.port}"))


async def test_only_the_operator_may_send_commands(secured_mosquitto, kit, subscribe, daemon_env):
    broker, users = secured_mosquitto, kit.users
    async with (
        kit.run(secured_config(kit, broker)) as daemon,
        subscribe(broker.port, f"{PREFIX}/#", username="operator", password=users["operator"]) as operator,
        subscribe(broker.port, username="orchestrator", password=users["orchestrator"]) as impostor,
    ):
        await operator.wait_for(lambda m: m.topic == f"{PREFIX}/status")  # from now on the broker retains it
        async with subscribe(broker.port, f"{PREFIX}/#", username="viewer", password=users["viewer"]) as viewer:
            # Everyone with a login reads the retained status.
            await viewer.wait_for(lambda m: m.topic == f"{PREFIX}/status" and m.retain)
            await viewer.publish(f"{PREFIX}/cmd/halt", {"id": "viewer-1"})
        await impostor.publish(f"{PREFIX}/cmd/halt", {"id": "daemon-user-1"})
        # The broker handled (and refused) both before acknowledging them, so
        # they would have reached the daemon before this command does.
        status = await operator.command(PREFIX, "status", {"id": "op-1"})
        assert status["data"]["state"] == "ACTIVE"
        assert daemon.engine.risk.state is TradingState.ACTIVE
        halted = await operator.command(PREFIX, "halt", {"id": "op-2"})
        assert halted["ok"] is True
        assert daemon.engine.risk.state is TradingState.HALTED
        await operator.command(PREFIX, "resume", {"id": "op-3"})
    ids = {m.json().get("id") for m in operator.on(REPLY)}
    assert ids == {"op-1", "op-2", "op-3"}


async def test_viewers_cannot_forge_status(secured_mosquitto, kit, subscribe, daemon_env):
    broker, users = secured_mosquitto, kit.users
    async with (
        kit.run(secured_config(kit, broker)),
        subscribe(broker.port, username="viewer", password=users["viewer"]) as viewer,
        subscribe(broker.port, f"{PREFIX}/status", REPLY, username="operator", password=users["operator"]) as operator,
    ):
        await viewer.publish(f"{PREFIX}/status", {"state": "FORGED"}, retain=True)
        await operator.wait_for(lambda m: m.topic == f"{PREFIX}/status")
        await operator.command(PREFIX, "status", {"id": "op-1"})  # a round trip after the forgery
    assert all(m.json().get("state") != "FORGED" for m in operator.on(f"{PREFIX}/status"))


async def test_anonymous_clients_are_refused(secured_mosquitto, subscribe):
    with pytest.raises(aiomqtt.MqttError):
        async with subscribe(secured_mosquitto.port, f"{PREFIX}/#"):
            pass


async def test_a_wrong_password_keeps_the_daemon_trading_unconnected(secured_mosquitto, kit, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_MQTT_PASSWORD", "wrong")
    async with kit.run(secured_config(kit, secured_mosquitto), connected=False) as daemon:
        start = daemon.engine.counters.events
        await kit.until(lambda: daemon.engine.counters.events >= start + 300, "events >= start + 300")
        assert not kit.service(daemon).connected.is_set()
