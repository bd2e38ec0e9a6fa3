"""Build and check new module instances aside, before they may serve.

Runs in a worker thread, while the serving versions go on processing
events; nothing here touches a live pipeline (building a slot only reads
the pipeline's symbols and makes a context on its output table).

Two checks, on a short recorded sample of real events (or a simulated one
just after start):

1. the module's own ``self_check`` hook, on a throw-away instance;
2. a scratch pipeline of the changed modules, the modules that depend on
   them and what those depend on, all fresh instances: every event runs
   through it and through fusion. A change that breaks a dependent (a
   feature it reads is gone, an output it cannot handle) shows up here as
   the dependent's error, before anything is swapped.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.config.models import EngineConfig
from orchestrator.contract import AnalysisModule, EventClock, ModuleState
from orchestrator.engine.builder import build_slot
from orchestrator.engine.pipeline import BucketPipeline
from orchestrator.engine.plan import BucketPlan, ModulePlan, RunPlan
from orchestrator.engine.slot import ModuleSlot
from orchestrator.engine.state_store import ModuleStateStore
from orchestrator.errors import ModuleLoadError, OrchestratorError
from orchestrator.events import EventKind, MarketEvent
from orchestrator.hotswap.gil import Checkpoint, no_checkpoint
from orchestrator.hotswap.recorder import RecordedSample, simulated_sample
from orchestrator.hotswap.transition import BucketChange, Transition
from orchestrator.plugins.loader import instantiate

_NEVER_ISOLATE = EngineConfig(isolate_after_errors=10**9, isolate_after_overruns=10**9)
_NO_BUDGET_US = 1e9  # a busy machine must not fail a check for slowness; budgets are the pipeline's business


class CheckFailed(OrchestratorError):
    """New instances could not be built or failed their checks. One line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(slots=True)
class PreparedBucket:
    """A bucket change with its new instances built and checked."""

    change: BucketChange
    slots: dict[str, ModuleSlot]  # new instances by name, not yet registered
    saved_states: dict[str, ModuleState]  # state on disk for modules that start


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def _describe(plan: ModulePlan, bucket: str, many_buckets: bool) -> str:
    return f"{plan.name} [{bucket}]" if many_buckets else plan.name


def own_self_check(plan: ModulePlan, sample: Sequence[MarketEvent]) -> list[str]:
    """The module's ``self_check`` hook on a throw-away instance."""
    try:
        instance: AnalysisModule[Any] = instantiate(plan.loaded, plan.params)
    except ModuleLoadError as exc:
        where = f" at {exc.file}:{exc.line}" if exc.file and exc.line else ""
        return [f"{exc.message}{where}"]
    try:
        problems = instance.self_check(sample)
    except Exception as exc:  # noqa: BLE001 - a raising check is a failed check
        return [f"self_check raised {type(exc).__name__}: {exc}{_where(exc)}"]
    finally:
        with contextlib.suppress(Exception):  # a throw-away instance: its stop cannot matter
            instance.on_stop()
    if not isinstance(problems, list) or not all(isinstance(p, str) for p in problems):
        return [f"self_check returned {type(problems).__name__}, not a list of strings"]
    return [f"self-check: {problem}" for problem in problems]


_SAID = "self-check: "  # how ``own_self_check`` words a problem the module reported


def startup_self_checks(run: RunPlan, label: str) -> list[str]:
    """Every module's own ``self_check`` before the daemon starts, as a hot swap
    runs it: on a throw-away instance, with the simulated sample (nothing is
    recorded yet). One line per problem, naming the module; empty: all healthy."""
    many = len(run.buckets) > 1
    problems: list[str] = []
    for bucket in run.buckets:
        sample = simulated_sample(bucket.symbols)
        for plan in bucket.modules:
            where = f"modules.{plan.name}" + (f" [bucket {bucket.name}]" if many else "")
            for problem in own_self_check(plan, sample):
                failed = problem.startswith(_SAID)  # the module's own words; else it raised or could not start
                said = f"self-check failed: {problem.removeprefix(_SAID)}" if failed else problem
                problems.append(f"{label}: {where}: {said}")
    return list(dict.fromkeys(problems))


def check_closure(bucket: BucketPlan, changed: set[str]) -> list[ModulePlan]:
    """The changed modules, their dependents (transitively) and everything
    those depend on, in the bucket's call order."""
    plans = {m.name: m for m in bucket.modules}
    affected = set(changed)
    grew = True
    while grew:
        dependents = {m.name for m in bucket.modules if affected.intersection(m.depends_on)}
        grew = not dependents <= affected
        affected |= dependents
    needed = set(affected)
    stack = list(affected)
    while stack:
        for dependency in plans[stack.pop()].depends_on:
            if dependency not in needed:
                needed.add(dependency)
                stack.append(dependency)
    return [m for m in bucket.modules if m.name in needed]


