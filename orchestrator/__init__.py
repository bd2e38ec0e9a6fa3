"""Trading orchestrator: the public surface modules import from.

Modules import only from here (``from orchestrator import ...``); everything
else in the package is the core's business and may change.
"""

from orchestrator.contract import AnalysisModule, EventClock, ModuleContext, ModuleParams, ModuleState
from orchestrator.events import Bar, BookUpdate, EventKind, MarketEvent, Trade, event_price
from orchestrator.fusion.request import FusionRequest
from orchestrator.hookspecs import PROJECT_NAME, hookimpl
from orchestrator.signals import (
    NEUTRAL,
    NO_FEATURES,
    Decision,
    FusionResult,
    LazyFeatures,
    ModuleOutput,
    Prediction,
)

__version__ = "0.1.0"

__all__ = [
    "NEUTRAL",
    "NO_FEATURES",
    "PROJECT_NAME",
    "AnalysisModule",
    "Bar",
    "BookUpdate",
    "Decision",
    "EventClock",
    "EventKind",
    "FusionRequest",
    "FusionResult",
    "LazyFeatures",
    "MarketEvent",
    "ModuleContext",
    "ModuleOutput",
    "ModuleParams",
    "ModuleState",
    "Prediction",
    "Trade",
    "__version__",
    "event_price",
    "hookimpl",
]
