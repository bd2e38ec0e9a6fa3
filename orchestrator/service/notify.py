"""A small client of systemd's notify protocol, without libsystemd.

Reference: sd_notify(3) and systemd.service(5). A notification is one
datagram of newline-separated ``KEY=VALUE`` lines sent to the AF_UNIX socket
named by ``$NOTIFY_SOCKET`` (a path, or an abstract name written with a
leading ``@``). The keys used here: ``READY=1``, ``RELOADING=1`` with
``MONOTONIC_USEC=`` (systemd 253+ uses it to match a reload to its
request), ``STOPPING=1``, ``STATUS=`` (one line shown by ``systemctl
status``), ``WATCHDOG=1`` and ``EXTEND_TIMEOUT_USEC=``. The watchdog is ours
when ``$WATCHDOG_USEC`` is set and ``$WATCHDOG_PID`` is unset or our pid
(``sd_watchdog_enabled``).

Sending never raises and never blocks: a notification that cannot be sent
is logged once per kind of failure and dropped, because the daemon must
trade on whether or not a service manager is listening.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger("orchestrator.service")

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"
STATUS_MAX_CHARS = 200  # systemctl status shows one line; keep it readable


def notify_address(value: str) -> str | bytes | None:
    """The socket address in ``$NOTIFY_SOCKET``, or ``None`` if we cannot use it.

    ``@name`` is Linux's abstract namespace (a leading NUL byte); an absolute
    path is a socket file. Other forms (``vsock:``) are not supported here.
    """
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def watchdog_interval_s(env: Mapping[str, str], pid: int) -> float | None:
    """Half the watchdog timeout, as sd_watchdog_enabled(3) advises; ``None``
    when no watchdog is configured for this process."""
    raw_usec = env.get(WATCHDOG_USEC_ENV, "")
    raw_pid = env.get(WATCHDOG_PID_ENV, "")
    if not raw_usec:
        return None
    try:
        usec = int(raw_usec)
        if raw_pid and int(raw_pid) != pid:
            return None  # meant for another process (e.g. our parent)
    except ValueError:
        log.warning("watchdog_env_invalid", watchdog_usec=raw_usec, watchdog_pid=raw_pid)
        return None
    if usec <= 0:
        return None
    return usec / 2_000_000.0


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds: the clock systemd compares against."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _usec(seconds: float) -> int:
    return max(1, int(seconds * 1_000_000))


def one_line(text: str) -> str:
    """A STATUS value: newlines would start a new key, so they become spaces."""
    flat = " ".join(text.split())
    return flat if len(flat) <= STATUS_MAX_CHARS else flat[: STATUS_MAX_CHARS - 3] + "..."


class SystemdNotifier:
    """Sends notifications to the service manager; inert without a socket."""

    def __init__(self, env: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        env = os.environ if env is None else env
        self.pid = os.getpid() if pid is None else pid
        raw = env.get(NOTIFY_SOCKET_ENV, "")
        self.address = notify_address(raw) if raw else None
        if raw and self.address is None:
            log.warning("notify_socket_unsupported", notify_socket=raw)
        self.watchdog_interval_s = watchdog_interval_s(env, self.pid) if self.address is not None else None
        self.sent = 0
        self.dropped = 0
        self._failures_logged: set[str] = set()
        self._socket: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """Send one datagram; ``send(READY=1, STATUS="...")``. False if not sent."""
        if self.address is None:
            return False
        payload = "\n".join(f"{key}={value}" for key, value in fields.items()).encode() + b"\n"
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.setblocking(False)
            self._socket.sendto(payload, self.address)
        except OSError as exc:
            self.dropped += 1
            kind = type(exc).__name__ if exc.errno is None else os.strerror(exc.errno)
            if kind not in self._failures_logged:
                self._failures_logged.add(kind)
                log.warning("notify_failed", error=f"{type(exc).__name__}: {exc}", keys=sorted(fields))
            return False
        self.sent += 1
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY=1, STATUS=one_line(status))

    def reloading(self, status: str = "reloading configuration") -> bool:
        return self.send(RELOADING=1, MONOTONIC_USEC=monotonic_usec(), STATUS=one_line(status))

    def stopping(self, status: str, within_s: float | None = None) -> bool:
        """STOPPING=1; ``within_s`` also asks systemd to wait that long before
        killing us, in case the unit's TimeoutStopSec= is shorter than our own deadline."""
        if within_s is None:
            return self.send(STOPPING=1, STATUS=one_line(status))
        return self.send(STOPPING=1, STATUS=one_line(status), EXTEND_TIMEOUT_USEC=_usec(within_s))

    def status(self, status: str) -> bool:
        return self.send(STATUS=one_line(status))

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more time to start or stop (EXTEND_TIMEOUT_USEC)."""
        return self.send(EXTEND_TIMEOUT_USEC=_usec(seconds))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
