"""``orchestrator check-config``: an ok line and exit 0, or one line per problem
and exit 2 — never a traceback."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

RunCli = Callable[..., subprocess.CompletedProcess[str]]
GOOD = "symbols: [BTC/USDT, ETH/USDT]\nmodules:\n  ma_crossover: {params: {fast: 5, slow: 20}}\n"


def test_a_good_file_prints_an_ok_line(write_config: Callable[..., Path], run_cli: RunCli) -> None:
    path = write_config(GOOD)
    done = run_cli("check-config", path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{path}: ok (1 bucket(s), 2 symbol(s), modules: ma_crossover)\n"
    assert done.stderr == ""


def test_each_bad_case_prints_its_problem_lines_and_exits_2(
    write_config: Callable[..., Path],
    write_module: Callable[..., Path],
    scripted_module: Callable[..., Path],
    run_cli_batch: Callable[..., list[subprocess.CompletedProcess[str]]],
    tmp_path: Path,
) -> None:
    one = scripted_module("one", depends_on=("two",))
    two = scripted_module("two", depends_on=("one",))
    lonely = scripted_module("lonely", depends_on=("ghost",))
    broken = write_module("broken", "import os\n\nraise RuntimeError('not today')\n")
    cases: dict[str, tuple[str, list[str]] | tuple[str, list[str], dict[str, str]]] = {
        "unknown-key": (GOOD + "risk: {allocaton: 0.3}\n", ["risk.allocaton: unknown key"]),
        "wrong-type": (GOOD + "risk: {allocation: lots}\n", ["risk.allocation: must be a number"]),
        "unknown-module": (
            "symbols: [A]\nmodules: {momentum_x: {}}\n",
            ["modules.momentum_x: unknown module (looked in "],
        ),
        "dependency-cycle": (
            f"symbols: [A]\nmodules:\n  one: {{path: {one}}}\n  two: {{path: {two}}}\n",
            ["modules: dependency cycle: "],
        ),
        "missing-dependency": (
            f"symbols: [A]\nmodules:\n  lonely: {{path: {lonely}}}\n",
            ["modules: 'lonely' depends on 'ghost', which is not enabled"],
        ),
        "duplicate-key": (GOOD + "risk: {}\nrisk: {}\n", ["line 5, column 1: duplicate key 'risk' (first on line 4)"]),
        "secret": (
            GOOD + "execution:\n  paper: {api_key: abc}\n",
            ["execution.paper.api_key: secrets come from the environment only, not the file"],
        ),
        "invalid-yaml": ("symbols: [A\nmodules: {}\n", ["line 2, column 8: "]),
        "bad-params": (
            "symbols: [A]\nmodules:\n  ma_crossover: {params: {fast: 40}}\n",
            ["modules.ma_crossover.params: fast (40) must be smaller than slow (30)"],
        ),
        "empty-symbols": ("symbols: []\nmodules: {ma_crossover: {}}\n", ["symbols: must have at least 1 item(s)"]),
        "broken-module": (
            f"symbols: [A]\nmodules:\n  broken: {{path: {broken}}}\n",
            [f"modules.broken: RuntimeError: not today ({broken}:3)"],
        ),
        "schema-and-modules": (
            "symbols: [A]\nrisk: {allocation: lots}\nmodules:\n  nope: {}\n  ma_crossover: {params: {fast: 0}}\n",
            [
                "risk.allocation: must be a number",
                "modules.nope: unknown module",
                "modules.ma_crossover.params.fast: must be > 0",
            ],
        ),
        "env-override": (
            GOOD,
            ["risk.max_order_notional: must be > 0.0 (set by ORCHESTRATOR__RISK__MAX_ORDER_NOTIONAL)"],
            {"ORCHESTRATOR__RISK__MAX_ORDER_NOTIONAL": "-1"},
        ),
    }
    paths = {name: write_config(case[0], name=f"{name}.yaml") for name, case in cases.items()}
    commands: list[Any] = [
        (("check-config", paths[name]), case[2] if len(case) == 3 else {}) for name, case in cases.items()
    ]
    commands.append((("check-config", tmp_path / "absent.yaml"), {}))
    *results, missing = run_cli_batch(commands)
    for (name, case), done in zip(cases.items(), results, strict=True):
        path = paths[name]
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, name
        assert done.stdout == "", name
        lines = done.stderr.splitlines()
        assert len(lines) == len(case[1]), (name, lines)
        for line, start in zip(lines, case[1], strict=True):
            assert line.startswith(f"{path}: {start}"), (name, line)
    assert (missing.returncode, missing.stderr) == (2, f"{tmp_path / 'absent.yaml'}: file not found\n")


def test_the_schema_command_prints_json(run_cli: RunCli) -> None:
    done = run_cli("config-schema")
    assert done.returncode == 0
    schema: dict[str, Any] = json.loads(done.stdout)
    assert schema["additionalProperties"] is False
