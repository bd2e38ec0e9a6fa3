"""Order updates pushed by the venue (ccxt.pro ``watch_orders``), used to poll sooner.

A push is a wake-up, not a source of truth: ``CcxtExchange`` polls each
order a push names at once, through the same REST path as every other poll,
so fills, statuses and unreadable answers are handled in one place and a
pushed message can never become a state by itself. Polling goes on as the
safety net, because pushes are lost while a connection is down and a venue
may push nothing at all: every ``poll_interval_stream_s`` while the stream
delivers, every ``poll_interval_s`` otherwise (``PollSchedule``).

The ccxt.pro client is a second client of the same account: same
credentials, sandbox switch and ``api_urls`` overrides as the REST one (a
dotted key such as ``ws.ws-api.spot`` moves Binance's user-data stream), and
it shares the REST client's markets instead of downloading them again.
Network errors reconnect after the adapter's bounded, jittered backoff, on a
fresh connection (the next ``watch_orders`` connects and subscribes again);
a refusal (AuthenticationError, PermissionDenied, NotSupported, ...) is
logged once and the stream stays off, leaving the orders to polling alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from orchestrator.errors import ConfigError
from orchestrator.execution.ccxt.client import create_client
from orchestrator.execution.ccxt.config import CcxtVenueConfig
from orchestrator.execution.ccxt.errors import classify, describe
from orchestrator.execution.ccxt.quirks import VenueQuirks
from orchestrator.execution.ccxt.retry import Backoff

log = structlog.get_logger("orchestrator.ccxt")


class StreamState(enum.Enum):
    CONNECTING = "connecting"  # watching, nothing delivered since the last (re)connect
    LIVE = "live"  # delivered since the last (re)connect: polling may slow down
    RETRYING = "retrying"  # failed, reconnecting after a backoff
    DISABLED = "disabled"  # refused for good: polling only


@dataclass(frozen=True, slots=True)
class OrderWakeUp:
    """An order the venue pushed news about; which news is for the poll to read."""

    client_order_id: str | None
    venue_order_id: str | None


def open_stream_client(
    venue: str, config: CcxtVenueConfig, quirks: VenueQuirks, credentials: Mapping[str, str]
) -> Any | None:
    """The ccxt.pro client whose ``watch_orders`` follows this account, or
    ``None`` to poll only (``transport: rest``, or ``auto`` on a venue
    without the stream). ``transport: websocket`` on such a venue is a
    ``ConfigError``. Nothing connects until the first ``watch_orders``."""
    if config.transport == "rest":
        return None
    import ccxt.pro

    if config.exchange in getattr(ccxt.pro, "exchanges", []):
        client = create_client(venue, config, quirks, credentials, pro=True)
        if client.has.get("watchOrders"):
            return client
    if config.transport == "websocket":
        raise ConfigError(
            [
                f"execution.venues.{venue}.transport: {config.exchange} has no ccxt.pro watch_orders stream; "
                "use transport: auto or rest"
            ]
        )
    return None  # an unused client never opened a session: nothing to close


def venue_cause(exc: BaseException) -> BaseException:
    """The venue's error behind an error ccxt raised while handling it.

    ccxt 4.5.90's binance drops a refused user-data subscription twice and
    so raises ``KeyError: 'spot'`` from its cleanup, with the venue's answer
    (an AuthenticationError, say) as the KeyError's context; the policy must
    judge that answer, not the KeyError."""
    import ccxt

    cause: BaseException | None = exc
    for _ in range(5):  # a short chain; never follow a cycle
        if cause is None or isinstance(cause, ccxt.BaseError):
            break
        cause = cause.__context__
    return cause if isinstance(cause, ccxt.BaseError) else exc


def wake_ups(orders: Any) -> tuple[OrderWakeUp, ...]:
    """The ids in a ``watch_orders`` answer (ccxt order structures)."""
    found: list[OrderWakeUp] = []
    for order in orders if isinstance(orders, list) else []:
        if not isinstance(order, dict):
            continue
        client_id, venue_id = order.get("clientOrderId"), order.get("id")
        if client_id or venue_id is not None:
            found.append(
                OrderWakeUp(str(client_id) if client_id else None, None if venue_id is None else str(venue_id))
            )
    return tuple(found)


class OrderStream:
    """One task looping over ``watch_orders``; hands each push's ids to
    ``on_orders`` and each change of state to ``on_state``."""

    def __init__(
        self,
        venue: str,
        client: Any,
        backoff: Backoff,
        on_orders: Callable[[tuple[OrderWakeUp, ...]], None],
        on_state: Callable[[StreamState], None],
    ) -> None:
        self.venue = venue
        self.client = client
        self.backoff = backoff
        self.state = StreamState.CONNECTING
        self._on_orders = on_orders
        self._on_state = on_state
        self._task: asyncio.Task[None] | None = None

    def start(self, rest_client: Any) -> None:
        """Start watching, with the markets the REST client loaded (not downloaded twice)."""
        self.client.set_markets_from_exchange(rest_client)
        self._task = asyncio.create_task(self._run(), name=f"{self.venue}-order-stream")

    async def stop(self) -> None:
        # The task first: closing the client under a pending watch would look like a stream error.
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.client.close()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _set(self, state: StreamState) -> None:
        if state is not self.state:
            self.state = state
            log.info("venue_order_stream", venue=self.venue, state=state.value)
            self._on_state(state)

    async def _run(self) -> None:
        try:
            await self._watch()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken stream must never take the adapter down
            log.error("venue_order_stream_failed", venue=self.venue, error=describe(exc))
            self._set(StreamState.DISABLED)

    async def _watch(self) -> None:
        failures = 0
        while True:
            try:
                orders = await self.client.watch_orders()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified by the policy
                cause = venue_cause(exc)
                kind = classify(cause)
                if not kind.retryable:
                    # Bad keys or no permission: retrying cannot help and would flood the log.
                    log.error("venue_order_stream_disabled", venue=self.venue, error=describe(cause))
                    self._set(StreamState.DISABLED)
                    await self.client.close()  # frees the socket; polling goes on without it
                    return
                delay = self.backoff.delay(min(failures, 10), kind)
                failures += 1
                log.warning(
                    "venue_order_stream_retry",
                    venue=self.venue,
                    attempt=failures,
                    delay_s=round(delay, 3),
                    error=describe(cause),
                )
                self._set(StreamState.RETRYING)
                await self._drop_connections()
                await asyncio.sleep(delay)
                self._set(StreamState.CONNECTING)
                continue
            failures = 0
            self._set(StreamState.LIVE)
            self._on_orders(wake_ups(orders))

    async def _drop_connections(self) -> None:
        # Every retry starts on a new connection: after some errors (binance: a refused
        # subscription) ccxt's old one keeps a half-done subscription, a pending
        # "authenticate:signature:spot" future, that the next watch_orders would wait on forever.
        with contextlib.suppress(Exception):
            await self.client.close_ws_clients()


class PollSchedule:
    """When the poller runs: every working order each ``interval()`` seconds,
    counted from the end of the last full poll (read again at every wait, so
    a stream going down shortens the wait at once), and the orders a push
    named as soon as it names them."""

    def __init__(self, interval: Callable[[], float], clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last_full = clock()
        self._polling_all = False
        self._due: set[str] = set()
        self._woken = asyncio.Event()

    def wake(self, client_order_ids: Iterable[str] = ()) -> None:
        """Poll these orders now; with none, just look at the interval again."""
        self._due.update(client_order_ids)
        self._woken.set()

    async def next(self) -> frozenset[str] | None:
        """The client ids to poll now, or ``None`` for every working order."""
        if self._polling_all:
            self._polling_all = False
            self._last_full = self._clock()  # a pause between full polls, however long one took
        while True:
            remaining = self._last_full + self._interval() - self._clock()
            if remaining <= 0.0:
                self._polling_all = True
                self._due.clear()  # the full poll covers them
                return None
            if self._due:
                due = frozenset(self._due)
                self._due.clear()
                return due
            self._woken.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._woken.wait()
