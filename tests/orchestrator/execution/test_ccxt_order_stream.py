"""The ccxt adapter's order stream: the real ccxt.pro binance client's
``watch_orders`` over a websocket to the loopback user-data stream double,
the real REST client over HTTP to the REST double.

Timing: with a 30 s poll interval, only a push can explain an update that
arrives within a few seconds; no test asserts on wall-clock durations
beyond such generous timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from ccxt_support import Recorder, intent, wait_for
from structlog.testing import capture_logs

from orchestrator.errors import ConfigError
from orchestrator.execution.ccxt.adapter import CcxtExchange
from orchestrator.execution.ccxt.config import CcxtVenueConfig
from orchestrator.execution.ccxt.double import API_KEY, SECRET, BinanceDouble, Fault
from orchestrator.execution.ccxt.order_stream import PollSchedule, StreamState, open_stream_client
from orchestrator.execution.ccxt.quirks import quirks_for
from orchestrator.execution.ccxt.ws_double import BinanceStreams
from orchestrator.orders import OrderStatus, OrderType

LONG_POLL_S = 30.0  # far longer than any wait below: an update that comes in time was pushed
PUSH_TIMEOUT_S = 5.0
KEYS = {"apiKey": API_KEY, "secret": SECRET}

Venue = tuple[CcxtExchange, Recorder]
StartVenue = Callable[..., Awaitable[Venue]]


@pytest.fixture
def streams(binance_double: BinanceDouble) -> Iterator[BinanceStreams]:
    server = BinanceStreams(binance_double).start()
    yield server
    server.close()


@pytest.fixture
async def start_venue(binance_double: BinanceDouble, streams: BinanceStreams) -> AsyncIterator[StartVenue]:
    started: list[CcxtExchange] = []

    async def start(**settings: Any) -> Venue:
        config = CcxtVenueConfig.model_validate(
            {
                "exchange": "binance",
                "api_urls": {**binance_double.api_urls(), "ws.ws-api.spot": streams.api_url},
                "transport": "websocket",
                "timeout_ms": 2000,
                "poll_interval_s": LONG_POLL_S,
                "poll_interval_stream_s": LONG_POLL_S,
                "backoff_initial_s": 0.02,
                "backoff_max_s": 0.2,
                **settings,
            }
        )
        adapter = CcxtExchange("binance", config, credentials=dict(KEYS))
        recorder = Recorder()
        adapter.bind(recorder)
        await adapter.start()
        started.append(adapter)
        return adapter, recorder

    yield start
    for adapter in started:
        await adapter.stop()


def stream_state(adapter: CcxtExchange) -> StreamState | None:
    return None if adapter._stream is None else adapter._stream.state


async def resting_order(adapter: CcxtExchange, recorder: Recorder, client_order_id: str = "olimit") -> None:
    adapter.submit(intent(client_order_id, order_type=OrderType.LIMIT, limit_price=40_000.0))
    await wait_for(lambda: any(u.status is OrderStatus.OPEN for u in recorder.updates))


def filled(recorder: Recorder) -> float:
    return sum(f.quantity for f in recorder.fills)


async def test_a_fill_at_the_venue_is_pushed_long_before_the_poll(
    start_venue: StartVenue, binance_double: BinanceDouble, streams: BinanceStreams
) -> None:
    adapter, recorder = await start_venue()
    await resting_order(adapter, recorder)
    # Live once the venue has pushed the order's NEW report over the subscribed stream.
    await wait_for(lambda: stream_state(adapter) is StreamState.LIVE, PUSH_TIMEOUT_S)
    assert streams.api_requests == ["userDataStream.subscribe.signature"]

    binance_double.execute("olimit", quantity=0.004)
    await wait_for(lambda: filled(recorder) > 0.0, PUSH_TIMEOUT_S)
    assert recorder.updates[-1].status is OrderStatus.PARTIALLY_FILLED
    assert filled(recorder) == pytest.approx(0.004)

    binance_double.execute("olimit")
    await wait_for(lambda: recorder.final("olimit"), PUSH_TIMEOUT_S)
    assert recorder.final("olimit").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert filled(recorder) == pytest.approx(0.01)
    assert recorder.sequence[-2:] == ["fill", "filled"]  # the one poll path: fills before the end
    assert streams.user_subscriptions == 1


async def test_a_cancel_at_the_venue_is_pushed(
    start_venue: StartVenue, binance_double: BinanceDouble, streams: BinanceStreams
) -> None:
    adapter, recorder = await start_venue()
    await resting_order(adapter, recorder)
    await wait_for(lambda: stream_state(adapter) is StreamState.LIVE, PUSH_TIMEOUT_S)
    # Canceled by someone else (the venue's web page, an operator): Binance's report names the
    # order's own client id in C and the cancel request's in c.
    binance_double.cancel("olimit")
    await wait_for(lambda: recorder.final("olimit"), PUSH_TIMEOUT_S)
    assert recorder.final("olimit").status is OrderStatus.CANCELED  # type: ignore[union-attr]


async def test_a_push_that_beats_the_create_answer_is_not_lost(
    start_venue: StartVenue, binance_double: BinanceDouble, streams: BinanceStreams
) -> None:
    adapter, recorder = await start_venue()
    await wait_for(lambda: streams.user_subscriptions == 1, PUSH_TIMEOUT_S)
    # The venue takes the order at once but its answer (the order as it was: NEW) comes a second later.
    binance_double.inject(Fault("POST", "/api/v3/order", "timeout_after_accept", delay_s=1.0))
    adapter.submit(intent("oearly", order_type=OrderType.LIMIT, limit_price=40_000.0))
    await wait_for(lambda: binance_double.orders_with("oearly"), PUSH_TIMEOUT_S)
    binance_double.execute("oearly")  # pushed while the create answer is still on its way
    await wait_for(lambda: recorder.final("oearly"), PUSH_TIMEOUT_S)
    assert recorder.final("oearly").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert filled(recorder) == pytest.approx(0.01)
    assert len(binance_double.orders_with("oearly")) == 1
    assert not adapter._pushed_early


async def test_the_stream_reconnects_and_subscribes_again_after_a_drop(
    start_venue: StartVenue, binance_double: BinanceDouble, streams: BinanceStreams
) -> None:
    adapter, recorder = await start_venue()
    await resting_order(adapter, recorder)
    await wait_for(lambda: stream_state(adapter) is StreamState.LIVE, PUSH_TIMEOUT_S)
    streams.drop()
    await wait_for(lambda: streams.user_subscriptions == 2, PUSH_TIMEOUT_S)
    binance_double.execute("olimit")
    await wait_for(lambda: recorder.final("olimit"), PUSH_TIMEOUT_S)
    assert recorder.final("olimit").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert filled(recorder) == pytest.approx(0.01)


async def test_a_subscription_the_venue_fails_is_asked_again_on_a_new_connection(
    start_venue: StartVenue, binance_double: BinanceDouble, streams: BinanceStreams
) -> None:
    streams.busy_subscribes = 2  # -1001 "internal error, try again", twice
    adapter, recorder = await start_venue()
    await wait_for(lambda: streams.user_subscriptions == 1, PUSH_TIMEOUT_S)
    assert streams.api_requests == ["userDataStream.subscribe.signature"] * 3
    assert streams.api_connections == 3
    await resting_order(adapter, recorder)
    binance_double.execute("olimit")
    await wait_for(lambda: recorder.final("olimit"), PUSH_TIMEOUT_S)
    assert recorder.final("olimit").status is OrderStatus.FILLED  # type: ignore[union-attr]


async def test_with_the_stream_down_polling_still_reports_the_fill(
    start_venue: StartVenue, binance_double: BinanceDouble, streams: BinanceStreams
) -> None:
    # Slow polling while the stream delivers, quick polling otherwise.
    adapter, recorder = await start_venue(poll_interval_s=0.1)
    await resting_order(adapter, recorder)
    await wait_for(lambda: stream_state(adapter) is StreamState.LIVE, PUSH_TIMEOUT_S)
    assert adapter._poll_interval() == LONG_POLL_S
    streams.close()  # the venue's stream is gone for good: nothing is pushed any more
    await wait_for(lambda: stream_state(adapter) is not StreamState.LIVE, PUSH_TIMEOUT_S)
    assert adapter._poll_interval() == 0.1
    binance_double.execute("olimit")
    await wait_for(lambda: recorder.final("olimit"), PUSH_TIMEOUT_S)
    assert recorder.final("olimit").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert filled(recorder) == pytest.approx(0.01)
    assert adapter._stream is not None
    assert adapter._stream.running  # still trying to reconnect


async def test_a_refused_stream_is_logged_once_and_polling_carries_on(
    start_venue: StartVenue, binance_double: BinanceDouble, streams: BinanceStreams
) -> None:
    streams.refuse_auth = True
    with capture_logs() as logs:
        adapter, recorder = await start_venue(poll_interval_s=0.1)
        await wait_for(lambda: stream_state(adapter) is StreamState.DISABLED, PUSH_TIMEOUT_S)
        await resting_order(adapter, recorder)
        binance_double.execute("olimit")
        await wait_for(lambda: recorder.final("olimit"), PUSH_TIMEOUT_S)
    assert recorder.final("olimit").status is OrderStatus.FILLED  # type: ignore[union-attr]
    (disabled,) = [entry for entry in logs if entry["event"] == "venue_order_stream_disabled"]
    assert str(disabled["error"]).startswith("AuthenticationError")
    assert streams.api_requests == ["userDataStream.subscribe.signature"]  # asked once, never again
    assert streams.user_subscriptions == 0
    assert adapter._stream is not None
    assert not adapter._stream.running


async def test_transport_rest_never_opens_the_user_stream(
    start_venue: StartVenue, binance_double: BinanceDouble, streams: BinanceStreams
) -> None:
    adapter, recorder = await start_venue(transport="rest", poll_interval_s=0.05)
    await resting_order(adapter, recorder)
    binance_double.execute("olimit")
    await wait_for(lambda: recorder.final("olimit"))
    assert recorder.final("olimit").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert adapter._stream is None
    assert streams.api_connections == 0
    assert streams.api_requests == []


async def test_stop_ends_the_stream_task_and_its_connection(
    start_venue: StartVenue, binance_double: BinanceDouble, streams: BinanceStreams
) -> None:
    adapter, recorder = await start_venue()
    await resting_order(adapter, recorder)
    await wait_for(lambda: stream_state(adapter) is StreamState.LIVE, PUSH_TIMEOUT_S)
    stream = adapter._stream
    assert stream is not None
    assert streams.open_user_streams == 1
    await adapter.stop()
    assert not stream.running
    assert adapter._stream is None
    await wait_for(lambda: streams.open_user_streams == 0, PUSH_TIMEOUT_S)  # the venue saw the socket close


def test_transport_resolution() -> None:
    binance = quirks_for("binance")
    client = open_stream_client("binance", CcxtVenueConfig(exchange="binance"), binance, KEYS)
    assert client is not None
    assert client.has["watchOrders"]
    assert open_stream_client("binance", CcxtVenueConfig(exchange="binance", transport="rest"), binance, KEYS) is None
    paymium = quirks_for("paymium")
    assert open_stream_client("x", CcxtVenueConfig(exchange="paymium"), paymium, KEYS) is None  # no ccxt.pro class
    with pytest.raises(ConfigError, match=r"no ccxt\.pro watch_orders"):
        open_stream_client("x", CcxtVenueConfig(exchange="paymium", transport="websocket"), paymium, KEYS)


async def test_poll_schedule_polls_pushed_orders_at_once_and_all_orders_every_interval() -> None:
    now, interval = [0.0], [30.0]
    schedule = PollSchedule(lambda: interval[0], clock=lambda: now[0])
    schedule.wake(["oa", "ob"])
    assert await schedule.next() == {"oa", "ob"}
    now[0] = 31.0
    schedule.wake(["oa"])
    assert await schedule.next() is None  # a full poll is due, and covers oa
    waiting = asyncio.create_task(schedule.next())  # the next full poll: 30 s after this one ended
    await asyncio.sleep(0.01)
    assert not waiting.done()
    now[0], interval[0] = 40.0, 5.0  # the stream went down: the interval is short again
    schedule.wake()
    assert await asyncio.wait_for(waiting, 5.0) is None
