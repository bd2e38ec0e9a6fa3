"""Commands over a real Mosquitto: every verb, replies, dedupe, retained commands, bad input."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from orchestrator.engine.listener import EngineListener
from orchestrator.orders import OrderDenied, OrderIntent
from orchestrator.risk.engine import AccountView
from orchestrator.risk.state import TradingState
from orchestrator.risk.store import RiskStateStore
from orchestrator.signals import Decision

PREFIX = "orchestrator/t1"
REPLY = f"{PREFIX}/cmd/reply"


async def test_status_pause_resume_and_halt_end_to_end(mosquitto, kit, subscribe):
    async with (
        kit.run(kit.config(kit.mqtt(mosquitto))) as daemon,
        subscribe(mosquitto.port, f"{PREFIX}/#") as operator,
    ):
        status = await operator.command(PREFIX, "status", {"id": "s-1"})
        assert status["ok"] is True
        assert status["id"] == "s-1"
        assert status["verb"] == "status"
        assert status["data"]["state"] == "ACTIVE"
        assert status["data"]["instance"] == "t1"

        paused = await operator.command(PREFIX, "pause", {"id": "p-1", "reason": "maintenance"})
        assert paused["ok"] is True
        assert daemon.engine.risk.state is TradingState.PAUSED
        retained = await operator.wait_for(lambda m: m.topic == f"{PREFIX}/status" and m.json()["state"] == "PAUSED")
        assert retained.json()["state"] == "PAUSED"
        intents = daemon.engine.counters.intents
        decisions = daemon.engine.counters.decisions
        await kit.until(lambda: daemon.engine.counters.decisions >= decisions + 5, "decisions >= decisions + 5")
        assert daemon.engine.counters.intents == intents  # decisions go on, no new orders

        resumed = await operator.command(PREFIX, "resume", {"id": "r-1"})
        assert resumed["ok"] is True
        assert daemon.engine.risk.state is TradingState.ACTIVE

        halted = await operator.command(PREFIX, "halt", {"id": "h-1", "reason": "kill switch drill"})
        assert halted["ok"] is True
        assert "canceled" in halted["data"]
        assert daemon.engine.risk.state is TradingState.HALTED
        await operator.wait_for(lambda m: m.topic == f"{PREFIX}/status" and m.json()["state"] == "HALTED")

        refused = await operator.command(PREFIX, "pause", {"id": "p-2"})
        assert refused["ok"] is False  # halted: resume first
        assert daemon.engine.risk.state is TradingState.HALTED
        await operator.command(PREFIX, "resume", {"id": "r-2"})
        assert daemon.engine.risk.state is TradingState.ACTIVE


class Orders(EngineListener):
    """Every order and denial the running daemon's risk engine produces."""

    def __init__(self) -> None:
        self.intents: list[OrderIntent] = []
        self.denied: list[OrderDenied] = []

    def on_order_intent(self, intent: OrderIntent) -> None:
        self.intents.append(intent)

    def on_order_denied(self, denied: OrderDenied) -> None:
        self.denied.append(denied)


