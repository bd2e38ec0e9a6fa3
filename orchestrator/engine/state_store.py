"""Module state on disk, so warmed-up windows and trained weights survive
restarts: ``<state_dir>/modules/<bucket>/<module>.json``, written atomically
(temporary file, fsync, rename) so a crash never leaves half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import structlog

from orchestrator.contract import ModuleState

log = structlog.get_logger("orchestrator.state")


class ModuleStateStore:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "modules"

    def path(self, bucket: str, module: str) -> Path:
        return self.root / bucket / f"{module}.json"

    def save(self, bucket: str, module: str, state: ModuleState) -> None:
        target = self.path(bucket, module)
        target.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "module": state.module,
            "version": state.version,
            "state_version": state.state_version,
            "data": state.data,
        }
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{module}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle, separators=(",", ":"), allow_nan=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def load(self, bucket: str, module: str) -> ModuleState | None:
        path = self.path(bucket, module)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            return ModuleState(
                module=str(payload["module"]),
                version=str(payload["version"]),
                state_version=int(payload["state_version"]),
                data=dict(payload["data"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # A damaged file must not keep the daemon from starting: start cold.
            log.warning("module_state_unreadable", path=str(path), error=f"{type(exc).__name__}: {exc}")
            return None
