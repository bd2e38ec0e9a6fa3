"""Neural fusion over a stream: no look-ahead in training and outputs, state
hand-over (hot swap, restart from disk, damaged or foreign states), layout
changes, and the out-of-sample comparison with equal-weight fusion."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from neural_fusion_support import (
    MA,
    MINUTE,
    SMALL,
    START,
    SYMBOLS,
    fuse_trace,
    harness,
    market_events,
    trained,
    walk_bars,
)
from scipy.stats import spearmanr
from structlog.testing import capture_logs

from orchestrator.contract import ModuleState
from orchestrator.engine.slot import ModuleSlot
from orchestrator.engine.state_store import ModuleStateStore
from orchestrator.events import Bar, BookUpdate, MarketEvent, Trade
from orchestrator.feeds.config import SimulatedMarketConfig
from orchestrator.feeds.simulated import SimulatedMarket
from orchestrator.fusion.builtin import BuiltinFusion
from orchestrator.fusion.config import FusionConfig
from orchestrator.fusion.request import FusionRequest
from orchestrator.plugins.loader import instantiate, validate_params
from orchestrator.testing import ModuleHarness, load_named

# ------------------------------------------------------------------ no look-ahead


def test_training_only_uses_samples_whose_horizon_has_passed() -> None:
    """Every sample in a training batch has its input time t with t + horizon <= the event time of the batch."""
    neural = {"horizon_ms": 2_000, "refresh_ms": 250, "sample_ms": 250, "warmup_samples": 64, "train_batch": 32}
    h = harness(neural, modules={"cob": {}, "ma_crossover": MA})
    module = h.instance("neural_fusion")
    batches: list[tuple[int, int, tuple[int, ...]]] = []
    module.on_train_batch = lambda now, times: batches.append((now, h.clock.now, tuple(times)))
    fuse_trace(h, market_events(12_000))
    assert len(batches) > 20
    for now, clock, times in batches:
        assert now == clock  # trained while processing the event of that time, not later
        assert len(times) == 32
        assert max(times) + neural["horizon_ms"] <= now


def _events_from(steps: list[tuple[int, int, int, float]]) -> list[MarketEvent]:
    """Steps (ms later, symbol, kind, log move) -> bars, trades and books in time order."""
    events: list[MarketEvent] = []
    ts = START
    prices = dict.fromkeys(SYMBOLS, 100.0)
    for gap, which, kind, move in steps:
        ts += gap
        symbol = SYMBOLS[which]
        price = prices[symbol] = prices[symbol] * math.exp(move)
        if kind == 0:
            events.append(Bar(symbol, ts, price, price * 1.001, price * 0.999, price, 1.0, 1_000))
        elif kind == 1:
            events.append(Trade(symbol, ts, price, 1.0, 1 if move >= 0 else -1))
        else:
            events.append(BookUpdate(symbol, ts, (price - 0.01,), (1.0,), (price + 0.01,), (2.0,)))
    return events


TINY: dict[str, Any] = {
    "horizon_ms": 3_000,
    "refresh_ms": 0,
    "sample_ms": 0,
    "warmup_samples": 8,
    "train_batch": 8,
    "minibatch": 4,
    "hidden_layers": [4],
    "skill_window": 4,
    "min_skill": -1.0,
}
STEPS = st.lists(
    st.tuples(st.integers(0, 1_500), st.integers(0, 1), st.integers(0, 2), st.floats(-0.01, 0.01, allow_nan=False)),
    min_size=20,
    max_size=120,
)


@settings(max_examples=25, deadline=None)
@given(steps=STEPS, cut=st.floats(0.2, 0.9))
def test_no_look_ahead_prefix_outputs_do_not_depend_on_later_events(
    steps: list[tuple[int, int, int, float]], cut: float
) -> None:
    events = _events_from(steps)
    prefix = int(len(events) * cut)
    modules = {"ma_crossover": {"fast": 2, "slow": 3}}
    full = fuse_trace(harness(TINY, modules=modules), events, always=True)
    short_harness = harness(TINY, modules=modules)
    batches: list[tuple[int, tuple[int, ...]]] = []
    short_harness.instance("neural_fusion").on_train_batch = lambda now, times: batches.append((now, tuple(times)))
    short = fuse_trace(short_harness, events[:prefix], always=True)
    assert short == full[:prefix]
    assert all(max(times) + TINY["horizon_ms"] <= now for now, times in batches)


# ------------------------------------------------------------------ state


def _through_disk(states: Mapping[str, ModuleState], directory: Path) -> dict[str, ModuleState]:
    """As the daemon does at shutdown and start: every state written to and read back from JSON files."""
    store = ModuleStateStore(directory)
    for name, state in states.items():
        store.save("harness", name, state)
    loaded = {name: store.load("harness", name) for name in states}
    return {name: state for name, state in loaded.items() if state is not None}


ROUND_TRIP: dict[str, Any] = {
    "horizon_ms": 2_000,
    "refresh_ms": 500,
    "sample_ms": 250,
    "warmup_samples": 64,
    "train_batch": 32,
    "min_skill": -1.0,
}


ROUND_TRIP_MODULES: dict[str, dict[str, Any]] = {"cob": {}, "ma_crossover": MA}
SPLIT = 10_001


def _assert_mid_batch(state: ModuleState) -> None:
    data = state.data
    assert data["network"] is not None
    assert data["batch"]["targets"]
    assert all(entry["pending"] for entry in data["symbols"].values())
    assert all(entry["result"] is not None for entry in data["symbols"].values())
    json.dumps(data, allow_nan=False)  # plain JSON: no NaN, no numpy types


def test_hot_swap_mid_stream_equals_an_uninterrupted_run() -> None:
    """The core's own hand-over (``BucketPipeline.replace``): export, stop, import into a new instance."""
    events = market_events(16_000)
    uninterrupted = fuse_trace(harness(ROUND_TRIP, modules=ROUND_TRIP_MODULES), events)
    h = harness(ROUND_TRIP, modules=ROUND_TRIP_MODULES)
    before = fuse_trace(h, events[:SPLIT])
    _assert_mid_batch(h.instance("neural_fusion").export_state())
    loaded = load_named("neural_fusion")
    params = validate_params(loaded, ROUND_TRIP, key_path="modules.neural_fusion.params")
    successor = ModuleSlot(
        name="neural_fusion",
        bucket="harness",
        instance=instantiate(loaded, params),
        loaded=loaded,
        params=params,
        weight=1.0,
        budget_us=1e9,
        ctx=h.pipeline.make_context("neural_fusion", ()),
    )
    assert h.pipeline.replace(successor)
    after = fuse_trace(h, events[SPLIT:])
    assert before + after == uninterrupted
    assert sum(1 for fused in after if fused and fused[1] == "neural_fusion") > 1000


