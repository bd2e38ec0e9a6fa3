"""The built-in fusion methods, on hand-computed cases and as properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from orchestrator.signals import FusionResult, ModuleOutput, Prediction


def pred(alpha: float, confidence: float, mu: float = 0.0, sigma: float = 0.0) -> Prediction:
    return Prediction(mu=mu, sigma=sigma, horizon=60.0, confidence=confidence, alpha=alpha)


A = pred(0.5, 0.8, mu=0.01, sigma=0.02)
B = pred(-0.25, 0.4, mu=-0.02, sigma=0.04)
ITEMS: list[Weighted] = [("a", A, 1.0), ("b", B, 3.0)]


def test_weighted() -> None:
    result = fuse_weighted(ITEMS)
    # total weight 4: contributions 1*0.5/4 and 3*(-0.25)/4
    assert result.contributions == pytest.approx({"a": 0.125, "b": -0.1875})
    assert result.target == pytest.approx(-0.0625)
    assert result.confidence == pytest.approx((0.8 + 3 * 0.4) / 4)
    assert result.mu == pytest.approx(0.25 * 0.01 + 0.75 * -0.02)
    assert result.sigma == pytest.approx(math.sqrt(0.25**2 * 0.02**2 + 0.75**2 * 0.04**2))


def test_confidence_shrinks_unsure_views() -> None:
    result = fuse_confidence(ITEMS)
    # credence w*c: a 0.8, b 1.2 (sum 2.0); contributions w*c*alpha / total weight 4
    assert result.contributions == pytest.approx({"a": 0.1, "b": -0.075})
    assert result.target == pytest.approx(0.025)
    assert result.confidence == pytest.approx(0.5)
    assert result.mu == pytest.approx(0.4 * 0.01 + 0.6 * -0.02)
    assert result.sigma == pytest.approx(math.sqrt(0.4**2 * 0.02**2 + 0.6**2 * 0.04**2))


def test_confidence_without_any_confidence_is_flat() -> None:
    assert fuse_confidence([("a", pred(1.0, 0.0), 1.0)]) == FusionResult(0.0, 0.0, 0.0, 0.0, {})


def test_precision_weights_by_inverse_variance() -> None:
    a = pred(0.9, 1.0, mu=0.02, sigma=0.1)  # precision 100
    b = pred(-0.9, 1.0, mu=-0.01, sigma=0.2)  # precision 25
    certain = pred(1.0, 1.0, mu=5.0, sigma=0.0)  # states no uncertainty: left out
    result = fuse_precision([("a", a, 1.0), ("b", b, 1.0), ("certain", certain, 1.0)])
    mu = (100 * 0.02 + 25 * -0.01) / 125  # 0.014
    sigma = 1 / math.sqrt(125)
    z = mu / sigma
    assert result.mu == pytest.approx(0.014)
    assert result.sigma == pytest.approx(sigma)
    assert result.target == pytest.approx(math.tanh(z))
    assert result.confidence == pytest.approx(math.erf(abs(z) / math.sqrt(2)))
    # a carries 0.016 of mu* 0.014 (8/7), b -0.002 (-1/7)
    assert result.contributions == pytest.approx({"a": result.target * 8 / 7, "b": -result.target / 7})


@pytest.mark.parametrize("tiny", [1e-160, 1e-200, 5e-324])
def test_precision_survives_vanishing_sigmas(tiny: float) -> None:
    sharp = pred(0.5, 1.0, mu=1e-3, sigma=tiny)
    loose = pred(-0.5, 1.0, mu=-1e-3, sigma=tiny * 4)
    result = fuse_precision([("sharp", sharp, 1.0), ("loose", loose, 1.0)])
    # Precisions 16:1 relative to each other whatever the scale.
    assert result.mu == pytest.approx((16 * 1e-3 - 1e-3) / 17)
    assert result.target == 1.0
    assert result.confidence == 1.0
    alone = fuse_precision([("sharp", sharp, 1.0)])
    assert alone.mu == 1e-3
    assert alone.sigma == tiny


def test_precision_weight_scales_the_precision() -> None:
    a = pred(0.0, 1.0, mu=0.02, sigma=0.1)
    b = pred(0.0, 1.0, mu=-0.02, sigma=0.1)
    assert fuse_precision([("a", a, 3.0), ("b", b, 1.0)]).mu == pytest.approx(0.01)
    assert fuse_precision([("a", a, 1.0), ("b", b, 1.0)]).target == 0.0


def test_rank_scores_each_alpha_among_its_modules_recent_alphas() -> None:
    normalizer = RankNormalizer(window=3)
    scores = [normalizer.score("X", "m", pred(alpha, 1.0)) for alpha in (0.1, 0.3, 0.2, 0.25)]
    # [0.1] -> 0; [0.1 0.3] 0.3 on top -> 0.5; [0.1 0.2 0.3] 0.2 in the middle -> 0;
    # window 3 drops 0.1: [0.2 0.25 0.3] 0.25 in the middle -> 0
    assert scores == pytest.approx([0.0, 0.5, 0.0, 0.0])
    again = pred(0.9, 1.0)
    first = normalizer.score("X", "m", again)
    assert normalizer.score("X", "m", again) == first, "the same prediction is counted once"
    assert normalizer.score("Y", "m", pred(0.9, 1.0)) == 0.0, "symbols keep separate histories"
    normalizer.forget("m")
    assert normalizer.score("X", "m", pred(0.9, 1.0)) == 0.0


def test_rank_fuses_weighted_scores() -> None:
    normalizer = RankNormalizer(window=16)
    for alpha in (0.0, 0.1):
        fuse_rank([("a", pred(alpha, 1.0), 1.0)], "X", normalizer)
    for alpha in (0.5, 0.4):
        fuse_rank([("b", pred(alpha, 1.0), 1.0)], "X", normalizer)
    result = fuse_rank([("a", pred(0.2, 0.6), 1.0), ("b", pred(0.3, 0.2), 3.0)], "X", normalizer)
    # a: 0.2 is the highest of [0 0.1 0.2] -> 2*(2+0.5)/3-1 = 2/3; b: 0.3 is the lowest of [0.3 0.4 0.5] -> -2/3
    assert result.contributions == pytest.approx({"a": (2 / 3) / 4, "b": 3 * (-2 / 3) / 4})
    assert result.target == pytest.approx(-1 / 3)
    assert result.confidence == pytest.approx((0.6 + 3 * 0.2) / 4)


def test_best_lets_the_most_confident_weighted_view_decide() -> None:
    result = fuse_best(ITEMS)  # a: 0.8*1, b: 0.4*3 = 1.2 wins
    assert result == FusionResult(-0.25, 0.4, -0.02, 0.04, {"b": -0.25})
    assert fuse_best([("a", A, 1.0), ("b", B, 0.0)]).contributions == {"a": 0.5}
    assert fuse_best([("a", pred(1.0, 0.0), 1.0)]).target == 0.0


@pytest.mark.parametrize("method", [fuse_weighted, fuse_confidence, fuse_precision, fuse_best])
def test_nothing_to_fuse_is_flat(method: object) -> None:
    for items in ([], [("a", A, 0.0)]):
        result = method(items)  # type: ignore[operator]
        assert (result.target, result.confidence, dict(result.contributions)) == (0.0, 0.0, {})


# ------------------------------------------------------------ properties

# Returns far beyond any market (|mu| and sigma up to 1e6, i.e. 10^8 %), and
# sigmas all the way down to the smallest float: an EWMA volatility decays
# geometrically over a flat market and reaches 1e-160 within days of bars.
predictions = st.builds(
    Prediction,
    mu=st.floats(min_value=-1e6, max_value=1e6, allow_subnormal=False),
    sigma=st.floats(min_value=0.0, max_value=1e6),
    horizon=st.floats(min_value=1e-3, max_value=1e7),
    confidence=st.floats(min_value=0.0, max_value=1.0),
    alpha=st.floats(min_value=-1.0, max_value=1.0),
)
weights = st.floats(min_value=0.0, max_value=1e12, allow_subnormal=False)
item_lists = st.lists(
    st.tuples(st.sampled_from("abcdefgh"), predictions, weights), max_size=8, unique_by=lambda item: item[0]
)


def check(result: FusionResult, *, sums: bool = True) -> None:
    assert -1.0 <= result.target <= 1.0
    assert 0.0 <= result.confidence <= 1.0
    assert math.isfinite(result.mu)
    assert math.isfinite(result.sigma)
    assert result.sigma >= 0.0
    assert all(math.isfinite(c) for c in result.contributions.values())
    if sums:
        total = sum(result.contributions.values())
        scale = max(1.0, sum(abs(c) for c in result.contributions.values()))
        assert math.isclose(total, result.target, rel_tol=1e-9, abs_tol=1e-9 * scale)


@settings(max_examples=200, deadline=None)
@given(item_lists)
def test_weighted_properties(items: list[Weighted]) -> None:
    check(fuse_weighted(items))


@settings(max_examples=200, deadline=None)
@given(item_lists)
def test_confidence_properties(items: list[Weighted]) -> None:
    check(fuse_confidence(items))


@settings(max_examples=200, deadline=None)
@given(item_lists)
def test_precision_properties(items: list[Weighted]) -> None:
    check(fuse_precision(items))


@settings(max_examples=200, deadline=None)
@given(item_lists)
def test_best_properties(items: list[Weighted]) -> None:
    result = fuse_best(items)
    check(result)
    if result.contributions:
        (name,) = result.contributions
        chosen = next(p for n, p, _ in items if n == name)
        assert result.target == chosen.alpha


@settings(max_examples=150, deadline=None)
@given(st.lists(item_lists, min_size=1, max_size=6))
def test_rank_properties(rounds: list[list[Weighted]]) -> None:
    normalizer = RankNormalizer(window=8)
    for items in rounds:
        check(fuse_rank(items, "X", normalizer))


@settings(max_examples=300, deadline=None)
@given(item_lists, st.lists(st.sampled_from("xyz"), max_size=3, unique=True))
def test_quick_forms_equal_the_full_results(items: list[Weighted], silent: list[str]) -> None:
    """The event path gates decisions on the quick forms; decisions carry the full ones."""
    outputs = {name: ModuleOutput(prediction) for name, prediction, _ in items}
    outputs.update({name: ModuleOutput(None) for name in silent})  # modules with features only
    weights = {name: weight for name, _, weight in items}
    for quick, full in ((quick_weighted, fuse_weighted), (quick_confidence, fuse_confidence)):
        target, confidence = quick(outputs, weights)
        result = full([item for item in items if item[2] > 0.0])
        assert math.isclose(target, result.target, rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(confidence, result.confidence, rel_tol=1e-9, abs_tol=1e-12)
