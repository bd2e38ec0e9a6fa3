"""The daemon as systemd runs it: a real process, a notify socket, signals and a journal-like
stderr. READY, STATUS, WATCHDOG and STOPPING arrive in order; a blocked event loop sends no
pings; SIGHUP gives RELOADING then READY; SIGTERM exits 0 with state saved; every log line is
one JSON object (behind a journald priority when stderr is the journal, bare on a pipe)."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.journal.store import OrderJournal

pytestmark = pytest.mark.slow

# Holds the event loop while a flag file exists: the way a module stuck in a
# computation (or a blocking call) freezes the daemon.
BLOCKER_MODULE = '''\
"""Test module: blocks in on_bar while a flag file exists."""

import time
from pathlib import Path

from orchestrator import AnalysisModule, Bar, EventKind, ModuleContext, ModuleOutput, ModuleParams


class BlockerParams(ModuleParams):
    flag: str
    marker: str


class BlockerModule(AnalysisModule[BlockerParams]):
    name = "blocker"
    version = "1.0.0"
    consumes = frozenset({EventKind.BAR})
    Params = BlockerParams

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        flag = Path(self.params.flag)
        if flag.exists():
            Path(self.params.marker).write_text("blocked")
            give_up = time.monotonic() + 120
            while flag.exists() and time.monotonic() < give_up:
                time.sleep(0.01)
        return None


MODULE = BlockerModule
'''

CONFIG = """\
instance: systemd-test
state_dir: {root}/state
modules_path: [{root}/modules]
feed:
  kind: simulated
  simulated: {{seed: 5, tick_ms: 1000, bar_ms: 1000, speed: 50, prices: {{BTC/USDT: 60000.0}}}}
symbols: [BTC/USDT]
modules:
  ma_crossover: {{params: {{fast: 3, slow: 8}}}}
  blocker: {{params: {{flag: {root}/block, marker: {root}/blocked}}}}
