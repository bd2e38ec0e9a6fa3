"""What to do about a ccxt exception, by its class.

The policy (after freqtrade's grouping by operator response):

- ``RATE_LIMITED`` (RateLimitExceeded, DDoSProtection): the venue refused
  the request unprocessed; back off longer, then retry.
- ``TRANSIENT`` (every other NetworkError: RequestTimeout,
  ExchangeNotAvailable, InvalidNonce; OperationFailed such as BadResponse;
  the bare ExchangeError base class, which ccxt raises when it cannot say
  more, e.g. a connection cut half way through the answer or a venue code it
  does not know; ``VenueAnswerError``; anything unexpected): a read is
  retried with bounded jittered backoff; a create-order has an *unknown
  outcome* and is looked up by client id.
- ``REJECTED`` (InvalidOrder, InsufficientFunds, BadSymbol, BadRequest,
  OperationRejected, NotSupported, other ExchangeErrors): the venue said
  no to this request; never retried.
- ``FATAL`` (AuthenticationError, PermissionDenied, AccountSuspended): the
  account cannot trade until an operator acts; never retried.
- ``NOT_FOUND`` (OrderNotFound): a lookup's definite "no such order".
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    REJECTED = "rejected"
    FATAL = "fatal"
    NOT_FOUND = "not_found"

    @property
    def retryable(self) -> bool:
        return self in (ErrorKind.RATE_LIMITED, ErrorKind.TRANSIENT)


def classify(exc: BaseException) -> ErrorKind:
    import ccxt

    # Most specific first: OrderNotFound is an InvalidOrder, RateLimitExceeded a NetworkError.
    if isinstance(exc, ccxt.OrderNotFound):
        return ErrorKind.NOT_FOUND
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return ErrorKind.RATE_LIMITED
    if isinstance(exc, ccxt.NetworkError | ccxt.OperationFailed):
        return ErrorKind.TRANSIENT
    if isinstance(exc, ccxt.AuthenticationError | ccxt.AccountSuspended):
        return ErrorKind.FATAL
    if type(exc) is ccxt.ExchangeError:
        # Not a refusal: aiohttp's errors mid-answer (after the venue may have acted) end up here.
        return ErrorKind.TRANSIENT
    if isinstance(exc, ccxt.ExchangeError):
        return ErrorKind.REJECTED
    return ErrorKind.TRANSIENT


def describe(exc: BaseException) -> str:
    """One line: the exception class and the venue's message, without the URL noise."""
    text = str(exc).strip().replace("\n", " ")
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class VenueError(Exception):
    """A venue request failed for good (after the policy's retries)."""

    def __init__(self, venue: str, action: str, exc: BaseException) -> None:
        self.venue = venue
        self.kind = classify(exc)
        self.cause = exc
        super().__init__(f"venue {venue}: {action} failed ({self.kind.value}): {describe(exc)}")


class VenueAnswerError(Exception):
    """The venue answered, but not with what was asked for: an order without
    id or with a status nobody knows, a trade without price or amount. The
    outcome stays unknown, so it is handled like a network error: looked up
    again, never taken for a final state."""
