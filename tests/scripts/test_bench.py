"""scripts/bench.py end to end on a short stream: the report's shape and its
internal consistency, never its timings (a shared machine says nothing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANALYSIS = {"cob", "regime", "pivots", "extrema", "microstructure", "neural_fusion"}


def test_bench_reports_every_case_and_module(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    subprocess.run(
        [
            sys.executable,
            "scripts/bench.py",
            "--events",
            "3000",
            "--repeat",
            "1",
            "--no-mqtt",
            "--swaps",
            "0",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    report = json.loads(out.read_text())
    assert report["stream"]["events"] == 3000
    assert sum(report["stream"]["by_kind"].values()) == 3000
    assert set(report["analysis_modules"]["modules"]) == ANALYSIS
    assert set(report["all_modules"]["modules"]) > ANALYSIS
    assert report["single_module"]["modules"] == ["ma_crossover"]
    for case in ("single_module", "analysis_modules", "all_modules"):
        result = report[case]
        assert result["events"] == 3000
        assert result["events_per_s"] > 0
        assert set(result["module_us_per_event"]) == set(result["modules"]) == set(result["module_us_per_call"])
        # A module called on a fraction of the events costs the stream less per event than per call.
        for name, per_event in result["module_us_per_event"].items():
            assert 0.0 <= per_event <= result["module_us_per_call"][name] + 1e-9
    # cob sees books only, microstructure every event: per event, cob's cost is diluted, microstructure's is not.
    six = report["analysis_modules"]
    books = report["stream"]["by_kind"]["book"]
    assert abs(six["module_us_per_event"]["cob"] - six["module_us_per_call"]["cob"] * books / 3000) < 0.01
    assert set(report["pass"]) == {"events_per_s", "order_latency_p99"}
    assert report["pass"]["events_per_s"] == (six["events_per_s"] >= report["targets"]["events_per_s_min"])
