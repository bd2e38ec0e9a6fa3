"""What modules say about the market, and what the core decides from it.

``Prediction`` and ``ModuleOutput`` are produced per module, per symbol, per
event; ``FusionResult`` is what a fusion method makes of them; ``Decision`` is
the stamped, traceable result the core hands to risk and execution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

NO_FEATURES: Mapping[str, float] = MappingProxyType({})
_INF = math.inf


# Prediction and ModuleOutput are made by every module for every event, so
# they are immutable NamedTuples rather than frozen dataclasses: a frozen
# dataclass assigns each field through object.__setattr__, which makes it
# about twice as expensive to construct, and on the event path that was a
# tenth of the core's time. Like the dataclasses they are typed, slotted and
# immutable; read them by field name.


class _PredictionFields(NamedTuple):
    mu: float
    sigma: float
    horizon: float
    confidence: float
    alpha: float


class Prediction(_PredictionFields):
    """A module's view of one symbol's return over ``horizon`` seconds.

    - ``mu``: expected simple return over the horizon (0.001 = +0.1 %).
    - ``sigma``: standard deviation of that return (> 0 means uncertain).
    - ``horizon``: seconds ahead the view applies to.
    - ``confidence``: how much the module trusts this view, in [0, 1].
    - ``alpha``: the module's directional score, in [-1, 1].

    Out-of-range values raise ``ValueError`` at construction, inside the
    module's own call, so the core counts them as that module's error.
    """

    __slots__ = ()

    def __new__(cls, mu: float, sigma: float, horizon: float, confidence: float, alpha: float) -> Prediction:
        # One expression for the common, valid case (NaN fails every comparison);
        # the checks that name the bad field run only when it fails.
        if (
            -1.0 <= alpha <= 1.0
            and 0.0 <= confidence <= 1.0
            and 0.0 <= sigma < _INF
            and horizon > 0.0
            and -_INF < mu < _INF
        ):
            return tuple.__new__(cls, (mu, sigma, horizon, confidence, alpha))
        if not -1.0 <= alpha <= 1.0:
            raise ValueError(f"alpha {alpha!r} outside [-1, 1]")
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"confidence {confidence!r} outside [0, 1]")
        if not 0.0 <= sigma < math.inf:
            raise ValueError(f"sigma {sigma!r} must be finite and >= 0")
        if not horizon > 0.0:
            raise ValueError(f"horizon {horizon!r} must be > 0 seconds")
        if not -math.inf < mu < math.inf:
            raise ValueError(f"mu {mu!r} must be finite")
        return tuple.__new__(cls, (mu, sigma, horizon, confidence, alpha))


NEUTRAL = Prediction(mu=0.0, sigma=0.0, horizon=1.0, confidence=0.0, alpha=0.0)
"""A prediction that carries no view; fusion gives it no weight."""


class LazyFeatures(Mapping[str, float]):
    """Features computed on first read, from values captured when the event was seen.

    Most features are read by nobody on most events: fusion reads only
    predictions, and a reader such as neural fusion samples the features every
    few seconds. A module whose features are costly returns
    ``LazyFeatures(compute, *args)`` instead of a dict: ``compute(*args)``
    runs at most once, when something first reads a value. The arguments must
    be immutable snapshots (the event, floats, tuples, frozen objects), never
    state the module goes on changing, so a late read sees the values of its
    own event, not of a later one.
    """

    __slots__ = ("_args", "_compute", "_values")

    def __init__(self, compute: Callable[..., dict[str, float]], *args: Any) -> None:
        self._compute: Callable[..., dict[str, float]] | None = compute
        self._args = args
        self._values: dict[str, float] | None = None

    def _materialise(self) -> dict[str, float]:
        values = self._values
        if values is None:
            assert self._compute is not None
            values = self._values = self._compute(*self._args)
            self._compute, self._args = None, ()  # what the closure held can go
        return values

    def __getitem__(self, key: str) -> float:
        return self._materialise()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._materialise().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._materialise()

    def __iter__(self) -> Iterator[str]:
        return iter(self._materialise())

    def __len__(self) -> int:
        return len(self._materialise())

    def __repr__(self) -> str:
        return f"LazyFeatures({self._materialise()!r})"


class ModuleOutput(NamedTuple):
    """Everything one module produced for one symbol on one event.

    ``features`` are named floats other modules (and neural fusion) may read;
    ``label`` is an optional categorical state, e.g. the regime's name.
    """

    prediction: Prediction | None
    features: Mapping[str, float] = NO_FEATURES
    label: str | None = None


@dataclass(frozen=True, slots=True)
class FusionResult:
    """A fused view for one symbol: target exposure plus where it came from."""

    target: float
    confidence: float
    mu: float
    sigma: float
    contributions: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not -1.0 <= self.target <= 1.0:
            raise ValueError(f"target exposure {self.target!r} outside [-1, 1]")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence {self.confidence!r} outside [0, 1]")


@dataclass(frozen=True, slots=True)
class Decision:
    """A fused, stamped decision for one symbol.

    ``target`` is the desired exposure in [-1, 1] of the symbol's allocation;
    ``trace_id`` follows the decision into its orders, fills and log lines.
    """

    trace_id: str
    ts: int
    symbol: str
    bucket: str
    target: float
    confidence: float
    mu: float
    sigma: float
    method: str
    contributions: Mapping[str, float]
    regime: str | None = None
