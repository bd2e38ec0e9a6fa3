"""Neural fusion: a small MLP that learns, online, how to combine the bucket's
module outputs into one expected return per symbol.

What it computes. At each refresh the inputs of one symbol (per module, sorted
by name: a presence flag, alpha, mu / sigma, confidence and allow-listed
features; then a one-hot of the regime label; see ``layout``) are
standardised with running means and variances and fed to a multilayer
perceptron whose output o is the expected return over ``horizon_ms`` in units
of the symbol's return standard deviation s (running RMS of its realised
horizon returns). Then

    mu     = o s
    sigma  = e s,  e = RMS of the out-of-sample errors (y - o_t) on matured samples
    target = tanh(k o / e)           (k = target_gain; a bounded mu / sigma score, not Kelly's
                                      mu / sigma², whose 1 / sigma² explodes when errors shrink)
    confidence = max(0, rho) min(1, n / skill_window), rho = EW correlation of o_t and y

Contributions are leave-one-out (occlusion) attributions: module i's share is
target - target(without i) (its columns set to "missing"), plus the part the
deltas do not explain (regime, bias, interactions) spread in proportion to
|delta|, so the contributions sum exactly to the target.

Training, without look-ahead. A refresh at event time t queues a sample
every ``sample_ms``: the inputs as fuse saw and standardised them at t, the
symbol's price and the network's output at t. (A snapshot, not the
``FusionRequest``: its ``outputs`` is the pipeline's live mapping.) The
sample matures at the symbol's first price at or after t + horizon_ms (book
mid if it has books, else last trade, else bar close: a mid has no bid-ask
bounce); the realised simple return r gives y = clip(r / s, ±target_clip).
Every ``train_batch`` matured samples go through ``MLPRegressor.partial_fit``
(Adam, Kingma & Ba 2015; fixed-seed minibatch shuffles): one library call
per batch, and every output and skill estimate comes from a network that
has not seen that outcome. ``on_train_batch`` (a seam for tests) is called
with the event time and the input times of each batch.

Inference cost, the trade-off. Evaluating the network costs ~15-25 µs
(encode, scale, one batched numpy forward pass over the input and its
one-module-blanked ablations, attribution), and ``fuse`` is called after
nearly every event. So the result is cached per symbol and recomputed only
every ``refresh_ms`` of event time, on the first call after the symbol's bar
and after a layout change; in between ``fuse`` is a lookup (~0.1 µs). On the
simulated market (~6 calls per symbol and second) that averages ~2.5-3 µs a
call at the default 2 s (~4 µs at 1 s); busier feeds spread a refresh over
more calls. The price: a new module view reaches the target up to
``refresh_ms`` late; keep it well below ``horizon_ms``.

Layout. Modules are the bucket's other modules (or ``modules``) sorted by
name; a missing one gives 0 inputs and presence 0, so the network's shape
is fixed. When the set (or the feature allow-list) changes, kept columns keep
their weights, scaler statistics and queued values, removed ones are
dropped, added ones start with zero weights; this is logged as
``neural_fusion_layout_changed``. State from another horizon, hidden-layer
shape or activation is rejected (the module starts cold).

Inputs: books, trades and bars (prices only) plus the ``FusionRequest``.
Until ``warmup_samples`` samples have been trained on, and whenever the
out-of-sample correlation rho is below ``min_skill`` (default 0: a network
worse than a coin leaves the decision to others), ``fuse`` returns None and
the configured built-in method decides. References: Rumelhart, Hinton &
Williams (1986) backpropagation; Glorot & Bengio (2010) initialisation;
Grinold & Kahn, Active Portfolio Management (information coefficient);
Zeiler & Fergus (2014) occlusion attribution. Complexity: O(1) per event;
O(inputs x hidden) per refresh; one partial_fit per ``train_batch`` samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from orchestrator import (
    AnalysisModule,
    Bar,
    BookUpdate,
    EventKind,
    FusionRequest,
    FusionResult,
    MarketEvent,
    ModuleContext,
    ModuleOutput,
    ModuleParams,
    ModuleState,
    Trade,
    hookimpl,
)

from .layout import FloatArray, InputLayout, RunningScaler
from .network import FusionNetwork, self_check_network
from .tracking import PRICE_BAR, PRICE_MID, PRICE_TRADE, SkillTracker, SymbolState, export_symbols, restore_symbols

_NEVER = 2**62
# Weights mappings remembered as giving the current layout (one per regime, per pipeline build).
_MAX_WEIGHTS_SEEN = 16

DEFAULT_FEATURES: dict[str, tuple[str, ...]] = {
    "regime": ("p_trend_up", "p_trend_down", "p_range", "p_high_vol"),
}


class NeuralFusionParams(ModuleParams):
    horizon_ms: int = Field(300_000, gt=0, description="event time ahead of the return the network learns (ms)")
    refresh_ms: int = Field(
        2_000, ge=0, description="event time between two evaluations per symbol (0: every call); a bar always refreshes"
    )
    sample_ms: int = Field(10_000, ge=0, description="event time between two training samples per symbol (ms)")
    modules: tuple[str, ...] | None = Field(
        None, description="modules whose outputs are inputs (sorted by name); None: every other module of the bucket"
    )
    features: dict[str, tuple[str, ...]] = Field(DEFAULT_FEATURES, description="module -> features fed to the network")
    regimes: tuple[str, ...] = Field(
        ("trend_up", "trend_down", "range", "high_vol"), description="regime labels one-hot encoded (others: all 0)"
    )
    hidden_layers: tuple[Annotated[int, Field(gt=0, le=256)], ...] = Field(
        (16,), min_length=1, max_length=4, description="units per hidden layer"
    )
    activation: Literal["relu", "tanh"] = Field("relu", description="hidden-layer activation")
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0, description="Adam's initial step size")
    l2: float = Field(1e-3, ge=0.0, description="L2 penalty on the weights (MLPRegressor alpha)")
    train_batch: int = Field(64, ge=1, le=65_536, description="matured samples per partial_fit call")
    minibatch: int = Field(16, ge=1, description="Adam minibatch within a partial_fit call (<= train_batch)")
    warmup_samples: int = Field(1024, ge=1, description="trained samples before fuse answers (until then: None)")
    target_clip: float = Field(3.0, gt=0.0, description="training targets clipped at this many return std devs")
    target_gain: float = Field(2.0, gt=0.0, description="k in target = tanh(k o / e)")
    min_skill: float = Field(
        0.0, ge=-1.0, le=1.0, description="out-of-sample correlation needed to answer (-1: always answer when warm)"
    )
    scaler_window: int = Field(10_000, ge=2, description="memory (samples) of the input and return scalers")
    skill_window: int = Field(500, ge=2, description="memory (samples) of the error and skill estimates")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the initial weights and minibatch shuffles")

    @model_validator(mode="after")
    def _minibatch_fits(self) -> NeuralFusionParams:
        if self.minibatch > self.train_batch:
            raise ValueError(f"minibatch ({self.minibatch}) must not exceed train_batch ({self.train_batch})")
        return self


@dataclass(slots=True)
class _Batch:
    inputs: list[FloatArray] = field(default_factory=list)
    targets: list[float] = field(default_factory=list)
    times: list[int] = field(default_factory=list)


class NeuralFusionModule(AnalysisModule[NeuralFusionParams]):
    """Fuses module outputs with an online-trained MLP; the built-in method decides while it warms up or lacks skill."""

    name = "neural_fusion"
    version = "1.0.0"
    consumes = frozenset({EventKind.BAR, EventKind.TRADE, EventKind.BOOK})
    Params = NeuralFusionParams
    # The event that completes a batch runs partial_fit (~1-3 ms); handlers average ~1 µs.
    latency_budget_us = 20_000.0

    def __init__(self, params: NeuralFusionParams) -> None:
        super().__init__(params)
        self._own_name = self.name
        self._symbols: dict[str, SymbolState] = {}
        self._network = self._new_network()
        self._layout: InputLayout | None = None
        self._scaler: RunningScaler | None = None
        # The weights mappings known to give the current layout: the pipeline hands
        # over one per regime, and a regime flip must not rebuild the layout.
        self._weights_seen: list[object] = []
        self._batch = _Batch()
        self._skill = SkillTracker(params.skill_window)
        self.trained_samples = 0
        self.layout_changes = 0
        # Seam for tests and research: called as (event time, input times of the batch) before each partial_fit.
        self.on_train_batch: Callable[[int, Sequence[int]], None] | None = None

    def _new_network(self) -> FusionNetwork:
        p = self.params
        return FusionNetwork(
            hidden_layers=p.hidden_layers,
            activation=p.activation,
            learning_rate=p.learning_rate,
            l2=p.l2,
            minibatch=p.minibatch,
            seed=p.seed,
        )

    def on_start(self, ctx: ModuleContext) -> None:
        super().on_start(ctx)
        self._own_name = ctx.name

    # ------------------------------------------------------------ prices: where samples mature

    def on_book(self, book: BookUpdate, ctx: ModuleContext) -> ModuleOutput | None:
        state = self._symbols.get(book.symbol) or self._add_symbol(book.symbol)
        bids, asks = book.bid_prices, book.ask_prices
        if bids and asks:
            mid = 0.5 * (bids[0] + asks[0])
            if mid > 0.0:
                state.price = mid
                state.price_source = PRICE_MID
        if book.ts >= state.next_due:
            self._mature(state, book.ts)
        return None

    def on_trade(self, trade: Trade, ctx: ModuleContext) -> ModuleOutput | None:
        state = self._symbols.get(trade.symbol) or self._add_symbol(trade.symbol)
        if trade.price > 0.0 and state.price_source <= PRICE_TRADE:
            state.price = trade.price
            state.price_source = PRICE_TRADE
        # A sample matures at the first price of the symbol's best source at or after its due time.
        if trade.ts >= state.next_due and state.price_source <= PRICE_TRADE:
            self._mature(state, trade.ts)
        return None

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        state = self._symbols.get(bar.symbol) or self._add_symbol(bar.symbol)
        if bar.close > 0.0 and state.price_source <= PRICE_BAR:
            state.price = bar.close
            state.price_source = PRICE_BAR
        # Re-evaluate on the next fuse call, once every module has seen this bar.
        state.next_refresh = bar.ts
        if bar.ts >= state.next_due and state.price_source <= PRICE_BAR:
            self._mature(state, bar.ts)
        return None

    def _add_symbol(self, symbol: str) -> SymbolState:
        state = self._symbols[symbol] = SymbolState()
        return state

    def _mature(self, state: SymbolState, now: int) -> None:
        params = self.params
        horizon = params.horizon_ms
        pending = state.pending
        price = state.price
        batch = self._batch
        while pending and pending[0].ts + horizon <= now:
            sample = pending.popleft()
            realised = price / sample.price - 1.0
            scale = state.observe_return(realised, params.scaler_window)
            if scale <= 0.0:
                continue
            target = max(-params.target_clip, min(params.target_clip, realised / scale))
            if not math.isnan(sample.output):
                self._skill.observe(sample.output, target)
            batch.inputs.append(sample.inputs)
            batch.targets.append(target)
            batch.times.append(sample.ts)
            if len(batch.targets) >= params.train_batch:
                self._train(now)
        state.next_due = pending[0].ts + horizon if pending else _NEVER

    def _train(self, now: int) -> None:
        batch = self._batch
        if self.on_train_batch is not None:
            self.on_train_batch(now, tuple(batch.times))
        try:
            self._network.partial_fit(np.vstack(batch.inputs), np.array(batch.targets))
            self.trained_samples += len(batch.targets)
        except ValueError as exc:
            # scikit-learn refuses to go on from non-finite weights (a diverged network): start the
            # network over and let the built-in method decide until it is warm again.
            self._network = self._new_network()
            self.trained_samples = 0
            self._skill = SkillTracker(self.params.skill_window)
            ctx = getattr(self, "ctx", None)
            if ctx is not None:
                ctx.log.error("neural_fusion_network_reset", error=f"{type(exc).__name__}: {exc}")
        finally:
            # Emptied in place: ``_mature`` holds this batch while it drains the queue.
            batch.inputs.clear()
            batch.targets.clear()
            batch.times.clear()

    # ------------------------------------------------------------ fusion

    @hookimpl(tryfirst=True)
    def fuse(self, request: FusionRequest) -> FusionResult | None:
        state = self._symbols.get(request.symbol)
        if state is not None and request.ts < state.next_refresh:
            return state.result
        return self._refresh(request, state)

    def _refresh(self, request: FusionRequest, state: SymbolState | None) -> FusionResult | None:
        if state is None:
            state = self._add_symbol(request.symbol)
        params = self.params
        ts = request.ts
        state.next_refresh = ts + params.refresh_ms
        layout = self._current_layout(request)
        network = self._network
        skill = self._skill
        answers = (
            network.trained
            and self.trained_samples >= params.warmup_samples
            and state.return_var > 0.0
            and skill.error > 0.0
            # A network that has not shown skill on outcomes it had not seen leaves the decision to the built-in method.
            and skill.correlation >= params.min_skill
        )
        sampling = ts >= state.next_sample and state.price > 0.0
        if not (answers or sampling):
            # Nothing to say and nothing to learn at this moment: no encoding, no forward pass.
            state.result = None
            return None
        scaler = self._scaler
        assert scaler is not None  # set together with the layout
        filled, present = layout.encode(request, scaler.fill)
        # Row 0: the standardised input; row i + 1: the same without module i.
        rows = scaler.standardise(filled)
        outputs = network.outputs(rows) if network.trained else None
        if sampling:
            state.queue(ts, rows[0].copy(), math.nan if outputs is None else outputs[0], params.horizon_ms)
            scaler.update(layout.encode(request)[0])  # with NaN where missing: those are not counted
            state.next_sample = ts + params.sample_ms
        state.result = self._result(state, outputs, present, layout) if answers and outputs is not None else None
        return state.result

    def _result(
        self, state: SymbolState, outputs: list[float], present: list[bool], layout: InputLayout
    ) -> FusionResult:
        # A handful of modules: plain floats beat numpy's per-call overhead here.
        skill = self._skill
        error = math.sqrt(skill.error)
        gain = self.params.target_gain / error
        output, *ablated = outputs
        target = math.tanh(gain * output)
        deltas = [target - math.tanh(gain * value) for value in ablated]
        spread = sum(map(abs, deltas))
        if spread > 0.0:
            unexplained = (target - sum(deltas)) / spread
            shares = [delta + unexplained * abs(delta) for delta in deltas]
        else:
            count = sum(present)
            shares = [target / count if shown else 0.0 for shown in present]
        contributions = {
            name: share
            for name, share, shown in zip(layout.modules, shares, present, strict=True)
            if shown or share != 0.0
        }
        scale = math.sqrt(state.return_var)
        confidence = max(0.0, min(1.0, skill.correlation)) * min(1.0, skill.count / self.params.skill_window)
        return FusionResult(target, confidence, output * scale, error * scale, contributions)

    def _current_layout(self, request: FusionRequest) -> InputLayout:
        """The layout for the bucket's modules; rebuilt (and the state remapped)
        when the module set or the feature allow-list changed."""
        layout = self._layout
        weights = request.weights
        if layout is not None:
            for seen in self._weights_seen:
                if weights is seen:
                    return layout
        # A mapping not seen before: the pipeline rebuilt, or a regime not met yet. Look again.
        params = self.params
        modules = params.modules if params.modules is not None else [n for n in weights if n != self._own_name]
        if layout is not None and layout.modules == tuple(sorted(modules)):
            seen_list = self._weights_seen
            if len(seen_list) >= _MAX_WEIGHTS_SEEN:
                seen_list.clear()  # mappings of pipelines since rebuilt: let them go
            seen_list.append(weights)
            return layout
        wanted = InputLayout(modules, params.features, params.regimes)
        self._weights_seen = [weights]
        if layout is None:
            self._scaler = RunningScaler(wanted, params.scaler_window)
            self._layout = wanted
        elif wanted.columns != layout.columns:
            self._adopt_layout(wanted)
        else:
            return layout
        return wanted

    def _adopt_layout(self, new: InputLayout) -> None:
        """Keep what carries over (weights, scaler stats, queued rows of columns
        that still exist); new columns start untrained; log what changed."""
        old = self._layout
        assert old is not None
        assert self._scaler is not None
        source, keep = new.column_map(old)

        def move(row: FloatArray) -> FloatArray:
            moved = np.zeros(new.width)
            moved[keep] = row[source[keep]]
            return moved

        self._scaler = self._scaler.remap(new, source, keep)
        self._network.remap_inputs(source, keep)
        for state in self._symbols.values():
            for sample in state.pending:
                sample.inputs = move(sample.inputs)
            state.next_refresh = -_NEVER  # cached results describe the old inputs
        self._batch.inputs = [move(row) for row in self._batch.inputs]
        self._layout = new
        self.layout_changes += 1
        ctx = getattr(self, "ctx", None)
        if ctx is not None:
            ctx.log.warning(
                "neural_fusion_layout_changed",
                added=sorted(set(new.columns) - set(old.columns)),
                removed=sorted(set(old.columns) - set(new.columns)),
                kept=int(keep.sum()),
                note="weights and scaler statistics of removed columns dropped; added columns start untrained",
            )

    # ------------------------------------------------------------ state

    def _identity(self) -> dict[str, Any]:
        """The parameters a trained state is only valid for."""
        p = self.params
        return {"horizon_ms": p.horizon_ms, "hidden_layers": list(p.hidden_layers), "activation": p.activation}

    def export_state(self) -> ModuleState | None:
        layout = self._layout
        data: dict[str, Any] = {
            "params": self._identity(),
            "layout": None if layout is None else layout.export(),
            "scaler": None if self._scaler is None else self._scaler.export(),
            "network": self._network.export(),
            "trained_samples": self.trained_samples,
            "layout_changes": self.layout_changes,
            "skill": self._skill.export(),
            "batch": {
                "inputs": [row.tolist() for row in self._batch.inputs],
                "targets": list(self._batch.targets),
                "times": list(self._batch.times),
            },
            "symbols": export_symbols(self._symbols),
        }
        return ModuleState(self.name, self.version, self.state_version, data)

    def import_state(self, state: ModuleState) -> bool:
        if state.module != self.name or state.state_version != self.state_version:
            return False
        data = state.data
        if data.get("params") != self._identity():
            return False  # trained for another horizon or network shape: start cold
        # Everything is rebuilt aside and adopted only if all of it reads back.
        try:
            layout = None if data["layout"] is None else InputLayout.restore(data["layout"])
            scaler = None
            if layout is not None:
                scaler = RunningScaler(layout, self.params.scaler_window)
                scaler.restore(data["scaler"])
            network = self._new_network()
            network.restore(data["network"])
            if network.trained and (layout is None or network.mlp.n_features_in_ != layout.width):
                raise ValueError("network inputs do not match the layout")
            width = 0 if layout is None else layout.width
            symbols = restore_symbols(data["symbols"], width)
            rows = [np.array(row, dtype=np.float64) for row in data["batch"]["inputs"]]
            if any(row.shape != (width,) for row in rows):
                raise ValueError("a batched sample does not match the layout")
            batch = _Batch(rows, [float(t) for t in data["batch"]["targets"]], [int(t) for t in data["batch"]["times"]])
            skill = SkillTracker(self.params.skill_window)
            skill.restore(data["skill"])
            trained, changes = int(data["trained_samples"]), int(data["layout_changes"])
        except (KeyError, TypeError, ValueError):
            return False
        self._layout, self._scaler, self._network, self._symbols = layout, scaler, network, symbols
        self._batch, self._skill, self.trained_samples, self.layout_changes = batch, skill, trained, changes
        self._weights_seen = []
        return True

    def self_check(self, sample: Sequence[MarketEvent]) -> list[str]:
        """The base check, plus: our forward pass and our state export agree with
        the installed scikit-learn (they read its fitted and private attributes)."""
        return super().self_check(sample) + self_check_network(self._network)


MODULE = NeuralFusionModule
