"""``orchestrator modules``: what can be loaded, or what a profile loads."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
MA_DEFAULTS = {"fast": 10, "slow": 30, "z_scale": 2.0, "horizon_bars": 5, "information_coefficient": 0.05}
RunBatch = Callable[..., list[subprocess.CompletedProcess[str]]]


@pytest.fixture(scope="module")
def listings(distribution: Path, tmp_path_factory: pytest.TempPathFactory, run_cli_batch: RunBatch) -> dict[str, Any]:
    """One batch of ``modules`` runs, shared by this file's tests: plain and
    --json (both with an installed third-party distribution on the path), and
    of two profiles."""
    profile = tmp_path_factory.mktemp("listings") / "profile.yaml"
    profile.write_text(
        "symbols: [A]\nmodules:\n  trend: {module: ma_crossover, params: {fast: 4}, latency_budget_us: 50}\n"
    )
    runs = run_cli_batch(
        [
            (("modules",), {"PYTHONPATH": str(distribution)}),
            (("modules", "--json"), {"PYTHONPATH": str(distribution)}),
            ("modules", "-c", REPO / "config" / "default.yaml"),
            ("modules", "--json", "--config", profile),
            ("modules", "-c", profile),
        ]
    )
    for done in runs:
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    names = ("table", "json", "profile_table", "profile_json", "custom_table")
    return dict(zip(names, runs, strict=True))


def test_the_table_lists_version_event_kinds_and_parameter_defaults(listings: dict[str, Any]) -> None:
    lines = listings["table"].stdout.splitlines()
    row = next(line for line in lines if line.startswith("│ ma_crossover "))
    cells = [cell.strip() for cell in row.strip("│").split("│")]
    assert cells[:4] == ["ma_crossover", "1.0.0", "bar", "-"]
    assert cells[4].startswith("fast=10, slow=30, z_scale=2.0")
    third = next(line for line in lines if line.startswith("│ tp_momentum "))
    assert "0.1.0" in third


def test_json_lists_every_contract(listings: dict[str, Any]) -> None:
    rows = {row["name"]: row for row in json.loads(listings["json"].stdout)}
    assert [name for name, row in rows.items() if "error" in row and not name.startswith("tp_")] == [], (
        "every built-in module must load"
    )
    assert rows["ma_crossover"] == {
        "name": "ma_crossover",
        "implementation": "ma_crossover",
        "version": "1.0.0",
        "consumes": ["bar"],
        "depends_on": [],
        "fusion": False,
        "latency_budget_us": 200.0,
        "params": MA_DEFAULTS,
        "summary": "Trend following from a fast/slow EMA crossover, in volatility units.",
    }
    # An installed third-party module is listed like a built-in one.
    assert (rows["tp_momentum"]["version"], rows["tp_momentum"]["consumes"]) == ("0.1.0", ["bar"])
    assert rows["tp_flat"]["implementation"] == "tp_flat"
    assert "tp_missing" not in rows


def test_the_modules_of_a_profile_with_their_configured_params(listings: dict[str, Any]) -> None:
    assert "modules of " in listings["profile_table"].stdout
    assert "│ ma_crossover" in listings["profile_table"].stdout
    (configured,) = json.loads(listings["profile_json"].stdout)
    assert (configured["name"], configured["implementation"], configured["bucket"]) == (
        "trend",
        "ma_crossover",
        "default",
    )
    assert configured["params"] == {**MA_DEFAULTS, "fast": 4}
    assert configured["defaults"] == MA_DEFAULTS
    assert configured["latency_budget_us"] == 50.0


def test_the_profile_table_names_the_bucket(listings: dict[str, Any]) -> None:
    assert "ma_crossover [default]" in listings["profile_table"].stdout


def test_a_configured_parameter_shows_its_default_when_it_differs(listings: dict[str, Any]) -> None:
    custom = listings["custom_table"].stdout
    assert "parameters (configured)" in custom
    assert "fast=4 (default 10), slow=30, z_scale=2.0" in custom
    # The default profile sets ma_crossover's parameters to their defaults: shown plainly.
    assert "(default " not in listings["profile_table"].stdout
