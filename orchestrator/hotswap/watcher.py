"""``SourceWatcher``: a saved module file or config file reaches the manager.

watchfiles waits for changes in a thread (inotify on Linux) and hands over
a batch once no further change arrived for ``watch_step_ms`` (at most every
``watch_debounce_ms`` while changes keep coming), so an editor's several
writes of one save, or several quick saves, become one reload. Changes
that arrive while a reload is running are collected meanwhile and make at
most one more.

The seam for tests is ``changes``: any async iterator factory yielding
batches of ``(Change, path)``, like ``watchfiles.awatch`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from pathlib import Path

import structlog
import watchfiles

from orchestrator.control import CommandResult
from orchestrator.hotswap.config import HotSwapConfig
from orchestrator.hotswap.gil import lend_while_busy
from orchestrator.hotswap.manager import ModuleManager
from orchestrator.hotswap.watchset import WatchSet

log = structlog.get_logger("orchestrator.hotswap")

FileChanges = set[tuple[watchfiles.Change, str]]
ChangeSource = Callable[[Sequence[Path], asyncio.Event, HotSwapConfig], AsyncGenerator[FileChanges, None]]

# How often the watching thread looks up from the kernel's queue, so a stop
# (or a new set of directories) takes effect within this many milliseconds.
_WAKE_MS = 200


async def awatch_changes(
    directories: Sequence[Path], stop: asyncio.Event, settings: HotSwapConfig
) -> AsyncGenerator[FileChanges, None]:
    """Batches of changes in ``directories`` (not their subdirectories)."""
    async for changes in watchfiles.awatch(
        *directories,
        watch_filter=None,
        debounce=settings.watch_debounce_ms,
        step=settings.watch_step_ms,
        stop_event=stop,
        rust_timeout=_WAKE_MS,
        recursive=False,
    ):
        yield changes


class SourceWatcher:
    """A daemon service: watch, then ask the manager to reload what changed."""

    name = "module-watcher"

    def __init__(
        self,
        manager: ModuleManager,
        changes: ChangeSource = awatch_changes,
        reload_config: Callable[[], Awaitable[CommandResult]] | None = None,
    ) -> None:
        self.manager = manager
        self.changes = changes
        # A daemon passes its one reload path (lock, RELOADING=1 / READY=1) so
        # a saved config file is announced to systemd like SIGHUP; alone, the
        # watcher asks the manager directly.
        self.reload_config = reload_config or manager.reload_config
        self.watch: WatchSet = manager.watch_set()
        self.batches = 0  # change batches handled (visible to tests and status)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def run(self) -> None:
        # watchfiles' thread needs the GIL after every step, and a feed that
        # keeps the loop busy would starve it (see ``gil``): saves would be
        # seen late, by up to seconds on a loaded machine.
        lender = asyncio.create_task(lend_while_busy(), name="module-watcher-gil")
        try:
            await self._watch()
        finally:
            lender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lender

    async def _watch(self) -> None:
        first = True
        while True:
            generation = self.manager.generation
            self.watch = self.manager.watch_set()
            settings = self.manager.loaded.config.hot_swap
            stop = asyncio.Event()
            follower = asyncio.create_task(self._follow(generation, stop), name="module-watcher-follow")
            try:
                if not first:
                    await self._catch_up()  # changes made while the watch was being rebuilt
                first = False
                directories = sorted(self.watch.directories)
                if settings.watch and directories:
                    log.info("watching", directories=[str(d) for d in directories], files=len(self.watch.module_files))
                    async with contextlib.aclosing(self.changes(directories, stop, settings)) as stream:
                        async for batch in stream:
                            await self._handle(batch)
                else:
                    await stop.wait()
            finally:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower

    async def _follow(self, generation: int, stop: asyncio.Event) -> None:
        """Keep the classification current; restart the watch when the set
        of directories (or the watch settings) changes."""
        directories = self.watch.directories
        settings = self.manager.loaded.config.hot_swap
        while True:
            await self.manager.wait_change(generation)
            generation = self.manager.generation
            watch = self.manager.watch_set()
            self.watch = watch
            if watch.directories != directories or self.manager.loaded.config.hot_swap != settings:
                stop.set()
                return

    async def _handle(self, batch: FileChanges) -> None:
        self.batches += 1
        paths = {Path(path) for _, path in batch}
        watch = self.watch
        try:
            if any(watch.is_config(path) for path in paths) and self.manager.config_changed_on_disk():
                await self.reload_config()
            keys = {key for path in paths if (key := watch.implementation_of(path)) is not None}
            if keys:
                await self.manager.reload_changed(keys)
        except Exception as exc:
            log.exception("watcher_reload_crashed", error=f"{type(exc).__name__}: {exc}")

    async def _catch_up(self) -> None:
        try:
            if self.manager.config_changed_on_disk():
                await self.reload_config()
            await self.manager.reload_changed(set(self.watch.module_files.values()))
        except Exception as exc:
            log.exception("watcher_reload_crashed", error=f"{type(exc).__name__}: {exc}")
