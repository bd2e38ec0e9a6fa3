"""The ccxt adapter with the real ccxt binance client over HTTP to the loopback double."""

from __future__ import annotations

import asyncio

import pytest
from ccxt_support import Recorder, intent, wait_for
from structlog.testing import capture_logs

from orchestrator.execution.ccxt.adapter import CcxtExchange
from orchestrator.execution.ccxt.config import CcxtVenueConfig
from orchestrator.execution.ccxt.double import API_KEY, SECRET, BinanceDouble, Fault
from orchestrator.execution.ccxt.errors import ErrorKind, VenueError
from orchestrator.orders import OrderIntent, OrderStatus, OrderType

ORDER_PATH = "/api/v3/order"


@pytest.fixture
async def venue(binance_double: BinanceDouble):
    config = CcxtVenueConfig(
        exchange="binance",
        api_urls=binance_double.api_urls(),
        transport="rest",  # REST polling alone; the order stream has its own tests
        timeout_ms=400,
        poll_interval_s=0.05,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
    )
    adapter = CcxtExchange("binance", config, credentials={"apiKey": API_KEY, "secret": SECRET})
    recorder = Recorder()
    adapter.bind(recorder)
    await adapter.start()
    yield adapter, recorder, binance_double
    await adapter.stop()


def posts(double: BinanceDouble) -> list[dict[str, str]]:
    return [params for method, path, params in double.requests if method == "POST" and path == ORDER_PATH]


async def test_order_carries_client_id_and_is_rounded_to_precision(venue) -> None:
    adapter, recorder, double = venue
    adapter.submit(intent(quantity=0.012345))
    await wait_for(lambda: recorder.final("ot1n0"))
    sent = posts(double)
    assert len(sent) == 1
    assert sent[0]["newClientOrderId"] == "ot1n0"
    assert sent[0]["quantity"] == "0.0123"  # the venue's 0.0001 step, truncated
    final = recorder.final("ot1n0")
    assert final is not None
    assert final.status is OrderStatus.FILLED
    assert sum(f.quantity for f in recorder.fills) == pytest.approx(0.0123)
    # the fills are reported before the status that ends the order
    assert recorder.sequence[-2:] == ["fill", "filled"]


async def test_timeout_after_accept_is_looked_up_not_resent(venue) -> None:
    adapter, recorder, double = venue
    double.inject(Fault("POST", ORDER_PATH, "timeout_after_accept", delay_s=1.0))
    adapter.submit(intent())
    await wait_for(lambda: recorder.final("ot1n0"))
    assert len(double.orders_with("ot1n0")) == 1
    assert len(posts(double)) == 1
    lookups = [p for m, path, p in double.requests if m == "GET" and path == ORDER_PATH]
    assert lookups
    assert lookups[0]["origClientOrderId"] == "ot1n0"
    assert recorder.final("ot1n0").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert sum(f.quantity for f in recorder.fills) == pytest.approx(0.01)


@pytest.mark.parametrize("status", [429, 418])
async def test_rate_limit_backs_off_and_resends_with_the_same_id(venue, status: int) -> None:
    adapter, recorder, double = venue
    double.inject(Fault("POST", ORDER_PATH, "http", status=status, body={"code": -1003, "msg": "Too many requests"}))
    adapter.submit(intent())
    await wait_for(lambda: recorder.final("ot1n0"))
    sent = posts(double)
    assert [p["newClientOrderId"] for p in sent] == ["ot1n0", "ot1n0"]
    assert double.count("GET", ORDER_PATH) == 0  # refused unprocessed: nothing to look up
    assert len(double.orders_with("ot1n0")) == 1
    assert recorder.final("ot1n0").status is OrderStatus.FILLED  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"code": -2010, "msg": "Account has insufficient balance for requested action."}, "InsufficientFunds"),
        (400, {"code": -1121, "msg": "Invalid symbol."}, "BadSymbol"),
        (400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"}, "InvalidOrder"),
        (401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}, "AuthenticationError"),
    ],
)
async def test_refusals_are_never_retried(venue, status: int, body: dict[str, object], expected: str) -> None:
    adapter, recorder, double = venue
    double.inject(Fault("POST", ORDER_PATH, "http", status=status, body=body))
    adapter.submit(intent())
    await wait_for(lambda: recorder.final("ot1n0"))
    final = recorder.final("ot1n0")
    assert final is not None
    assert final.status is OrderStatus.REJECTED
    assert final.reason is not None
    assert final.reason.startswith(expected)
    assert len(posts(double)) == 1
    assert double.count("GET", ORDER_PATH) == 0  # a refusal is not even looked up
    assert double.orders_with("ot1n0") == []


