"""Shared fixtures: configurations and throwaway modules written to ``tmp_path``,
engines built from them through the real loader, and the ``orchestrator`` CLI
run as a real subprocess.

Throwaway modules are referenced from a config as ``modules: {name: {path: ...}}``,
so they go through exactly the resolution, loading and validation a user's
module goes through.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from orchestrator.config.loader import load_config
from orchestrator.engine.builder import build_orchestrator
from orchestrator.engine.orchestrator import TradingOrchestrator
from orchestrator.engine.plan import RunPlan, plan_run
from orchestrator.events import Bar

SYMBOL = "BTC/USDT"
BAR_MS = 1_000

# A module whose output on each bar is scripted by the bar's ``ts``:
#   (alpha, confidence) or (alpha, confidence, label)  -> that prediction
#   ("label", name)                                     -> a label only, no prediction
#   "raise"                                             -> raises ValueError
#   None                                                -> returns None
# Timestamps not in SCRIPT use DEFAULT. Every call is appended to ``calls``.
_SCRIPTED = '''\
"""Test module {name}: emits the output scripted for each bar's timestamp."""

from orchestrator import AnalysisModule, Bar, EventKind, ModuleContext, ModuleOutput, ModuleParams, Prediction

SCRIPT = {script!r}
DEFAULT = {default!r}


class Scripted(AnalysisModule[ModuleParams]):
    name = {name!r}
    version = "1.0.0"
    consumes = frozenset({{EventKind.BAR}})
    depends_on = {depends_on!r}
    latency_budget_us = 1e9  # a call preempted on a busy machine must not count as an overrun

    def __init__(self, params: ModuleParams) -> None:
        super().__init__(params)
        self.calls: list[int] = []

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        self.calls.append(bar.ts)
        step = SCRIPT.get(bar.ts, DEFAULT)
        if step == "raise":
            raise ValueError(f"scripted failure at {{bar.ts}}")  # RAISE-LINE
        if step is None:
            return None
        if step[0] == "label":
            return ModuleOutput(None, label=step[1])
        alpha, confidence, *label = step
        prediction = Prediction(mu=0.001 * alpha, sigma=0.01, horizon=1.0, confidence=confidence, alpha=alpha)
        return ModuleOutput(prediction, label=label[0] if label else None)


