"""The built-in fusion provider: the last resort of the ``fuse`` hook.

It is registered in every bucket's plugin manager like any module would be,
``trylast`` so a module providing ``fuse`` (neural fusion) goes first and can
defer to it by returning ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.fusion.methods import (
    RankNormalizer,
    Weighted,
    fuse_best,
    fuse_confidence,
    fuse_precision,
    fuse_rank,
    fuse_weighted,
    quick_confidence,
    quick_weighted,
)
from orchestrator.fusion.request import FusionRequest
from orchestrator.hookspecs import hookimpl
from orchestrator.signals import FusionResult, ModuleOutput

BUILTIN_FUSION_NAME = "builtin_fusion"


class BuiltinFusion:
    """Fuses with the method named in the request (the bucket's ``fusion.method``)."""

    def __init__(self, rank_window: int = 256) -> None:
        self.rank = RankNormalizer(rank_window)

    @hookimpl(trylast=True)
    def fuse(self, request: FusionRequest) -> FusionResult | None:
        return self.fuse_outputs(request.outputs, request.weights, request.method, request.symbol)

    def quick(
        self, outputs: Mapping[str, ModuleOutput], weights: Mapping[str, float], method: str, symbol: str
    ) -> tuple[float, float]:
        """(target, confidence) as ``fuse`` would give them, without building
        the full result: the event path needs only these to gate a decision."""
        if method == "confidence":
            return quick_confidence(outputs, weights)
        if method == "weighted":
            return quick_weighted(outputs, weights)
        result = self.fuse_outputs(outputs, weights, method, symbol)
        return result.target, result.confidence

    def fuse_outputs(
        self, outputs: Mapping[str, ModuleOutput], weights: Mapping[str, float], method: str, symbol: str
    ) -> FusionResult:
        items: list[Weighted] = []
        for name, output in outputs.items():
            prediction = output.prediction
            if prediction is None:
                continue
            weight = weights.get(name, 1.0)
            if weight > 0.0:
                items.append((name, prediction, weight))
        if method == "confidence":
            return fuse_confidence(items)
        if method == "weighted":
            return fuse_weighted(items)
        if method == "precision":
            return fuse_precision(items)
        if method == "rank":
            return fuse_rank(items, symbol, self.rank)
        if method == "best":
            return fuse_best(items)
        raise ValueError(f"unknown fusion method {method!r}")
