"""The daemon: a feed in front of the core, services around it.

One asyncio loop. The feed task pulls events and calls the synchronous
core; services (MQTT, the module watcher, the control socket, systemd
notification) are named tasks in one TaskGroup, started before the daemon
reports ready and stopped in reverse order. Stopping is orderly: no new
events, open orders handled as configured, module state saved, services
closed.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from orchestrator.config.loader import LoadedConfig
from orchestrator.control import CommandResult, DaemonControl
from orchestrator.engine.builder import build_orchestrator
from orchestrator.engine.listener import EngineListener
from orchestrator.engine.orchestrator import TradingOrchestrator
from orchestrator.engine.plan import RunPlan, plan_run
from orchestrator.engine.state_store import ModuleStateStore
from orchestrator.errors import ConfigError
from orchestrator.execution.factory import live_adapters
from orchestrator.execution.services import attach_execution
from orchestrator.feeds.base import MarketFeed
from orchestrator.feeds.factory import build_feed
from orchestrator.hotswap.candidate import startup_self_checks
from orchestrator.hotswap.recorder import RecentEvents
from orchestrator.hotswap.service import attach_hot_swap
from orchestrator.orders import Fill, OrderDenied, OrderIntent, OrderUpdate
from orchestrator.service.shutdown import GracefulShutdown
from orchestrator.service.systemd import SystemdNotifyService
from orchestrator.signals import Decision

log = structlog.get_logger("orchestrator.daemon")

STATUS_LOG_INTERVAL_S = 30.0
FIRST_STATUS_LOG_S = 5.0  # the first line comes soon: an operator who just started the daemon is watching
STATE_SAVE_INTERVAL_S = 300.0


class DaemonService(Protocol):
    """Something that runs beside the core for the daemon's lifetime."""

    name: str

    async def start(self) -> None:
        """Get ready (connect, bind). Raising here stops the daemon from starting."""

    async def run(self) -> None:
        """The service's loop; cancelled when the daemon stops."""

    async def stop(self) -> None:
        """Release everything; called in reverse start order."""


class LogListener(EngineListener):
    """Decisions at debug, orders and fills at info, all with their trace id."""

    def on_decision(self, decision: Decision) -> None:
        log.debug(
            "decision",
            trace_id=decision.trace_id,
            symbol=decision.symbol,
            target=round(decision.target, 4),
            confidence=round(decision.confidence, 4),
            method=decision.method,
        )

    def on_order_intent(self, intent: OrderIntent) -> None:
        log.info(
            "order_intent",
            trace_id=intent.trace_id,
            client_order_id=intent.client_order_id,
            venue=intent.venue,
            symbol=intent.symbol,
            side=intent.side.value,
            quantity=intent.quantity,
        )

    def on_order_denied(self, denied: OrderDenied) -> None:
        log.info("order_denied", trace_id=denied.trace_id, symbol=denied.symbol, reason=denied.reason)

    def on_order_update(self, update: OrderUpdate) -> None:
        if update.status.is_terminal and update.status.value != "filled":
            log.info(
                "order_closed",
                trace_id=update.trace_id,
                client_order_id=update.client_order_id,
                status=update.status.value,
                reason=update.reason,
            )

    def on_fill(self, fill: Fill) -> None:
        log.info(
            "fill",
            trace_id=fill.trace_id,
            client_order_id=fill.client_order_id,
            symbol=fill.symbol,
            side=fill.side.value,
            quantity=fill.quantity,
            price=fill.price,
            fee=fill.fee,
        )


