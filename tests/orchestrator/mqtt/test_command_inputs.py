"""Adversarial command bodies against a real (not running) daemon: each gets a clear refusal
and changes nothing, or does exactly what it says. No broker: the handler is driven directly."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.config.loader import load_config
from orchestrator.control import CommandResult
from orchestrator.daemon import Daemon
from orchestrator.engine.listener import EngineListener
from orchestrator.journal.store import OrderJournal
from orchestrator.mqtt.commands import MAX_DEPTH, CommandHandler
from orchestrator.mqtt.topics import Topics
from orchestrator.risk.state import TradingState

PREFIX = "orchestrator/t1"
TOPICS = Topics(PREFIX)


def write_config(tmp_path: Path, modules: dict[str, Any], **sections: Any) -> Path:
    config: dict[str, Any] = {
        "instance": "t1",
        "state_dir": str(tmp_path / "state"),
        "log": {"level": "warning", "format": "json"},
        "feed": {"kind": "simulated", "simulated": {"seed": 3, "speed": 0, "prices": {"BTC/USDT": 60000.0}}},
        "symbols": ["BTC/USDT", "ETH/USDT"],
        "modules": modules,
        "execution": {"venue": "paper", "paper": {"initial_cash": 100000}},
        **sections,
    }
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


MODULES = {"ma_crossover": {"params": {"fast": 2, "slow": 5}}, "bollinger": {"enabled": False}}


@pytest.fixture
def daemon(tmp_path: Path) -> Daemon:
    return Daemon(load_config(write_config(tmp_path, MODULES), env={}))


def handler_for(daemon: Daemon) -> CommandHandler:
    return CommandHandler(daemon.control, TOPICS, max_payload_bytes=8192, remember_ids=64)


def snapshot(daemon: Daemon) -> tuple[Any, ...]:
    manager = daemon.hot_swap.manager
    slots = {(b, n): s.params for b, p in daemon.engine.pipelines.items() for n, s in p.slots.items()}
    return (daemon.engine.risk.state, manager.loaded.config.modules, slots, list(manager.overrides))


async def send(handler: CommandHandler, verb: str, body: dict[str, Any] | bytes) -> Any:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = await handler.handle(verb, payload, retained=False)
    assert reply is not None
    json.loads(reply.payload("t1"))  # always publishable JSON
    return reply


def slot_params(daemon: Daemon, name: str) -> Any:
    return daemon.engine.pipelines["default"].slots[name].params


# ---------------------------------------------------------------- set-param value types


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("fast", True, "must be an integer (got a boolean, True; a boolean is not read as a number"),
        ("z_scale", True, "must be a number (got a boolean, True"),  # lax: 1.0
        ("z_scale", False, "z_scale"),
        ("z_scale", "fast", "z_scale"),
        ("fast", 3.5, "fast"),
        ("fast", [3], "fast"),
        ("fast", {"value": 3}, "fast"),
        ("fast", None, "fast"),
        ("fast", 10**30, "fast"),
        ("slow", 10**4000, "constructor raised OverflowError"),
        ("nope", 3, "modules.ma_crossover.params.nope: unknown key"),
    ],
)
async def test_set_param_refuses_wrong_types_even_when_lax_validation_would_convert(daemon, key, value, expected):
    before = snapshot(daemon)
    body = {"id": "p-1", "module": "ma_crossover", "key": key, "value": value}
    reply = await send(handler_for(daemon), "set-param", body)
    assert reply.ok is False
    assert expected in reply.message
    assert len(reply.message) < 1000  # a huge value is named, not copied
    assert snapshot(daemon) == before


@pytest.mark.parametrize(
    ("key", "value", "stored"),
    [("fast", 3.0, 3), ("z_scale", 3, 3.0), ("fast", 4, 4), ("fast", "3", 3), ("z_scale", "2.5", 2.5)],
)
async def test_set_param_takes_a_number_however_written_as_the_file_would(daemon, key, value, stored):
    body = {"id": "p-2", "module": "ma_crossover", "key": key, "value": value}
    reply = await send(handler_for(daemon), "set-param", body)
    assert reply.ok is True, reply.message
    assert getattr(slot_params(daemon, "ma_crossover"), key) == stored
    assert type(getattr(slot_params(daemon, "ma_crossover"), key)) is type(stored)


async def test_set_param_on_a_disabled_module_is_validated_and_it_can_still_be_enabled(daemon):
    handler = handler_for(daemon)
    before = snapshot(daemon)
    for n, (key, value) in enumerate([("nope", 3), ("window", "abc"), ("window", True), ("window", 1)]):
        reply = await send(handler, "set-param", {"id": f"d-{n}", "module": "bollinger", "key": key, "value": value})
        assert reply.ok is False, (key, value)
        assert f"modules.bollinger.params.{key}" in reply.message
    assert snapshot(daemon) == before
    accepted = await send(handler, "set-param", {"id": "d-ok", "module": "bollinger", "key": "window", "value": 25})
    assert accepted.ok is True
    assert "no change to the running modules" in accepted.message
    assert daemon.hot_swap.manager.overrides == ["set bollinger.window=25"]  # a reload will say it replaced it
    enabled = await send(handler, "module", {"id": "d-on", "action": "enable", "name": "bollinger"})
    assert enabled.ok is True, enabled.message
    assert slot_params(daemon, "bollinger").window == 25


SOURCE = """\
from pydantic import Field
from orchestrator import AnalysisModule, EventKind, ModuleOutput, ModuleParams


