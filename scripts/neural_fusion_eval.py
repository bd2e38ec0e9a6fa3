"""Out-of-sample comparison of neural fusion with equal-weight fusion on the simulated market.

Runs a seeded simulated market through a ``ModuleHarness`` holding real
modules plus ``neural_fusion``, calling fusion after every event that changed
an output (as the daemon does). At every book update (one per symbol and
tick), from ``train_fraction`` of the run on, it records for its symbol

- the target the bucket's fusion chain returns (neural fusion first; the
  built-in method only if it declines),
- the equal-weight target (the built-in ``weighted`` method, every module
  weight 1), and
- the realised simple return of the mid from this update to the update
  ``horizon_ms`` later,

and prints the information coefficient (Pearson and Spearman correlation of
target and realised return, pooled over symbols) of both, as JSON::

    .venv/bin/python scripts/neural_fusion_eval.py --seed 1 2 3
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from orchestrator.events import BookUpdate
from orchestrator.feeds.config import SimulatedMarketConfig
from orchestrator.feeds.simulated import SimulatedMarket
from orchestrator.fusion.builtin import BuiltinFusion
from orchestrator.fusion.config import FusionConfig
from orchestrator.fusion.request import FusionRequest
from orchestrator.testing import ModuleHarness

FloatArray = npt.NDArray[np.float64]
MODULES_DIR = Path(__file__).resolve().parents[1] / "modules"

DEFAULT_MODULES: dict[str, dict[str, Any]] = {"cob": {}, "microstructure": {}, "ma_crossover": {}, "regime": {}}
DEFAULT_MARKET: dict[str, Any] = {"book_levels": 5, "trades_per_tick": 0.2}
DEFAULT_NEURAL: dict[str, Any] = {"horizon_ms": 500, "refresh_ms": 250, "sample_ms": 500}


@dataclass
class Comparison:
    """Targets and mids at every book update, per symbol."""

    neural: dict[str, list[float]] = field(default_factory=dict)
    equal: dict[str, list[float]] = field(default_factory=dict)
    mids: dict[str, list[float]] = field(default_factory=dict)
    held_out: dict[str, list[bool]] = field(default_factory=dict)
    alphas: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # module -> symbol -> alpha (0: none)
    neural_answers: int = 0
    fusion_calls: int = 0

    def pairs(self, horizon_ticks: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(neural targets, equal-weight targets, realised returns) over the held-out updates."""
        neural: list[float] = []
        equal: list[float] = []
        realised: list[float] = []
        for symbol, mids in self.mids.items():
            prices = np.array(mids)
            forward = prices[horizon_ticks:] / prices[:-horizon_ticks] - 1.0
            keep = np.array(self.held_out[symbol][: len(forward)])
            neural.extend(np.array(self.neural[symbol][: len(forward)])[keep])
            equal.extend(np.array(self.equal[symbol][: len(forward)])[keep])
            realised.extend(forward[keep])
        return np.array(neural), np.array(equal), np.array(realised)

    def module_alphas(self, horizon_ticks: int) -> dict[str, FloatArray]:
        """Each module's alpha over the held-out updates, aligned with ``pairs``."""
        aligned: dict[str, FloatArray] = {}
        for module, per_symbol in self.alphas.items():
            values: list[float] = []
            for symbol, mids in self.mids.items():
                count = len(mids) - horizon_ticks
                keep = np.array(self.held_out[symbol][:count])
                values.extend(np.array(per_symbol[symbol][:count])[keep])
            aligned[module] = np.array(values)
        return aligned


