"""The daemon in-process: a module that raises on every event is contained,
the rest of the core keeps deciding and trading, and a finite replay ends the
run cleanly with module state saved."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from orchestrator import Bar
from orchestrator.config.loader import load_config
from orchestrator.daemon import Daemon
from orchestrator.engine.health import ModuleStatus


async def test_a_raising_module_does_not_stop_the_daemon(
    tmp_path: Path,
    write_config: Callable[..., Path],
    scripted_module: Callable[..., Path],
    make_bars: Callable[..., list[Bar]],
    raise_line: Callable[[Path], int],
) -> None:
    data = tmp_path / "BTC.csv"
    bars = make_bars(400, seed=8)
    data.write_text(
        "timestamp,open,high,low,close,volume\n"
        + "".join(f"{b.open_ts},{b.open},{b.high},{b.low},{b.close},{b.volume}\n" for b in bars)
    )
    broken = scripted_module("broken", default="raise")
    path = write_config(
        {
            "state_dir": str(tmp_path / "state"),
            "log": {"level": "error", "format": "json"},
            "feed": {"kind": "replay", "replay": {"paths": [str(data)], "speed": 0}},
            "symbols": ["BTC"],
            "modules": {
                "broken": {"path": str(broken)},
                "ma_crossover": {"params": {"fast": 3, "slow": 8}, "latency_budget_us": 1e9},
            },
            "engine": {"isolate_after_errors": 5, "retry_isolated_after_s": 3600},
        }
    )
    daemon = Daemon(load_config(path, env={}))
    slots = dict(daemon.engine.pipelines["default"].slots)  # they leave the pipeline when the daemon stops

    assert await daemon.run() == 0
    assert daemon.stop_reason == "feed ended"
    engine = daemon.engine
    assert engine.counters.events == 400
    assert engine.counters.decisions > 5
    assert engine.counters.fills > 0

    broken_slot = slots["broken"]
    # 60-second bars, retried after an hour: isolated at bar 5, 65, 125, ... with a doubling backoff.
    assert broken_slot.status is ModuleStatus.ISOLATED
    assert broken_slot.health.errors >= 5
    assert broken_slot.health.isolations >= 1
    assert broken_slot.health.last_error is not None
    assert broken_slot.health.last_error.endswith(f"{broken}:{raise_line(broken)}")
    healthy = slots["ma_crossover"]
    assert healthy.health.calls == 400
    assert healthy.health.errors == 0
    assert healthy.status is ModuleStatus.ACTIVE

    state = tmp_path / "state" / "modules" / "default"
    assert json.loads((state / "ma_crossover.json").read_text())["module"] == "ma_crossover"
    assert not (state / "broken.json").exists()
    assert engine.pipelines["default"].slots == {}, "modules are stopped on the way out"