@pytest.mark.parametrize("fault", [Fault("POST", ORDER_PATH, "http", status=503), Fault("POST", ORDER_PATH, "drop")])
async def test_unprocessed_send_is_looked_up_then_resent_with_same_id(venue, fault: Fault) -> None:
    adapter, recorder, double = venue
    double.inject(fault)
    adapter.submit(intent())
    await wait_for(lambda: recorder.final("ot1n0"))
    sent = posts(double)
    assert [p["newClientOrderId"] for p in sent] == ["ot1n0", "ot1n0"]
    assert double.count("GET", ORDER_PATH) >= adapter.config.submit_lookups  # asked before resending
    assert len(double.orders_with("ot1n0")) == 1
    assert recorder.final("ot1n0").status is OrderStatus.FILLED  # type: ignore[union-attr]


async def test_unanswered_lookups_never_resend(venue) -> None:
    adapter, recorder, double = venue
    double.inject(Fault("POST", ORDER_PATH, "timeout_after_accept", delay_s=1.0))
    double.inject(Fault("GET", ORDER_PATH, "http", status=502, count=adapter.config.read_retries + 2))
    adapter.submit(intent())
    # The poller finds it once the venue answers lookups again.
    await wait_for(lambda: recorder.final("ot1n0"))
    assert len(posts(double)) == 1
    assert len(double.orders_with("ot1n0")) == 1
    assert recorder.final("ot1n0").status is OrderStatus.FILLED  # type: ignore[union-attr]


async def test_checks_before_sending(venue) -> None:
    adapter, recorder, _double = venue
    adapter.submit(intent("otiny", quantity=0.00001))  # rounds to 0 at a 0.0001 step
    adapter.submit(intent("ocheap", quantity=0.0001, order_type=OrderType.LIMIT, limit_price=10.0))  # 1 USDT < 5
    adapter.submit(intent("onosuch", symbol="DOGE/USDT"))
    adapter.submit(intent("o" + "x" * 40))
    for client_id in ("otiny", "ocheap", "onosuch", "o" + "x" * 40):
        await wait_for(lambda cid=client_id: recorder.final(cid))
        assert recorder.final(client_id).status is OrderStatus.REJECTED  # type: ignore[union-attr]
    assert posts(_double) == []


async def test_intent_gate_runs_before_the_request(venue) -> None:
    adapter, recorder, double = venue
    seen: list[int] = []

    async def gate(order: OrderIntent) -> None:
        seen.append(len(posts(double)))
        if order.client_order_id == "obad":
            raise OSError("disk full")

    adapter.intent_gate = gate
    adapter.submit(intent("ogood"))
    adapter.submit(intent("obad"))
    await wait_for(lambda: recorder.final("ogood") and recorder.final("obad"))
    assert seen == [0, 1]
    assert recorder.final("obad").status is OrderStatus.REJECTED  # type: ignore[union-attr]
    assert [p["newClientOrderId"] for p in posts(double)] == ["ogood"]


async def test_resting_limit_order_is_cancelled(venue) -> None:
    adapter, recorder, double = venue
    adapter.submit(intent("olimit", quantity=0.01, order_type=OrderType.LIMIT, limit_price=40_000.0))
    await wait_for(lambda: any(u.status is OrderStatus.OPEN for u in recorder.updates))
    assert [o.client_order_id for o in await adapter.open_orders("BTC/USDT")] == ["olimit"]
    adapter.cancel("olimit")
    await wait_for(lambda: recorder.final("olimit"))
    assert recorder.final("olimit").status is OrderStatus.CANCELED  # type: ignore[union-attr]
    assert double.orders_with("olimit")[0].status == "CANCELED"


