"""microstructure: OFI from Cont-Kukanov-Stoikov's definition, VPIN buckets, trade-sign imbalance,
Kyle's lambda and realised spread by hand; bars-only degradation; no look-ahead; state hand-over."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.contract import ModuleState
from orchestrator.errors import ConfigError
from orchestrator.events import Bar, BookUpdate, MarketEvent, Trade
from orchestrator.feeds.config import SimulatedMarketConfig
from orchestrator.feeds.simulated import SimulatedMarket
from orchestrator.signals import ModuleOutput
from orchestrator.testing import ModuleHarness, load_named

START = 1_735_689_600_000
SECOND = 1_000


def touch(ts: int, bid: float, bid_size: float, ask: float, ask_size: float, symbol: str = "X") -> BookUpdate:
    return BookUpdate(symbol, ts, (bid,), (bid_size,), (ask,), (ask_size,))


def trade(ts: int, price: float, size: float, side: int, symbol: str = "X") -> Trade:
    return Trade(symbol, ts, price, size, side)


def run(
    params: Mapping[str, object], events: Sequence[MarketEvent], symbols: Sequence[str] = ("X",)
) -> list[ModuleOutput | None]:
    return ModuleHarness({"microstructure": params}, symbols=list(symbols)).run(events, "microstructure")


def produced(harness: ModuleHarness, events: Sequence[MarketEvent]) -> list[ModuleOutput | None]:
    """The module's output on each event, None where it produced nothing (a harness restored
    from state has no earlier output to show there, an uninterrupted one would show a stale one)."""
    return [harness.output("microstructure", e.symbol) if harness.push(e) else None for e in events]


def features(output: ModuleOutput | None) -> Mapping[str, float]:
    assert output is not None
    return output.features


def ofi_by_the_paper(books: Sequence[BookUpdate]) -> list[float]:
    """e_n = 1{Pb_n >= Pb_n-1} qb_n - 1{Pb_n <= Pb_n-1} qb_n-1 - 1{Pa_n <= Pa_n-1} qa_n + 1{Pa_n >= Pa_n-1} qa_n-1."""
    events = []
    for before, after in itertools.pairwise(books):
        pb0, qb0, pa0, qa0 = before.bid_prices[0], before.bid_sizes[0], before.ask_prices[0], before.ask_sizes[0]
        pb, qb, pa, qa = after.bid_prices[0], after.bid_sizes[0], after.ask_prices[0], after.ask_sizes[0]
        events.append((pb >= pb0) * qb - (pb <= pb0) * qb0 - (pa <= pa0) * qa + (pa >= pa0) * qa0)
    return events


SMALL_SEQUENCE = [
    touch(START, 100.0, 5.0, 100.2, 4.0),
    touch(START + 1 * SECOND, 100.0, 7.0, 100.2, 4.0),  # bid queue grows: e = 7 - 5 = +2
    touch(START + 2 * SECOND, 100.1, 3.0, 100.2, 6.0),  # bid steps up (+3), ask queue grows (-6 + 4): e = +1
    touch(START + 3 * SECOND, 100.0, 8.0, 100.1, 2.0),  # bid steps down (-3), ask steps down (-2): e = -5
    touch(START + 4 * SECOND, 100.0, 8.0, 100.2, 5.0),  # bid unchanged (8 - 8), ask steps up (+2): e = +2
]


def test_ofi_on_a_small_sequence_by_hand() -> None:
    assert ofi_by_the_paper(SMALL_SEQUENCE) == [2.0, 1.0, -5.0, 2.0]
    trace = run({"ofi_window_ms": 10 * SECOND}, SMALL_SEQUENCE)
    assert [features(o)["ofi"] for o in trace] == [0.0, 2.0, 3.0, -2.0, 0.0]
    # Normalised by the mean touch depth (qb + qa) / 2 of the updates in the window: 5.5, 4.5, 5, 6.5.
    assert features(trace[3])["ofi_normalized"] == pytest.approx(-2.0 / 5.0)
    assert features(trace[4])["ofi_normalized"] == pytest.approx(0.0)
    # A 1.5 s window at t = 3 s holds the updates of 2 s and 3 s only.
    short = run({"ofi_window_ms": 1500}, SMALL_SEQUENCE)
    assert features(short[3])["ofi"] == pytest.approx(-4.0)
    assert features(short[3])["ofi_normalized"] == pytest.approx(-4.0 / 4.75)


def test_ofi_matches_the_paper_on_a_random_walk_of_the_touch() -> None:
    rng = np.random.default_rng(2)
    bid, books = 100.0, []
    for i in range(300):
        bid = round(bid + 0.1 * int(rng.integers(-1, 2)), 1)
        ask = round(bid + 0.1 * int(rng.integers(1, 3)), 1)
        books.append(touch(START + 100 * i, bid, float(rng.integers(1, 9)), ask, float(rng.integers(1, 9))))
    trace = run({"ofi_window_ms": 1000}, books)
    e = [0.0, *ofi_by_the_paper(books)]
    depth = [0.0] + [(b.bid_sizes[0] + b.ask_sizes[0]) / 2 for b in books[1:]]
    for i in range(1, len(books)):
        inside = range(max(1, i - 9), i + 1)  # updates 100 ms apart within (t - 1 s, t]
        f = features(trace[i])
        assert f["ofi"] == pytest.approx(sum(e[k] for k in inside), abs=1e-9)
        mean_depth = sum(depth[k] for k in inside) / len(inside)
        assert f["ofi_normalized"] == pytest.approx(sum(e[k] for k in inside) / mean_depth, abs=1e-9)


def test_vpin_on_a_hand_made_trade_sequence() -> None:
    params = {"bucket_volume": 10.0, "vpin_buckets": 3}
    trades = [
        trade(START + 1, 100.0, 4.0, +1),
        trade(START + 2, 100.0, 4.0, +1),
        trade(START + 3, 100.0, 4.0, -1),  # closes bucket 1: B 8, S 2 -> |B - S| 6; 2 sold carry over
        trade(START + 4, 100.0, 8.0, -1),  # closes bucket 2: S 10 -> 10
        trade(START + 5, 100.0, 25.0, +1),  # buckets 3 and 4 all bought (10, 10), 5 carry over; bucket 1 leaves
        trade(START + 6, 100.0, 5.0, -1),  # closes bucket 5: B 5, S 5 -> 0
    ]
    vpin = [features(o)["vpin"] for o in run(params, trades)]
    assert vpin == pytest.approx([0.0, 0.0, 6 / 10, 16 / 20, 30 / 30, 20 / 30])


def test_vpin_with_the_tick_rule() -> None:
    # Unknown sides: upticks buy, downticks sell, zero ticks repeat the last sign; the very first
    # trade has no sign and counts half bought.
    prices = [100.0, 100.1, 100.2, 100.2, 100.1, 100.0, 100.0]
    trades = [trade(START + i, p, 2.0, 0) for i, p in enumerate(prices)]
    trace = run({"bucket_volume": 4.0, "vpin_buckets": 10}, trades)
    # Buckets: (1 + 2 bought, 1 sold) -> 2; (4 bought) -> 4; (4 sold) -> 4.
    vpin = [features(o)["vpin"] for o in trace]
    assert vpin == pytest.approx([0.0, 2 / 4, 2 / 4, 6 / 8, 6 / 8, 10 / 12, 10 / 12])
    # Known sides win over the tick rule unless the tick rule is asked for.
    sided = [trade(START + i, p, 2.0, -1) for i, p in enumerate(prices)]
    assert features(run({"bucket_volume": 4.0}, sided)[-1])["vpin"] == pytest.approx(1.0)
    ticked = run({"bucket_volume": 4.0, "vpin_buckets": 10, "classification": "tick"}, sided)
    assert [features(o)["vpin"] for o in ticked] == pytest.approx(vpin)


def test_vpin_bucket_is_calibrated_once_from_the_first_trades() -> None:
    # Two trades of 2 lots set the bucket at 2 x their mean size: 4 lots; they are not bucketed.
    trades = [trade(START + i, 100.0, 2.0 if i < 2 else 1.0, +1 if i % 3 else -1) for i in range(12)]
    trace = run({"calibration_inputs": 2, "inputs_per_bucket": 2.0}, trades)
    # Signs from trade 2 on: + - + + | - + + - | + +: buckets of 4 lots: |3 - 1| = 2, then |2 - 2| = 0.
    assert [features(o)["vpin"] for o in trace] == pytest.approx([0.0] * 5 + [2 / 4] * 4 + [2 / 8] * 3)


def test_trade_sign_imbalance_is_the_ratio_of_two_ew_sums() -> None:
    d = 0.5 ** (1 / 3.0)
    trace = run(
        {"flow_halflife": 3.0},
        [trade(START, 10.0, 1.0, 1), trade(START + 1, 10.0, 3.0, -1), trade(START + 2, 10.0, 2.0, 1)],
    )
    signed, volume = (1.0 * d - 3.0) * d + 2.0, (1.0 * d + 3.0) * d + 2.0
    assert features(trace[-1])["trade_imbalance"] == pytest.approx(signed / volume)
    assert features(trace[0])["trade_imbalance"] == 1.0


def test_kyle_lambda_regresses_mid_changes_on_signed_volume_between_books() -> None:
    d = 0.5 ** (1 / 10.0)
    events = [
        touch(START, 99.9, 1.0, 100.1, 1.0),  # mid 100
        trade(START + 1, 100.1, 2.0, +1),
        touch(START + 2, 100.1, 1.0, 100.3, 1.0),  # mid 100.2: +0.2 after +2 lots
        touch(START + 3, 100.1, 1.0, 100.3, 1.0),  # nothing traded: not a sample
        trade(START + 4, 100.1, 1.0, -1),
        touch(START + 5, 100.0, 1.0, 100.2, 1.0),  # mid 100.1: -0.1 after -1 lot
    ]
    trace = run({"lambda_halflife": 10.0}, events)
    assert features(trace[2])["kyle_lambda"] == pytest.approx(0.2 / 2.0)
    expected = (d * 2.0 * 0.2 + 1.0 * 0.1) / (d * 4.0 + 1.0)
    assert features(trace[-1])["kyle_lambda"] == pytest.approx(expected)


def test_realized_spread_uses_the_mid_in_force_delta_later() -> None:
    events = [
        touch(START, 99.95, 1.0, 100.05, 1.0),  # mid 100
        trade(START, 100.05, 1.0, +1),
        trade(START + 2000, 99.95, 1.0, -1),
        touch(START + 3000, 100.0, 1.0, 100.1, 1.0),  # mid 100.05
        touch(START + 6000, 100.15, 1.0, 100.25, 1.0),  # mid 100.2: delta of the first trade ended at 5 s
        touch(START + 7000, 100.15, 1.0, 100.25, 1.0),  # the second trade's delta ends exactly now
    ]
    trace = run({"realized_spread_ms": 5000, "spread_halflife": 1.0}, events)
    assert features(trace[3])["realized_spread_bps"] == 0.0  # nothing due yet
    first = 2e4 * (100.05 - 100.05) / 100.0
    assert features(trace[4])["realized_spread_bps"] == pytest.approx(first, abs=1e-9)
    second = 2e4 * -1 * (99.95 - 100.2) / 100.0  # the seller hit the bid, then the mid rose: the maker earned
    assert features(trace[5])["realized_spread_bps"] == pytest.approx(0.5 * first + 0.5 * second)


# ------------------------------------------------------------------ degradation


def ohlc_bars(count: int, seed: int, symbol: str = "X", start: int = START) -> list[Bar]:
    rng = np.random.default_rng(seed)
    close, bars = 100.0, []
    for i in range(count):
        open_ = close
        close = open_ * math.exp(rng.normal(0.0, 0.002))
        high, low = (
            max(open_, close) * (1 + abs(rng.normal(0, 0.001))),
            min(open_, close) * (1 - abs(rng.normal(0, 0.001))),
        )
        bars.append(Bar(symbol, start + (i + 1) * 60_000, open_, high, low, close, float(rng.uniform(10, 100)), 60_000))
    return bars


def test_bars_only_says_what_it_lacks_and_uses_the_bar_proxy() -> None:
    bars = ohlc_bars(300, seed=1)
    params = {"flow_halflife": 20.0, "min_inputs": 50, "bucket_volume": 200.0}
    trace = run(params, bars)
    d = 0.5 ** (1 / 20.0)
    signed = volume = 0.0
    for bar in bars:
        direction = (bar.close - bar.open) / (bar.high - bar.low)
        signed, volume = d * signed + direction * bar.volume, d * volume + bar.volume
    f = features(trace[-1])
    assert (f["has_trades"], f["has_books"]) == (0.0, 0.0)
    assert f["trade_imbalance"] == pytest.approx(signed / volume)
    assert (f["ofi"], f["kyle_lambda"], f["realized_spread_bps"]) == (0.0, 0.0, 0.0)
    assert 0.0 < f["vpin"] < 1.0
    prediction = trace[-1].prediction  # type: ignore[union-attr]
    assert prediction is not None
    # Only the flow signal is present; two missing inputs quarter the confidence.
    expected = abs(prediction.alpha) * (1.0 - f["vpin"]) * 0.25
    assert prediction.confidence == pytest.approx(expected)


def test_bars_are_ignored_while_trades_are_fresh_and_used_again_when_they_go_stale() -> None:
    bar = ohlc_bars(3, seed=2)
    events: list[MarketEvent] = [trade(bar[0].ts - 10, 100.0, 1.0, 1), bar[0]]
    harness = ModuleHarness({"microstructure": {"stale_ms": 30_000}}, symbols=["X"])
    trace = harness.run(events, "microstructure")
    assert features(trace[1]) == features(trace[0])  # the bar produced nothing new
    assert features(trace[1])["has_trades"] == 1.0
    trace = harness.run(bar[1:], "microstructure")  # 60 s and more after the last trade
    assert features(trace[-1])["has_trades"] == 0.0
    assert features(trace[-1])["trade_imbalance"] != 1.0


def test_trades_publish_with_the_next_book_while_books_are_fresh_and_by_themselves_without() -> None:
    harness = ModuleHarness({"microstructure": {"stale_ms": 10_000, "flow_halflife": 3.0}}, symbols=["X"])
    assert harness.push(touch(START, 99.9, 1.0, 100.1, 1.0))
    before = harness.output("microstructure", "X")
    # Books fresh: the trades change the state, not the published view, until the next book.
    assert not harness.push(trade(START + 10, 100.1, 2.0, +1))
    assert not harness.push(trade(START + 20, 100.1, 1.0, +1))
    assert harness.output("microstructure", "X") is before
    assert harness.push(touch(START + 30, 99.9, 1.0, 100.1, 1.0))
    assert features(harness.output("microstructure", "X"))["trade_imbalance"] == 1.0
    # Books stale: every trade publishes, with what it changed.
    assert harness.push(trade(START + 30 + 10_001, 100.0, 1.0, -1))
    after = features(harness.output("microstructure", "X"))
    assert after["has_books"] == 0.0
    assert after["trade_imbalance"] < 1.0


def test_the_flow_scale_is_the_same_whether_trades_publish_or_not() -> None:
    """The flow signal's scale learns from every trade, published or not: a trade-only
    stream and the same trades among fresh books end with the same flow feature."""
    trades = [trade(START + 100 * i, 100.0, 1.0 + i % 3, 1 if i % 4 else -1) for i in range(40)]
    alone = run({"min_inputs": 1}, trades)[-1]
    mixed_events: list[MarketEvent] = []
    for i, t in enumerate(trades):
        mixed_events += [touch(t.ts - 1, 99.9, 1.0 + i % 2, 100.1, 1.0), t]
    mixed_events.append(touch(trades[-1].ts + 1, 99.9, 1.0, 100.1, 1.0))
    mixed = run({"min_inputs": 1}, mixed_events)[-1]
    assert features(mixed)["trade_imbalance"] == pytest.approx(features(alone)["trade_imbalance"])
    a = ModuleHarness({"microstructure": {"min_inputs": 1}}, symbols=["X"])
    a.run(trades)
    b = ModuleHarness({"microstructure": {"min_inputs": 1}}, symbols=["X"])
    b.run(mixed_events)
    state_a = a.instance("microstructure")._state["X"]
    state_b = b.instance("microstructure")._state["X"]
    assert (state_b.flow_power, state_b.flow_weight) == pytest.approx((state_a.flow_power, state_a.flow_weight))


def test_confidence_falls_with_toxicity() -> None:
    market = SimulatedMarket(SimulatedMarketConfig(seed=2), ["BTC"])
    events = market.take(20_000)
    calm = run({"toxicity_penalty": 0.0}, events, ("BTC",))
    wary = run({"toxicity_penalty": 1.0}, events, ("BTC",))
    pairs = [(a.prediction, b.prediction, b.features["vpin"]) for a, b in zip(calm, wary, strict=True) if a and b]
    checked = 0
    for loose, strict, vpin in pairs:
        if loose is not None and strict is not None:
            assert strict.confidence == pytest.approx(loose.confidence * max(0.0, 1.0 - vpin))
            assert strict.alpha == loose.alpha
            checked += 1
    assert checked > 1000


def test_simulated_market_features_are_sane() -> None:
    market = SimulatedMarket(SimulatedMarketConfig(seed=5), ["BTC/USDT", "ETH/USDT"])
    harness = ModuleHarness({"microstructure": {}}, symbols=["BTC/USDT", "ETH/USDT"])
    harness.run(market.take(30_000))
    for symbol in ("BTC/USDT", "ETH/USDT"):
        f = features(harness.output("microstructure", symbol))
        assert (f["has_trades"], f["has_books"]) == (1.0, 1.0)
        assert 0.0 < f["vpin"] < 1.0
        assert f["kyle_lambda"] > 0.0  # buying lifts the next mid in the simulated market
        assert -1.0 <= f["trade_imbalance"] <= 1.0
        assert math.isfinite(f["realized_spread_bps"])
    assert harness.errors("microstructure") == 0


# ------------------------------------------------------------------ properties

event_steps = st.lists(
    st.tuples(
        st.sampled_from(["book", "trade", "trade", "bar"]),
        st.sampled_from([0, 40, 400, 2500]),
        st.integers(-2, 2),
        st.floats(0.1, 5.0),
        st.sampled_from([-1, 0, 1]),
        st.sampled_from(["A", "B"]),
    ),
    min_size=1,
    max_size=80,
)


def events_from_steps(steps: list) -> list[MarketEvent]:
    ts, mids, events = START, {"A": 100.0, "B": 5.0}, []
    for kind, dt, move, size, side, symbol in steps:
        ts += dt
        mids[symbol] = max(0.1, round(mids[symbol] + 0.01 * move, 2))
        mid = mids[symbol]
        if kind == "book":
            events.append(touch(ts, round(mid - 0.01, 2), size, round(mid + 0.01, 2), 6.0 - size, symbol))
        elif kind == "trade":
            events.append(trade(ts, round(mid + 0.01 * side, 2), size, side, symbol))
        else:
            events.append(Bar(symbol, ts, mid, mid + 0.02, mid - 0.03, round(mid + 0.01 * move, 2), size, 1000))
    return events


PROPERTY_PARAMS = {
    "ofi_window_ms": 1000,
    "realized_spread_ms": 500,
    "calibration_inputs": 3,
    "inputs_per_bucket": 2.0,
    "vpin_buckets": 4,
    "min_inputs": 3,
    "stale_ms": 3000,
    "max_pending": 5,
}


@settings(max_examples=40, deadline=None)
@given(steps=event_steps, cut=st.floats(0.0, 1.0))
def test_no_look_ahead(steps: list, cut: float) -> None:
    events = events_from_steps(steps)
    prefix = events[: int(cut * len(events))]
    full = run(PROPERTY_PARAMS, events, ("A", "B"))
    assert repr(full[: len(prefix)]) == repr(run(PROPERTY_PARAMS, prefix, ("A", "B")))


@settings(max_examples=40, deadline=None)
@given(steps=event_steps, cut=st.floats(0.0, 1.0))
def test_state_round_trip_continues_exactly(steps: list, cut: float) -> None:
    events = events_from_steps(steps)
    split = int(cut * len(events))
    uninterrupted = produced(ModuleHarness({"microstructure": PROPERTY_PARAMS}, symbols=["A", "B"]), events)
    first = ModuleHarness({"microstructure": PROPERTY_PARAMS}, symbols=["A", "B"])
    first.run(events[:split])
    states = first.export_states()
    second = ModuleHarness({"microstructure": PROPERTY_PARAMS}, symbols=["A", "B"], states=states)
    assert repr(produced(second, events[split:])) == repr(uninterrupted[split:])


def test_state_round_trip_through_json_on_the_simulated_market() -> None:
    events = SimulatedMarket(SimulatedMarketConfig(seed=8, bar_ms=5_000), ["BTC", "ETH"]).take(12_000)
    uninterrupted = run({}, events, ("BTC", "ETH"))
    split = 6_999
    first = ModuleHarness({"microstructure": {}}, symbols=["BTC", "ETH"])
    first.run(events[:split])
    state = first.export_states()["microstructure"]
    revived = ModuleState(state.module, state.version, state.state_version, json.loads(json.dumps(state.data)))
    second = ModuleHarness({"microstructure": {}}, symbols=["BTC", "ETH"], states={"microstructure": revived})
    assert second.adopted["microstructure"]
    continued = second.run(events[split:], "microstructure")
    assert any(o is not None and o.prediction is not None for o in continued)
    assert repr(continued) == repr(uninterrupted[split:])


def test_state_from_other_params_is_rejected() -> None:
    first = ModuleHarness({"microstructure": {}}, symbols=["X"])
    first.run(SMALL_SEQUENCE)
    states = first.export_states()
    for changed in ({"ofi_window_ms": 1000}, {"vpin_buckets": 20}, {"classification": "tick"}):
        assert not ModuleHarness({"microstructure": changed}, symbols=["X"], states=states).adopted["microstructure"]
    assert ModuleHarness({"microstructure": {"z_scale": 1.0}}, symbols=["X"], states=states).adopted["microstructure"]


# ------------------------------------------------------------------ contract


def test_loads_through_the_real_loader_and_passes_self_check() -> None:
    loaded = load_named("microstructure")
    assert loaded.contract.name == "microstructure"
    instance = loaded.cls(loaded.contract.params_model.model_validate({}))
    sample = SimulatedMarket(SimulatedMarketConfig(seed=1, bar_ms=1000), ["BTC"]).take(500)
    assert instance.self_check(sample) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window": 5}, "modules.microstructure.params.window: unknown key"),
        ({"bucket_volume": 0}, "modules.microstructure.params.bucket_volume: must be > 0"),
        ({"vpin_buckets": 0}, "modules.microstructure.params.vpin_buckets: must be >= 1"),
        ({"classification": "bvc"}, "modules.microstructure.params.classification"),
        ({"missing_input_discount": 2}, "modules.microstructure.params.missing_input_discount: must be <= 1"),
    ],
)
def test_bad_params_are_rejected_clearly(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ModuleHarness({"microstructure": params}, symbols=["X"])
    assert message in str(caught.value)
