"""A bucket's pipeline: a module's slot replaced in place (state handed over,
a failed start leaving the old one serving), health snapshots, fusion
providers, and handlers taking the spec's arguments in any order or a subset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import SYMBOL, Decisions, feed, pipeline_of

from orchestrator import Bar
from orchestrator.engine.builder import build_slot
from orchestrator.engine.health import ModuleStatus
from orchestrator.engine.plan import ModulePlan
from orchestrator.plugins.loader import load_module
from orchestrator.plugins.sources import resolve_source

# ------------------------------------------------------------ hot swap

COUNTER = """\
from orchestrator import AnalysisModule, Bar, EventKind, ModuleContext, ModuleOutput, ModuleParams, ModuleState


class Counter(AnalysisModule[ModuleParams]):
    name = "counter"
    version = "{version}"
    consumes = frozenset({{EventKind.BAR}})

    def __init__(self, params):
        super().__init__(params)
        self.count = 0
        self.stopped = False

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        self.count += 1
        if self.count % 2:
            return None
        return ModuleOutput(None, features={{"count": float(self.count)}}, label="{version}")

    def on_start(self, ctx):
        super().on_start(ctx)
        {on_start}

    def on_stop(self):
        self.stopped = True

    def export_state(self):
        return ModuleState(self.name, self.version, 1, {{"count": self.count}})

    def import_state(self, state):
        self.count = int(state.data["count"])
        return True


MODULE = Counter
"""


def counter_plan(path: Path, version: str, on_start: str = "pass") -> ModulePlan:
    path.write_text(COUNTER.format(version=version, on_start=on_start))
    loaded = load_module(resolve_source("counter", path=path))
    return ModulePlan("counter", loaded, loaded.contract.params_model(), 1.0, loaded.contract.latency_budget_us)


def test_replace_hands_state_over_and_keeps_serving(
    write_module: Callable[..., Path],
    build_engine: Callable[..., Any],
    make_config: Callable[..., Any],
    make_bar: Callable[..., Bar],
) -> None:
    path = write_module("counter", COUNTER.format(version="1.0", on_start="pass"))
    engine = build_engine(make_config({"counter": path}))
    pipeline = pipeline_of(engine)
    feed(engine, make_bar, range(1, 5))
    old = pipeline.slots["counter"]
    assert old.instance.count == 4

    new = build_slot(pipeline, counter_plan(path, "2.0"))
    assert pipeline.replace(new) is True
    assert pipeline.slots["counter"] is new
    assert old.instance.stopped
    assert new.instance.count == 4
    assert new.swaps == 1
    assert new.status is ModuleStatus.ACTIVE
    # Until the new version produces, the old output stays visible.
    assert pipeline.latest[SYMBOL]["counter"].label == "1.0"
    feed(engine, make_bar, range(5, 7))
    assert new.instance.count == 6
    assert pipeline.latest[SYMBOL]["counter"].label == "2.0"
    assert pipeline.latest[SYMBOL]["counter"].features["count"] == 6.0
    assert old.instance.count == 4, "the old instance must not be called after the swap"
    assert [s.version for s in engine.module_health()] == ["2.0"]


def test_a_replacement_that_fails_to_start_leaves_the_old_one_serving(
    write_module: Callable[..., Path],
    build_engine: Callable[..., Any],
    make_config: Callable[..., Any],
    make_bar: Callable[..., Bar],
) -> None:
    path = write_module("counter", COUNTER.format(version="1.0", on_start="pass"))
    engine = build_engine(make_config({"counter": path}))
    pipeline = pipeline_of(engine)
    feed(engine, make_bar, range(1, 3))
    old = pipeline.slots["counter"]
    broken = build_slot(pipeline, counter_plan(path, "2.0", on_start="raise RuntimeError('cannot start')"))
    with pytest.raises(RuntimeError, match="cannot start"):
        pipeline.replace(broken)
    assert pipeline.slots["counter"] is old
    feed(engine, make_bar, range(3, 5))
    assert old.instance.count == 4
    assert broken.instance.count == 2  # it adopted the state, then failed; it is never called
    assert pipeline.latest[SYMBOL]["counter"].label == "1.0"


# ------------------------------------------------------------ health


def test_health_snapshots_carry_latency_percentiles(
    scripted_module: Callable[..., Path],
    build_engine: Callable[..., Any],
    make_config: Callable[..., Any],
    make_bar: Callable[..., Bar],
) -> None:
    path = scripted_module("steady", default=(0.1, 0.5))
    engine = build_engine(make_config({"steady": path}))
    assert next(iter(engine.module_health())).latency_p50_us == 0.0
    feed(engine, make_bar, range(1, 51))
    (snapshot,) = engine.module_health()
    assert snapshot.name == "steady"
    assert snapshot.bucket == "default"
    assert snapshot.implementation == "steady"
    assert snapshot.version == "1.0.0"
    assert len(snapshot.source_hash) == 16
    assert snapshot.calls == 50
    assert snapshot.status is ModuleStatus.ACTIVE
    assert 0.0 < snapshot.latency_p50_us <= snapshot.latency_p99_us
    assert snapshot.latency_budget_us == 1e9
    p50, p99 = engine.order_latency_us()
    assert 0.0 < p50 <= p99


# ------------------------------------------------------------ fusion providers

FUSER = """\
from orchestrator import AnalysisModule, FusionRequest, FusionResult, ModuleParams, hookimpl


