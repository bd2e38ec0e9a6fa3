"""Fixtures of the hot-swap tests (helpers live in ``hotswap_support``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hotswap_support import SYMBOLS, Rig, Workspace

from orchestrator.engine.builder import build_orchestrator
from orchestrator.engine.plan import plan_run
from orchestrator.engine.state_store import ModuleStateStore
from orchestrator.events import MarketEvent
from orchestrator.feeds.config import SimulatedMarketConfig
from orchestrator.feeds.simulated import SimulatedMarket
from orchestrator.hotswap.manager import ModuleManager
from orchestrator.hotswap.recorder import RecentEvents


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    modules = tmp_path / "mods"
    modules.mkdir()
    return Workspace(tmp_path, modules, tmp_path / "config.yaml", tmp_path / "st")


@pytest.fixture(scope="session")
def market_events() -> list[MarketEvent]:
    config = SimulatedMarketConfig(speed=0.0, bar_ms=5_000)
    return SimulatedMarket(config, SYMBOLS).take(20_000)


@pytest.fixture
def make_rig(workspace: Workspace, market_events: list[MarketEvent]) -> Callable[[], Rig]:
    """Build an engine and its manager from the workspace's config."""

    def make() -> Rig:
        loaded = workspace.load()
        store = ModuleStateStore(workspace.state)
        engine = build_orchestrator(plan_run(loaded), store=store)
        recorder = RecentEvents()
        manager = ModuleManager(engine=engine, loaded=loaded, store=store, recorder=recorder)
        return Rig(engine, manager, recorder, market_events)

    return make