async def test_reads_retry_network_errors_but_not_refusals(venue) -> None:
    adapter, _recorder, double = venue
    double.inject(Fault("GET", "/api/v3/account", "http", status=500, count=2))
    balances = await adapter.balances()
    assert balances["USDT"] == pytest.approx(100_000.0)
    assert double.count("GET", "/api/v3/account") == 3
    double.inject(Fault("GET", "/api/v3/account", "http", status=401, body={"code": -1022, "msg": "bad signature"}))
    with pytest.raises(VenueError) as raised:
        await adapter.balances()
    assert raised.value.kind is ErrorKind.FATAL
    assert double.count("GET", "/api/v3/account") == 4
    double.inject(Fault("GET", "/api/v3/account", "http", status=503, count=100))
    with pytest.raises(VenueError) as raised:
        await adapter.balances()
    assert raised.value.kind is ErrorKind.TRANSIENT
    assert double.count("GET", "/api/v3/account") == 4 + 1 + adapter.config.read_retries
    with double.lock:
        double.faults.clear()  # the venue is back
    before = double.count("GET", "/api/v3/account")
    double.inject(Fault("GET", "/api/v3/account", "http", status=429, count=2, body={"code": -1003, "msg": "slow"}))
    assert (await adapter.balances())["USDT"] == pytest.approx(100_000.0)  # rate limit: waited, asked again
    assert double.count("GET", "/api/v3/account") == before + 3


async def test_cancel_of_a_queued_order_means_it_is_never_sent(venue) -> None:
    adapter, recorder, double = venue
    release = asyncio.Event()

    async def slow_disk(order: OrderIntent) -> None:
        await release.wait()

    adapter.intent_gate = slow_disk
    adapter.submit(intent("oq1n0"))
    await asyncio.sleep(0.05)
    adapter.cancel("oq1n0")  # e.g. the kill switch halts while the journal is still writing
    release.set()
    await wait_for(lambda: recorder.final("oq1n0"))
    final = recorder.final("oq1n0")
    assert final is not None
    assert final.status is OrderStatus.CANCELED
    assert posts(double) == []


# ---------------------------------------------------------------- bad answers: a clear error, nothing lost


def events(logs: list[dict[str, object]], name: str) -> list[dict[str, object]]:
    return [entry for entry in logs if entry["event"] == name]


async def test_answer_cut_after_accept_is_looked_up_not_rejected(venue) -> None:
    # ccxt raises the bare ExchangeError for a body cut half way: the venue has the order.
    adapter, recorder, double = venue
    double.inject(Fault("POST", ORDER_PATH, "cut_after_accept"))
    adapter.submit(intent())
    await wait_for(lambda: recorder.final("ot1n0"))
    assert recorder.final("ot1n0").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert len(posts(double)) == 1
    assert len(double.orders_with("ot1n0")) == 1
    assert sum(f.quantity for f in recorder.fills) == pytest.approx(0.01)


@pytest.mark.parametrize("raw", ['{"symbol": "BTCU', "<html>gateway</html>", "", '{"code": 0}'])
async def test_unreadable_answer_after_accept_is_looked_up(venue, raw: str) -> None:
    adapter, recorder, double = venue
    double.inject(Fault("POST", ORDER_PATH, "raw_after_accept", status=200, raw=raw))
    with capture_logs() as logs:
        adapter.submit(intent())
        await wait_for(lambda: recorder.final("ot1n0"))
    assert len(posts(double)) == 1
    assert len(double.orders_with("ot1n0")) == 1
    assert recorder.final("ot1n0").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert OrderStatus.OPEN not in {u.status for u in recorder.updates}  # no state made up from garbage
    (unconfirmed,) = events(logs, "venue_create_unconfirmed")
    assert str(unconfirmed["error"]).startswith("VenueAnswerError: order answer without an order id")