MODULE = Scripted
'''


def scripted_source(
    name: str,
    script: Mapping[int, Any] | None = None,
    *,
    default: Any = None,
    depends_on: Sequence[str] = (),
) -> str:
    return _SCRIPTED.format(name=name, script=dict(script or {}), default=default, depends_on=tuple(depends_on))


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Code under test configures logging (the CLI, the daemon, a config
    reload changing ``log.level``); put it back after every test, so a test
    that set ``warning`` cannot hide another test's info lines."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog_config = structlog.get_config()
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.configure(**structlog_config)


def _raise_line(path: Path) -> int:
    lines = path.read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if "RAISE-LINE" in line)


@pytest.fixture(scope="session")
def raise_line() -> Callable[[Path], int]:
    """The line of a scripted module's ``raise``, for asserting error locations."""
    return _raise_line


@pytest.fixture
def write_module(tmp_path: Path) -> Callable[..., Path]:
    """``write_module(name, source)`` writes ``<tmp>/modules/<name>.py`` (dedented)."""

    def write(name: str, source: str, *, directory: Path | None = None) -> Path:
        folder = directory or tmp_path / "modules"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        return path

    return write


@pytest.fixture
def scripted_module(write_module: Callable[..., Path]) -> Callable[..., Path]:
    """``scripted_module(name, {ts: step}, default=..., depends_on=...)`` -> path."""

    def write(
        name: str, script: Mapping[int, Any] | None = None, *, default: Any = None, depends_on: Sequence[str] = ()
    ) -> Path:
        return write_module(name, scripted_source(name, script, default=default, depends_on=depends_on))

    return write


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """``write_config(mapping_or_yaml_text, name=...)`` -> path of the YAML file."""

    def write(document: Mapping[str, Any] | str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        if isinstance(document, str):
            path.write_text(textwrap.dedent(document))
        else:
            path.write_text(yaml.safe_dump(_plain(document), sort_keys=False))
        return path

    return write


def _plain(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(v) for v in node]
    if isinstance(node, Path):
        return str(node)
    return node


def engine_config(modules: Mapping[str, Path | Mapping[str, Any]], **sections: Any) -> dict[str, Any]:
    """A config trading ``SYMBOL`` on a frictionless paper venue (no fees, no
    slippage), with generous limits, so expected numbers are easy to compute.
    ``modules`` maps instance names to a module file or a full module entry."""
    document: dict[str, Any] = {
        "symbols": [SYMBOL],
        "modules": {
            name: {"path": str(entry)} if isinstance(entry, Path) else dict(entry) for name, entry in modules.items()
        },
        "fusion": {"method": "weighted"},
        "decision": {"min_change": 0.0},
        "execution": {
            "paper": {"initial_cash": 100_000.0, "taker_fee_bps": 0.0, "maker_fee_bps": 0.0, "slippage_bps": 0.0}
        },
        "risk": {"allocation": 1.0, "max_position_notional": 1e9, "max_order_notional": 1e9, "min_order_notional": 0.0},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            document[key] = _merge(document[key], value)
        else:
            document[key] = value
    return document


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


@pytest.fixture(scope="session")
def make_config() -> Callable[..., dict[str, Any]]:
    """``make_config({name: path}, risk={...}, ...)``: see ``engine_config``."""
    return engine_config


@pytest.fixture
def make_plan(write_config: Callable[..., Path]) -> Callable[[Mapping[str, Any]], RunPlan]:
    """Write a config, load it (ignoring the environment) and plan the run."""

    def plan(document: Mapping[str, Any]) -> RunPlan:
        return plan_run(load_config(write_config(document), env={}))

    return plan


@pytest.fixture
def build_engine(make_plan: Callable[[Mapping[str, Any]], RunPlan]) -> Callable[..., TradingOrchestrator]:
    """Config mapping -> a ``TradingOrchestrator`` with a paper venue, run id ``t``."""

    def build(document: Mapping[str, Any]) -> TradingOrchestrator:
        return build_orchestrator(make_plan(document), run_id="t")

    return build


def bar_at(ts: int, close: float, *, volume: float = 1.0, symbol: str = SYMBOL, spread: float = 0.0) -> Bar:
    """A bar closing at ``ts`` whose high/low sit ``spread`` around its close."""
    return Bar(symbol, ts, close, close + spread, close - spread, close, volume, BAR_MS)


@pytest.fixture(scope="session")
def make_bar() -> Callable[..., Bar]:
    return bar_at


def random_walk_bars(
    count: int,
    *,
    seed: int = 1,
    symbol: str = SYMBOL,
    start_ts: int = 1_700_000_000_000,
    interval_ms: int = 60_000,
    price: float = 100.0,
) -> list[Bar]:
    """A deterministic OHLCV random walk with a few trends, stamped at bar close."""
    rng = random.Random(seed)
    bars = []
    drift = 0.0
    for index in range(count):
        if index % 50 == 0:
            drift = rng.choice((-0.002, 0.0, 0.002))
        open_ = price
        price = max(1.0, price * (1.0 + drift + rng.gauss(0.0, 0.004)))
        high = max(open_, price) * (1.0 + abs(rng.gauss(0.0, 0.001)))
        low = min(open_, price) * (1.0 - abs(rng.gauss(0.0, 0.001)))
        ts = start_ts + (index + 1) * interval_ms
        bars.append(
            Bar(
                symbol,
                ts,
                round(open_, 4),
                round(high, 4),
                round(low, 4),
                round(price, 4),
                round(rng.uniform(1, 100), 3),
                interval_ms,
            )
        )
    return bars


@pytest.fixture(scope="session")
def make_bars() -> Callable[..., list[Bar]]:
    return random_walk_bars


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR")}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def cli_env() -> Callable[..., dict[str, str]]:
    """The environment for a CLI subprocess, without the caller's own
    ``ORCHESTRATOR*`` overrides leaking in; keyword arguments are added."""
    return _cli_env


THIRD_PARTY = '''\
"""Third-party momentum: alpha = sign of the last close change."""
from orchestrator import AnalysisModule, Bar, EventKind, ModuleContext, ModuleOutput, ModuleParams, Prediction

