"""``MqttService``: the daemon service that owns the broker connection.

One task, made by ``start``, holds the connection and reconnects with
jittered exponential backoff; while connected, named tasks in a TaskGroup
publish from the outbox, answer commands and send heartbeats. A separate
loop keeps the retained values (status, module health) current whether or
not the broker is there, so a reconnect republishes the present state, not
a backlog.

The daemon trades on while the broker is away: nothing on the event path
waits for MQTT. The broker publishes the last will (retained ``offline``)
if the daemon dies. A clean stop keeps the connection through the
shutdown (the orders it cancels are published, and the status follows
them) and publishes a last status and ``offline`` itself in ``stop``, the
services' step of the shutdown, before disconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import aiomqtt
import structlog

from orchestrator.control import status_payload
from orchestrator.errors import ConfigError
from orchestrator.mqtt import payloads
from orchestrator.mqtt.commands import CommandHandler
from orchestrator.mqtt.config import MqttConfig, StreamLimitConfig
from orchestrator.mqtt.connection import Backoff, command_subscription, make_client, tls_context
from orchestrator.mqtt.embedded import EmbeddedBroker
from orchestrator.mqtt.outbox import MqttListener, Outbox, Outgoing, TokenBucket
from orchestrator.mqtt.topics import OFFLINE, ONLINE, Topics

if TYPE_CHECKING:
    from orchestrator.daemon import Daemon

log = structlog.get_logger("orchestrator.mqtt")

BATCH = 64  # messages handed to the client before waiting for their acks
MODULE_CHECK_S = 1.0  # how often module health is looked at for changes
FLUSH_TIMEOUT_S = 1.0  # best effort for queued streams at a clean stop
GOODBYE_TIMEOUT_S = 5.0  # the last status and offline


class _Closing(Exception):
    """Ends the connection's task group when the service stops."""