def test_restart_from_the_state_directory_mid_stream_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """States written to JSON files and read back, as the daemon does at shutdown and start."""
    events = market_events(16_000)
    uninterrupted = fuse_trace(harness(ROUND_TRIP, modules=ROUND_TRIP_MODULES), events)
    first = harness(ROUND_TRIP, modules=ROUND_TRIP_MODULES)
    before = fuse_trace(first, events[:SPLIT])
    exported = first.export_states()
    _assert_mid_batch(exported["neural_fusion"])
    restored = harness(ROUND_TRIP, modules=ROUND_TRIP_MODULES, states=_through_disk(exported, tmp_path))
    assert restored.adopted == {"cob": True, "ma_crossover": True, "neural_fusion": True}
    # A restarted pipeline has no outputs until each module produces again (ma_crossover: at its next
    # bar), and fusion would see fewer modules meanwhile. Carry them over, so that this test isolates
    # neural fusion's own hand-over from that property of the core.
    for symbol, outputs in first.pipeline.latest.items():
        restored.pipeline.latest[symbol].update(outputs)
    after = fuse_trace(restored, events[SPLIT:])
    assert before + after == uninterrupted


def test_restored_network_predicts_and_trains_on_identically() -> None:
    h = trained(walk_bars(400, seed=7))
    original = h.instance("neural_fusion")
    state = original.export_state()
    loaded = load_named("neural_fusion")
    copy = loaded.cls(loaded.contract.params_model.model_validate(SMALL))
    assert copy.import_state(
        ModuleState(state.module, state.version, state.state_version, json.loads(json.dumps(state.data)))
    )
    rows = np.random.default_rng(3).standard_normal((40, original._layout.width))
    assert np.array_equal(copy._network.mlp.predict(rows), original._network.mlp.predict(rows))
    targets = np.tanh(rows[:, 0])
    for network in (original._network, copy._network):
        network.partial_fit(rows[:16], targets[:16])
    assert np.array_equal(copy._network.mlp.predict(rows), original._network.mlp.predict(rows))


