"""Comparing the serving plan with a target plan, and what a check covers."""

from __future__ import annotations

import pytest
from hotswap_support import counter_source, reader_source

from orchestrator.engine.plan import plan_run
from orchestrator.hotswap.candidate import check_closure
from orchestrator.hotswap.transition import TopologyError, diff_plans, running_plan, serving_implementations


@pytest.fixture
def rig(workspace, make_rig):
    workspace.write_module("counter", counter_source())
    workspace.write_module("tally", counter_source(module_name="tally"))
    workspace.write_module("reader", reader_source())
    workspace.write_config(workspace.base_config({"counter": {}, "tally": {}, "reader": {}}))
    return make_rig()


def target(workspace, rig, modules, **sections):
    workspace.write_config(workspace.base_config(modules, **sections))
    loaded = workspace.load()
    return plan_run(loaded, cache=serving_implementations(rig.engine, rig.manager.loaded))


def test_nothing_changed_is_an_empty_transition(workspace, rig):
    running = running_plan(rig.engine, rig.manager.loaded)
    same = target(workspace, rig, {"counter": {}, "tally": {}, "reader": {}})
    assert diff_plans(running, same).is_empty


def test_each_kind_of_change_is_told_apart(workspace, rig):
    running = running_plan(rig.engine, rig.manager.loaded)
    modules = {"counter": {"weight": 2.0, "latency_budget_us": 50}, "tally": {"params": {"scale": 3}}}
    changed = target(workspace, rig, modules, fusion={"method": "rank"}, decision={"min_change": 0.3})
    transition = diff_plans(running, changed)
    (bucket,) = transition.buckets
    assert bucket.stopped == ("reader",)
    assert [p.name for p in bucket.rebuilt] == ["tally"]
    assert [p.name for p in bucket.retuned] == ["counter"]
    assert bucket.started == ()
    assert bucket.fusion is not None
    assert bucket.fusion.method == "rank"
    assert transition.decision is not None
    assert transition.engine is None
    assert transition.summary() == [
        "stop reader",
        "rebuild tally 1.0.0",
        "retune counter",
        "fusion rank",
        "decision settings",
    ]


def test_other_symbols_are_a_topology_change(workspace, rig):
    running = running_plan(rig.engine, rig.manager.loaded)
    moved = target(workspace, rig, {"counter": {}, "tally": {}, "reader": {}}, symbols=["BTC/USDT"])
    with pytest.raises(TopologyError):
        diff_plans(running, moved)


def test_a_check_covers_dependents_and_their_dependencies(workspace, rig):
    (bucket,) = running_plan(rig.engine, rig.manager.loaded).buckets
    assert [m.name for m in check_closure(bucket, {"counter"})] == ["counter", "reader"]
    assert [m.name for m in check_closure(bucket, {"reader"})] == ["counter", "reader"]
    assert [m.name for m in check_closure(bucket, {"tally"})] == ["tally"]
