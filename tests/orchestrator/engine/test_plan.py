"""Planning a run: module names become code, parameters validate, dependencies
exist and have no cycle, and every problem is one ``file: key.path: message`` line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config.loader import load_config
from orchestrator.engine.plan import RunPlan, module_problems, plan_run
from orchestrator.errors import ConfigError


@pytest.fixture
def plan_problems(write_config: Callable[..., Path]) -> Callable[[Any], tuple[Path, list[str]]]:
    def problems(document: Any) -> tuple[Path, list[str]]:
        path = write_config(document)
        with pytest.raises(ConfigError) as caught:
            plan_run(load_config(path, env={}))
        for line in caught.value.problems:
            assert line.startswith(f"{path}: ")
            assert "\n" not in line
        return path, caught.value.problems

    return problems


def test_modules_run_in_dependency_order_ties_in_config_order(
    scripted_module: Callable[..., Path], make_plan: Callable[..., RunPlan], make_config: Callable[..., Any]
) -> None:
    paths = {
        "top": scripted_module("top", depends_on=("mid", "base_b")),
        "mid": scripted_module("mid", depends_on=("base_a",)),
        "base_b": scripted_module("base_b"),
        "base_a": scripted_module("base_a"),
        "loner": scripted_module("loner"),
    }
    plan = make_plan(make_config(paths))
    (bucket,) = plan.buckets
    assert [m.name for m in bucket.modules] == ["base_b", "base_a", "loner", "mid", "top"]
    # Stable: the same config plans the same order every time.
    assert [m.name for m in make_plan(make_config(paths)).buckets[0].modules] == [m.name for m in bucket.modules]


def test_one_implementation_serves_several_instances(
    make_plan: Callable[..., RunPlan], make_config: Callable[..., Any]
) -> None:
    plan = make_plan(
        make_config(
            {
                "ma_fast": {"module": "ma_crossover", "params": {"fast": 3, "slow": 9}, "weight": 2.0},
                "ma_slow": {"module": "ma_crossover", "latency_budget_us": 999.0},
                "ma_off": {"module": "ma_crossover", "enabled": False},
            }
        )
    )
    fast, slow = plan.buckets[0].modules
    assert fast.loaded is slow.loaded
    assert list(plan.implementations) == ["ma_crossover"]
    assert (fast.params.fast, slow.params.fast) == (3, 10)  # type: ignore[attr-defined]
    assert (fast.weight, slow.weight) == (2.0, 1.0)
    assert (fast.latency_budget_us, slow.latency_budget_us) == (200.0, 999.0)


def test_an_unknown_module(plan_problems: Callable[..., Any]) -> None:
    path, problems = plan_problems({"symbols": ["A"], "modules": {"nope": {}}})
    (line,) = problems
    assert line.startswith(f"{path}: modules.nope: unknown module (looked in ")


def test_a_broken_module_file_names_file_and_line(
    plan_problems: Callable[..., Any], write_module: Callable[..., Path]
) -> None:
    broken = write_module("broken", "import os\nx = = 1\n")
    path, problems = plan_problems({"symbols": ["A"], "modules": {"broken": {"path": str(broken)}}})
    (line,) = problems
    assert line.startswith(f"{path}: modules.broken: SyntaxError")
    assert line.endswith(f"({broken}:2)")


def test_a_dependency_cycle(plan_problems: Callable[..., Any], scripted_module: Callable[..., Path]) -> None:
    modules = {
        "alpha": {"path": str(scripted_module("alpha", depends_on=("beta",)))},
        "beta": {"path": str(scripted_module("beta", depends_on=("gamma",)))},
        "gamma": {"path": str(scripted_module("gamma", depends_on=("alpha",)))},
    }
    path, problems = plan_problems({"symbols": ["A"], "modules": modules})
    (line,) = problems
    assert line.startswith(f"{path}: modules: dependency cycle: ")
    cycle = line.split("dependency cycle: ")[1].split(" -> ")
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"alpha", "beta", "gamma"}


@pytest.mark.parametrize("ghost_entry", [None, {"enabled": False}])
def test_a_missing_or_disabled_dependency(
    plan_problems: Callable[..., Any], scripted_module: Callable[..., Path], ghost_entry: dict[str, Any] | None
) -> None:
    modules: dict[str, Any] = {"alpha": {"path": str(scripted_module("alpha", depends_on=("ghost",)))}}
    if ghost_entry is not None:
        modules["ghost"] = {**ghost_entry, "path": str(scripted_module("ghost"))}
    path, problems = plan_problems({"symbols": ["A"], "modules": modules})
    assert problems == [f"{path}: modules: 'alpha' depends on 'ghost', which is not enabled"]


def test_bad_module_params_name_their_key_path(plan_problems: Callable[..., Any]) -> None:
    path, problems = plan_problems(
        {"symbols": ["A"], "modules": {"ma_crossover": {"params": {"fast": 0, "colour": 1}}}}
    )
    assert sorted(problems) == [
        f"{path}: modules.ma_crossover.params.colour: unknown key",
        f"{path}: modules.ma_crossover.params.fast: must be > 0",
    ]
    _, problems = plan_problems({"symbols": ["A"], "modules": {"ma_crossover": {"params": {"fast": 30, "slow": 10}}}})
    assert problems == [f"{path}: modules.ma_crossover.params: fast (30) must be smaller than slow (10)"]


def test_bucket_problems_are_all_listed(plan_problems: Callable[..., Any]) -> None:
    path, problems = plan_problems(
        {
            "buckets": {
                "majors": {
                    "symbols": ["A", "B"],
                    "modules": ["ma_crossover", "ma_off", "ma_ghost"],
                    "params": {"ma_crossover": {"fast": 0}, "other": {}},
                },
                "alts": {"symbols": ["B"], "fusion": {"weights": {"nobody": 1.0}, "regime_module": "regimes"}},
            },
            "modules": {"ma_crossover": {}, "ma_off": {"module": "ma_crossover", "enabled": False}},
            "fusion": {"weights": {"ma_crossover": 2.0}},
        }
    )
    assert problems == [
        f"{path}: buckets.majors.modules[1]: 'ma_off' is disabled",
        f"{path}: buckets.majors.modules[2]: 'ma_ghost' is not configured under modules",
        f"{path}: buckets.majors.params.ma_crossover.fast: must be > 0",
        f"{path}: buckets.majors.params.other: module is not used in this bucket",
        f"{path}: buckets.alts.symbols[0]: 'B' is already in bucket 'majors'",
        f"{path}: buckets.alts.fusion.weights.nobody: not a module of bucket 'alts'",
        f"{path}: buckets.alts.fusion.regime_module: 'regimes' is not a module of bucket 'alts'",
    ]


def test_bucket_params_override_module_params(make_plan: Callable[..., RunPlan]) -> None:
    plan = make_plan(
        {
            "buckets": {
                "slow": {"symbols": ["A"], "params": {"ma_crossover": {"slow": 90}}},
                "fast": {"symbols": ["B"]},
            },
            "modules": {"ma_crossover": {"params": {"fast": 5}}},
        }
    )
    slow, fast = (bucket.modules[0].params for bucket in plan.buckets)
    assert (slow.fast, slow.slow) == (5, 90)  # type: ignore[attr-defined]
    assert (fast.fast, fast.slow) == (5, 30)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["MaCrossover", "ma-crossover", "9ma"])
def test_instance_names_are_lower_snake_case(plan_problems: Callable[..., Any], name: str) -> None:
    path, problems = plan_problems({"symbols": ["A"], "modules": {name: {"module": "ma_crossover"}}})
    assert problems == [f"{path}: modules.{name}: instance names are lower_snake_case"]


def test_no_enabled_module(plan_problems: Callable[..., Any]) -> None:
    path, problems = plan_problems({"symbols": ["A"], "modules": {"ma_crossover": {"enabled": False}}})
    assert problems == [f"{path}: modules: no module is enabled, so nothing would ever decide"]


def test_module_problems_checks_modules_of_an_otherwise_invalid_config(write_module: Callable[..., Path]) -> None:
    broken = write_module("broken", "raise RuntimeError('at import')\n")
    raw = {
        "risk": {"allocation": "lots"},
        "modules": {
            "ma_crossover": {"params": {"fast": -1}},
            "broken": {"path": str(broken)},
            "nope": None,
            "off": {"enabled": False, "module": "nope"},
            "garbage": {"weight": "heavy"},
        },
    }
    problems = module_problems(raw, "f.yaml")
    assert problems[0] == "f.yaml: modules.ma_crossover.params.fast: must be > 0"
    assert problems[1] == f"f.yaml: modules.broken: RuntimeError: at import ({broken}:1)"
    assert problems[2].startswith("f.yaml: modules.nope: unknown module")
    assert len(problems) == 3
    assert module_problems({"modules": "none"}, "f.yaml") == []