class SourceParams(ModuleParams):
    feature: str = Field("level")
    loud: bool = False


class Source(AnalysisModule[SourceParams]):
    name = "source"
    version = "1.0.0"
    consumes = frozenset({EventKind.BAR, EventKind.TRADE, EventKind.BOOK})
    Params = SourceParams
    latency_budget_us = 1e9

    def on_bar(self, bar, ctx):
        return ModuleOutput(prediction=None, features={self.params.feature: 1.0})

    def on_trade(self, trade, ctx):
        return ModuleOutput(prediction=None, features={self.params.feature: 1.0})

    def on_book(self, book, ctx):
        return ModuleOutput(prediction=None, features={self.params.feature: 1.0})


MODULE = Source
"""

READER = """\
from orchestrator import AnalysisModule, EventKind, ModuleOutput, ModuleParams


class Reader(AnalysisModule[ModuleParams]):
    name = "reader"
    version = "1.0.0"
    consumes = frozenset({EventKind.BOOK})
    depends_on = ("source",)
    latency_budget_us = 1e9

    def on_book(self, book, ctx):
        seen = ctx.output("source", book.symbol)
        if seen is None:
            return None
        return ModuleOutput(prediction=None, features={"seen": seen.features["level"]})


MODULE = Reader
"""


async def test_set_param_that_would_break_a_dependent_module_is_refused(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "source.py").write_text(textwrap.dedent(SOURCE))
    (plugins / "reader.py").write_text(textwrap.dedent(READER))
    path = write_config(tmp_path, {"source": {}, "reader": {}}, modules_path=[str(plugins)])
    daemon = Daemon(load_config(path, env={}))
    before = snapshot(daemon)
    body = {"id": "b-1", "module": "source", "key": "feature", "value": "x"}
    reply = await send(handler_for(daemon), "set-param", body)
    assert reply.ok is False
    assert "reader (depends on source)" in reply.message
    assert "KeyError" in reply.message
    assert snapshot(daemon) == before
    fine = await send(handler_for(daemon), "set-param", {"id": "b-2", "module": "source", "key": "feature", "value": 7})
    assert fine.ok is False  # a number is no feature name, converted or not
    assert snapshot(daemon) == before


async def test_a_number_is_not_taken_for_a_flag(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "source.py").write_text(textwrap.dedent(SOURCE))
    daemon = Daemon(load_config(write_config(tmp_path, {"source": {}}, modules_path=[str(plugins)]), env={}))
    handler = handler_for(daemon)
    before = snapshot(daemon)
    for n, value in enumerate([1, 0, 0.0, [True]]):
        reply = await send(handler, "set-param", {"id": f"f-{n}", "module": "source", "key": "loud", "value": value})
        assert reply.ok is False, value
        assert "modules.source.params.loud: must be true or false" in reply.message
        assert ("nor a number as a boolean" in reply.message) is (not isinstance(value, list))  # lax takes 0 and 1
    assert snapshot(daemon) == before
    reply = await send(handler, "set-param", {"id": "f-ok", "module": "source", "key": "loud", "value": True})
    assert reply.ok is True, reply.message
    assert slot_params(daemon, "source").loud is True


# ---------------------------------------------------------------- module enable / disable


@pytest.mark.parametrize(
    ("action", "name", "ok", "expected"),
    [
        ("enable", "nope", False, "unknown module 'nope'"),
        ("disable", "nope", False, "unknown module 'nope'"),
        ("reload", "nope", False, "unknown module 'nope'"),
        ("enable", "ma_crossover", True, "no change to the running modules"),  # already enabled
        ("disable", "bollinger", True, "no change to the running modules"),  # already disabled
        ("reload", "bollinger", False, "is disabled: enable it first"),
        ("disable", "ma_crossover", False, "no module is enabled"),  # the only one deciding
        ("enable", "../modules/ma_crossover", False, "invalid body: name"),
        ("enable", "ma_crossover/x", False, "invalid body: name"),
    ],
)
async def test_module_commands_on_unknown_or_unchanged_modules_change_nothing(daemon, action, name, ok, expected):
    before = snapshot(daemon)
    reply = await send(handler_for(daemon), "module", {"id": "m-1", "action": action, "name": name})
    assert (reply.ok, reply.id) == (ok, "m-1")
    assert expected in reply.message
    assert snapshot(daemon) == before


# ---------------------------------------------------------------- strict JSON, reply_to


@pytest.mark.parametrize(
    ("payload", "echo", "expected"),
    [
        (b'{"id": "a", "id": "b"}', None, "key 'id' appears more than once"),  # which id was meant?
        (b'{"id": "a", "reason": "x", "reason": "y"}', "a", "key 'reason' appears more than once"),
        (b'{"id": "a", "reason": NaN}', "a", "NaN is not a JSON number"),
        (b'{"id": "a", "reason": -Infinity}', "a", "-Infinity is not a JSON number"),
        (b'{"id": "a", "reason": 1e999}', "a", "number 1e999 is beyond a float's range"),
        (b'{"id": "a", "reason": "\\ud800"}', "a", "string \\ud800 is no Unicode text"),
        (b'{"id": "\\udfff"}', None, "string \\udfff is no Unicode text"),
        (b'{"id": "a", "\\ud800": 1}', "a", "no Unicode text"),
        (b"[" * 4000 + b"]" * 4000, None, "nested more than"),  # beyond the parser's own stack
        (b'{"id": "a", "reason": ' + b"[" * 40 + b"]" * 40 + b"}", "a", f"nested more than {MAX_DEPTH} levels"),
        (b'{"id": "a", "reason": "' + b"x" * 9000 + b'"}', None, "exceeds the limit"),
        (b"\xff\xfe", None, "not JSON (not UTF-8)"),
        (b'{"id": 1' + b"0" * 5000 + b"}", None, "body is not JSON"),
    ],
)
async def test_bodies_that_are_not_strict_json_are_refused_naming_why(daemon, payload, echo, expected):
    before = snapshot(daemon)
    handler = handler_for(daemon)
    reply = await send(handler, "pause", payload)
    assert (reply.ok, reply.id) == (False, echo)
    assert expected in reply.message
    assert snapshot(daemon) == before
    assert (handler.refused, handler.executed) == (1, 0)


@pytest.mark.parametrize(
    ("reply_to", "expected"),
    [
        ("ops/\n/replies", "control characters (U+000A)"),
        ("ops/\x00", "control characters (U+0000)"),
        ("ops/\x85", "control characters (U+0085)"),
        ("ops/\ufffe", "non-characters (U+FFFE)"),
        ("ops/\U0001ffff", "non-characters"),
        ("ops/\ufdd0", "non-characters"),
        ("ops/\ud800", "no Unicode text"),  # refused with the body
        ("a/+/b", "wildcards"),
        ("a/#", "wildcards"),
        ("$SYS/broker/x", "broker ($) topic"),
        ("", "1 to 256 characters"),
        ("x" * 257, "1 to 256 characters"),
        (f"{PREFIX}/cmd/halt", "command topic"),
        ("orchestrator/t2/cmd/halt", "command topic"),  # another daemon's
        ("site/box/cmd/resume", "command topic"),
        (f"{PREFIX}/status", "daemon's own topics"),
        (f"{PREFIX}/online", "daemon's own topics"),
        (f"{PREFIX}/modules/ma_crossover", "daemon's own topics"),
        (PREFIX, "daemon's own topics"),
    ],
)
async def test_a_reply_to_the_broker_would_refuse_or_readers_would_misread_is_refused(daemon, reply_to, expected):
    reply = await send(handler_for(daemon), "halt", {"id": "r-1", "reply_to": reply_to})
    assert (reply.ok, reply.id, reply.topic) == (False, "r-1", TOPICS.reply)
    assert expected in reply.message
    assert daemon.engine.risk.state is TradingState.ACTIVE


@pytest.mark.parametrize(
    "reply_to", ["ops/phone/replies", f"{PREFIX}/replies/phone", f"{PREFIX}/cmd/reply", "orchestrator/t2/cmd/reply"]
)
async def test_plain_reply_topics_are_used(daemon, reply_to):
    reply = await send(handler_for(daemon), "status", {"id": "r-2", "reply_to": reply_to})
    assert (reply.ok, reply.topic) == (True, reply_to)


# ---------------------------------------------------------------- never twice


class Gated:
    """Module operations whose enable waits for the test to let it finish."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = asyncio.Event()

    async def enable(self, name: str) -> CommandResult:
        self.calls.append(name)
        await self.release.wait()
        return CommandResult(True, f"{name} enabled")

    async def disable(self, name: str) -> CommandResult:
        raise NotImplementedError

    async def reload(self, name: str | None) -> CommandResult:
        raise NotImplementedError

    async def set_param(self, name: str, key: str, value: Any) -> CommandResult:
        raise NotImplementedError

    async def reload_config(self) -> CommandResult:
        raise NotImplementedError


