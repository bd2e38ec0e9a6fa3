"""Predictions and fused results refuse out-of-range values, NaN included."""

from __future__ import annotations

import math

import pytest

from orchestrator import NEUTRAL, FusionResult, ModuleOutput, Prediction

NAN = math.nan
INF = math.inf
VALID = {"mu": 0.001, "sigma": 0.01, "horizon": 60.0, "confidence": 0.5, "alpha": 0.2}


def test_valid_prediction_and_edges() -> None:
    assert Prediction(**VALID).alpha == 0.2
    edges = Prediction(mu=-5.0, sigma=0.0, horizon=1e-9, confidence=1.0, alpha=-1.0)
    assert edges.sigma == 0.0
    assert NEUTRAL.confidence == 0.0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("alpha", 1.0001, "alpha"),
        ("alpha", -1.5, "alpha"),
        ("alpha", NAN, "alpha"),
        ("confidence", -0.01, "confidence"),
        ("confidence", 1.01, "confidence"),
        ("confidence", NAN, "confidence"),
        ("sigma", -1e-9, "sigma"),
        ("sigma", INF, "sigma"),
        ("sigma", NAN, "sigma"),
        ("horizon", 0.0, "horizon"),
        ("horizon", -1.0, "horizon"),
        ("horizon", NAN, "horizon"),
        ("mu", INF, "mu"),
        ("mu", -INF, "mu"),
        ("mu", NAN, "mu"),
    ],
)
def test_prediction_rejects_out_of_range(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Prediction(**{**VALID, field: value})


@pytest.mark.parametrize(
    ("target", "confidence", "message"),
    [
        (1.0001, 0.5, "target"),
        (-1.0001, 0.5, "target"),
        (NAN, 0.5, "target"),
        (0.5, -0.1, "confidence"),
        (0.5, 1.1, "confidence"),
        (0.5, NAN, "confidence"),
    ],
)
def test_fusion_result_rejects_out_of_range(target: float, confidence: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FusionResult(target=target, confidence=confidence, mu=0.0, sigma=0.0)


def test_fusion_result_edges_are_valid() -> None:
    assert FusionResult(target=-1.0, confidence=0.0, mu=0.0, sigma=0.0).target == -1.0
    assert FusionResult(target=1.0, confidence=1.0, mu=0.0, sigma=0.0).contributions == {}


def test_module_output_defaults_to_no_features() -> None:
    output = ModuleOutput(prediction=None)
    assert dict(output.features) == {}
    assert output.label is None
    with pytest.raises(TypeError):
        output.features["x"] = 1.0  # type: ignore[index]
