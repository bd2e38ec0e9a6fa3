"""Reloading module code through the manager: swaps with state handoff, and
every kind of broken version refused while the old one keeps serving."""

from __future__ import annotations

import sys

import pytest
from hotswap_support import counter_source, reader_source

from orchestrator.engine.health import ModuleStatus
from orchestrator.hotswap.report import ChangeKind, ModuleChange


def loaded_names(prefix: str = "orchestrator_loaded.counter_") -> set[str]:
    return {name for name in sys.modules if name.startswith(prefix)}


@pytest.fixture
def counter_rig(workspace, make_rig):
    workspace.write_module("counter", counter_source())
    workspace.write_config(workspace.base_config({"counter": {}}))
    return make_rig()


async def test_a_new_version_swaps_in_and_adopts_the_count(workspace, counter_rig):
    rig = counter_rig
    notices: list[ModuleChange] = []
    rig.manager.observers.append(notices.append)
    rig.feed(500)
    old = rig.slot("counter")
    old_module = old.loaded.module_name
    workspace.write_module("counter", counter_source("1.1.0", generation=2.0))

    result = await rig.manager.reload("counter")
    rig.feed(500)

    assert result.ok, result.message
    new = rig.slot("counter")
    assert new is not old
    assert new.loaded.contract.version == "1.1.0"
    assert new.swaps == 1
    assert rig.feature("counter", "generation") == 2.0
    assert new.instance.count == 1000  # state handed over: every event counted once
    assert old_module not in sys.modules  # the retired version is forgotten
    assert new.loaded.module_name in sys.modules
    assert [n.kind for n in notices] == [ChangeKind.SWAPPED]
    assert notices[0].state_adopted is True
    assert result.data["timings_ms"]["swap"] >= 0.0


async def test_a_new_state_layout_is_refused_and_the_new_version_starts_cold(workspace, counter_rig):
    rig = counter_rig
    rig.feed(300)
    workspace.write_module("counter", counter_source("2.0.0", state_version=2))
    result = await rig.manager.reload("counter")
    rig.feed(10)
    assert result.ok
    assert rig.slot("counter").instance.count == 10


async def test_an_unchanged_file_is_not_swapped_by_the_watcher_path(workspace, counter_rig):
    rig = counter_rig
    old = rig.slot("counter")
    result = await rig.manager.reload_changed({"counter"})
    assert result.ok
    assert "unchanged counter" in result.message
    assert rig.slot("counter") is old


BROKEN_VERSIONS = [  # (source, text the error must contain, text on the line it must point at)
    pytest.param(counter_source(top="def broken(:"), "SyntaxError", "def broken(:", id="syntax"),
    pytest.param(
        counter_source(top="import no_such_module_here"), "ModuleNotFoundError", "no_such_module", id="import"
    ),
    pytest.param(counter_source(init="raise RuntimeError('boom')"), "boom", "RuntimeError('boom')", id="constructor"),
    pytest.param(counter_source(handler="raise ValueError('bad event')"), "bad event", "ValueError", id="handler"),
    pytest.param(counter_source(self_check="return ['numbers look wrong']"), "numbers look wrong", None, id="check"),
    pytest.param(counter_source(depends_on=("missing",)), "missing", None, id="contract"),
    pytest.param(counter_source(module_name="Not A Name"), "lower_snake_case", None, id="name"),
    pytest.param(counter_source(extra_params="needed: int"), "needed", None, id="params"),
]