class Daemon:
    """Owns the core, the feed and the services for one run."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.plan: RunPlan = plan_run(loaded)
        # Each module's own self-check, as a hot swap would run it: a module
        # that fails it is refused now, like a bad config, before anything is built.
        problems = startup_self_checks(self.plan, loaded.label)
        if problems:
            raise ConfigError(problems)
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = ModuleStateStore(self.config.state_dir)
        self.engine: TradingOrchestrator = build_orchestrator(
            self.plan, store=self.store, adapters=live_adapters(self.config.execution)
        )
        self.engine.listeners.append(LogListener())
        self.feed: MarketFeed = build_feed(self.config.feed, self.engine.symbols)
        self.services: list[DaemonService] = []
        # Journal, risk state and crash recovery: their services start first.
        self.execution = attach_execution(self)
        # The last few hundred real events, for new module versions' self-checks.
        self.recent_events = RecentEvents(self.config.hot_swap.sample_events)
        self.control = DaemonControl(self)
        self.ready = asyncio.Event()
        self.ready_callbacks: list[Callable[[], Awaitable[None]]] = []
        # Run first when a stop begins, before anything is closed (systemd STOPPING=1).
        self.stopping_callbacks: list[Callable[[], Awaitable[None]]] = []
        self.graceful_stop = GracefulShutdown(self)
        # Ahead of even the journal: STATUS reports start-up from its first
        # step, and the notify socket is the last thing closed.
        self.systemd = SystemdNotifyService(self)
        self.services.insert(0, self.systemd)
        self.stopping = asyncio.Event()
        self.stop_reason = ""
        self.exit_code = 0
        self.started_at = time.time()
        self.first_status_log_s = FIRST_STATUS_LOG_S
        self.status_log_interval_s = STATUS_LOG_INTERVAL_S
        self._signal_tasks: set[asyncio.Task[CommandResult]] = set()
        self.hot_swap = attach_hot_swap(self)  # module manager, control socket, source watcher
        if self.config.mqtt is not None and self.config.mqtt.enabled:
            from orchestrator.mqtt.service import MqttService

            self.services.append(MqttService(self, self.config.mqtt))

    def request_stop(self, reason: str, exit_code: int = 0) -> None:
        if not self.stopping.is_set():
            log.info("stopping", reason=reason)
            self.stop_reason = reason
            self.exit_code = exit_code
            self.stopping.set()

    def _on_stop_signal(self, name: str) -> None:
        """The first SIGTERM/SIGINT stops gracefully; a second one forces the stop."""
        if self.stopping.is_set():
            self.graceful_stop.force(f"second {name}")
        else:
            self.request_stop(name)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_stop_signal, signal.Signals(signum).name)
        self.install_reload_signal(loop)
        started: list[DaemonService] = []
        try:
            self.systemd.starting("exchange adapters")
            await self.engine.router.start()
            for service in self.services:
                self.systemd.starting(service.name)  # STATUS: the step a slow start is in
                await service.start()
                started.append(service)
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._consume_feed(), name="feed")]
                tasks.append(group.create_task(self._housekeeping(), name="housekeeping"))
                tasks.extend(group.create_task(s.run(), name=s.name) for s in started)
                self.ready.set()
                for callback in self.ready_callbacks:
                    await callback()
                log.info(
                    "ready",
                    instance=self.config.instance,
                    symbols=list(self.engine.symbols),
                    modules=[m.name for b in self.plan.buckets for m in b.modules],
                    feed=self.feed.name,
                )
                await self.stopping.wait()
                for task in tasks:
                    task.cancel()
        finally:
            await self._shutdown(started)
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)
        return self.exit_code

    def install_reload_signal(self, loop: asyncio.AbstractEventLoop) -> None:
        """SIGHUP (``systemctl reload``) reloads the configuration file."""
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)

    def _on_reload_signal(self) -> None:
        # A signal handler must not wait: the reload runs as a task of its own.
        task = asyncio.get_running_loop().create_task(self.reload_config(), name="reload-config")
        self._signal_tasks.add(task)
        task.add_done_callback(self._signal_tasks.discard)

    async def reload_config(self) -> CommandResult:
        """Re-read the config file and apply what can change live; the result
        says what was applied, refused, or waits for a restart. Under systemd
        it runs between RELOADING=1 and READY=1 (``systemctl status`` shows
        "reloading" meanwhile)."""
        return await self.systemd.reload_config()

    async def _consume_feed(self) -> None:
        on_event = self.engine.on_event
        record = self.recent_events.append_by_class  # ~50 ns: the sample new module versions are checked on
        async for event in self.feed.stream():
            record[event.__class__](event)
            on_event(event)
        self.request_stop("feed ended")

    async def _housekeeping(self) -> None:
        last_events = 0
        last_time = time.monotonic()
        last_save = last_time
        delay = self.first_status_log_s
        while True:
            await asyncio.sleep(delay)
            delay = self.status_log_interval_s
            now = time.monotonic()
            counters = self.engine.counters
            rate = (counters.events - last_events) / (now - last_time)
            last_events, last_time = counters.events, now
            self.log_status(rate)
            if now - last_save >= STATE_SAVE_INTERVAL_S:
                self.save_module_states()
                last_save = now

    def log_status(self, events_per_s: float) -> None:
        """The periodic status line: throughput, counters, the account and its positions."""
        engine = self.engine
        counters = engine.counters
        portfolio = engine.portfolio.snapshot()
        log.info(
            "status",
            events=counters.events,
            events_per_s=round(events_per_s, 1),
            decisions=counters.decisions,
            orders=counters.intents,
            fills=counters.fills,
            state=engine.risk.state.value,
            equity=round(portfolio.equity, 2),
            realized_pnl=round(portfolio.realized_pnl, 2),
            unrealized_pnl=round(sum(p.unrealized_pnl for p in portfolio.positions), 2),
            fees=round(portfolio.fees, 2),
            positions={p.symbol: p.quantity for p in portfolio.positions if p.quantity},
        )

    def save_module_states(self) -> None:
        """Persist every module's exported state (without stopping it)."""
        for pipeline in self.engine.pipelines.values():
            for slot in pipeline.slots.values():
                try:
                    state = slot.instance.export_state()
                    if state is not None:
                        self.store.save(pipeline.name, slot.name, state)
                except Exception as exc:  # noqa: BLE001 - one module's bad state must not stop the others'
                    log.warning("module_state_not_saved", module=slot.name, error=f"{type(exc).__name__}: {exc}")

    async def _shutdown(self, started: list[DaemonService]) -> None:
        # The order (feed, module state, open orders, router, services) is
        # explained in orchestrator/service/shutdown.py.
        self.exit_code = await self.graceful_stop.run(started)