class MqttService:
    """Status, module health, streams and commands over one MQTT connection."""

    name = "mqtt"

    def __init__(self, daemon: Daemon, config: MqttConfig) -> None:
        self.daemon = daemon
        self.config = config
        self.instance = daemon.config.instance
        self.topics = Topics(config.prefix_for(self.instance), config.commands.reply_topic)
        self.address = config.broker()
        self.outbox = Outbox(self.topics, config.qos, config.stream_buffer)
        self.status_due = asyncio.Event()
        self.listener = MqttListener(
            self.outbox, _bucket(config.decisions), _bucket(config.orders), _bucket(config.fills), self.status_due
        )
        daemon.engine.listeners.append(self.listener)
        self.commands: CommandHandler | None = None
        if config.commands.enabled:
            self.commands = CommandHandler(
                daemon.control,
                self.topics,
                max_payload_bytes=config.commands.max_payload_bytes,
                remember_ids=config.commands.remember_ids,
            )
        self._command_rate = TokenBucket(config.commands.max_per_s, max(1.0, config.commands.max_per_s))
        try:
            self._tls = tls_context(config.tls) if self.address.tls else None
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError([f"mqtt.tls: cannot use the TLS files: {exc}"]) from None
        self.embedded = EmbeddedBroker(config.embedded_broker) if config.uses_embedded_broker else None
        self.connected = asyncio.Event()
        self.connections = 0
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._status_at = -math.inf
        self._modules_at = -math.inf
        self._module_sent: dict[str, tuple[tuple[object, ...], float]] = {}  # topic -> (signature, monotonic)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self.embedded is not None:
            try:
                await self.embedded.start()
            except Exception as exc:  # noqa: BLE001 - monitoring must not stop trading
                log.error(
                    "mqtt_embedded_broker_failed",
                    error=f"{type(exc).__name__}: {exc}",
                    port=self.config.embedded_broker.port,
                    hint="is another daemon using this port? set mqtt.embedded_broker.port or mqtt.url",
                )
        self._refresh_status()
        self._refresh_modules(force=True)
        # Not run's task: the daemon cancels that as soon as it starts
        # stopping, while orders are still being cancelled at the venues.
        self._task = asyncio.create_task(self._serve_until_closed(), name="mqtt-connection")

    async def run(self) -> None:
        """Until the daemon starts stopping; the connection lives on until ``stop``."""
        task = self._task
        if task is None:
            raise RuntimeError("MqttService.run before start")
        stopping = asyncio.ensure_future(self.daemon.stopping.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if task.done() and not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error  # a bug, not a broker outage (those are retried): let the daemon see it

    async def stop(self) -> None:
        """The last status and ``offline``, then disconnect (bounded)."""
        task, self._task = self._task, None
        if task is not None:
            self._closing.set()
            if not self.connected.is_set():
                task.cancel()  # waiting out a backoff or a connect attempt: nothing to say goodbye on
            bound = FLUSH_TIMEOUT_S + GOODBYE_TIMEOUT_S + 1.0
            done, _ = await asyncio.wait({task}, timeout=bound)
            if not done:
                task.cancel()
                await asyncio.wait({task})
        if self.embedded is not None:
            await self.embedded.stop()

    async def _serve_until_closed(self) -> None:
        async with asyncio.TaskGroup() as group:
            state = group.create_task(self._state_loop(), name="mqtt-state")
            await self._connection_loop()
            state.cancel()

    # ----------------------------------------------------------- connection

    async def _connection_loop(self) -> None:
        backoff = Backoff(self.config.reconnect_min_s, self.config.reconnect_max_s)
        while not self._closing.is_set():
            client = make_client(
                self.config,
                address=self.address,
                client_id=self.config.client_id_for(self.instance),
                will_topic=self.topics.online,
                tls=self._tls,
            )
            error = "connection ended"
            try:
                async with client:
                    backoff.reset()
                    await self._serve(client)
                if self._closing.is_set():
                    return
            except* aiomqtt.MqttError as group:
                error = "; ".join(str(exc) for exc in group.exceptions)
            except* Exception as group:  # a bug here must not stop the trading daemon
                error = "; ".join(f"{type(exc).__name__}: {exc}" for exc in group.exceptions)
                log.error("mqtt_service_error", error=error, exc_info=group)
            delay = backoff.next_delay()
            # One warning per outage; the retries after it only at debug.
            emit = log.warning if backoff.attempts == 1 else log.debug
            emit("mqtt_disconnected", broker=self.address.url, error=error, retry_in_s=round(delay, 2))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._closing.wait()

    async def _serve(self, client: aiomqtt.Client) -> None:
        """One connection, until it breaks or the service stops.

        The stop is watched as an event, not only met as a cancellation: on
        Python 3.11 ``asyncio.wait_for`` (which aiomqtt uses for every ack)
        can swallow a cancellation that races with the ack, and the offline
        announcement must not depend on that race."""
        try:
            try:
                await self._announce(client)
                log.info(
                    "mqtt_connected",
                    broker=self.address.url,
                    prefix=self.topics.prefix,
                    commands=self.commands is not None,
                )
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._watch_closing(), name="mqtt-stop")
                    group.create_task(self._publish_loop(client), name="mqtt-publish")
                    group.create_task(self._heartbeat_loop(), name="mqtt-heartbeat")
                    if self.commands is not None:
                        group.create_task(self._command_loop(client), name="mqtt-commands")
            except* _Closing:
                await self._goodbye(client)
        except asyncio.CancelledError:
            await self._goodbye(client)
            raise
        finally:
            self.connected.clear()

    async def _watch_closing(self) -> None:
        await self._closing.wait()
        raise _Closing

    async def _announce(self, client: aiomqtt.Client) -> None:
        """Online, the command subscription, and every retained value again."""
        topics, qos = self.topics, self.config.qos
        await client.publish(topics.online, ONLINE, qos=qos.state, retain=True)
        if self.commands is not None:
            options = command_subscription(self.config)
            if options is None:
                await client.subscribe(topics.commands, qos=qos.commands)
            else:
                await client.subscribe(topics.commands, options=options)  # the options carry the QoS
        self.connections += 1
        self.connected.set()
        self._refresh_status()
        self._refresh_modules(force=True)
        self.outbox.resend_latest()

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """Clean stop: what is still queued (briefly), then a last status and
        ``offline`` (which must not wait behind a backlog)."""

        async def flush() -> None:
            while len(self.outbox):
                await self._publish(client, self.outbox.take(BATCH))

        async def offline() -> None:
            self._refresh_status()
            status = self.outbox.take_latest(self.topics.status)
            if status is not None:
                await self._publish(client, [status])
            await client.publish(self.topics.online, OFFLINE, qos=self.config.qos.state, retain=True)

        if not await _bounded(flush(), FLUSH_TIMEOUT_S):
            log.info("mqtt_flush_incomplete", left=len(self.outbox))
        if await _bounded(offline(), GOODBYE_TIMEOUT_S):
            log.info("mqtt_offline_published")
        else:
            log.warning("mqtt_goodbye_failed", hint="offline not confirmed; a broken connection gets the last will")

    async def _publish(self, client: aiomqtt.Client, batch: list[Outgoing]) -> None:
        # paho sends in call order; waiting for the acks together keeps QoS 1
        # from costing a round trip per message.
        try:
            await asyncio.gather(*(client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain) for m in batch))
        except aiomqtt.MqttError:
            # Retained values go out again after the reconnect; stream messages are lost.
            self.outbox.dropped += sum(not m.retain for m in batch)
            raise
        self.outbox.published += len(batch)

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        outbox = self.outbox
        while True:
            await outbox.wakeup.wait()
            batch = outbox.take(BATCH)
            if batch:
                await self._publish(client, batch)

    async def _heartbeat_loop(self) -> None:
        seq = 0
        while True:
            seq += 1
            engine = self.daemon.engine
            body = payloads.heartbeat_message(
                self.instance,
                seq,
                time.time() - self.daemon.started_at,
                engine.risk.state.value,
                engine.counters.events,
            )
            self.outbox.push_direct(Outgoing(self.topics.heartbeat, payloads.encode(body), self.config.qos.heartbeat))
            await asyncio.sleep(self.config.heartbeat_interval_s)

    async def _command_loop(self, client: aiomqtt.Client) -> None:
        assert self.commands is not None
        async for message in client.messages:
            topic = message.topic.value
            verb = self.topics.verb_of(topic)
            if verb is None or topic == self.topics.reply:
                continue  # our own replies, under MQTT 3.1.1
            if not self._command_rate.take():
                log.warning("mqtt_command_rate_limited", topic=topic)
                continue
            payload = message.payload
            raw = payload if isinstance(payload, bytes | bytearray) else str(payload or "").encode()
            reply = await self.commands.handle(verb, bytes(raw), retained=message.retain)
            if reply is not None:
                self.outbox.push_direct(Outgoing(reply.topic, reply.payload(self.instance), self.config.qos.commands))
                self.status_due.set()

    # ------------------------------------------------------- retained state

    async def _state_loop(self) -> None:
        """Status on change (at most every ``status_min_interval_s``) and at
        least every ``status_interval_s``; module health checked every second."""
        config = self.config
        while True:
            try:
                # The shutdown stops the modules (they leave the pipeline):
                # their last health stays retained rather than being cleared.
                if not self.daemon.stopping.is_set():
                    self._refresh_modules()
            except Exception:  # keep status going without module health
                log.exception("mqtt_module_health_failed")
            since = time.monotonic() - self._status_at
            due = self.status_due.is_set()
            delay = (config.status_min_interval_s if due else config.status_interval_s) - since
            if delay <= 0.0:
                try:
                    self._refresh_status()
                except Exception:  # try again at the next interval
                    log.exception("mqtt_status_failed")
                    self._status_at = time.monotonic()
                    self.status_due.clear()
                continue
            delay = min(delay, MODULE_CHECK_S)
            if due:
                await asyncio.sleep(delay)
            else:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                # cancellation that races with the event being set.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.status_due.wait()

    def counters(self) -> dict[str, int | bool]:
        handler = self.commands
        return {
            "connected": self.connected.is_set(),
            "connections": self.connections,
            "published": self.outbox.published,
            "dropped": self.outbox.dropped + self.outbox.dropped_direct,
            "decisions_skipped": self.listener.decisions_skipped,
            "orders_skipped": self.listener.orders_skipped,
            "fills_skipped": self.listener.fills_skipped,
            "commands_executed": 0 if handler is None else handler.executed,
            "commands_refused": 0 if handler is None else handler.refused,
        }

    def _refresh_status(self) -> None:
        self._status_at = time.monotonic()
        self.status_due.clear()
        body = payloads.status_message(status_payload(self.daemon), self.counters())
        self.outbox.put_latest(self.topics.status, payloads.encode(body), self.config.qos.state)

    def _refresh_modules(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._modules_at < MODULE_CHECK_S:
            return
        self._modules_at = now
        engine = self.daemon.engine
        single_bucket = len(engine.pipelines) <= 1
        present: set[str] = set()
        for snapshot in engine.module_health():
            topic = self.topics.module(snapshot.name, snapshot.bucket, single_bucket=single_bucket)
            present.add(topic)
            signature = payloads.module_signature(snapshot)
            sent = self._module_sent.get(topic)
            if force or sent is None or sent[0] != signature or now - sent[1] >= self.config.modules_interval_s:
                body = payloads.encode(payloads.module_message(snapshot))
                self.outbox.put_latest(topic, body, self.config.qos.state)
                self._module_sent[topic] = (signature, now)
        for topic in [t for t in self._module_sent if t not in present]:
            del self._module_sent[topic]
            self.outbox.clear_latest(topic)  # the module left: so does its retained health


def _bucket(limit: StreamLimitConfig) -> TokenBucket | None:
    return TokenBucket(limit.max_per_s, limit.burst) if limit.max_per_s > 0 else None


async def _bounded(work: Coroutine[Any, Any, None], seconds: float) -> bool:
    """Run ``work`` for at most ``seconds``; True if it finished without error.

    A task and ``asyncio.wait`` rather than ``asyncio.timeout``: this runs
    while the calling task is being cancelled, where Python 3.11 turns an
    expired timeout into a second CancelledError instead of TimeoutError."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        return False
    error = task.exception()
    if error is not None:
        log.info("mqtt_goodbye_step_failed", error=f"{type(error).__name__}: {error}")
    return error is None
