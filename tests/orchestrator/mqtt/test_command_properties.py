"""Property test of the command channel: arbitrary verbs and bodies (bytes, wrong types,
repeated keys, NaN, huge numbers, deep nesting, hostile reply topics) against a real
daemon's control and module manager, driven through ``CommandHandler.handle`` without
a broker.

For every message: ``handle`` never raises; a retained one gets no reply and changes
nothing; any other gets exactly one reply, publishable, with ok and a message, echoing
the id whenever the body's id could be read; a refused command (ok false) changes
neither the trading state nor any module's parameters; no id is ever executed twice.

One daemon serves every example of a run (its state carries over, like a live one's):
the properties hold between one command and the next, whatever came before.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.config.loader import load_config
from orchestrator.daemon import Daemon
from orchestrator.logs import configure_logging
from orchestrator.mqtt.commands import VERBS, CommandHandler, CommandReply
from orchestrator.mqtt.topics import Topics

PREFIX = "orchestrator/t1"
TOPICS = Topics(PREFIX)
LIMIT = 8192


# ---------------------------------------------------------------- JSON text, warts included


class Raw(str):
    """Literal JSON text: NaN, Infinity, 1e999, a 400-digit integer."""


@dataclass(frozen=True)
class Obj:
    """A JSON object as written: its pairs in order, a key possibly twice."""

    pairs: tuple[tuple[str, Any], ...]


def encode(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Obj):
        return "{" + ",".join(f"{json.dumps(k)}:{encode(v)}" for k, v in value.pairs) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    if isinstance(value, dict):
        return encode(Obj(tuple(value.items())))
    return json.dumps(value)  # a lone surrogate goes out as its \\udxxx escape


LITERALS = [Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e999"), Raw("-1e400"), Raw("1" + "0" * 400)]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from([*LITERALS, "\ud800", "a\udfffb", "x" * 300, "5", "2.5", "true", ""]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)

IDS = ["c-1", "c-2", "c-3", "A.b:c_d-9", "-lead", "x" * 129, "sp ace", "ü", "a/b", "\ud800"]
REPLY_TOS = [
    "ops/replies",
    f"{PREFIX}/replies/me",
    f"{PREFIX}/cmd/reply",
    f"{PREFIX}/cmd/halt",
    "orchestrator/t2/cmd/pause",
    f"{PREFIX}/status",
    f"{PREFIX}/online",
    "$SYS/broker/load",
    "a/+/b",
    "#",
    "",
    "t" * 300,
    "ops/\n",
    "ops/\x00",
    "ops/\ud800",
    "ops/\ufffe",
    "ops/\x9f",
]
NAMES = ["ma_crossover", "bollinger", "nope", "../modules/ma_crossover", "ma_crossover/x", "", "MA", "_x"]
KEYS = ["fast", "slow", "z_scale", "window", "num_std", "ddof", "nope", "__class__", "a.b", ""]
PARAM_VALUES = [3, 4, 2, 3.0, "3", True, 0, -1, 10**30, [3], {"v": 3}, None, 1.5, 25, 1, Raw("NaN")]

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": st.one_of(st.sampled_from(IDS), st.text(max_size=10), values),
    "reply_to": st.one_of(st.sampled_from(REPLY_TOS), st.text(max_size=16), values),
    "reason": st.one_of(st.text(max_size=20), st.text(min_size=199, max_size=202), values),
    "action": st.one_of(st.sampled_from(["enable", "disable", "reload", "Enable", ""]), values),
    "name": st.one_of(st.sampled_from(NAMES), values),
    "module": st.one_of(st.sampled_from(NAMES), values),
    "key": st.one_of(st.sampled_from(KEYS), values),
    "value": st.one_of(st.sampled_from(PARAM_VALUES), values),
    "extra": values,
}
field_pairs = st.sampled_from(sorted(FIELDS)).flatmap(lambda k: st.tuples(st.just(k), FIELDS[k]))

# Mostly-right bodies: a verb's own fields with good values, now and then a bad one.
FRESH = "@fresh@"  # replaced by a new id when sent
good_id = st.sampled_from([*[FRESH] * 8, *IDS[:2]])  # and a few that recur: duplicates
good = {
    "reply_to": st.sampled_from(REPLY_TOS[:3]),
    "reason": st.text(max_size=20),
    "action": st.sampled_from(["enable", "disable", "reload"]),
    "name": st.sampled_from(NAMES[:3]),
    "module": st.sampled_from(NAMES[:3]),
    "key": st.sampled_from(KEYS[:5]),
    "value": st.sampled_from([3, 6, 2.5, 4, 3.0, 25, 7, "3", True, [3]]),
}
OWN_FIELDS = {
    "status": [],
    "pause": ["reason"],
    "resume": ["reason"],
    "reduce": ["reason"],
    "halt": ["reason"],
    "module": ["action", "name"],
    "set-param": ["module", "key", "value"],
}


@st.composite
def verb_and_body(draw: st.DrawFn) -> tuple[str, Obj]:
    verb = draw(st.sampled_from([*sorted(VERBS), "module", "set-param", "set-param"]))  # the deep ones more often
    # Hypothesis favours zero: zero is the well-formed choice, the others the odd ones.
    pairs: list[tuple[str, Any]] = [("id", draw(FIELDS["id"] if draw(st.integers(0, 4)) == 4 else good_id))]
    for name in [*OWN_FIELDS[verb], "reply_to"]:
        if draw(st.integers(0, 3)) == 3 and name in ("reason", "name", "reply_to"):
            continue  # optional, or missing
        pairs.append((name, draw(FIELDS[name] if draw(st.integers(0, 4)) == 4 else good[name])))
    pairs.extend(draw(st.lists(field_pairs, max_size=2 if draw(st.integers(0, 3)) == 3 else 0)))
    return verb, Obj(tuple(draw(st.permutations(pairs))))


odd_verbs = st.sampled_from(["", "/", "cmd/halt", "halt/", "HALT", "reply", "set_param", "stätus", "halt\x00", "#"])
verbs = st.one_of(st.sampled_from(sorted(VERBS)), odd_verbs, st.text(max_size=12))
payloads = st.one_of(
    st.lists(field_pairs, max_size=5).map(lambda pairs: encode(Obj(tuple(pairs))).encode()),
    values.map(lambda v: encode(v).encode()),
    st.binary(max_size=48),
    st.sampled_from([b"", b"null", b"[]", b'"c-1"', b"[" * 3000, b"{" * 200, b'{"id": "c-1"', b"\xff{}"]),
    st.integers(LIMIT - 40, LIMIT + 40).map(lambda n: b'{"id": "big-1", "reason": "' + b"x" * n + b'"}'),
)
one_command = st.integers(0, 2).flatmap(
    lambda n: st.tuples(verbs, payloads) if n == 2 else verb_and_body().map(lambda vb: (vb[0], encode(vb[1]).encode()))
)
commands = st.lists(st.tuples(one_command, st.integers(0, 9).map(lambda n: n == 9)), min_size=1, max_size=6)


# ---------------------------------------------------------------- the oracle


class _Marked(dict[str, Any]):
    repeated: frozenset[str] = frozenset()


def _pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = _Marked(items)
    obj.repeated = frozenset(k for k, _ in items if [x for x, _ in items].count(k) > 1)
    return obj


def readable_id(payload: bytes) -> str | None:
    """The id a reply must echo: the body's, when it is a plain string of at most
    128 characters, named once, in a body that is JSON at all and within the limit."""
    if len(payload) > LIMIT:
        return None
    try:
        body = json.loads(payload.decode("utf-8"), object_pairs_hook=_pairs)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, _Marked) or "id" in body.repeated:
        return None
    raw = body.get("id")
    if not isinstance(raw, str) or len(raw) > 128:
        return None
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return raw


# ---------------------------------------------------------------- the daemon


@dataclass
class Rig:
    loop: asyncio.AbstractEventLoop
    daemon: Daemon
    handler: CommandHandler
    executed: set[str] = field(default_factory=set)
    replies: int = 0
    sent: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> tuple[Any, ...]:
        manager = self.daemon.hot_swap.manager
        engine = self.daemon.engine
        slots = {(b, n): s.params for b, p in engine.pipelines.items() for n, s in p.slots.items()}
        return engine.risk.state, manager.loaded.config.modules, slots, list(manager.overrides)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    config = {
        "instance": "t1",
        "state_dir": str(tmp_path / "state"),
        "log": {"level": "error", "format": "json"},
        "feed": {"kind": "simulated", "simulated": {"seed": 3, "speed": 0, "prices": {"BTC/USDT": 60000.0}}},
        "symbols": ["BTC/USDT", "ETH/USDT"],
        "modules": {"ma_crossover": {"params": {"fast": 2, "slow": 5}}, "bollinger": {"enabled": False}},
        "execution": {"venue": "paper", "paper": {"initial_cash": 100000}},
    }
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(config))
    configure_logging("error", "console")  # as the daemon logs: a log line must never be what fails
    loop = asyncio.new_event_loop()
    daemon = Daemon(load_config(path, env={}))
    handler = CommandHandler(daemon.control, TOPICS, max_payload_bytes=LIMIT, remember_ids=1_000_000)
    yield Rig(loop, daemon, handler)
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


def check_one(rig: Rig, verb: str, payload: bytes, retained: bool) -> None:
    handler = rig.handler
    rig.sent += 1
    payload = payload.replace(FRESH.encode(), f"f-{rig.sent}".encode())
    before = rig.snapshot()
    executed, refused = handler.executed, handler.refused
    reply = rig.loop.run_until_complete(handler.handle(verb, payload, retained=retained))  # never raises
    ran, refusals = handler.executed - executed, handler.refused - refused
    case = f"{verb!r} {payload[:120]!r}"
    if retained:
        assert reply is None, case
        assert (ran, refusals) == (0, 0), case
        assert rig.snapshot() == before, case
        return
    assert isinstance(reply, CommandReply), case
    rig.replies += 1
    assert isinstance(reply.ok, bool), case
    assert isinstance(reply.message, str), case
    assert reply.message, case
    published = json.loads(reply.payload("t1").decode("utf-8"))
    assert (published["ok"], published["message"], published["id"]) == (reply.ok, reply.message, reply.id), case
    assert reply.id == readable_id(payload), case
    assert reply.topic == TOPICS.reply or TOPICS.reply_problem(reply.topic) is None, case
    reply.topic.encode("utf-8")
    if reply.duplicate:
        assert (ran, refusals) == (0, 0), case
        assert reply.id in rig.executed, case
        assert rig.snapshot() == before, case
        kind = "duplicate"
    else:
        assert ran + refusals == 1, case
        if ran:
            assert reply.id is not None, case
            assert reply.id not in rig.executed, f"{case}: id executed twice"
            rig.executed.add(reply.id)
        kind = f"{'executed' if ran else 'refused'} {'ok' if reply.ok else 'not ok'}"
        if ran and reply.ok:
            rig.outcomes[f"{verb} ok"] = rig.outcomes.get(f"{verb} ok", 0) + 1
    if not reply.ok:
        assert rig.snapshot() == before, f"{case}: refused ({reply.message}) but something changed"
    rig.outcomes[kind] = rig.outcomes.get(kind, 0) + 1


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=commands)
def test_every_command_gets_one_clear_reply_and_a_refusal_changes_nothing(rig: Rig, batch) -> None:
    for (verb, payload), retained in batch:
        check_one(rig, verb, payload, retained)


def test_the_generated_commands_reach_every_outcome(rig: Rig) -> None:
    """The property is only as good as its inputs: they must execute, refuse and repeat
    (derandomized, so what this run covers does not vary from run to run)."""

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(batch=commands)
    def run(batch: list[tuple[tuple[str, bytes], bool]]) -> None:
        for (verb, payload), retained in batch:
            check_one(rig, verb, payload, retained)

    run()
    wanted = {"executed ok", "executed not ok", "refused not ok", "duplicate", "set-param ok", "module ok", "halt ok"}
    assert wanted <= set(rig.outcomes), rig.outcomes
    assert rig.daemon.hot_swap.manager.generation > 0  # module changes were applied, not only refused
