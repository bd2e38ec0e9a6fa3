"""One bucket's pipeline: its modules in dependency order, and their fusion.

``process`` and ``fuse`` are the hot path. They run synchronously, call each
module's handler directly (cached from pluggy's registration) inside its own
``try``, time it against its budget, and keep the latest output per module
per symbol. Changing the module set (add, remove, swap) happens between two
events, which on a single-threaded event loop is any moment the pipeline is
not inside ``process``.
"""

from __future__ import annotations

import graphlib
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from time import perf_counter_ns
from typing import Any, cast

import structlog

from orchestrator.config.models import EngineConfig
from orchestrator.contract import EventClock, ModuleContext, ModuleState
from orchestrator.engine.health import RING_SIZE, HealthSnapshot, ModuleStatus
from orchestrator.engine.slot import HOOK_OF_KIND, Handler, ModuleSlot
from orchestrator.events import Bar, BookUpdate, EventKind, MarketEvent, Trade
from orchestrator.fusion.builtin import BUILTIN_FUSION_NAME, BuiltinFusion
from orchestrator.fusion.config import FusionConfig
from orchestrator.fusion.request import FusionRequest
from orchestrator.plugins.manager import OrchestratorPluginManager
from orchestrator.signals import FusionResult, ModuleOutput

log = structlog.get_logger("orchestrator.engine")

_RING_MASK = RING_SIZE - 1
_MAX_BACKOFF_MS = 3_600_000
_LOG_EVERY_N_ERRORS = 1000
_NEVER = 2**62
# Enum members read through module constants: on Python 3.11 ``ModuleStatus.ACTIVE``
# is a descriptor lookup (~0.2 µs) and hashing an enum member calls Python code,
# both too slow for a check made per module per event.
_ACTIVE = ModuleStatus.ACTIVE
_ISOLATED = ModuleStatus.ISOLATED
# The event class of each kind: dispatch is keyed by ``event.__class__``.
_CLASS_OF_KIND = {EventKind.BAR: Bar, EventKind.TRADE: Trade, EventKind.BOOK: BookUpdate}

FuseFunction = Callable[[FusionRequest], FusionResult | None]
Fuser = tuple[ModuleSlot | None, FuseFunction]


class DependencyError(ValueError):
    """Modules whose dependencies are missing or circular."""


def dependency_order(depends: Mapping[str, Sequence[str]]) -> list[str]:
    """Module names so that each comes after what it depends on.

    Ties keep the given order, so the call order is stable across runs.
    """
    for name, needs in depends.items():
        missing = [d for d in needs if d not in depends]
        if missing:
            raise DependencyError(f"{name!r} depends on {', '.join(map(repr, missing))}, which is not enabled")
    sorter = graphlib.TopologicalSorter({name: tuple(needs) for name, needs in depends.items()})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise DependencyError(f"dependency cycle: {cycle}") from None
    position = {name: i for i, name in enumerate(depends)}
    ordered: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        ordered.extend(ready)
        sorter.done(*ready)
    return ordered


def _positional(function: Callable[..., Any], argnames: Sequence[str], spec_argnames: Sequence[str]) -> Handler:
    """``function`` callable as ``handler(event, ctx)``, the way the pipeline calls it.

    pluggy accepts an implementation taking any subset of the spec's
    arguments, in any order (``on_bar(self, bar)``), and validation passes
    it; called positionally it would fail, or get its arguments swapped, on
    every event. Implementations declaring exactly the spec are called as is.
    """
    if tuple(argnames) == tuple(spec_argnames):
        return cast(Handler, function)
    picks = [tuple(spec_argnames).index(name) for name in argnames]

    def call(event: Any, ctx: ModuleContext) -> ModuleOutput | None:
        given = (event, ctx)
        return cast(ModuleOutput | None, function(*[given[index] for index in picks]))

    return call


