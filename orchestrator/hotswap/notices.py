"""Telling the world what a hot change did: log lines, ``reload_error`` on the
serving module, and ``ModuleChange`` notices to observers (the MQTT status
publisher subscribes through ``ModuleManager.observers``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import structlog

from orchestrator.control import CommandResult
from orchestrator.engine.slot import ModuleSlot
from orchestrator.errors import ModuleLoadError
from orchestrator.hotswap.apply import ApplyReport
from orchestrator.hotswap.report import ChangeKind, ModuleChange
from orchestrator.plugins.loader import LoadedModule

log = structlog.get_logger("orchestrator.hotswap")

_AT_FILE_LINE = re.compile(r" at (\S+?):(\d+)\b")


class ChangeNotices:
    """Logs and notices for one manager; observers are plain callables."""

    def __init__(self) -> None:
        self.observers: list[Callable[[ModuleChange], None]] = []

    def applied(self, report: ApplyReport, serving: Iterable[ModuleSlot]) -> None:
        slots = {(slot.bucket, slot.name): slot for slot in serving}
        swap_ms = round(report.duration_ns / 1e6, 3)
        for kind, entries in ((ChangeKind.SWAPPED, report.swapped), (ChangeKind.STARTED, report.started)):
            for bucket, name, adopted in entries:
                slot = slots[(bucket, name)]
                contract = slot.loaded.contract
                log.info(
                    f"module_{kind.value}",
                    module=name,
                    bucket=bucket,
                    version=contract.version,
                    source_hash=slot.loaded.source_hash,
                    state_adopted=adopted,
                    swap_ms=swap_ms,
                )
                self.notify(
                    ModuleChange(
                        kind,
                        f"{name} {contract.version} {kind.value}",
                        name,
                        bucket,
                        contract.version,
                        slot.loaded.source_hash,
                        state_adopted=adopted,
                    )
                )
        for bucket, name, _ in report.stopped:
            log.info("module_stopped", module=name, bucket=bucket)
            self.notify(ModuleChange(ChangeKind.STOPPED, f"{name} stopped", name, bucket))
        for bucket, name, error in report.failures:
            log.error("module_swap_failed", module=name, bucket=bucket, error=error)
            self.notify(ModuleChange(ChangeKind.RELOAD_FAILED, f"{name}: {error}", name, bucket))

    def reload_failed(
        self,
        key: str,
        serving: LoadedModule,
        problems: list[str],
        error: ModuleLoadError | None,
        slots: Iterable[ModuleSlot],
    ) -> None:
        """New code for ``key`` was refused: say where, and keep it on the serving slots."""
        file, line = located(problems, serving)
        if error is not None and error.file is not None:
            file, line = error.file, error.line
        where = f"{file}:{line}: " if line else f"{file}: " if file else ""
        message = where + "; ".join(problems)
        for slot in slots:
            if slot.loaded is serving:
                slot.reload_error = message
        log.error(
            "module_reload_failed",
            module=key,
            file=file,
            line=line,
            error="; ".join(problems),
            serving_version=serving.contract.version,
        )
        self.notify(
            ModuleChange(
                ChangeKind.RELOAD_FAILED,
                message,
                key,
                None,
                serving.contract.version,
                serving.source_hash,
                file=file,
                line=line,
            )
        )

    def config_rejected(self, problems: list[str]) -> CommandResult:
        for problem in problems:
            log.error("config_rejected", problem=problem)
        self.notify(ModuleChange(ChangeKind.CONFIG_REJECTED, "; ".join(problems)))
        return CommandResult(
            False, "config rejected, the running configuration is kept: " + "; ".join(problems), {"problems": problems}
        )

    def notify(self, change: ModuleChange) -> None:
        for observer in list(self.observers):
            try:
                observer(change)
            except Exception as exc:  # noqa: BLE001 - one broken observer must not break a swap
                log.warning("observer_failed", error=f"{type(exc).__name__}: {exc}")


def located(problems: list[str], serving: LoadedModule) -> tuple[str, int | None]:
    """The first ``at FILE:LINE`` in ``problems`` inside the module's own files
    (checks report where the new code raised), else just the module's file."""
    own = {str(path) for path in serving.source.files()}
    for problem in problems:
        for match in _AT_FILE_LINE.finditer(problem):
            if match.group(1) in own:
                return match.group(1), int(match.group(2))
    return str(serving.source.origin), None
