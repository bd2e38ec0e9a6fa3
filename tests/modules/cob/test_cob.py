"""cob: book features by hand and against numpy, the imbalance regression against a brute-force
reference (pairs resolved only once their horizon has passed), no look-ahead, state hand-over."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.contract import ModuleState
from orchestrator.errors import ConfigError
from orchestrator.events import BookUpdate, MarketEvent
from orchestrator.feeds.config import SimulatedMarketConfig
from orchestrator.feeds.simulated import SimulatedMarket
from orchestrator.signals import ModuleOutput
from orchestrator.testing import ModuleHarness, load_named

START = 1_735_689_600_000


def book(
    bids: Sequence[tuple[float, float]], asks: Sequence[tuple[float, float]], ts: int = START, symbol: str = "X"
) -> BookUpdate:
    return BookUpdate(
        symbol,
        ts,
        tuple(p for p, _ in bids),
        tuple(s for _, s in bids),
        tuple(p for p, _ in asks),
        tuple(s for _, s in asks),
    )


def run(
    params: Mapping[str, object], events: Sequence[MarketEvent], symbols: Sequence[str] = ("X",)
) -> list[ModuleOutput | None]:
    return ModuleHarness({"cob": params}, symbols=list(symbols)).run(events, "cob")


THREE_LEVELS = book([(99.9, 2.0), (99.8, 3.0), (99.7, 5.0)], [(100.1, 1.0), (100.2, 4.0), (100.3, 2.0)])


def test_three_level_book_by_hand() -> None:
    (output,) = run({"weighted_levels": 2, "depth_bps": 15.0}, [THREE_LEVELS])
    assert output is not None
    f = output.features
    assert f["mid"] == pytest.approx(100.0)
    assert f["spread"] == pytest.approx(0.2)
    assert f["spread_bps"] == pytest.approx(20.0)
    assert f["microprice"] == pytest.approx((99.9 * 1.0 + 100.1 * 2.0) / 3.0)  # bid x ask size + ask x bid size
    # Two levels: bid VWAP 99.84 (5 lots), ask VWAP 100.18 (5 lots), cross-weighted.
    assert f["weighted_mid"] == pytest.approx((99.84 * 5.0 + 100.18 * 5.0) / 10.0)
    assert f["imbalance_1"] == pytest.approx(1.0 / 3.0)
    assert f["imbalance_5"] == pytest.approx(3.0 / 17.0)  # 10 bid vs 7 ask: the book has only 3 levels
    assert f["imbalance_10"] == pytest.approx(3.0 / 17.0)
    assert f["depth_bid"] == pytest.approx(2.0)  # within 15 bps of 100: only 99.9
    assert f["depth_ask"] == pytest.approx(1.0)
    # Cumulative size against distance in bps: bids (10, 2), (20, 5), (30, 10) -> 80 / 200;
    # asks (10, 1), (20, 5), (30, 7) -> 60 / 200.
    assert f["slope_bid"] == pytest.approx(0.4)
    assert f["slope_ask"] == pytest.approx(0.3)
    assert output.prediction is None  # nothing resolved yet


def test_depth_boundary_is_inclusive_and_weighted_mid_at_one_level_is_the_microprice() -> None:
    (output,) = run({"weighted_levels": 1, "depth_bps": 20.0}, [THREE_LEVELS])
    assert output is not None
    f = output.features
    assert f["depth_bid"] == pytest.approx(5.0)  # 99.9 and 99.8, exactly 20 bps away
    assert f["depth_ask"] == pytest.approx(5.0)
    assert f["weighted_mid"] == pytest.approx(f["microprice"])


def test_slope_matches_numpy_least_squares_on_a_random_deep_book() -> None:
    rng = np.random.default_rng(5)
    mid = 2500.0
    bid_prices = mid - np.sort(rng.uniform(0.1, 5.0, 20))
    ask_prices = mid + np.sort(rng.uniform(0.1, 5.0, 20))
    bid_sizes, ask_sizes = rng.uniform(0.1, 3.0, 20), rng.uniform(0.1, 3.0, 20)
    update = book(list(zip(bid_prices, bid_sizes, strict=True)), list(zip(ask_prices, ask_sizes, strict=True)))
    (output,) = run({"weighted_levels": 7, "depth_bps": 8.0}, [update])
    assert output is not None
    f = output.features
    mid = (bid_prices[0] + ask_prices[0]) / 2
    bid_bps = (mid - bid_prices) / mid * 1e4
    ask_bps = (ask_prices - mid) / mid * 1e4
    assert f["slope_bid"] == pytest.approx(np.polyfit(bid_bps, np.cumsum(bid_sizes), 1)[0], rel=1e-9)
    assert f["slope_ask"] == pytest.approx(np.polyfit(ask_bps, np.cumsum(ask_sizes), 1)[0], rel=1e-9)
    assert f["depth_bid"] == pytest.approx(bid_sizes[bid_bps <= 8.0].sum())
    assert f["depth_ask"] == pytest.approx(ask_sizes[ask_bps <= 8.0].sum())
    vwap_bid = np.dot(bid_prices[:7], bid_sizes[:7]) / bid_sizes[:7].sum()
    vwap_ask = np.dot(ask_prices[:7], ask_sizes[:7]) / ask_sizes[:7].sum()
    q_bid, q_ask = bid_sizes[:7].sum(), ask_sizes[:7].sum()
    assert f["weighted_mid"] == pytest.approx((vwap_bid * q_ask + vwap_ask * q_bid) / (q_bid + q_ask))
    for levels in (1, 5, 10):
        b, a = bid_sizes[:levels].sum(), ask_sizes[:levels].sum()
        assert f[f"imbalance_{levels}"] == pytest.approx((b - a) / (b + a))


def test_one_sided_book_is_skipped() -> None:
    assert run({}, [book([(99.0, 1.0)], [])]) == [None]


# ------------------------------------------------------------------ the regression


def random_books(count: int, seed: int, symbol: str = "X", step_ms: Sequence[int] = (0, 100, 250, 400, 1000)) -> list:
    rng = np.random.default_rng(seed)
    ts, mid, books = START, 100.0, []
    for _ in range(count):
        ts += int(rng.choice(step_ms))
        mid = round(mid + 0.01 * int(rng.integers(-2, 3)), 2)
        sizes = rng.uniform(0.5, 5.0, (2, 6)).round(3)
        bids = [(round(mid - 0.005 - 0.01 * i, 3), float(s)) for i, s in enumerate(sizes[0])]
        asks = [(round(mid + 0.005 + 0.01 * i, 3), float(s)) for i, s in enumerate(sizes[1])]
        books.append(book(bids, asks, ts, symbol))
    return books


def reference_fit(
    books: Sequence[BookUpdate], horizon_ms: int, halflife: float, levels: int
) -> list[tuple[float, ...]]:
    """(beta, r2, samples) after each book, straight from the definition: the pair (x_i, return from
    t_i to t_i + h) joins the fit at the first book at or after t_i + h, with the mid in force at t_i + h."""
    decay = 0.5 ** (1.0 / halflife)
    times = [b.ts for b in books]
    mids = [b.mid for b in books]
    depths = [(sum(b.bid_sizes[:levels]), sum(b.ask_sizes[:levels])) for b in books]
    xs = [(bid - ask) / (bid + ask) for bid, ask in depths]
    sums = [0.0, 0.0, 0.0]
    resolved, samples, results = 0, 0, []
    for j, now in enumerate(times):
        while resolved < j and times[resolved] + horizon_ms <= now:
            end = max(k for k in range(j + 1) if times[k] <= times[resolved] + horizon_ms)
            x, y = xs[resolved], mids[end] / mids[resolved] - 1.0
            sums = [decay * sums[0] + x * x, decay * sums[1] + x * y, decay * sums[2] + y * y]
            resolved += 1
            samples += 1
        if sums[0] > 0.0 and sums[2] > 0.0:
            results.append((sums[1] / sums[0], sums[1] ** 2 / (sums[0] * sums[2]), samples))
        else:
            results.append((0.0, 0.0, samples))
    return results


def test_regression_matches_a_brute_force_reference_without_look_ahead() -> None:
    books = random_books(400, seed=11)
    params = {"horizon_ms": 700, "halflife": 50.0, "signal_levels": 3, "min_samples": 20}
    trace = run(params, books)
    expected = reference_fit(books, 700, 50.0, 3)
    for output, (beta, r2, samples) in zip(trace, expected, strict=True):
        assert output is not None
        assert output.features["imbalance_beta"] == pytest.approx(beta, rel=1e-9, abs=1e-15)
        assert output.features["imbalance_r2"] == pytest.approx(r2, rel=1e-9, abs=1e-15)
        assert (output.prediction is not None) == (samples >= 20)


def test_prediction_follows_the_documented_rule_when_imbalance_drives_returns() -> None:
    # The mid 1 s later moves by 10 bps x imbalance, plus noise: beta ~ 1e-3 and a good fit.
    rng = np.random.default_rng(3)
    books, mid = [], 100.0
    for i in range(600):
        bid_size, ask_size = rng.uniform(0.5, 5.0, 2)
        x = (bid_size - ask_size) / (bid_size + ask_size)
        books.append(book([(mid - 0.01, bid_size)], [(mid + 0.01, ask_size)], START + 1000 * i))
        mid *= 1.0 + 1e-3 * x + 1e-5 * rng.standard_normal()
    trace = run({"horizon_ms": 1000, "signal_levels": 1, "min_samples": 50, "alpha_gain": 2.0}, books)
    last = trace[-1]
    assert last is not None
    assert last.prediction is not None
    f, p = last.features, last.prediction
    assert f["imbalance_beta"] == pytest.approx(1e-3, rel=0.05)
    assert f["imbalance_r2"] > 0.9
    assert p.mu == pytest.approx(f["imbalance_beta"] * f["imbalance_1"])
    assert p.alpha == pytest.approx(math.tanh(p.mu / p.sigma * 2.0))
    assert p.horizon == 1.0
    assert p.confidence == pytest.approx(math.sqrt(f["imbalance_r2"]))  # warm: 599 samples >= 2 x 50
    assert 0.0 < p.sigma < 1e-4  # the residual noise, not the signal's spread


def test_symbols_are_independent() -> None:
    a, b = random_books(120, seed=1, symbol="A"), random_books(120, seed=2, symbol="B")
    interleaved = sorted(a + b, key=lambda e: e.ts)  # stable: equal times keep their order
    mixed = ModuleHarness({"cob": {"min_samples": 5}}, symbols=["A", "B"])
    trace = mixed.run(interleaved, "cob")
    alone = run({"min_samples": 5}, a, ("A",))
    assert repr([o for e, o in zip(interleaved, trace, strict=True) if e.symbol == "A"]) == repr(alone)


def test_simulated_market_imbalance_predicts_the_next_second() -> None:
    # The simulated book leans towards the order flow that moves the next tick's price.
    market = SimulatedMarket(SimulatedMarketConfig(seed=4), ["BTC/USDT", "ETH/USDT"])
    harness = ModuleHarness({"cob": {}}, symbols=["BTC/USDT", "ETH/USDT"])
    harness.run(market.take(40_000))
    for symbol in ("BTC/USDT", "ETH/USDT"):
        output = harness.output("cob", symbol)
        assert output is not None
        assert output.prediction is not None
        assert output.features["imbalance_beta"] > 0.0
        assert 0.0 < output.prediction.confidence < 1.0
        assert output.features["spread"] > 0.0
    assert harness.errors("cob") == 0


# ------------------------------------------------------------------ properties

book_steps = st.lists(
    st.tuples(
        st.sampled_from([0, 50, 300, 1000]),
        st.integers(-3, 3),
        st.lists(st.floats(0.0, 10.0), min_size=1, max_size=4),
        st.lists(st.floats(0.0, 10.0), min_size=1, max_size=4),
        st.sampled_from(["A", "B"]),
    ),
    min_size=1,
    max_size=60,
)


def books_from_steps(steps: list) -> list[BookUpdate]:
    ts, mids, books = START, {"A": 100.0, "B": 5.0}, []
    for dt, move, bid_sizes, ask_sizes, symbol in steps:
        ts += dt
        mids[symbol] = max(0.05, round(mids[symbol] + 0.01 * move, 2))
        mid = mids[symbol]
        bids = [(round(mid - 0.01 * (i + 1), 2), s) for i, s in enumerate(bid_sizes) if mid - 0.01 * (i + 1) > 0]
        asks = [(round(mid + 0.01 * (i + 1), 2), s) for i, s in enumerate(ask_sizes)]
        books.append(book(bids or [(0.01, 1.0)], asks, ts, symbol))
    return books


PROPERTY_PARAMS = {"horizon_ms": 500, "halflife": 5.0, "min_samples": 3, "weighted_levels": 2, "depth_bps": 150.0}


@settings(max_examples=40, deadline=None)
@given(steps=book_steps, cut=st.floats(0.0, 1.0))
def test_no_look_ahead(steps: list, cut: float) -> None:
    books = books_from_steps(steps)
    prefix = books[: int(cut * len(books))]
    full = run(PROPERTY_PARAMS, books, ("A", "B"))
    assert repr(full[: len(prefix)]) == repr(run(PROPERTY_PARAMS, prefix, ("A", "B")))


@settings(max_examples=40, deadline=None)
@given(steps=book_steps, cut=st.floats(0.0, 1.0))
def test_state_round_trip_continues_exactly(steps: list, cut: float) -> None:
    books = books_from_steps(steps)
    split = int(cut * len(books))
    uninterrupted = run(PROPERTY_PARAMS, books, ("A", "B"))
    first = ModuleHarness({"cob": PROPERTY_PARAMS}, symbols=["A", "B"])
    first.run(books[:split])
    second = ModuleHarness({"cob": PROPERTY_PARAMS}, symbols=["A", "B"], states=first.export_states())
    assert repr(second.run(books[split:], "cob")) == repr(uninterrupted[split:])


def test_state_round_trip_through_json_on_the_simulated_market() -> None:
    events = SimulatedMarket(SimulatedMarketConfig(seed=9), ["BTC", "ETH"]).take(12_000)
    params = {"min_samples": 100}
    uninterrupted = run(params, events, ("BTC", "ETH"))
    split = 7_001
    first = ModuleHarness({"cob": params}, symbols=["BTC", "ETH"])
    first.run(events[:split])
    state = first.export_states()["cob"]
    revived = ModuleState(state.module, state.version, state.state_version, json.loads(json.dumps(state.data)))
    second = ModuleHarness({"cob": params}, symbols=["BTC", "ETH"], states={"cob": revived})
    assert second.adopted["cob"]
    continued = second.run(events[split:], "cob")
    assert any(o is not None and o.prediction is not None for o in continued)
    assert repr(continued) == repr(uninterrupted[split:])


def test_state_from_other_params_is_rejected() -> None:
    first = ModuleHarness({"cob": {}}, symbols=["X"])
    first.run(random_books(50, seed=6))
    states = first.export_states()
    for changed in ({"horizon_ms": 2000}, {"signal_levels": 1}, {"halflife": 10.0}):
        assert not ModuleHarness({"cob": changed}, symbols=["X"], states=states).adopted["cob"]
    # Display-only settings do not touch the fit: the state still fits.
    assert ModuleHarness({"cob": {"depth_bps": 3.0, "alpha_gain": 1.0}}, symbols=["X"], states=states).adopted["cob"]


# ------------------------------------------------------------------ contract


def test_loads_through_the_real_loader_and_passes_self_check() -> None:
    loaded = load_named("cob")
    assert loaded.contract.name == "cob"
    instance = loaded.cls(loaded.contract.params_model.model_validate({}))
    assert instance.self_check(random_books(50, seed=4)) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"levels": 5}, "modules.cob.params.levels: unknown key"),
        ({"depth_bps": 0}, "modules.cob.params.depth_bps: must be > 0"),
        ({"weighted_levels": 0}, "modules.cob.params.weighted_levels: must be >= 1"),
        ({"horizon_ms": -5}, "modules.cob.params.horizon_ms: must be > 0"),
    ],
)
def test_bad_params_are_rejected_clearly(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ModuleHarness({"cob": params}, symbols=["X"])
    assert message in str(caught.value)


# ------------------------------------------------------------------ Stoikov micro-price


def test_stoikov_adjustment_by_hand() -> None:
    params = {"microprice_buckets": 2, "microprice_halflife": 1e12, "microprice_min_weight": 0.0}
    books = [
        book([(99.995, 3.0)], [(100.005, 1.0)], START),  # mid 100.00, I = 0.75: bucket 1 waits
        book([(99.995, 1.0)], [(100.005, 3.0)], START + 100),  # same mid, I = 0.25: bucket 0 waits
        book([(100.005, 3.0)], [(100.015, 1.0)], START + 200),  # mid +0.01 resolves both; bucket 1 has +0.01
        book([(99.995, 1.0)], [(100.005, 3.0)], START + 300),  # mid -0.01: bucket 1 now (+0.01 - 0.01) / 2
        book([(99.995, 3.0)], [(100.005, 1.0)], START + 400),  # same mid, bucket 1: 0
    ]
    features = [o.features for o in run(params, books) if o is not None]
    assert [f["stoikov_microprice"] for f in features] == pytest.approx([100.0, 100.0, 100.02, 100.01, 100.0])
    assert features[2]["stoikov_adjustment_bps"] == pytest.approx(0.01 / 100.01 * 1e4)


def reference_adjustments(books: Sequence[BookUpdate], buckets: int, halflife: float, min_weight: float) -> list:
    """g1 after each book from the definition: book k's observation is the first later mid change,
    mid[r] - mid[k]; it is known from book r on; each bucket's EW mean is over its known observations."""
    decay = 0.5 ** (1.0 / halflife)
    mids = [b.mid for b in books]
    tops = [b.bid_sizes[0] / (b.bid_sizes[0] + b.ask_sizes[0]) for b in books]
    bucket_of = [min(int(i * buckets), buckets - 1) for i in tops]
    ends = [next((r for r in range(k + 1, len(books)) if mids[r] != mids[k]), None) for k in range(len(books))]
    results = []
    for j in range(len(books)):
        values = [
            mids[r] - mids[k] for k, r in enumerate(ends) if r is not None and r <= j and bucket_of[k] == bucket_of[j]
        ]
        weights = [decay ** (len(values) - 1 - i) for i in range(len(values))]
        total = sum(weights)
        known = total >= min_weight and total > 0
        results.append(sum(w * v for w, v in zip(weights, values, strict=True)) / total if known else 0.0)
    return results


