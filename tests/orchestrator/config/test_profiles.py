"""The shipped profiles in config/ load, plan and name only modules that exist."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config.loader import load_config
from orchestrator.engine.plan import plan_run

REPO = Path(__file__).resolve().parents[3]
PROFILES = sorted((REPO / "config").glob("*.yaml"))


def test_the_four_profiles_are_there() -> None:
    assert {p.name for p in PROFILES} >= {"default.yaml", "aggressive.yaml", "conservative.yaml", "backtest.yaml"}


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_a_profile_plans_every_module_it_names(profile: Path) -> None:
    loaded = load_config(profile, env={})
    plan = plan_run(loaded)
    planned = {module.name for bucket in plan.buckets for module in bucket.modules}
    assert planned == set(loaded.config.enabled_modules())
    assert planned, f"{profile.name} enables no module"
    assert [s for b in plan.buckets for s in b.symbols] == loaded.config.all_symbols()


def test_check_config_accepts_every_profile(run_cli_batch: Callable[..., Any]) -> None:
    results = run_cli_batch([("check-config", profile) for profile in PROFILES], cwd=REPO)
    for profile, done in zip(PROFILES, results, strict=True):
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"{profile}: ok (")
        listed = done.stdout.strip().rsplit("modules: ", 1)[1].rstrip(")").split(", ")
        assert sorted(listed) == sorted(load_config(profile, env={}).config.enabled_modules())
        assert done.stderr == ""


SIMULATED = [p for p in PROFILES if load_config(p, env={}).config.feed.kind == "simulated"]


@pytest.mark.parametrize("profile", SIMULATED, ids=lambda p: p.stem)
def test_a_simulated_profile_decides_and_trades_without_module_errors(profile: Path) -> None:
    """A profile that never trades (a fusion whose targets cannot reach
    ``decision.min_change``) or whose modules fail is broken as shipped."""
    from orchestrator.engine.builder import build_orchestrator
    from orchestrator.feeds.simulated import SimulatedMarket

    loaded = load_config(profile, env={})
    config = loaded.config
    engine = build_orchestrator(plan_run(loaded), run_id="profiletest")
    market = SimulatedMarket(config.feed.simulated.model_copy(update={"speed": 0.0}), config.all_symbols())
    for event in itertools.islice(market.events(), 150_000):  # hours of market time
        engine.on_event(event)
    assert engine.counters.decisions > 0
    assert engine.counters.intents > 0
    for pipeline in engine.pipelines.values():
        for slot in pipeline.slots.values():
            assert slot.health.errors == 0, (slot.name, slot.health.last_error)
