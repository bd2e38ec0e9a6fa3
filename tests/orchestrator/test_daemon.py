"""The daemon in-process: a module that raises on every event is contained,
the rest of the core keeps deciding and trading, and a finite replay ends the
run cleanly with module state saved. A module that fails its own self-check
is refused at start, naming the module, before anything is built."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from orchestrator import Bar
from orchestrator.config.loader import load_config
from orchestrator.daemon import FIRST_STATUS_LOG_S, STATUS_LOG_INTERVAL_S, Daemon
from orchestrator.engine.health import ModuleStatus
from orchestrator.errors import ConfigError


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
    # Raises on every bar of the replay, but not on the self-check's sample
    # (other timestamps): a module that fails its self-check is refused at start.
    broken = scripted_module("broken", {b.ts: "raise" for b in bars}, default=None)
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


CHECKED = """\
from orchestrator import AnalysisModule, Bar, EventKind, ModuleContext, ModuleOutput, ModuleParams


class Checked(AnalysisModule[ModuleParams]):
    name = "checked"
    version = "1.0.0"
    consumes = frozenset({EventKind.BAR})

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        return None

    def self_check(self, sample):
        CHECK


MODULE = Checked
"""


def checked_config(
    tmp_path: Path, write_config: Callable[..., Path], write_module: Callable[..., Path], check: str
) -> Path:
    module = write_module("checked", CHECKED.replace("CHECK", check))
    return write_config(
        {
            "state_dir": str(tmp_path / "state"),
            "log": {"level": "info", "format": "json"},
            "feed": {"kind": "simulated", "simulated": {"speed": 0}},
            "symbols": ["BTC/USDT"],
            "modules": {"checked": {"path": str(module)}, "ma_crossover": {"params": {"fast": 3, "slow": 8}}},
        }
    )


@pytest.mark.parametrize(
    ("check", "problem"),
    [
        pytest.param("return ['weights file is stale']", "self-check failed: weights file is stale", id="reported"),
        pytest.param("raise RuntimeError('no weights')", "self_check raised RuntimeError: no weights at ", id="raised"),
        pytest.param("return 'fine'", "self_check returned str, not a list of strings", id="not-a-list"),
    ],
)
def test_a_module_failing_its_self_check_is_refused_at_start(
    tmp_path: Path, write_config: Callable[..., Path], write_module: Callable[..., Path], check: str, problem: str
) -> None:
    path = checked_config(tmp_path, write_config, write_module, check)
    with pytest.raises(ConfigError) as refused:
        Daemon(load_config(path, env={}))
    (line,) = refused.value.problems
    assert line.startswith(f"{path}: modules.checked: {problem}")
    assert "\n" not in line
    assert not (tmp_path / "state").exists()  # refused before anything was built or written


def test_a_module_whose_handlers_raise_on_the_sample_fails_the_default_self_check(
    tmp_path: Path, write_config: Callable[..., Path], scripted_module: Callable[..., Path]
) -> None:
    broken = scripted_module("broken", default="raise")
    path = write_config(
        {
            "state_dir": str(tmp_path / "state"),
            "feed": {"kind": "simulated", "simulated": {"speed": 0}},
            "symbols": ["BTC/USDT"],
            "modules": {"broken": {"path": str(broken)}},
        }
    )
    with pytest.raises(ConfigError) as refused:
        Daemon(load_config(path, env={}))
    assert len(refused.value.problems) == 1
    assert refused.value.problems[0].startswith(f"{path}: modules.broken: self-check failed: event ")
    assert "(bar): ValueError: scripted failure at " in refused.value.problems[0]


def test_a_passing_self_check_starts_the_daemon(
    tmp_path: Path, write_config: Callable[..., Path], write_module: Callable[..., Path]
) -> None:
    path = checked_config(tmp_path, write_config, write_module, "return []")
    daemon = Daemon(load_config(path, env={}))
    assert set(daemon.engine.pipelines["default"].slots) == {"checked", "ma_crossover"}


def test_orchestrator_run_refuses_the_module_with_one_line_and_no_traceback(
    tmp_path: Path, write_config: Callable[..., Path], write_module: Callable[..., Path], cli_env: Any
) -> None:
    path = checked_config(tmp_path, write_config, write_module, "return ['weights file is stale']")
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "-c", str(path)],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    failed = json.loads(lines[-1])
    assert failed["event"] == "startup_failed"
    assert failed["problems"] == [f"{path}: modules.checked: self-check failed: weights file is stale"]
    assert [json.loads(line)["event"] for line in lines] == ["starting", "startup_failed"]


async def test_the_first_status_line_comes_early_with_positions_and_pnl(
    tmp_path: Path, write_config: Callable[..., Path], scripted_module: Callable[..., Path]
) -> None:
    assert 5.0 <= FIRST_STATUS_LOG_S <= 10.0 < STATUS_LOG_INTERVAL_S
    long = scripted_module("long", default=(1.0, 1.0))  # always fully long: a position opens at once
    path = write_config(
        {
            "state_dir": str(tmp_path / "state"),
            "feed": {
                "kind": "simulated",
                "simulated": {"speed": 50, "tick_ms": 250, "bar_ms": 1000, "prices": {"BTC/USDT": 100.0}},
            },
            "symbols": ["BTC/USDT"],
            "modules": {"long": {"path": str(long)}},
        }
    )
    daemon = Daemon(load_config(path, env={}))
    assert (daemon.first_status_log_s, daemon.status_log_interval_s) == (FIRST_STATUS_LOG_S, STATUS_LOG_INTERVAL_S)
    daemon.first_status_log_s, daemon.status_log_interval_s = 0.5, 3600.0  # the same schedule, shortened
    with capture_logs() as logs:
        task = asyncio.create_task(daemon.run())
        await asyncio.wait_for(daemon.ready.wait(), 30)
        started = asyncio.get_running_loop().time()
        while not any(entry["event"] == "status" for entry in logs):
            assert asyncio.get_running_loop().time() - started < 20, "no status line"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # the next one is a period away, not another first delay
        daemon.request_stop("test")
        assert await task == 0
    (status,) = [entry for entry in logs if entry["event"] == "status"]
    assert status["events"] > 0
    assert status["fills"] > 0
    assert status["state"] == "ACTIVE"
    (quantity,) = status["positions"].values()
    assert list(status["positions"]) == ["BTC/USDT"]
    assert quantity > 0.0
    for key in ("equity", "realized_pnl", "unrealized_pnl", "fees"):
        assert isinstance(status[key], float), key
        assert status[key] == round(status[key], 2), key