@pytest.mark.parametrize(
    "change",
    [{"horizon_ms": 3 * MINUTE}, {"hidden_layers": [16]}, {"activation": "tanh"}],
)
def test_state_from_other_horizon_or_network_shape_is_rejected(change: dict[str, Any]) -> None:
    state = trained(walk_bars(200, seed=8)).instance("neural_fusion").export_state()
    loaded = load_named("neural_fusion")
    other = loaded.cls(loaded.contract.params_model.model_validate({**SMALL, **change}))
    assert not other.import_state(state)


def test_damaged_or_foreign_state_is_rejected() -> None:
    state = trained(walk_bars(200, seed=8)).instance("neural_fusion").export_state()
    loaded = load_named("neural_fusion")
    fresh = loaded.cls(loaded.contract.params_model.model_validate(SMALL))
    assert not fresh.import_state(ModuleState("ma_crossover", state.version, state.state_version, state.data))
    assert not fresh.import_state(ModuleState(state.module, state.version, state.state_version + 1, state.data))
    damaged = json.loads(json.dumps(state.data))
    damaged["scaler"]["mean"] = damaged["scaler"]["mean"][:-1]
    assert not fresh.import_state(ModuleState(state.module, state.version, state.state_version, damaged))
    assert fresh._network.mlp is None
    assert fresh._layout is None


def test_a_removed_module_drops_its_columns_keeps_the_rest_and_is_logged() -> None:
    bars = walk_bars(300, seed=9)
    both = {"ma_crossover": MA, "bollinger": {"window": 10}}
    h = harness(SMALL, modules=both)
    fuse_trace(h, bars[:400])
    old = h.instance("neural_fusion")
    old_columns = old._layout.columns
    old_weights = old._network.mlp.coefs_[0].copy()
    # The module set changes across a restart: bollinger is gone.
    restored = harness(SMALL, modules={"ma_crossover": MA}, states=h.export_states())
    module = restored.instance("neural_fusion")
    with capture_logs() as logs:
        fuse_trace(restored, bars[400:])
    changes = [entry for entry in logs if entry["event"] == "neural_fusion_layout_changed"]
    assert len(changes) == 1
    assert changes[0]["removed"] == [c for c in sorted(old_columns) if c.startswith("bollinger:")]
    assert changes[0]["added"] == []
    assert module.layout_changes == 1
    assert not any(column.startswith("bollinger:") for column in module._layout.columns)
    kept = [old_columns.index(column) for column in module._layout.columns]
    assert module._network.mlp.coefs_[0].shape == (len(kept), 8)
    assert module.trained_samples > old.trained_samples  # trains on with the new layout
    # Weights of kept columns carry over: check right at the remap, before any training.
    fresh = harness(SMALL, modules={"ma_crossover": MA}, states=h.export_states()).instance("neural_fusion")
    request = FusionRequest(SYMBOLS[0], "harness", bars[400].ts, {}, {"ma_crossover": 1.0}, None, "weighted")
    fresh.fuse(request)
    assert np.array_equal(fresh._network.mlp.coefs_[0], old_weights[kept])


def test_an_added_module_starts_with_zero_weights() -> None:
    bars = walk_bars(300, seed=10)
    h = harness(SMALL)
    fuse_trace(h, bars[:400])
    grown = harness(SMALL, modules={"ma_crossover": MA, "bollinger": {"window": 10}}, states=h.export_states())
    module = grown.instance("neural_fusion")
    weights = {"ma_crossover": 1.0, "bollinger": 1.0}
    module.fuse(FusionRequest(SYMBOLS[0], "harness", bars[400].ts, {}, weights, None, "weighted"))
    added = [i for i, column in enumerate(module._layout.columns) if column.startswith("bollinger:")]
    assert len(added) == 4
    assert not module._network.mlp.coefs_[0][added].any()