def pipeline_check(
    bucket: BucketPlan, changed: set[str], sample: Sequence[MarketEvent], checkpoint: Checkpoint = no_checkpoint
) -> list[str]:
    """Run ``sample`` through a scratch pipeline of the changed modules'
    closure; every error any of them raised is a problem."""
    scratch = BucketPipeline(
        name=f"self-check:{bucket.name}",
        symbols=bucket.symbols,
        fusion=bucket.fusion,
        engine=_NEVER_ISOLATE,
        clock=EventClock(),
    )
    problems: list[str] = []
    for plan in check_closure(bucket, changed):
        checkpoint()
        slot = build_slot(scratch, ModulePlan(plan.name, plan.loaded, plan.params, plan.weight, _NO_BUDGET_US))
        try:
            scratch.add(slot)
        except Exception as exc:  # noqa: BLE001 - on_start raising is a failed check
            problems.append(f"{plan.name}: on_start raised {type(exc).__name__}: {exc}{_where(exc)}")
            return problems
    symbols = set(bucket.symbols)
    try:
        # ``checkpoint``, not ``time.sleep(0)``: a brief release of the GIL
        # restarts the waiting loop thread's switch timer and starves it (see ``gil``).
        for event in sample:
            checkpoint()
            if event.symbol not in symbols:
                continue
            scratch.clock.now = event.ts
            if scratch.process(event):
                scratch.fuse(event.symbol, event.ts)
    except Exception as exc:  # noqa: BLE001 - the built-in fusion raising means the outputs are unusable
        problems.append(f"fusion raised {type(exc).__name__}: {exc}{_where(exc)}")
    for name, slot in scratch.slots.items():
        health = slot.health
        if health.errors:
            role = "" if name in changed else f" (depends on {', '.join(sorted(changed))})"
            problems.append(f"{name}{role}: {health.errors} error(s) on the sample, last: {health.last_error}")
    scratch.stop()
    return problems


def _consumed(bucket: BucketPlan, changed: set[str]) -> set[EventKind]:
    kinds: set[EventKind] = set()
    for plan in check_closure(bucket, changed):
        kinds |= plan.loaded.contract.consumes
    return kinds


def prepare_transition(
    transition: Transition,
    pipelines: Mapping[str, BucketPipeline],
    sample: RecordedSample,
    *,
    store: ModuleStateStore | None,
    checkpoint: Checkpoint = no_checkpoint,
) -> list[PreparedBucket]:
    """Build and check every new instance of ``transition`` (in a worker
    thread). Raises ``CheckFailed`` with every problem found; then nothing
    was registered anywhere and the caller keeps the serving versions."""
    targets = {b.name: b for b in transition.target.buckets}
    many = len(targets) > 1
    problems: list[str] = []
    prepared: list[PreparedBucket] = []
    for change in transition.buckets:
        bucket = targets[change.bucket]
        new = change.new_instances
        if not new:
            prepared.append(PreparedBucket(change, {}, {}))
            continue
        changed = {plan.name for plan in new}
        events = sample.events_for(bucket.symbols, _consumed(bucket, changed))
        bucket_problems: list[str] = []
        for plan in new:
            checkpoint()
            bucket_problems.extend(f"{_describe(plan, change.bucket, many)}: {p}" for p in own_self_check(plan, events))
        if not bucket_problems:
            bucket_problems.extend(pipeline_check(bucket, changed, events, checkpoint))
        if bucket_problems:
            problems.extend(bucket_problems)
            continue
        checkpoint()
        try:
            prepared.append(_build(change, pipelines[change.bucket], transition.target, store))
        except ModuleLoadError as exc:  # built once for the check, but a constructor may still refuse
            problems.append(str(exc))
    if problems:
        raise CheckFailed(problems)
    return prepared


def _build(
    change: BucketChange, pipeline: BucketPipeline, target: RunPlan, store: ModuleStateStore | None
) -> PreparedBucket:
    slots = {plan.name: build_slot(pipeline, plan, state_root=target) for plan in change.new_instances}
    saved: dict[str, ModuleState] = {}
    if store is not None:
        for plan in change.started:
            state = store.load(change.bucket, plan.name)
            if state is not None:
                saved[plan.name] = state
    return PreparedBucket(change, slots, saved)
