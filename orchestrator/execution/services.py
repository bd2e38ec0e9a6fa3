"""Wire the journal, the risk guard and recovery into the daemon.

``attach_execution`` is called once by the daemon after the core is built.
It adds, in this order, the services whose ``start`` must succeed before
the daemon reports ready:

1. ``journal``: opens the SQLite file and starts its writer thread; live
   adapters get its ``wait_durable`` as their intent gate.
2. ``recovery``: reconciles the journal with every venue (raises
   ``RecoveryError`` and so keeps the daemon from starting when it fails).
3. ``risk-guard``: re-checks the kill switch every ``check_interval_s``.

The saved trading state is restored at once (before any event), so a daemon
halted before a crash comes back HALTED.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from orchestrator.engine.orchestrator import TradingOrchestrator
from orchestrator.errors import ConfigError
from orchestrator.execution.adapter import ExecutionListener
from orchestrator.execution.ccxt.adapter import CcxtExchange
from orchestrator.execution.factory import shadow_adapter
from orchestrator.execution.recovery import Reconciler, RecoveryReport
from orchestrator.journal.writer import JournalListener, JournalWriter
from orchestrator.orders import Fill, OrderUpdate
from orchestrator.risk.kill_switch import KillSwitch, RiskGuard, wall_ms
from orchestrator.risk.store import RiskStateStore

if TYPE_CHECKING:
    from orchestrator.daemon import Daemon

log = structlog.get_logger("orchestrator.execution")


class JournalService:
    name = "journal"

    def __init__(self, writer: JournalWriter) -> None:
        self.writer = writer

    async def start(self) -> None:
        self.writer.start()

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        await asyncio.to_thread(self.writer.stop)


class RecoveryService:
    name = "recovery"

    def __init__(self, reconciler: Reconciler) -> None:
        self.reconciler = reconciler
        self.report: RecoveryReport | None = None

    async def start(self) -> None:
        self.report = await self.reconciler.run()

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        return None


class RiskGuardService:
    name = "risk-guard"

    def __init__(self, guard: RiskGuard, interval_s: float) -> None:
        self.guard = guard
        self.interval_s = interval_s

    async def start(self) -> None:
        self.guard.check()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.guard.check()

    async def stop(self) -> None:
        await asyncio.to_thread(self.guard.save)


class ShadowRecorder:
    """A shadow venue's reports go to the core's listeners (journal, logs), not its portfolio."""

    def __init__(self, engine: TradingOrchestrator) -> None:
        self.engine = engine

    def on_order_update(self, update: OrderUpdate) -> None:
        for listener in self.engine.listeners:
            listener.on_order_update(update)

    def on_fill(self, fill: Fill) -> None:
        for listener in self.engine.listeners:
            listener.on_fill(fill)


@dataclass(frozen=True, slots=True)
class ExecutionServices:
    writer: JournalWriter | None
    guard: RiskGuard
    recovery: RecoveryService | None


def attach_execution(daemon: Daemon) -> ExecutionServices:
    config = daemon.config
    engine = daemon.engine
    execution = config.execution
    live = {name: a for name, a in engine.router.adapters.items() if isinstance(a, CcxtExchange)}
    writer: JournalWriter | None = None
    if config.journal.enabled:
        writer = JournalWriter(config.journal.resolve_path(config.state_dir), batch_max=config.journal.batch_max)
        engine.listeners.append(
            JournalListener(writer, record_decisions=config.journal.record_decisions, now_ms=wall_ms)
        )
        for adapter in live.values():
            adapter.intent_gate = writer.wait_durable
        daemon.services.append(JournalService(writer))
    elif live:
        raise ConfigError([f"journal.enabled: live venue(s) {', '.join(live)} need the order journal"])
    recorder: ExecutionListener = ShadowRecorder(engine)
    for venue in execution.shadow:
        engine.router.add_shadow(venue, shadow_adapter(execution, venue), recorder)
    guard = RiskGuard(engine, KillSwitch(config.risk.kill_switch), RiskStateStore(config.state_dir))
    guard.restore()
    engine.listeners.append(guard)
    recovery = None
    if writer is not None:
        reconciler = Reconciler(
            engine,
            writer,
            execution.recovery,
            paper_cash=execution.paper.initial_cash,
            quote_currencies={name: venue.quote_currency for name, venue in execution.live_venues().items()},
        )
        recovery = RecoveryService(reconciler)
        daemon.services.append(recovery)
    daemon.services.append(RiskGuardService(guard, config.risk.kill_switch.check_interval_s))
    return ExecutionServices(writer, guard, recovery)
