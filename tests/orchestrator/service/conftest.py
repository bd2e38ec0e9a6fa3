"""A stand-in for systemd's notify socket: a real AF_UNIX datagram socket the tests bind."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

Notification = dict[str, str]


def parse(datagram: bytes) -> Notification:
    lines = datagram.decode().splitlines()
    return dict(line.split("=", 1) for line in lines if line)


class NotifyListener:
    """Receives what a daemon sends to ``$NOTIFY_SOCKET``, in order."""

    def __init__(self, address: str) -> None:
        self.address = address  # as written in NOTIFY_SOCKET
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bind_to = b"\0" + address[1:].encode() if address.startswith("@") else address
        self.sock.bind(bind_to)
        self.received: list[Notification] = []

    def next(self, timeout: float = 30.0) -> Notification | None:
        self.sock.settimeout(timeout)
        try:
            message = parse(self.sock.recv(65536))
        except TimeoutError:
            return None
        self.received.append(message)
        return message

    def wait_for(self, accept: Callable[[Notification], bool], timeout: float = 30.0) -> Notification:
        """The first notification from now on that ``accept`` takes."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.next(left)
            if message is not None and accept(message):
                return message
        raise AssertionError(f"no matching notification within {timeout} s; got {self.received[-5:]}")

    def drain(self) -> list[Notification]:
        """Everything already queued, without waiting."""
        taken = []
        self.sock.setblocking(False)
        try:
            while True:
                message = parse(self.sock.recv(65536))
                self.received.append(message)
                taken.append(message)
        except BlockingIOError:
            return taken
        finally:
            self.sock.setblocking(True)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_path(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(str(tmp_path / "notify.sock"))
    yield listener
    listener.close()


@pytest.fixture
def notify_abstract() -> Iterator[NotifyListener]:
    listener = NotifyListener(f"@orchestrator-test-{uuid.uuid4().hex}")
    yield listener
    listener.close()
