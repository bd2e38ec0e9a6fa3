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


class EmbeddedBroker:
    def __init__(self, config: EmbeddedBrokerConfig) -> None:
        self.config = config
        self._broker: Any = None

    @property
    def running(self) -> bool:
        return self._broker is not None

    async def start(self) -> None:
        """Bind and serve; raises if the port is taken or amqtt is missing."""
        from amqtt.broker import Broker
        from amqtt.contexts import BrokerConfig, ListenerConfig

        # amqtt logs every connection at info and every dropped client at
        # warning through the standard library: keep only its errors.
        logging.getLogger("amqtt").setLevel(logging.ERROR)
        bind = f"{self.config.host}:{self.config.port}"
        broker = Broker(
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
