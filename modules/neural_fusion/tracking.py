"""Per-symbol bookkeeping (prices, queued samples, return scale, cached result)
and the out-of-sample skill estimate, with their JSON export."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orchestrator import FusionResult

from .layout import FloatArray

_NEVER = 2**62
# Where a symbol's price comes from, best last: once a better source has been
# seen, a worse one no longer moves the price (a trade prints at the bid or
# ask, so its returns carry the bid-ask bounce the mid does not).
PRICE_NONE, PRICE_BAR, PRICE_TRADE, PRICE_MID = 0, 1, 2, 3


@dataclass(slots=True)
class PendingSample:
    """Inputs seen at ``ts`` waiting for the return over the horizon."""

    ts: int
    price: float
    output: float  # the network's output at ts (NaN: not trained yet)
    inputs: FloatArray


@dataclass(slots=True)
class SymbolState:
    price: float = math.nan
    price_source: int = PRICE_NONE
    next_due: int = _NEVER  # ts at which the oldest queued sample matures
    next_refresh: int = -_NEVER
    next_sample: int = -_NEVER
    return_count: int = 0
    return_var: float = 0.0  # running mean of r^2: the scale of the horizon return
    pending: deque[PendingSample] = field(default_factory=deque)
    result: FusionResult | None = None

    def queue(self, ts: int, inputs: FloatArray, output: float, horizon_ms: int) -> None:
        if not self.pending:
            self.next_due = ts + horizon_ms
        self.pending.append(PendingSample(ts, self.price, output, inputs))

    def observe_return(self, realised: float, window: int) -> float:
        """Learn from one realised horizon return; the current scale (RMS)."""
        self.return_count += 1
        self.return_var += (realised * realised - self.return_var) / min(self.return_count, window)
        return math.sqrt(self.return_var)


class SkillTracker:
    """Running moments of (prediction p, outcome y) pairs, both in return-std
    units, each made before its outcome was known: the error variance
    E[(y - p)^2] and the correlation of p and y (the information coefficient).
    Weights 1 / min(n, window): equal weights first, exponential later."""

    __slots__ = ("count", "error", "mean_p", "mean_pp", "mean_py", "mean_y", "mean_yy", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self.count = 0
        self.mean_p = self.mean_y = self.mean_pp = self.mean_yy = self.mean_py = self.error = 0.0

    def observe(self, predicted: float, realised: float) -> None:
        self.count += 1
        weight = 1.0 / min(self.count, self.window)
        self.mean_p += weight * (predicted - self.mean_p)
        self.mean_y += weight * (realised - self.mean_y)
        self.mean_pp += weight * (predicted * predicted - self.mean_pp)
        self.mean_yy += weight * (realised * realised - self.mean_yy)
        self.mean_py += weight * (predicted * realised - self.mean_py)
        miss = realised - predicted
        self.error += weight * (miss * miss - self.error)

    @property
    def correlation(self) -> float:
        var_p = self.mean_pp - self.mean_p * self.mean_p
        var_y = self.mean_yy - self.mean_y * self.mean_y
        if var_p <= 0.0 or var_y <= 0.0:
            return 0.0
        return (self.mean_py - self.mean_p * self.mean_y) / math.sqrt(var_p * var_y)

    def export(self) -> list[float]:
        return [self.count, self.mean_p, self.mean_y, self.mean_pp, self.mean_yy, self.mean_py, self.error]

    def restore(self, data: list[float]) -> None:
        count, self.mean_p, self.mean_y, self.mean_pp, self.mean_yy, self.mean_py, self.error = map(float, data)
        self.count = int(count)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)


def export_symbols(symbols: Mapping[str, SymbolState]) -> dict[str, Any]:
    exported: dict[str, Any] = {}
    for symbol, state in symbols.items():
        result = state.result
        exported[symbol] = {
            "price": [_finite_or_none(state.price), state.price_source],
            "next_due": state.next_due,
            "next_refresh": state.next_refresh,
            "next_sample": state.next_sample,
            "returns": [state.return_count, state.return_var],
            "pending": [[s.ts, s.price, _finite_or_none(s.output), s.inputs.tolist()] for s in state.pending],
            "result": None
            if result is None
            else [result.target, result.confidence, result.mu, result.sigma, dict(result.contributions)],
        }
    return exported


def restore_symbols(data: Mapping[str, Any], width: int) -> dict[str, SymbolState]:
    symbols: dict[str, SymbolState] = {}
    for symbol, entry in data.items():
        pending: deque[PendingSample] = deque()
        for ts, price, output, inputs in entry["pending"]:
            row = np.array(inputs, dtype=np.float64)
            if row.shape != (width,):
                raise ValueError(f"a queued sample of {symbol} has {row.shape[0]} inputs, the layout {width}")
            pending.append(PendingSample(int(ts), float(price), _float(output), row))
        result = entry["result"]
        count, variance = entry["returns"]
        price, source = entry["price"]
        symbols[symbol] = SymbolState(
            price=_float(price),
            price_source=int(source),
            next_due=int(entry["next_due"]),
            next_refresh=int(entry["next_refresh"]),
            next_sample=int(entry["next_sample"]),
            return_count=int(count),
            return_var=float(variance),
            pending=pending,
            result=None
            if result is None
            else FusionResult(
                float(result[0]),
                float(result[1]),
                float(result[2]),
                float(result[3]),
                {str(k): float(v) for k, v in result[4].items()},
            ),
        )
    return symbols