def test_stoikov_adjustment_matches_the_definition_without_look_ahead() -> None:
    books = random_books(300, seed=21)
    params = {"microprice_buckets": 4, "microprice_halflife": 7.0, "microprice_min_weight": 2.0}
    trace = run(params, books)
    expected = reference_adjustments(books, 4, 7.0, 2.0)
    assert any(abs(g) > 0 for g in expected)
    for output, adjustment, source in zip(trace, expected, books, strict=True):
        assert output is not None
        assert output.features["stoikov_microprice"] == pytest.approx(source.mid + adjustment, rel=1e-12)


def test_micro_price_tables_start_cold_for_other_buckets_and_for_older_states() -> None:
    books = random_books(200, seed=8)
    first = ModuleHarness({"cob": {"microprice_min_weight": 1.0}}, symbols=["X"])
    first.run(books)
    state = first.export_states()["cob"]
    # A 1.1.0 state: no tables, no micro-price parameters.
    params_before = {k: v for k, v in state.data["params"].items() if not k.startswith("microprice_")}
    symbols_before = {
        symbol: {k: v for k, v in data.items() if k != "touch"} for symbol, data in state.data["symbols"].items()
    }
    older = {"params": params_before, "symbols": symbols_before}
    for states, params in (
        ({"cob": state}, {"microprice_buckets": 5, "microprice_min_weight": 1.0}),
        ({"cob": ModuleState(state.module, state.version, state.state_version, older)}, {"microprice_min_weight": 1.0}),
    ):
        second = ModuleHarness({"cob": params}, symbols=["X"], states=states)
        assert second.adopted["cob"]  # the regression is kept
        output = second.run(books[:1], "cob")[0]
        assert output is not None
        assert output.features["stoikov_adjustment_bps"] == 0.0  # no table yet
