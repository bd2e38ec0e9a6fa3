"""Performance statistics of an equity curve sampled at fixed intervals."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

MS_PER_YEAR = 365.0 * 24 * 3600 * 1000


def max_drawdown(equity: Sequence[float]) -> float:
    """Largest peak-to-trough fall as a fraction of the peak (0.25 = -25 %)."""
    peak = -math.inf
    worst = 0.0
    for value in equity:
        peak = max(peak, value)
        if peak > 0.0:
            worst = max(worst, (peak - value) / peak)
    return worst


def sharpe_ratio(equity: Sequence[float], sample_ms: int) -> float:
    """Annualised Sharpe ratio of simple returns between samples (risk-free 0)."""
    returns = [b / a - 1.0 for a, b in itertools.pairwise(equity) if a > 0.0]
    if len(returns) < 2:
        return 0.0
    mean = sum(returns) / len(returns)
    variance = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    if variance <= 0.0:
        return 0.0
    return mean / math.sqrt(variance) * math.sqrt(MS_PER_YEAR / sample_ms)
