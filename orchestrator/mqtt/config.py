"""Configuration of the MQTT status and control channel (the ``mqtt:`` section).

The broker is named by one URL, ``mqtt://host:port`` or
``mqtts://user@host:port``; the password never sits in the file or the URL
but in the environment variable ``password_env`` names. Without a URL the
daemon connects to the broker it hosts itself (``embedded_broker``), which is
what the default profile does, so a fresh machine shows live status; setting
``ORCHESTRATOR__MQTT__URL`` points it at an external broker and then no
embedded broker is started.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_PASSWORD_ENV = "ORCHESTRATOR_MQTT_PASSWORD"
EMBEDDED_DEFAULT_PORT = 11883  # not 1883, so it never collides with a system Mosquitto
_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_TOPIC_PREFIX = re.compile(r"^[^#+\x00]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsConfig(_Strict):
    """TLS for ``mqtts://`` URLs: a private CA and/or a client certificate."""

    ca_file: Path | None = Field(None, description="CA that signed the broker's certificate (default: system CAs)")
    cert_file: Path | None = Field(None, description="client certificate, PEM")
    key_file: Path | None = Field(None, description="client private key, PEM (unencrypted)")
    insecure: bool = Field(False, description="skip the broker host name check (testing only)")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class QosConfig(_Strict):
    """MQTT QoS per topic class."""

    state: Literal[0, 1, 2] = Field(1, description="online, status, modules/<name> (retained)")
    decisions: Literal[0, 1, 2] = 0
    # QoS 1 costs ~3x the CPU per message (acks, in-flight tracking): streams
    # are informational (the journal is the record), so they default to 0.
    orders: Literal[0, 1, 2] = Field(0, description="orders and fills")
    heartbeat: Literal[0, 1, 2] = 0
    commands: Literal[0, 1, 2] = Field(1, description="the command subscription and the replies")


class StreamLimitConfig(_Strict):
    """A stream is rate-limited on the event path (a token bucket checked
    before anything is queued): a burst of activity never turns into a burst
    of publishing work. What is over the limit is counted, not queued; the
    totals stay exact in the status counters."""

    max_per_s: float = Field(20.0, ge=0.0, description="messages per second; 0 turns the stream off")
    burst: int = Field(20, ge=1, description="messages that may go out at once after a quiet spell")


class CommandConfig(_Strict):
    enabled: bool = Field(True, description="false: no subscription, every command is ignored")
    reply_topic: str | None = Field(None, description="default reply topic (default: <prefix>/cmd/reply)")
    max_payload_bytes: int = Field(8192, ge=64, le=1_048_576, description="larger command bodies are refused")
    max_per_s: float = Field(10.0, gt=0.0, description="commands beyond this rate are dropped with a warning")
    remember_ids: int = Field(1024, ge=16, description="command ids kept to refuse re-execution")


class EmbeddedBrokerConfig(_Strict):
    """A broker inside the daemon process (amqtt), used when ``mqtt.url`` is not set."""

    enabled: bool = False
    host: str = Field("127.0.0.1", description="bind address; keep it on loopback")
    port: int = Field(EMBEDDED_DEFAULT_PORT, ge=1, le=65535)

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, host: str) -> str:
        # It has no authentication or ACL: it must never face a network.
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError("the embedded broker has no access control: bind it to loopback (127.0.0.1, ::1)")
        return host


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where to connect: parsed from ``mqtt.url`` (or the embedded broker)."""

    host: str
    port: int
    tls: bool
    username: str | None

    @property
    def url(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt[s]://[user@]host[:port]``; raises ``ValueError`` with the reason."""
    parts = urlsplit(url.strip())
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError(f"{url!r}: the scheme must be mqtt:// or mqtts://")
    if parts.password is not None:
        raise ValueError("the password does not belong in the URL: set it in the environment (mqtt.password_env)")
    if not parts.hostname:
        raise ValueError(f"{url!r}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: only scheme, user, host and port are allowed")
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise ValueError(f"{url!r}: {exc}") from None
    username = unquote(parts.username) if parts.username else None
    return BrokerAddress(parts.hostname, port, parts.scheme == "mqtts", username)