async def test_html_5xx_before_processing_is_looked_up_then_resent_once(venue) -> None:
    adapter, recorder, double = venue
    double.inject(Fault("POST", ORDER_PATH, "raw", status=502, raw="<html>502 Bad Gateway</html>"))
    adapter.submit(intent())
    await wait_for(lambda: recorder.final("ot1n0"))
    assert [p["newClientOrderId"] for p in posts(double)] == ["ot1n0", "ot1n0"]
    assert len(double.orders_with("ot1n0")) == 1
    assert recorder.final("ot1n0").status is OrderStatus.FILLED  # type: ignore[union-attr]


async def test_unexpected_order_status_is_an_error_and_the_order_is_kept(venue) -> None:
    adapter, recorder, double = venue
    adapter.submit(intent("olimit", order_type=OrderType.LIMIT, limit_price=40_000.0))
    await wait_for(lambda: any(u.status is OrderStatus.OPEN for u in recorder.updates))
    (order,) = double.orders_with("olimit")
    with capture_logs() as logs:
        with double.lock:
            order.status = "SUSPENDED_BY_VENUE"
        await wait_for(lambda: events(logs, "venue_poll_failed"))
        assert recorder.final("olimit") is None  # not guessed terminal, still followed
        assert "olimit" in adapter._working
        with double.lock:
            order.status = "NEW"
            double.fill(order, 40_000.0)
        await wait_for(lambda: recorder.final("olimit"))
    error = str(events(logs, "venue_poll_failed")[0]["error"])
    assert "VenueAnswerError" in error
    assert "'SUSPENDED_BY_VENUE'" in error
    assert recorder.final("olimit").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert sum(f.quantity for f in recorder.fills) == pytest.approx(0.01)


async def test_trade_without_price_is_not_booked_at_zero(venue) -> None:
    adapter, recorder, double = venue
    adapter.submit(intent("olimit", order_type=OrderType.LIMIT, limit_price=40_000.0))
    await wait_for(lambda: any(u.status is OrderStatus.OPEN for u in recorder.updates))
    (order,) = double.orders_with("olimit")
    with capture_logs() as logs:
        with double.lock:
            double.fill(order, 40_000.0)
            trade = double.trades[-1]
            del trade["price"], trade["quoteQty"]
        await wait_for(lambda: recorder.final("olimit"))
    assert events(logs, "venue_bad_trade")
    assert "price None" in str(events(logs, "venue_bad_trade")[0]["error"])
    assert [(f.quantity, f.price) for f in recorder.fills] == [(pytest.approx(0.01), pytest.approx(40_000.0))]
    assert recorder.final("olimit").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert recorder.sequence[-2:] == ["fill", "filled"]


async def test_a_cancel_the_venue_fails_is_sent_again_until_it_lands(venue) -> None:
    adapter, recorder, double = venue
    adapter.submit(intent("olimit", order_type=OrderType.LIMIT, limit_price=40_000.0))
    await wait_for(lambda: any(u.status is OrderStatus.OPEN for u in recorder.updates))
    failures = adapter.config.read_retries + 3  # more than one cancel's retries
    double.inject(Fault("DELETE", ORDER_PATH, "http", status=503, count=failures))
    adapter.cancel("olimit")
    await wait_for(lambda: recorder.final("olimit"))
    assert recorder.final("olimit").status is OrderStatus.CANCELED  # type: ignore[union-attr]
    assert double.orders_with("olimit")[0].status == "CANCELED"
    assert double.count("DELETE", ORDER_PATH) == failures + 1


async def test_rate_limit_on_create_is_not_looked_up(venue) -> None:
    # Refused unprocessed (429): waiting and resending the same request is the whole policy.
    adapter, recorder, double = venue
    double.inject(Fault("POST", ORDER_PATH, "http", status=429, count=2, body={"code": -1003, "msg": "Too many"}))
    adapter.submit(intent())
    await wait_for(lambda: recorder.final("ot1n0"))
    assert len(posts(double)) == 3
    assert double.count("GET", ORDER_PATH) == 0
    assert recorder.final("ot1n0").status is OrderStatus.FILLED  # type: ignore[union-attr]
