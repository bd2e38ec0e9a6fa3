"""Trace ids and client order ids.

A run id (random per daemon start, fixed per backtest seed) plus a counter:
cheap on the event path, unique across restarts, and deterministic where a
backtest needs identical output. Client order ids are alphanumeric only and
at most 32 characters, the strictest rule among major venues (OKX).
"""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_lowercase + string.digits


def new_run_id(length: int = 8) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


class IdSequence:
    """Issues ``<run>-<n>`` trace ids and ``o<run><n>n<leg>`` client order ids."""

    __slots__ = ("_count", "run_id")

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id or new_run_id()
        if not self.run_id.isalnum():
            raise ValueError(f"run id {self.run_id!r} must be alphanumeric")
        self._count = 0

    def next_trace_id(self) -> str:
        self._count += 1
        return f"{self.run_id}-{self._count}"

    def client_order_id(self, trace_id: str, leg: int = 0) -> str:
        return f"o{trace_id.replace('-', '')}n{leg}"