class MqttConfig(_Strict):
    """Status publishing and remote control over MQTT."""

    enabled: bool = True
    url: str | None = Field(None, description="mqtt://host:port or mqtts://user@host:port; unset: the embedded broker")
    password_env: str = Field(DEFAULT_PASSWORD_ENV, description="environment variable holding the broker password")
    client_id: str | None = Field(None, description="default: orchestrator-<instance>")
    topic_prefix: str | None = Field(None, description="default: orchestrator/<instance>")
    protocol: Literal["auto", "3.1.1", "5"] = Field(
        "auto", description="auto: 5 for an external broker, 3.1.1 for the embedded one"
    )
    keepalive_s: int = Field(15, ge=1, le=65535, description="the broker sends the last will after 1.5x this")
    connect_timeout_s: float = Field(10.0, gt=0.0)
    reconnect_min_s: float = Field(0.5, gt=0.0, description="first reconnect delay; doubles, with jitter")
    reconnect_max_s: float = Field(30.0, gt=0.0)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    qos: QosConfig = Field(default_factory=QosConfig)
    status_interval_s: float = Field(5.0, gt=0.0, description="status is republished at least this often")
    status_min_interval_s: float = Field(0.5, gt=0.0, description="at most one status per interval on changes")
    modules_interval_s: float = Field(15.0, gt=0.0, description="module health is republished at least this often")
    heartbeat_interval_s: float = Field(5.0, gt=0.0)
    stream_buffer: int = Field(
        2000, ge=10, description="decisions/orders/fills held while the broker is slow or away; oldest dropped"
    )
    decisions: StreamLimitConfig = Field(default_factory=StreamLimitConfig)
    orders: StreamLimitConfig = Field(
        default_factory=lambda: StreamLimitConfig(max_per_s=20.0, burst=50),
        description="order intents, denials and updates (fills have their own budget)",
    )
    fills: StreamLimitConfig = Field(default_factory=lambda: StreamLimitConfig(max_per_s=20.0, burst=50))
    commands: CommandConfig = Field(default_factory=CommandConfig)
    embedded_broker: EmbeddedBrokerConfig = Field(default_factory=EmbeddedBrokerConfig)

    @field_validator("url")
    @classmethod
    def _valid_url(cls, url: str | None) -> str | None:
        if url is not None:
            parse_broker_url(url)
        return url

    @field_validator("topic_prefix")
    @classmethod
    def _valid_prefix(cls, prefix: str | None) -> str | None:
        if prefix is not None and (not _TOPIC_PREFIX.match(prefix) or prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError("a topic prefix has no wildcards (+ #) and no leading or trailing '/'")
        return prefix

    @model_validator(mode="after")
    def _somewhere_to_connect(self) -> MqttConfig:
        if self.url is None and not self.embedded_broker.enabled:
            raise ValueError("set mqtt.url, or enable mqtt.embedded_broker")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        if self.url is not None and not parse_broker_url(self.url).tls and self.tls != TlsConfig():
            raise ValueError("tls settings need an mqtts:// URL")
        if self.uses_embedded_broker and self.protocol == "5":
            raise ValueError("the embedded broker speaks MQTT 3.1.1 only: use protocol 3.1.1 or auto")
        return self

    @property
    def uses_embedded_broker(self) -> bool:
        """An explicit URL wins: the embedded broker starts only without one."""
        return self.url is None and self.embedded_broker.enabled

    def broker(self) -> BrokerAddress:
        if self.url is not None:
            return parse_broker_url(self.url)
        return BrokerAddress(self.embedded_broker.host, self.embedded_broker.port, False, None)

    def mqtt_protocol(self) -> Literal["3.1.1", "5"]:
        if self.protocol != "auto":
            return self.protocol
        return "3.1.1" if self.uses_embedded_broker else "5"

    def prefix_for(self, instance: str) -> str:
        return self.topic_prefix or f"orchestrator/{instance}"

    def client_id_for(self, instance: str) -> str:
        return self.client_id or f"orchestrator-{instance}"
