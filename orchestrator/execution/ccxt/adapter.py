"""``CcxtExchange``: one account at one live venue, through ccxt's async API.

``submit`` and ``cancel`` only queue; a sending task does the network work,
one request at a time, so the event path never waits for the venue. Before
an order leaves, it is checked against the venue's market (listed, amount
and price rounded to precision, minimum amount and notional) and its intent
is awaited durable in the journal (``intent_gate``). Then:

- the order is sent with its client order id (``quirks.create_param``);
- a refusal (InvalidOrder, InsufficientFunds, BadSymbol, AuthenticationError)
  is final: the order is REJECTED with the venue's reason, never resent;
- a rate limit backs off and resends the same request (same client id);
- a timeout, other network error or unreadable answer leaves the outcome
  unknown: the order is looked up by client id (``submit_lookups`` times,
  with backoff) and only when the venue does not know it is it resent, with
  the same client id;
- an answer with an order id but no readable status (venues that only
  acknowledge) is followed by polling.

A cancel is retried like a read; one that still fails is sent again by the
poller while the order works, so a halt cannot leave an order resting.

A polling task follows working orders: new executions are reported as fills
before the status that ends an order, so the core never sees an order done
whose fills it has not counted. Where the venue pushes order updates
(ccxt.pro ``watch_orders``, ``order_stream.py``), a push makes the poller ask
about the orders it names at once; the push itself is never read as a state.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import structlog

from orchestrator.events import MarketEvent, event_price
from orchestrator.execution.ccxt.account import CcxtAccount, wall_ms
from orchestrator.execution.ccxt.client import create_client
from orchestrator.execution.ccxt.config import CcxtVenueConfig
from orchestrator.execution.ccxt.convert import order_update, trade_fill, venue_order_id
from orchestrator.execution.ccxt.errors import ErrorKind, VenueAnswerError, VenueError, classify, describe
from orchestrator.execution.ccxt.order_stream import (
    OrderStream,
    OrderWakeUp,
    PollSchedule,
    StreamState,
    open_stream_client,
)
from orchestrator.execution.gate import IntentGate
from orchestrator.orders import Fill, OrderIntent, OrderStatus, OrderType, OrderUpdate

log = structlog.get_logger("orchestrator.ccxt")

SYNTHETIC_FILL_AFTER_POLLS = 5  # a done order whose trades never show gets one fill for the rest


class _Unknown:
    """The venue did not answer whether it has an order."""


UNKNOWN = _Unknown()


@dataclass(slots=True)
class _Working:
    intent: OrderIntent
    venue_order_id: str | None
    status: OrderStatus = OrderStatus.PENDING  # as last reported
    filled: float = 0.0  # reported to the core as fills
    fill_ids: set[str] = field(default_factory=set)
    reported_filled: float = 0.0  # filled quantity of the last reported update
    polls_short: int = 0  # polls since the venue said done but fills were missing
    misses: int = 0  # polls that did not find an unconfirmed order
    cancel_failed: bool = False  # a cancel was asked for and not delivered: the poller sends it again


class CcxtExchange(CcxtAccount):
    def __init__(
        self,
        name: str,
        config: CcxtVenueConfig,
        *,
        credentials: dict[str, str] | None = None,
        intent_gate: IntentGate | None = None,
    ) -> None:
        super().__init__(name, config, credentials=credentials)
        self.intent_gate = intent_gate
        self._requests: asyncio.Queue[tuple[str, OrderIntent | str]] = asyncio.Queue()
        self._working: dict[str, _Working] = {}
        self._marks: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._unsent_cancels: set[str] = set()
        self._stream: OrderStream | None = None
        self._schedule = PollSchedule(self._poll_interval)
        self._pushed_early: set[str] = set()  # pushed about while their create was still in flight
        self.sent = 0  # create-order requests sent (resends included)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        stream_client = open_stream_client(self.name, self.config, self.quirks, self.credentials)
        self.client = create_client(self.name, self.config, self.quirks, self.credentials)
        try:
            await self._read("load markets", self.client.load_markets)
        except BaseException:
            await self.client.close()
            raise
        self._tasks = [
            asyncio.create_task(self._send_loop(), name=f"{self.name}-send"),
            asyncio.create_task(self._poll_loop(), name=f"{self.name}-poll"),
        ]
        if stream_client is not None:
            # A new stream state may mean a new poll interval: the schedule looks again.
            self._stream = OrderStream(
                self.name, stream_client, self.backoff, self._on_pushed, lambda _: self._schedule.wake()
            )
            self._stream.start(self.client)  # connects in its own task: trading never waits for it
        log.info(
            "venue_ready",
            venue=self.name,
            exchange=self.config.exchange,
            sandbox=self.config.sandbox,
            markets=len(self.client.markets or {}),
            order_stream=self._stream is not None,
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        if self.client is not None:
            await self.client.close()

    def on_market(self, event: MarketEvent) -> None:
        # Only the price, to check a market order's notional against the venue's minimum.
        self._marks[event.symbol] = event_price(event)

    # ------------------------------------------------------------ event path

    def submit(self, intent: OrderIntent) -> None:
        if intent.client_order_id in self._intents:
            return  # idempotent: already queued or working
        self._intents[intent.client_order_id] = intent
        self._requests.put_nowait(("create", intent))

    def cancel(self, client_order_id: str) -> None:
        if client_order_id in self._intents and client_order_id not in self._working:
            self._unsent_cancels.add(client_order_id)  # not sent yet: it never will be
        self._requests.put_nowait(("cancel", client_order_id))

    # ------------------------------------------------------------ sending

    async def _send_loop(self) -> None:
        while True:
            kind, item = await self._requests.get()
            try:
                if kind == "create":
                    assert isinstance(item, OrderIntent)
                    await self._create(item)
                else:
                    assert isinstance(item, str)
                    await self._cancel(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad request must not stop the sender
                log.error("venue_request_failed", venue=self.name, request=kind, error=describe(exc))
            if isinstance(item, OrderIntent) and item.client_order_id in self._pushed_early:
                # The venue's push beat its create answer: ask now, not at the next full poll.
                self._pushed_early.discard(item.client_order_id)
                self._schedule.wake([item.client_order_id])

    def _checked(self, intent: OrderIntent) -> tuple[float, float | None] | str:
        """(amount, price) rounded to the venue's precision, or why the order cannot go."""
        client = self.client
        market = (client.markets or {}).get(intent.symbol)
        if market is None:
            return f"BadSymbol: {intent.symbol} is not a {self.config.exchange} market"
        problem = self.quirks.check_client_id(intent.client_order_id)
        if problem:
            return f"InvalidOrder: {problem}"
        try:
            amount = float(client.amount_to_precision(intent.symbol, intent.quantity))
            price = None
            if intent.order_type is OrderType.LIMIT and intent.limit_price is not None:
                price = float(client.price_to_precision(intent.symbol, intent.limit_price))
        except Exception as exc:  # noqa: BLE001 - ccxt raises InvalidOrder (or worse) on amounts it cannot round
            return f"InvalidOrder: cannot round to the venue's precision: {describe(exc)}"
        limits = market.get("limits") or {}
        min_amount = (limits.get("amount") or {}).get("min")
        if not amount > 0.0 or (min_amount is not None and amount < float(min_amount)):
            return f"InvalidOrder: amount {intent.quantity:g} rounds to {amount:g}, below the minimum {min_amount}"
        min_cost = (limits.get("cost") or {}).get("min")
        reference = price if price is not None else self._marks.get(intent.symbol)
        if min_cost is not None and reference is not None and amount * reference < float(min_cost):
            return f"InvalidOrder: notional {amount * reference:.2f} below the venue's minimum {min_cost}"
        return amount, price

    async def _create(self, intent: OrderIntent) -> None:
        checked = self._checked(intent)
        if isinstance(checked, str):
            self._report_final(intent, OrderStatus.REJECTED, checked)
            return
        amount, price = checked
        if self.intent_gate is not None:
            try:
                await self.intent_gate(intent)
            except Exception as exc:  # noqa: BLE001 - not on disk means not sent
                self._report_final(intent, OrderStatus.REJECTED, f"not sent: {describe(exc)}")
                return
        if intent.client_order_id in self._unsent_cancels:
            # Canceled (e.g. by a halt) while it waited in the queue: it never leaves.
            self._unsent_cancels.discard(intent.client_order_id)
            self._report_final(intent, OrderStatus.CANCELED, "canceled before it was sent")
            return
        params: dict[str, Any] = {self.quirks.create_param: intent.client_order_id}
        if intent.reduce_only and self.config.market_type != "spot":
            params["reduceOnly"] = True
        order_type = "limit" if price is not None else "market"
        attempts = 0
        rate_waits = 0
        while True:
            attempts += 1
            try:
                self.sent += 1
                order = await self.client.create_order(
                    intent.symbol, order_type, intent.side.value, amount, price, dict(params)
                )
                accepted_id = venue_order_id(order)  # no id: not an order, so the outcome is unknown
            except Exception as exc:  # noqa: BLE001 - classified by the policy
                kind = classify(exc)
                if kind is ErrorKind.RATE_LIMITED and rate_waits < self.config.read_retries:
                    # Refused unprocessed: wait, then the same request with the same client id.
                    delay = self.backoff.delay(rate_waits, kind)
                    log.warning(
                        "venue_rate_limited",
                        venue=self.name,
                        client_order_id=intent.client_order_id,
                        delay_s=round(delay, 3),
                        error=describe(exc),
                    )
                    rate_waits += 1
                    attempts -= 1
                    await asyncio.sleep(delay)
                    continue
                if kind in (ErrorKind.REJECTED, ErrorKind.FATAL, ErrorKind.NOT_FOUND) and attempts == 1:
                    self._report_final(intent, OrderStatus.REJECTED, describe(exc))
                    if kind is ErrorKind.FATAL:
                        log.error("venue_authentication_failed", venue=self.name, error=describe(exc))
                    return
                # Unknown outcome (or a refusal of a resend, e.g. "duplicate order"): ask the venue.
                log.warning(
                    "venue_create_unconfirmed",
                    venue=self.name,
                    client_order_id=intent.client_order_id,
                    attempt=attempts,
                    error=describe(exc),
                )
                found = await self._lookup_after_send(intent)
                if isinstance(found, OrderUpdate):
                    self._track(intent, found)
                    return
                if found is UNKNOWN:
                    # Sent, maybe accepted, venue silent: never resend blind. The poller
                    # keeps looking it up; recovery does after a restart.
                    self._working[intent.client_order_id] = _Working(intent, None, OrderStatus.PENDING)
                    return
                if attempts >= self.config.max_submit_attempts or kind in (ErrorKind.REJECTED, ErrorKind.FATAL):
                    self._report_final(
                        intent, OrderStatus.REJECTED, f"not accepted after {attempts} attempt(s): {describe(exc)}"
                    )
                    return
                continue
            try:
                update = order_update(order, venue=self.name, intent=intent, now_ms=wall_ms())
            except VenueAnswerError as exc:
                # Accepted (it has an id), state unreadable (or only acknowledged): the poller asks again.
                if order.get("status") is not None:
                    log.error(
                        "venue_bad_answer", venue=self.name, client_order_id=intent.client_order_id, error=describe(exc)
                    )
                self._unsent_cancels.discard(intent.client_order_id)
                self._working[intent.client_order_id] = _Working(intent, accepted_id)
                return
            # Executions embedded in a create answer may come without ids; the poll fetches those properly.
            trades = [t for t in order.get("trades") or [] if isinstance(t, dict) and t.get("id") is not None]
            self._track(intent, update, trades)
            return

    async def _lookup_after_send(self, intent: OrderIntent) -> OrderUpdate | _Unknown | None:
        """Look the order up by client id: the order, ``None`` once the venue
        said ``submit_lookups`` times that it does not know it, or ``UNKNOWN``
        when the venue would not answer (then nothing may be resent)."""
        misses = failures = 0
        while misses < self.config.submit_lookups:
            try:
                found = await self._find(intent.client_order_id, intent.symbol)
            except Exception as exc:  # noqa: BLE001 - an unanswered lookup is no answer
                log.warning(
                    "venue_lookup_failed", venue=self.name, client_order_id=intent.client_order_id, error=describe(exc)
                )
                failures += 1
                if failures > self.config.read_retries:
                    return UNKNOWN
                await asyncio.sleep(self.backoff.delay(failures, classify(exc)))
                continue
            if found is not None:
                return found
            misses += 1
            await asyncio.sleep(self.backoff.delay(misses))
        return None

    async def _cancel(self, client_order_id: str) -> None:
        working = self._working.get(client_order_id)
        if working is None or working.status.is_terminal:
            return
        await self._send_cancel(working)
        await self._refresh(working)

    async def _send_cancel(self, working: _Working) -> None:
        intent = working.intent
        client_order_id = intent.client_order_id

        async def cancel() -> Any:
            if working.venue_order_id is not None:
                return await self.client.cancel_order(working.venue_order_id, intent.symbol)
            return await self.client.cancel_order(None, intent.symbol, {self.quirks.lookup_param: client_order_id})

        try:
            await self._read("cancel order", cancel)  # idempotent, so retried like a read
        except VenueError as exc:
            # NOT_FOUND: already done (the poll below says how); otherwise try again next poll.
            working.cancel_failed = exc.kind is not ErrorKind.NOT_FOUND
            if working.cancel_failed:
                log.warning("venue_cancel_failed", venue=self.name, client_order_id=client_order_id, error=str(exc))
            return
        working.cancel_failed = False

    # ------------------------------------------------------------ following orders

    def _track(self, intent: OrderIntent, update: OrderUpdate, trades: list[dict[str, Any]] | None = None) -> None:
        self._unsent_cancels.discard(intent.client_order_id)  # in flight when canceled: the queued cancel acts
        working = _Working(intent, update.venue_order_id)
        self._working[intent.client_order_id] = working
        self._apply(working, update, trades or [])

    def resume(self, intent: OrderIntent, update: OrderUpdate, known_fills: set[str]) -> None:
        self._intents[intent.client_order_id] = intent
        filled = update.filled_quantity
        working = _Working(intent, update.venue_order_id, update.status, filled, set(known_fills), filled)
        self._working[intent.client_order_id] = working

    def _apply(self, working: _Working, update: OrderUpdate, trades: list[dict[str, Any]]) -> None:
        """Report new fills, then the order's status (a terminal one only once its fills are in)."""
        intent = working.intent
        for trade in trades:
            try:
                fill = trade_fill(trade, venue=self.name, intent=intent)
            except VenueAnswerError as exc:
                # Skipped, not guessed: a done order's missing quantity gets one fill at its average price.
                log.error(
                    "venue_bad_trade", venue=self.name, client_order_id=intent.client_order_id, error=describe(exc)
                )
                continue
            if fill.fill_id in working.fill_ids:
                continue
            working.fill_ids.add(fill.fill_id)
            working.filled += fill.quantity
            self.listener.on_fill(fill)
        missing = update.filled_quantity - working.filled
        if update.status.is_terminal and missing > 1e-12 * max(1.0, update.quantity):
            working.polls_short += 1
            if working.polls_short < SYNTHETIC_FILL_AFTER_POLLS or not self._synthetic_fill(working, update, missing):
                return  # its trades are not visible yet: keep polling, report nothing final
        if update.status is not working.status or update.filled_quantity != working.reported_filled:
            working.status = update.status
            working.reported_filled = update.filled_quantity
            self.listener.on_order_update(update)
        if update.status.is_terminal:
            self._working.pop(intent.client_order_id, None)
            self._intents.pop(intent.client_order_id, None)

    def _synthetic_fill(self, working: _Working, update: OrderUpdate, quantity: float) -> bool:
        """One fill for what the venue's trades never showed, at the order's
        average price; ``False`` (keep polling) when no price is known."""
        intent = working.intent
        price = update.average_price or intent.limit_price or self._marks.get(intent.symbol)
        log.warning(
            "venue_fills_missing",
            venue=self.name,
            client_order_id=intent.client_order_id,
            quantity=quantity,
            price=price,
        )
        if not price:
            return False
        fill = Fill(
            fill_id=f"{update.venue_order_id or intent.client_order_id}-rest",
            client_order_id=intent.client_order_id,
            trace_id=intent.trace_id,
            ts=update.ts,
            venue=self.name,
            symbol=intent.symbol,
            side=intent.side,
            quantity=quantity,
            price=price,
            fee=0.0,
            fee_currency="",
        )
        working.fill_ids.add(fill.fill_id)
        working.filled += quantity
        self.listener.on_fill(fill)
        return True

    def _report_final(self, intent: OrderIntent, status: OrderStatus, reason: str) -> None:
        self._intents.pop(intent.client_order_id, None)
        log.warning("order_rejected", venue=self.name, client_order_id=intent.client_order_id, reason=reason)
        self.listener.on_order_update(
            OrderUpdate(
                client_order_id=intent.client_order_id,
                trace_id=intent.trace_id,
                ts=wall_ms(),
                venue=self.name,
                symbol=intent.symbol,
                side=intent.side,
                quantity=intent.quantity,
                status=status,
                reason=reason,
            )
        )

    def _poll_interval(self) -> float:
        stream = self._stream
        if stream is None or stream.state is not StreamState.LIVE:
            return self.config.poll_interval_s
        # What no push will say: whether an unconfirmed order exists, whether trades a done
        # order lacks have shown up, and a failed cancel waits for the poller to resend it.
        if any(w.venue_order_id is None or w.polls_short or w.cancel_failed for w in self._working.values()):
            return self.config.poll_interval_s
        return max(self.config.poll_interval_s, self.config.poll_interval_stream_s)

    def _on_pushed(self, pushed: tuple[OrderWakeUp, ...]) -> None:
        by_venue_id = {w.venue_order_id: cid for cid, w in self._working.items() if w.venue_order_id}
        for push in pushed:
            cid = push.client_order_id if push.client_order_id in self._intents else None
            cid = cid or by_venue_id.get(push.venue_order_id or "")
            if cid is None:
                continue  # not ours: another client's order, or one already done
            if cid in self._working:
                self._schedule.wake([cid])
            else:
                self._pushed_early.add(cid)  # the send loop wakes it once the create is done

    async def _poll_loop(self) -> None:
        while True:
            due = await self._schedule.next()
            for working in list(self._working.values()):
                if due is not None and working.intent.client_order_id not in due:
                    continue
                try:
                    await self._refresh(working)
                    if working.cancel_failed and working.intent.client_order_id in self._working:
                        await self._send_cancel(working)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - try again next poll
                    log.warning(
                        "venue_poll_failed",
                        venue=self.name,
                        client_order_id=working.intent.client_order_id,
                        error=describe(exc),
                    )

    async def _refresh(self, working: _Working) -> None:
        intent = working.intent
        update = await self.fetch_order(intent.client_order_id, intent.symbol, venue_order_id=working.venue_order_id)
        trades: list[dict[str, Any]] = []
        if update is not None and update.filled_quantity > working.filled + 1e-12:
            trades = await self._order_trades(intent, working.venue_order_id or update.venue_order_id)
        if self._working.get(intent.client_order_id) is not working:
            return  # ended while we asked (a cancel's refresh raced this poll): this answer is older news
        if update is None:
            working.misses += 1
            if working.venue_order_id is None and working.misses >= self.config.submit_lookups:
                # Sent once, never confirmed: alert and stop; it is not resent.
                self._working.pop(intent.client_order_id, None)
                self._report_final(intent, OrderStatus.LOST, f"unconfirmed after {working.misses} lookups")
            return
        working.venue_order_id = working.venue_order_id or update.venue_order_id
        self._apply(working, update, trades)
