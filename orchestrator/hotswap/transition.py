"""What changes between the running plan and a target plan.

Every hot change (new module code, a config edit, an operator's enable,
disable or parameter change) is expressed the same way: a target
``RunPlan`` built by ``plan_run`` (so it passed exactly the checks a
start-up config passes), compared here with what is serving. The result
says, per bucket, which module instances stop, start, are rebuilt (new
code or parameters: a new instance that is offered the old one's state)
or only retuned (fusion weight, latency budget: no new instance).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.config.loader import LoadedConfig
from orchestrator.config.models import DecisionConfig, EngineConfig
from orchestrator.engine.orchestrator import TradingOrchestrator
from orchestrator.engine.plan import BucketPlan, ModulePlan, RunPlan, implementation_key
from orchestrator.fusion.config import FusionConfig
from orchestrator.plugins.loader import LoadedModule


@dataclass(frozen=True, slots=True)
class BucketChange:
    """One bucket's part of a transition."""

    bucket: str
    stopped: tuple[str, ...]  # instances leaving service, in reverse call order
    started: tuple[ModulePlan, ...]  # new instances, in call order
    rebuilt: tuple[ModulePlan, ...]  # replaced by a new instance of the same name
    retuned: tuple[ModulePlan, ...]  # same instance, new weight or latency budget
    fusion: FusionConfig | None  # the new fusion settings, when they changed
    order: tuple[str, ...]  # the call order once applied

    @property
    def is_empty(self) -> bool:
        return not (self.stopped or self.started or self.rebuilt or self.retuned or self.fusion)

    @property
    def new_instances(self) -> tuple[ModulePlan, ...]:
        """Modules that get a new instance (and so need building and a self-check)."""
        return self.started + self.rebuilt


@dataclass(frozen=True, slots=True)
class Transition:
    """From the running plan to ``target``."""

    target: RunPlan
    buckets: tuple[BucketChange, ...]
    decision: DecisionConfig | None  # new decision gating, when it changed
    engine: EngineConfig | None  # new containment settings, when they changed

    @property
    def is_empty(self) -> bool:
        return self.decision is None and self.engine is None and all(b.is_empty for b in self.buckets)

    def summary(self) -> list[str]:
        """One line per change, for logs and command results."""
        lines: list[str] = []
        for change in self.buckets:
            where = f" [{change.bucket}]" if len(self.buckets) > 1 else ""
            lines.extend(f"stop {name}{where}" for name in change.stopped)
            lines.extend(f"start {plan.name} {plan.loaded.contract.version}{where}" for plan in change.started)
            lines.extend(f"rebuild {plan.name} {plan.loaded.contract.version}{where}" for plan in change.rebuilt)
            lines.extend(f"retune {plan.name}{where}" for plan in change.retuned)
            if change.fusion is not None:
                lines.append(f"fusion {change.fusion.method}{where}")
        if self.decision is not None:
            lines.append("decision settings")
        if self.engine is not None:
            lines.append("engine settings")
        return lines


class TopologyError(ValueError):
    """The target trades other buckets or symbols than the running engine."""


def running_plan(engine: TradingOrchestrator, loaded: LoadedConfig) -> RunPlan:
    """The plan that is actually serving, read off the live pipelines (so a
    partly applied change is never mistaken for a fully applied one)."""
    buckets = []
    for pipeline in engine.pipelines.values():
        modules = tuple(
            ModulePlan(slot.name, slot.loaded, slot.params, slot.weight, slot.budget_ns / 1000.0)
            for slot in pipeline.slots.values()
        )
        buckets.append(BucketPlan(pipeline.name, pipeline.symbols, modules, pipeline.fusion_config))
    return RunPlan(loaded, tuple(buckets), serving_implementations(engine, loaded))


def serving_implementations(engine: TradingOrchestrator, loaded: LoadedConfig) -> dict[str, LoadedModule]:
    """Implementation key -> the loaded version serving it (``plan_run``'s cache)."""
    modules = loaded.config.modules
    serving: dict[str, LoadedModule] = {}
    for pipeline in engine.pipelines.values():
        for slot in pipeline.slots.values():
            module = modules.get(slot.name)
            if module is not None:
                serving[implementation_key(slot.name, module)] = slot.loaded
    return serving


def _retuned(old: ModulePlan, new: ModulePlan) -> bool:
    # Budgets are compared in whole nanoseconds, the unit the slot keeps them in.
    budget_changed = int(old.latency_budget_us * 1000.0) != int(new.latency_budget_us * 1000.0)
    return old.weight != new.weight or budget_changed


def _rebuilt(old: ModulePlan, new: ModulePlan) -> bool:
    return old.loaded is not new.loaded or old.params != new.params


def diff_bucket(current: BucketPlan, target: BucketPlan) -> BucketChange:
    old: Mapping[str, ModulePlan] = {m.name: m for m in current.modules}
    new: Mapping[str, ModulePlan] = {m.name: m for m in target.modules}
    stopped = tuple(name for name in reversed(list(old)) if name not in new)
    started = tuple(plan for name, plan in new.items() if name not in old)
    rebuilt = tuple(plan for name, plan in new.items() if name in old and _rebuilt(old[name], plan))
    retuned = tuple(
        plan
        for name, plan in new.items()
        if name in old and not _rebuilt(old[name], plan) and _retuned(old[name], plan)
    )
    fusion = target.fusion if target.fusion != current.fusion else None
    return BucketChange(current.name, stopped, started, rebuilt, retuned, fusion, tuple(new))


def diff_plans(current: RunPlan, target: RunPlan) -> Transition:
    """The changes that turn ``current`` into ``target``; ``TopologyError`` if
    the buckets or their symbols differ (that needs a restart)."""
    current_topology = {b.name: b.symbols for b in current.buckets}
    target_topology = {b.name: b.symbols for b in target.buckets}
    if current_topology != target_topology:
        raise TopologyError("the buckets or their symbols differ from the running ones")
    targets = {b.name: b for b in target.buckets}
    buckets = tuple(diff_bucket(bucket, targets[bucket.name]) for bucket in current.buckets)
    decision = target.config.decision if target.config.decision != current.config.decision else None
    engine = target.config.engine if target.config.engine != current.config.engine else None
    return Transition(target, buckets, decision, engine)
