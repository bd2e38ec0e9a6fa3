"""Fixtures for the execution tests: the loopback Binance double on a free port.
Also puts this directory on ``sys.path`` so that the ccxt tests can import
their helpers from ``ccxt_support``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.execution.ccxt.double import API_KEY, SECRET, BinanceDouble, start_double

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def binance_double() -> Iterator[BinanceDouble]:
    double = start_double()
    yield double
    double.close()


CONSTANT_MODULE = '''
"""Test module: the same view on every bar (target = params.target)."""
from orchestrator import AnalysisModule, Bar, EventKind, ModuleContext, ModuleOutput, ModuleParams, Prediction


class ConstantParams(ModuleParams):
    target: float = 1.0


class ConstantModule(AnalysisModule[ConstantParams]):
    name = "constant"
    version = "1.0.0"
    consumes = frozenset({EventKind.BAR})
    Params = ConstantParams

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        target = self.params.target
        return ModuleOutput(Prediction(mu=0.001 * target, sigma=0.01, horizon=60.0, confidence=1.0, alpha=target))


MODULE = ConstantModule
'''


@pytest.fixture
def live_profile(tmp_path: Path, binance_double: BinanceDouble) -> Callable[..., Path]:
    """Write a daemon profile trading BTC/USDT on the double; returns its path."""

    def write(target: float = 1.0, speed: float = 5.0, **risk: Any) -> Path:
        module = tmp_path / "constant.py"
        module.write_text(CONSTANT_MODULE)
        profile = {
            "instance": "live-test",
            "state_dir": str(tmp_path / "state"),
            "log": {"level": "info", "format": "json"},
            "feed": {
                "kind": "simulated",
                "simulated": {
                    "seed": 3,
                    "tick_ms": 250,
                    "bar_ms": 1000,
                    "speed": speed,
                    "annual_volatility": 0.01,
                    "prices": {"BTC/USDT": 50_000.0},
                },
            },
            "symbols": ["BTC/USDT"],
            "modules": {"constant": {"path": str(module), "params": {"target": target}}},
            "fusion": {"method": "confidence"},
            "execution": {
                "venue": "binance",
                "venues": {
                    "binance": {
                        "kind": "ccxt",
                        "exchange": "binance",
                        "api_urls": binance_double.api_urls(),
                        "transport": "rest",  # no websocket double here: poll only
                        "timeout_ms": 2000,
                        "poll_interval_s": 0.1,
                        "backoff_initial_s": 0.02,
                        "backoff_max_s": 0.1,
                    }
                },
                "recovery": {"unconfirmed_checks": 2, "check_interval_s": 0.05},
            },
            "risk": {
                "allocation": 0.1,
                "max_order_notional": 20_000,
                "max_position_notional": 20_000,
                "min_order_notional": 500,
                **risk,
            },
        }
        path = tmp_path / "live.yaml"
        path.write_text(yaml.safe_dump(profile))
        return path

    return write


@pytest.fixture
def venue_keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_SECRET", SECRET)
    return {"BINANCE_API_KEY": API_KEY, "BINANCE_SECRET": SECRET}
