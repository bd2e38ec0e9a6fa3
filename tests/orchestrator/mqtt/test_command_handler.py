"""The command handler on a real (not running) daemon: module verbs pass DaemonControl's answer through."""

from __future__ import annotations

import json

import pytest

from orchestrator.config.loader import load_config
from orchestrator.control import CommandResult
from orchestrator.daemon import Daemon
from orchestrator.mqtt.commands import VERBS, CommandHandler
from orchestrator.mqtt.topics import Topics

TOPICS = Topics("orchestrator/t1")


class RecordingModuleOperations:
    """Stands in for the hot-swap machinery's ModuleOperations: records calls, answers with data."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def enable(self, name: str) -> CommandResult:
        self.calls.append(("enable", name))
        return CommandResult(True, f"{name} enabled", {"module": name, "state": "active"})

    async def disable(self, name: str) -> CommandResult:
        self.calls.append(("disable", name))
        return CommandResult(False, f"{name}: not enabled")

    async def reload(self, name: str | None) -> CommandResult:
        self.calls.append(("reload", name))
        return CommandResult(True, "reloaded", {"swapped": [name] if name else ["a", "b"], "version": "2.0.0"})

    async def set_param(self, name: str, key: str, value: object) -> CommandResult:
        self.calls.append(("set_param", name, key, value))
        return CommandResult(True, f"{name}.{key} = {value!r}", {"params": {key: value}})

    async def reload_config(self) -> CommandResult:
        return CommandResult(True, "config reloaded")


@pytest.fixture
def daemon(kit) -> Daemon:
    return Daemon(load_config(kit.config(None), env={}))


def handler_for(daemon: Daemon, remember: int = 16) -> CommandHandler:
    return CommandHandler(daemon.control, TOPICS, max_payload_bytes=4096, remember_ids=remember)


def body(**fields) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("verb", "fields", "call", "ok", "data"),
    [
        ("module", {"action": "enable", "name": "ma"}, ("enable", "ma"), True, {"module": "ma", "state": "active"}),
        ("module", {"action": "disable", "name": "ma"}, ("disable", "ma"), False, {}),
        ("module", {"action": "reload", "name": "ma"}, ("reload", "ma"), True, {"swapped": ["ma"], "version": "2.0.0"}),
        ("module", {"action": "reload"}, ("reload", None), True, {"swapped": ["a", "b"], "version": "2.0.0"}),
        (
            "set-param",
            {"module": "ma", "key": "fast", "value": [1, {"x": None}]},
            ("set_param", "ma", "fast", [1, {"x": None}]),
            True,
            {"params": {"fast": [1, {"x": None}]}},
        ),
    ],
)
async def test_module_verbs_pass_daemon_controls_result_through_unchanged(daemon, verb, fields, call, ok, data):
    operations = RecordingModuleOperations()
    daemon.control.modules = operations
    reply = await handler_for(daemon).handle(verb, body(id="c-1", **fields), retained=False)
    assert operations.calls == [call]
    assert reply is not None
    assert (reply.ok, reply.data) == (ok, data)
    assert reply.message == (await getattr(operations, call[0])(*call[1:])).message
    published = json.loads(reply.payload("t1"))
    assert published["data"] == data
    assert published["id"] == "c-1"
    assert published["instance"] == "t1"


async def test_without_module_operations_the_verbs_answer_not_available(daemon):
    daemon.control.modules = None  # a daemon whose hot-swap machinery is not attached
    handler = handler_for(daemon)
    for n, (verb, fields) in enumerate(
        [
            ("module", {"action": "enable", "name": "ma"}),
            ("module", {"action": "disable", "name": "ma"}),
            ("module", {"action": "reload", "name": "ma"}),
            ("set-param", {"module": "ma", "key": "fast", "value": 3}),
        ]
    ):
        reply = await handler.handle(verb, body(id=f"n-{n}", **fields), retained=False)
        assert reply is not None
        assert reply.ok is False
        assert "not available" in reply.message
    assert handler.executed == 4


async def test_an_exception_inside_a_command_becomes_an_error_reply(daemon):
    class Exploding(RecordingModuleOperations):
        async def enable(self, name: str) -> CommandResult:
            raise RuntimeError("boom")

    daemon.control.modules = Exploding()
    reply = await handler_for(daemon).handle("module", body(id="x", action="enable", name="ma"), retained=False)
    assert reply is not None
    assert reply.ok is False
    assert "internal error: RuntimeError: boom" in reply.message


async def test_remembered_ids_are_bounded_and_the_oldest_may_run_again(daemon):
    handler = handler_for(daemon, remember=16)
    for n in range(17):
        await handler.handle("status", body(id=f"s-{n}"), retained=False)
    again = await handler.handle("status", body(id="s-16"), retained=False)
    assert again is not None
    assert again.duplicate
    oldest = await handler.handle("status", body(id="s-0"), retained=False)
    assert oldest is not None
    assert not oldest.duplicate
    assert handler.executed == 18


async def test_retained_messages_get_no_reply_and_no_execution(daemon):
    handler = handler_for(daemon)
    assert await handler.handle("halt", body(id="r"), retained=True) is None
    assert handler.executed == 0
    assert daemon.engine.risk.state.value == "ACTIVE"


def test_every_verb_has_a_strict_body_with_an_id():
    assert set(VERBS) == {"status", "pause", "resume", "reduce", "halt", "module", "set-param"}
    for model in VERBS.values():
        assert model.model_config["extra"] == "forbid"
        assert model.model_fields["id"].is_required()
