"""The shipped profiles in config/ load, plan and name only modules that exist."""

from __future__ import annotations

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