class BucketPipeline:
    """The modules, latest outputs and fusion of one bucket of symbols."""

    def __init__(
        self,
        *,
        name: str,
        symbols: Sequence[str],
        fusion: FusionConfig,
        engine: EngineConfig,
        clock: EventClock,
    ) -> None:
        self.name = name
        self.symbols = tuple(symbols)
        self.fusion_config = fusion
        self.engine_config = engine
        self.clock = clock
        self.pm = OrchestratorPluginManager()
        self.builtin_fusion = BuiltinFusion(fusion.rank_window)
        self.pm.register(self.builtin_fusion, name=BUILTIN_FUSION_NAME)
        self.slots: dict[str, ModuleSlot] = {}
        self.latest: dict[str, dict[str, ModuleOutput]] = {symbol: {} for symbol in self.symbols}
        self._dispatch: dict[type, tuple[tuple[ModuleSlot, Handler], ...]] = {}
        self._fusers: tuple[Fuser, ...] = ()
        self._module_fusers: tuple[tuple[ModuleSlot, FuseFunction], ...] = ()
        self._weights: dict[str | None, dict[str, float]] = {}
        self._next_retry_ts = _NEVER

    # ----------------------------------------------------------- hot path

    def process(self, event: MarketEvent) -> bool:
        """Run the event through every consuming module; True if any output changed."""
        if event.ts >= self._next_retry_ts:
            self._retry_isolated(event.ts)
        dispatch = self._dispatch.get(event.__class__)
        if not dispatch:
            return False
        latest = self.latest[event.symbol]
        changed = False
        for slot, handler in dispatch:
            start = perf_counter_ns()
            try:
                output = handler(event, slot.ctx)
            except Exception as exc:  # noqa: BLE001 - a module's failure is contained, counted, isolated
                self._on_error(slot, exc, event)
                continue
            elapsed = perf_counter_ns() - start
            if output is not None and output.__class__ is not ModuleOutput:
                # An error like a raise: counted once, and never also a success
                # (which would reset the consecutive count and so never isolate).
                self._on_error(slot, TypeError(f"returned {type(output).__name__}, not ModuleOutput"), event)
                continue
            health = slot.health
            health.calls += 1
            health.total_ns += elapsed
            health.ring[health.ring_count & _RING_MASK] = elapsed
            health.ring_count += 1
            if elapsed > slot.budget_ns:
                self._on_overrun(slot, elapsed, event)
                if slot.status is _ISOLATED:
                    continue  # its outputs were just dropped: do not store this one again
            elif slot.status is not _ACTIVE:
                # Recovered, including after a retry from isolation (which
                # clears the counters but leaves the module DEGRADED).
                health.consecutive_errors = 0
                health.consecutive_overruns = 0
                slot.status = _ACTIVE
            if output is not None:
                latest[slot.name] = output
                changed = True
        return changed

    def _regime_and_weights(self, outputs: Mapping[str, ModuleOutput]) -> tuple[str | None, dict[str, float]]:
        regime_module = self.fusion_config.regime_module
        regime = None
        if regime_module is not None:
            regime_output = outputs.get(regime_module)
            regime = None if regime_output is None else regime_output.label
        return regime, self._weights.get(regime) or self._weights[None]

    def target(self, symbol: str, ts: int) -> tuple[float, float, FusionResult | None, str]:
        """The fused (target, confidence) for the event path.

        Module providers (neural fusion) are asked first with a full request;
        if none answers, the built-in method computes only target and
        confidence, and the full result (mu, sigma, contributions) is left
        for ``fuse`` to build when the target becomes a decision. Returns
        the full result when a provider gave one, and the provider's name.
        """
        outputs = self.latest[symbol]
        regime, weights = self._regime_and_weights(outputs)
        if self._module_fusers:
            request = FusionRequest(symbol, self.name, ts, outputs, weights, regime, self.fusion_config.method)
            answered = self._ask_modules(request)
            if answered is not None:
                result, provider = answered
                return result.target, result.confidence, result, provider
        target, confidence = self.builtin_fusion.quick(outputs, weights, self.fusion_config.method, symbol)
        return target, confidence, None, BUILTIN_FUSION_NAME

    def fuse(self, symbol: str, ts: int) -> tuple[FusionResult, str]:
        """The full fused result: module providers in order, then the built-in method."""
        outputs = self.latest[symbol]
        regime, weights = self._regime_and_weights(outputs)
        request = FusionRequest(symbol, self.name, ts, outputs, weights, regime, self.fusion_config.method)
        answered = self._ask_modules(request) if self._module_fusers else None
        if answered is not None:
            return answered
        return self.builtin_fusion.fuse_outputs(outputs, weights, request.method, symbol), BUILTIN_FUSION_NAME

    def _ask_modules(self, request: FusionRequest) -> tuple[FusionResult, str] | None:
        for slot, fuse in self._module_fusers:
            try:
                result = fuse(request)
            except Exception as exc:  # noqa: BLE001 - a failing provider falls through to the next
                self._on_error(slot, exc, None)
                continue
            if result is not None:
                if result.__class__ is not FusionResult:
                    self._on_error(slot, TypeError(f"fuse returned {type(result).__name__}"), None)
                    continue
                return result, slot.name
        return None

    # ------------------------------------------------- containment

    def _on_error(self, slot: ModuleSlot, exc: BaseException, event: MarketEvent | None) -> None:
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" at {frame.filename}:{frame.lineno}" if frame else ""
        slot.health.record_error(f"{type(exc).__name__}: {exc}{where}")
        if slot.status is ModuleStatus.ACTIVE:
            slot.status = ModuleStatus.DEGRADED
        errors = slot.health.errors
        if errors == 1 or errors % _LOG_EVERY_N_ERRORS == 0:
            log.warning(
                "module_error",
                module=slot.name,
                bucket=self.name,
                errors=errors,
                error=slot.health.last_error,
                symbol=None if event is None else event.symbol,
            )
        if slot.health.consecutive_errors >= self.engine_config.isolate_after_errors:
            self.isolate(slot, "errors")

    def _on_overrun(self, slot: ModuleSlot, elapsed_ns: int, event: MarketEvent) -> None:
        health = slot.health
        health.overruns += 1
        health.consecutive_overruns += 1
        health.consecutive_errors = 0
        if slot.status is ModuleStatus.ACTIVE:
            slot.status = ModuleStatus.DEGRADED
        if health.consecutive_overruns >= self.engine_config.isolate_after_overruns:
            self.isolate(slot, f"latency budget overrun ({elapsed_ns / 1000:.0f} us > {slot.budget_ns / 1000:.0f} us)")

    def isolate(self, slot: ModuleSlot, reason: str) -> None:
        """Take a module out of the event path for a while; its outputs are
        dropped so fusion and dependents stop seeing stale views."""
        slot.health.isolations += 1
        base_ms = int(self.engine_config.retry_isolated_after_s * 1000)
        slot.isolation_backoff_ms = min(base_ms * 2 ** (slot.health.isolations - 1), _MAX_BACKOFF_MS)
        slot.retry_at_ts = self.clock.now + slot.isolation_backoff_ms
        slot.status = ModuleStatus.ISOLATED
        self._forget_outputs(slot.name)
        self.rebuild()
        log.error(
            "module_isolated",
            module=slot.name,
            bucket=self.name,
            reason=reason,
            retry_in_s=slot.isolation_backoff_ms / 1000,
            last_error=slot.health.last_error,
        )

    def _retry_isolated(self, ts: int) -> None:
        for slot in self.slots.values():
            if slot.status is ModuleStatus.ISOLATED and slot.retry_at_ts <= ts:
                slot.status = ModuleStatus.DEGRADED
                slot.health.consecutive_errors = 0
                slot.health.consecutive_overruns = 0
                log.info("module_retried", module=slot.name, bucket=self.name)
        self.rebuild()

    def _forget_outputs(self, name: str) -> None:
        for outputs in self.latest.values():
            outputs.pop(name, None)
        self.builtin_fusion.rank.forget(name)

    # ------------------------------------------------- module set changes

    def make_context(self, name: str, depends_on: Iterable[str], state_dir: Any = None) -> ModuleContext:
        return ModuleContext(
            name=name,
            bucket=self.name,
            symbols=self.symbols,
            clock=self.clock,
            latest=self.latest,
            readable=frozenset(depends_on),
            state_dir=state_dir,
        )

    def check_dependencies(self, slots: Mapping[str, Sequence[str]]) -> list[str]:
        """Order for a prospective module set; raises ``DependencyError``."""
        return dependency_order(slots)

    def add(self, slot: ModuleSlot, *, state: ModuleState | None = None) -> bool:
        """Register and start ``slot``; returns whether it adopted ``state``."""
        depends = {name: s.depends_on for name, s in self.slots.items()}
        depends[slot.name] = slot.depends_on
        order = dependency_order(depends)
        self.pm.register(slot.instance, name=slot.name)
        try:
            slot.handlers = self._handlers_of(slot)
            adopted = bool(state is not None and slot.instance.import_state(state))
            slot.instance.on_start(slot.ctx)
        except BaseException:
            self.pm.unregister(name=slot.name)
            raise
        slot.status = ModuleStatus.ACTIVE
        self.slots[slot.name] = slot
        self.slots = {name: self.slots[name] for name in order}
        self.rebuild()
        return adopted

    def remove(self, name: str) -> ModuleState | None:
        """Stop and unregister a module; returns its exported state."""
        slot = self.slots.pop(name)
        self.rebuild()
        state = self._stop(slot)
        self.pm.unregister(name=name)
        self._forget_outputs(name)
        return state

    def replace(self, new: ModuleSlot) -> bool:
        """Swap ``new`` in for the module of the same name, handing its state over.

        The new instance is registered before the old one is unregistered,
        and the old one's outputs stay visible until the new one produces,
        so dependents and fusion never see a gap. Returns whether the new
        instance adopted the old state. A new version may declare other
        dependencies: they are checked before the old one stops, and the
        call order follows them.
        """
        old = self.slots[new.name]
        depends = {name: s.depends_on for name, s in self.slots.items()}
        depends[new.name] = new.depends_on
        order = dependency_order(depends)
        state = self._stop(old)
        self.pm.unregister(name=old.name)
        try:
            self.pm.register(new.instance, name=new.name)
            new.handlers = self._handlers_of(new)
            adopted = bool(state is not None and new.instance.import_state(state))
            new.instance.on_start(new.ctx)
        except BaseException:
            if self.pm.is_registered(new.instance):
                self.pm.unregister(new.instance)
            # The old instance was stopped but its state is intact: put it back.
            self.pm.register(old.instance, name=old.name)
            old.instance.on_start(old.ctx)
            raise
        new.swaps = old.swaps + 1
        new.status = ModuleStatus.ACTIVE
        self.slots[new.name] = new
        self.slots = {name: self.slots[name] for name in order}
        self.rebuild()
        return adopted

    def _stop(self, slot: ModuleSlot) -> ModuleState | None:
        state = None
        try:
            state = slot.instance.export_state()
        except Exception as exc:  # noqa: BLE001 - a module that cannot export starts its successor cold
            log.warning("module_export_failed", module=slot.name, error=f"{type(exc).__name__}: {exc}")
        try:
            slot.instance.on_stop()
        except Exception as exc:  # noqa: BLE001
            log.warning("module_stop_failed", module=slot.name, error=f"{type(exc).__name__}: {exc}")
        return state

    def _handlers_of(self, slot: ModuleSlot) -> dict[Any, Handler]:
        handlers: dict[Any, Handler] = {}
        for kind in slot.consumes:
            caller = getattr(self.pm.hook, HOOK_OF_KIND[kind])
            spec_argnames = caller.spec.argnames if caller.spec is not None else ()
            for impl in caller.get_hookimpls():
                if impl.plugin is slot.instance:
                    handlers[kind] = _positional(impl.function, impl.argnames, spec_argnames)
        return handlers

    def set_fusion(self, fusion: FusionConfig) -> None:
        self.fusion_config = fusion
        self.rebuild()

    def rebuild(self) -> None:
        """Recompute dispatch tables, fusion providers and weights."""
        serving = [s for s in self.slots.values() if s.status is not ModuleStatus.ISOLATED]
        self._dispatch = {
            _CLASS_OF_KIND[kind]: tuple((slot, slot.handlers[kind]) for slot in serving if kind in slot.handlers)
            for kind in EventKind
        }
        by_instance = {id(slot.instance): slot for slot in serving}
        fusers: list[Fuser] = []
        # pluggy calls implementations in reverse registration order, with
        # tryfirst/trylast applied; keep exactly that order.
        for impl in reversed(self.pm.hook.fuse.get_hookimpls()):
            function = cast(Callable[[FusionRequest], FusionResult | None], impl.function)
            if impl.plugin is self.builtin_fusion:
                fusers.append((None, function))
            elif id(impl.plugin) in by_instance:
                fusers.append((by_instance[id(impl.plugin)], function))
        self._fusers = tuple(fusers)
        # Module providers in call order; the built-in method is always the last resort.
        self._module_fusers = tuple((slot, fuse) for slot, fuse in fusers if slot is not None)
        base = {name: self.fusion_config.weights.get(name, slot.weight) for name, slot in self.slots.items()}
        self._weights = {None: base}
        for label, multipliers in self.fusion_config.regime_weights.items():
            self._weights[label] = {name: w * multipliers.get(name, 1.0) for name, w in base.items()}
        isolated = [s.retry_at_ts for s in self.slots.values() if s.status is ModuleStatus.ISOLATED]
        self._next_retry_ts = min(isolated, default=_NEVER)

    def health(self) -> list[HealthSnapshot]:
        return [slot.snapshot() for slot in self.slots.values()]

    def stop(self) -> dict[str, ModuleState]:
        """Stop every module (shutdown); returns their exported states."""
        states: dict[str, ModuleState] = {}
        for name in reversed(list(self.slots)):
            state = self.remove(name)
            if state is not None:
                states[name] = state
        return states
