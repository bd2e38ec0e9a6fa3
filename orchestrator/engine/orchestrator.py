"""``TradingOrchestrator``: market event in, order intents out.

``on_event`` is the whole hot path and is synchronous: mark prices, let
simulated venues fill, run the symbol's bucket pipeline, fuse, gate the
decision, size it through the risk engine and hand the intent to the
router. Observers (journal, MQTT, logs) are called only for decisions,
orders and fills, which are rare next to market events.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from time import perf_counter_ns

import structlog

from orchestrator.config.models import DecisionConfig
from orchestrator.contract import EventClock
from orchestrator.engine.health import RING_SIZE, HealthSnapshot
from orchestrator.engine.listener import EngineListener
from orchestrator.engine.pipeline import BucketPipeline
from orchestrator.events import MarketEvent, event_price
from orchestrator.execution.ids import IdSequence
from orchestrator.execution.portfolio import Portfolio
from orchestrator.execution.router import Router
from orchestrator.orders import Fill, OrderDenied, OrderIntent, OrderStatus, OrderUpdate
from orchestrator.risk.engine import AccountView, RiskEngine
from orchestrator.risk.state import TradingState
from orchestrator.signals import Decision

log = structlog.get_logger("orchestrator.engine")

_RING_MASK = RING_SIZE - 1
MAX_LEGS_PER_DECISION = 32  # orders one decision may spend reaching its target


@dataclass(slots=True)
class EngineCounters:
    events: int = 0
    unrouted_events: int = 0
    decisions: int = 0
    intents: int = 0
    denied: int = 0
    order_updates: int = 0
    fills: int = 0
    last_event_ts: int = 0
    last_decision_ts: int = 0


@dataclass(slots=True)
class _OpenOrder:
    symbol: str
    venue: str
    sign: int
    remaining: float


class TradingOrchestrator:
    """The core. Build it with ``orchestrator.engine.builder.build_orchestrator``."""

    def __init__(
        self,
        *,
        pipelines: Mapping[str, BucketPipeline],
        router: Router,
        risk: RiskEngine,
        portfolio: Portfolio,
        ids: IdSequence,
        clock: EventClock,
        decision: DecisionConfig,
    ) -> None:
        self.pipelines = dict(pipelines)
        self.router = router
        self.risk = risk
        self.portfolio = portfolio
        self.ids = ids
        self.clock = clock
        self.decision_config = decision
        self.counters = EngineCounters()
        self.listeners: list[EngineListener] = []
        self.started_at = time.time()
        self._pipeline_of: dict[str, BucketPipeline] = {}
        for pipeline in self.pipelines.values():
            for symbol in pipeline.symbols:
                self._pipeline_of[symbol] = pipeline
        self._last_target: dict[str, float] = {}
        self._last_decision_ts: dict[str, int] = {}
        self._active: dict[str, tuple[Decision, int]] = {}  # symbol -> (decision, next leg)
        self._rework: set[str] = set()
        self._open: dict[str, _OpenOrder] = {}
        self._pending: dict[str, float] = {}
        self._latency_ring = [0] * RING_SIZE
        self._latency_count = 0
        self._event_started_ns = 0
        # Only a sizing method that needs every price (volatility targeting) gets them.
        self._observe_price = risk.price_observer()
        router.bind(self)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._pipeline_of)

    # ------------------------------------------------------------ hot path

    def on_event(self, event: MarketEvent) -> None:
        self._event_started_ns = perf_counter_ns()
        counters = self.counters
        counters.events += 1
        counters.last_event_ts = event.ts
        self.clock.now = event.ts
        price = event_price(event)
        self.portfolio.mark(event.symbol, price)
        if self._observe_price is not None:
            self._observe_price(event.symbol, event.ts, price)
        self.router.on_market(event)
        if self._rework:
            self._drain_rework()
        pipeline = self._pipeline_of.get(event.symbol)
        if pipeline is None:
            counters.unrouted_events += 1
            return
        if not pipeline.process(event):
            return
        symbol = event.symbol
        target, confidence, result, provider = pipeline.target(symbol, event.ts)
        fusion_config = pipeline.fusion_config
        if confidence < fusion_config.min_confidence:
            target = 0.0
        last = self._last_target.get(symbol, 0.0)
        if abs(target - last) < self.decision_config.min_change and not (target == 0.0 and last != 0.0):
            return
        if event.ts - self._last_decision_ts.get(symbol, -(2**62)) < self.decision_config.min_interval_ms:
            return
        if result is None:
            # Only now, for the few events that become decisions, the full result.
            result, provider = pipeline.fuse(symbol, event.ts)
            if result.confidence < fusion_config.min_confidence:
                target = 0.0
        regime_module = fusion_config.regime_module
        regime = pipeline.latest[symbol].get(regime_module) if regime_module else None
        decision = Decision(
            trace_id=self.ids.next_trace_id(),
            ts=event.ts,
            symbol=symbol,
            bucket=pipeline.name,
            target=target if target == 0.0 else result.target,
            confidence=result.confidence,
            mu=result.mu,
            sigma=result.sigma,
            method=provider if provider != "builtin_fusion" else fusion_config.method,
            contributions=result.contributions,
            regime=None if regime is None else regime.label,
        )
        target = decision.target
        self._last_target[symbol] = target
        self._last_decision_ts[symbol] = event.ts
        counters.decisions += 1
        counters.last_decision_ts = event.ts
        for listener in self.listeners:
            listener.on_decision(decision)
        self._active[symbol] = (decision, 0)
        self._work(symbol)

    def _work(self, symbol: str) -> None:
        """Send orders for the symbol's active decision until one is working,
        the target is reached, or the decision has used its legs."""
        active = self._active.get(symbol)
        if active is None:
            return
        decision, leg = active
        while leg < MAX_LEGS_PER_DECISION:
            price = self.portfolio.marks.get(symbol, 0.0)
            gross_other, net_other, bucket_other = self._exposure_of_others(symbol, decision.bucket)
            account = AccountView(
                price=price,
                equity=self.portfolio.equity,
                position=self.portfolio.position(symbol),
                pending=self._pending.get(symbol, 0.0),
                gross_other=gross_other,
                net_other=net_other,
                bucket_other=bucket_other,
            )
            outcome = self.risk.evaluate(decision, account, leg)
            leg += 1
            self._active[symbol] = (decision, leg)
            if outcome is None:
                break
            if isinstance(outcome, OrderDenied):
                self.counters.denied += 1
                for listener in self.listeners:
                    listener.on_order_denied(outcome)
                break
            self._submit(outcome)
            if symbol not in self._active:
                break  # refused by the venue (inline): the same order would be refused again
            if self._pending.get(symbol, 0.0) != 0.0:
                return  # still working at the venue; continue when it completes
        # Settled here and now: a fill reported inline must not trigger rework.
        self._rework.discard(symbol)

    def _exposure_of_others(self, symbol: str, bucket: str) -> tuple[float, float, float]:
        """Gross, net and same-bucket gross notional of every other symbol's
        committed position (held plus pending). O(symbols), per order leg only."""
        gross = net = in_bucket = 0.0
        marks = self.portfolio.marks
        for other in self.portfolio.quantities.keys() | self._pending.keys():
            if other == symbol:
                continue
            value = (self.portfolio.position(other) + self._pending.get(other, 0.0)) * marks.get(other, 0.0)
            gross += abs(value)
            net += value
            pipeline = self._pipeline_of.get(other)
            if pipeline is not None and pipeline.name == bucket:
                in_bucket += abs(value)
        return gross, net, in_bucket

    def _submit(self, intent: OrderIntent) -> None:
        self.counters.intents += 1
        self._latency_ring[self._latency_count & _RING_MASK] = perf_counter_ns() - self._event_started_ns
        self._latency_count += 1
        sign = intent.side.sign
        self._open[intent.client_order_id] = _OpenOrder(intent.symbol, intent.venue, sign, intent.quantity)
        self._pending[intent.symbol] = self._pending.get(intent.symbol, 0.0) + sign * intent.quantity
        # Listeners (the journal) see the intent before the venue does.
        for listener in self.listeners:
            listener.on_order_intent(intent)
        self.router.submit(intent)

    def _drain_rework(self) -> None:
        symbols, self._rework = self._rework, set()
        for symbol in symbols:
            self._work(symbol)

    # ------------------------------------------------------ execution reports

    def on_order_update(self, update: OrderUpdate) -> None:
        self.counters.order_updates += 1
        if update.status.is_terminal:
            self._close_open(update.client_order_id)
            if update.status is OrderStatus.FILLED and update.symbol in self._active:
                self._rework.add(update.symbol)
            elif update.status is OrderStatus.REJECTED:
                # Its decision stops here; the next decision tries afresh.
                active = self._active.get(update.symbol)
                if active is not None and active[0].trace_id == update.trace_id:
                    del self._active[update.symbol]
        for listener in self.listeners:
            listener.on_order_update(update)

    def on_fill(self, fill: Fill) -> None:
        self.counters.fills += 1
        self.portfolio.apply_fill(fill)
        tracked = self._open.get(fill.client_order_id)
        if tracked is not None:
            filled = min(fill.quantity, tracked.remaining)
            tracked.remaining -= filled
            self._pending[tracked.symbol] = self._pending.get(tracked.symbol, 0.0) - tracked.sign * filled
        for listener in self.listeners:
            listener.on_fill(fill)

    def _close_open(self, client_order_id: str) -> None:
        tracked = self._open.pop(client_order_id, None)
        if tracked is None:
            return
        pending = self._pending.get(tracked.symbol, 0.0) - tracked.sign * tracked.remaining
        if abs(pending) < 1e-12:
            self._pending.pop(tracked.symbol, None)
        else:
            self._pending[tracked.symbol] = pending

    # ------------------------------------------------------------ control

    def set_trading_state(self, state: TradingState, *, reason: str) -> None:
        previous = self.risk.state
        self.risk.state = state
        if state is TradingState.HALTED:
            self.cancel_all_orders()
        if previous is not state:
            log.warning("trading_state", state=state.value, previous=previous.value, reason=reason)
            for listener in self.listeners:
                listener.on_trading_state(state, reason)

    def cancel_all_orders(self) -> int:
        """Ask the venues to cancel every order we know to be open."""
        orders = list(self._open.items())
        for client_order_id, tracked in orders:
            self.router.cancel(tracked.venue, client_order_id)
        return len(orders)

    def track_open_order(self, intent: OrderIntent, remaining: float) -> None:
        """Adopt an order found open at the venue (crash recovery)."""
        sign = intent.side.sign
        self._open[intent.client_order_id] = _OpenOrder(intent.symbol, intent.venue, sign, remaining)
        self._pending[intent.symbol] = self._pending.get(intent.symbol, 0.0) + sign * remaining

    # ------------------------------------------------------------ reporting

    @property
    def event_started_ns(self) -> int:
        """``perf_counter_ns()`` when the event being processed arrived."""
        return self._event_started_ns

    @property
    def open_order_count(self) -> int:
        return len(self._open)

    def pending_quantity(self, symbol: str) -> float:
        return self._pending.get(symbol, 0.0)

    def last_target(self, symbol: str) -> float:
        return self._last_target.get(symbol, 0.0)

    def module_health(self) -> list[HealthSnapshot]:
        return [snapshot for pipeline in self.pipelines.values() for snapshot in pipeline.health()]

    def order_latency_us(self) -> tuple[float, float]:
        """(p50, p99) of event-to-order-intent time over the recent window."""
        count = min(self._latency_count, RING_SIZE)
        if count == 0:
            return 0.0, 0.0
        window = sorted(self._latency_ring[:count])
        return window[(count - 1) // 2] / 1000.0, window[min(count - 1, int(0.99 * (count - 1) + 0.5))] / 1000.0

    def stop_modules(self) -> None:
        for pipeline in self.pipelines.values():
            pipeline.stop()
