"""``orchestrator run``: the daemon as an operator starts it, stopped by SIGTERM
or by the end of a replay, always with exit code 0."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator import Bar

CONFIG = """\
state_dir: state
log: {level: info, format: json}
feed:
  kind: simulated
  simulated: {seed: 3, speed: 0, tick_ms: 1000, bar_ms: 5000, prices: {BTC/USDT: 100.0}}
symbols: [BTC/USDT]
modules:
  ma_crossover: {params: {fast: 2, slow: 5}}
risk: {allocation: 0.0001, min_order_notional: 10000}   # decide, but never order: keeps the log short
"""


def test_sigterm_stops_the_daemon_with_exit_code_0(
    tmp_path: Path, write_config: Callable[..., Path], cli_env: Any
) -> None:
    path = write_config(CONFIG)
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", "-c", str(path)],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if '"event": "ready"' in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(timeout=30), "".join(lines)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    assert process.stdout is not None
    process.stdout.close()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert "Traceback" not in "".join(lines)
    stopped = next(e for e in events if e["event"] == "stopped")
    assert stopped["reason"] == "SIGTERM"
    assert stopped["events"] > 0
    assert next(e for e in events if e["event"] == "ready")["symbols"] == ["BTC/USDT"]
    # An orderly stop saves module state for the next start.
    saved = json.loads((tmp_path / "state" / "modules" / "default" / "ma_crossover.json").read_text())
    assert saved["module"] == "ma_crossover"


def test_a_replay_runs_to_its_end_and_exits_0(
    tmp_path: Path, write_config: Callable[..., Path], run_cli: Callable[..., Any], make_bars: Callable[..., list[Bar]]
) -> None:
    data = tmp_path / "BTC.csv"
    bars = make_bars(200, seed=4)
    data.write_text(
        "timestamp,open,high,low,close,volume\n"
        + "".join(f"{b.open_ts},{b.open},{b.high},{b.low},{b.close},{b.volume}\n" for b in bars)
    )
    path = write_config(
        f"state_dir: {tmp_path / 'state'}\nlog: {{level: info, format: json}}\n"
        f"feed: {{kind: replay, replay: {{paths: [{data}], speed: 0}}}}\n"
        "symbols: [BTC]\nmodules:\n  ma_crossover: {params: {fast: 3, slow: 8}}\n"
    )
    done = run_cli("run", "-c", path, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    # The first line comes before the slow start-up, so an operator sees at once what starts.
    starting = events[0]
    assert starting["event"] == "starting"
    assert (starting["feed"], starting["venue"], starting["symbols"], starting["modules"]) == (
        "replay",
        "paper",
        ["BTC"],
        1,
    )
    assert starting["config"] == str(path)
    stopped = events[-1]
    assert (stopped["event"], stopped["reason"], stopped["events"]) == ("stopped", "feed ended", 200)
    assert any(e["event"] == "fill" for e in events)
