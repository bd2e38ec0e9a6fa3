"""A bucket's pipeline: modules in dependency order, one at a time, each one's
failures and overruns contained, counted and isolated in event time.

Hot swap, health, fusion providers and handler signatures: test_pipeline_swap_and_fusion.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import SYMBOL, Decisions, feed, pipeline_of

from orchestrator import Bar, BookUpdate, Trade
from orchestrator.engine.health import ModuleStatus
from orchestrator.engine.pipeline import DependencyError, dependency_order

# ------------------------------------------------------------ ordering


def test_dependency_order_puts_dependents_after_dependencies_and_keeps_ties_stable() -> None:
    depends = {"e": ("d",), "a": (), "d": ("b", "a"), "c": (), "b": ()}
    assert dependency_order(depends) == ["a", "c", "b", "d", "e"]
    assert dependency_order(dict(reversed(depends.items()))) == ["b", "c", "a", "d", "e"]
    assert dependency_order({}) == []


def test_dependency_order_refuses_cycles_and_missing_modules() -> None:
    with pytest.raises(DependencyError, match="dependency cycle: "):
        dependency_order({"a": ("b",), "b": ("a",)})
    with pytest.raises(DependencyError, match="dependency cycle: a -> a"):
        dependency_order({"a": ("a",)})
    with pytest.raises(DependencyError, match="'a' depends on 'x', 'y', which is not enabled"):
        dependency_order({"a": ("x", "y")})


DERIVED = """\
from orchestrator import AnalysisModule, Bar, EventKind, ModuleContext, ModuleOutput, ModuleParams


class Derived(AnalysisModule[ModuleParams]):
    name = "derived"
    version = "1"
    consumes = frozenset({EventKind.BAR})
    depends_on = ("base",)

    def __init__(self, params):
        super().__init__(params)
        self.seen = []

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        # The dependency has already run for this very bar.
        self.seen.append((ctx.label("base", bar.symbol), ctx.now))
        return ModuleOutput(None, features={"double_ts": 2.0 * bar.ts})
"""

SNOOP = """\
from orchestrator import AnalysisModule, Bar, EventKind, ModuleContext, ModuleOutput, ModuleParams


class Snoop(AnalysisModule[ModuleParams]):
    name = "snoop"
    version = "1"
    consumes = frozenset({EventKind.BAR})

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        ctx.output("base", bar.symbol)  # not a declared dependency
        return None
"""


def test_dependents_run_after_their_dependencies_and_see_this_events_output(
    scripted_module: Callable[..., Path],
    write_module: Callable[..., Path],
    build_engine: Callable[..., Any],
    make_config: Callable[..., Any],
    make_bar: Callable[..., Bar],
) -> None:
    derived = write_module("derived", DERIVED + "MODULE = Derived\n")
    base = scripted_module("base", {1000: ("label", "first"), 2000: ("label", "second")})
    snoop = write_module("snoop", SNOOP + "MODULE = Snoop\n")
    # Listed before its dependency: the pipeline must still call it second.
    engine = build_engine(make_config({"derived": derived, "base": base, "snoop": snoop}))
    pipeline = pipeline_of(engine)
    assert list(pipeline.slots) == ["base", "snoop", "derived"]
    feed(engine, make_bar, range(1, 3))
    assert pipeline.slots["derived"].instance.seen == [("first", 1000), ("second", 2000)]
    assert pipeline.latest[SYMBOL]["derived"].features["double_ts"] == 4000.0
    snooping = pipeline.slots["snoop"].health
    assert snooping.errors == 2
    assert "KeyError" in (snooping.last_error or "")
    assert "not in its depends_on" in (snooping.last_error or "")


PICKY = """\
from orchestrator import AnalysisModule, EventKind, ModuleParams


class Picky(AnalysisModule[ModuleParams]):
    name = "{name}"
    version = "1"
    consumes = frozenset({{{kinds}}})

    def __init__(self, params):
        super().__init__(params)
        self.seen = []

    def on_bar(self, bar, ctx):
        self.seen.append("bar")

    def on_trade(self, trade, ctx):
        self.seen.append("trade")

    def on_book(self, book, ctx):
        self.seen.append("book")


