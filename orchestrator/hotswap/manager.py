"""``ModuleManager``: every hot change to the running module set goes through here.

It implements ``ModuleOperations`` (reload, enable, disable, set a
parameter, reload the configuration) for every command channel, and
``files_changed`` for the source watcher. Each change runs the same way:

1. under one lock (changes are serialised: a change is validated against
   the module set the previous one left, dependencies included);
2. in a worker thread, off the event path: load the new code as a fresh
   module object or read the new configuration, plan the target with
   ``plan_run`` (the start-up checks), compare it with what is serving,
   build the new instances and check them on recorded events;
3. back on the loop, between two events: apply (``apply_transition``);
4. retire what no longer serves (``sys.modules`` entries), save stopped
   modules' state, tell observers.

A failure at step 2 changes nothing: the serving versions go on, the
half-loaded module is forgotten, and the error (with file and line) is
logged, returned, and kept on the serving module as ``reload_error``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import structlog

from orchestrator.config.loader import LoadedConfig, load_config
from orchestrator.control import CommandResult
from orchestrator.engine.orchestrator import TradingOrchestrator
from orchestrator.engine.plan import RunPlan, implementation_key, plan_run
from orchestrator.engine.slot import ModuleSlot
from orchestrator.engine.state_store import ModuleStateStore
from orchestrator.errors import ConfigError, ModuleLoadError
from orchestrator.hotswap.apply import ApplyReport, apply_transition
from orchestrator.hotswap.candidate import CheckFailed, PreparedBucket, prepare_transition
from orchestrator.hotswap.config_reload import edited, effective_config, shadowing_buckets
from orchestrator.hotswap.gil import Checkpoint, run_aside
from orchestrator.hotswap.loading import file_digest, forget_loaded, load_changed
from orchestrator.hotswap.notices import ChangeNotices
from orchestrator.hotswap.params import check_param, shown
from orchestrator.hotswap.recorder import RecentEvents
from orchestrator.hotswap.report import ChangeKind, ModuleChange, module_row
from orchestrator.hotswap.transition import TopologyError, Transition, diff_plans, running_plan, serving_implementations
from orchestrator.hotswap.watchset import WatchSet, watch_set
from orchestrator.logs import configure_logging
from orchestrator.plugins.loader import LoadedModule
from orchestrator.plugins.sources import ModuleSource

log = structlog.get_logger("orchestrator.hotswap")

_REFUSED = (ConfigError, ModuleLoadError, CheckFailed, TopologyError, TimeoutError)


def _problems(exc: BaseException) -> list[str]:
    if isinstance(exc, ConfigError | CheckFailed):
        return list(exc.problems)
    if isinstance(exc, TimeoutError):
        return ["loading and checking did not finish in time (hot_swap.check_timeout_s); is the new code stuck?"]
    return [str(exc)]


class ModuleManager:
    """Hot changes to one engine's modules (``ModuleOperations``)."""

    def __init__(
        self,
        *,
        engine: TradingOrchestrator,
        loaded: LoadedConfig,
        store: ModuleStateStore | None = None,
        recorder: RecentEvents | None = None,
        is_stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.engine = engine
        self.loaded = loaded  # the configuration actually applied
        self.store = store
        self.recorder = recorder or RecentEvents(loaded.config.hot_swap.sample_events)
        self.is_stopping = is_stopping
        self.lock = asyncio.Lock()
        self.notices = ChangeNotices()
        self.observers = self.notices.observers  # ModuleChange notices: logs, MQTT
        self.config_listeners: list[Callable[[LoadedConfig, RunPlan], None]] = []
        self.config_problems: list[str] = []  # why the file on disk was last refused
        self.restart_required: list[str] = []  # file changes waiting for a restart
        self.overrides: list[str] = []  # operator edits the file does not have
        self.config_applied_at = time.time()
        self.config_digest = file_digest(loaded.path)  # of the file as last read (applied or refused)
        self.generation = 0  # bumped after every applied change: the watched files may differ
        self._changed = asyncio.Event()

    # ------------------------------------------------------------ operations

    async def reload(self, name: str | None) -> CommandResult:
        """``name``: load that module's code anew and swap it in, even if
        unchanged (every instance of the same implementation gets the new
        code). ``None``: re-read the config file, then swap in every module
        whose source changed on disk."""
        if name is None:
            config = await self.reload_config()
            async with self.lock:
                code = await self._reload_code(self._sources(), force=False)
            return CommandResult(
                config.ok and code.ok,
                f"{config.message}; {code.message}",
                {"config": dict(config.data), "code": dict(code.data)},
            )
        async with self.lock:
            slots_or_problem = self._serving_slots(name)
            if isinstance(slots_or_problem, str):
                return CommandResult(False, slots_or_problem)
            key = self._key_of(name)
            return await self._reload_code({key: slots_or_problem[0].loaded.source}, force=True)

    async def reload_changed(self, keys: Collection[str]) -> CommandResult:
        """The watcher's entry: swap in these implementations if their source changed."""
        async with self.lock:
            sources = self._sources()
            return await self._reload_code({k: sources[k] for k in keys if k in sources}, force=False)

    async def reload_config(self) -> CommandResult:
        """Re-read and re-validate the whole file; apply what can change live."""
        async with self.lock:
            path = self.loaded.path
            if path is None:
                return CommandResult(False, "started without a config file: nothing to reload")
            current = self.loaded
            serving = serving_implementations(self.engine, current)  # read on the loop, used in the worker
            waiting: list[str] = []
            digest: str | None = None

            def target() -> RunPlan:
                nonlocal waiting, digest
                digest = file_digest(path)
                applied, waiting = effective_config(current, load_config(path))
                return plan_run(applied, cache=serving)

            try:
                transition, prepared, prepare_ms = await self._prepare(target)
            except _REFUSED as exc:
                self.config_digest = digest
                self.config_problems = _problems(exc)
                return self.notices.config_rejected(self.config_problems)
            self.config_digest = digest
            if self.is_stopping():
                return self._discard(transition)
            dropped = list(self.overrides)
            self.overrides = []
            self.config_problems = []
            self.restart_required = waiting
            result = await self._commit(transition, prepared, prepare_ms, fresh=())
            for line in waiting:
                log.warning("config_restart_required", change=line)
            message = "config reloaded: " + (", ".join(result["changes"]) or "no module change")
            if waiting:
                message += f"; waiting for a restart: {'; '.join(waiting)}"
            if dropped:
                message += f"; operator changes replaced by the file: {', '.join(dropped)}"
            message += "".join(f"; swap refused: {failure}" for failure in result["failures"])
            self.notices.notify(ModuleChange(ChangeKind.CONFIG_APPLIED, message))
            log.info("config_reloaded", changes=result["changes"], restart_required=waiting, path=str(path))
            return CommandResult(not result["failures"], message, {**result, "restart_required": waiting})

    async def enable(self, name: str) -> CommandResult:
        return await self._edit(name, f"enable {name}", enabled=True)

    async def disable(self, name: str) -> CommandResult:
        return await self._edit(name, f"disable {name}", enabled=False)

    async def set_param(self, name: str, key: str, value: Any) -> CommandResult:
        if not isinstance(key, str) or not key:
            return CommandResult(False, "a parameter name is a non-empty string")
        return await self._edit(name, f"set {name}.{key}={shown(value)}", param=(key, value))

    # ------------------------------------------------------------ visibility

    def describe(self) -> dict[str, Any]:
        """What is running: every serving module, and the config's standing."""
        config = self.loaded.config
        return {
            "config": {
                "path": None if self.loaded.path is None else str(self.loaded.path),
                "applied_at": round(self.config_applied_at, 3),
                "problems": list(self.config_problems),
                "restart_required": list(self.restart_required),
                "operator_overrides": list(self.overrides),
            },
            "watching": config.hot_swap.watch,
            "modules": [module_row(snapshot) for snapshot in self.engine.module_health()],
            "disabled": sorted(name for name, module in config.modules.items() if not module.enabled),
        }

    def watch_set(self) -> WatchSet:
        return watch_set(self.loaded, serving_implementations(self.engine, self.loaded))

    def config_changed_on_disk(self) -> bool:
        """Whether the config file's content differs from what was last read
        (a save that rewrote the same bytes is no change)."""
        return self.loaded.path is not None and file_digest(self.loaded.path) != self.config_digest

    async def wait_change(self, generation: int) -> None:
        """Return once a change after ``generation`` has been applied."""
        while self.generation == generation:
            await self._changed.wait()

    # ------------------------------------------------------------ internals

    def _slots(self) -> list[ModuleSlot]:
        return [slot for pipeline in self.engine.pipelines.values() for slot in pipeline.slots.values()]

    def _key_of(self, name: str) -> str:
        return implementation_key(name, self.loaded.config.modules[name])

    def _sources(self) -> dict[str, ModuleSource]:
        return {key: loaded.source for key, loaded in serving_implementations(self.engine, self.loaded).items()}

    def _serving_slots(self, name: str) -> list[ModuleSlot] | str:
        """The live slots of instance ``name``, or why there are none. Only
        modules the local configuration names are ever touched."""
        modules = self.loaded.config.modules
        if name not in modules:
            known = ", ".join(sorted(modules)) or "none"
            return f"unknown module {name!r}: the configuration names {known}"
        if not modules[name].enabled:
            return f"module {name!r} is disabled: enable it first"
        slots = [slot for slot in self._slots() if slot.name == name]
        return slots or f"module {name!r} is enabled but serves in no bucket"

    async def _prepare(self, make_target: Callable[[], RunPlan]) -> tuple[Transition, list[PreparedBucket], float]:
        """Plan, build and check in a worker thread; the loop goes on serving."""
        running = running_plan(self.engine, self.loaded)
        sample = self.recorder.snapshot()
        pipelines = dict(self.engine.pipelines)
        store = self.store

        def job(checkpoint: Checkpoint) -> tuple[Transition, list[PreparedBucket]]:
            transition = diff_plans(running, make_target())
            if transition.is_empty:
                return transition, []
            checkpoint()
            return transition, prepare_transition(transition, pipelines, sample, store=store, checkpoint=checkpoint)

        def discard(late: tuple[Transition, list[PreparedBucket]]) -> None:
            # Given up on, then finished: forget what the plan loaded (a new
            # ``module:`` or ``path``); the serving versions are not in question.
            serving = {id(module) for module in running.implementations.values()}
            for module in late[0].target.implementations.values():
                if id(module) not in serving:
                    module.unload()

        started = time.perf_counter()
        timeout = self.loaded.config.hot_swap.check_timeout_s
        transition, prepared = await run_aside(job, timeout_s=timeout, name="hot-swap-check", discard=discard)
        return transition, prepared, (time.perf_counter() - started) * 1000.0

    async def _reload_code(self, sources: Mapping[str, ModuleSource], *, force: bool) -> CommandResult:
        if not sources:
            return CommandResult(True, "no serving module to reload")
        serving = serving_implementations(self.engine, self.loaded)
        timeout = self.loaded.config.hot_swap.check_timeout_s
        started = time.perf_counter()
        try:
            fresh, failed, unchanged = await run_aside(
                lambda checkpoint: load_changed(sources, serving, force, checkpoint),
                timeout_s=timeout,
                name="hot-swap-load",
                discard=forget_loaded,
            )
        except TimeoutError as exc:
            for key in sources:
                self.notices.reload_failed(key, serving[key], _problems(exc), None, self._slots())
            return CommandResult(False, "reload refused: " + _problems(exc)[0])
        load_ms = (time.perf_counter() - started) * 1000.0
        for key in unchanged:
            for slot in self._slots():
                if slot.loaded is serving[key]:
                    slot.reload_error = None  # the file is back to the serving version
        for key, error in failed.items():
            self.notices.reload_failed(key, serving[key], [error.message], error, self._slots())
        refused = [f"{key}: {error}" for key, error in failed.items()]
        if not fresh:
            message = "; ".join([*(f"refused {line}" for line in refused), *(f"unchanged {k}" for k in unchanged)])
            return CommandResult(not failed, message or "nothing to reload", {"problems": refused})
        current = self.loaded
        try:
            transition, prepared, prepare_ms = await self._prepare(
                lambda: plan_run(current, cache={**serving, **fresh})
            )
        except _REFUSED as exc:
            for key, loaded in fresh.items():
                loaded.unload()
                self.notices.reload_failed(key, serving[key], _problems(exc), None, self._slots())
            return CommandResult(False, "reload refused: " + "; ".join(_problems(exc)), {"problems": _problems(exc)})
        if transition.is_empty or self.is_stopping():
            return self._discard(transition, fresh.values())
        result = await self._commit(transition, prepared, prepare_ms, fresh=fresh.values())
        result["timings_ms"]["load"] = round(load_ms, 3)
        parts = [f"swapped {', '.join(result['swapped'])}"] if result["swapped"] else []
        parts += [f"unchanged {', '.join(unchanged)}"] if unchanged else []
        parts += [f"refused {'; '.join(refused)}"] if refused else []
        parts += [f"swap refused: {failure}" for failure in result["failures"]]
        ok = not failed and not result["failures"]
        return CommandResult(ok, "; ".join(parts) or "nothing to reload", {**result, "problems": refused})

    async def _edit(self, name: str, what: str, **change: Any) -> CommandResult:
        """An operator's edit of one module entry of the running configuration."""
        async with self.lock:
            current = self.loaded
            if name not in current.config.modules:
                known = ", ".join(sorted(current.config.modules)) or "none"
                return CommandResult(False, f"unknown module {name!r}: the configuration names {known}")
            serving = serving_implementations(self.engine, current)
            running = {slot.name for slot in self._slots()}

            def target() -> RunPlan:
                if "param" in change:  # its type, and its schema when the plan would not look (disabled)
                    check_param(new, name, change["param"][0], serving, running)
                return plan_run(new, cache=serving)

            try:
                new = edited(current, name, **change)
                transition, prepared, prepare_ms = await self._prepare(target)
            except _REFUSED as exc:
                return CommandResult(
                    False, f"{what} refused: " + "; ".join(_problems(exc)), {"problems": _problems(exc)}
                )
            if self.is_stopping():
                return self._discard(transition)
            if transition.is_empty:
                if new.config != current.config:  # e.g. a disabled module's parameter: it lasts until a reload too
                    self.overrides.append(what)
                self._apply_settings(new)  # e.g. a module no bucket uses: nothing runs differently
                return CommandResult(True, f"{what}: no change to the running modules")
            self.overrides.append(what)
            result = await self._commit(transition, prepared, prepare_ms, fresh=(), applied=new)
            note = ""
            if "param" in change:
                shadowed = shadowing_buckets(new.config, name, change["param"][0])
                if shadowed:
                    note = f" (bucket(s) {', '.join(shadowed)} override this parameter and keep their value)"
            where = "" if current.path is None else f"; lasts until {current.path} is reloaded"
            message = f"{what}: " + (", ".join(result["changes"]) or "no module change") + note + where
            message += "".join(f"; swap refused: {failure}" for failure in result["failures"])
            log.info("module_operator_change", change=what, changes=result["changes"])
            return CommandResult(not result["failures"], message, result)

    async def _commit(
        self,
        transition: Transition,
        prepared: list[PreparedBucket],
        prepare_ms: float,
        *,
        fresh: Iterable[LoadedModule],
        applied: LoadedConfig | None = None,
    ) -> dict[str, Any]:
        """Apply at this event boundary, then retire, report and save."""
        before = [slot.loaded for slot in self._slots()]
        report = apply_transition(self.engine, transition, prepared)
        self._apply_settings(transition.target.loaded_config if applied is None else applied)
        plan = running_plan(self.engine, self.loaded)
        for listener in self.config_listeners:
            listener(self.loaded, plan)
        self.generation += 1
        self._changed.set()
        self._changed = asyncio.Event()
        # Serve the events that waited for the swap before the bookkeeping
        # (module objects, logs): the event path waits for the swap alone.
        await asyncio.sleep(0)
        serving_ids = {id(slot.loaded) for slot in self._slots()}
        retired: dict[int, LoadedModule] = {}
        for module in [*before, *transition.target.implementations.values(), *fresh]:
            if id(module) not in serving_ids:
                retired[id(module)] = module
        for module in retired.values():
            module.unload()
        self.notices.applied(report, self._slots())
        if self.store is not None and report.stopped:
            await asyncio.to_thread(self._save_states, report)
        return {
            "changes": transition.summary(),
            "swapped": [name for _, name, _ in report.swapped],
            "failures": [f"{name} [{bucket}]: {error}" for bucket, name, error in report.failures],
            # prepare: plan, build and check, in a worker thread; swap: on the loop, between two events.
            "timings_ms": {"prepare": round(prepare_ms, 3), "swap": round(report.duration_ns / 1e6, 3)},
        }

    def _discard(self, transition: Transition, fresh: Iterable[LoadedModule] = ()) -> CommandResult:
        """Drop a prepared change: forget every version it loaded that does not serve."""
        serving_ids = {id(slot.loaded) for slot in self._slots()}
        for module in [*transition.target.implementations.values(), *fresh]:
            if id(module) not in serving_ids:
                module.unload()
        if self.is_stopping():
            return CommandResult(False, "the daemon is stopping: change not applied")
        return CommandResult(True, "nothing to swap")

    def _apply_settings(self, applied: LoadedConfig) -> None:
        old = self.loaded.config
        self.loaded = applied
        self.config_applied_at = time.time()
        new = applied.config
        if new.log != old.log:
            configure_logging(new.log.level, new.log.format)
        if new.hot_swap.sample_events != old.hot_swap.sample_events:
            self.recorder.resize(new.hot_swap.sample_events)

    def _save_states(self, report: ApplyReport) -> None:
        assert self.store is not None
        for bucket, name, state in report.stopped:
            if state is None:
                continue
            try:
                self.store.save(bucket, name, state)
            except OSError as exc:
                log.warning("module_state_not_saved", module=name, bucket=bucket, error=str(exc))
