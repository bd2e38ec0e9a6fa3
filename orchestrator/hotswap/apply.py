"""Apply a prepared transition to the live pipelines, between two events.

Synchronous on purpose: the daemon's feed task calls the core
synchronously, so while this function runs no event is being processed,
and the first event after it returns meets the new module set. Events
that arrive meanwhile wait in the feed; none is dropped, none is seen by
both versions. Only module code that must run at the swap itself runs
here (the old instance's ``export_state`` and ``on_stop``, the new one's
``import_state`` and ``on_start``); everything slow happened aside.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from time import perf_counter_ns

import structlog

from orchestrator.contract import ModuleState
from orchestrator.engine.orchestrator import TradingOrchestrator
from orchestrator.fusion.methods import RankNormalizer
from orchestrator.hotswap.candidate import PreparedBucket
from orchestrator.hotswap.transition import Transition

log = structlog.get_logger("orchestrator.hotswap")


@dataclass(slots=True)
class ApplyReport:
    """What happened to each instance, and how long the event path waited."""

    swapped: list[tuple[str, str, bool]] = field(default_factory=list)  # (bucket, name, adopted state)
    started: list[tuple[str, str, bool]] = field(default_factory=list)
    stopped: list[tuple[str, str, ModuleState | None]] = field(default_factory=list)  # with its exported state
    retuned: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (bucket, name, error)
    duration_ns: int = 0


def _error(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def apply_transition(
    engine: TradingOrchestrator, transition: Transition, prepared: list[PreparedBucket]
) -> ApplyReport:
    """Stop, rebuild, start and retune modules, then update fusion and settings.

    A new instance whose ``import_state`` or ``on_start`` raises does not
    enter service; on a rebuild the old instance keeps serving (the
    pipeline restores it). Every other part of the transition still applies.
    """
    started_ns = perf_counter_ns()
    report = ApplyReport()
    for bucket in prepared:
        change = bucket.change
        pipeline = engine.pipelines[change.bucket]
        for name in change.stopped:
            report.stopped.append((change.bucket, name, pipeline.remove(name)))
        rebuilt = {plan.name for plan in change.rebuilt}
        for name in change.order:
            slot = bucket.slots.get(name)
            if slot is None:
                continue
            try:
                if name in rebuilt:
                    report.swapped.append((change.bucket, name, pipeline.replace(slot)))
                else:
                    adopted = pipeline.add(slot, state=bucket.saved_states.get(name))
                    report.started.append((change.bucket, name, adopted))
            except Exception as exc:  # noqa: BLE001 - contained: the rest of the transition still applies
                report.failures.append((change.bucket, name, _error(exc)))
                serving = pipeline.slots.get(name)
                if serving is not None:
                    serving.reload_error = f"swap refused: {_error(exc)}"
        for plan in change.retuned:
            serving = pipeline.slots.get(plan.name)
            if serving is not None:
                serving.weight = plan.weight
                serving.budget_ns = int(plan.latency_budget_us * 1000.0)
                report.retuned.append((change.bucket, plan.name))
        if change.fusion is not None:
            if change.fusion.rank_window != pipeline.fusion_config.rank_window:
                pipeline.builtin_fusion.rank = RankNormalizer(change.fusion.rank_window)
            pipeline.set_fusion(change.fusion)
        pipeline.rebuild()
    if transition.decision is not None:
        engine.decision_config = transition.decision
    if transition.engine is not None:
        for pipeline in engine.pipelines.values():
            pipeline.engine_config = transition.engine
    report.duration_ns = perf_counter_ns() - started_ns
    return report
