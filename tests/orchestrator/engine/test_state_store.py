"""Module state on disk: atomic writes, and a damaged file never stops a start."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.contract import ModuleState
from orchestrator.engine.state_store import ModuleStateStore


def test_state_round_trips_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = ModuleStateStore(tmp_path)
    state = ModuleState("ma", "1.0", 2, {"windows": [1.0, 2.5], "nested": {"n": 3}, "gap": float("nan")})
    store.save("majors", "trend", state)
    store.save("majors", "trend", state)
    loaded = store.load("majors", "trend")
    assert loaded is not None
    assert (loaded.module, loaded.version, loaded.state_version) == ("ma", "1.0", 2)
    assert loaded.data["windows"] == [1.0, 2.5]
    assert loaded.data["nested"] == {"n": 3}
    assert [p.name for p in (tmp_path / "modules" / "majors").iterdir()] == ["trend.json"]
    assert store.path("majors", "trend") == tmp_path / "modules" / "majors" / "trend.json"


@pytest.mark.parametrize(
    "content",
    ["{not json", '{"module": "m"}', '{"module": "m", "version": "1", "state_version": "x", "data": {}}', "[]"],
)
def test_missing_or_damaged_state_means_a_cold_start(tmp_path: Path, content: str) -> None:
    store = ModuleStateStore(tmp_path)
    assert store.load("b", "m") is None
    store.path("b", "m").parent.mkdir(parents=True)
    store.path("b", "m").write_text(content)
    assert store.load("b", "m") is None


def test_a_failed_write_keeps_the_previous_state(tmp_path: Path) -> None:
    store = ModuleStateStore(tmp_path)
    store.save("b", "m", ModuleState("m", "1", 1, {"good": True}))
    with pytest.raises(TypeError):
        store.save("b", "m", ModuleState("m", "1", 1, {"bad": object()}))
    loaded = store.load("b", "m")
    assert loaded is not None
    assert loaded.data == {"good": True}
    assert [p.name for p in store.path("b", "m").parent.iterdir()] == ["m.json"]