# ------------------------------------------------------------------ out of sample


@pytest.mark.slow
def test_beats_equal_weight_fusion_out_of_sample_on_the_simulated_market() -> None:
    """Information coefficient on a held-out segment: neural fusion vs equal-weight fusion.

    Metric: Spearman rank correlation, pooled over three symbols, between the fused target at every
    book update (one per symbol and 250 ms tick) and the realised return of the mid over the next
    500 ms (two ticks). Seeded simulated market (seed 5, 120,000 events, about 7 hours of market time
    per symbol); modules cob, microstructure, ma_crossover and regime with default parameters, plus
    neural_fusion (horizon 500 ms, refresh 250 ms, a sample every 500 ms; default network). The
    first 60 % of the events train it (online, as in service); the last 40 % (about 40,000 updates)
    are held out. Fusion runs as in the daemon, after each event that changed an output; every
    held-out target is the network's (it is past warm-up), made before its outcome was known.

    Measured when written: neural IC 0.079 vs equal-weight IC 0.020 (cob alone 0.119, the other
    three ~0 at this horizon; 99.6 % of the held-out targets came from the network). In the simulator
    the order flow tilts the book and moves the next tick, so this close only the book module is
    informative; equal weights dilute it with three uninformative views, the network learns which
    to trust. Seeds 1-8 (scripts/neural_fusion_eval.py): neural 0.078-0.098, equal 0.017-0.025.
    """
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    modules: dict[str, dict[str, Any]] = {"cob": {}, "microstructure": {}, "ma_crossover": {}, "regime": {}}
    neural = {"horizon_ms": 500, "refresh_ms": 250, "sample_ms": 500}
    events, held_out_from, horizon_ticks = 120_000, 72_000, 2
    h = ModuleHarness(
        {**modules, "neural_fusion": neural},
        symbols=symbols,
        fusion=FusionConfig(method="weighted", regime_module="regime"),
    )
    equal_weights = dict.fromkeys(modules, 1.0)
    equal_weight = BuiltinFusion()
    latest: dict[str, tuple[float, str]] = dict.fromkeys(symbols, (0.0, "none"))
    # Per symbol, per book update: (neural target, equal-weight target, mid, held out?, provider)
    rows: dict[str, list[tuple[float, float, float, bool, str]]] = {symbol: [] for symbol in symbols}
    stream = SimulatedMarket(SimulatedMarketConfig(seed=5, book_levels=5, trades_per_tick=0.2), symbols).events()
    for index in range(events):
        event = next(stream)
        if h.push(event):
            fused = h.pipeline.fuse(event.symbol, event.ts)
            if fused is not None:
                latest[event.symbol] = (fused[0].target, fused[1])
        if isinstance(event, BookUpdate):
            outputs = h.pipeline.latest[event.symbol]
            request = FusionRequest(event.symbol, "harness", event.ts, outputs, equal_weights, None, "weighted")
            baseline = equal_weight.fuse(request)
            target, provider = latest[event.symbol]
            equal = 0.0 if baseline is None else baseline.target
            rows[event.symbol].append((target, equal, event.mid, index >= held_out_from, provider))
    neural_targets, equal_targets, realised, providers = [], [], [], []
    for series in rows.values():
        for now, later in zip(series, series[horizon_ticks:], strict=False):
            if now[3]:
                providers.append(now[4])
                neural_targets.append(now[0])
                equal_targets.append(now[1])
                realised.append(later[2] / now[2] - 1.0)
    assert len(realised) > 35_000
    neural_ic = spearmanr(neural_targets, realised)[0]
    equal_ic = spearmanr(equal_targets, realised)[0]
    answered = providers.count("neural_fusion") / len(providers)
    print(
        f"held-out IC: neural {neural_ic:.4f}, equal weight {equal_ic:.4f}, n={len(realised)}, answered {answered:.4f}"
    )
    assert answered > 0.9
    assert neural_ic > equal_ic
