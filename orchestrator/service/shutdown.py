"""Stopping a daemon in order, within a deadline.

The order, and why:

1. ``stopping_callbacks`` (systemd's STOPPING=1): the service manager and
   operators learn at once that the daemon is going down.
2. the feed closes: no event arrives, so no new decision is made.
3. module state is saved and modules stop: synchronous and quick, so it is
   done before anything that can hang.
4. open orders are cancelled (and the venues' answers awaited) or kept,
   as ``shutdown.cancel_open_orders`` says.
5. the router stops: adapters drain their queues, so the last execution
   reports reach the listeners (the journal) before those stop.
6. services stop in reverse start order (journal flush, MQTT ``offline``).

Every asynchronous step runs against one deadline, ``shutdown.timeout_s``.
When it passes, or a second SIGTERM/SIGINT arrives, the step under way is
abandoned (named in the log) and each remaining step gets at most
``FORCED_STEP_GRACE_S``: a stuck venue or broker is given up on, but the
journal still gets its chance to flush. The daemon then exits 1 so the stop
is not mistaken for a clean one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from orchestrator.daemon import Daemon, DaemonService

log = structlog.get_logger("orchestrator.shutdown")

EXIT_FORCED_STOP = 1
FORCED_STEP_GRACE_S = 2.0
CANCEL_POLL_S = 0.05


class GracefulShutdown:
    """One daemon's stop. ``force`` may be called from a signal handler."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.config = daemon.config.shutdown
        self.forced_by: str | None = None
        self._force = asyncio.Event()
        self._deadline = 0.0

    @property
    def forced(self) -> bool:
        return self.forced_by is not None

    def force(self, reason: str) -> None:
        """Give up on the step under way and hurry the remaining ones."""
        if self.forced_by is None:
            self.forced_by = reason
            log.error(
                "shutdown_forced",
                reason=reason,
                note=f"step under way abandoned, each remaining step gets {FORCED_STEP_GRACE_S} s; exit status 1",
            )
            self._force.set()

    async def run(self, started: Sequence[DaemonService]) -> int:
        """Stop everything; returns the exit status the daemon should use."""
        daemon = self.daemon
        self._deadline = time.monotonic() + self.config.timeout_s
        await self._step("notify_stopping", _call_all(daemon.stopping_callbacks))
        await self._step("feed", daemon.feed.aclose())
        log.info("feed_stopped", events=daemon.engine.counters.events)
        daemon.save_module_states()
        daemon.engine.stop_modules()
        await self._step("orders", self._settle_open_orders())
        await self._step("router", daemon.engine.router.stop())
        for service in reversed(started):
            await self._step(f"service:{service.name}", service.stop())
        log.info(
            "stopped",
            reason=daemon.stop_reason,
            events=daemon.engine.counters.events,
            open_orders=daemon.engine.open_order_count,
            forced=self.forced_by,
        )
        return EXIT_FORCED_STOP if self.forced else daemon.exit_code

    async def _step(self, name: str, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(work)
        if self.forced:
            await asyncio.wait({task}, timeout=FORCED_STEP_GRACE_S)
        else:
            forced = asyncio.ensure_future(self._force.wait())
            try:
                remaining = max(0.0, self._deadline - time.monotonic())
                await asyncio.wait({task, forced}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                forced.cancel()
        if not task.done():
            self.force(f"timeout: shutdown.timeout_s ({self.config.timeout_s} s) passed")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            log.error("shutdown_step_abandoned", step=name)
            return
        error = task.exception()
        if error is not None:
            if name.startswith("service:"):
                log.warning("service_stop_failed", service=name[8:], error=f"{type(error).__name__}: {error}")
            else:
                log.warning("shutdown_step_failed", step=name, error=f"{type(error).__name__}: {error}")

    async def _settle_open_orders(self) -> None:
        engine = self.daemon.engine
        count = engine.open_order_count
        if count == 0:
            return
        if not self.config.cancel_open_orders:
            log.warning("open_orders_kept", count=count, note="left working at the venue (shutdown.cancel_open_orders)")
            return
        engine.cancel_all_orders()
        waited_until = time.monotonic() + self.config.cancel_wait_s
        while engine.open_order_count and time.monotonic() < waited_until:
            await asyncio.sleep(CANCEL_POLL_S)
        remaining = engine.open_order_count
        if remaining:
            log.warning("open_orders_cancel_unconfirmed", requested=count, still_open=remaining)
        else:
            log.info("open_orders_canceled", count=count)


async def _call_all(callbacks: Sequence[Callable[[], Awaitable[None]]]) -> None:
    for callback in callbacks:
        try:
            await callback()
        except Exception as exc:  # noqa: BLE001 - one failing announcement must not stop the stop
            log.warning("stopping_callback_failed", error=f"{type(exc).__name__}: {exc}")