MODULE = Picky
"""


def test_a_module_is_called_only_for_the_kinds_it_consumes(
    write_module: Callable[..., Path], build_engine: Callable[..., Any], make_config: Callable[..., Any]
) -> None:
    bars_only = write_module("bars_only", PICKY.format(name="bars_only", kinds="EventKind.BAR"))
    micro = write_module("micro", PICKY.format(name="micro", kinds="EventKind.TRADE, EventKind.BOOK"))
    engine = build_engine(make_config({"bars_only": bars_only, "micro": micro}))
    events = [
        BookUpdate(SYMBOL, 1, (99.0,), (1.0,), (101.0,), (1.0,)),
        Trade(SYMBOL, 2, 100.0, 1.0, 1),
        Bar(SYMBOL, 3, 100.0, 100.0, 100.0, 100.0, 1.0, 1),
        Trade(SYMBOL, 4, 100.0, 1.0, -1),
        Trade("ETH/USDT", 5, 10.0, 1.0, 1),  # not traded here: no module sees it
    ]
    for event in events:
        engine.on_event(event)
    pipeline = pipeline_of(engine)
    assert pipeline.slots["bars_only"].instance.seen == ["bar"]
    assert pipeline.slots["micro"].instance.seen == ["book", "trade", "trade"]
    assert pipeline.slots["bars_only"].health.calls == 1
    assert engine.counters.unrouted_events == 1


# ------------------------------------------------------------ containment


def test_a_module_raising_on_every_event_is_counted_isolated_and_retried_in_event_time(
    scripted_module: Callable[..., Path],
    build_engine: Callable[..., Any],
    make_config: Callable[..., Any],
    make_bar: Callable[..., Bar],
    raise_line: Callable[[Path], int],
) -> None:
    bad = scripted_module("bad", default="raise")
    good = scripted_module("good", default=(0.5, 1.0))
    engine = build_engine(
        make_config({"bad": bad, "good": good}, engine={"isolate_after_errors": 3, "retry_isolated_after_s": 10.0})
    )
    decisions = Decisions(engine)
    pipeline = pipeline_of(engine)
    slot = pipeline.slots["bad"]

    feed(engine, make_bar, range(1, 3))
    assert slot.status is ModuleStatus.DEGRADED
    assert slot.health.errors == 2
    assert slot.health.last_error == f"ValueError: scripted failure at 2000 at {bad}:{raise_line(bad)}"

    feed(engine, make_bar, range(3, 13))  # isolated at 3 s, retry due at 13 s
    assert slot.status is ModuleStatus.ISOLATED
    assert slot.health.isolations == 1
    assert slot.instance.calls == [1000, 2000, 3000]
    snapshot = next(s for s in engine.module_health() if s.name == "bad")
    assert (snapshot.status, snapshot.errors, snapshot.isolations) == (ModuleStatus.ISOLATED, 3, 1)
    assert snapshot.last_error is not None
    assert f"{bad}:{raise_line(bad)}" in snapshot.last_error

    feed(engine, make_bar, range(13, 16))  # retried at 13 s, fails three more times, isolated for 20 s
    assert slot.instance.calls == [1000, 2000, 3000, 13000, 14000, 15000]
    assert slot.status is ModuleStatus.ISOLATED
    assert slot.health.isolations == 2
    assert slot.retry_at_ts == 15000 + 20000

    feed(engine, make_bar, range(16, 35))
    assert len(slot.instance.calls) == 6
    feed(engine, make_bar, range(35, 36))
    assert slot.instance.calls[-1] == 35000

    # The other module kept producing and the engine kept deciding on every bar.
    good_slot = pipeline.slots["good"]
    assert good_slot.health.calls == 35
    assert good_slot.health.errors == 0
    assert good_slot.status is ModuleStatus.ACTIVE
    assert [d.ts for d in decisions.decisions] == [s * 1000 for s in range(1, 36)]
    assert all(dict(d.contributions) == {"good": 0.5} for d in decisions.decisions)
    assert engine.portfolio.position(SYMBOL) > 0.0


def test_an_isolated_modules_outputs_leave_fusion_until_it_is_back(
    scripted_module: Callable[..., Path],
    build_engine: Callable[..., Any],
    make_config: Callable[..., Any],
    make_bar: Callable[..., Bar],
) -> None:
    flaky = scripted_module("flaky", {4000: "raise", 5000: "raise", 6000: "raise"}, default=(1.0, 1.0))
    steady = scripted_module("steady", default=(-0.5, 1.0))
    engine = build_engine(
        make_config(
            {"flaky": flaky, "steady": steady}, engine={"isolate_after_errors": 3, "retry_isolated_after_s": 10.0}
        )
    )
    decisions = Decisions(engine)
    feed(engine, make_bar, range(1, 18))
    pipeline = pipeline_of(engine)
    # Raising but not yet isolated: its last output still counts.
    assert decisions.at(3000).target == pytest.approx(0.25)
    assert decisions.at(5000).target == pytest.approx(0.25)
    # Isolated on its third error: fusion sees only the steady module.
    assert decisions.at(6000).target == pytest.approx(-0.5)
    assert set(decisions.at(6000).contributions) == {"steady"}
    assert decisions.at(15000).target == pytest.approx(-0.5)
    # Retried at 16 s: back in fusion, and its status recovers once it succeeds.
    assert decisions.at(16000).target == pytest.approx(0.25)
    assert set(decisions.at(16000).contributions) == {"flaky", "steady"}
    assert pipeline.slots["flaky"].status is ModuleStatus.ACTIVE
    assert pipeline.slots["flaky"].health.consecutive_errors == 0


BUSY = """\
from time import perf_counter_ns

