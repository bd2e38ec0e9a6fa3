"""Building the aiomqtt client from the configuration, and the reconnect backoff."""

from __future__ import annotations

import os
import random
import ssl
from collections.abc import Mapping
from typing import Literal

import aiomqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from orchestrator.mqtt.config import BrokerAddress, MqttConfig, TlsConfig
from orchestrator.mqtt.topics import OFFLINE

PENDING_CALLS_WARNING = 1000


class Backoff:
    """Exponential backoff with full jitter (a random delay up to the cap),
    so a fleet of daemons does not reconnect to a restarted broker at once."""

    def __init__(self, minimum: float, maximum: float, rng: random.Random | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.attempts = 0
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self.attempts = 0

    def next_delay(self) -> float:
        cap = min(self.maximum, self.minimum * 2.0 ** min(self.attempts, 30))
        self.attempts += 1
        return self.minimum / 2.0 + self._rng.uniform(0.0, cap - self.minimum / 2.0)


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """A client TLS context: system CAs unless ``ca_file`` names others."""
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file is not None and tls.key_file is not None:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    if tls.insecure:
        context.check_hostname = False
    return context


def password_from(config: MqttConfig, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return env.get(config.password_env) or None


def make_client(
    config: MqttConfig,
    *,
    address: BrokerAddress,
    client_id: str | None,
    will_topic: str | None,
    tls: ssl.SSLContext | None = None,
    env: Mapping[str, str] | None = None,
    protocol: Literal["3.1.1", "5"] | None = None,
) -> aiomqtt.Client:
    """An aiomqtt client (not yet connected). ``will_topic``: the retained
    ``offline`` the broker publishes if this client vanishes; ``tls``: a
    context made once by ``tls_context`` (default: made here for mqtts)."""
    version = (
        aiomqtt.ProtocolVersion.V5 if (protocol or config.mqtt_protocol()) == "5" else aiomqtt.ProtocolVersion.V311
    )
    will = None
    if will_topic is not None:
        will = aiomqtt.Will(will_topic, OFFLINE, qos=config.qos.state, retain=True)
    client = aiomqtt.Client(
        address.host,
        address.port,
        username=address.username,
        password=password_from(config, env) if address.username else None,
        identifier=client_id,
        protocol=version,
        will=will,
        clean_session=True if version is aiomqtt.ProtocolVersion.V311 else None,
        keepalive=config.keepalive_s,
        timeout=config.connect_timeout_s,
        tls_context=(tls or tls_context(config.tls)) if address.tls else None,
        tls_insecure=True if address.tls and config.tls.insecure else None,
    )
    # The publisher waits for a whole batch of acks at once: that is by design,
    # not the backlog aiomqtt warns about past 10 pending calls.
    client.pending_calls_threshold = PENDING_CALLS_WARNING
    return client


def command_subscription(config: MqttConfig) -> SubscribeOptions | None:
    """MQTT 5: see retained commands as retained even when they arrive live,
    and never receive our own replies. MQTT 3.1.1 has no such options."""
    if config.mqtt_protocol() != "5":
        return None
    return SubscribeOptions(qos=config.qos.commands, noLocal=True, retainAsPublished=True)
