"""The risk state on disk, so a halt survives a crash.

``<state_dir>/risk/state.json`` holds the trading state with its reason and
the kill switch's reference equities (peak, start of the UTC day). It is
written atomically (temporary file, fsync, rename) whenever the state
changes: a daemon halted before a crash is still halted after restart until
an operator resumes it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import structlog

from orchestrator.risk.state import TradingState

log = structlog.get_logger("orchestrator.risk")


@dataclass(frozen=True, slots=True)
class SavedRiskState:
    state: TradingState
    reason: str
    since_ms: int
    peak_equity: float | None = None
    day: str | None = None  # UTC date (YYYY-MM-DD) of day_start_equity
    day_start_equity: float | None = None


class RiskStateStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "risk" / "state.json"

    def save(self, saved: SavedRiskState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = asdict(saved)
        payload["state"] = saved.state.value
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".state.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def load(self) -> SavedRiskState | None:
        """The saved state; ``None`` if there is none. A damaged file halts:
        not knowing whether we were halted must not mean trading."""
        try:
            payload = json.loads(self.path.read_text(encoding="utf-8"))
            return SavedRiskState(
                state=TradingState(payload["state"]),
                reason=str(payload["reason"]),
                since_ms=int(payload["since_ms"]),
                peak_equity=None if payload.get("peak_equity") is None else float(payload["peak_equity"]),
                day=payload.get("day"),
                day_start_equity=None
                if payload.get("day_start_equity") is None
                else float(payload["day_start_equity"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("risk_state_unreadable", path=str(self.path), error=f"{type(exc).__name__}: {exc}")
            return SavedRiskState(TradingState.HALTED, f"risk state file {self.path} unreadable: {exc}", 0)