async def test_a_repeat_of_a_command_still_running_waits_for_it_and_does_not_run_again(daemon):
    daemon.control.modules = operations = Gated()
    handler = handler_for(daemon)
    body = json.dumps({"id": "slow-1", "action": "enable", "name": "ma"}).encode()
    first = asyncio.create_task(handler.handle("module", body, retained=False))
    again = asyncio.create_task(handler.handle("module", body, retained=False))
    while not operations.calls:
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    operations.release.set()
    one, two = await first, await again
    assert operations.calls == ["ma"]
    assert one is not None
    assert two is not None
    assert (one.ok, one.duplicate, two.ok, two.duplicate) == (True, False, True, True)
    assert two.message == one.message == "ma enabled"
    assert handler.executed == 1


async def test_a_command_interrupted_midway_is_not_run_again_under_its_id(daemon):
    daemon.control.modules = operations = Gated()
    handler = handler_for(daemon)
    body = json.dumps({"id": "cut-1", "action": "enable", "name": "ma"}).encode()
    task = asyncio.create_task(handler.handle("module", body, retained=False))
    while not operations.calls:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    operations.release.set()
    retry = await handler.handle("module", body, retained=False)
    assert retry is not None
    assert (retry.ok, retry.duplicate, retry.id) == (False, True, "cut-1")
    assert "outcome is unknown" in retry.message
    assert operations.calls == ["ma"]


