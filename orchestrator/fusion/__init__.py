"""Fusion: the modules' predictions for a symbol become one target exposure."""

from orchestrator.fusion.builtin import BUILTIN_FUSION_NAME, BuiltinFusion
from orchestrator.fusion.config import FusionConfig, FusionMethod
from orchestrator.fusion.request import FusionRequest

__all__ = ["BUILTIN_FUSION_NAME", "BuiltinFusion", "FusionConfig", "FusionMethod", "FusionRequest"]