class Fuser(AnalysisModule[ModuleParams]):
    name = "{name}"
    version = "1"
    consumes = frozenset()

    {marker}
    def fuse(self, request: FusionRequest) -> FusionResult | None:
        {body}


MODULE = Fuser
"""


def fuser(write_module: Callable[..., Path], name: str, body: str, marker: str = "") -> Path:
    return write_module(name, FUSER.format(name=name, marker=marker, body=body))


@pytest.mark.parametrize(("marker", "winner"), [("", "second"), ("@hookimpl(tryfirst=True)", "first")])
def test_fusion_providers_follow_pluggy_order_and_tryfirst(
    write_module: Callable[..., Path],
    scripted_module: Callable[..., Path],
    build_engine: Callable[..., Any],
    make_config: Callable[..., Any],
    make_bar: Callable[..., Bar],
    marker: str,
    winner: str,
) -> None:
    first = fuser(write_module, "first", "return FusionResult(target=0.1, confidence=1.0, mu=0.0, sigma=0.0)", marker)
    second = fuser(write_module, "second", "return FusionResult(target=0.2, confidence=1.0, mu=0.0, sigma=0.0)")
    signal = scripted_module("signal", default=(0.9, 1.0))
    engine = build_engine(make_config({"first": first, "second": second, "signal": signal}))
    decisions = Decisions(engine)
    feed(engine, make_bar, range(1, 2))
    (decision,) = decisions.decisions
    assert decision.method == winner
    assert decision.target == {"first": 0.1, "second": 0.2}[winner]


def test_a_fusion_module_can_defer_and_a_failing_one_is_contained(
    write_module: Callable[..., Path],
    scripted_module: Callable[..., Path],
    build_engine: Callable[..., Any],
    make_config: Callable[..., Any],
    make_bar: Callable[..., Bar],
) -> None:
    deferring = fuser(write_module, "deferring", "return None")
    failing = fuser(write_module, "failing", "raise RuntimeError('no view')")
    signal = scripted_module("signal", default=(0.9, 1.0))
    engine = build_engine(
        make_config({"deferring": deferring, "failing": failing, "signal": signal}, engine={"isolate_after_errors": 2})
    )
    decisions = Decisions(engine)
    feed(engine, make_bar, range(1, 4))
    assert [d.method for d in decisions.decisions] == ["weighted"] * 3
    assert [d.target for d in decisions.decisions] == [0.9] * 3
    slots = pipeline_of(engine).slots
    assert slots["failing"].health.errors == 2
    assert slots["failing"].status is ModuleStatus.ISOLATED
    assert "RuntimeError: no view" in (slots["failing"].health.last_error or "")
    assert slots["deferring"].health.errors == 0


# ------------------------------------------------------------ handler signatures

LOOSE = """\
from orchestrator import AnalysisModule, EventKind, ModuleOutput, ModuleParams


class Loose(AnalysisModule[ModuleParams]):
    name = "{name}"
    version = "1"
    consumes = frozenset({{EventKind.BAR}})

    def on_bar(self, {arguments}):
        return ModuleOutput(None, features={{"close": bar.close}})


MODULE = Loose
"""


@pytest.mark.parametrize("arguments", ["bar", "ctx, bar", "bar, ctx"], ids=["subset", "swapped", "spec"])
def test_handlers_may_take_the_spec_arguments_in_any_order_or_a_subset(
    write_module: Callable[..., Path],
    build_engine: Callable[..., Any],
    make_config: Callable[..., Any],
    make_bar: Callable[..., Bar],
    arguments: str,
) -> None:
    """pluggy validates such implementations, so they must work when called too."""
    loose = write_module("loose", LOOSE.format(name="loose", arguments=arguments))
    engine = build_engine(make_config({"loose": loose}))
    feed(engine, make_bar, range(1, 3), price=123.0)
    slot = pipeline_of(engine).slots["loose"]
    assert slot.health.errors == 0, slot.health.last_error
    assert pipeline_of(engine).latest[SYMBOL]["loose"].features["close"] == 123.0