async def test_reduce_over_mqtt_lets_only_reducing_orders_out(mosquitto, kit, subscribe):
    async with (
        kit.run(kit.config(kit.mqtt(mosquitto))) as daemon,
        subscribe(mosquitto.port, f"{PREFIX}/#") as operator,
    ):
        orders = Orders()
        start = len(operator.messages)
        reduced = await operator.command(PREFIX, "reduce", {"id": "red-1", "reason": "unwind"})
        daemon.engine.listeners.append(orders)  # from here on, every order is judged under REDUCING
        assert reduced["ok"] is True, reduced
        assert reduced["verb"] == "reduce"
        assert reduced["data"] == {"previous": "ACTIVE"}
        assert daemon.engine.risk.state is TradingState.REDUCING
        status = f"{PREFIX}/status"
        await operator.wait_for(lambda m: m.topic == status and m.json()["state"] == "REDUCING", start=start)
        saved = RiskStateStore(daemon.config.state_dir).load()
        assert saved is not None
        assert (saved.state, saved.reason) == (TradingState.REDUCING, "mqtt red-1: unwind")

        # The live market's own decisions: whatever would add exposure is denied, with the reason.
        await kit.until(
            lambda: any(d.reason.startswith("trading state REDUCING") for d in orders.denied),
            "a decision denied for adding exposure",
        )
        assert all(intent.reduce_only for intent in orders.intents), orders.intents
        # And decisively, on the daemon's own risk engine: growing denied, shrinking passes.
        risk = daemon.engine.risk
        view = AccountView(price=100.0, equity=100_000.0, position=10.0, pending=0.0)
        grow = risk.evaluate(Decision("g", 5, "BTC/USDT", "default", 0.5, 1.0, 0.0, 0.0, "w", {}), view)
        assert isinstance(grow, OrderDenied)
        assert grow.reason == "trading state REDUCING: only reducing orders leaves no room"
        shrink = risk.evaluate(Decision("s", 6, "BTC/USDT", "default", 0.0, 1.0, 0.0, 0.0, "w", {}), view)
        assert isinstance(shrink, OrderIntent)
        assert shrink.reduce_only

        start = len(operator.messages)
        resumed = await operator.command(PREFIX, "resume", {"id": "red-2"})
        assert resumed["ok"] is True
        assert daemon.engine.risk.state is TradingState.ACTIVE
        status = f"{PREFIX}/status"
        await operator.wait_for(lambda m: m.topic == status and m.json()["state"] == "ACTIVE", start=start)


def ma_params(daemon) -> dict:
    slot = daemon.engine.pipelines["default"].slots.get("ma_crossover")
    return {} if slot is None else slot.instance.params.model_dump()


async def test_module_verbs_change_the_running_modules_end_to_end(mosquitto, kit, subscribe):
    """disable, enable, set-param and reload travel over the broker to the hot-swap machinery."""
    path = kit.config(kit.mqtt(mosquitto))
    document = yaml.safe_load(path.read_text())
    document["modules"]["bollinger"] = {}
    path.write_text(yaml.safe_dump(document))
    async with (
        kit.run(path) as daemon,
        subscribe(mosquitto.port, REPLY) as operator,
    ):
        assert "ma_crossover" in daemon.engine.pipelines["default"].slots

        disabled = await operator.command(PREFIX, "module", {"id": "m-1", "action": "disable", "name": "ma_crossover"})
        assert disabled["ok"] is True, disabled["message"]
        assert "ma_crossover" not in daemon.engine.pipelines["default"].slots

        again = await operator.command(PREFIX, "module", {"id": "m-2", "action": "disable", "name": "ma_crossover"})
        assert again["ok"] is True
        assert "no change" in again["message"]

        last = await operator.command(PREFIX, "module", {"id": "m-2b", "action": "disable", "name": "bollinger"})
        assert last["ok"] is False  # nothing would decide any more: refused, nothing changed
        assert "no module is enabled" in last["message"]
        assert "bollinger" in daemon.engine.pipelines["default"].slots

        enabled = await operator.command(PREFIX, "module", {"id": "m-3", "action": "enable", "name": "ma_crossover"})
        assert enabled["ok"] is True, enabled
        assert "ma_crossover" in daemon.engine.pipelines["default"].slots

        changed = await operator.command(
            PREFIX, "set-param", {"id": "m-4", "module": "ma_crossover", "key": "fast", "value": 3}
        )
        assert changed["ok"] is True, changed
        assert ma_params(daemon)["fast"] == 3

        invalid = await operator.command(
            PREFIX, "set-param", {"id": "m-5", "module": "ma_crossover", "key": "fast", "value": -1}
        )
        assert invalid["ok"] is False
        assert "fast" in invalid["message"]
        assert ma_params(daemon)["fast"] == 3  # the refused value changed nothing

        before = daemon.engine.pipelines["default"].slots["ma_crossover"]
        reloaded = await operator.command(PREFIX, "module", {"id": "m-6", "action": "reload", "name": "ma_crossover"})
        assert reloaded["ok"] is True, reloaded
        assert reloaded["data"]["swapped"] == ["ma_crossover"]
        assert daemon.engine.pipelines["default"].slots["ma_crossover"] is not before

        everything = await operator.command(PREFIX, "module", {"id": "m-7", "action": "reload"})
        assert everything["ok"] is True, everything

        unknown = await operator.command(PREFIX, "module", {"id": "m-8", "action": "enable", "name": "nosuch"})
        assert unknown["ok"] is False
        assert "unknown module 'nosuch'" in unknown["message"]


