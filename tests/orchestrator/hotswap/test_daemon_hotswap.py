"""Hot swap inside a running daemon, with real file edits, while the
simulated market streams as fast as the machine allows.

Exactly-once is checked through state: the test module counts every event
it sees and hands the count to its successor, so after any number of swaps
its saved count must equal the events the daemon processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from hotswap_support import SYMBOLS, counter_source, wait_until

from orchestrator.daemon import Daemon


@contextlib.asynccontextmanager
async def running(daemon: Daemon):
    task = asyncio.create_task(daemon.run())
    try:
        await asyncio.wait_for(daemon.ready.wait(), 30)
        await wait_until(lambda: daemon.hot_swap.watcher.watch.module_files, what="the watch")
        await asyncio.sleep(0.3)  # the watching thread is set up
        yield daemon
    finally:
        daemon.request_stop("test over")
        assert await asyncio.wait_for(task, 30) == 0


def saved_count(workspace, module: str) -> int:
    saved = json.loads((workspace.state / "modules" / "default" / f"{module}.json").read_text())
    return int(saved["data"]["count"])


def latest(daemon: Daemon, module: str, key: str) -> float | None:
    output = daemon.engine.pipelines["default"].latest[SYMBOLS[0]].get(module)
    return None if output is None else output.features.get(key)


@pytest.fixture
def daemon(workspace):
    workspace.write_module("counter", counter_source())
    workspace.write_module("tally", counter_source(module_name="tally"))
    workspace.write_config(workspace.base_config({"counter": {}, "tally": {}}))
    return Daemon(workspace.load())


async def test_edits_swap_in_with_every_event_processed_exactly_once(workspace, daemon):
    async with running(daemon):
        manager = daemon.hot_swap.manager
        for generation in (2.0, 3.0, 4.0):
            events_before = daemon.engine.counters.events
            workspace.write_module("counter", counter_source(f"1.{int(generation)}.0", generation=generation))
            await wait_until(lambda g=generation: latest(daemon, "counter", "generation") == g, what="new outputs")
            assert daemon.engine.counters.events > events_before  # the stream never stopped
        rows = {row["name"]: row for row in manager.describe()["modules"]}
        assert rows["counter"]["version"] == "1.4.0"
        assert rows["counter"]["swaps"] == 3
        assert rows["tally"]["swaps"] == 0
    events = daemon.engine.counters.events
    assert events > 1000
    assert saved_count(workspace, "counter") == events  # count in = count out, across three swaps
    assert saved_count(workspace, "tally") == events


async def test_a_broken_edit_keeps_the_old_version_and_the_next_good_one_swaps(workspace, daemon):
    async with running(daemon):
        manager = daemon.hot_swap.manager
        slot = daemon.engine.pipelines["default"].slots["counter"]
        workspace.write_module("counter", counter_source("9.9.9", handler="return 1 / 0"))
        await wait_until(lambda: slot.reload_error is not None, what="the refusal")
        assert "ZeroDivisionError" in slot.reload_error
        assert daemon.engine.pipelines["default"].slots["counter"] is slot
        row = next(r for r in manager.describe()["modules"] if r["name"] == "counter")
        assert (row["version"], row["state"]) == ("1.0.0", "active")
        assert row["reload_error"] == slot.reload_error

        workspace.write_module("counter", counter_source("1.1.0", generation=5.0))
        await wait_until(lambda: latest(daemon, "counter", "generation") == 5.0, what="the good version")
        assert daemon.engine.pipelines["default"].slots["counter"].reload_error is None
    assert saved_count(workspace, "counter") == daemon.engine.counters.events


async def test_config_edits_apply_live_and_an_invalid_one_changes_nothing(workspace, daemon):
    async with running(daemon):
        manager = daemon.hot_swap.manager
        pipeline = daemon.engine.pipelines["default"]
        workspace.write_config(
            workspace.base_config({"counter": {"params": {"scale": 3.0}}, "tally": {"enabled": False}})
        )
        await wait_until(
            lambda: "tally" not in pipeline.slots and latest(daemon, "counter", "scale") == 3.0, what="edit"
        )
        assert daemon.config.modules["counter"].params == {"scale": 3.0}  # the daemon follows the applied config

        workspace.config.write_text(workspace.config.read_text() + "risk: {allocation: -1}\n")  # out of range
        await wait_until(lambda: manager.config_problems, what="the refusal")
        assert any("risk.allocation" in problem for problem in manager.config_problems)
        assert "tally" not in pipeline.slots
        assert latest(daemon, "counter", "scale") == 3.0

        workspace.write_config(workspace.base_config({"counter": {}, "tally": {}}))
        await wait_until(
            lambda: "tally" in pipeline.slots and latest(daemon, "counter", "scale") == 1.0, what="re-enable"
        )
        assert manager.config_problems == []
    assert saved_count(workspace, "counter") == daemon.engine.counters.events
    assert saved_count(workspace, "tally") < daemon.engine.counters.events  # it missed the events while disabled


async def test_reload_config_reports_restart_only_changes(workspace, daemon):
    async with running(daemon):
        document = workspace.base_config({"counter": {}, "tally": {}}, instance="elsewhere")
        document["hot_swap"] = {"watch": False}
        workspace.write_config(document)
        await wait_until(lambda: daemon.hot_swap.manager.restart_required, what="the reload")
        assert daemon.hot_swap.manager.restart_required == ["instance: changed; takes effect after a restart"]
        assert daemon.config.instance == "default"
        assert daemon.config.hot_swap.watch is False
        result = await daemon.reload_config()  # what SIGHUP runs
        assert result.ok
        assert "waiting for a restart: instance" in result.message
