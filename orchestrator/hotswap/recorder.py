"""A short recording of real market events, for modules' self-checks.

The daemon's feed task records every event with one dict lookup by class
and one append to a bounded deque (``append_by_class``, about 50 ns; a
method call would double that), no allocation beyond the deque's own slot.
One ring per event kind, so the rare kind (bars: one a minute against many
book updates a second) is not crowded out by the frequent ones.

Before enough real events have been seen (just after start), a self-check
runs on a deterministic simulated sample instead, priced near the last
real prices so modules see plausible numbers.
"""

from __future__ import annotations

import functools
import heapq
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from orchestrator.events import Bar, BookUpdate, EventKind, MarketEvent, Trade, event_price
from orchestrator.feeds.config import SimulatedMarketConfig
from orchestrator.feeds.simulated import SimulatedMarket

DEFAULT_PER_KIND = 256
MIN_RECORDED_PER_KIND = 32  # fewer real events than this of a kind a module consumes: use the simulated sample
SIMULATED_SAMPLE_EVENTS = 1_500
_SIMULATED_TICK_MS = 250
_SIMULATED_BAR_MS = 1_000  # a bar every four ticks, so bar modules warm up within the sample

_KIND_OF_CLASS: dict[type, EventKind] = {Bar: EventKind.BAR, Trade: EventKind.TRADE, BookUpdate: EventKind.BOOK}


class RecentEvents:
    """The last ``per_kind`` events of each kind the daemon processed."""

    __slots__ = ("_rings", "append_by_class", "per_kind")

    def __init__(self, per_kind: int = DEFAULT_PER_KIND) -> None:
        self.per_kind = per_kind
        self._rings: dict[type, deque[MarketEvent]] = {cls: deque(maxlen=per_kind) for cls in _KIND_OF_CLASS}
        # Hot path: ``append_by_class[event.__class__](event)``. The dict is
        # kept (and updated in place) so a caller may hold on to it.
        self.append_by_class: dict[type, Callable[[MarketEvent], None]] = {
            cls: ring.append for cls, ring in self._rings.items()
        }

    def record(self, event: MarketEvent) -> None:
        self.append_by_class[event.__class__](event)

    def resize(self, per_kind: int) -> None:
        if per_kind != self.per_kind:
            self.per_kind = per_kind
            self._rings = {cls: deque(ring, maxlen=per_kind) for cls, ring in self._rings.items()}
            self.append_by_class.update({cls: ring.append for cls, ring in self._rings.items()})

    def snapshot(self) -> RecordedSample:
        """Copy the rings (cheap, on the event loop); the copy is then safe to
        read from a worker thread while recording goes on."""
        return RecordedSample({_KIND_OF_CLASS[cls]: tuple(ring) for cls, ring in self._rings.items()})


@dataclass(frozen=True, slots=True)
class RecordedSample:
    """Recorded events by kind, each tuple in arrival (time) order."""

    by_kind: dict[EventKind, tuple[MarketEvent, ...]]

    def events_for(self, symbols: Sequence[str], kinds: Iterable[EventKind]) -> list[MarketEvent]:
        """A time-ordered sample for ``symbols`` covering ``kinds``: the real
        recording when it holds enough of every kind, else a simulated one."""
        wanted = set(symbols)
        kinds = set(kinds) or set(EventKind)
        recorded = {kind: [e for e in self.by_kind.get(kind, ()) if e.symbol in wanted] for kind in EventKind}
        if all(len(recorded[kind]) >= MIN_RECORDED_PER_KIND for kind in kinds):
            return list(heapq.merge(*recorded.values(), key=lambda e: e.ts))
        return simulated_sample(symbols, self.last_prices())

    def last_prices(self) -> dict[str, float]:
        prices: dict[str, float] = {}
        for kind in (EventKind.BAR, EventKind.TRADE, EventKind.BOOK):  # later kinds are the fresher prices
            for event in self.by_kind.get(kind, ()):
                price = event_price(event)
                if price > 0.0:
                    prices[event.symbol] = price
        return prices


def simulated_sample(symbols: Sequence[str], prices: dict[str, float] | None = None) -> list[MarketEvent]:
    """A deterministic simulated stream with books, trades and frequent bars.

    Generating it costs about 60 us an event, 100 ms in all, in the worker
    thread that competes with the serving modules for the GIL: so it is
    kept, for prices rounded to three significant digits (near enough to be
    plausible; a swap soon after another, or after a restart, reuses it)."""
    if not symbols:
        return []
    near = tuple(
        sorted((symbol, float(f"{price:.3g}")) for symbol, price in (prices or {}).items() if symbol in symbols)
    )
    return list(_simulated(tuple(symbols), near))


@functools.lru_cache(maxsize=8)
def _simulated(symbols: tuple[str, ...], prices: tuple[tuple[str, float], ...]) -> tuple[MarketEvent, ...]:
    config = SimulatedMarketConfig(
        seed=11, tick_ms=_SIMULATED_TICK_MS, bar_ms=_SIMULATED_BAR_MS, speed=0.0, prices=dict(prices)
    )
    return tuple(SimulatedMarket(config, symbols).take(SIMULATED_SAMPLE_EVENTS))
