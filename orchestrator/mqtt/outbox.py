"""Everything waiting to be published, held so the event path never waits.

Three lanes, drained in this order by the one task that owns the connection:

- direct: ready messages (command replies, heartbeats), bounded;
- latest: one slot per retained topic (status, modules/<name>); a newer value
  replaces an unsent one, and after a reconnect every slot is sent again, so
  the broker gets the current state rather than a backlog;
- stream: decisions, orders and fills as the core produced them, bounded
  and lossy (the oldest go first, counted in ``dropped``).

The listener only appends an already-built frozen object to a deque and
sets an event: no formatting, no I/O, no task on the event path. Decisions,
and orders with fills, pass a token bucket first, so a busy market cannot
flood the broker or spend the event path's time on publishing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.engine.listener import EngineListener
from orchestrator.mqtt import payloads
from orchestrator.mqtt.config import QosConfig
from orchestrator.mqtt.topics import Topics
from orchestrator.orders import Fill, OrderDenied, OrderIntent, OrderStatus, OrderUpdate
from orchestrator.risk.state import TradingState
from orchestrator.signals import Decision

StreamItem = Decision | OrderIntent | OrderDenied | OrderUpdate | Fill
_FILL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED})
DIRECT_CAPACITY = 256


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message ready for the broker."""

    topic: str
    payload: bytes
    qos: int
    retain: bool = False


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` saved up."""

    __slots__ = ("capacity", "clock", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.clock = clock
        self.stamp = clock()

    def take(self) -> bool:
        now = self.clock()
        tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False


class Outbox:
    """The bounded buffers between the core and the publishing task."""

    def __init__(self, topics: Topics, qos: QosConfig, stream_capacity: int) -> None:
        self.topics = topics
        self.qos = qos
        self.wakeup = asyncio.Event()
        self._direct: deque[Outgoing] = deque()
        self._latest: dict[str, Outgoing] = {}
        self._dirty: dict[str, None] = {}  # an ordered set of topics to (re)send
        self._stream: deque[StreamItem] = deque()
        self._capacity = stream_capacity
        self.dropped = 0  # stream items lost to a full buffer
        self.dropped_direct = 0
        self.published = 0

    # -------------------------------------------------------------- producers

    def push_stream(self, item: StreamItem) -> None:
        """Hot path: O(1), no allocation beyond the deque's own."""
        stream = self._stream
        if len(stream) >= self._capacity:
            stream.popleft()
            self.dropped += 1
        stream.append(item)
        if not self.wakeup.is_set():
            self.wakeup.set()

    def push_direct(self, message: Outgoing) -> None:
        if len(self._direct) >= DIRECT_CAPACITY:
            self._direct.popleft()
            self.dropped_direct += 1
        self._direct.append(message)
        self.wakeup.set()

    def put_latest(self, topic: str, payload: bytes, qos: int) -> None:
        """Set a retained topic's value; only the newest unsent value goes out."""
        self._latest[topic] = Outgoing(topic, payload, qos, retain=True)
        self._dirty[topic] = None
        self.wakeup.set()

    def clear_latest(self, topic: str) -> None:
        """Remove a retained topic from the broker (an empty retained message)."""
        self.put_latest(topic, b"", self.qos.state)

    def take_latest(self, topic: str) -> Outgoing | None:
        """One retained topic's unsent value, ahead of everything else."""
        if topic not in self._dirty:
            return None
        del self._dirty[topic]
        return self._latest[topic]

    def latest_topics(self) -> list[str]:
        return [topic for topic, message in self._latest.items() if message.payload]

    def resend_latest(self) -> None:
        """After a (re)connect: every retained value goes out again."""
        self._dirty = dict.fromkeys(self._latest)
        if self._dirty:
            self.wakeup.set()

    # -------------------------------------------------------------- consumer

    def __len__(self) -> int:
        return len(self._direct) + len(self._dirty) + len(self._stream)

    def take(self, limit: int) -> list[Outgoing]:
        """Up to ``limit`` messages, direct first, then retained, then streams.
        Stream items are formatted here, off the event path."""
        batch: list[Outgoing] = []
        while self._direct and len(batch) < limit:
            batch.append(self._direct.popleft())
        while self._dirty and len(batch) < limit:
            topic = next(iter(self._dirty))
            del self._dirty[topic]
            message = self._latest[topic]
            if not message.payload:
                del self._latest[topic]  # a deletion is sent once, not after every reconnect
            batch.append(message)
        while self._stream and len(batch) < limit:
            batch.append(self._format(self._stream.popleft()))
        if not len(self):
            self.wakeup.clear()
        return batch

    def _format(self, item: StreamItem) -> Outgoing:
        topics, qos = self.topics, self.qos
        if isinstance(item, Decision):
            return Outgoing(topics.decisions, payloads.encode(payloads.decision_message(item)), qos.decisions)
        if isinstance(item, Fill):
            return Outgoing(topics.fills, payloads.encode(payloads.fill_message(item)), qos.orders)
        if isinstance(item, OrderIntent):
            body = payloads.intent_message(item)
        elif isinstance(item, OrderDenied):
            body = payloads.denied_message(item)
        else:
            body = payloads.update_message(item)
        return Outgoing(topics.orders, payloads.encode(body), qos.orders)


class MqttListener(EngineListener):
    """Feeds the outbox from the core. Everything here runs on the event path.

    Each stream has its own token bucket (None: the stream is off), so a
    flood of intents cannot starve the fills. Order updates that only report
    a fill are left out: the fill itself is published."""

    def __init__(
        self,
        outbox: Outbox,
        decisions: TokenBucket | None,
        orders: TokenBucket | None,
        fills: TokenBucket | None,
        status_due: asyncio.Event,
    ) -> None:
        self.outbox = outbox
        self.decisions = decisions
        self.orders = orders
        self.fills = fills
        self.status_due = status_due
        self.decisions_skipped = 0
        self.orders_skipped = 0
        self.fills_skipped = 0

    def on_decision(self, decision: Decision) -> None:
        if self.decisions is not None and self.decisions.take():
            self.outbox.push_stream(decision)
        else:
            self.decisions_skipped += 1

    def _order_event(self, item: StreamItem) -> None:
        if self.orders is not None and self.orders.take():
            self.outbox.push_stream(item)
        else:
            self.orders_skipped += 1

    def on_order_intent(self, intent: OrderIntent) -> None:
        self._order_event(intent)

    def on_order_denied(self, denied: OrderDenied) -> None:
        self._order_event(denied)

    def on_order_update(self, update: OrderUpdate) -> None:
        if update.status not in _FILL_STATUSES:
            self._order_event(update)

    def on_fill(self, fill: Fill) -> None:
        if self.fills is not None and self.fills.take():
            self.outbox.push_stream(fill)
        else:
            self.fills_skipped += 1
        if not self.status_due.is_set():
            self.status_due.set()  # positions changed

    def on_trading_state(self, state: TradingState, reason: str) -> None:
        self.status_due.set()