async def test_a_repeated_command_id_is_not_executed_twice(mosquitto, kit, subscribe):
    async with (
        kit.run(kit.config(kit.mqtt(mosquitto))) as daemon,
        subscribe(mosquitto.port, REPLY) as operator,
    ):
        first = await operator.command(PREFIX, "halt", {"id": "dup-1"})
        assert daemon.engine.risk.state is TradingState.HALTED
        await operator.command(PREFIX, "resume", {"id": "dup-2"})
        assert daemon.engine.risk.state is TradingState.ACTIVE
        again = await operator.command(PREFIX, "halt", {"id": "dup-1"})
        assert daemon.engine.risk.state is TradingState.ACTIVE  # the second halt was not executed
        # The same id under another verb is the same command too.
        other = await operator.command(PREFIX, "pause", {"id": "dup-1"})
        assert daemon.engine.risk.state is TradingState.ACTIVE
        assert kit.service(daemon).commands.executed == 2
    assert first["duplicate"] is False
    assert again["duplicate"] is True
    assert again["ok"] == first["ok"]
    assert again["message"] == first["message"]
    assert other["duplicate"] is True
    assert other["verb"] == "halt"


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_a_command_retained_before_the_daemon_connects_is_not_executed(mosquitto, kit, subscribe, protocol):
    # Both protocols flag a retained message delivered on subscription.
    async with subscribe(mosquitto.port, REPLY) as operator:
        await operator.publish(f"{PREFIX}/cmd/halt", {"id": "ret-1"}, retain=True)
        async with kit.run(kit.config(kit.mqtt(mosquitto, protocol=protocol))) as daemon:
            status = await operator.command(PREFIX, "status", {"id": "after-retained"})
            assert daemon.engine.risk.state is TradingState.ACTIVE
        assert status["data"]["state"] == "ACTIVE"
        assert not any(m.json().get("id") == "ret-1" for m in operator.on(REPLY))


async def test_a_retained_command_sent_live_is_not_executed_either(mosquitto, kit, subscribe):
    # MQTT 5 (retain-as-published) lets the daemon see the flag on live messages too.
    async with (
        kit.run(kit.config(kit.mqtt(mosquitto))) as daemon,
        subscribe(mosquitto.port, REPLY) as operator,
    ):
        await operator.publish(f"{PREFIX}/cmd/halt", {"id": "ret-2"}, retain=True)
        status = await operator.command(PREFIX, "status", {"id": "after-live-retained"})
        assert daemon.engine.risk.state is TradingState.ACTIVE
        await operator.publish(f"{PREFIX}/cmd/halt", b"", retain=True)  # clear it
    assert status["data"]["state"] == "ACTIVE"
    assert not any(m.json().get("id") == "ret-2" for m in operator.on(REPLY))


