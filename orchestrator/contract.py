"""The base class a module derives from, and what the core hands it.

See ``orchestrator.hookspecs`` for the hooks. A complete module::

    from orchestrator import AnalysisModule, Bar, EventKind, ModuleContext
    from orchestrator import ModuleOutput, ModuleParams, Prediction
    from pydantic import Field

    class MomentumParams(ModuleParams):
        window: int = Field(20, gt=1, description="bars in the lookback")

    class MomentumModule(AnalysisModule[MomentumParams]):
        name = "momentum"
        version = "1.0.0"
        consumes = frozenset({EventKind.BAR})
        Params = MomentumParams

        def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
            ...

    MODULE = MomentumModule
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from orchestrator.events import Bar, BookUpdate, EventKind, MarketEvent, Trade
from orchestrator.signals import ModuleOutput, Prediction


class ModuleParams(BaseModel):
    """Base of every module's parameter schema: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=ModuleParams)


@dataclass(frozen=True, slots=True)
class ModuleState:
    """A module's exported state. ``data`` must be JSON-serialisable (it is
    written to the state directory); ``state_version`` lets a successor
    recognise a layout it can (or cannot) read."""

    module: str
    version: str
    state_version: int
    data: Mapping[str, Any] = field(default_factory=dict)


class EventClock:
    """The time of the event being processed, in epoch milliseconds.

    Injected rather than read from the wall: in a replay ``now`` is the
    recorded time, so a module behaves the same live and in a backtest.
    """

    __slots__ = ("now",)

    def __init__(self, now: int = 0) -> None:
        self.now = now


class ModuleContext:
    """A module's window on the core: its symbols, the time, its logger, its
    state directory and the latest outputs of the modules it depends on."""

    __slots__ = ("_latest", "_readable", "bucket", "clock", "log", "name", "state_dir", "symbols")

    def __init__(
        self,
        *,
        name: str,
        bucket: str,
        symbols: Sequence[str],
        clock: EventClock,
        latest: Mapping[str, Mapping[str, ModuleOutput]],
        readable: frozenset[str],
        state_dir: Path | None = None,
    ) -> None:
        self.name = name
        self.bucket = bucket
        self.symbols = tuple(symbols)
        self.clock = clock
        import structlog  # here, not at the top: `orchestrator --help` need not load it

        self.log = structlog.get_logger("orchestrator.module").bind(module=name, bucket=bucket)
        self.state_dir = state_dir
        self._latest = latest
        self._readable = readable

    @property
    def now(self) -> int:
        return self.clock.now

    def output(self, module: str, symbol: str) -> ModuleOutput | None:
        """Latest output of ``module`` (which must be a declared dependency)."""
        if module not in self._readable:
            raise KeyError(f"{self.name} reads {module!r}, which is not in its depends_on")
        per_symbol = self._latest.get(symbol)
        return None if per_symbol is None else per_symbol.get(module)

    def prediction(self, module: str, symbol: str) -> Prediction | None:
        out = self.output(module, symbol)
        return None if out is None else out.prediction

    def feature(self, module: str, symbol: str, key: str, default: float = math.nan) -> float:
        out = self.output(module, symbol)
        return default if out is None else out.features.get(key, default)

    def label(self, module: str, symbol: str) -> str | None:
        out = self.output(module, symbol)
        return None if out is None else out.label


class AnalysisModule(Generic[P]):
    """Base class of every module. Subclasses set the contract attributes and
    implement the hooks they need (``on_bar``, ``on_trade``, ``on_book``,
    ``fuse``); the defaults below cover state and self-check."""

    name: ClassVar[str]
    version: ClassVar[str]
    consumes: ClassVar[frozenset[EventKind]]
    depends_on: ClassVar[tuple[str, ...]] = ()
    Params: ClassVar[type[ModuleParams]] = ModuleParams
    latency_budget_us: ClassVar[float] = 1000.0
    state_version: ClassVar[int] = 1

    def __init__(self, params: P) -> None:
        self.params = params

    def on_start(self, ctx: ModuleContext) -> None:
        self.ctx = ctx

    def on_stop(self) -> None:
        return None

    def export_state(self) -> ModuleState | None:
        return None

    def import_state(self, state: ModuleState) -> bool:
        return False

    def self_check(self, sample: Sequence[MarketEvent]) -> list[str]:
        """Default check: the sample runs through the module's own handlers
        without raising, and every result is a ``ModuleOutput`` or ``None``."""
        problems: list[str] = []
        symbols = sorted({event.symbol for event in sample})
        ctx = ModuleContext(
            name=self.name,
            bucket="self-check",
            symbols=symbols,
            clock=EventClock(),
            latest={},
            readable=frozenset(self.depends_on),
        )
        self.on_start(ctx)
        for index, event in enumerate(sample):
            handler = self._handler_for(event)
            if handler is None:
                continue
            ctx.clock.now = event.ts
            try:
                result = handler(event, ctx)
            except Exception as exc:  # noqa: BLE001 - reported, not raised: that is the point of a check
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                problems.append(
                    f"event {index} ({event.kind.value}): {type(exc).__name__}: {exc} "
                    f"at {frame.filename}:{frame.lineno}"
                )
                break
            if result is not None and not isinstance(result, ModuleOutput):
                problems.append(f"event {index}: returned {type(result).__name__}, not ModuleOutput")
                break
        return problems

    def _handler_for(self, event: MarketEvent) -> Any:
        if event.kind not in self.consumes:
            return None
        if isinstance(event, Bar):
            return getattr(self, "on_bar", None)
        if isinstance(event, Trade):
            return getattr(self, "on_trade", None)
        if isinstance(event, BookUpdate):
            return getattr(self, "on_book", None)
        return None
