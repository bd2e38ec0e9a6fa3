"""The error policy as a table: each ccxt exception class and what it means, and the backoff's bounds."""

from __future__ import annotations

import random

import ccxt
import pytest

from orchestrator.execution.ccxt.errors import ErrorKind, VenueAnswerError, classify
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
