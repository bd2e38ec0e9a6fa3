"""Crash recovery: reconcile the journal with each live venue before trading.

After NautilusTrader's execution reconciliation and Hummingbot's
track-before-send: every order was journaled (with its client order id)
before it was sent, so after any crash the journal knows every order that
may exist. At start, for each persistent venue:

1. Every order the journal still has open is looked up by client order id.
   Found: its missing fills are journaled, and if it still works at the venue
   the core adopts it (pending quantity) and the adapter follows it again;
   if it ended meanwhile its final state is journaled. Not found: looked up
   again, up to ``unconfirmed_checks`` times in all (counted across restarts),
   ``check_interval_s`` apart, then marked LOST and alerted. A lost order is
   never resent: the decision behind it is stale.
2. Open venue orders in the traded symbols that the journal does not know are
   journaled as *external* and logged; they are left alone.
3. Balances and positions are read and become the portfolio's cash and
   positions (the venue's word, not ours).
4. A daemon that comes back HALTED (the state persists) cancels the orders
   it resumed: the halt's cancels may not have reached the venue before the
   crash.

Paper venues start empty, so their open journal orders are closed as
canceled. Any venue that does not answer makes recovery fail with one clear
line, and the daemon refuses to start: it never trades on a state it could
not confirm.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from orchestrator.engine.orchestrator import TradingOrchestrator
from orchestrator.errors import OrchestratorError
from orchestrator.execution.adapter import ExchangeAdapter
from orchestrator.execution.config import RecoveryConfig
from orchestrator.journal.store import ExternalOrder, JournalOrder, OrderCheck, OrderJournal
from orchestrator.journal.writer import JournalWriter
from orchestrator.orders import OrderStatus, OrderUpdate
from orchestrator.risk.state import TradingState

log = structlog.get_logger("orchestrator.recovery")


class RecoveryError(OrchestratorError):
    """Reconciliation with a venue failed; the daemon must not trade."""


@dataclass(slots=True)
class RecoveryReport:
    resumed: list[str] = field(default_factory=list)  # still working at the venue
    closed: list[str] = field(default_factory=list)  # ended while we were down
    lost: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    fills: int = 0
    cash: float | None = None
    positions: dict[str, float] = field(default_factory=dict)


def wall_ms() -> int:
    return int(time.time() * 1000)


class Reconciler:
    def __init__(
        self,
        engine: TradingOrchestrator,
        writer: JournalWriter,
        config: RecoveryConfig,
        *,
        paper_cash: float,
        quote_currencies: Mapping[str, str],
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.config = config
        self.paper_cash = paper_cash
        self.quote_currencies = quote_currencies  # live venue -> account currency
        self.report = RecoveryReport()

    @property
    def journal_path(self) -> Path:
        return self.writer.path

    async def run(self) -> RecoveryReport:
        router = self.engine.router
        journal = OrderJournal(self.journal_path)
        try:
            for name, adapter in router.adapters.items():
                # Every open order, however old: an order's time is event time, which a replay sets in the past.
                found = journal.orders(venue=name, open_only=True, limit=100_000)
                rows = [o for o in found if not o.external]
                try:
                    if adapter.persistent:
                        await self._reconcile(adapter, rows, journal)
                    else:
                        self._close_paper(rows)
                except RecoveryError:
                    raise
                except Exception as exc:
                    raise RecoveryError(
                        f"recovery: venue {name}: {exc} - the daemon does not trade on an unconfirmed state "
                        "(check the network, the API keys and the sandbox setting, then start again)"
                    ) from exc
            await self._adopt_balances({n: a for n, a in router.adapters.items() if a.persistent})
        finally:
            journal.close()
        await asyncio.to_thread(self.writer.flush)
        report = self.report
        if report.resumed and self.engine.risk.state is TradingState.HALTED:
            # Halted before the crash: the halt's cancels may never have reached the venue.
            log.warning("halted_orders_canceled", orders=self.engine.cancel_all_orders())
        log.info(
            "recovered",
            resumed=len(report.resumed),
            closed=len(report.closed),
            lost=len(report.lost),
            external=len(report.external),
            fills=report.fills,
            cash=report.cash,
            positions=report.positions,
        )
        return report

    def _close_paper(self, rows: list[JournalOrder]) -> None:
        now = wall_ms()
        for row in rows:
            self.writer.put(
                OrderUpdate(
                    client_order_id=row.client_order_id,
                    trace_id=row.trace_id,
                    ts=now,
                    venue=row.venue,
                    symbol=row.symbol,
                    side=row.side,
                    quantity=row.quantity,
                    status=OrderStatus.CANCELED,
                    filled_quantity=row.filled_quantity,
                    reason="paper venue restarted: its orders do not survive a restart",
                )
            )

    async def _reconcile(self, adapter: ExchangeAdapter, rows: list[JournalOrder], journal: OrderJournal) -> None:
        unconfirmed = list(rows)
        checks = {row.client_order_id: row.checks for row in rows}
        while unconfirmed:
            missing: list[JournalOrder] = []
            for row in unconfirmed:
                update = await adapter.fetch_order(row.client_order_id, row.symbol)
                if update is not None:
                    await self._found(adapter, row, update, journal)
                    continue
                checks[row.client_order_id] += 1
                lost = checks[row.client_order_id] >= self.config.unconfirmed_checks
                reason = f"not found at {adapter.name} ({checks[row.client_order_id]} check(s))"
                self.writer.put(OrderCheck(row.client_order_id, wall_ms(), lost=False, reason=reason))
                if lost:
                    self._lost(row, reason)
                else:
                    missing.append(row)
            unconfirmed = missing
            if unconfirmed:
                await asyncio.sleep(self.config.check_interval_s)
        await self._flag_external(adapter, journal)

    async def _found(
        self, adapter: ExchangeAdapter, row: JournalOrder, update: OrderUpdate, journal: OrderJournal
    ) -> None:
        intent = row.intent()
        known = journal.fill_ids(adapter.name, row.client_order_id)
        update = _as_ours(update, row)
        fills = [f for f in await adapter.order_fills(intent, update) if f.fill_id not in known]
        for fill in fills:
            # Journal only: the venue's balances, adopted below, already hold these fills.
            self.writer.put(fill)
            known.add(fill.fill_id)
        self.report.fills += len(fills)
        self.writer.put(update)
        if update.status.is_terminal:
            self.report.closed.append(row.client_order_id)
            log.info(
                "order_closed_while_down",
                client_order_id=row.client_order_id,
                status=update.status.value,
                trace_id=row.trace_id,
            )
            return
        remaining = max(update.quantity - update.filled_quantity, 0.0)
        self.engine.track_open_order(intent, remaining)
        adapter.resume(intent, update, known)
        self.report.resumed.append(row.client_order_id)
        log.info("order_resumed", client_order_id=row.client_order_id, remaining=remaining, trace_id=row.trace_id)

    def _lost(self, row: JournalOrder, reason: str) -> None:
        self.report.lost.append(row.client_order_id)
        log.error(
            "order_lost",
            client_order_id=row.client_order_id,
            venue=row.venue,
            symbol=row.symbol,
            trace_id=row.trace_id,
            reason=reason,
        )
        # Through the core, so every listener (journal, kill switch, MQTT) sees it.
        self.engine.on_order_update(
            OrderUpdate(
                client_order_id=row.client_order_id,
                trace_id=row.trace_id,
                ts=wall_ms(),
                venue=row.venue,
                symbol=row.symbol,
                side=row.side,
                quantity=row.quantity,
                status=OrderStatus.LOST,
                filled_quantity=row.filled_quantity,
                reason=f"lost: {reason}",
            )
        )

    async def _flag_external(self, adapter: ExchangeAdapter, journal: OrderJournal) -> None:
        symbols = [s for s in self.engine.symbols if self.engine.router.venue_of(s) == adapter.name]
        for symbol in symbols:
            for update in await adapter.open_orders(symbol):
                if journal.order(update.client_order_id) is not None:
                    continue
                self.writer.put(ExternalOrder(update, wall_ms()))
                self.report.external.append(update.client_order_id)
                log.warning(
                    "external_order",
                    venue=adapter.name,
                    symbol=symbol,
                    client_order_id=update.client_order_id,
                    venue_order_id=update.venue_order_id,
                    quantity=update.quantity,
                    side=update.side.value,
                )

    async def _adopt_balances(self, live: Mapping[str, ExchangeAdapter]) -> None:
        if not live:
            return
        engine = self.engine
        router = engine.router
        cash = 0.0
        positions: dict[str, tuple[float, float]] = {}
        for name, adapter in live.items():
            balances = await adapter.balances()
            cash += balances.get(self.quote_currencies.get(name, "USDT"), 0.0)
            held = await adapter.positions()
            for symbol in engine.symbols:
                if router.venue_of(symbol) != name:
                    continue
                quantity = held.get(symbol, 0.0)
                price = await adapter.last_price(symbol) if quantity else None
                positions[symbol] = (quantity, price or 0.0)
        if any(not router.adapters[router.venue_of(s)].persistent for s in engine.symbols):
            cash += self.paper_cash  # symbols traded on paper keep their simulated account
        engine.portfolio.adopt(cash, positions)
        self.report.cash = cash
        self.report.positions = {s: q for s, (q, _) in positions.items() if q}


def _as_ours(update: OrderUpdate, row: JournalOrder) -> OrderUpdate:
    """The venue's update with the journal's trace id (venues do not know it)."""
    if update.trace_id == row.trace_id:
        return update
    return OrderUpdate(
        client_order_id=row.client_order_id,
        trace_id=row.trace_id,
        ts=update.ts,
        venue=row.venue,
        symbol=row.symbol,
        side=row.side,
        quantity=update.quantity or row.quantity,
        status=update.status,
        filled_quantity=update.filled_quantity,
        average_price=update.average_price,
        venue_order_id=update.venue_order_id,
        reason=update.reason,
    )