@pytest.mark.parametrize(("broken", "expected", "marker"), BROKEN_VERSIONS)
async def test_a_broken_version_leaves_the_old_one_serving(workspace, counter_rig, broken, expected, marker):
    rig = counter_rig
    notices: list[ModuleChange] = []
    rig.manager.observers.append(notices.append)
    rig.feed(200)
    old = rig.slot("counter")
    before = loaded_names()
    path = workspace.write_module("counter", broken)

    result = await rig.manager.reload_changed({"counter"})
    rig.feed(200)

    assert not result.ok
    assert expected in result.message or any(expected in p for p in result.data.get("problems", []))
    assert rig.slot("counter") is old  # still serving, untouched
    assert old.status is ModuleStatus.ACTIVE
    assert old.instance.count == 400
    assert loaded_names() == before  # the half-loaded version left nothing in sys.modules
    assert old.reload_error is not None
    assert expected in old.reload_error
    assert str(path) in old.reload_error
    assert notices[-1].kind is ChangeKind.RELOAD_FAILED
    if marker is not None:  # file and line of the fault
        line = next(n for n, text in enumerate(broken.splitlines(), 1) if marker in text)
        assert old.reload_error.startswith(f"{path}:{line}: ")
        assert (notices[-1].file, notices[-1].line) == (str(path), line)
    assert rig.engine.module_health()[0].reload_error == old.reload_error

    workspace.write_module("counter", counter_source("1.2.0", generation=3.0))
    result = await rig.manager.reload_changed({"counter"})
    rig.feed(1)
    assert result.ok, result.message
    assert rig.slot("counter").loaded.contract.version == "1.2.0"
    assert rig.slot("counter").reload_error is None
    assert rig.slot("counter").instance.count == 401


async def test_restoring_the_serving_file_clears_the_reload_error(workspace, counter_rig):
    rig = counter_rig
    good = (workspace.modules / "counter.py").read_text()
    workspace.write_module("counter", counter_source(top="def broken(:"))
    assert not (await rig.manager.reload_changed({"counter"})).ok
    assert rig.slot("counter").reload_error
    workspace.write_module("counter", good)
    assert (await rig.manager.reload_changed({"counter"})).ok
    assert rig.slot("counter").reload_error is None
    assert rig.slot("counter").swaps == 0


async def test_a_version_that_breaks_a_dependent_is_refused(workspace, make_rig):
    workspace.write_module("counter", counter_source())
    workspace.write_module("reader", reader_source("count"))
    workspace.write_config(workspace.base_config({"counter": {}, "reader": {}}))
    rig = make_rig()
    rig.feed(300)
    old = rig.slot("counter")
    # The new counter renames its feature; the reader still asks for "count".
    workspace.write_module("counter", counter_source("2.0.0").replace('"count": float', '"total": float'))

    result = await rig.manager.reload("counter")

    assert not result.ok
    assert any("reader (depends on counter)" in p and "KeyError" in p for p in result.data["problems"])
    assert rig.slot("counter") is old
    assert rig.slot("reader").health.errors == 0


async def test_a_new_dependency_reorders_the_calls(workspace, make_rig):
    workspace.write_module("counter", counter_source())
    workspace.write_module("tally", counter_source(module_name="tally"))
    workspace.write_config(workspace.base_config({"tally": {}, "counter": {}}))
    rig = make_rig()
    assert list(rig.engine.pipelines["default"].slots) == ["tally", "counter"]
    workspace.write_module("tally", counter_source("2.0.0", module_name="tally", depends_on=("counter",)))
    result = await rig.manager.reload("tally")
    assert result.ok, result.message
    assert list(rig.engine.pipelines["default"].slots) == ["counter", "tally"]


async def test_only_configured_enabled_modules_can_be_reloaded(workspace, make_rig):
    workspace.write_module("counter", counter_source())
    workspace.write_config(workspace.base_config({"counter": {}, "ma_crossover": {"enabled": False}}))
    rig = make_rig()
    unknown = await rig.manager.reload("../../etc/passwd")
    assert not unknown.ok
    assert "unknown module" in unknown.message
    assert "counter" in unknown.message
    disabled = await rig.manager.reload("ma_crossover")
    assert not disabled.ok
    assert "disabled" in disabled.message


async def test_reload_without_a_name_swaps_only_what_changed(workspace, make_rig):
    workspace.write_module("counter", counter_source())
    workspace.write_module("tally", counter_source(module_name="tally"))
    workspace.write_config(workspace.base_config({"counter": {}, "tally": {}}))
    rig = make_rig()
    tally = rig.slot("tally")
    workspace.write_module("counter", counter_source("1.1.0"))
    result = await rig.manager.reload(None)
    assert result.ok, result.message
    assert rig.slot("counter").loaded.contract.version == "1.1.0"
    assert rig.slot("tally") is tally
