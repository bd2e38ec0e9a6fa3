"""A broker inside the daemon process (amqtt), so status shows on a fresh machine.

Chosen over starting a ``mosquitto`` binary because it needs nothing outside
the Python environment and lives and dies with the daemon. It listens on
loopback only and allows anonymous clients, which is why the configuration
refuses any other bind address; anything reachable from a network should be
a real broker (Mosquitto, see config/mosquitto/) named by ``mqtt.url``.
It speaks MQTT 3.1.1, so the daemon talks 3.1.1 to it.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

from orchestrator.mqtt.config import EmbeddedBrokerConfig

log = structlog.get_logger("orchestrator.mqtt")


def _broker_class() -> Any:
    """amqtt's ``Broker`` with retained messages sent only where they belong.

    amqtt 0.12 hands a connecting client the retained messages matching
    *every* filter any client holds (it walks the broker's whole subscription
    table on connect, meaning to replay a persistent session's own filters).
    A ``mosquitto_sub -t …/online`` then also received status and module
    health, and a subscriber got each retained message twice. Here a filter
    counts only for a session that holds it, which keeps the replay for
    persistent sessions and a new subscription's retained messages intact."""
    from amqtt.broker import Broker

    class LoopbackBroker(Broker):  # type: ignore[misc]  # amqtt ships no type information
        async def _publish_retained_messages_for_subscription(
            self, subscription: tuple[str, int], session: Any
        ) -> None:
            holders = self._subscriptions.get(subscription[0], ())
            if any(held.client_id == session.client_id for held, _ in holders):
                await super()._publish_retained_messages_for_subscription(subscription, session)

    return LoopbackBroker


class EmbeddedBroker:
    def __init__(self, config: EmbeddedBrokerConfig) -> None:
        self.config = config
        self._broker: Any = None

    @property
    def running(self) -> bool:
        return self._broker is not None

    async def start(self) -> None:
        """Bind and serve; raises if the port is taken or amqtt is missing."""
        from amqtt.contexts import BrokerConfig, ListenerConfig

        # amqtt logs every connection at info and every dropped client at
        # warning through the standard library, and its state machines
        # (the ``transitions`` package) log every state change at info: keep
        # only their errors and warnings out of the daemon's log.
        logging.getLogger("amqtt").setLevel(logging.ERROR)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        bind = f"{self.config.host}:{self.config.port}"
        broker = _broker_class()(
            BrokerConfig(
                listeners={"default": ListenerConfig(bind=bind)},
                plugins={"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            )
        )
        await broker.start()
        self._broker = broker
        log.info("mqtt_embedded_broker_started", bind=bind)

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()
            log.info("mqtt_embedded_broker_stopped")
