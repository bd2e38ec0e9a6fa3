"""ModuleHarness: modules outside the daemon, through the real loader and pipeline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator import Bar
from orchestrator.fusion.config import FusionConfig
from orchestrator.testing import ModuleHarness, load_named


def test_the_harness_runs_named_and_path_modules_in_dependency_order(
    scripted_module: Callable[..., Path], make_bars: Callable[..., list[Bar]]
) -> None:
    follower = scripted_module("follower", default=(0.4, 1.0), depends_on=("ma_crossover",))
    harness = ModuleHarness(
        {"follower": {}, "ma_crossover": {"fast": 3, "slow": 6}},
        symbols=["BTC/USDT"],
        paths={"follower": follower},
        fusion=FusionConfig(method="weighted"),
    )
    assert list(harness.pipeline.slots) == ["ma_crossover", "follower"]
    trace = harness.run(make_bars(20), module="ma_crossover")
    assert trace[0] is None
    assert trace[-1] is not None
    assert trace[-1].prediction is not None
    assert harness.errors("ma_crossover") == 0
    assert harness.instance("follower").calls[-1] == make_bars(20)[-1].ts
    fused = harness.fuse("BTC/USDT")
    assert fused is not None
    assert set(fused.contributions) == {"ma_crossover", "follower"}
    states = harness.export_states()
    assert set(states) == {"ma_crossover"}

    warm = ModuleHarness({"ma_crossover": {"fast": 3, "slow": 6}}, symbols=["BTC/USDT"], states=states)
    assert warm.adopted == {"ma_crossover": True}
    assert warm.push(make_bars(21)[-1])
    assert warm.output("ma_crossover", "BTC/USDT") is not None


def test_load_named_uses_the_daemons_resolution() -> None:
    loaded = load_named("ma_crossover")
    try:
        assert loaded.source.kind == "builtin"
        assert loaded.contract.name == "ma_crossover"
    finally:
        loaded.unload()
