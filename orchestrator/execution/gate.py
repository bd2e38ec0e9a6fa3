"""The hook a live adapter awaits before an order leaves: the journal's
"this intent is on disk" (``JournalWriter.wait_durable``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias

from orchestrator.orders import OrderIntent

IntentGate: TypeAlias = Callable[[OrderIntent], Awaitable[None]]
