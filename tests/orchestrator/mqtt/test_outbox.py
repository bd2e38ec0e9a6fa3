"""The outbox: latest values for retained topics, bounded lossy streams, the rate-limited listener."""

from __future__ import annotations

import asyncio
import json
import math

from orchestrator.mqtt import payloads
from orchestrator.mqtt.config import QosConfig
from orchestrator.mqtt.outbox import MqttListener, Outbox, Outgoing, TokenBucket
from orchestrator.mqtt.topics import Topics
from orchestrator.orders import Fill, OrderIntent, OrderStatus, OrderUpdate, Side
from orchestrator.risk.state import TradingState
from orchestrator.signals import Decision

TOPICS = Topics("orchestrator/x")


def decision(n: int, target: float = 0.5) -> Decision:
    return Decision(f"t-{n}", 1_000 + n, "BTC/USDT", "default", target, 0.8, 0.001, 0.01, "confidence", {"m": 0.5})


def fill(n: int) -> Fill:
    return Fill(f"f-{n}", f"o-{n}", f"t-{n}", 2_000 + n, "paper", "BTC/USDT", Side.BUY, 0.1, 60_000.0, 4.5, "USDT")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_retained_topic_keeps_only_its_newest_unsent_value():
    outbox = Outbox(TOPICS, QosConfig(), 10)
    outbox.put_latest(TOPICS.status, b"1", 1)
    outbox.put_latest(TOPICS.status, b"2", 1)
    batch = outbox.take(100)
    assert batch == [Outgoing(TOPICS.status, b"2", 1, retain=True)]
    assert outbox.take(100) == []
    assert not outbox.wakeup.is_set()


def test_after_a_reconnect_every_retained_value_goes_out_again_but_deletions_only_once():
    outbox = Outbox(TOPICS, QosConfig(), 10)
    outbox.put_latest(TOPICS.status, b"s", 1)
    outbox.put_latest("orchestrator/x/modules/a", b"m", 1)
    outbox.clear_latest("orchestrator/x/modules/gone")
    assert [m.payload for m in outbox.take(100)] == [b"s", b"m", b""]
    outbox.resend_latest()
    assert outbox.wakeup.is_set()
    assert [m.topic for m in outbox.take(100)] == [TOPICS.status, "orchestrator/x/modules/a"]
    assert outbox.latest_topics() == [TOPICS.status, "orchestrator/x/modules/a"]


def test_streams_are_bounded_dropping_the_oldest_and_counting():
    outbox = Outbox(TOPICS, QosConfig(decisions=0, orders=1), 3)
    for n in range(5):
        outbox.push_stream(decision(n))
    assert outbox.dropped == 2
    batch = outbox.take(100)
    assert [json.loads(m.payload)["trace_id"] for m in batch] == ["t-2", "t-3", "t-4"]
    assert {m.topic for m in batch} == {TOPICS.decisions}
    assert {m.qos for m in batch} == {0}
    assert not any(m.retain for m in batch)


def test_take_serves_direct_then_retained_then_streams_within_the_limit():
    outbox = Outbox(TOPICS, QosConfig(), 10)
    outbox.push_stream(fill(1))
    outbox.put_latest(TOPICS.status, b"s", 1)
    outbox.push_direct(Outgoing("r", b"reply", 1))
    first = outbox.take(2)
    assert [m.topic for m in first] == ["r", TOPICS.status]
    assert outbox.wakeup.is_set()  # more to come
    rest = outbox.take(2)
    assert [m.topic for m in rest] == [TOPICS.fills]
    assert json.loads(rest[0].payload)["kind"] == "fill"


def test_token_bucket_allows_a_burst_then_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(2.0, 3.0, clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now = 0.5
    assert bucket.take()
    assert not bucket.take()
    clock.now = 100.0
    assert sum(bucket.take() for _ in range(10)) == 3  # never more than the capacity saved up


def test_the_listener_rate_limits_each_stream_on_its_own():
    clock = FakeClock()
    outbox = Outbox(TOPICS, QosConfig(), 100)
    due = asyncio.Event()
    listener = MqttListener(
        outbox, TokenBucket(1.0, 2.0, clock), TokenBucket(1.0, 1.0, clock), TokenBucket(1.0, 1.0, clock), due
    )
    for n in range(10):
        listener.on_decision(decision(n))
    intent = OrderIntent("o-1", "t-1", 5, "paper", "BTC/USDT", Side.SELL, 0.2)
    listener.on_order_intent(intent)
    listener.on_order_intent(intent)  # over the orders budget...
    listener.on_fill(fill(1))  # ...which does not starve the fills
    listener.on_order_update(OrderUpdate("o-1", "t-1", 5, "paper", "BTC/USDT", Side.SELL, 0.2, OrderStatus.FILLED))
    assert due.is_set()  # positions changed: status is due
    assert (listener.decisions_skipped, listener.orders_skipped, listener.fills_skipped) == (8, 1, 0)
    kinds = [json.loads(m.payload)["kind"] for m in outbox.take(100)]
    assert kinds == ["decision", "decision", "order", "fill"]  # the FILLED update is left to the fill
    clock.now = 1.0
    listener.on_order_update(OrderUpdate("o-2", "t-2", 6, "paper", "BTC/USDT", Side.BUY, 0.2, OrderStatus.REJECTED))
    rejected = json.loads(outbox.take(100)[0].payload)
    assert (rejected["event"], rejected["status"]) == ("update", "rejected")
    due.clear()
    listener.on_trading_state(TradingState.HALTED, "test")
    assert due.is_set()


def test_no_bucket_means_no_decision_stream():
    outbox = Outbox(TOPICS, QosConfig(), 100)
    listener = MqttListener(outbox, None, None, None, asyncio.Event())
    listener.on_decision(decision(1))
    assert len(outbox) == 0
    assert listener.decisions_skipped == 1


def test_payloads_are_strict_json_with_a_schema_version():
    body = payloads.decision_message(decision(1, target=0.25))
    raw = payloads.encode(body)
    parsed = json.loads(raw)
    assert parsed["schema"] == payloads.SCHEMA_VERSION
    assert parsed["ts"] == 1_001
    assert parsed["contributions"] == {"m": 0.5}
    weird = payloads.encode({"a": math.nan, "b": [math.inf, 1.5], "c": TradingState.HALTED, "d": {1: object}})
    assert json.loads(weird)["a"] is None
    assert json.loads(weird)["b"] == [None, 1.5]
    assert json.loads(weird)["c"] == "HALTED"
    assert json.loads(weird)["d"]["1"].startswith("<class")


def test_topics_for_modules_and_commands():
    assert TOPICS.module("ma", "default", single_bucket=True) == "orchestrator/x/modules/ma"
    assert TOPICS.module("a/b+#", "majors", single_bucket=False) == "orchestrator/x/modules/majors/a_b__"
    assert TOPICS.verb_of("orchestrator/x/cmd/halt") == "halt"
    assert TOPICS.verb_of("orchestrator/x/cmd/a/b") is None
    assert TOPICS.verb_of("orchestrator/y/cmd/halt") is None
    assert TOPICS.reply_problem("orchestrator/x/cmd/reply") is None
    assert TOPICS.reply_problem("orchestrator/x/cmd/resume") == "reply_to must not be a command topic"
    assert TOPICS.reply_problem("$SYS/x") is not None
    assert TOPICS.reply_problem("ops/replies") is None
