"""Configuration of fusion: how module predictions become one target."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FusionMethod = Literal["weighted", "confidence", "precision", "rank", "best"]


class FusionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: FusionMethod = Field(
        "confidence",
        description="weighted | confidence | precision (1/sigma^2) | rank (rank-average) | best (best confidence)",
    )
    weights: dict[str, float] = Field(default_factory=dict, description="per-module weight; overrides modules.X.weight")
    regime_module: str | None = Field(None, description="module whose label (e.g. 'trend_up') selects regime_weights")
    regime_weights: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="regime label -> module -> weight multiplier"
    )
    min_confidence: float = Field(0.0, ge=0.0, le=1.0, description="fused confidence below this means target 0")
    rank_window: int = Field(256, ge=8, le=65_536, description="alphas remembered per module for the rank method")