"""
PRIORITY = {"debug": "7", "info": "6", "warning": "4", "error": "3"}


def orchestrator_command() -> list[str]:
    return [sys.executable, "-m", "orchestrator"]


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def journal_lines(path: Path) -> list[dict]:
    """Parse stderr the way journald does: a ``<N>`` priority, then the message."""
    entries = []
    for line in path.read_text().splitlines():
        assert re.match(r"<\d>\{", line), f"no journald priority: {line!r}"
        entry = json.loads(line[3:])
        assert isinstance(entry, dict), line
        assert {"timestamp", "level", "logger", "event"} <= entry.keys(), line
        assert line[1] == PRIORITY[entry["level"]], line
        entries.append(entry)
    return entries


def test_notify_watchdog_reload_and_stop(tmp_path: Path, notify_abstract):
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "blocker.py").write_text(BLOCKER_MODULE)
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(root=tmp_path))
    flag, marker = tmp_path / "block", tmp_path / "blocked"
    stderr_path = tmp_path / "journal"
    notify = notify_abstract
    with stderr_path.open("w") as stderr:
        stat = os.fstat(stderr.fileno())
        env = {
            **os.environ,
            "NOTIFY_SOCKET": notify.address,
            "WATCHDOG_USEC": "200000",  # pings every 0.1 s
            "JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}",
        }
        env.pop("WATCHDOG_PID", None)
        process = subprocess.Popen(
            [*orchestrator_command(), "run", "--config", str(config)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        # Start-up: READY once, then a STATUS summary, then pings.
        ready = notify.wait_for(lambda m: "READY" in m, timeout=60)
        assert ready["STATUS"].startswith("ACTIVE |")
        assert "WATCHDOG" not in {key for message in notify.received for key in message}
        status = notify.wait_for(lambda m: "STATUS" in m)
        assert "READY" not in status
        # Two modules, whatever their health on a busy machine (an overrun marks one degraded).
        counts = re.search(r"\| modules ((?:\d+ \w+(?:, )?)+) \|", status["STATUS"])
        assert counts, status["STATUS"]
        assert sum(int(part.split()[0]) for part in counts.group(1).split(", ")) == 2
        for _ in range(3):
            notify.wait_for(lambda m: m == {"WATCHDOG": "1"})

        # A blocked loop: once the module is inside its stall, no ping can come.
        flag.touch()
        wait_until(marker.exists)
        notify.drain()  # whatever was sent before the stall
        quiet = []
        window_ends = time.monotonic() + 1.0  # ten ping intervals
        while (left := window_ends - time.monotonic()) > 0:
            message = notify.next(timeout=left)
            if message is not None:
                quiet.append(message)
        assert quiet == [], "notifications arrived while the event loop was blocked"
        flag.unlink()
        notify.wait_for(lambda m: m == {"WATCHDOG": "1"})

        # SIGHUP: RELOADING (with the monotonic time) then READY again.
        process.send_signal(signal.SIGHUP)
        reloading = notify.wait_for(lambda m: "RELOADING" in m or "READY" in m)
        assert reloading["RELOADING"] == "1"
        assert int(reloading["MONOTONIC_USEC"]) > 0
        again = notify.wait_for(lambda m: "READY" in m or "STOPPING" in m)
        assert again["READY"] == "1"

        # SIGTERM: STOPPING, a clean exit, and nothing after STOPPING.
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    after = notify.drain()
    stopping = [i for i, message in enumerate(after) if "STOPPING" in message]
    assert len(stopping) == 1
    assert after[stopping[0]] == {"STOPPING": "1", "STATUS": "stopping: SIGTERM", "EXTEND_TIMEOUT_USEC": "45000000"}
    assert after[stopping[0] + 1 :] == []

    entries = journal_lines(stderr_path)
    names = [entry["event"] for entry in entries]
    assert names[-1] == "stopped"
    for expected in ("ready", "config_reload_started", "stopping", "feed_stopped"):
        assert expected in names
    assert names.index("ready") < names.index("config_reload_started") < names.index("stopping")
    assert all("trace_id" in entry for entry in entries if entry["event"] in {"order_intent", "fill", "decision"})
    state = json.loads((tmp_path / "state" / "modules" / "default" / "ma_crossover.json").read_text())
    assert state["module"] == "ma_crossover"
    # The journal is whole and holds every order the daemon logged.
    journal_file = tmp_path / "state" / "journal.sqlite"
    with sqlite3.connect(journal_file) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    journal = OrderJournal(journal_file, create=False)
    try:
        journaled = {order.client_order_id for order in journal.orders(limit=100_000)}
        assert all(order.status.is_terminal for order in journal.orders(limit=100_000))
    finally:
        journal.close()
    assert journaled  # the run traded
    assert journaled == {entry["client_order_id"] for entry in entries if entry["event"] == "order_intent"}


def test_piped_stderr_is_json_lines_with_trace_ids(tmp_path: Path):
    """Not a terminal and not the journal (a pipe to a log shipper): plain JSON lines."""
    bars = ["timestamp,open,high,low,close,volume"]
    for minute in range(400):
        close = 100.0 + 10.0 * math.sin(minute / 15.0)
        bars.append(f"{1_704_067_200_000 + minute * 60_000},{close},{close + 0.5},{close - 0.5},{close},1.0")
    (tmp_path / "BTCUSDT.csv").write_text("\n".join(bars) + "\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"state_dir: {tmp_path}/state\n"
        f"feed: {{kind: replay, replay: {{paths: [{tmp_path}/BTCUSDT.csv], symbol: BTC/USDT}}}}\n"
        "symbols: [BTC/USDT]\n"
        "modules: {ma_crossover: {params: {fast: 3, slow: 8}}}\n"
    )
    env = {key: value for key, value in os.environ.items() if key not in {"JOURNAL_STREAM", "NOTIFY_SOCKET"}}
    result = subprocess.run(
        [*orchestrator_command(), "run", "--config", str(config)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    entries = [json.loads(line) for line in result.stderr.splitlines()]  # every line, strictly
    assert all(isinstance(entry, dict) and {"timestamp", "level", "event"} <= entry.keys() for entry in entries)
    intents = [entry for entry in entries if entry["event"] == "order_intent"]
    fills = [entry for entry in entries if entry["event"] == "fill"]
    assert intents
    assert fills
    assert {fill["trace_id"] for fill in fills} <= {intent["trace_id"] for intent in intents}
    assert entries[-1]["event"] == "stopped"
    assert entries[-1]["reason"] == "feed ended"


def test_a_module_that_fails_to_load_is_a_json_line_and_exit_2(tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path}/state\nsymbols: [BTC/USDT]\nmodules: {{no_such_module: {{}}}}\n")
    result = subprocess.run(
        [*orchestrator_command(), "run", "--config", str(config)],
        env={**os.environ, "JOURNAL_STREAM": "0:0"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    entries = [json.loads(line) for line in result.stderr.splitlines()]  # every line, strictly
    assert [entry["event"] for entry in entries].count("startup_failed") == 1
    entry = entries[-1]
    assert entry["event"] == "startup_failed"
    assert entry["level"] == "error"
    assert any("no_such_module" in problem for problem in entry["problems"])
