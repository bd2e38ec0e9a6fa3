"""scripts/bench_report.py: a bench report becomes the README's figure blocks."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "scripts" / "bench_report.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _figures(p50: float) -> dict[str, float]:
    return {"p50": p50, "p95": p50 * 1.5, "max": p50 * 2}


def _case(label: str, modules: list[str], events_per_s: float) -> dict[str, Any]:
    return {
        "label": label,
        "modules": modules,
        "events_per_s": events_per_s,
        "latency_p50_us": 40.0,
        "latency_p99_us": 150.0,
        "module_us_per_call": dict.fromkeys(modules, 3.0),
        "module_us_per_event": dict.fromkeys(modules, 1.5),
    }


def _report(six_per_s: float) -> dict[str, Any]:
    swap = {
        "swaps": 20,
        "load_average": [0.5, 0.4, 0.3],
        "events_per_s": 400_000.0,
        "every_event_processed_once": True,
        "latency_ms": _figures(58.2),
        "stall_ms": _figures(1.9),
        "stall_net_of_cpu_contention_ms": _figures(1.8),
        "quiet_window_max_gap_net_ms": _figures(0.35),
        "split_ms": {k: _figures(2.0) for k in ("detect_ms", "load_ms", "prepare_ms", "swap_ms")},
        "targets": {"latency_p50_ms_max": 200.0, "stall_ms_max": 5.0},
    }
    return {
        "bench": "hot_path",
        "machine": {"python": "3.11.7", "platform": "Linux-test", "cpus": 2},
        "stream": {"events": 1000, "by_kind": {"book": 600, "trade": 390, "bar": 10}, "symbols": ["A", "B"]},
        "single_module": _case("single module (ma_crossover)", ["ma_crossover"], 500_000.0),
        "analysis_modules": _case("analysis modules (6)", ["cob", "regime"], six_per_s),
        "targets": {
            "events_per_s_min": 50_000.0,
            "events_per_s_goal": 100_000.0,
            "order_latency_p99_us_max": 1000.0,
            "mqtt_throughput_loss_pct_max": 5.0,
        },
        "pass": {"events_per_s": six_per_s >= 50_000, "order_latency_p99": True},
        "swap": swap,
    }


def test_blocks_carry_the_reports_figures_and_verdicts() -> None:
    script = _script()
    met = script.bench_block(_report(89_571.9))
    assert "| analysis modules (6) | 89,572 | 40 µs | 150 µs |" in met
    assert "events_per_s met" in met
    assert "NOT met" not in met
    assert "events_per_s NOT met" in script.bench_block(_report(25_000.0))
    swap = script.swap_block(_report(1.0)["swap"])
    assert "| save → first event processed by the new version | 58 ms | 87 ms | 116 ms | p50 ≤ 200 ms |" in swap


def test_readme_has_both_blocks_and_a_rewrite_keeps_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _script()
    readme = tmp_path / "README.md"
    original = (ROOT / "README.md").read_text(encoding="utf-8")
    readme.write_text(original, encoding="utf-8")
    report = tmp_path / "bench.json"
    report.write_text(json.dumps(_report(60_000.0)))
    monkeypatch.setattr(script, "README", readme)
    assert script.main([str(report)]) == 0
    rewritten = readme.read_text(encoding="utf-8")
    assert "| analysis modules (6) | 60,000 |" in rewritten
    outside = rewritten.split("<!-- bench-figures -->")[0]
    assert outside.split("<!-- swap-figures -->")[0] == original.split("<!-- swap-figures -->")[0]
    assert rewritten.split("<!-- /bench-figures -->")[1] == original.split("<!-- /bench-figures -->")[1]


def test_a_partial_or_unreadable_report_is_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script()
    partial = tmp_path / "swap.json"
    partial.write_text(json.dumps({"bench": "hot_swap", "swap": {}}))
    assert script.main([str(partial), "--print"]) == 2
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert script.main([str(broken), "--print"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2
    assert "not a full scripts/bench.py report" in errors[0]