BAD_COMMANDS = [
    ("explode", b'{"id": "u-1"}', "u-1", "unknown verb 'explode'"),
    ("halt", b"not json", None, "not JSON"),
    ("halt", b"\xff\xfe", None, "not JSON"),
    ("halt", b"[1, 2]", None, "JSON object"),
    ("halt", b'{"reason": "no id"}', None, "id"),
    ("halt", b'{"id": "bad id with spaces"}', "bad id with spaces", "id"),
    ("halt", b'{"id": "x-1", "force": true}', "x-1", "force"),
    ("halt", b'{"id": "x-9", "reason": 5}', "x-9", "reason"),
    ("module", b'{"id": "x-2", "action": "enable"}', "x-2", "needs the module's name"),
    ("module", b'{"id": "x-3", "action": "explode", "name": "ma_crossover"}', "x-3", "action"),
    ("module", b'{"id": "x-4", "action": "enable", "name": "../etc/passwd"}', "x-4", "name"),
    ("set-param", b'{"id": "x-5", "module": "ma_crossover", "key": "fast"}', "x-5", "value"),
    ("set-param", b'{"id": "x-6", "module": "ma_crossover", "key": "a.b", "value": 1}', "x-6", "key"),
    ("status", b'{"id": "x-7", "reply_to": "orchestrator/t1/cmd/halt"}', "x-7", "command topic"),
    ("status", b'{"id": "x-8", "reply_to": "a/+/b"}', "x-8", "wildcards"),
    # Mosquitto drops a client publishing to a topic with a control character: the daemon would go offline.
    ("status", b'{"id": "x-10", "reply_to": "ops/\\n"}', "x-10", "control characters"),
    ("status", b'{"id": "x-11", "reply_to": "ops/\\ud800"}', "x-11", "no Unicode text"),
    ("status", b'{"id": "x-12", "reply_to": "orchestrator/t1/online"}', "x-12", "own topics"),
    ("halt", b'{"id": "x-13", "id": "x-14"}', None, "more than once"),
    ("halt", b'{"id": "x-15", "reason": NaN}', "x-15", "NaN"),
    ("halt", b"[" * 3000 + b"]" * 3000, None, "nested"),
    ("halt", b'{"id": "big", "reason": "' + b"x" * 9000 + b'"}', None, "exceeds the limit"),
]


async def test_bad_commands_get_an_error_reply_and_change_nothing(mosquitto, kit, subscribe):
    async with (
        kit.run(kit.config(kit.mqtt(mosquitto))) as daemon,
        subscribe(mosquitto.port, REPLY) as operator,
    ):
        for verb, payload, echo_id, error in BAD_COMMANDS:
            start = len(operator.messages)
            await operator.publish(f"{PREFIX}/cmd/{verb}", payload)
            reply = (await operator.wait_for(lambda m: m.topic == REPLY, start=start)).json()
            case = f"{verb} {payload[:60]!r}"
            assert reply["ok"] is False, case
            assert reply["id"] == echo_id, case
            assert error in reply["message"], case
            assert reply["verb"] == verb, case
            assert daemon.engine.risk.state is TradingState.ACTIVE, case
        assert kit.service(daemon).commands.refused == len(BAD_COMMANDS)
        assert kit.service(daemon).commands.executed == 0
        still = await operator.command(PREFIX, "status", {"id": "alive"})  # the channel survived
    assert still["ok"] is True


async def test_replies_go_to_reply_to_when_given(mosquitto, kit, subscribe):
    mine = "operator/phone/replies"
    async with (
        kit.run(kit.config(kit.mqtt(mosquitto))),
        subscribe(mosquitto.port, mine, REPLY) as operator,
    ):
        reply = await operator.command(PREFIX, "status", {"id": "rt-1", "reply_to": mine}, reply_topic=mine)
        await asyncio.sleep(0.1)
    assert reply["ok"] is True
    assert operator.on(REPLY) == []


async def test_commands_can_be_turned_off(mosquitto, kit, subscribe):
    mqtt = kit.mqtt(mosquitto, commands={"enabled": False})
    async with (
        kit.run(kit.config(mqtt)) as daemon,
        subscribe(mosquitto.port, f"{PREFIX}/#") as operator,
    ):
        await operator.publish(f"{PREFIX}/cmd/halt", {"id": "off-1"})
        await operator.wait_for(lambda m: m.topic == f"{PREFIX}/heartbeat", start=len(operator.messages))
        await asyncio.sleep(0.3)
        assert daemon.engine.risk.state is TradingState.ACTIVE
        assert kit.service(daemon).commands is None
    assert operator.on(REPLY) == []