def compare(
    *,
    seed: int,
    events: int,
    symbols: Sequence[str],
    market: Mapping[str, Any],
    modules: Mapping[str, Mapping[str, Any]],
    neural: Mapping[str, Any],
    train_fraction: float,
) -> dict[str, Any]:
    config = SimulatedMarketConfig(seed=seed, speed=0.0, **market)
    harness = ModuleHarness(
        {**modules, "neural_fusion": dict(neural)},
        symbols=symbols,
        fusion=FusionConfig(method="weighted", regime_module="regime" if "regime" in modules else None),
        paths={name: _source(name) for name in modules if "__" in name},
    )
    equal_weights = dict.fromkeys(modules, 1.0)
    equal_weight = BuiltinFusion()
    record = Comparison()
    record.alphas = {module: {symbol: [] for symbol in symbols} for module in modules}
    for symbol in symbols:
        record.neural[symbol], record.equal[symbol], record.mids[symbol], record.held_out[symbol] = [], [], [], []
    start = time.perf_counter()
    held_out_from = int(events * train_fraction)
    stream = SimulatedMarket(config, symbols).events()
    latest: dict[str, tuple[float, bool]] = dict.fromkeys(symbols, (0.0, False))
    for index in range(events):
        event = next(stream)
        symbol = event.symbol
        if harness.push(event):
            # As the daemon: fusion runs when an output changed; the target stands until then.
            fused = harness.pipeline.fuse(symbol, event.ts)
            record.fusion_calls += 1
            if fused is not None:
                latest[symbol] = (fused[0].target, fused[1] == "neural_fusion")
        if not isinstance(event, BookUpdate):
            continue
        outputs = harness.pipeline.latest[symbol]
        request = FusionRequest(symbol, "eval", event.ts, outputs, equal_weights, None, "weighted")
        baseline = equal_weight.fuse(request)
        target, by_neural = latest[symbol]
        held_out = index >= held_out_from
        record.neural_answers += by_neural and held_out
        record.neural[symbol].append(target)
        record.equal[symbol].append(0.0 if baseline is None else baseline.target)
        record.mids[symbol].append(event.mid)
        record.held_out[symbol].append(held_out)
        for module, per_symbol in record.alphas.items():
            output = outputs.get(module)
            prediction = None if output is None else output.prediction
            per_symbol[symbol].append(0.0 if prediction is None else prediction.alpha)
    elapsed = time.perf_counter() - start
    horizon_ms = int(neural.get("horizon_ms", 300_000))
    horizon_ticks = max(1, round(horizon_ms / config.tick_ms))
    neural_targets, equal_targets, realised = record.pairs(horizon_ticks)
    instance = harness.instance("neural_fusion")
    return {
        "seed": seed,
        "events": events,
        "seconds": round(elapsed, 2),
        "held_out_updates": len(realised),
        "neural_answered_held_out": record.neural_answers,
        "trained_samples": instance.trained_samples,
        "network_skill": round(instance._skill.correlation, 4),
        "horizon_ticks": horizon_ticks,
        "neural_ic_pearson": _ic(neural_targets, realised, "pearson"),
        "equal_ic_pearson": _ic(equal_targets, realised, "pearson"),
        "neural_ic_spearman": _ic(neural_targets, realised, "spearman"),
        "equal_ic_spearman": _ic(equal_targets, realised, "spearman"),
        "module_ic_spearman": {
            module: _ic(alphas, realised, "spearman") for module, alphas in record.module_alphas(horizon_ticks).items()
        },
    }


def _source(alias: str) -> Path:
    """``ma_crossover__fast`` is a second instance of ``ma_crossover``: its file or package."""
    implementation = alias.split("__", maxsplit=1)[0]
    package = MODULES_DIR / implementation
    return package if package.is_dir() else MODULES_DIR / f"{implementation}.py"


def _ic(targets: FloatArray, realised: FloatArray, method: Literal["pearson", "spearman"]) -> float | None:
    """Information coefficient: the correlation of targets and realised returns."""
    return _round(float(pd.Series(targets, dtype=float).corr(pd.Series(realised, dtype=float), method=method)))


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, nargs="+", default=[5])
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--symbols", nargs="+", default=["BTC/USDT", "ETH/USDT", "SOL/USDT"])
    parser.add_argument("--train-fraction", type=float, default=0.6)
    parser.add_argument("--market", type=json.loads, default=DEFAULT_MARKET, help="SimulatedMarketConfig fields")
    parser.add_argument("--modules", type=json.loads, default=DEFAULT_MODULES, help="name -> params")
    parser.add_argument("--neural", type=json.loads, default=DEFAULT_NEURAL, help="neural_fusion params")
    args = parser.parse_args()
    for seed in args.seed:
        result = compare(
            seed=seed,
            events=args.events,
            symbols=args.symbols,
            market=args.market,
            modules=args.modules,
            neural=args.neural,
            train_fraction=args.train_fraction,
        )
        print(json.dumps(result))


if __name__ == "__main__":
    main()
