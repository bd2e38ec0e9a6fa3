"""The built-in fusion methods: pure functions over (name, prediction, weight).

Every method returns a target exposure in [-1, 1], a confidence in [0, 1],
a fused expected return and uncertainty, and each module's contribution to
the target (contributions sum to the target).

- weighted:   target = sum(w a) / sum(w)
- confidence: target = sum(w c a) / sum(w)             (low confidence shrinks)
- precision:  mu* = sum(p mu) / sum(p), p = w / sigma^2 (inverse variance);
              sigma* = (sum(1 / sigma^2))^-1/2, target = tanh(mu* / sigma*),
              confidence = erf(|mu*| / (sigma* sqrt 2))  (two-sided z mass)
- rank:       each alpha becomes its percentile among that module's recent
              alphas (scale-free), then a weighted mean of those scores
- best:       the single most confident (times weight) module decides
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping, Sequence

from orchestrator.signals import FusionResult, ModuleOutput, Prediction

Weighted = tuple[str, Prediction, float]

_EMPTY = FusionResult(target=0.0, confidence=0.0, mu=0.0, sigma=0.0, contributions={})


def _clip(value: float) -> float:
    return -1.0 if value < -1.0 else 1.0 if value > 1.0 else value


def _mean_mu_sigma(items: Sequence[Weighted], total: float) -> tuple[float, float]:
    mu = 0.0
    variance = 0.0
    for _, p, w in items:
        share = w / total
        mu += share * p.mu
        variance += share * share * p.sigma * p.sigma
    return mu, math.sqrt(variance)


# weighted and confidence run on nearly every market event, so each is one
# pass over the items with plain locals; the formulas are those above.


def fuse_weighted(items: Sequence[Weighted]) -> FusionResult:
    total = confidence = mu = variance = 0.0
    raw: dict[str, float] = {}
    for name, p, w in items:
        total += w
        raw[name] = w * p.alpha
        confidence += w * p.confidence
        mu += w * p.mu
        variance += w * w * p.sigma * p.sigma
    if total <= 0.0:
        return _EMPTY
    inverse = 1.0 / total
    contributions = {name: value * inverse for name, value in raw.items()}
    target = _clip(sum(contributions.values()))
    return FusionResult(
        target, min(confidence * inverse, 1.0), mu * inverse, math.sqrt(variance) * inverse, contributions
    )


def fuse_confidence(items: Sequence[Weighted]) -> FusionResult:
    total = credence = mu = variance = 0.0
    raw: dict[str, float] = {}
    for name, p, w in items:
        total += w
        # mu and sigma are weighted by credence: a module with no confidence has no say.
        credence_i = w * p.confidence
        credence += credence_i
        raw[name] = credence_i * p.alpha
        mu += credence_i * p.mu
        variance += credence_i * credence_i * p.sigma * p.sigma
    if total <= 0.0 or credence <= 0.0:
        return _EMPTY
    inverse = 1.0 / total
    contributions = {name: value * inverse for name, value in raw.items()}
    target = _clip(sum(contributions.values()))
    return FusionResult(
        target, min(credence * inverse, 1.0), mu / credence, math.sqrt(variance) / credence, contributions
    )


def fuse_precision(items: Sequence[Weighted]) -> FusionResult:
    # A module that states no uncertainty (sigma 0) cannot be precision-weighted.
    usable = [(n, p, w) for n, p, w in items if p.sigma > 0.0 and w > 0.0]
    if not usable:
        return _EMPTY
    # Precisions relative to the sharpest view, (floor / sigma)^2 in (0, 1]:
    # 1 / sigma^2 itself overflows (and 0 * inf is NaN) for the tiny sigmas a
    # volatility estimate decays to over a long flat market, and would crash
    # the core. The common factor 1 / floor^2 cancels out of mu*.
    floor = min(p.sigma for _, p, _ in usable)
    ratios = [(floor / p.sigma) ** 2 for _, p, _ in usable]
    precisions = [w * r for (_, _, w), r in zip(usable, ratios, strict=True)]
    total = sum(precisions)  # >= the sharpest view's weight, so > 0
    mu = sum(q * p.mu for q, (_, p, _) in zip(precisions, usable, strict=True)) / total
    spread = math.sqrt(sum(ratios))  # >= 1
    sigma = floor / spread
    z = mu * spread / floor
    target = math.tanh(z)
    confidence = math.erf(abs(z) / math.sqrt(2.0))
    # Attribute the target in proportion to each module's share of mu*.
    contributions = {
        name: (target * ((q * p.mu / total) / mu) if mu != 0.0 else 0.0)
        for q, (name, p, _) in zip(precisions, usable, strict=True)
    }
    return FusionResult(_clip(target), confidence, mu, sigma, contributions)


def fuse_best(items: Sequence[Weighted]) -> FusionResult:
    best: Weighted | None = None
    for item in items:
        _, p, w = item
        if w > 0.0 and (best is None or p.confidence * w > best[1].confidence * best[2]):
            best = item
    if best is None or best[1].confidence <= 0.0:
        return _EMPTY
    name, p, _ = best
    return FusionResult(p.alpha, p.confidence, p.mu, p.sigma, {name: p.alpha})


class RankNormalizer:
    """Percentile of each module's alpha among its own recent alphas.

    O(log n) search plus an O(n) memmove on a list of at most ``window``
    floats per update: constant per event for a fixed window.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self._recent: dict[tuple[str, str], deque[float]] = {}
        self._sorted: dict[tuple[str, str], list[float]] = {}
        self._seen: dict[tuple[str, str], Prediction] = {}

    def score(self, symbol: str, module: str, prediction: Prediction) -> float:
        key = (symbol, module)
        ordered = self._sorted.get(key)
        if ordered is None:
            ordered = self._sorted[key] = []
            self._recent[key] = deque()
        alpha = prediction.alpha
        # The same prediction object is seen on every event until the module
        # emits a new one; counting it again would skew the distribution.
        if self._seen.get(key) is not prediction:
            self._seen[key] = prediction
            recent = self._recent[key]
            if len(recent) == self.window:
                old = recent.popleft()
                del ordered[bisect.bisect_left(ordered, old)]
            recent.append(alpha)
            bisect.insort(ordered, alpha)
        n = len(ordered)
        if n < 2:
            return 0.0
        below = bisect.bisect_left(ordered, alpha)
        equal = bisect.bisect_right(ordered, alpha) - below
        # Mid-rank percentile mapped to [-1, 1]; ties sit in the middle.
        return 2.0 * (below + 0.5 * equal) / n - 1.0

    def forget(self, module: str) -> None:
        for store in (self._recent, self._sorted, self._seen):
            for key in [k for k in store if k[1] == module]:
                del store[key]


