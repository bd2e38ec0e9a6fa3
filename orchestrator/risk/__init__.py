"""Risk: sizing, limits and trading states between decisions and orders."""

from orchestrator.risk.config import RiskConfig
from orchestrator.risk.engine import AccountView, RiskEngine
from orchestrator.risk.state import TradingState

__all__ = ["AccountView", "RiskConfig", "RiskEngine", "TradingState"]
