"""Live venues through ccxt: adapter, error policy, venue quirks as data.

ccxt is imported only inside the functions that need it (it is a heavy
import); importing this package stays cheap.
"""

from orchestrator.execution.ccxt.config import CcxtVenueConfig

__all__ = ["CcxtVenueConfig"]