def fuse_rank(items: Sequence[Weighted], symbol: str, normalizer: RankNormalizer) -> FusionResult:
    total = sum(w for _, _, w in items)
    if total <= 0.0:
        return _EMPTY
    contributions = {name: w * normalizer.score(symbol, name, p) / total for name, p, w in items}
    confidence = sum(w * p.confidence for _, p, w in items) / total
    mu, sigma = _mean_mu_sigma(items, total)
    return FusionResult(_clip(sum(contributions.values())), min(confidence, 1.0), mu, sigma, contributions)


# Quick forms for the event path: the same target and confidence as
# fuse_weighted / fuse_confidence, straight from a bucket's latest outputs,
# with no allocation. The full result (mu, sigma, contributions) is built
# only for the few events that become decisions; a property test holds the
# two forms equal.


def quick_weighted(outputs: Mapping[str, ModuleOutput], weights: Mapping[str, float]) -> tuple[float, float]:
    total = alpha = confidence = 0.0
    for name, output in outputs.items():
        p = output.prediction
        if p is None:
            continue
        w = weights.get(name, 1.0)
        if w > 0.0:
            total += w
            alpha += w * p.alpha
            confidence += w * p.confidence
    if total <= 0.0:
        return 0.0, 0.0
    return _clip(alpha / total), min(confidence / total, 1.0)


def quick_confidence(outputs: Mapping[str, ModuleOutput], weights: Mapping[str, float]) -> tuple[float, float]:
    total = alpha = credence = 0.0
    for name, output in outputs.items():
        p = output.prediction
        if p is None:
            continue
        w = weights.get(name, 1.0)
        if w > 0.0:
            total += w
            credence_i = w * p.confidence
            credence += credence_i
            alpha += credence_i * p.alpha
    if total <= 0.0 or credence <= 0.0:
        return 0.0, 0.0
    return _clip(alpha / total), min(credence / total, 1.0)
