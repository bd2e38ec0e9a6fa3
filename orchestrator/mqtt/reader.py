"""Read a daemon's retained state from the broker (``orchestrator status``).

Subscribes to ``online``, ``status`` and ``modules/#`` under the prefix and
collects the retained messages the broker hands a new subscriber; it stops
once online and status are in and no new topic arrived for a moment, or
when ``wait_s`` is up.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.mqtt.config import BrokerAddress, MqttConfig
from orchestrator.mqtt.connection import make_client

QUIET_S = 0.3  # after online and status, this long without a message ends the read


@dataclass(frozen=True, slots=True)
class RetainedState:
    online: str | None = None
    status: Mapping[str, Any] | None = None
    modules: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # topic below modules/ -> health
    unreadable: tuple[str, ...] = ()  # topics whose payload was not JSON

    @property
    def empty(self) -> bool:
        return self.online is None and self.status is None and not self.modules


async def read_retained(
    config: MqttConfig,
    address: BrokerAddress,
    prefix: str,
    *,
    wait_s: float = 3.0,
    env: Mapping[str, str] | None = None,
) -> RetainedState:
    """Raises ``aiomqtt.MqttError`` when the broker cannot be reached."""
    online: str | None = None
    status: dict[str, Any] | None = None
    modules: dict[str, dict[str, Any]] = {}
    unreadable: list[str] = []
    module_head = f"{prefix}/modules/"
    # 3.1.1: a plain reader needs nothing newer, and every broker speaks it.
    client = make_client(config, address=address, client_id=None, will_topic=None, env=env, protocol="3.1.1")
    async with client:
        for topic in ("online", "status", "modules/#"):
            await client.subscribe(f"{prefix}/{topic}", qos=1)
        deadline = time.monotonic() + wait_s
        messages = client.messages.__aiter__()
        seen: set[str] = set()
        last_new_topic = time.monotonic()
        while True:
            now = time.monotonic()
            remaining = deadline - now
            if online is not None and status is not None:
                # The retained messages come as a burst; a live daemon keeps
                # updating the same topics, so only a new topic extends the read.
                remaining = min(remaining, last_new_topic + QUIET_S - now)
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    message = await messages.__anext__()
            except TimeoutError:
                break
            topic = message.topic.value
            if topic not in seen:
                seen.add(topic)
                last_new_topic = time.monotonic()
            raw = message.payload if isinstance(message.payload, bytes | bytearray) else b""
            if not raw:
                continue  # a cleared retained topic
            if topic == f"{prefix}/online":
                online = raw.decode("utf-8", "replace")
                continue
            try:
                body = json.loads(raw)
            except ValueError:
                unreadable.append(topic)
                continue
            if topic == f"{prefix}/status" and isinstance(body, dict):
                status = body
            elif topic.startswith(module_head) and isinstance(body, dict):
                modules[topic[len(module_head) :]] = body
    return RetainedState(online, status, modules, tuple(unreadable))