# ---------------------------------------------------------------- DaemonControl, every channel


class Reasons(EngineListener):
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def on_trading_state(self, state: TradingState, reason: str) -> None:
        self.reasons.append(reason)


async def test_a_reason_that_is_no_unicode_text_is_journaled_escaped_and_the_state_still_changes(kit):
    """The control socket passes reasons unchecked: a lone surrogate once failed the
    journal's whole batch (orders and fills queued with it were lost)."""
    async with kit.run(kit.config(None), connected=False) as daemon:
        reasons = Reasons()
        daemon.engine.listeners.append(reasons)
        assert daemon.control.halt("drill \ud800").ok
        assert daemon.engine.risk.state is TradingState.HALTED  # a halt is never refused over its reason
        assert daemon.control.resume("\udcff").ok
        writer = daemon.execution.writer
        assert writer is not None
        await asyncio.to_thread(writer.flush)
        assert writer.failures == 0
        journal = OrderJournal(daemon.config.journal.resolve_path(daemon.config.state_dir), create=False)
        journaled = [record.reason for record in journal.trading_states()]
    assert reasons.reasons == ["drill \\ud800", "\\udcff"]
    assert journaled[:2] == ["\\udcff", "drill \\ud800"]


async def test_a_set_param_value_holding_no_unicode_text_is_refused_before_the_modules_see_it(daemon):
    daemon.control.modules = operations = Gated()
    result = await daemon.control.set_param("ma", "label", ["ok", {"k": "\ud800"}])
    assert result.ok is False
    assert "no Unicode text" in result.message
    assert operations.calls == []
