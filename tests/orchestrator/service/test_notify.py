"""The notify client: addresses, watchdog settings, what goes on the wire, and failing quietly."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from orchestrator.service.notify import SystemdNotifier, notify_address, one_line, watchdog_interval_s


def test_addresses_paths_and_abstract_names():
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("@abstract/name") == b"\0abstract/name"
    assert notify_address("vsock:2:1234") is None
    assert notify_address("relative.sock") is None
    assert notify_address("@") is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "4242"}, 0.1),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}, None),  # another process's watchdog
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout_and_only_ours(env, expected):
    assert watchdog_interval_s(env, pid=4242) == expected


def test_status_is_one_bounded_line():
    assert one_line("a\nb\tc  d") == "a b c d"
    long = one_line("x" * 500)
    assert len(long) == 200
    assert long.endswith("...")


def test_messages_reach_a_path_socket(notify_path):
    env = {"NOTIFY_SOCKET": notify_path.address, "WATCHDOG_USEC": "1000000"}
    notifier = SystemdNotifier(env)
    assert notifier.enabled
    assert notifier.watchdog_interval_s == 0.5
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.ready("up\nand running")
    assert notifier.reloading()
    assert notifier.watchdog()
    assert notifier.extend_timeout(2.5)
    assert notifier.stopping("stopping: SIGTERM", within_s=35)
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    got = [notify_path.next(5) for _ in range(5)]
    assert got[0] == {"READY": "1", "STATUS": "up and running"}
    assert got[1]["RELOADING"] == "1"
    assert before <= int(got[1]["MONOTONIC_USEC"]) <= after
    assert got[2] == {"WATCHDOG": "1"}
    assert got[3] == {"EXTEND_TIMEOUT_USEC": "2500000"}
    assert got[4] == {"STOPPING": "1", "STATUS": "stopping: SIGTERM", "EXTEND_TIMEOUT_USEC": "35000000"}
    assert notifier.sent == 5
    notifier.close()


def test_messages_reach_an_abstract_socket(notify_abstract):
    notifier = SystemdNotifier({"NOTIFY_SOCKET": notify_abstract.address}, pid=os.getpid())
    assert notifier.watchdog_interval_s is None
    assert notifier.status("hello")
    assert notify_abstract.next(5) == {"STATUS": "hello"}


def test_without_a_socket_nothing_is_sent():
    notifier = SystemdNotifier({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval_s is None  # no socket, no one to ping
    assert not notifier.ready("up")


def test_a_missing_socket_is_logged_once_and_never_raises(tmp_path: Path):
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    with capture_logs() as logs:
        results = [notifier.watchdog() for _ in range(3)]
    assert results == [False, False, False]
    assert notifier.dropped == 3
    failures = [entry for entry in logs if entry["event"] == "notify_failed"]
    assert len(failures) == 1
    assert "No such file" in failures[0]["error"]


def test_an_unsupported_address_is_reported():
    with capture_logs() as logs:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "vsock:2:99"})
    assert not notifier.enabled
    assert [entry["event"] for entry in logs] == ["notify_socket_unsupported"]
