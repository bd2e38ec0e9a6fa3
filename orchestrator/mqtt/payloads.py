"""JSON payloads of every MQTT topic, each stamped with ``schema``.

``SCHEMA_VERSION`` changes only when a field changes meaning or disappears;
new fields may appear at any time, so consumers ignore keys they do not
know. Times are epoch milliseconds (``ts``) unless named otherwise;
non-finite floats become ``null`` so every payload is strict JSON.
"""

from __future__ import annotations

import enum
import json
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from orchestrator.engine.health import HealthSnapshot
from orchestrator.orders import Fill, OrderDenied, OrderIntent, OrderUpdate
from orchestrator.signals import Decision

SCHEMA_VERSION = 1


def now_ms() -> int:
    return int(time.time() * 1000)


def _num(value: float, digits: int = 8) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def jsonable(value: Any) -> Any:
    """Plain JSON data from nested mappings, sequences, enums and floats."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact strict JSON. Payloads built here are plain already; only the
    rest (enums, NaN, odd types from CommandResult.data) pay for a conversion."""
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError):
        return json.dumps(jsonable(payload), separators=(",", ":"), allow_nan=False).encode()


def stamped(kind: str, body: Mapping[str, Any], ts: int | None = None) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "kind": kind, "ts": now_ms() if ts is None else ts, **body}


def status_message(status: Mapping[str, Any], mqtt_counters: Mapping[str, int]) -> dict[str, Any]:
    """``control.status_payload`` plus the publisher's own counters."""
    return stamped("status", {**status, "mqtt": dict(mqtt_counters)})


def module_message(snapshot: HealthSnapshot) -> dict[str, Any]:
    return stamped(
        "module",
        {
            "name": snapshot.name,
            "bucket": snapshot.bucket,
            "implementation": snapshot.implementation,
            "version": snapshot.version,
            "source_hash": snapshot.source_hash,
            "state": snapshot.status.value,
            "loaded_at": datetime.fromtimestamp(snapshot.loaded_at, tz=UTC).isoformat(timespec="seconds"),
            "swaps": snapshot.swaps,
            "calls": snapshot.calls,
            "errors": snapshot.errors,
            "overruns": snapshot.overruns,
            "isolations": snapshot.isolations,
            "last_error": snapshot.last_error,
            # null until the first call: 0.0 would read as a measured latency
            "latency_us": {
                "p50": _num(snapshot.latency_p50_us, 2) if snapshot.calls else None,
                "p99": _num(snapshot.latency_p99_us, 2) if snapshot.calls else None,
                "budget": _num(snapshot.latency_budget_us, 2),
            },
        },
    )


def module_signature(snapshot: HealthSnapshot) -> tuple[Any, ...]:
    """What makes a module's health worth publishing at once (latency is not)."""
    return (
        snapshot.status,
        snapshot.version,
        snapshot.source_hash,
        snapshot.loaded_at,
        snapshot.swaps,
        snapshot.errors,
        snapshot.isolations,
    )


def decision_message(decision: Decision) -> dict[str, Any]:
    return stamped(
        "decision",
        {
            "trace_id": decision.trace_id,
            "symbol": decision.symbol,
            "bucket": decision.bucket,
            "target": _num(decision.target, 6),
            "confidence": _num(decision.confidence, 6),
            "mu": _num(decision.mu),
            "sigma": _num(decision.sigma),
            "method": decision.method,
            "regime": decision.regime,
            "contributions": {k: _num(v, 6) for k, v in decision.contributions.items()},
        },
        decision.ts,
    )


def intent_message(intent: OrderIntent) -> dict[str, Any]:
    return stamped(
        "order",
        {
            "event": "intent",
            "trace_id": intent.trace_id,
            "client_order_id": intent.client_order_id,
            "venue": intent.venue,
            "symbol": intent.symbol,
            "side": intent.side.value,
            "quantity": _num(intent.quantity, 10),
            "order_type": intent.order_type.value,
            "limit_price": None if intent.limit_price is None else _num(intent.limit_price, 10),
            "reduce_only": intent.reduce_only,
        },
        intent.ts,
    )


def denied_message(denied: OrderDenied) -> dict[str, Any]:
    return stamped(
        "order",
        {
            "event": "denied",
            "trace_id": denied.trace_id,
            "symbol": denied.symbol,
            "side": denied.side.value,
            "quantity": _num(denied.quantity, 10),
            "reason": denied.reason,
        },
        denied.ts,
    )


def update_message(update: OrderUpdate) -> dict[str, Any]:
    return stamped(
        "order",
        {
            "event": "update",
            "trace_id": update.trace_id,
            "client_order_id": update.client_order_id,
            "venue": update.venue,
            "symbol": update.symbol,
            "side": update.side.value,
            "quantity": _num(update.quantity, 10),
            "status": update.status.value,
            "filled_quantity": _num(update.filled_quantity, 10),
            "average_price": None if update.average_price is None else _num(update.average_price, 10),
            "venue_order_id": update.venue_order_id,
            "reason": update.reason,
        },
        update.ts,
    )


def fill_message(fill: Fill) -> dict[str, Any]:
    return stamped(
        "fill",
        {
            "trace_id": fill.trace_id,
            "fill_id": fill.fill_id,
            "client_order_id": fill.client_order_id,
            "venue": fill.venue,
            "symbol": fill.symbol,
            "side": fill.side.value,
            "quantity": _num(fill.quantity, 10),
            "price": _num(fill.price, 10),
            "fee": _num(fill.fee, 10),
            "fee_currency": fill.fee_currency,
            "liquidity": fill.liquidity,
        },
        fill.ts,
    )


def heartbeat_message(instance: str, seq: int, uptime_s: float, state: str, events: int) -> dict[str, Any]:
    body = {"instance": instance, "seq": seq, "uptime_s": round(uptime_s, 1), "state": state, "events": events}
    return stamped("heartbeat", body)