from ._util import sign


class ThirdPartyMomentum(AnalysisModule[ModuleParams]):
    """Sign of the last change."""

    name = "tp_momentum"
    version = "0.1.0"
    consumes = frozenset({EventKind.BAR})

    def __init__(self, params: ModuleParams) -> None:
        super().__init__(params)
        self.last: dict[str, float] = {}

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        previous = self.last.get(bar.symbol)
        self.last[bar.symbol] = bar.close
        if previous is None:
            return None
        alpha = sign(bar.close - previous)
        return ModuleOutput(Prediction(mu=0.0, sigma=0.01, horizon=60.0, confidence=1.0, alpha=alpha))


PLUGIN = ThirdPartyMomentum
'''


def write_distribution(root: Path) -> Path:
    """A fake installed distribution ``tp-signals``: a
    ``*.dist-info`` directory (METADATA, entry_points.txt) beside its code is
    all ``importlib.metadata`` needs. It advertises ``tp_momentum`` (a module
    in a package, with a relative import and a non-default attribute),
    ``tp_flat`` (a top-level file) and ``tp_missing`` (a broken entry point).
    Returns the directory to put on ``sys.path`` (or ``PYTHONPATH``)."""
    site = root / "site"
    package = site / "tp_signals"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "_util.py").write_text("def sign(x):\n    return 1.0 if x > 0 else -1.0 if x < 0 else 0.0\n")
    (package / "momentum.py").write_text(THIRD_PARTY)
    (site / "tp_flat.py").write_text(
        THIRD_PARTY.replace("from ._util import sign", "from tp_signals._util import sign")
        .replace('"tp_momentum"', '"tp_flat"')
        .replace("PLUGIN =", "MODULE =")
    )
    dist = site / "tp_signals-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tp-signals\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [orchestrator.modules]
            tp_momentum = tp_signals.momentum:PLUGIN
            tp_flat = tp_flat
            tp_missing = tp_signals.not_there
            """
        )
    )
    return site


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``write_distribution`` in ``tmp_path``, on ``sys.path`` for this test."""
    site = write_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in [n for n in sys.modules if n.split(".")[0] in ("tp_signals", "tp_flat")]:
        del sys.modules[name]


@pytest.fixture(scope="session")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``write_distribution`` once per session, for subprocesses (``PYTHONPATH``)."""
    return write_distribution(tmp_path_factory.mktemp("distribution"))


def _cli(
    args: Sequence[str | Path], cwd: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *map(str, args)],
        cwd=cwd,
        env=_cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def cli_cwd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where CLI runs start unless told otherwise: an empty directory."""
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="session")
def run_cli(cli_cwd: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cli("check-config", path, VAR="value")``: ``python -m orchestrator ...``."""

    def run(
        *args: str | Path, cwd: Path | None = None, timeout: float = 60.0, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return _cli(args, cwd or cli_cwd, env, timeout)

    return run


@pytest.fixture(scope="session")
def run_cli_batch(cli_cwd: Path) -> Callable[..., list[subprocess.CompletedProcess[str]]]:
    """Several CLI runs at once (each a sequence of arguments, or ``(arguments,
    env)``), results in the same order. Starting Python and the CLI costs about
    half a second of CPU; running the independent cases side by side keeps the
    suite fast on a multi-core machine."""

    def run(
        commands: Sequence[Sequence[str | Path] | tuple[Sequence[str | Path], Mapping[str, str]]],
        cwd: Path | None = None,
        timeout: float = 60.0,
    ) -> list[subprocess.CompletedProcess[str]]:
        jobs = []
        for command in commands:
            if isinstance(command, tuple) and len(command) == 2 and isinstance(command[1], Mapping):
                jobs.append((command[0], command[1]))
            else:
                jobs.append((command, {}))
        with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1, 4))) as pool:
            futures = [pool.submit(_cli, args, cwd or cli_cwd, env, timeout) for args, env in jobs]
            return [future.result() for future in futures]

    return run
