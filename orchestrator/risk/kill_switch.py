"""The kill switch: halts trading on drawdown, daily loss or errors.

- drawdown: equity below ``(1 - max_drawdown)`` of the highest equity seen;
- daily loss: equity below ``(1 - max_daily_loss)`` of the equity at the
  first check of the UTC day;
- error rate: ``max_errors`` rejected or lost orders within ``error_window_s``.

Tripping sets the engine's state to HALTED (which cancels open orders) and
persists it; only an operator's ``resume`` trades again. The reference
equities persist with the state, so a restart does not forget a drawdown.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from orchestrator.engine.listener import EngineListener
from orchestrator.orders import Fill, OrderStatus, OrderUpdate
from orchestrator.risk.config import KillSwitchConfig
from orchestrator.risk.state import TradingState
from orchestrator.risk.store import RiskStateStore, SavedRiskState

if TYPE_CHECKING:
    from orchestrator.engine.orchestrator import TradingOrchestrator

log = structlog.get_logger("orchestrator.risk")


def wall_ms() -> int:
    return int(time.time() * 1000)


def _utc_day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


class KillSwitch:
    """Pure bookkeeping: says why to halt, or ``None``."""

    def __init__(self, config: KillSwitchConfig) -> None:
        self.config = config
        self.peak_equity: float | None = None
        self.day: str | None = None
        self.day_start_equity: float | None = None
        self._errors: deque[int] = deque()

    def restore(self, saved: SavedRiskState) -> None:
        self.peak_equity = saved.peak_equity
        self.day = saved.day
        self.day_start_equity = saved.day_start_equity

    def observe_equity(self, equity: float, now_ms: int) -> str | None:
        config = self.config
        if not config.enabled or not equity > 0.0:
            return None
        if self.peak_equity is None or equity > self.peak_equity:
            self.peak_equity = equity
        day = _utc_day(now_ms)
        if day != self.day or self.day_start_equity is None:
            self.day, self.day_start_equity = day, equity
        if config.max_drawdown is not None and equity < self.peak_equity * (1.0 - config.max_drawdown):
            drawdown = 1.0 - equity / self.peak_equity
            return f"kill switch: drawdown {drawdown:.2%} from peak {self.peak_equity:.2f} > max_drawdown"
        if config.max_daily_loss is not None and equity < self.day_start_equity * (1.0 - config.max_daily_loss):
            loss = 1.0 - equity / self.day_start_equity
            return f"kill switch: daily loss {loss:.2%} since {self.day} 00:00 UTC > max_daily_loss"
        return None

    def observe_error(self, now_ms: int) -> str | None:
        config = self.config
        if not config.enabled or config.max_errors is None:
            return None
        errors = self._errors
        errors.append(now_ms)
        window_ms = config.error_window_s * 1000.0
        while errors and now_ms - errors[0] > window_ms:
            errors.popleft()
        if len(errors) >= config.max_errors:
            return f"kill switch: {len(errors)} order errors within {config.error_window_s:g} s > max_errors"
        return None


class RiskGuard(EngineListener):
    """Watches the engine for the kill switch and persists every state change."""

    def __init__(
        self,
        engine: TradingOrchestrator,
        kill_switch: KillSwitch,
        store: RiskStateStore,
        now_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.engine = engine
        self.kill_switch = kill_switch
        self.store = store
        self.now_ms = now_ms
        self.reason = "start"
        self.since_ms = now_ms()

    def restore(self) -> SavedRiskState | None:
        """Adopt the saved state (a HALTED daemon stays HALTED) before trading starts."""
        saved = self.store.load()
        if saved is None:
            return None
        self.kill_switch.restore(saved)
        self.reason, self.since_ms = saved.reason, saved.since_ms
        # Set directly: no listener call, no cancel; recovery has not even run yet.
        self.engine.risk.state = saved.state
        if saved.state is not TradingState.ACTIVE:
            log.warning("trading_state_restored", state=saved.state.value, reason=saved.reason)
        return saved

    def check(self) -> None:
        """Re-check marked equity (the daemon calls this every ``check_interval_s``)."""
        self._trip(self.kill_switch.observe_equity(self.engine.portfolio.equity, self.now_ms()))

    def save(self) -> None:
        switch = self.kill_switch
        self.store.save(
            SavedRiskState(
                self.engine.risk.state,
                self.reason,
                self.since_ms,
                switch.peak_equity,
                switch.day,
                switch.day_start_equity,
            )
        )

    def _trip(self, reason: str | None) -> None:
        if reason is None or self.engine.risk.state is TradingState.HALTED:
            return
        log.error("kill_switch", reason=reason)
        self.engine.set_trading_state(TradingState.HALTED, reason=reason)

    def on_fill(self, fill: Fill) -> None:
        self._trip(self.kill_switch.observe_equity(self.engine.portfolio.equity, self.now_ms()))

    def on_order_update(self, update: OrderUpdate) -> None:
        if update.status in (OrderStatus.REJECTED, OrderStatus.LOST):
            self._trip(self.kill_switch.observe_error(self.now_ms()))

    def on_trading_state(self, state: TradingState, reason: str) -> None:
        self.reason, self.since_ms = reason, self.now_ms()
        # A state change is rare and must survive a crash: written at once.
        self.save()