from orchestrator import AnalysisModule, Bar, EventKind, ModuleContext, ModuleOutput, ModuleParams, Prediction


class Busy(AnalysisModule[ModuleParams]):
    name = "busy"
    version = "1"
    consumes = frozenset({EventKind.BAR})
    latency_budget_us = BUDGET_US

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        started = perf_counter_ns()
        while perf_counter_ns() - started < 2_000_000:  # 2 ms, far over any budget below
            pass
        return ModuleOutput(Prediction(mu=0.0, sigma=0.01, horizon=1.0, confidence=1.0, alpha=0.5))


MODULE = Busy
"""


@pytest.mark.parametrize(("class_budget", "config_budget"), [(1.0, None), (1e9, 1.0)], ids=["class", "config"])
def test_a_module_overrunning_its_budget_is_counted_then_isolated(
    write_module: Callable[..., Path],
    build_engine: Callable[..., Any],
    make_config: Callable[..., Any],
    make_bar: Callable[..., Bar],
    class_budget: float,
    config_budget: float | None,
) -> None:
    busy = write_module("busy", BUSY.replace("BUDGET_US", repr(class_budget)))
    entry: dict[str, Any] = {"path": str(busy)}
    if config_budget is not None:
        entry["latency_budget_us"] = config_budget
    engine = build_engine(make_config({"busy": entry}, engine={"isolate_after_overruns": 3}))
    slot = pipeline_of(engine).slots["busy"]
    assert slot.budget_ns == 1000

    feed(engine, make_bar, range(1, 3))
    assert slot.health.overruns == 2
    assert slot.status is ModuleStatus.DEGRADED
    assert pipeline_of(engine).latest[SYMBOL]["busy"].prediction is not None  # slow output still counts
    feed(engine, make_bar, range(3, 4))
    assert slot.health.overruns == 3
    assert slot.status is ModuleStatus.ISOLATED
    assert "busy" not in pipeline_of(engine).latest[SYMBOL]
    assert slot.health.errors == 0
    feed(engine, make_bar, range(4, 10))
    assert slot.health.calls == 3


BAD_RETURN = """\
from orchestrator import AnalysisModule, EventKind, ModuleParams


class BadReturn(AnalysisModule[ModuleParams]):
    name = "bad_return"
    version = "1"
    consumes = frozenset({EventKind.BAR})

    def on_bar(self, bar, ctx):
        return {"alpha": 1.0}


MODULE = BadReturn
"""


def test_returning_something_other_than_module_output_is_an_error(
    write_module: Callable[..., Path],
    scripted_module: Callable[..., Path],
    build_engine: Callable[..., Any],
    make_config: Callable[..., Any],
    make_bar: Callable[..., Bar],
) -> None:
    bad = write_module("bad_return", BAD_RETURN)
    good = scripted_module("good", default=(0.5, 1.0))
    engine = build_engine(make_config({"bad_return": bad, "good": good}, engine={"isolate_after_errors": 3}))
    slot = pipeline_of(engine).slots["bad_return"]
    feed(engine, make_bar, range(1, 3))
    assert slot.health.errors == 2
    assert slot.health.calls == 2
    assert slot.health.last_error is not None
    assert slot.health.last_error.startswith("TypeError: returned dict, not ModuleOutput")
    assert "bad_return" not in pipeline_of(engine).latest[SYMBOL]
    feed(engine, make_bar, range(3, 4))
    assert slot.status is ModuleStatus.ISOLATED
    assert engine.counters.decisions == 3
