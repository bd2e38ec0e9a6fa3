"""The source watcher: what a change means (through the seam), and real
saves on disk reaching a running feed (through watchfiles)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
import watchfiles
from hotswap_support import counter_source, wait_until

from orchestrator.hotswap.watcher import SourceWatcher


class FakeChanges:
    """A change source the test drives: each ``push`` is one batch."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[set[tuple[watchfiles.Change, str]]] = asyncio.Queue()
        self.directories: list[list[Path]] = []

    def push(self, *paths: Path) -> None:
        self.queue.put_nowait({(watchfiles.Change.modified, str(path)) for path in paths})

    async def __call__(self, directories, stop, settings):
        self.directories.append(list(directories))
        while not stop.is_set():
            getter = asyncio.ensure_future(self.queue.get())
            stopper = asyncio.ensure_future(stop.wait())
            done, pending = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if getter in done:
                yield getter.result()


@contextlib.asynccontextmanager
async def running(watcher: SourceWatcher):
    task = asyncio.create_task(watcher.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def rig(workspace, make_rig):
    workspace.write_module("counter", counter_source())
    workspace.write_module("tally", counter_source(module_name="tally"))
    # The default check deadline (10 s): the loop lends the worker the GIL in
    # turns (``hotswap.gil``), so a feed that never idles cannot starve it.
    workspace.write_config(workspace.base_config({"counter": {}, "tally": {}, "ma_crossover": {"enabled": False}}))
    return make_rig()


async def test_the_watch_covers_module_files_and_the_config(workspace, rig):
    watch = rig.manager.watch_set()
    assert watch.is_config(workspace.config.resolve())
    assert watch.implementation_of((workspace.modules / "counter.py").resolve()) == "counter"
    assert watch.implementation_of((workspace.modules / "counter.py~").resolve()) is None
    assert watch.implementation_of((workspace.modules / ".counter.py.swp").resolve()) is None
    assert {workspace.root.resolve(), workspace.modules.resolve()} <= set(watch.directories)


async def test_a_changed_module_file_reloads_that_module_only(workspace, rig):
    changes = FakeChanges()
    watcher = SourceWatcher(rig.manager, changes)
    counter, tally = rig.slot("counter"), rig.slot("tally")
    async with running(watcher):
        await wait_until(lambda: changes.directories, what="the watch to start")
        workspace.write_module("counter", counter_source("1.1.0"))
        changes.push((workspace.modules / "counter.py").resolve(), (workspace.modules / "notes.txt").resolve())
        await wait_until(lambda: rig.slot("counter") is not counter, what="the swap")
    assert rig.slot("tally") is tally
    assert rig.slot("counter").loaded.contract.version == "1.1.0"


async def test_a_config_save_with_identical_bytes_does_not_reload(workspace, rig):
    changes = FakeChanges()
    watcher = SourceWatcher(rig.manager, changes)
    applied = rig.manager.loaded
    async with running(watcher):
        await wait_until(lambda: changes.directories, what="the watch to start")
        workspace.config.write_text(workspace.config.read_text())
        changes.push(workspace.config.resolve())
        await wait_until(lambda: watcher.batches == 1, what="the batch")
        assert rig.manager.loaded is applied

        document = workspace.base_config(
            {"counter": {}, "tally": {"enabled": False}, "ma_crossover": {"enabled": False}}
        )
        workspace.write_config(document)
        changes.push(workspace.config.resolve())
        await wait_until(lambda: "tally" not in rig.engine.pipelines["default"].slots, what="tally to stop")


async def test_enabling_a_module_elsewhere_restarts_the_watch_on_its_directory(workspace, rig):
    changes = FakeChanges()
    watcher = SourceWatcher(rig.manager, changes)
    async with running(watcher):
        await wait_until(lambda: changes.directories, what="the watch to start")
        builtin = rig.manager.watch_set()
        assert (await rig.manager.enable("ma_crossover")).ok
        await wait_until(lambda: len(changes.directories) == 2, what="the watch to restart")
    added = set(changes.directories[1]) - set(changes.directories[0])
    assert added == set(rig.manager.watch_set().directories) - set(builtin.directories)
    assert any(path.name == "modules" for path in added)  # the built-in modules directory


async def test_real_saves_swap_in_while_events_flow(workspace, rig):
    """watchfiles end to end: a save on disk reaches a feed running on the loop."""
    watcher = SourceWatcher(rig.manager)
    stop = asyncio.Event()

    async def feed() -> None:
        while not stop.is_set():
            rig.feed(64)
            await asyncio.sleep(0)

    counter = rig.slot("counter")
    feeder = asyncio.create_task(feed())
    async with running(watcher):
        await asyncio.sleep(0.3)  # the watching thread is set up
        # Several quick saves, as an editor and an impatient user make them.
        for generation in range(2, 7):
            workspace.write_module("counter", counter_source(f"1.{generation}.0", generation=float(generation)))
        await wait_until(
            lambda: rig.slot("counter").loaded.contract.version == "1.6.0", timeout=120.0, what="the last version"
        )
        await wait_until(lambda: rig.feature("counter", "generation") == 6.0, what="the new outputs")
        stop.set()
        await feeder
    assert rig.slot("counter") is not counter
    assert rig.slot("counter").swaps <= 2  # the five saves coalesced
    assert rig.slot("counter").instance.count == rig.fed  # every event counted once across the swaps
