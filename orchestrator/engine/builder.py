"""Assemble a ``TradingOrchestrator`` from a run plan.

The same assembly serves the daemon, backtests and benchmarks: only the
feed in front and the adapters behind differ.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from orchestrator.contract import EventClock
from orchestrator.engine.orchestrator import TradingOrchestrator
from orchestrator.engine.pipeline import BucketPipeline
from orchestrator.engine.plan import BucketPlan, ModulePlan, RunPlan, module_state_dir
from orchestrator.engine.slot import ModuleSlot
from orchestrator.engine.state_store import ModuleStateStore
from orchestrator.execution.adapter import ExchangeAdapter
from orchestrator.execution.factory import paper_adapters, resolve_routes
from orchestrator.execution.ids import IdSequence
from orchestrator.execution.planner import OrderPlanner
from orchestrator.execution.portfolio import Portfolio
from orchestrator.execution.router import Router
from orchestrator.plugins.loader import instantiate
from orchestrator.risk.engine import RiskEngine

log = structlog.get_logger("orchestrator.engine")


def build_slot(pipeline: BucketPipeline, plan: ModulePlan, *, state_root: RunPlan | None = None) -> ModuleSlot:
    """Construct a module instance for ``pipeline`` (not yet registered)."""
    state_dir = None
    if state_root is not None:
        state_dir = module_state_dir(state_root.config, pipeline.name, plan.name)
    return ModuleSlot(
        name=plan.name,
        bucket=pipeline.name,
        instance=instantiate(plan.loaded, plan.params),
        loaded=plan.loaded,
        params=plan.params,
        weight=plan.weight,
        budget_us=plan.latency_budget_us,
        ctx=pipeline.make_context(plan.name, plan.depends_on, state_dir),
    )


def build_pipeline(
    run: RunPlan, bucket: BucketPlan, clock: EventClock, store: ModuleStateStore | None = None
) -> BucketPipeline:
    pipeline = BucketPipeline(
        name=bucket.name,
        symbols=bucket.symbols,
        fusion=bucket.fusion,
        engine=run.config.engine,
        clock=clock,
    )
    for module in bucket.modules:
        saved = store.load(bucket.name, module.name) if store is not None else None
        adopted = pipeline.add(build_slot(pipeline, module, state_root=run), state=saved)
        if saved is not None:
            log.info(
                "module_state_restored" if adopted else "module_state_rejected", module=module.name, bucket=bucket.name
            )
    return pipeline


def build_orchestrator(
    run: RunPlan,
    *,
    adapters: Mapping[str, ExchangeAdapter] | None = None,
    run_id: str | None = None,
    store: ModuleStateStore | None = None,
) -> TradingOrchestrator:
    """``store``: restore each module's saved state (the daemon passes one;
    backtests start cold so the same input always gives the same numbers)."""
    config = run.config
    clock = EventClock()
    pipelines = {bucket.name: build_pipeline(run, bucket, clock, store) for bucket in run.buckets}
    if adapters is None:
        adapters = paper_adapters(config.execution)  # backtests simulate every venue on paper
    router = Router(adapters, default_venue=config.execution.venue, routes=resolve_routes(config))
    ids = IdSequence(run_id)
    planner = OrderPlanner(config.execution, ids, router.venue_of)
    return TradingOrchestrator(
        pipelines=pipelines,
        router=router,
        risk=RiskEngine(config.risk, planner),
        portfolio=Portfolio(config.execution.paper.initial_cash),
        ids=ids,
        clock=clock,
        decision=config.decision,
    )
