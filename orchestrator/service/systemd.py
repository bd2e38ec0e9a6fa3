"""The daemon service that keeps systemd informed.

- READY=1 (with the first STATUS) once the daemon's ready callbacks ran
  (configuration loaded, modules started, the router and every service -
  journal, reconciliation, MQTT - started) and the feed has delivered its
  first event: a live feed connects inside its stream, so the first event
  is the proof that market data flows. Until then STATUS says what we wait
  for: each start-up step as the daemon reaches it, then the market data. A
  live feed of bars only may first deliver when its first bar closes, up to
  one timeframe after connecting (``first_event_wait_s``): the start timeout
  is extended by that much (EXTEND_TIMEOUT_USEC, bounded), so a 1h feed does
  not run into TimeoutStartSec= while it is healthy.
- STATUS= every ``STATUS_INTERVAL_S`` when the summary changed.
- WATCHDOG=1 every WATCHDOG_USEC/2 from ``run``, a task on the daemon's own
  event loop: a loop blocked by a module or a stuck call sends no pings,
  which is exactly what systemd must notice.
- RELOADING=1 (with MONOTONIC_USEC) ... READY=1 around a configuration
  reload, whichever way it was asked for: SIGHUP (``systemctl reload``,
  through ``Daemon.reload_config``), the control socket or MQTT (through
  ``DaemonControl.reload_config`` and ``module_reload()`` of every module).
  All of them run ``reload_config`` here, one at a time, and it calls the
  module operations itself: never back into ``DaemonControl``.
- STOPPING=1 from a stopping callback, the first thing a stop does, with
  EXTEND_TIMEOUT_USEC covering ``shutdown.timeout_s``: a unit whose
  TimeoutStopSec= is shorter does not SIGKILL a stop that is still
  cancelling orders.

Without ``$NOTIFY_SOCKET`` nothing is sent; reloads work the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from orchestrator.control import CommandResult, no_module_operations
from orchestrator.feeds.config import FeedConfig
from orchestrator.service.notify import SystemdNotifier
from orchestrator.service.status import StatusLine

if TYPE_CHECKING:
    from orchestrator.daemon import Daemon

log = structlog.get_logger("orchestrator.service")

STATUS_INTERVAL_S = 5.0
FIRST_EVENT_POLL_S = 0.05  # start-up only; the hot path is not touched
STOP_DEADLINE_MARGIN_S = 15.0
FIRST_EVENT_MARGIN_S = 60.0  # connecting, the venue's own lag in closing a bar


def first_event_wait_s(feed: FeedConfig) -> float | None:
    """The longest a healthy feed may take from connecting to its first event,
    when that can exceed a start timeout; ``None`` when events come at once.

    Only a live feed of bars alone: over a websocket the first update is the
    bar still forming, and bars are emitted closed, so the first one may come
    a whole timeframe later. Books and trades arrive within seconds; the
    simulated market and replays yield at once.
    """
    if feed.kind != "ccxt" or feed.ccxt is None or set(feed.ccxt.streams) != {"bars"}:
        return None
    import ccxt  # only for a ccxt feed, which imports it anyway

    return float(ccxt.Exchange.parse_timeframe(feed.ccxt.timeframe))


class SystemdNotifyService:
    """Readiness, status, watchdog, reload and stop notifications for one daemon."""

    name = "systemd-notify"

    def __init__(
        self, daemon: Daemon, notifier: SystemdNotifier | None = None, status_interval_s: float = STATUS_INTERVAL_S
    ) -> None:
        self.daemon = daemon
        self.notifier = SystemdNotifier() if notifier is None else notifier
        self.status_interval_s = status_interval_s
        self.status_line = StatusLine(daemon.engine)
        self._services_ready = asyncio.Event()
        self._ready_sent = asyncio.Event()
        self._last_status = ""
        self._reload_lock = asyncio.Lock()

    async def start(self) -> None:
        self.daemon.ready_callbacks.append(self._announce_ready)
        self.daemon.stopping_callbacks.append(self._announce_stopping)
        if self.notifier.enabled:
            log.info(
                "systemd_notify",
                watchdog_interval_s=self.notifier.watchdog_interval_s,
                status_interval_s=self.status_interval_s,
            )

    async def run(self) -> None:
        await self._services_ready.wait()
        await self._wait_for_market_data()
        self._last_status = self.status_line.summary()
        self.notifier.ready(self._last_status)
        self._ready_sent.set()
        if not self.notifier.enabled:
            return
        watchdog = self.notifier.watchdog_interval_s
        tick = self.status_interval_s if watchdog is None else min(watchdog, self.status_interval_s)
        next_status = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if now >= next_status:
                next_status = now + self.status_interval_s
                self._send_status()
            if watchdog is not None:
                self.notifier.watchdog()

    async def stop(self) -> None:
        self.notifier.close()

    def starting(self, step: str) -> None:
        """STATUS while starting: the step under way, so a slow reconciliation
        or broker handshake shows in ``systemctl status`` by name."""
        if not self._ready_sent.is_set():
            self.notifier.status(f"starting: {step}")

    # ------------------------------------------------------------ reload

    async def reload_config(self, reload: Callable[[], Awaitable[CommandResult]] | None = None) -> CommandResult:
        """RELOADING=1, the daemon's configuration reload, READY=1; one at a time.

        ``reload``: the reload to run (default: the module operations'
        ``reload_config``; ``reload`` of every module re-reads the config too).
        Before the daemon has reported READY=1 the reload runs unannounced:
        a READY=1 after it would claim a readiness not yet reached.
        """
        async with self._reload_lock:
            if self.daemon.stopping.is_set():
                log.info("config_reload_skipped", reason="stopping")
                return CommandResult(False, "stopping: reload skipped")
            announce = self._ready_sent.is_set()
            if announce:
                self.notifier.reloading()
            log.info("config_reload_started")
            try:
                result = await (self._reload_config_file if reload is None else reload)()
            except Exception as exc:  # noqa: BLE001 - a failed reload keeps the running configuration
                result = CommandResult(False, f"{type(exc).__name__}: {exc}")
            if result.ok:
                log.info("config_reloaded", message=result.message)
            else:
                log.warning("config_reload_failed", message=result.message)
            if announce and not self.daemon.stopping.is_set():
                summary = self.status_line.summary()
                self.notifier.ready(summary if result.ok else f"reload failed: {result.message} | {summary}")
            return result

    async def _reload_config_file(self) -> CommandResult:
        modules = self.daemon.control.modules
        if modules is None:
            return no_module_operations()
        return await modules.reload_config()

    # ------------------------------------------------------------ callbacks

    async def _announce_ready(self) -> None:
        # Not READY yet: ``run`` still waits for market data, without holding up the other callbacks.
        self._services_ready.set()

    async def _wait_for_market_data(self) -> None:
        engine = self.daemon.engine
        if engine.counters.events:
            return
        feed = self.daemon.feed.name
        self.notifier.status(f"starting: waiting for market data ({feed})")
        wait_s = first_event_wait_s(self.daemon.config.feed)
        if wait_s is not None:
            self.notifier.extend_timeout(wait_s + FIRST_EVENT_MARGIN_S)
        log.info("waiting_for_market_data", feed=feed, first_event_within_s=wait_s)
        while not engine.counters.events:
            await asyncio.sleep(FIRST_EVENT_POLL_S)

    async def _announce_stopping(self) -> None:
        # Beyond our own deadline: after it, the remaining steps get a short grace each.
        within_s = self.daemon.config.shutdown.timeout_s + STOP_DEADLINE_MARGIN_S
        self.notifier.stopping(f"stopping: {self.daemon.stop_reason or 'requested'}", within_s)

    def _send_status(self) -> None:
        summary = self.status_line.summary()
        if summary != self._last_status:
            self._last_status = summary
            self.notifier.status(summary)
