"""Finding a module's code: explicit path, search directories, built-ins, entry
points (an installed fake distribution, see the ``installed`` fixture)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine.plan import RunPlan
from orchestrator.errors import ModuleLoadError
from orchestrator.plugins.loader import load_module
from orchestrator.plugins.sources import BUILTIN_DIR, available_sources, resolve_source

REPO = Path(__file__).resolve().parents[3]


def test_an_explicit_path_wins(write_module: Callable[..., Path]) -> None:
    path = write_module("ma_crossover", "MODULE = None\n")
    source = resolve_source("ma_crossover", path=path)
    assert (source.origin, source.kind) == (path.resolve(), "path")


@pytest.mark.parametrize("target", ["missing.py", "notes.txt"])
def test_an_explicit_path_must_be_python(tmp_path: Path, target: str) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModuleLoadError, match=r"is not a \.py file or a package directory"):
        resolve_source("x", path=tmp_path / target)


def test_builtins_resolve_from_the_modules_directory() -> None:
    source = resolve_source("ma_crossover")
    assert source.kind == "builtin"
    assert source.origin == REPO / "modules" / "ma_crossover.py"
    assert BUILTIN_DIR == REPO / "modules"


def test_search_directories_come_before_builtins(tmp_path: Path) -> None:
    (tmp_path / "ma_crossover.py").write_text("MODULE = None\n")
    source = resolve_source("ma_crossover", search_dirs=[tmp_path])
    assert (source.origin, source.kind) == ((tmp_path / "ma_crossover.py").resolve(), "path")


def test_an_unknown_module_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ModuleLoadError) as caught:
        resolve_source("no_such_module", search_dirs=[tmp_path])
    assert caught.value.module == "no_such_module"
    assert "unknown module" in caught.value.message
    assert str(tmp_path) in caught.value.message
    assert "orchestrator.modules" in caught.value.message


def test_an_entry_point_module_resolves_by_name(installed: Path) -> None:
    source = resolve_source("tp_momentum")
    assert source.kind == "entrypoint"
    assert source.origin == (installed / "tp_signals" / "momentum.py").resolve()
    assert source.attribute == "PLUGIN"
    assert source.package == "tp_signals"
    flat = resolve_source("tp_flat")
    assert (flat.attribute, flat.package, flat.kind) == ("MODULE", None, "entrypoint")


def test_a_broken_entry_point_is_a_load_error(installed: Path) -> None:
    with pytest.raises(ModuleLoadError, match=r"tp_signals\.not_there"):
        resolve_source("tp_missing")
    assert "tp_missing" not in available_sources()


def test_builtin_and_third_party_go_through_the_same_loader(installed: Path) -> None:
    builtin = load_module(resolve_source("ma_crossover"))
    third = load_module(resolve_source("tp_momentum"))
    try:
        for loaded in (builtin, third):
            assert loaded.module_name.startswith("orchestrator_loaded.")
            assert loaded.cls.__module__ == loaded.module_name
        assert third.contract.name == "tp_momentum"
        assert third.contract.summary == "Sign of the last change."
        # A second load of an installed module is a fresh object too.
        again = load_module(resolve_source("tp_momentum"))
        assert again.cls is not third.cls
        again.unload()
    finally:
        builtin.unload()
        third.unload()


def test_available_sources_lists_builtins_and_entry_points(installed: Path) -> None:
    sources = available_sources()
    assert sources["ma_crossover"].kind == "builtin"
    assert sources["tp_momentum"].kind == "entrypoint"
    assert sources["tp_flat"].kind == "entrypoint"
    assert list(sources) == sorted(sources)


def test_an_entry_point_module_named_in_a_config_plans_and_trades(
    installed: Path,
    make_plan: Callable[[dict[str, Any]], RunPlan],
    make_config: Callable[..., dict[str, Any]],
    make_bar: Callable[..., Any],
) -> None:
    from orchestrator.engine.builder import build_orchestrator

    plan = make_plan(make_config({"tp_momentum": {}, "flat": {"module": "tp_flat"}}, decision={"min_change": 0.5}))
    (bucket,) = plan.buckets
    assert [m.name for m in bucket.modules] == ["tp_momentum", "flat"]
    assert {m.loaded.source.kind for m in bucket.modules} == {"entrypoint"}
    engine = build_orchestrator(plan, run_id="ep")
    for ts, close in enumerate([100.0, 101.0, 102.0, 101.0], start=1):
        engine.on_event(make_bar(ts * 1000, close))
    assert engine.counters.decisions == 2  # up, then down
    assert engine.last_target("BTC/USDT") == -1.0
    assert engine.portfolio.position("BTC/USDT") < 0.0
