"""The error policy as a table (each ccxt exception class and what it means), the backoff's bounds, the client."""

from __future__ import annotations

import asyncio
import random

import ccxt
import pytest

from orchestrator.execution.ccxt.client import create_client, with_url_overrides
from orchestrator.execution.ccxt.config import CcxtVenueConfig
from orchestrator.execution.ccxt.errors import ErrorKind, VenueAnswerError, classify
from orchestrator.execution.ccxt.quirks import quirks_for
from orchestrator.execution.ccxt.retry import Backoff


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ccxt.RequestTimeout, ErrorKind.TRANSIENT),
        (ccxt.ExchangeNotAvailable, ErrorKind.TRANSIENT),
        (ccxt.OnMaintenance, ErrorKind.TRANSIENT),
        (ccxt.InvalidNonce, ErrorKind.TRANSIENT),
        (ccxt.NetworkError, ErrorKind.TRANSIENT),
        (ccxt.BadResponse, ErrorKind.TRANSIENT),
        (ccxt.NullResponse, ErrorKind.TRANSIENT),
        (ccxt.ExchangeError, ErrorKind.TRANSIENT),  # ccxt's "could not say more", e.g. a cut answer
        (VenueAnswerError, ErrorKind.TRANSIENT),
        (RuntimeError, ErrorKind.TRANSIENT),
        (ccxt.RateLimitExceeded, ErrorKind.RATE_LIMITED),
        (ccxt.DDoSProtection, ErrorKind.RATE_LIMITED),
        (ccxt.InvalidOrder, ErrorKind.REJECTED),
        (ccxt.InsufficientFunds, ErrorKind.REJECTED),
        (ccxt.BadSymbol, ErrorKind.REJECTED),
        (ccxt.BadRequest, ErrorKind.REJECTED),
        (ccxt.DuplicateOrderId, ErrorKind.REJECTED),
        (ccxt.OperationRejected, ErrorKind.REJECTED),
        (ccxt.NotSupported, ErrorKind.REJECTED),
        (ccxt.AuthenticationError, ErrorKind.FATAL),
        (ccxt.PermissionDenied, ErrorKind.FATAL),
        (ccxt.AccountSuspended, ErrorKind.FATAL),
        (ccxt.OrderNotFound, ErrorKind.NOT_FOUND),
    ],
)
def test_each_ccxt_error_class_has_its_policy(error: type[Exception], kind: ErrorKind) -> None:
    assert classify(error("venue says")) is kind
    # Only waiting can help these; refusals and fatal errors are never retried.
    assert kind.retryable is (kind in (ErrorKind.TRANSIENT, ErrorKind.RATE_LIMITED))


def test_backoff_is_jittered_and_bounded() -> None:
    backoff = Backoff(0.1, 2.0, random.Random(7))
    for attempt in range(12):
        ceiling = min(2.0, 0.1 * 2**attempt)
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, not one fixed schedule
        limited = [backoff.delay(attempt, ErrorKind.RATE_LIMITED) for _ in range(200)]
        assert all(0.1 <= d <= 2.0 for d in limited)  # a rate limit always waits at least the base


def test_sandbox_switches_to_testnet_urls_and_overrides_apply_after() -> None:
    config = CcxtVenueConfig(exchange="binance", sandbox=True, api_urls={"ws.spot": "ws://127.0.0.1:1/stream/ws"})
    client = create_client("binance", config, quirks_for("binance"), {"apiKey": "k", "secret": "s"})
    try:
        api = client.urls["api"]
        assert "testnet" in api["public"]  # set_sandbox_mode ran
        assert api["ws"] == {"spot": "ws://127.0.0.1:1/stream/ws"}  # a dotted key makes a nested entry
        assert client.enableRateLimit
    finally:
        asyncio.run(client.close())


def test_a_dotted_override_replaces_one_nested_entry_and_keeps_its_siblings() -> None:
    api = {"public": "https://a", "ws": {"spot": "wss://s", "linear": "wss://l"}}
    merged = with_url_overrides(api, {"ws.spot": "ws://127.0.0.1:9/stream/ws", "public": "http://127.0.0.1:9"})
    assert merged == {"public": "http://127.0.0.1:9", "ws": {"spot": "ws://127.0.0.1:9/stream/ws", "linear": "wss://l"}}
    assert api["ws"]["spot"] == "wss://s"  # the client's own table is not changed in place
    assert with_url_overrides("https://flat", {"public": "http://x"}) == {"public": "http://x"}
