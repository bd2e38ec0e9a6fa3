"""A real Mosquitto on a free loopback port, MQTT test clients, and daemons to point at it.

Mosquitto is required: scripts/run-tests installs the Debian package. A
missing broker fails the run loudly rather than skipping the MQTT tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml

from orchestrator.config.loader import load_config
from orchestrator.daemon import Daemon
from orchestrator.logs import configure_logging
from orchestrator.mqtt.service import MqttService

REPO = Path(__file__).resolve().parents[3]
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
TIMEOUT = 15.0  # generous: the machine is shared; tests finish as soon as the message arrives


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class MosquittoBroker:
    """One mosquitto process; ``restart`` brings it back on the same port."""

    workdir: Path
    port: int
    password_file: Path | None = None
    acl_file: Path | None = None
    listener_options: tuple[str, ...] = ()  # e.g. TLS: cafile, certfile, keyfile
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text() if path.exists() else ""

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} 127.0.0.1",
            *self.listener_options,
            "persistence false",
            "user root" if _running_as_root() else "",
            f"log_dest file {self.workdir / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if self.password_file is not None:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> None:
        if not Path(MOSQUITTO).exists():
            pytest.fail(f"mosquitto not found ({MOSQUITTO}): install the Debian package (scripts/run-tests does)")
        config = self._write_config()
        command = [MOSQUITTO, "-c", str(config)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + TIMEOUT
        while not port_open(self.port):
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                pytest.fail(f"mosquitto exited with {self.process.returncode}: {output}{self.log}")
            if time.monotonic() > deadline:
                pytest.fail(f"mosquitto did not listen on {self.port}: {self.log}")
            time.sleep(0.02)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.stdout:
            process.stdout.close()

    def restart(self) -> None:
        self.stop()
        self.start()


def _running_as_root() -> bool:
    return os.geteuid() == 0


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = MosquittoBroker(workdir, free_port())
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., MosquittoBroker]]:
    """Start extra brokers with their own options; all are stopped at teardown."""
    started: list[MosquittoBroker] = []

    def make(**options: Any) -> MosquittoBroker:
        workdir = tmp_path / f"mosquitto-{len(started)}"
        workdir.mkdir()
        broker = MosquittoBroker(workdir, free_port(), **options)
        started.append(broker)
        broker.start()
        return broker

    yield make
    for broker in started:
        broker.stop()


USERS = {"orchestrator": "daemon-secret", "operator": "operator-secret", "viewer": "viewer-secret"}


@pytest.fixture
def secured_mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """Password file for USERS and the repository's own ACL (config/mosquitto/acl)."""
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    passwords = workdir / "passwd"
    passwords.touch(mode=0o600)
    for user, password in USERS.items():
        subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwords), user, password], check=True, capture_output=True)
    acl = workdir / "acl"
    shutil.copy(REPO / "config" / "mosquitto" / "acl", acl)
    broker = MosquittoBroker(workdir, free_port(), password_file=passwords, acl_file=acl)
    broker.start()
    yield broker
    broker.stop()


# ---------------------------------------------------------------- clients


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Subscriber:
    """A test client that records every message on its subscriptions."""

    port: int
    topics: tuple[str, ...]
    username: str | None = None
    password: str | None = None
    messages: list[Received] = field(default_factory=list)
    _client: aiomqtt.Client | None = None
    _task: asyncio.Task[None] | None = None
    _new: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> Subscriber:
        self._client = aiomqtt.Client(
            "127.0.0.1",
            self.port,
            username=self.username,
            password=self.password,
            identifier=f"test-{uuid.uuid4().hex[:8]}",
        )
        await self._client.__aenter__()
        for topic in self.topics:
            await self._client.subscribe(topic, qos=1)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.__aexit__(None, None, None)

    async def _read(self) -> None:
        assert self._client is not None
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in self._client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                self.messages.append(Received(message.topic.value, payload, message.retain))
                self._new.set()

    async def wait_for(
        self, predicate: Callable[[Received], bool], *, start: int = 0, timeout: float = TIMEOUT
    ) -> Received:
        deadline = time.monotonic() + timeout
        seen = start
        while True:
            for message in self.messages[seen:]:
                if predicate(message):
                    return message
            seen = len(self.messages)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                topics = sorted({m.topic for m in self.messages})
                raise AssertionError(f"no matching message within {timeout} s; got topics {topics}")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._new.wait()

    async def publish(self, topic: str, payload: bytes | dict[str, Any], *, retain: bool = False) -> None:
        assert self._client is not None
        data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        await self._client.publish(topic, data, qos=1, retain=retain)

    async def command(
        self, prefix: str, verb: str, body: dict[str, Any] | bytes, reply_topic: str | None = None
    ) -> Any:
        """Send a command and return its reply (matched by id when it has one)."""
        start = len(self.messages)
        await self.publish(f"{prefix}/cmd/{verb}", body)
        wanted = body.get("id") if isinstance(body, dict) else None
        topic = reply_topic or f"{prefix}/cmd/reply"
        reply = await self.wait_for(
            lambda m: m.topic == topic and bool(m.payload) and (wanted is None or m.json().get("id") == wanted),
            start=start,
        )
        return reply.json()

    def on(self, topic: str) -> list[Received]:
        return [m for m in self.messages if m.topic == topic]


