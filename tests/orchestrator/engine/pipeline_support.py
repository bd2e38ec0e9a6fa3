"""Helpers of the pipeline tests: a decision recorder, a bar feed, the default
bucket's pipeline.

Imported by the tests as ``pipeline_support`` (``conftest.py`` puts this
directory on ``sys.path``; with ``--import-mode=importlib`` test files
cannot import their neighbours otherwise)."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator import Bar
from orchestrator.engine.orchestrator import TradingOrchestrator
from orchestrator.engine.pipeline import BucketPipeline
from orchestrator.signals import Decision

SYMBOL = "BTC/USDT"


class Decisions:
    """An engine listener keeping every decision."""

    def __init__(self, engine: TradingOrchestrator) -> None:
        from orchestrator.engine.listener import EngineListener

        self.decisions: list[Decision] = []
        outer = self

        class _Listener(EngineListener):
            def on_decision(self, decision: Decision) -> None:
                outer.decisions.append(decision)

        engine.listeners.append(_Listener())

    def at(self, ts: int) -> Decision:
        return next(d for d in self.decisions if d.ts == ts)


def feed(engine: TradingOrchestrator, make_bar: Callable[..., Bar], seconds: range, price: float = 100.0) -> None:
    for second in seconds:
        engine.on_event(make_bar(second * 1000, price))


def pipeline_of(engine: TradingOrchestrator) -> BucketPipeline:
    return engine.pipelines["default"]