@pytest.fixture
def subscribe() -> Callable[..., Subscriber]:
    def make(port: int, *topics: str, username: str | None = None, password: str | None = None) -> Subscriber:
        return Subscriber(port, topics, username, password)

    return make


# ---------------------------------------------------------------- daemons


def daemon_config(
    tmp_path: Path,
    mqtt: dict[str, Any] | None,
    *,
    instance: str = "t1",
    speed: float = 200.0,
    name: str = "daemon",
    log_level: str = "warning",
) -> Path:
    """A small profile: two symbols, one fast module, 1 s bars, paper trading."""
    config: dict[str, Any] = {
        "instance": instance,
        "state_dir": str(tmp_path / f"{name}-state"),
        "log": {"level": log_level, "format": "json"},
        "feed": {
            "kind": "simulated",
            "simulated": {"seed": 3, "tick_ms": 250, "bar_ms": 1000, "speed": speed, "prices": {"BTC/USDT": 60000.0}},
        },
        "symbols": ["BTC/USDT", "ETH/USDT"],
        "modules": {"ma_crossover": {"params": {"fast": 2, "slow": 5}}},
        "fusion": {"method": "confidence"},
        "decision": {"min_change": 0.02},
        "execution": {"venue": "paper", "paper": {"initial_cash": 100000}},
        "risk": {"allocation": 0.2, "min_order_notional": 10},
    }
    if mqtt is not None:
        config["mqtt"] = mqtt
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def mqtt_section(broker: MosquittoBroker, **overrides: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "url": broker.url,
        "keepalive_s": 2,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
        "status_interval_s": 1.0,
        "status_min_interval_s": 0.1,
        "heartbeat_interval_s": 0.5,
    }
    section.update(overrides)
    return section


@contextlib.asynccontextmanager
async def run_daemon(path: Path, env: dict[str, str] | None = None, *, connected: bool = True) -> AsyncIterator[Daemon]:
    """A daemon running in this loop; stopped (cleanly) on exit."""
    loaded = load_config(path, env=env or {})
    configure_logging(loaded.config.log.level, "console")
    daemon = Daemon(loaded)
    task = asyncio.create_task(daemon.run(), name="daemon")
    try:
        await asyncio.wait_for(daemon.ready.wait(), TIMEOUT)
        if connected:
            await asyncio.wait_for(mqtt_service(daemon).connected.wait(), TIMEOUT)
        yield daemon
    finally:
        daemon.request_stop("test over")
        done, _ = await asyncio.wait({task}, timeout=TIMEOUT)
        if not done:
            task.cancel()
            raise AssertionError(f"the daemon did not stop within {TIMEOUT} s")
        task.result()


def mqtt_service(daemon: Daemon) -> MqttService:
    return next(s for s in daemon.services if isinstance(s, MqttService))


@dataclass(frozen=True)
class Kit:
    """The helpers above, for tests (conftest modules cannot be imported under importlib mode)."""

    tmp_path: Path
    timeout: float = TIMEOUT
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))

    def config(self, mqtt: dict[str, Any] | None, **kwargs: Any) -> Path:
        return daemon_config(self.tmp_path, mqtt, **kwargs)

    @staticmethod
    def mqtt(broker: MosquittoBroker, **overrides: Any) -> dict[str, Any]:
        return mqtt_section(broker, **overrides)

    @staticmethod
    def run(path: Path, env: dict[str, str] | None = None, *, connected: bool = True) -> Any:
        return run_daemon(path, env, connected=connected)

    @staticmethod
    def service(daemon: Daemon) -> MqttService:
        return mqtt_service(daemon)

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.02)

    @staticmethod
    def free_port() -> int:
        return free_port()

    @staticmethod
    def port_open(port: int) -> bool:
        return port_open(port)


@pytest.fixture
def kit(tmp_path: Path) -> Kit:
    return Kit(tmp_path)
